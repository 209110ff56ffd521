//! A fork server ("zygote") for step processes, Linux only.
//!
//! Every step program starts with the notebook's `imports` cells, and for a
//! data-science notebook importing them (numpy, pandas, scikit-learn, ...) takes
//! one to several seconds — far longer than most steps of a tuning trial. The
//! fork server is one Python process that imports those modules once and then
//! forks a child per step; the child finds them in `sys.modules` already.
//! `kale tune` keeps one server for the whole session, so a 50-trial tune pays
//! for the imports once instead of once per step and trial.
//!
//! The Python side is `src/runtime/kale_zygote.py` (its docstring has the
//! protocol). Kale sends each request over a `SOCK_SEQPACKET` socket together
//! with the write ends of the step's stdout and stderr pipes (`SCM_RIGHTS`), so
//! output flows from the child straight to kale as it does for a spawned step.
//! Each child leads its own process group and dies with the server, which dies
//! with kale; stopping a step is the same signal to its group as before.
//!
//! Off when `KALE_FORK_SERVER=0`, before Python 3.9 (no `socket.recv_fds`), and
//! when the imports include a library documented not to survive `fork()` after
//! it has started its threads (TensorFlow, JAX, Ray, Spark). If the server
//! cannot start or dies, steps are spawned as plain processes.

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags,
    SocketType,
};
use serde_json::{Value, json};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::{OnceCell, oneshot};

use super::python::Interpreter;

/// The server script, installed beside the runtime module.
pub const ZYGOTE_FILE: &str = "kale_zygote.py";
pub const ZYGOTE_SOURCE: &str = include_str!("../runtime/kale_zygote.py");

/// Top-level packages that must not be imported before `fork()`: they start
/// thread pools at import and say so in their documentation.
const FORK_UNSAFE: &[&str] = &[
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "ray",
    "pyspark",
    "mxnet",
];

/// How long the server may take to import the notebook's modules.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A fork server started on first use and shared by every run that holds the
/// slot (all trials of a tune).
pub struct ForkServerSlot {
    modules: Vec<String>,
    server: OnceCell<Option<Arc<ForkServer>>>,
}

impl std::fmt::Debug for ForkServerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkServerSlot")
            .field("modules", &self.modules)
            .field("started", &self.server.initialized())
            .finish()
    }
}

impl ForkServerSlot {
    /// For the modules the pipeline's `imports` cells import.
    pub fn for_pipeline(pipeline: &crate::pipeline::Pipeline) -> Option<Arc<ForkServerSlot>> {
        let sources = pipeline
            .imports_cells
            .iter()
            .filter_map(|cell| pipeline.sources.get(cell).map(String::as_str));
        Self::for_modules(crate::analysis::imported_modules(sources))
    }

    /// `None` when the fork server is off for these imports (see the module docs).
    pub fn for_modules(modules: Vec<String>) -> Option<Arc<ForkServerSlot>> {
        if !cfg!(target_os = "linux")
            || std::env::var_os("KALE_FORK_SERVER").is_some_and(|v| v == "0")
        {
            return None;
        }
        let unsafe_import = modules.iter().any(|m| {
            let top = m.split('.').next().unwrap_or(m);
            FORK_UNSAFE.contains(&top)
        });
        (!unsafe_import).then(|| {
            Arc::new(ForkServerSlot {
                modules,
                server: OnceCell::new(),
            })
        })
    }

    /// The running server, started now if this is the first call; `None` when it
    /// cannot run with this interpreter or failed to start.
    pub async fn get(
        &self,
        interpreter: &Interpreter,
        runtime_dir: &Path,
        workdir: &Path,
        log: &Path,
        env: &[(String, String)],
    ) -> Option<Arc<ForkServer>> {
        if interpreter.version < (3, 9) {
            return None;
        }
        self.server
            .get_or_init(|| async {
                ForkServer::start(interpreter, runtime_dir, workdir, &self.modules, log, env)
                    .await
                    .ok()
                    .map(Arc::new)
            })
            .await
            .as_ref()
            .filter(|s| s.is_alive())
            .cloned()
    }
}

/// A step running in a child of the fork server.
pub struct ForkedStep {
    pub pid: i32,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub end: oneshot::Receiver<StepEnd>,
}

/// How a forked step ended.
#[derive(Debug, Clone, Copy)]
pub struct StepEnd {
    /// The exit code, or `None` when a signal ended it (or the server died).
    pub code: Option<i32>,
    /// The child waits for the next step of the same trial (it was asked to keep).
    pub idle: bool,
}

/// A child that ran a step of a trial and waits to run the next one in the same
/// process (`ForkServer::spawn` with `continue_in`). Dropped unused, it ends.
pub struct IdleChild {
    server: Option<Arc<ForkServer>>,
    pid: i32,
}

impl IdleChild {
    pub fn new(server: Arc<ForkServer>, pid: i32) -> IdleChild {
        IdleChild {
            server: Some(server),
            pid,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn belongs_to(&self, server: &Arc<ForkServer>) -> bool {
        self.server.as_ref().is_some_and(|s| Arc::ptr_eq(s, server))
    }

    /// Handed to a step: no longer ours to end.
    fn taken(mut self) -> i32 {
        self.server = None;
        self.pid
    }
}

impl Drop for IdleChild {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.release(self.pid);
        }
    }
}

