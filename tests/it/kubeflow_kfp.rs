//! `kale trial` and `kale submit` against a fake Kubeflow Pipelines API server on
//! loopback: real HTTP, and the fake checks what it receives the way the KFP API server
//! does (typed run parameters, multipart uploads), then plays a run from RUNNING to a
//! final state and serves the metrics artifact through a download URL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{C, examples_dir, kale, write_notebook};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the fake behaves.
#[derive(Clone)]
pub struct Script {
    /// The PipelineSpec of the stored pipeline version.
    pub spec: Value,
    /// Final state of every run.
    pub final_state: &'static str,
    /// Metrics the run's metrics artifact holds.
    pub metrics: Value,
    /// Whether a pipeline named like the upload already exists.
    pub pipeline_exists: bool,
    /// Answer every API call with this status (403 to play RBAC refusal).
    pub refuse_with: Option<u16>,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    run_polls: u32,
}

pub struct FakeKfp {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeKfp {
    pub fn start(script: Script) -> FakeKfp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let (st, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (st, base, script) = (st.clone(), base.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &st, &base, &script));
            }
        });
        FakeKfp { url, state }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn find(&self, method: &str, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length") {
        body.resize(n.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q),
        None => (target.clone(), ""),
    };
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The KFP API server's run-creation check (`validatePipelineJobInputs`): every
/// parameter declared, JSON types matching the declared type.
fn check_run_parameters(spec: &Value, params: &Value) -> Result<(), String> {
    let declared = &spec["root"]["inputDefinitions"]["parameters"];
    for (name, v) in params.as_object().cloned().unwrap_or_default() {
        let Some(kind) = declared[&name]["parameterType"].as_str() else {
            return Err(format!("parameter {name} is not declared by the pipeline"));
        };
        let ok = match kind {
            "NUMBER_INTEGER" | "NUMBER_DOUBLE" => v.is_number(),
            "STRING" => v.is_string(),
            "BOOLEAN" => v.is_boolean(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "input parameter {name} requires type {kind}, got {v}"
            ));
        }
    }
    Ok(())
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, base: &str, script: &Script) {
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    state.lock().unwrap().requests.push(req.clone());
    let (status, body) = respond(&req, state, base, script);
    let text = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn respond(req: &Request, state: &Mutex<State>, base: &str, script: &Script) -> (u16, Value) {
    if let Some(code) = script.refuse_with
        && req.path.starts_with("/apis/")
    {
        return (code, json!({"error": "user is not allowed", "code": 7}));
    }
    let uploaded_or_existing = script.pipeline_exists
        || state
            .lock()
            .unwrap()
            .requests
            .iter()
            .any(|r| r.path == "/apis/v2beta1/pipelines/upload");
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/apis/v2beta1/pipelines") => {
            let filter: Value = serde_json::from_str(&req.query["filter"]).unwrap();
            let name = filter["predicates"][0]["string_value"].as_str().unwrap();
            if uploaded_or_existing && name == script.spec["pipelineInfo"]["name"] {
                (
                    200,
                    json!({"pipelines": [{"pipeline_id": "p-1", "display_name": name}], "total_size": 1}),
                )
            } else {
                (200, json!({}))
            }
        }
        ("POST", "/apis/v2beta1/pipelines/upload")
        | ("POST", "/apis/v2beta1/pipelines/upload_version") => {
            let ct = req.headers.get("content-type").cloned().unwrap_or_default();
            let body = String::from_utf8_lossy(&req.body);
            if !ct.starts_with("multipart/form-data; boundary=")
                || !body.contains("name=\"uploadfile\"")
                || !(body.contains("schemaVersion: \"2.1.0\"")
                    || body.contains("schemaVersion: 2.1.0"))
            {
                return (
                    400,
                    json!({"error": "expected a multipart upload of a v2 pipeline"}),
                );
            }
            if req.path.ends_with("upload_version") {
                (
                    200,
                    json!({"pipeline_id": req.query["pipelineid"], "pipeline_version_id": "v-2"}),
                )
            } else {
                (
                    200,
                    json!({"pipeline_id": "p-1", "display_name": req.query["name"]}),
                )
            }
        }
        ("GET", "/apis/v2beta1/pipelines/p-1/versions") => (
            200,
            json!({"pipeline_versions": [{"pipeline_id": "p-1", "pipeline_version_id": "v-1"}]}),
        ),
        ("GET", "/apis/v2beta1/pipelines/p-1/versions/v-1") => (
            200,
            json!({"pipeline_id": "p-1", "pipeline_version_id": "v-1", "pipeline_spec": script.spec}),
        ),
        ("GET", "/apis/v2beta1/experiments") => (200, json!({})),
        ("POST", "/apis/v2beta1/experiments") => (
            200,
            json!({"experiment_id": "e-1", "display_name": req.json()["display_name"]}),
        ),
        ("POST", "/apis/v2beta1/runs") => {
            let body = req.json();
            let r = &body["pipeline_version_reference"];
            if r["pipeline_id"] != "p-1" || !r["pipeline_version_id"].is_string() {
                return (404, json!({"error": "pipeline version not found"}));
            }
            match check_run_parameters(&script.spec, &body["runtime_config"]["parameters"]) {
                Ok(()) => (200, json!({"run_id": "r-1", "state": "PENDING"})),
                Err(e) => (400, json!({"error": e, "code": 3})),
            }
        }
        ("GET", "/apis/v2beta1/runs/r-1") => {
            let polls = {
                let mut s = state.lock().unwrap();
                s.run_polls += 1;
                s.run_polls
            };
            if polls < 3 {
                return (
                    200,
                    json!({"run_id": "r-1", "state": if polls == 1 { "PENDING" } else { "RUNNING" }}),
                );
            }
            let mut run = json!({
                "run_id": "r-1",
                "state": script.final_state,
                "run_details": {"task_details": [
                    {"display_name": "root", "outputs": {}},
                    {"display_name": "train", "outputs": {"model": {"artifact_ids": ["41"]}}},
                    {"display_name": "evaluate", "outputs": {"kale-metrics": {"artifact_ids": ["42"]}}},
                ]},
            });
            if script.final_state == "FAILED" {
                run["error"] =
                    json!({"code": 2, "message": "task evaluate failed: ZeroDivisionError"});
            }
            (200, run)
        }
        ("GET", "/apis/v2beta1/artifacts/42") => {
            assert_eq!(req.query.get("view").map(String::as_str), Some("DOWNLOAD"));
            (
                200,
                json!({"artifact_id": "42", "artifact_type": "system.Metrics", "download_url": format!("{base}/minio/mlpipeline/42")}),
            )
        }
        ("GET", "/minio/mlpipeline/42") => (200, script.metrics.clone()),
        _ => (
            404,
            json!({"error": format!("no route {} {}", req.method, req.path)}),
        ),
    }
}

