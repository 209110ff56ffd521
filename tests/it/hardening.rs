//! Hostile notebooks and the signals real machines send: names that would become
//! paths, a dashboard asked for another host, tunes without a result, SIGTERM, SIGHUP
//! and closed pipes, processes a step leaves behind, FIFOs and devices given as
//! notebooks, a full standard output, integer ranges at the ends of i64, races and
//! losses of the experiment store, renames and plots that do not apply.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{C, kale, kale_with_python, python, succeed, write_notebook};

/// `kale tune NB --objective score ARGS...`, not waited for.
fn spawn_tune(nb: &Path, args: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
        .env("KALE_PYTHON", python())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .arg("tune")
        .arg(nb)
        .args(["--objective", "score"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `kale tune NB --objective score ARGS...`, which must succeed; its stdout.
fn tune_ok(nb: &Path, args: &[&str]) -> Vec<u8> {
    succeed(
        kale_with_python()
            .arg("tune")
            .arg(nb)
            .args(["--objective", "score"])
            .args(args),
    )
    .stdout
}

/// The binary as a plain `std::process::Command` (for descriptors of our own).
fn raw_kale() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"));
    cmd.env("KALE_PYTHON", python())
        .env_remove("KUBERNETES_SERVICE_HOST");
    cmd
}

/// Waits for `child` (at most `limit_s`, or it is killed and the test fails: a hang
/// is the bug these tests look for) and returns (exit code, stdout, stderr).
fn finish(mut child: Child, limit_s: u64, what: &str) -> (Option<i32>, String, String) {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed().as_secs() >= limit_s {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit_s}s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` every 50 ms until it gives something (at most `limit_s`, else the
/// child is killed and the test fails with `never`).
fn poll<T>(
    child: &mut Child,
    limit_s: u64,
    never: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        if started.elapsed().as_secs() >= limit_s {
            let _ = child.kill();
            panic!("{never}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn show(dir: &Path, name: &str) -> Option<Value> {
    let out = kale()
        .args(["experiments", "show", name, "--json", "-C"])
        .arg(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn trial_statuses(doc: &Value) -> Vec<String> {
    doc["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

fn quick(dir: &Path, kubeflow: Option<Value>) -> PathBuf {
    write_notebook(
        dir,
        "quick.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(&["step:score"], "score = -(x - 3) ** 2"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        kubeflow,
    )
}

/// A notebook whose one step sleeps `seconds` (so a trial is running when poked).
fn slow(dir: &Path, seconds: f64) -> PathBuf {
    write_notebook(
        dir,
        "slow.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(
                &["step:score"],
                &format!("time.sleep({seconds})\nscore = x"),
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

/// Every path under `dir`, `.kale/` excluded.
fn files_outside_kale(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".kale") {
                continue;
            }
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn names_from_a_notebook_or_a_flag_never_leave_kale() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    let nb = quick(
        &dir,
        Some(
            serde_json::json!({"pipeline_name": "../../../elsewhere/x", "experiment_name": "Some Experiment"}),
        ),
    );
    // validate says what the name becomes, where it came from, and how to fix it.
    let out = succeed(kale().arg("validate").arg(&nb));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "`kubeflow_notebook.pipeline_name` `../../../elsewhere/x` is not a DNS label"
        ) && stderr.contains("kale names the pipeline `elsewhere-x`")
            && stderr.contains("hint: set `pipeline_name` to `elsewhere-x`"),
        "{stderr}"
    );
    tune_ok(&nb, &["--param", "x=int:0..5", "--max-trials", "2"]);
    let doc = show(&dir, "elsewhere-x-1")
        .expect("the experiment is named after the normalised pipeline name");
    for t in doc["trials"].as_array().unwrap() {
        let run_dir = PathBuf::from(t["run_dir"].as_str().unwrap());
        let canonical = run_dir.canonicalize().unwrap();
        assert!(
            canonical.starts_with(dir.join(".kale/runs").canonicalize().unwrap()),
            "{}",
            canonical.display()
        );
    }
    // Nothing was made outside `.kale/`, here or above.
    assert_eq!(files_outside_kale(&dir), [nb.clone()]);
    assert_eq!(files_outside_kale(root.path()), [dir.clone(), nb.clone()]);

    // Names given on the command line are refused, located and with a hint.
    let long = "x".repeat(10_000);
    for bad in [
        "../../x",
        "",
        "a\nb",
        long.as_str(),
        "Big_Name",
        "a/b",
        "-x",
    ] {
        let out = kale_with_python()
            .arg("tune")
            .arg(&nb)
            .args(["--objective", "score", "--param", "x=int:0..5"])
            .arg(format!("--name={bad}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(
            stderr.contains("cannot name an experiment")
                && stderr.contains("hint: names are Kubernetes DNS labels"),
            "{stderr}"
        );
        assert!(
            stderr.len() < 2_000,
            "the error repeats a 10 KB name: {stderr}"
        );
    }
    let out = kale()
        .args(["experiments", "rename", "elsewhere-x-1", "../../y", "-C"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(files_outside_kale(root.path()), [dir.clone(), nb]);
    assert!(show(&dir, "elsewhere-x-1").is_some());
}

/// Sends `request` to the dashboard and returns the whole response.
fn http(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_dashboard_answers_only_for_its_own_host_with_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quick(dir.path(), None);
    tune_ok(
        &nb,
        &[
            "--param",
            "x=int:0..5",
            "--max-trials",
            "1",
            "--name",
            "web",
        ],
    );
    let mut server = std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
        .arg("dashboard")
        .arg(dir.path())
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    // The address ends in the notes token after `#`.
    let port: u16 = line
        .trim()
        .split('#')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let get = |host: &str| {
        http(
            port,
            &format!("GET /api/experiments HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    // DNS rebinding: a page of evil.example pointed its name at 127.0.0.1.
    for foreign in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.1.evil.example",
    ] {
        let r = get(foreign);
        assert!(r.starts_with("HTTP/1.1 421"), "{foreign}: {r}");
        assert!(!r.contains("\"web\""), "{r}");
    }
    let missing = http(port, "GET /api/experiments HTTP/1.0\r\n\r\n");
    assert!(
        missing.starts_with("HTTP/1.0 421") || missing.starts_with("HTTP/1.1 421"),
        "{missing}"
    );
    for own in [
        format!("127.0.0.1:{port}"),
        "localhost".into(),
        format!("[::1]:{port}"),
    ] {
        let r = get(&own);
        assert!(r.starts_with("HTTP/1.1 200"), "{own}: {r}");
        assert!(r.contains("\"web\""), "{r}");
        let lower = r.to_ascii_lowercase();
        for header in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
            "content-security-policy: default-src 'self'",
        ] {
            assert!(lower.contains(header), "{header} missing: {r}");
        }
    }
    // A client that never finishes its headers is let go (read_to_string returns once
    // the server closes; the 60 s read timeout is only a guard against a hang).
    let mut half = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let closed = half.read_to_end(&mut rest);
    assert!(
        closed.is_ok()
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the half-open connection was held: {closed:?}"
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_tune_in_which_no_trial_succeeded_failed_with_the_most_common_reason() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "broken.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(&["step:score"], "import no_such_module_anywhere\nscore = x"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    // Fewer trials than failures allowed: Katib's rules alone would say succeeded.
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--param",
            "x=int:0..5",
            "--max-trials",
            "2",
            "--max-failed",
            "5",
            "--name",
            "broken",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["best"], Value::Null);
    let reason = doc["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no trial succeeded; all 2 failed trials: step `score` failed at cell 2, line 1: ModuleNotFoundError"),
        "{reason}"
    );
    assert!(
        stderr.contains("experiment broken failed: no trial succeeded"),
        "{stderr}"
    );
    assert_eq!(
        show(dir.path(), "broken").unwrap()["experiment"]["status"],
        "failed"
    );
}

#[test]
fn sigterm_and_sighup_end_a_tune_as_ctrl_c_does() {
    for (signal, status, name) in [(libc::SIGTERM, 143, "term"), (libc::SIGHUP, 129, "hup")] {
        let dir = tempfile::tempdir().unwrap();
        let nb = slow(dir.path(), 60.0);
        let mut tune = spawn_tune(
            &nb,
            &[
                "--param",
                "x=int:0..5",
                "--max-trials",
                "3",
                "--parallel",
                "2",
                "--name",
                name,
            ],
        );
        poll(&mut tune, 120, "no trial started", || {
            show(dir.path(), name).filter(|d| trial_statuses(d).iter().any(|s| s == "running"))
        });
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(tune.id() as i32, signal) };
        let (code, _, stderr) = finish(tune, 60, name);
        assert_eq!(code, Some(status), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "resume with: kale tune {} --name {name} --resume",
                nb.display()
            )),
            "{stderr}"
        );
        let doc = show(dir.path(), name).unwrap();
        assert_eq!(doc["experiment"]["status"], "interrupted");
        let statuses = trial_statuses(&doc);
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| s == "interrupted"),
            "{statuses:?}"
        );
    }
}