type SpawnReply = Result<(i32, oneshot::Receiver<StepEnd>), String>;

#[derive(Default)]
struct State {
    alive: bool,
    ready: Option<oneshot::Sender<()>>,
    spawning: HashMap<u64, oneshot::Sender<SpawnReply>>,
    warming: HashMap<u64, oneshot::Sender<()>>,
    running: HashMap<i32, oneshot::Sender<StepEnd>>,
}

pub struct ForkServer {
    socket: Arc<OwnedFd>,
    state: Arc<Mutex<State>>,
    /// Serialises requests: each is one message with its two descriptors.
    send: Mutex<()>,
    next_id: AtomicU64,
    /// Inputs already offered to the server for warming (held or refused there).
    offered: Mutex<HashSet<String>>,
    _process: tokio::process::Child,
}

impl ForkServer {
    async fn start(
        interpreter: &Interpreter,
        runtime_dir: &Path,
        workdir: &Path,
        modules: &[String],
        log: &Path,
        env: &[(String, String)],
    ) -> io::Result<ForkServer> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let their_fd = theirs.as_raw_fd();
        let mut command = Command::new(&interpreter.executable);
        command
            .arg(runtime_dir.join(ZYGOTE_FILE))
            .arg(their_fd.to_string())
            .args(modules)
            .current_dir(workdir)
            .env("PYTHONPATH", super::python::python_path(runtime_dir))
            .env("PYTHONUNBUFFERED", "1")
            // Thread pools (BLAS, OpenMP) are sized when the server imports the
            // libraries: every forked step inherits them.
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(log)
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .kill_on_drop(true)
            // Not in kale's process group: a Ctrl-C at the terminal is kale's to handle.
            .process_group(0);
        // SAFETY: fcntl and prctl are async-signal-safe. The socket end must survive
        // exec; PDEATHSIG makes the server (and through it every step) die with kale.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(their_fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let process = command.spawn()?;
        drop(theirs);

        let socket = Arc::new(ours);
        let (ready_tx, ready_rx) = oneshot::channel();
        let state = Arc::new(Mutex::new(State {
            alive: true,
            ready: Some(ready_tx),
            ..State::default()
        }));
        {
            let (socket, state) = (socket.clone(), state.clone());
            // On the runtime's own reactor rather than a thread of its own: a reply
            // then wakes the task waiting for it directly, one switch instead of two.
            // SAFETY: the AsyncFd owns a clone of the Arc, so the descriptor stays open
            // (and the same) for as long as it is registered.
            let reader = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
                .map_err(|e| io::Error::other(e.to_string()))?;
            tokio::spawn(read_replies(reader, state));
        }
        match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(())) => Ok(ForkServer {
                socket,
                state,
                send: Mutex::new(()),
                next_id: AtomicU64::new(0),
                offered: Mutex::new(HashSet::new()),
                _process: process,
            }),
            _ => Err(io::Error::other("the fork server did not start")),
        }
    }

    fn is_alive(&self) -> bool {
        self.state.lock().expect("fork server state").alive
    }

    /// Runs `program` in a fresh child, in `cwd`, with `env` added — or in
    /// `continue_in`, the child of this server that ran the step before (when it has
    /// gone, in a fresh child). With `keep`, the child waits after a successful step
    /// for the next one (`StepEnd::idle`) instead of ending.
    pub async fn spawn(
        self: &Arc<Self>,
        program: &Path,
        cwd: &Path,
        env: &[(String, String)],
        keep: bool,
        continue_in: Option<IdleChild>,
    ) -> io::Result<ForkedStep> {
        let (out_read, out_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut state = self.state.lock().expect("fork server state");
            if !state.alive {
                return Err(io::Error::other("the fork server has stopped"));
            }
            state.spawning.insert(id, reply_tx);
        }
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut request = json!({
            "id": id,
            "program": program.display().to_string(),
            "cwd": cwd.display().to_string(),
            "env": env,
            "keep": keep,
        });
        if let Some(child) = continue_in.filter(|c| c.belongs_to(self)) {
            request["pid"] = json!(child.taken());
        }
        let request = request.to_string();
        super::trace::event("fork_server.request", || id.to_string());
        {
            let _one_at_a_time = self.send.lock().expect("fork server socket");
            let fds = [out_write.as_fd(), err_write.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            let sent = rustix::net::sendmsg(
                &*self.socket,
                &[IoSlice::new(request.as_bytes())],
                &mut control,
                SendFlags::empty(),
            );
            if let Err(e) = sent {
                self.state
                    .lock()
                    .expect("fork server state")
                    .spawning
                    .remove(&id);
                return Err(e.into());
            }
        }
        // Only the child may hold the write ends, so its exit is our end of file.
        drop((out_write, err_write));
        let (pid, end) = reply_rx
            .await
            .map_err(|_| io::Error::other("the fork server stopped"))?
            .map_err(io::Error::other)?;
        Ok(ForkedStep {
            pid,
            stdout: pipe::Receiver::from_owned_fd(out_read)?,
            stderr: pipe::Receiver::from_owned_fd(err_read)?,
            end,
        })
    }
}

