//! One step of a run: its cache check, its process (spawned, or forked from the fork
//! server) with its output pumped to the log and the reporter, the processes it left
//! behind, and its record (status, outputs, the error mapped to the notebook, the
//! snapshot it was cached with). [`super::run`] schedules the steps; a [`StepTask`]
//! runs one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;

use super::{
    Finished, Reporter, StepError, StepRecord, StepStatus, cache, fork_server, manifest,
    provenance, python, resources, step_dir, trace,
};
use crate::codegen::{LineMap, StepProgram};
use crate::pipeline::Step;

pub(super) struct StepTask {
    pub(super) step: Step,
    pub(super) program: StepProgram,
    pub(super) inputs: BTreeMap<String, manifest::InputRef>,
    /// Inputs (content hash, file) to offer the fork server to hold for later trials.
    pub(super) warm: Vec<(String, PathBuf)>,
    pub(super) run_dir: PathBuf,
    pub(super) runtime_dir: PathBuf,
    pub(super) workdir: PathBuf,
    pub(super) interpreter: python::Interpreter,
    pub(super) fork_server: Option<Arc<fork_server::ForkServerSlot>>,
    pub(super) fork_server_log: PathBuf,
    pub(super) sources: BTreeMap<usize, String>,
    pub(super) reporter: Arc<dyn Reporter>,
    pub(super) cancel: watch::Receiver<bool>,
    pub(super) record: StepRecord,
    pub(super) cache: Option<Arc<cache::Cache>>,
    pub(super) key: Option<String>,
    pub(super) python: provenance::PythonIdentity,
    pub(super) untracked_dirs: Vec<PathBuf>,
    pub(super) pool: Option<Arc<resources::ResourcePool>>,
    /// Whether the step's process may go on to a next step of the trial.
    pub(super) hand_on: bool,
    /// The process of a step this one reads from, waiting for it.
    pub(super) continue_in: Option<fork_server::IdleChild>,
    /// This step's process, when it waits for a next step.
    pub(super) idle: Option<fork_server::IdleChild>,
}

impl StepTask {
    pub(super) async fn run(mut self) -> Finished {
        let started = std::time::Instant::now();
        let dir = step_dir(&self.run_dir, &self.step.name);
        // Hold the key while computing it, so a parallel trial needing the same step
        // waits and then reuses the result instead of running it too.
        let cache = self.cache.clone();
        let key = self.key.clone();
        let _guard = match (&cache, &key) {
            (Some(c), Some(k)) => Some(c.lock(k).await),
            _ => None,
        };
        if let (Some(c), Some(k)) = (&cache, &key)
            && self.reuse_cached(c, k, &dir, started)
        {
            return Finished {
                step: self.step.name.clone(),
                record: self.record,
                idle: None,
            };
        }
        let result = self.execute(&dir).await;
        trace::event("step.exited", || self.step.name.clone());
        self.record.seconds = Some(started.elapsed().as_secs_f64());
        self.record.finished_at = Some(manifest::now());
        match result {
            Ok(Exit::Interrupted) => {
                self.record.status = StepStatus::Interrupted;
            }
            Ok(Exit::Code(code)) => {
                self.record.exit_code = code;
                let status = read_json(&dir.join("status.json"));
                let succeeded = code == Some(0)
                    && status
                        .as_ref()
                        .and_then(|s| s.get("status"))
                        .and_then(Value::as_str)
                        == Some("succeeded");
                if succeeded {
                    self.record_success(&dir, cache.as_deref(), key.as_deref(), started);
                } else {
                    self.record.status = StepStatus::Failed;
                    self.record.error = Some(self.failure(&dir, code));
                }
            }
            Err(e) => {
                self.record.status = StepStatus::Failed;
                self.record.error = Some(StepError {
                    kind: "KaleError".into(),
                    message: format!("could not run the step: {e}"),
                    cell: None,
                    line: None,
                    code: None,
                    variable: None,
                });
            }
        }
        let idle = self
            .idle
            .take()
            .filter(|_| self.record.status == StepStatus::Succeeded);
        Finished {
            step: self.step.name.clone(),
            record: self.record,
            idle,
        }
    }