#[test]
fn a_closed_stderr_pipe_does_not_end_a_tune() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "chatty.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(
                &["step:score"],
                "for i in range(200):\n    print('line', i)\nscore = x",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let kale_bin = assert_cmd::cargo::cargo_bin("kale");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' tune '{}' --objective score --param x=int:0..9 --max-trials 4 --parallel 1 --name piped 2>&1 | head -1",
            kale_bin.display(),
            nb.display()
        ))
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let doc = show(dir.path(), "piped").unwrap();
    assert_eq!(doc["experiment"]["status"], "succeeded");
    assert_eq!(trial_statuses(&doc), ["succeeded"; 4]);
}

#[test]
fn an_experiment_whose_process_is_gone_shows_interrupted_and_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let nb = slow(dir.path(), 60.0);
    let mut tune = spawn_tune(
        &nb,
        &[
            "--param",
            "x=int:0..5",
            "--max-trials",
            "2",
            "--name",
            "gone",
        ],
    );
    poll(&mut tune, 120, "no trial started", || {
        show(dir.path(), "gone").filter(|d| trial_statuses(d).iter().any(|s| s == "running"))
    });
    tune.kill().unwrap(); // SIGKILL: nothing is recorded
    tune.wait().unwrap();
    let out = succeed(
        kale()
            .args(["experiments", "list", "--json", "-C"])
            .arg(dir.path()),
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["status"], "interrupted");
    let reason = list[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("is gone") && reason.contains("--name gone --resume"),
        "{reason}"
    );
    let listed = succeed(kale().args(["experiments", "list", "-C"]).arg(dir.path()));
    let note = String::from_utf8_lossy(&listed.stderr);
    assert!(
        note.contains("note: experiment gone: its kale process (pid") && note.contains("--resume"),
        "{note}"
    );
    let table = succeed(
        kale()
            .args(["experiments", "show", "gone", "-C"])
            .arg(dir.path()),
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains("--resume"));
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        !matches!(state, Some(Some('Z' | 'X')))
    })
}