impl ForkServer {
    /// Ends a child waiting for a next step (best effort: one that has gone is reaped).
    fn release(&self, pid: i32) {
        if !self.is_alive() {
            return;
        }
        let request = json!({"release": pid}).to_string();
        super::trace::event("fork_server.release", || pid.to_string());
        let _one_at_a_time = self.send.lock().expect("fork server socket");
        let _ = rustix::net::send(&*self.socket, request.as_bytes(), SendFlags::empty());
    }

    /// Has the server load these inputs (content hash, file) once, so that every
    /// step forked from it afterwards starts with them in memory (`warm` in the
    /// runtime, which decides what it can hold). Each input is offered once.
    pub async fn warm(&self, inputs: &[(String, PathBuf)]) -> io::Result<()> {
        let fresh: Vec<Value> = {
            let mut offered = self.offered.lock().expect("fork server offers");
            inputs
                .iter()
                .filter(|(hash, _)| offered.insert(hash.clone()))
                .map(|(hash, path)| json!({"hash": hash, "path": path.display().to_string()}))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut state = self.state.lock().expect("fork server state");
            if !state.alive {
                return Err(io::Error::other("the fork server has stopped"));
            }
            state.warming.insert(id, reply_tx);
        }
        let request = json!({"id": id, "warm": fresh, "refuse": FORK_UNSAFE}).to_string();
        super::trace::event("fork_server.warm", || id.to_string());
        let sent = {
            let _one_at_a_time = self.send.lock().expect("fork server socket");
            rustix::net::send(&*self.socket, request.as_bytes(), SendFlags::empty())
        };
        if let Err(e) = sent {
            self.state
                .lock()
                .expect("fork server state")
                .warming
                .remove(&id);
            return Err(e.into());
        }
        reply_rx
            .await
            .map_err(|_| io::Error::other("the fork server stopped"))
    }
}

/// The reply loop: routes each message to whoever waits for it. When the server
/// goes away every waiter is released (dropped senders).
async fn read_replies(reader: AsyncFd<Arc<OwnedFd>>, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut ready) = reader.readable().await else {
            break;
        };
        // The socket stays blocking for the requests sent on it; reads do not wait.
        let n = match rustix::net::recv(reader.get_ref(), &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) if n > 0 => n,
            Err(rustix::io::Errno::AGAIN) => {
                ready.clear_ready();
                continue;
            }
            Err(rustix::io::Errno::INTR) => continue,
            _ => break,
        };
        let Ok(message) = serde_json::from_slice::<Value>(&buf[..n]) else {
            continue;
        };
        super::trace::event("fork_server.reply", || {
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let mut state = state.lock().expect("fork server state");
        if message["ready"] == true {
            if let Some(ready) = state.ready.take() {
                let _ = ready.send(());
            }
        } else if let Some(pid) = message["exited"].as_i64() {
            if let Some(waiter) = state.running.remove(&(pid as i32)) {
                let _ = waiter.send(StepEnd {
                    code: message["code"].as_i64().map(|c| c as i32),
                    idle: message["idle"] == true,
                });
            }
        } else if let Some(id) = message["id"].as_u64()
            && message.get("warmed").is_some()
        {
            if let Some(waiter) = state.warming.remove(&id) {
                let _ = waiter.send(());
            }
        } else if let Some(id) = message["id"].as_u64() {
            let Some(waiter) = state.spawning.remove(&id) else {
                continue;
            };
            let reply = match message["pid"].as_i64() {
                Some(pid) => {
                    let (exit_tx, exit_rx) = oneshot::channel();
                    state.running.insert(pid as i32, exit_tx);
                    Ok((pid as i32, exit_rx))
                }
                None => Err(message["error"]
                    .as_str()
                    .unwrap_or("the fork server refused the step")
                    .to_string()),
            };
            let _ = waiter.send(reply);
        }
    }
    let mut state = state.lock().expect("fork server state");
    state.alive = false;
    state.ready = None;
    state.spawning.clear();
    state.warming.clear();
    state.running.clear();
}

/// Where the server's own stderr goes (start-up problems): `.kale/fork-server.log`,
/// beside the runs directory rather than in it, where only runs belong.
pub fn log_path(runs_dir: &Path) -> PathBuf {
    crate::layout::Layout::beside_runs(runs_dir).fork_server_log()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::ForkServerSlot;

    #[test]
    fn off_for_libraries_that_do_not_survive_fork() {
        let with =
            |m: &[&str]| ForkServerSlot::for_modules(m.iter().map(|s| s.to_string()).collect());
        assert!(with(&["numpy", "sklearn.svm"]).is_some());
        assert!(with(&["numpy", "tensorflow.keras.layers"]).is_none());
        assert!(with(&["jax"]).is_none());
        // A package whose name merely starts like one of them is fine.
        assert!(with(&["jaxtyping", "rayon_py"]).is_some());
    }
}