fn digits_spec() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.yaml");
    let res = kale()
        .arg("compile")
        .arg(examples_dir().join("digits.ipynb"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(res.status.success());
    serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(&out).unwrap()).unwrap()[0]
        .clone()
}

fn typed_notebook(dir: &Path) -> std::path::PathBuf {
    write_notebook(
        dir,
        "typed.ipynb",
        &[
            C::Code(
                &["pipeline-parameters"],
                "n = 2\nlr = 0.1\nname = \"a\"\nflag = False",
            ),
            C::Code(&["step:s"], "score = n * lr if flag else lr\nlabel = name"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

fn script(spec: Value) -> Script {
    Script {
        spec,
        final_state: "SUCCEEDED",
        metrics: json!({"accuracy": 0.97, "f1": 0.96}),
        pipeline_exists: true,
        refuse_with: None,
    }
}

fn trial(fake: &FakeKfp, args: &[&str]) -> std::process::Output {
    kale()
        .arg("trial")
        .arg("--kfp-endpoint")
        .arg(&fake.url)
        .arg("--poll-interval")
        .arg("0.05")
        .args(args)
        .env_remove("KF_PIPELINES_TOKEN")
        .env("KF_PIPELINES_SA_TOKEN_PATH", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn trial_starts_a_typed_run_waits_and_prints_metrics_for_katib() {
    let dir = tempfile::tempdir().unwrap();
    let nb = typed_notebook(dir.path());
    let out = dir.path().join("p.yaml");
    assert!(
        kale()
            .arg("compile")
            .arg(&nb)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap()
            .status
            .success()
    );
    let spec = serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(&out).unwrap())
        .unwrap()[0]
        .clone();
    let fake = FakeKfp::start(script(spec));
    let res = trial(
        &fake,
        &[
            "--pipeline-id",
            "p-1",
            "--pipeline-version",
            "v-1",
            "--run-name",
            "digits-x7k2",
            "-p",
            "n=3.0",
            "-p",
            "lr=1e-2",
            "-p",
            "name=12",
            "-p",
            "flag=true",
            "--metrics",
            "accuracy,f1",
        ],
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert_eq!(stdout, "accuracy=0.97\nf1=0.96\n");
    assert!(
        stderr.contains("run r-1 is RUNNING") && stderr.contains("run r-1 is SUCCEEDED"),
        "{stderr}"
    );
    // Nothing but metric lines may hold `=`: Katib's collector reads stderr too.
    assert!(!stderr.contains('='), "{stderr}");

    let created = fake.find("POST", "/apis/v2beta1/runs");
    assert_eq!(created.len(), 1);
    let body = created[0].json();
    assert_eq!(body["display_name"], "digits-x7k2");
    assert_eq!(
        body["pipeline_version_reference"],
        json!({"pipeline_id": "p-1", "pipeline_version_id": "v-1"})
    );
    assert_eq!(
        body["runtime_config"]["parameters"],
        json!({"n": 3, "lr": 0.01, "name": "12", "flag": true})
    );
    assert!(!created[0].headers.contains_key("authorization"));
}

#[test]
fn the_katib_trial_pod_runs_as_generated_in_the_steps_image() {
    // The trial pod of the compiled Experiment, played the way the cluster runs it, with
    // real Python against the fake: the init container writes the driver into the shared
    // volume (here a directory), then `main`'s command, with Katib's substitutions, runs
    // the way Katib's StdOut collector rewrites it: words joined by spaces under `sh -c`,
    // output into the file the collector reads. The pipeline is found by name and its
    // newest version run.
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("e.yaml");
    let res = kale()
        .args(["compile", "--target", "katib", "-o"])
        .arg(&exp)
        .arg(examples_dir().join("digits.ipynb"))
        .env_remove("KALE_TRIAL_IMAGE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        !stderr.contains("warning"),
        "no trial image to build: {stderr}"
    );
    let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&exp).unwrap()).unwrap();
    let pod = &doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"];
    // Trials run in the steps' image: digits' `base_image`.
    assert_eq!(pod["containers"][0]["image"], "python:3.11");
    assert_eq!(pod["initContainers"][0]["image"], "python:3.11");
    let volume = dir.path().join("kale");
    std::fs::create_dir(&volume).unwrap();
    let in_pod = |w: &Value| -> String {
        w.as_str()
            .unwrap()
            .replace("/kale/", &format!("{}/", volume.display()))
    };
    let words = |c: &Value| -> Vec<String> {
        c["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(in_pod)
            .collect()
    };

    let init = words(&pod["initContainers"][0]);
    assert_eq!(init[0], "python3");
    crate::support::succeed(assert_cmd::Command::new(crate::support::python()).args(&init[1..]));

    let main = words(&pod["containers"][0]);
    assert_eq!(main[0], "python3");
    let main: Vec<String> = main
        .iter()
        .map(|w| {
            w.replace("${trialParameters.kaleTrialName}", "digits-abcd1234")
                .replace("${trialParameters.C}", "2.5")
                .replace("${trialParameters.gamma}", "0.001")
        })
        .collect();
    assert!(!main.join(" ").contains("${"), "{main:?}");
    let fake = FakeKfp::start(script(digits_spec()));
    let log = dir.path().join("metrics.log");
    let wrapped = format!(
        "{} {} --poll-interval=0.05 1>{} 2>&1 && echo completed > {}/1.pid",
        crate::support::python(),
        main[1..].join(" "),
        log.display(),
        dir.path().display()
    );
    crate::support::succeed(
        assert_cmd::Command::new("sh")
            .args(["-c", &wrapped])
            .env("KF_PIPELINES_ENDPOINT", &fake.url)
            .env("KF_PIPELINES_TOKEN", "secret-token"),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let metric_lines: Vec<&str> = text.lines().filter(|l| l.contains('=')).collect();
    assert_eq!(metric_lines, ["accuracy=0.97", "f1=0.96"], "{text}");
    assert!(text.contains("run r-1 is SUCCEEDED"), "{text}");
    assert!(dir.path().join("1.pid").exists());
    let created = fake.find("POST", "/apis/v2beta1/runs");
    assert_eq!(
        created[0].json()["runtime_config"]["parameters"],
        json!({"C": 2.5, "gamma": 0.001})
    );
    assert_eq!(created[0].json()["display_name"], "digits-abcd1234");
    assert_eq!(
        created[0].headers.get("authorization").map(String::as_str),
        Some("Bearer secret-token")
    );
    assert_eq!(
        fake.find("GET", "/apis/v2beta1/pipelines/p-1/versions")
            .len(),
        1
    );
}

#[test]
fn a_failed_run_fails_the_trial_without_metric_lines() {
    let fake = FakeKfp::start(Script {
        final_state: "FAILED",
        ..script(digits_spec())
    });
    let res = trial(
        &fake,
        &[
            "--pipeline-id",
            "p-1",
            "--pipeline-version",
            "v-1",
            "-p",
            "C=1",
        ],
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(res.stdout.is_empty());
    assert!(
        stderr.contains("run r-1 ended FAILED: task evaluate failed: ZeroDivisionError"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn trial_errors_are_clear() {
    let fake = FakeKfp::start(script(digits_spec()));
    // unknown parameter: refused before any run starts
    let res = trial(
        &fake,
        &[
            "--pipeline-id",
            "p-1",
            "--pipeline-version",
            "v-1",
            "-p",
            "lr=1",
        ],
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no parameter `lr` (it has: C, gamma, kernel)"),
        "{stderr}"
    );
    // a value of the wrong type
    let res = trial(
        &fake,
        &[
            "--pipeline-id",
            "p-1",
            "--pipeline-version",
            "v-1",
            "-p",
            "C=big",
        ],
    );
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("parameter `C` must be a number, got `big`")
    );
    assert!(fake.find("POST", "/apis/v2beta1/runs").is_empty());
    // a metric the run did not report
    let res = trial(
        &fake,
        &[
            "--pipeline-id",
            "p-1",
            "--pipeline-version",
            "v-1",
            "--metrics",
            "accuracy,loss",
        ],
    );
    assert_eq!(res.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&res.stdout), "accuracy=0.97\n");
    assert!(String::from_utf8_lossy(&res.stderr).contains("no value for loss"));

    // RBAC refusal
    let forbidden = FakeKfp::start(Script {
        refuse_with: Some(403),
        ..script(digits_spec())
    });
    let res = trial(
        &forbidden,
        &["--pipeline-id", "p-1", "--pipeline-version", "v-1"],
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        stderr.contains("refused")
            && stderr.contains("user is not allowed")
            && stderr.contains("KF_PIPELINES_TOKEN"),
        "{stderr}"
    );

    // nothing listening
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let res = kale()
        .args(["trial", "--pipeline-id", "p-1", "--kfp-endpoint"])
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        stderr.contains("cannot reach the Kubeflow Pipelines API")
            && stderr.contains("port-forward"),
        "{stderr}"
    );
}

#[test]
fn submit_uploads_the_compiled_pipeline_and_starts_a_typed_run() {
    let dir = tempfile::tempdir().unwrap();
    let nb = typed_notebook(dir.path());
    let out = dir.path().join("p.yaml");
    assert!(
        kale()
            .arg("compile")
            .arg(&nb)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap()
            .status
            .success()
    );
    let yaml = std::fs::read_to_string(&out).unwrap();
    let spec = serde_saphyr::from_multiple::<Value>(&yaml).unwrap()[0].clone();

    // First submission: a new pipeline.
    let fake = FakeKfp::start(Script {
        pipeline_exists: false,
        ..script(spec.clone())
    });
    let res = kale()
        .arg("submit")
        .arg(&nb)
        .args([
            "--kfp-endpoint",
            &fake.url,
            "-n",
            "team-a",
            "-p",
            "n=5",
            "-p",
            "flag=true",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&res.stdout).trim(), "r-1");
    assert!(stderr.contains("/#/runs/details/r-1"), "{stderr}");
    let upload = &fake.find("POST", "/apis/v2beta1/pipelines/upload")[0];
    assert_eq!(upload.query["name"], "typed");
    assert_eq!(upload.query["namespace"], "team-a");
    assert!(
        String::from_utf8_lossy(&upload.body).contains(&yaml),
        "the uploaded file is `kale compile`'s output"
    );
    let experiment = &fake.find("POST", "/apis/v2beta1/experiments")[0];
    assert_eq!(
        experiment.json(),
        json!({"display_name": "typed", "namespace": "team-a"})
    );
    let run = fake.find("POST", "/apis/v2beta1/runs")[0].json();
    assert_eq!(run["experiment_id"], "e-1");
    assert_eq!(
        run["runtime_config"]["parameters"],
        json!({"n": 5, "flag": true})
    );
    assert_eq!(
        run["pipeline_version_reference"]["pipeline_version_id"],
        "v-1"
    );

    // Second submission: the pipeline exists, so a new version goes up.
    let fake = FakeKfp::start(script(spec));
    let res = kale()
        .arg("submit")
        .arg(&nb)
        .args(["--kfp-endpoint", &fake.url])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        fake.find("POST", "/apis/v2beta1/pipelines/upload")
            .is_empty()
    );
    let version = &fake.find("POST", "/apis/v2beta1/pipelines/upload_version")[0];
    assert_eq!(version.query["pipelineid"], "p-1");
    assert!(version.query["name"].starts_with("typed-"));
    let run = fake.find("POST", "/apis/v2beta1/runs")[0].json();
    assert_eq!(
        run["pipeline_version_reference"]["pipeline_version_id"],
        "v-2"
    );

    // A bad override never reaches the server.
    let res = kale()
        .arg("submit")
        .arg(&nb)
        .args(["--kfp-endpoint", &fake.url, "-p", "n=many"])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("parameter `n` must be an integer"));
}