#[test]
fn processes_a_step_leaves_behind_end_with_it_and_never_hang_it() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "leftover.ipynb",
        &[
            C::Code(
                &["step:start"],
                "import subprocess, sys\n\
                 server = subprocess.Popen([sys.executable, '-c', 'import time; print(\"serving\", flush=True); time.sleep(600)'])\n\
                 quiet = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
                 open('pids.txt', 'w').write(f'{server.pid} {quiet.pid}')\n\
                 score = 1",
            ),
            C::Code(&["step:after", "prev:start"], "score2 = score + 1"),
            C::Code(&["pipeline-metrics"], "print(score2)"),
        ],
        None,
    );
    for fork_server in ["1", "0"] {
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
            .env("KALE_PYTHON", python())
            .env("KALE_FORK_SERVER", fork_server)
            .arg("run")
            .arg(&nb)
            .args(["--json", "--no-cache"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The server holds the step's stdout for 600 s: the run must not wait for it.
        let (code, stdout, stderr) = finish(child, 120, "kale run with a step's server left");
        assert_eq!(code, Some(0), "{stderr}");
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let pids: Vec<i32> = std::fs::read_to_string(dir.path().join("pids.txt"))
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        // Ended (SIGTERM, then SIGKILL), then reaped by whoever inherited them.
        let started = Instant::now();
        while pids.iter().any(|&p| alive(p)) && started.elapsed().as_secs() < 30 {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(pids.iter().all(|&p| !alive(p)), "left running: {pids:?}");
        let log = std::fs::read_to_string(
            Path::new(doc["run_dir"].as_str().unwrap()).join("steps/start/stderr.log"),
        )
        .unwrap();
        assert!(
            log.contains("kale: the step ended, leaving 2 processes it started running")
                && log.contains(&format!("{}", pids[0])),
            "{log}"
        );
        assert!(stderr.contains("kale ended them"), "{stderr}");
        let out = std::fs::read_to_string(
            Path::new(doc["run_dir"].as_str().unwrap()).join("steps/start/stdout.log"),
        )
        .unwrap();
        assert!(out.contains("serving"), "{out}");
    }
}

#[test]
fn a_fifo_or_a_device_given_as_the_notebook_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.ipynb");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: plain FFI call with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for (path, what) in [
        (fifo.as_path(), "a named pipe (FIFO), not a regular file"),
        (Path::new("/dev/zero"), "a device, not a regular file"),
        (dir.path(), "a directory, not a regular file"),
    ] {
        for command in ["validate", "inspect", "run"] {
            let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
                .arg(command)
                .arg(path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (code, _, stderr) = finish(child, 60, "kale reading a FIFO or device");
            assert_eq!(code, Some(2), "{command} {}: {stderr}", path.display());
            assert!(stderr.contains(what), "{stderr}");
            assert!(stderr.contains("hint:"), "{stderr}");
        }
    }
}

/// A pipe whose reading end is already closed: every write gets EPIPE.
fn closed_pipe() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: as above; the reading end is dropped at once.
    unsafe {
        drop(std::os::fd::OwnedFd::from_raw_fd(fds[0]));
        std::os::fd::OwnedFd::from_raw_fd(fds[1])
    }
}