    /// The cache's result for this step, when it has a usable one: its outputs put
    /// where the step would have written them, and the record says `cached`. A stale
    /// or corrupt entry is a note, and the step runs.
    fn reuse_cached(
        &mut self,
        c: &cache::Cache,
        k: &str,
        dir: &Path,
        started: std::time::Instant,
    ) -> bool {
        let check = cache::HitCheck {
            python: &self.python,
            base: &self.workdir,
            trust_untracked: self.step.config.cache == Some(true),
        };
        let checking = std::time::Instant::now();
        let lookup = c.lookup(k, &check);
        trace::event("step.lookup", || {
            let what = match &lookup {
                cache::Lookup::Hit(_) => "hit",
                cache::Lookup::Miss => "miss",
                cache::Lookup::Stale(_) => "stale",
                cache::Lookup::Corrupt(_) => "corrupt",
            };
            format!("{} {what}", self.step.name)
        });
        self.record.cache_check_seconds = Some(checking.elapsed().as_secs_f64());
        match lookup {
            cache::Lookup::Hit(entry) => {
                let materialized = std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(dir.join("program.py"), &self.program.source))
                    .and_then(|_| c.materialize(&entry, dir))
                    .and_then(|_| write_snapshot(dir, k, &entry.provenance));
                if materialized.is_ok() {
                    trace::event("step.materialized", || self.step.name.clone());
                    let record = &mut self.record;
                    record.status = StepStatus::Cached;
                    record.outputs = entry.outputs;
                    record.metrics = entry.metrics;
                    record.seconds = Some(started.elapsed().as_secs_f64());
                    record.finished_at = Some(manifest::now());
                    return true;
                }
            }
            cache::Lookup::Stale(why) => {
                self.reporter.step_cache_note(&self.step.name, &why);
                self.record.cache_note = Some(why);
            }
            cache::Lookup::Corrupt(why) => {
                let why = format!("{why}; running the step again");
                self.reporter.step_cache_note(&self.step.name, &why);
                self.record.cache_note = Some(why);
            }
            cache::Lookup::Miss => {}
        }
        false
    }

    /// A step that succeeded: its outputs and metrics into the record, and (with a
    /// cache) its result stored under its key with the snapshot it ran with, or at
    /// least its objects.
    fn record_success(
        &mut self,
        dir: &Path,
        cache: Option<&cache::Cache>,
        key: Option<&str>,
        started: std::time::Instant,
    ) {
        self.record.outputs = read_json(&dir.join("outputs.json"))
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        self.record.metrics = read_json(&dir.join("metrics.json"))
            .and_then(|v| v.as_object().cloned())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        self.record.status = StepStatus::Succeeded;
        trace::event("step.results_read", || self.step.name.clone());
        let Some(c) = cache else {
            return;
        };
        let seconds = started.elapsed().as_secs_f64();
        let snapshot = key.map(|k| {
            let recorded =
                provenance::Provenance::record(dir, &self.workdir, &mut |path| c.keep_copy(path));
            if let Ok(p) = &recorded {
                let _ = write_snapshot(dir, k, p);
            }
            trace::event("step.snapshot_recorded", || self.step.name.clone());
            recorded
        });
        let stored = match (key, snapshot) {
            (Some(k), Some(Ok(provenance))) => c.store(
                k,
                dir,
                cache::StepResult {
                    step: &self.step.name,
                    outputs: &self.record.outputs,
                    metrics: &self.record.metrics,
                    seconds,
                    provenance,
                },
            ),
            (_, Some(Err(why))) => {
                let why = format!("not cached: {why}");
                self.reporter.step_cache_note(&self.step.name, &why);
                self.record.cache_note = Some(why);
                c.store_objects(&self.step.name, dir, &self.record.outputs)
            }
            _ => c.store_objects(&self.step.name, dir, &self.record.outputs),
        };
        trace::event("step.stored", || self.step.name.clone());
        if let Err(e) = stored {
            self.reporter.step_output(
                &self.step.name,
                &format!("kale: could not cache the step's outputs: {e}"),
                true,
            );
        }
    }

    /// What a failed step's error was, mapped to the notebook; a step over its memory
    /// limit says so.
    fn failure(&self, dir: &Path, code: Option<i32>) -> StepError {
        let mut error = step_error(dir, &self.program.line_map, &self.sources, code);
        if let Ok(r) = resources::StepResources::of(&self.step.config)
            && let Some(limit) = r.memory_text
            && (error.kind.ends_with("MemoryError") || code.is_none())
        {
            error.message = format!(
                "step `{}` exceeded its memory limit ({limit}): {}",
                self.step.name, error.message
            );
            error.kind = "MemoryLimitExceeded".into();
        }
        error
    }

    async fn execute(&mut self, dir: &Path) -> std::io::Result<Exit> {
        let (program_path, fresh) = self.write_step_files(dir)?;
        let asked = resources::StepResources::of(&self.step.config).unwrap_or_default();
        let asked = match &self.pool {
            Some(pool) => pool.effective(asked),
            None => asked,
        };
        // Held until the step ends: its GPUs and CPU share are its own meanwhile.
        let Some(lease) = self.share(&asked).await else {
            return Ok(Exit::Interrupted);
        };
        let mut env: Vec<(String, String)> =
            vec![("KALE_STEP_DIR".into(), dir.display().to_string())];
        if let Some(lease) = &lease {
            env.extend(lease.environment(asked.gpus > 0));
            if asked.gpus > 0 {
                self.reporter.step_gpus(&self.step.name, &lease.gpu_ids());
            }
        }
        for stale in (!fresh)
            .then_some([
                "status.json",
                "error.json",
                "outputs.json",
                "metrics.json",
                "reads.json",
                SNAPSHOT_FILE,
            ])
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(dir.join(stale));
        }

        trace::event("step.prepared", || self.step.name.clone());
        let fork_server = self
            .fork_server
            .clone()
            .filter(|_| !asked.needs_own_process());
        if let Some(slot) = fork_server
            && let Some(exit) = self
                .run_forked(&slot, &env, lease.as_ref(), &asked, &program_path, dir)
                .await
        {
            return exit;
        }
        self.run_spawned(&env, &asked, &program_path, dir).await
    }

    /// The step's folder with its program, line map and `context.json` (what the
    /// runtime reads: the inputs' files and hashes, what it need not snapshot);
    /// returns the program's path and whether the folder is new.
    fn write_step_files(&self, dir: &Path) -> std::io::Result<(PathBuf, bool)> {
        // A new directory holds nothing left from an earlier attempt.
        let fresh = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(_) => {
                std::fs::create_dir_all(dir)?;
                false
            }
        };
        let program_path = dir.join("program.py");
        std::fs::write(&program_path, &self.program.source)?;
        std::fs::write(
            dir.join("linemap.json"),
            serde_json::to_vec(&self.program.line_map).unwrap(),
        )?;
        let inputs: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.file.display().to_string())))
            .collect();
        let input_hashes: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.hash.clone())))
            .collect();
        manifest::write_json_atomic(
            &dir.join("context.json"),
            &json!({
                "step": self.step.name,
                "inputs": inputs,
                // Lets the runtime take an input the fork server holds (see `warm`).
                "input_hashes": input_hashes,
                "untracked_dirs": self.untracked_dirs,
                // Only a step whose result may be reused needs its snapshot.
                "track": self.key.is_some(),
            }),
        )?;
        Ok((program_path, fresh))
    }

    /// The step's share of the machine (`None` without a pool), once it is free;
    /// `None` when the run is stopped while the step waits for it.
    async fn share(
        &mut self,
        asked: &resources::StepResources,
    ) -> Option<Option<resources::Lease>> {
        match &self.pool {
            Some(pool) => {
                let acquire = pool.acquire(asked);
                tokio::pin!(acquire);
                loop {
                    tokio::select! {
                        lease = &mut acquire => break Some(Some(lease)),
                        changed = self.cancel.changed() => {
                            if changed.is_err() || *self.cancel.borrow() {
                                return None;
                            }
                        }
                    }
                }
            }
            None => Some(None),
        }
    }

    /// Runs the step in a child of the fork server; `None` when the server cannot
    /// take it (it could not start, or just died), which leaves it to a plain process.
    async fn run_forked(
        &mut self,
        slot: &fork_server::ForkServerSlot,
        env: &[(String, String)],
        lease: Option<&resources::Lease>,
        asked: &resources::StepResources,
        program_path: &Path,
        dir: &Path,
    ) -> Option<std::io::Result<Exit>> {
        let (server_env, forked_env) = match (&self.pool, &lease) {
            (Some(pool), Some(lease)) => {
                let default = pool.default_threads();
                let mut env = env.to_vec();
                if lease.threads() != default {
                    // The server's thread pools were sized for the default share;
                    // the runtime resizes them in this step (threadpoolctl).
                    env.push(("KALE_CPU_THREADS".into(), lease.threads().to_string()));
                }
                (resources::thread_environment(default), env)
            }
            _ => (Vec::new(), env.to_vec()),
        };
        let server = slot
            .get(
                &self.interpreter,
                &self.runtime_dir,
                &self.workdir,
                &self.fork_server_log,
                &server_env,
            )
            .await;
        if let Some(server) = server {
            if !self.warm.is_empty() {
                // Best effort: whatever the server does not hold, the step loads.
                let _ = server.warm(&self.warm).await;
            }
            // A process goes on to another step only with the resources every
            // such step has: no GPUs it initialised, no thread limits of its own.
            let plain = asked.gpus == 0 && forked_env.len() == env.len();
            // A step that changed a library setting kale does not carry must not hand its
            // process on: the next step would see it under `tune` and not under `run`.
            let keep = self.hand_on && plain && !self.step.unknown_state;
            let continue_in = self.continue_in.take().filter(|_| plain);
            // A server that cannot take the step (it just died) leaves it to
            // a plain process below.
            if let Ok(forked) = server
                .spawn(&program_path, &self.workdir, &forked_env, keep, continue_in)
                .await
            {
                trace::event("step.forked", || {
                    format!("{} {}", self.step.name, forked.pid)
                });
                let pid = forked.pid;
                let process = StepProcess::Forked {
                    pid,
                    end: forked.end,
                    idle: false,
                };
                let (exit, idle) = match self
                    .supervise(process, forked.stdout, forked.stderr, dir)
                    .await
                {
                    Ok(ended) => ended,
                    Err(e) => return Some(Err(e)),
                };
                if idle {
                    self.idle = Some(fork_server::IdleChild::new(server, pid));
                }
                return Some(Ok(exit));
            }
        }
        None
    }

    /// Runs the step in a Python process of its own, in its own process group.
    async fn run_spawned(
        &mut self,
        env: &[(String, String)],
        asked: &resources::StepResources,
        program_path: &Path,
        dir: &Path,
    ) -> std::io::Result<Exit> {
        let pythonpath = python::python_path(&self.runtime_dir);
        let mut child = Command::new(&self.interpreter.executable);
        child
            .arg(&program_path)
            .current_dir(&self.workdir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PYTHONPATH", pythonpath)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Own process group: a Ctrl-C at the terminal reaches kale, which then stops
            // the step (and anything it started) deliberately and records it.
            .process_group(0);
        #[cfg(target_os = "linux")]
        {
            let memory = asked.memory;
            // SAFETY: prctl and setrlimit are async-signal-safe. PDEATHSIG kills the step
            // if kale itself dies (kill -9), so no orphan keeps computing; the
            // address-space limit is the ceiling of `limit:memory:` (an allocation past
            // it fails with MemoryError in the step instead of taking the machine down).
            unsafe {
                child.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if let Some(bytes) = memory {
                        let limit = libc::rlimit {
                            rlim_cur: bytes as libc::rlim_t,
                            rlim_max: bytes as libc::rlim_t,
                        };
                        if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = child.spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (exit, _) = self
            .supervise(StepProcess::Spawned(child), stdout, stderr, dir)
            .await?;
        Ok(exit)
    }

    /// Copies the step's output to its logs and the reporter while waiting for
    /// it to exit, or stops it when the run is cancelled. The flag: the process
    /// did not exit but waits for a next step.
    async fn supervise<O, E>(
        &mut self,
        mut process: StepProcess,
        stdout: O,
        stderr: E,
        dir: &Path,
    ) -> std::io::Result<(Exit, bool)>
    where
        O: tokio::io::AsyncRead + Unpin + Send + 'static,
        E: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let out_task = tokio::spawn(pump(
            stdout,
            dir.join("stdout.log"),
            self.step.name.clone(),
            false,
            self.reporter.clone(),
        ));
        let err_task = tokio::spawn(pump(
            stderr,
            dir.join("stderr.log"),
            self.step.name.clone(),
            true,
            self.reporter.clone(),
        ));
        // The step's process group (its pid): a spawned child forgets its pid once
        // reaped.
        let group = process.pid();
        let exit = loop {
            tokio::select! {
                code = process.wait() => {
                    trace::event("step.exit_seen", || self.step.name.clone());
                    break Exit::Code(code?)
                }
                changed = self.cancel.changed() => {
                    if changed.is_err() || *self.cancel.borrow() {
                        process.terminate().await;
                        break Exit::Interrupted;
                    }
                }
            }
        };
        let idle = matches!(exit, Exit::Code(Some(0)))
            && matches!(process, StepProcess::Forked { idle: true, .. });
        let (mut out_task, mut err_task) = (out_task, err_task);
        let drained = tokio::time::timeout(OUTPUT_GRACE, async {
            let _ = (&mut out_task).await;
            let _ = (&mut err_task).await;
        })
        .await
        .is_ok();
        // What the step started and left behind (in its process group) ends with it;
        // the step's own process stays when it waits for the trial's next step.
        let mut note = None;
        if let Some(group) = group
            && (!drained || may_have_leftovers(group))
        {
            let ended = end_leftovers(group, group).await;
            if !ended.is_empty() {
                note = Some(format!(
                    "kale: the step ended, leaving {} process{} it started running (pid {}); kale ended {}",
                    ended.len(),
                    if ended.len() == 1 { "" } else { "es" },
                    ended
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if ended.len() == 1 { "it" } else { "them" },
                ));
            }
        }
        if !drained {
            // Ended above, the holders of the pipes are gone and the pumps see the
            // end; one outside the group (it started a session of its own) is left,
            // and so is the rest of its output.
            let finished = tokio::time::timeout(OUTPUT_GRACE, async {
                let _ = (&mut out_task).await;
                let _ = (&mut err_task).await;
            })
            .await
            .is_ok();
            if !finished {
                out_task.abort();
                err_task.abort();
                let _ = out_task.await;
                let _ = err_task.await;
                let stopped = format!(
                    "kale: the step ended but a process it started still holds its output; kale stopped reading it after {}s",
                    OUTPUT_GRACE.as_secs()
                );
                note = Some(match note {
                    Some(n) => format!("{n}\n{stopped}"),
                    None => stopped,
                });
            }
        }
        if let Some(note) = note {
            use std::io::Write;
            if let Ok(mut log) = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("stderr.log"))
            {
                let _ = writeln!(log, "{note}");
            }
            for line in note.lines() {
                self.reporter.step_output(&self.step.name, line, true);
            }
        }
        trace::event("step.output_drained", || self.step.name.clone());
        Ok((exit, idle))
    }
}

/// The snapshot a step's result was cached with, beside its outputs:
/// `kale cache explain` reads it.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// The key and snapshot a step of a run was cached with, if it was.
pub fn read_snapshot(step_dir: &Path) -> Option<(String, provenance::Provenance)> {
    let doc = read_json(&step_dir.join(SNAPSHOT_FILE))?;
    let key = doc.get("key")?.as_str()?.to_string();
    Some((key, serde_json::from_value(doc).ok()?))
}

fn write_snapshot(
    dir: &Path,
    key: &str,
    provenance: &provenance::Provenance,
) -> std::io::Result<()> {
    let mut doc = serde_json::to_value(provenance).map_err(std::io::Error::other)?;
    doc["key"] = Value::String(key.to_string());
    manifest::write_json_atomic(&dir.join(SNAPSHOT_FILE), &doc)
}

enum Exit {
    Code(Option<i32>),
    Interrupted,
}

/// A running step: a process kale spawned, or a child of the fork server.
enum StepProcess {
    Spawned(tokio::process::Child),
    Forked {
        pid: i32,
        end: tokio::sync::oneshot::Receiver<fork_server::StepEnd>,
        /// Set when it ended its step waiting for the next one.
        idle: bool,
    },
}

impl StepProcess {
    fn pid(&self) -> Option<i32> {
        match self {
            StepProcess::Spawned(child) => child.id().map(|p| p as i32),
            StepProcess::Forked { pid, .. } => Some(*pid),
        }
    }

    /// The exit code, `None` when a signal ended it (or the fork server died).
    /// Cancel-safe; not to be awaited again once it has returned.
    async fn wait(&mut self) -> std::io::Result<Option<i32>> {
        match self {
            StepProcess::Spawned(child) => Ok(child.wait().await?.code()),
            StepProcess::Forked { end, idle, .. } => match end.await {
                Ok(ended) => {
                    *idle = ended.idle;
                    Ok(ended.code)
                }
                Err(_) => Ok(None),
            },
        }
    }

    /// SIGTERM first so Python can run its exit handlers (the runtime records the
    /// step as failed); SIGKILL if it has not gone after a grace period. Both go
    /// to the step's process group, so whatever it started stops too.
    async fn terminate(&mut self) {
        let grace = std::time::Duration::from_secs(3);
        if let Some(pid) = self.pid() {
            signal_group(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, self.wait()).await.is_err() {
            if let Some(pid) = self.pid() {
                signal_group(pid, libc::SIGKILL);
            }
            match self {
                StepProcess::Spawned(child) => {
                    let _ = child.kill().await;
                }
                StepProcess::Forked { .. } => {
                    let _ = tokio::time::timeout(grace, self.wait()).await;
                }
            }
        }
    }
}

fn signal_group(pid: i32, signal: libc::c_int) {
    // SAFETY: plain FFI call; a negative pid addresses the step's process group.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Copies a step's output to its log and, line by line, to the reporter. It reads
/// whatever the pipe holds at once (up to 64 KiB), so a step printing many short
/// lines costs one wake-up and one write per block, not per line; the log gets the
/// bytes as the step wrote them (invalid UTF-8 included).
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    log: PathBuf,
    step: String,
    is_stderr: bool,
    reporter: Arc<dyn Reporter>,
) {
    use std::io::Write;
    // Blocking writes to a local file, one per block read: cheaper than handing each
    // to tokio's blocking pool.
    let Ok(file) = std::fs::File::create(&log) else {
        // Still drain the pipe, or the step would block once it fills.
        let mut sink = vec![0u8; 1 << 16];
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 16, file);
    let mut block = vec![0u8; 1 << 16];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut block).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &block[..n];
        let _ = file.write_all(chunk);
        let mut start = 0;
        for (i, _) in chunk.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            let line = if partial.is_empty() {
                &chunk[start..i]
            } else {
                partial.extend_from_slice(&chunk[start..i]);
                &partial[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            reporter.step_output(&step, &String::from_utf8_lossy(line), is_stderr);
            partial.clear();
            start = i + 1;
        }
        partial.extend_from_slice(&chunk[start..]);
        // A "line" that never ends (a progress bar redrawn with `\r`) is passed on in
        // pieces rather than held whole.
        if partial.len() > 1 << 20 {
            reporter.step_output(&step, &String::from_utf8_lossy(&partial), is_stderr);
            partial.clear();
        }
        // The log stays current for `tail -f` and the dashboard.
        let _ = file.flush();
    }
    if !partial.is_empty() {
        reporter.step_output(&step, &String::from_utf8_lossy(&partial), is_stderr);
    }
    let _ = file.flush();
}

/// How long kale keeps reading a step's output after the step's process ended: what
/// it wrote last is still in the pipe, but a process the step started that inherited
/// the pipe (a TensorBoard, a data loader's worker) would keep it open for ever.
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The live processes of process group `group` other than `leader` (Linux: from
/// /proc; elsewhere none are found).
fn group_members(group: i32, leader: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != leader)
        .filter(|&pid| {
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
            pgrp == Some(group) && !matches!(state, Some("Z" | "X"))
        })
        .collect()
}

/// Whether a finished step may have left processes in its group, checked without
/// reading every process's /proc entry (that costs a millisecond and more per step):
/// the group is empty (the common case for a spawned step), or its only member is
/// the step's own process (a forked step on its way out, or waiting for the trial's
/// next step) with no child. A process that outlived its parent inside the group is
/// found this way only once the step's process is gone; one holding the step's
/// output is found anyway (the output does not end).
fn may_have_leftovers(group: i32) -> bool {
    // SAFETY: signal 0 only probes for existence.
    if unsafe { libc::kill(-group, 0) } != 0 {
        return false;
    }
    let leader_alive = std::fs::read_to_string(format!("/proc/{group}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            Some(!matches!(rest.split_whitespace().next(), Some("Z" | "X")))
        })
        .unwrap_or(false);
    if !leader_alive {
        return true;
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{group}/task")) else {
        return true;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("children"))
            .map(|c| !c.trim().is_empty())
            .unwrap_or(true)
    })
}

