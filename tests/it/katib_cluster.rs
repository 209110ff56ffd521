//! `kale tune --katib` and `kale experiments list --katib` against a Kubernetes API
//! server on loopback, through a real kubeconfig and real HTTP.
//!
//! The stateful server is kmock's `KubernetesEmulator` (PyPI `kmock`, venv made by
//! `scripts/kmock-env`; `.ci/run` exports `KALE_KMOCK_PYTHON`): it stores what kale
//! creates, answers 409 on a taken name, 404 for a resource nobody declared (Katib not
//! installed), and streams watch events. The test plays Katib's part by creating Trials
//! with the experiment label and patching their status and the Experiment's, while the
//! real `kale` binary watches. A 403 needs no state, so a few lines of std::net serve it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kubeflow_kfp::{FakeKfp, Script};
use crate::support::{C, write_notebook};

const NS: &str = "team-a";
const KATIB: &str = "/apis/kubeflow.org/v1beta1/namespaces/team-a";

fn kmock_python() -> String {
    if let Ok(p) = std::env::var("KALE_KMOCK_PYTHON")
        && !p.is_empty()
    {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-kmock/bin/python");
    assert!(
        venv.exists(),
        "kmock is missing: run scripts/kmock-env (or .ci/run), or set KALE_KMOCK_PYTHON"
    );
    venv.display().to_string()
}

const SERVE: &str = r#"
import asyncio, sys, kmock
async def main():
    k = kmock.KubernetesEmulator()
    k.resources['v1/pods'] = kmock.ResourceInfo(kind='Pod', namespaced=True)
    if sys.argv[1] == "katib":
        k.resources['kubeflow.org/v1beta1/experiments'] = kmock.ResourceInfo(kind='Experiment', namespaced=True)
        k.resources['kubeflow.org/v1beta1/trials'] = kmock.ResourceInfo(kind='Trial', namespaced=True)
    async with k, kmock.Server(k) as srv:
        print(srv.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"#;

/// A kmock API server; it stops when the test drops it (or when stdin closes, should
/// the test process die first).
struct Kube {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Kube {
    fn start(with_katib: bool) -> Kube {
        let mut child = Command::new(kmock_python())
            .arg("-c")
            .arg(SERVE)
            .arg(if with_katib { "katib" } else { "bare" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kmock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("kmock printed no port");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Kube {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent,
        }
    }

    fn finish(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        Self::finish(
            self.agent
                .get(format!("{}{path}", self.url))
                .call()
                .unwrap(),
        )
    }

    fn create(&self, plural: &str, obj: Value) {
        let (status, body) = Self::finish(
            self.agent
                .post(format!("{}{KATIB}/{plural}", self.url))
                .send_json(&obj)
                .unwrap(),
        );
        assert!(status < 300, "create {plural}: {status} {body}");
    }

    /// A merge patch of the status subresource, as Katib's controllers write it.
    fn patch_status(&self, plural: &str, name: &str, status: Value) {
        let (code, body) = Self::finish(
            self.agent
                .patch(format!("{}{KATIB}/{plural}/{name}/status", self.url))
                .header("Content-Type", "application/merge-patch+json")
                .send(json!({ "status": status }).to_string())
                .unwrap(),
        );
        assert!(code < 300, "patch {plural}/{name}: {code} {body}");
    }

    fn experiment(&self, name: &str) -> Option<Value> {
        match self.get(&format!("{KATIB}/experiments/{name}")) {
            (200, v) => Some(v),
            _ => None,
        }
    }

    fn wait_for_experiment(&self, name: &str, kale: &mut Kale) -> Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.experiment(name) {
                return v;
            }
            if let Some(status) = kale.child.try_wait().unwrap() {
                panic!(
                    "kale exited ({status}) before creating {name}:\n{}",
                    kale.stderr()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no experiment {name}:\n{}",
                kale.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn trial(&self, experiment: &str, name: &str, created: &str, lr: &str) {
        self.create(
            "trials",
            json!({
                "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": created,
                             "labels": {"katib.kubeflow.org/experiment": experiment}},
                "spec": {"parameterAssignments": [{"name": "lr", "value": lr}]},
            }),
        );
        self.patch_status(
            "trials",
            name,
            json!({"startTime": created, "conditions": [
                {"type": "Created", "status": "True", "reason": "TrialCreated"},
                {"type": "Running", "status": "True", "reason": "TrialRunning"}]}),
        );
    }

    fn trial_succeeded(&self, name: &str, finished: &str, score: &str) {
        self.patch_status(
            "trials",
            name,
            json!({"completionTime": finished,
                   "conditions": [
                       {"type": "Created", "status": "True", "reason": "TrialCreated"},
                       {"type": "Running", "status": "False", "reason": "TrialRunning"},
                       {"type": "Succeeded", "status": "True", "reason": "TrialSucceeded"}],
                   "observation": {"metrics": [{"name": "score", "latest": score, "min": score, "max": score}]}}),
        );
    }

    fn trial_failed(&self, name: &str, finished: &str) {
        self.patch_status(
            "trials",
            name,
            json!({"completionTime": finished,
                   "conditions": [
                       {"type": "Created", "status": "True", "reason": "TrialCreated"},
                       {"type": "Running", "status": "False", "reason": "TrialRunning"},
                       {"type": "Failed", "status": "True", "reason": "TrialFailed",
                        "message": "Trial has failed. Job message: Job has reached the specified backoff limit"}]}),
        );
    }

    fn experiment_succeeded(&self, name: &str, best: &str, lr: &str, score: &str) {
        self.patch_status(
            "experiments",
            name,
            json!({
                "startTime": "2026-11-22T10:00:00Z",
                "completionTime": "2026-11-22T10:02:00Z",
                "conditions": [
                    {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                    {"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                    {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                     "message": "Experiment has succeeded because max trial count has reached"}],
                "trials": 2, "trialsSucceeded": 1, "trialsFailed": 1,
                "currentOptimalTrial": {
                    "bestTrialName": best,
                    "parameterAssignments": [{"name": "lr", "value": lr}],
                    "observation": {"metrics": [{"name": "score", "latest": score, "min": score, "max": score}]},
                },
            }),
        );
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubeconfig with a token user. `current` names the context kale uses by default;
/// `contexts` maps context names to server URLs.
fn kubeconfig(dir: &Path, current: &str, contexts: &[(&str, &str)]) -> PathBuf {
    let clusters: Vec<Value> = contexts
        .iter()
        .map(|(n, url)| json!({"name": n, "cluster": {"server": url}}))
        .collect();
    let ctxs: Vec<Value> = contexts
        .iter()
        .map(|(n, _)| json!({"name": n, "context": {"cluster": n, "user": "tester", "namespace": NS}}))
        .collect();
    let doc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": clusters, "contexts": ctxs, "current-context": current,
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

fn notebook(dir: &Path) -> PathBuf {
    write_notebook(
        dir,
        "sweep.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "lr = 0.1"),
            C::Code(&["step:train"], "score = 1 - lr"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

/// The real kale binary with a clean Kubernetes environment.
fn kale_cmd(home: &Path, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kale"));
    cmd.env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KF_PIPELINES_ENDPOINT")
        .env_remove("KALE_TRIAL_IMAGE");
    cmd
}

const SEARCH: &[&str] = &[
    "--objective",
    "score",
    "--param",
    "lr=double:0.01..0.5",
    "--max-trials",
    "2",
    "--parallel",
    "1",
    "--max-failed",
    "1",
    "--trial-image",
    "registry.example/kale:test",
];

/// A running kale whose output is collected as it comes.
struct Kale {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

impl Kale {
    fn spawn(mut cmd: Command) -> Kale {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Kale {
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for_stderr(&mut self, text: &str) {
        let start = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "kale exited before printing `{text}`:\n{}",
                self.stderr()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no `{text}` in:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(mut self) -> (ExitStatus, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            // Long enough for the end-to-end test's trials, which run real pipelines.
            if start.elapsed() > Duration::from_secs(300) {
                let _ = self.child.kill();
                panic!("kale did not finish:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the readers drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        let out = self.stdout.lock().unwrap().clone();
        (status, out, self.stderr())
    }
}

impl Drop for Kale {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn tune_katib_uploads_creates_and_follows_the_trials_to_the_best() {
    let kube = Kube::start(true);
    let kfp = FakeKfp::start(Script {
        spec: json!({"pipelineInfo": {"name": "sweep"}}),
        final_state: "SUCCEEDED",
        metrics: json!({}),
        pipeline_exists: false,
        refuse_with: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    let mut cmd = kale_cmd(dir.path(), &cfg);
    cmd.arg("tune")
        .arg(&nb)
        .args(["--katib", "--name", "sweep-lr", "--json", "--kfp-endpoint"])
        .arg(&kfp.url)
        .args(SEARCH);
    let mut kale = Kale::spawn(cmd);

    let exp = kube.wait_for_experiment("sweep-lr", &mut kale);
    // The Experiment kale created is the one `kale compile --target katib` writes, pinned
    // to the pipeline version it uploaded first.
    assert_eq!(exp["kind"], "Experiment");
    assert_eq!(exp["spec"]["objective"]["objectiveMetricName"], "score");
    assert_eq!(exp["spec"]["maxTrialCount"], 2);
    let container =
        &exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/kale:test");
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(command.contains(&"--pipeline-id=p-1"), "{command:?}");
    assert!(command.contains(&"--pipeline-version=v-1"), "{command:?}");
    assert_eq!(
        kfp.find("POST", "/apis/v2beta1/pipelines/upload").len(),
        1,
        "the pipeline is uploaded once"
    );
    kale.wait_for_stderr("watching;");

    // Katib's part: two trials, one succeeds and one fails, then the experiment ends.
    kube.trial(
        "sweep-lr",
        "sweep-lr-x7k2p9qd",
        "2026-11-22T10:00:05Z",
        "0.25",
    );
    kube.trial_succeeded("sweep-lr-x7k2p9qd", "2026-11-22T10:00:45Z", "0.75");
    kale.wait_for_stderr("sweep-lr-x7k2p9qd");
    kube.trial(
        "sweep-lr",
        "sweep-lr-a1b2c3d4",
        "2026-11-22T10:01:00Z",
        "0.4",
    );
    kube.trial_failed("sweep-lr-a1b2c3d4", "2026-11-22T10:01:30Z");
    // A trial of another experiment in the namespace stays out of the view.
    kube.trial("other", "other-zzzzzzzz", "2026-11-22T10:00:00Z", "0.1");
    kube.experiment_succeeded("sweep-lr", "sweep-lr-x7k2p9qd", "0.25", "0.75");

    let (status, stdout, stderr) = kale.finish();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains("created Katib experiment sweep-lr in namespace team-a"),
        "{stderr}"
    );
    // The lines local tuning prints, with Katib's trial name after them.
    let ok = format!(
        "trial   1  {:<22}  lr=0.25  40.0s  sweep-lr-x7k2p9qd",
        "score=0.750000"
    );
    assert!(stderr.contains(&ok), "{stderr}");
    let failed = format!(
        "trial   2  {:<22}  lr=0.4  30.0s  — Trial has failed.",
        "failed"
    );
    assert!(stderr.contains(&failed), "{stderr}");
    assert!(!stderr.contains("other-zzzzzzzz"), "{stderr}");
    assert!(
        stderr.contains(
            "experiment sweep-lr succeeded: max trials reached — 1 succeeded, 1 failed, 120.0s"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("best: trial 1 (sweep-lr-x7k2p9qd) score=0.75 with lr=0.25"),
        "{stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        doc,
        json!({
            "experiment": "sweep-lr",
            "namespace": "team-a",
            "status": "succeeded",
            "reason": "max trials reached",
            "best": {"trial": "sweep-lr-x7k2p9qd", "number": 1, "params": {"lr": 0.25}, "metrics": {"score": 0.75}},
            "trials": {"total": 2, "succeeded": 1, "failed": 1, "early_stopped": 0, "running": 0},
        })
    );
}

#[test]
fn ctrl_c_detaches_and_resume_reattaches() {
    let kube = Kube::start(true);
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    let mut cmd = kale_cmd(dir.path(), &cfg);
    // A given pipeline id skips the upload: no KFP needed.
    cmd.arg("tune")
        .arg(&nb)
        .args(["--katib", "--name", "sweep-bg", "--pipeline-id", "p-9"])
        .args(SEARCH);
    let mut kale = Kale::spawn(cmd);
    kube.wait_for_experiment("sweep-bg", &mut kale);
    kale.wait_for_stderr("watching;");
    kube.trial(
        "sweep-bg",
        "sweep-bg-first000",
        "2026-11-22T10:00:05Z",
        "0.25",
    );
    kube.trial_succeeded("sweep-bg-first000", "2026-11-22T10:00:15Z", "0.75");
    kale.wait_for_stderr("sweep-bg-first000");

    unsafe { libc::kill(kale.child.id() as i32, libc::SIGINT) };
    let (status, _, stderr) = kale.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("detached; the experiment keeps running on the cluster"),
        "{stderr}"
    );
    let reattach = format!(
        "reattach with: kale tune {} --katib --name sweep-bg -n team-a --resume",
        nb.display()
    );
    assert!(stderr.contains(&reattach), "{stderr}");
    assert!(
        kube.experiment("sweep-bg").is_some(),
        "detaching deletes nothing"
    );

    let mut cmd = kale_cmd(dir.path(), &cfg);
    cmd.arg("tune").arg(&nb).args([
        "--katib", "--name", "sweep-bg", "-n", NS, "--resume", "--json",
    ]);
    let mut kale = Kale::spawn(cmd);
    kale.wait_for_stderr("reattaching to Katib experiment sweep-bg");
    // The trial that finished while detached is shown again on reattach.
    kale.wait_for_stderr("sweep-bg-first000");
    kube.trial(
        "sweep-bg",
        "sweep-bg-second00",
        "2026-11-22T10:00:20Z",
        "0.4",
    );
    kube.trial_succeeded("sweep-bg-second00", "2026-11-22T10:00:50Z", "0.6");
    kube.experiment_succeeded("sweep-bg", "sweep-bg-first000", "0.25", "0.75");
    let (status, stdout, stderr) = kale.finish();
    assert!(status.success(), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["best"]["trial"], "sweep-bg-first000");
    assert_eq!(doc["best"]["metrics"]["score"], 0.75);
    assert!(stderr.contains("trial   2  score=0.600000"), "{stderr}");
}

#[test]
fn a_taken_name_a_missing_experiment_and_a_bad_objective_are_refused() {
    let kube = Kube::start(true);
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    kube.create(
        "experiments",
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
               "metadata": {"name": "taken", "namespace": NS}, "spec": {}}),
    );

    let out = kale_cmd(dir.path(), &cfg)
        .arg("tune")
        .arg(&nb)
        .args(["--katib", "--name", "taken", "--pipeline-id", "p-9"])
        .args(SEARCH)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: experiment `taken` already exists in namespace `team-a`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "pick another name with --name, or watch the existing one with `--name taken --resume`"
        ),
        "{stderr}"
    );

    let out = kale_cmd(dir.path(), &cfg)
        .arg("tune")
        .arg(&nb)
        .args(["--katib", "--name", "nothere", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no experiment `nothere` in namespace `team-a`"),
        "{stderr}"
    );

    let out = kale_cmd(dir.path(), &cfg)
        .arg("tune")
        .arg(&nb)
        .args(["--katib", "--objective", "accuracy", "--pipeline-id", "p-9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("accuracy"), "{stderr}");
    // Katib's own rules too: more failures allowed than trials.
    let out = kale_cmd(dir.path(), &cfg)
        .arg("tune")
        .arg(&nb)
        .args([
            "--katib",
            "--objective",
            "score",
            "--param",
            "lr=double:0.01..0.5",
        ])
        .args(["--max-trials", "2", "--parallel", "1", "--max-failed", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("failed trials allowed (3) exceed the total number of trials (2)"),
        "{stderr}"
    );
    let (_, list) = kube.get(&format!("{KATIB}/experiments"));
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing was created: {list}"
    );
}

#[test]
fn default_names_are_numbered_past_the_taken_ones() {
    let kube = Kube::start(true);
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    kube.create(
        "experiments",
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
               "metadata": {"name": "sweep-1", "namespace": NS}, "spec": {}}),
    );
    let mut cmd = kale_cmd(dir.path(), &cfg);
    cmd.arg("tune")
        .arg(&nb)
        .args(["--katib", "--pipeline-id", "p-9"])
        .args(SEARCH);
    let mut kale = Kale::spawn(cmd);
    kube.wait_for_experiment("sweep-2", &mut kale);
    kale.wait_for_stderr("watching;");
    unsafe { libc::kill(kale.child.id() as i32, libc::SIGINT) };
    let (status, _, stderr) = kale.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("--name sweep-2 -n team-a --resume"),
        "{stderr}"
    );
}

#[test]
fn experiments_list_katib_shows_status_counts_and_best() {
    let kube = Kube::start(true);
    let dir = tempfile::tempdir().unwrap();
    // The current context points nowhere: --context picks the one that works.
    let closed = closed_port_url();
    let cfg = kubeconfig(
        dir.path(),
        "stale",
        &[("stale", &closed), ("lab", &kube.url)],
    );
    let spec = json!({"objective": {"type": "maximize", "objectiveMetricName": "score"},
                      "algorithm": {"algorithmName": "random"}, "maxTrialCount": 2,
                      "parameters": [{"name": "lr", "parameterType": "double"}]});
    for name in ["sweep-done", "sweep-live"] {
        kube.create(
            "experiments",
            json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                   "metadata": {"name": name, "namespace": NS}, "spec": spec}),
        );
    }
    kube.experiment_succeeded("sweep-done", "sweep-done-aaaa", "0.25", "0.75");
    kube.patch_status(
        "experiments",
        "sweep-live",
        json!({"conditions": [{"type": "Running", "status": "True", "reason": "ExperimentRunning"}],
               "trials": 1, "trialsRunning": 1}),
    );

    let out = kale_cmd(dir.path(), &cfg)
        .args(["experiments", "list", "--katib", "--context", "lab"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("EXPERIMENT"), "{stdout}");
    assert!(
        lines[1].contains("sweep-done")
            && lines[1].contains("succeeded")
            && lines[1].contains("max score")
            && lines[1].contains("2/2 (1✗)")
            && lines[1].contains("0.750000")
            && lines[1].contains("random"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("sweep-live") && lines[2].contains("running") && lines[2].contains("1/2"),
        "{stdout}"
    );

    let out = kale_cmd(dir.path(), &cfg)
        .args([
            "experiments",
            "list",
            "--katib",
            "--context",
            "lab",
            "--json",
        ])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["name"], "sweep-done");
    assert_eq!(doc[0]["best"], 0.75);
    assert_eq!(doc[0]["best_trial"], "sweep-done-aaaa");
    assert_eq!(doc[1]["status"], "running");
    assert_eq!(doc[1]["running"], 1);

    // Another namespace has none.
    let out = kale_cmd(dir.path(), &cfg)
        .args([
            "experiments",
            "list",
            "--katib",
            "--context",
            "lab",
            "-n",
            "elsewhere",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no Katib experiments in namespace elsewhere"
    );
}

fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// Answers every request with a Kubernetes 403 Status, as RBAC does.
fn forbidding_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || answer_forbidden(&mut stream));
        }
    });
    url
}

fn answer_forbidden(stream: &mut TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "experiments.kubeflow.org is forbidden: User \"system:serviceaccount:team-a:default\" cannot list resource \"experiments\" in API group \"kubeflow.org\" in the namespace \"team-a\"",
        "reason": "Forbidden", "details": {"group": "kubeflow.org", "kind": "experiments"}, "code": 403,
    })
    .to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn tune_katib_error(dir: &Path, cfg: &Path, extra: &[&str]) -> String {
    let nb = notebook(dir);
    let out = kale_cmd(dir, cfg)
        .arg("tune")
        .arg(&nb)
        .args(["--katib", "--pipeline-id", "p-9"])
        .args(SEARCH)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn cluster_problems_are_explained() {
    let dir = tempfile::tempdir().unwrap();

    // Katib not installed: the API server has no experiments resource.
    let bare = Kube::start(false);
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &bare.url)]);
    let stderr = tune_katib_error(dir.path(), &cfg, &[]);
    assert!(
        stderr.contains(&format!(
            "error: Katib is not installed in this cluster (no kubeflow.org/v1beta1 experiments at {})",
            bare.url
        )),
        "{stderr}"
    );
    assert!(stderr.contains("install Katib 0.18 or newer"), "{stderr}");
    let out = kale_cmd(dir.path(), &cfg)
        .args(["experiments", "list", "--katib"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Katib is not installed"));

    // RBAC refuses.
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &forbidding_server())]);
    let stderr = tune_katib_error(dir.path(), &cfg, &[]);
    assert!(
        stderr.contains("error: forbidden: cannot list experiments.kubeflow.org in namespace `team-a`: experiments.kubeflow.org is forbidden: User"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "a Role granting `list` on `experiments` (apiGroup kubeflow.org) in `team-a`"
        ),
        "{stderr}"
    );

    // Nothing listens.
    let closed = closed_port_url();
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &closed)]);
    let stderr = tune_katib_error(dir.path(), &cfg, &[]);
    assert!(
        stderr.contains(&format!(
            "error: cannot reach the Kubernetes API server at {closed}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );

    // An unknown context.
    let stderr = tune_katib_error(dir.path(), &cfg, &["--context", "nope"]);
    assert!(
        stderr.contains("error: cannot use the kubeconfig"),
        "{stderr}"
    );
    assert!(stderr.contains("nope"), "{stderr}");

    // No kubeconfig at all, and not in a pod.
    let stderr = tune_katib_error(dir.path(), Path::new("/nonexistent/kubeconfig"), &[]);
    assert!(
        stderr.contains(
            "error: no Kubernetes configuration: cannot read KUBECONFIG=/nonexistent/kubeconfig"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("not running inside a cluster (KUBERNETES_SERVICE_HOST is not set)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: point $KUBECONFIG at a kubeconfig file"),
        "{stderr}"
    );
}

/// Katib's controller and a KFP API server that executes runs with `kfp.local`, played
/// by `tests/katib_e2e/katib_controller.py` against kmock (see its docstring for what
/// it does as Katib does and what it does differently).
struct KatibController {
    child: Child,
    kfp_url: String,
}

impl KatibController {
    fn start(kube: &Kube, cwd: &Path, out: &Path) -> KatibController {
        let mut child = Command::new(crate::kubeflow::validators_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/katib_e2e/katib_controller.py"))
            .args(["--kube", &kube.url, "--namespace", NS, "--seed", "13"])
            .arg("--step-python")
            .arg(crate::support::python())
            .arg("--cwd")
            .arg(cwd)
            .arg("--out")
            .arg(out)
            .env_remove("PYTHONPATH")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start katib_controller.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://127.0.0.1:"),
            "no KFP URL: {line:?}"
        );
        KatibController {
            child,
            kfp_url: line.trim().to_string(),
        }
    }

    /// Its exit status, or None when it is still running after a minute (then the
    /// failure kale reports is the one to show).
    fn finish(mut self) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for KatibController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_katib_experiment_runs_end_to_end_with_trials_that_are_pipeline_runs() {
    // Everything between kale and the metrics is real except Katib and the cluster:
    // kale uploads the compiled pipeline and creates the Experiment; the stand-in
    // controller renders its trial template, runs the trial pod's containers (the
    // steps' image's Python running kale's trial driver, no trial image) under Katib's
    // StdOut wrapping, the driver starts a KFP run that kfp.local executes, and the
    // controller reads the metrics from the container's output with Katib's filter.
    let kube = Kube::start(true);
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "sweep.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "lr = 0.1\nn = 3"),
            C::Code(&["step:train"], "score = 1 - (lr - 0.3) ** 2 + n / 100"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let summary_path = dir.path().join("katib.json");
    let katib = KatibController::start(&kube, dir.path(), &summary_path);
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    let mut cmd = kale_cmd(dir.path(), &cfg);
    cmd.arg("tune")
        .arg(&nb)
        .args(["--katib", "--name", "sweep-e2e", "--json"])
        .args(["--kfp-endpoint", &katib.kfp_url])
        .args(["--trial-kfp-endpoint", &katib.kfp_url])
        .args([
            "--objective",
            "score",
            "--param",
            "lr=double:0.01..0.5",
            "--param",
            "n=int:1..5",
            "--max-trials",
            "3",
            "--parallel",
            "1",
            "--max-failed",
            "1",
        ])
        .env("KALE_PYTHON", crate::support::python());
    let kale = Kale::spawn(cmd);
    let (status, stdout, stderr) = kale.finish();
    let katib_status = katib.finish();
    // The trial pods' output, when the controller got that far.
    let logs = std::fs::read_to_string(&summary_path).unwrap_or_default();
    assert!(status.success(), "{status}\n{stderr}\n{logs}");
    assert!(
        katib_status.is_some_and(|s| s.success()),
        "katib_controller.py: {katib_status:?}\n{stderr}"
    );

    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let trials = summary["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    for t in trials {
        assert_eq!(t["status"], "Succeeded", "{t:#}");
        // What the collector read is exactly the driver's one metric line.
        assert_eq!(t["metrics"]["score"].as_array().unwrap().len(), 1, "{t:#}");
        let name = t["name"].as_str().unwrap();
        assert!(name.starts_with("sweep-e2e-") && name.len() == 18, "{name}");
        // Shown live, with its Katib name.
        assert!(stderr.contains(name), "{name} not shown:\n{stderr}");
        for a in t["assignments"].as_array().unwrap() {
            let v: f64 = a["value"].as_str().unwrap().parse().unwrap();
            match a["name"].as_str().unwrap() {
                "lr" => assert!((0.01..=0.5).contains(&v), "{a}"),
                "n" => assert!((1.0..=5.0).contains(&v) && v.fract() == 0.0, "{a}"),
                other => panic!("unexpected parameter {other}"),
            }
        }
    }
    assert!(
        stderr.contains("experiment sweep-e2e succeeded: max trials reached — 3 succeeded"),
        "{stderr}"
    );

    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["trials"]["succeeded"], 3);
    // The best is the best of what the trials measured...
    let measured: Vec<(String, f64)> = trials
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["metrics"]["score"][0].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let (best_name, best_score) = measured
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .clone();
    assert_eq!(doc["best"]["trial"], best_name.as_str());
    assert_eq!(doc["best"]["metrics"]["score"].as_f64(), Some(best_score));
    // ...and exactly what `kale run -p` computes with its values.
    let best = trials
        .iter()
        .find(|t| t["name"] == best_name.as_str())
        .unwrap();
    let mut run = crate::support::kale_with_python();
    run.arg("run").arg(&nb).args(["--json", "--quiet"]);
    for a in best["assignments"].as_array().unwrap() {
        run.arg("-p").arg(format!(
            "{}={}",
            a["name"].as_str().unwrap(),
            a["value"].as_str().unwrap()
        ));
    }
    let out = crate::support::succeed(&mut run);
    let local: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(local["metrics"]["score"], doc["best"]["metrics"]["score"]);
    assert_eq!(
        doc["best"]["params"]["lr"].as_f64(),
        best["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .ok()
    );
}

#[test]
fn in_a_notebook_pod_steps_and_trials_default_to_the_pods_image() {
    let kube = Kube::start(true);
    // A Kubeflow notebook server's pod: the container is named after the notebook.
    let (code, body) = Kube::finish(
        kube.agent
            .post(format!("{}/api/v1/namespaces/{NS}/pods", kube.url))
            .send_json(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "my-nb-0", "namespace": NS, "labels": {"notebook-name": "my-nb"}},
                "spec": {"containers": [
                    {"name": "istio-proxy", "image": "istio/proxyv2:1.24"},
                    {"name": "my-nb", "image": "ghcr.io/team/ds:2"}]},
            }))
            .unwrap(),
    );
    assert!(code < 300, "{code} {body}");
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let cfg = kubeconfig(dir.path(), "fake", &[("fake", &kube.url)]);
    let compile = |hostname: &str, nb: &Path, target: &str| {
        let out = dir.path().join(format!("{hostname}.{target}.yaml"));
        let mut cmd = kale_cmd(dir.path(), &cfg);
        cmd.args(["compile", "--target", target, "-o"])
            .arg(&out)
            .arg(nb)
            .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .env("HOSTNAME", hostname);
        if target == "katib" {
            cmd.args(["--objective", "score", "--param", "lr=double:0.01..0.5"]);
        }
        let res = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr).to_string();
        assert!(res.status.success(), "{stderr}");
        let doc: Value =
            serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(&out).unwrap()).unwrap()
                [0]
            .clone();
        (doc, stderr)
    };
    let trial_image = |exp: &Value| {
        exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Every step, the runtime task included, runs the pod's image.
    let (spec, _) = compile("my-nb-0", &nb, "kfp");
    let executors = spec["deploymentSpec"]["executors"].as_object().unwrap();
    assert_eq!(executors.len(), 2, "{spec:#}");
    for e in executors.values() {
        assert_eq!(e["container"]["image"], "ghcr.io/team/ds:2", "{e:#}");
    }
    let (exp, stderr) = compile("my-nb-0", &nb, "katib");
    assert!(
        stderr.contains("note: steps and trials run this notebook pod's image `ghcr.io/team/ds:2`"),
        "{stderr}"
    );
    assert_eq!(trial_image(&exp), "ghcr.io/team/ds:2");

    // A pod kale cannot read: a warning, and the default image.
    let (exp, stderr) = compile("gone-0", &nb, "katib");
    assert!(
        stderr.contains(
            "warning: kale runs in a pod but cannot read its image (reading pod team-a/gone-0"
        ),
        "{stderr}"
    );
    assert_eq!(trial_image(&exp), "python:3.12");

    // The notebook's own `base_image` wins over the pod's.
    let pinned = write_notebook(
        dir.path(),
        "pinned.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "lr = 0.1"),
            C::Code(&["step:train"], "score = 1 - lr"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        Some(json!({"base_image": "python:3.11"})),
    );
    let (exp, stderr) = compile("my-nb-0", &pinned, "katib");
    assert!(!stderr.contains("pod's image"), "{stderr}");
    assert_eq!(trial_image(&exp), "python:3.11");
}