#[test]
fn a_full_standard_output_is_an_environment_error_and_a_closed_one_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quick(dir.path(), None);
    tune_ok(
        &nb,
        &[
            "--param",
            "x=int:0..5",
            "--max-trials",
            "1",
            "--name",
            "out",
        ],
    );
    let d = dir.path().to_str().unwrap();
    let nbs = nb.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["runs", "list", "-C", d],
        vec!["inspect", nbs],
        vec!["inspect", nbs, "--json"],
        vec!["experiments", "list", "-C", d],
        vec!["experiments", "show", "out", "-C", d],
        vec!["cache", "stats", "-C", d],
        vec!["run", nbs, "--json"],
        vec!["run", nbs, "--events", "-"],
        vec!["run", nbs],
        vec![
            "tune",
            nbs,
            "--objective",
            "score",
            "--param",
            "x=int:0..5",
            "--max-trials",
            "1",
            "--json",
        ],
        vec!["compile", nbs, "--target", "kfp"],
    ];
    for args in &commands {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = raw_kale().args(args).stdout(full).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: cannot write to standard output: No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");

        let out = raw_kale()
            .args(args)
            .stdout(Stdio::from(closed_pipe()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("error") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    // Standard error on a full disk: the command's messages are lost, so it does not
    // claim success.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = raw_kale()
        .arg("validate")
        .arg(&nb)
        .stderr(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn integer_ranges_are_counted_and_drawn_exactly_up_to_i64() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "ints.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(&["step:score"], "score = x % 1000"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    // The last 8 values of i64: auto counts 8 points and grid-searches all of them.
    let top = i64::MAX - 7;
    let out = tune_ok(
        &nb,
        &[
            "--param",
            &format!("x=int:{top}..{}", i64::MAX),
            "--max-trials",
            "20",
            "--name",
            "top",
            "--json",
        ],
    );
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["reason"], "search space exhausted");
    let mut xs: Vec<i64> = doc["trial_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["params"]["x"].as_i64().unwrap())
        .collect();
    xs.sort();
    assert_eq!(xs, (top..=i64::MAX).collect::<Vec<_>>());
    // Random draws over all of i64 are integers, not doubles rounded to 2^10.
    let out = tune_ok(
        &nb,
        &[
            "--param",
            &format!("x=int:{}..{}", i64::MIN, i64::MAX),
            "--algorithm",
            "random",
            "--max-trials",
            "6",
            "--name",
            "wide",
            "--json",
        ],
    );
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let xs: Vec<i64> = doc["trial_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["params"]["x"].as_i64().unwrap())
        .collect();
    assert_eq!(xs.len(), 6);
    assert!(xs.iter().any(|x| x % 1024 != 0), "{xs:?}");
    // Beyond i64: refused before anything is recorded.
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--param",
            "x=int:0..18446744073709551615",
            "--name",
            "huge",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("beyond the 64-bit integers"), "{stderr}");
    assert!(show(dir.path(), "huge").is_none());
}

#[test]
fn two_tunes_given_the_same_name_at_once_get_the_ordinary_message() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quick(dir.path(), None);
    let tunes: Vec<Child> = (0..5)
        .map(|_| {
            spawn_tune(
                &nb,
                &[
                    "--param",
                    "x=int:0..5",
                    "--max-trials",
                    "1",
                    "--name",
                    "race",
                ],
            )
        })
        .collect();
    let mut ok = 0;
    for t in tunes {
        let (code, _, stderr) = finish(t, 120, "racing tunes");
        match code {
            Some(0) => ok += 1,
            Some(2) => assert!(
                stderr.contains("an experiment named `race` already exists"),
                "{stderr}"
            ),
            other => panic!("exit {other:?}: {stderr}"),
        }
        assert!(!stderr.contains("UNIQUE"), "{stderr}");
    }
    assert_eq!(ok, 1);
}

#[test]
fn a_store_deleted_under_a_tune_is_reported_not_lost_silently() {
    let dir = tempfile::tempdir().unwrap();
    let nb = slow(dir.path(), 0.3);
    let mut tune = spawn_tune(
        &nb,
        &[
            "--param",
            "x=int:0..50",
            "--algorithm",
            "random",
            "--max-trials",
            "40",
            "--parallel",
            "1",
            "--name",
            "lost",
        ],
    );
    poll(&mut tune, 120, "no trial finished", || {
        show(dir.path(), "lost").filter(|d| trial_statuses(d).iter().any(|s| s == "succeeded"))
    });
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!(".kale/kale.db{suffix}")));
    }
    let (code, _, stderr) = finish(tune, 120, "a tune whose store was deleted");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(".kale/kale.db was deleted or replaced while kale was writing to it"),
        "{stderr}"
    );
    assert!(
        !dir.path().join(".kale/kale.db").exists(),
        "an empty store was made in its place"
    );
}