/// Ends the processes a finished step left in its group: SIGTERM, then SIGKILL for
/// those still there a moment later. Returns their pids.
async fn end_leftovers(group: i32, leader: i32) -> Vec<i32> {
    let left = group_members(group, leader);
    if left.is_empty() {
        return left;
    }
    for &pid in &left {
        // SAFETY: plain FFI calls on pids of the step's own group.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if group_members(group, leader).is_empty() {
            return left;
        }
    }
    for pid in group_members(group, leader) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    left
}

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Reads `error.json` and maps its innermost frame in the user's code to the notebook.
fn step_error(
    dir: &Path,
    line_map: &LineMap,
    sources: &BTreeMap<usize, String>,
    code: Option<i32>,
) -> StepError {
    let Some(err) = read_json(&dir.join("error.json")) else {
        let tail = std::fs::read_to_string(dir.join("stderr.log"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let message = match code {
            Some(c) => format!("the step's Python process exited with status {c}"),
            None => "the step's Python process was killed by a signal".to_string(),
        };
        return StepError {
            kind: "ProcessExit".into(),
            message: if tail.is_empty() {
                message
            } else {
                format!("{message}: {tail}")
            },
            cell: None,
            line: None,
            code: None,
            variable: None,
        };
    };
    let program = dir.join("program.py");
    let mut location = None;
    if let Some(frames) = err.get("frames").and_then(Value::as_array) {
        for frame in frames.iter().rev() {
            let file = frame.get("file").and_then(Value::as_str).unwrap_or("");
            let line = frame.get("line").and_then(Value::as_u64).unwrap_or(0) as u32;
            if let Some(cell) = file
                .strip_prefix("<cell ")
                .and_then(|r| r.strip_suffix('>'))
                .and_then(|n| n.parse::<usize>().ok())
            {
                location = Some((cell, line));
                break;
            }
            if Path::new(file) == program {
                if let Some(found) = line_map.locate(line) {
                    location = Some(found);
                }
                break;
            }
        }
    }
    let code_line = location.and_then(|(cell, line)| {
        sources
            .get(&cell)
            .and_then(|s| s.lines().nth(line.saturating_sub(1) as usize))
            .map(|l| l.trim().to_string())
    });
    StepError {
        kind: err
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Error")
            .to_string(),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        cell: location.map(|l| l.0),
        line: location.map(|l| l.1),
        code: code_line,
        variable: err
            .get("variable")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}