#[test]
fn disk_errors_name_the_path_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    // A step whose write the disk refuses (what a full disk raises in Python).
    let nb = write_notebook(
        dir.path(),
        "full.ipynb",
        &[C::Code(
            &["step:save"],
            "import errno, os\nraise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'model.bin')",
        )],
        None,
    );
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("hint: free space"),
        "{stderr}"
    );
    // kale's own records cannot be written: the error says where.
    let other = tempfile::tempdir().unwrap();
    let nb = quick(other.path(), None);
    std::fs::create_dir(other.path().join(".kale")).unwrap();
    std::fs::write(other.path().join(".kale/runs"), "not a directory").unwrap();
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(".kale/runs/"), "{stderr}");
}

#[test]
fn a_rename_carries_over_to_runs_and_plots_that_do_not_apply_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quick(dir.path(), None);
    tune_ok(
        &nb,
        &[
            "--param",
            "x=int:0..5",
            "--max-trials",
            "2",
            "--name",
            "old",
        ],
    );
    succeed(
        kale()
            .args(["experiments", "rename", "old", "new", "-C"])
            .arg(dir.path()),
    );
    let out = succeed(
        kale()
            .args(["runs", "show", "new/1", "--json", "-C"])
            .arg(dir.path()),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["experiment"], "new", "{doc:#}");
    let out = kale()
        .args(["runs", "show", "old/1", "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = succeed(kale().args(["runs", "list", "-C"]).arg(dir.path()));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("new/0") && !listed.contains("old/"),
        "{listed}"
    );
    succeed(
        kale()
            .args(["debug", "new/1", "score", "-C"])
            .arg(dir.path()),
    );

    let plot = dir.path().join("front.svg");
    let out = kale()
        .args(["experiments", "plot", "new", "--kind", "pareto", "-o"])
        .arg(&plot)
        .args(["-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has one objective") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!plot.exists());
}

#[test]
fn step_output_is_logged_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "bytes.ipynb",
        &[
            C::Code(
                &["step:loud"],
                "import sys\n\
                 for i in range(20000):\n    print('line', i)\n\
                 sys.stdout.flush()\n\
                 sys.stdout.buffer.write(b'\\xff\\xfe not utf-8\\r\\nno newline at the end')\n\
                 sys.stdout.flush()\n\
                 score = 1",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, doc, stderr) = crate::support::run_json(&nb, &["--no-cache"]);
    assert_eq!(code, 0, "{stderr}");
    let log =
        std::fs::read(Path::new(doc["run_dir"].as_str().unwrap()).join("steps/loud/stdout.log"))
            .unwrap();
    let mut want = Vec::new();
    for i in 0..20000 {
        want.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    want.extend_from_slice(b"\xff\xfe not utf-8\r\nno newline at the end");
    assert!(
        log.starts_with(&want),
        "the log differs from what the step wrote"
    );
}
