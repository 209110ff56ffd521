//! `kale compile --target kfp|katib`: every manifest is checked by the real offline
//! validators (`../shared/tools/validate_{kfp,katib}.py`, from the venv that
//! `scripts/validators-env` builds), the example's manifests are compared with golden
//! files, and the compiled KFP containers are run here the way KFP's launcher would run
//! them, to show that they drive the step programs like `kale run` does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{C, corpus_dir, examples_dir, kale, python, write_notebook};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The validators' Python: `KALE_VALIDATORS_PYTHON` (set by `.ci/run`), else the venv
/// `scripts/validators-env` creates (so a plain `cargo test` validates too).
pub fn validators_python() -> String {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("KALE_VALIDATORS_PYTHON")
            && !p.is_empty()
        {
            return p;
        }
        let out = Command::new(manifest_dir().join("scripts/validators-env"))
            .output()
            .expect("run scripts/validators-env");
        assert!(
            out.status.success(),
            "scripts/validators-env failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .expect("validators-env prints the interpreter")
            .trim()
            .to_string()
    })
    .clone()
}

/// Runs `tool` (validate_kfp.py or validate_katib.py) on every file in one Python
/// process (importing kfp costs seconds); returns the report of each failing file.
pub fn validate(tool: &str, files: &[PathBuf]) -> Vec<String> {
    let tool = manifest_dir().join("../shared/tools").join(tool);
    assert!(tool.exists(), "missing validator {}", tool.display());
    let driver = r#"
import contextlib, importlib.util, io, sys
spec = importlib.util.spec_from_file_location("validator", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
for f in sys.argv[2:]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = mod.main([f])
        except SystemExit as e:
            rc = e.code
    print("@@ %s %s" % (rc, f))
    print(buf.getvalue())
"#;
    let out = Command::new(validators_python())
        .arg("-c")
        .arg(driver)
        .arg(&tool)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "validator driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut failures = Vec::new();
    let mut seen = 0;
    for block in stdout.split("@@ ").skip(1) {
        seen += 1;
        if !block.starts_with("0 ") {
            failures.push(block.to_string());
        }
    }
    assert_eq!(seen, files.len(), "validator output:\n{stdout}");
    failures
}

fn compile(nb: &Path, args: &[&str], out: &Path) -> std::process::Output {
    kale()
        .arg("compile")
        .arg(nb)
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).expect("kale writes parseable YAML")
}

/// The manifest with what follows the runtime's and the programs' text (the runtime
/// bundle and its id, step programs and their line maps) replaced by markers: the
/// golden file pins the structure, not the Python text that other tests check.
fn normalised_kfp(text: &str) -> String {
    let mut docs = yaml_docs(text);
    let spec = &mut docs[0];
    for (label, exec) in spec["deploymentSpec"]["executors"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
    {
        let c = &mut exec["container"];
        let args = c["args"].as_array_mut().unwrap();
        if label == "exec-kale-runtime" {
            args[0] = json!("<runtime id>");
            args[1] = json!("<runtime bundle>");
            if args.len() > 5 {
                args[5] = json!("<shared cells>");
            }
            continue;
        }
        for i in 0..args.len() {
            let marker = match args[i].as_str() {
                Some("--runtime-id") => "<runtime id>".to_string(),
                Some("--program") => "<step program>".to_string(),
                Some("--lines") => "<line map>".to_string(),
                Some("--install") => {
                    let pin = args[i + 1].as_str().unwrap();
                    let dist = pin.split_once("==").unwrap().0;
                    format!("{dist}==<version in the test Python>")
                }
                _ => continue,
            };
            args[i + 1] = json!(marker);
        }
    }
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn check_golden(name: &str, actual: &str) {
    let path = manifest_dir().join("tests/golden").join(name);
    if std::env::var_os("KALE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with KALE_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the compiled output (KALE_UPDATE_GOLDEN=1 rewrites it):\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn digits_compiles_to_a_valid_kfp_pipeline_matching_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pipeline.yaml");
    // The pins of the packages a stock image lacks come from the Python kale uses.
    let res = kale()
        .arg("compile")
        .arg(examples_dir().join("digits.ipynb"))
        .args(["--target", "kfp", "-o"])
        .arg(&out)
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let failures = validate("validate_kfp.py", std::slice::from_ref(&out));
    assert!(failures.is_empty(), "{failures:#?}");

    let text = std::fs::read_to_string(&out).unwrap();
    check_golden("digits.kfp.yaml", &normalised_kfp(&text));

    // The steps run the very runtime `kale run` uses, shipped once by the runtime task,
    // and the parameter values are not in the program text (they are component inputs).
    let spec = &yaml_docs(&text)[0];
    let execs = &spec["deploymentSpec"]["executors"];
    let bundle = kale::kubeflow::kfp::runtime_bundle();
    assert_eq!(
        execs["exec-kale-runtime"]["container"]["args"][1],
        bundle.blob.as_str()
    );
    let train = &execs["exec-train"]["container"];
    let args: Vec<&str> = train["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(at("--runtime-id"), bundle.id);
    assert!(
        !text.contains("def begin_step"),
        "the runtime travels compressed"
    );
    assert!(at("--program").contains("model = SVC(C=C, gamma=gamma, kernel=kernel)"));
    assert!(!at("--program").contains("C = 1.0"));
    assert!(args.contains(&"{{$.inputs.parameters['C']}}"));
}

#[test]
fn digits_compiles_to_a_valid_katib_experiment_matching_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("experiment.yaml");
    let res = compile(
        &examples_dir().join("digits.ipynb"),
        &[
            "--target",
            "katib",
            "--trial-image",
            "ghcr.io/example/kale:0.1.0",
            "--pipeline-id",
            "0f5e0a6c-8d4e-4d4b-9d62-7d3c6f1b2a10",
            "--pipeline-version",
            "6b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        ],
        &out,
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let failures = validate("validate_katib.py", std::slice::from_ref(&out));
    assert!(failures.is_empty(), "{failures:#?}");
    check_golden("digits.katib.yaml", &std::fs::read_to_string(&out).unwrap());
}

#[test]
fn katib_experiments_from_search_flags_validate() {
    let dir = tempfile::tempdir().unwrap();
    let nb = examples_dir().join("digits.ipynb");
    let cases: &[&[&str]] = &[
        // no pipeline id: trials look the pipeline up by name
        &[
            "--objective",
            "f1",
            "--goal",
            "minimize",
            "--target-value",
            "0.2",
        ],
        &[
            "--param",
            "C=double:0.1..10:log",
            "--param",
            "kernel=categorical:rbf,linear",
            "--algorithm",
            "random",
            "--seed",
            "3",
            "--max-trials",
            "6",
            "--parallel",
            "2",
            "--max-failed",
            "1",
            "--early-stopping",
            "medianstop",
            "--early-stopping-setting",
            "start_step=2",
            "--experiment-name",
            "digits-random",
            "--service-account",
            "default-editor",
            "--trial-kfp-endpoint",
            "http://ml-pipeline.kubeflow:8888",
        ],
        &[
            "--param",
            "C=double:0.5..10:step=0.5",
            "--algorithm",
            "grid",
            "--max-trials",
            "5",
        ],
    ];
    let mut files = Vec::new();
    for (i, args) in cases.iter().enumerate() {
        let out = dir.path().join(format!("exp{i}.yaml"));
        let mut all = vec!["--target", "katib"];
        all.extend_from_slice(args);
        let res = compile(&nb, &all, &out);
        assert!(
            res.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        files.push(out);
    }
    let failures = validate("validate_katib.py", &files);
    assert!(failures.is_empty(), "{failures:#?}");
    let first = std::fs::read_to_string(&files[0]).unwrap();
    assert!(first.contains("--pipeline=digits-svc"), "{first}");
    assert!(first.contains("goal: 0.2"), "{first}");
}

/// Where the trial pods reach KFP can come from the environment (a notebook server's
/// kale, the JupyterLab panel's): `KALE_TRIAL_KFP_ENDPOINT`, the flag winning.
#[test]
fn the_trials_kfp_endpoint_comes_from_the_environment_unless_the_flag_says() {
    let dir = tempfile::tempdir().unwrap();
    let nb = examples_dir().join("digits.ipynb");
    let out = dir.path().join("exp.yaml");
    let env_url = "http://kfp.from-env:8888";
    let flag_url = "http://kfp.from-flag:8888";
    for (flag, want) in [(None, env_url), (Some(flag_url), flag_url)] {
        let mut cmd = kale();
        cmd.args(["compile", "--target", "katib"])
            .arg(&nb)
            .arg("-o")
            .arg(&out)
            .env("KALE_TRIAL_KFP_ENDPOINT", env_url);
        if let Some(url) = flag {
            cmd.args(["--trial-kfp-endpoint", url]);
        }
        let res = cmd.output().unwrap();
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(want), "{want} not in:\n{text}");
        if flag.is_some() {
            assert!(!text.contains(env_url), "{text}");
        }
    }
}

/// `--algorithm auto` is settled at compile time: Katib gets the algorithm
/// `auto` chose for this budget and space (Katib has no `auto`).
#[test]
fn katib_export_maps_auto_to_the_algorithm_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let nb = examples_dir().join("digits.ipynb");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--param",
                "C=double:0.1..10:log",
                "--param",
                "kernel=categorical:rbf,poly",
                "--max-trials",
                "30",
            ],
            "bayesianoptimization",
        ),
        (
            &["--param", "C=double:0.5..10:step=0.5", "--max-trials", "20"],
            "grid",
        ),
        (
            &["--param", "C=double:0.1..10:log", "--max-trials", "500"],
            "tpe",
        ),
    ];
    let mut files = Vec::new();
    for (i, (args, algorithm)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("auto{i}.yaml"));
        let mut all = vec![
            "--target",
            "katib",
            "--algorithm",
            "auto",
            "--parallel",
            "2",
        ];
        all.extend_from_slice(args);
        let res = compile(&nb, &all, &out);
        assert!(
            res.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let spec = &yaml_docs(&std::fs::read_to_string(&out).unwrap())[0];
        assert_eq!(
            spec["spec"]["algorithm"]["algorithmName"], *algorithm,
            "{args:?}"
        );
        files.push(out);
    }
    let failures = validate("validate_katib.py", &files);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn katib_compile_explains_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let nb = examples_dir().join("digits.ipynb");
    let out = dir.path().join("x.yaml");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--objective", "loss"],
            "objective `loss` is not a pipeline metric",
        ),
        (&["--experiment-name", "Digits_HPO"], "not valid for Katib"),
        (
            &["--parallel", "30", "--max-trials", "4"],
            "exceed the total",
        ),
        (
            &["--param", "kernel=categorical:a b,c"],
            "cannot be passed safely",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["--target", "katib"];
        all.extend_from_slice(args);
        let res = compile(&nb, &all, &out);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// A notebook that exercises every KFP feature kale maps: parameters of all four types,
/// a `prev:` edge without data, metrics, resources, labels, annotations, secrets, PVCs.
fn feature_notebook(dir: &Path, a: i64) -> PathBuf {
    let params = format!("a = {a}\nscale = 0.5\nlabel = \"x y\"\nflag = True\n");
    write_notebook(
        dir,
        "features.ipynb",
        &[
            C::Code(&["imports"], "import json"),
            C::Code(&["pipeline-parameters"], &params),
            C::Code(
                &[
                    "step:side",
                    "label:team:ml",
                    "annotation:note:side-step",
                    "limit:cpu:500m",
                    "limit:memory:1Gi",
                ],
                "side = json.dumps({'k': 1})",
            ),
            C::Code(
                &[
                    "step:make",
                    "limit:nvidia.com/gpu:1",
                    "secret:creds:token:API_TOKEN",
                ],
                "data = list(range(a))",
            ),
            C::Code(
                &["step:use", "prev:make", "prev:side", "cache:disabled"],
                "total = sum(data) * scale\nn = len(label) + int(flag)",
            ),
            C::Code(&["pipeline-metrics"], "print(total)\nprint(n)"),
        ],
        Some(json!({
            "pipeline_name": "Feature Pipeline",
            "base_image": "python:3.12-slim",
            "volumes": [
                {"name": "shared-data", "mount_point": "/data", "type": "pvc", "expose_as_env_var": true},
                {"name": "scratch", "mount_point": "/scratch", "type": "clone"}
            ],
        })),
    )
}

#[test]
fn kubernetes_settings_go_where_kfp_reads_them_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let nb = feature_notebook(dir.path(), 2);
    let out = dir.path().join("p.yaml");
    let res = compile(&nb, &[], &out);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("volume `scratch` (type `clone`) is not mounted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kale names the pipeline `feature-pipeline`"),
        "{stderr}"
    );
    let failures = validate("validate_kfp.py", std::slice::from_ref(&out));
    assert!(failures.is_empty(), "{failures:#?}");

    let docs = yaml_docs(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(docs.len(), 2, "a PipelineSpec and a PlatformSpec");
    let (spec, platform) = (&docs[0], &docs[1]);
    let tasks = &spec["root"]["dag"]["tasks"];
    // The `prev:side` edge stays although no variable flows from `side` to `use`.
    assert_eq!(
        tasks["use"]["dependentTasks"],
        json!(["kale-runtime", "make", "side"])
    );
    assert_eq!(
        tasks["use"]["cachingOptions"],
        json!({"enableCache": false})
    );
    assert_eq!(
        tasks["make"]["cachingOptions"],
        json!({"enableCache": true})
    );
    // Each step gets only the parameters it reads.
    assert!(tasks["side"]["inputs"].get("parameters").is_none());
    assert_eq!(
        tasks["make"]["inputs"]["parameters"],
        json!({"a": {"componentInputParameter": "a"}})
    );
    let root_params = &spec["root"]["inputDefinitions"]["parameters"];
    assert_eq!(root_params["a"]["parameterType"], "NUMBER_INTEGER");
    assert_eq!(root_params["scale"]["parameterType"], "NUMBER_DOUBLE");
    assert_eq!(root_params["label"]["parameterType"], "STRING");
    assert_eq!(root_params["flag"]["parameterType"], "BOOLEAN");
    assert_eq!(root_params["flag"]["defaultValue"], json!(true));
    assert_eq!(
        spec["components"]["comp-use"]["outputDefinitions"]["artifacts"]["kale-metrics"]["artifactType"]
            ["schemaTitle"],
        "system.Metrics"
    );
    let execs = &spec["deploymentSpec"]["executors"];
    assert_eq!(
        execs["exec-side"]["container"]["resources"],
        json!({"resourceCpuLimit": "500m", "resourceMemoryLimit": "1Gi"})
    );
    assert_eq!(
        execs["exec-make"]["container"]["resources"]["accelerator"]["resourceType"],
        "nvidia.com/gpu"
    );
    assert_eq!(execs["exec-make"]["container"]["image"], "python:3.12-slim");
    assert!(
        execs["exec-make"]["container"]["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "KALE_VOLUME_SHARED_DATA", "value": "/data"}))
    );
    let k8s = &platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"];
    assert_eq!(
        k8s["exec-side"]["podMetadata"],
        json!({"labels": {"team": "ml"}, "annotations": {"note": "side-step"}})
    );
    assert_eq!(
        k8s["exec-make"]["secretAsEnv"],
        json!([{"secretName": "creds", "keyToEnv": [{"secretKey": "token", "envVar": "API_TOKEN"}]}])
    );
    assert_eq!(k8s["exec-use"]["pvcMount"][0]["mountPath"], "/data");
}

#[test]
fn steps_that_do_not_read_a_parameter_compile_identically_whatever_its_value() {
    // KFP's cache key is the executor plus its inputs: a step independent of `a` must
    // not change when `a` does, so Katib trials reuse it.
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (o1, o2) = (d1.path().join("p.yaml"), d2.path().join("p.yaml"));
    assert!(
        compile(&feature_notebook(d1.path(), 2), &[], &o1)
            .status
            .success()
    );
    assert!(
        compile(&feature_notebook(d2.path(), 7), &[], &o2)
            .status
            .success()
    );
    let s1 = &yaml_docs(&std::fs::read_to_string(&o1).unwrap())[0];
    let s2 = &yaml_docs(&std::fs::read_to_string(&o2).unwrap())[0];
    for exec in ["exec-side", "exec-make", "exec-use"] {
        assert_eq!(
            s1["deploymentSpec"]["executors"][exec], s2["deploymentSpec"]["executors"][exec],
            "{exec}"
        );
    }
    assert_ne!(
        s1["root"]["inputDefinitions"]["parameters"]["a"],
        s2["root"]["inputDefinitions"]["parameters"]["a"]
    );
}

#[test]
fn unsupported_limits_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (tag, message) in [
        ("limit:ephemeral-storage:1Gi", "cannot be expressed"),
        ("limit:memory:4GB", "not a Kubernetes quantity"),
    ] {
        let nb = write_notebook(
            dir.path(),
            "bad.ipynb",
            &[C::Code(&["step:a", tag], "x = 1")],
            None,
        );
        let res = compile(&nb, &[], &dir.path().join("p.yaml"));
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(message) && stderr.contains("hint:"),
            "{stderr}"
        );
    }
}

/// Runs the compiled pipeline the way KFP's launcher would: tasks in dependency order,
/// placeholders replaced (parameters rendered as text, artifacts as local directories),
/// each container's command + args executed with the test Python instead of the image.
fn emulate_kfp(spec: &Value, params: &Value, root: &Path) -> Vec<(String, std::process::Output)> {
    let tasks = spec["root"]["dag"]["tasks"].as_object().unwrap();
    let mut values = serde_json::Map::new();
    if let Some(declared) = spec["root"]["inputDefinitions"]["parameters"].as_object() {
        for (k, v) in declared {
            values.insert(k.clone(), v["defaultValue"].clone());
        }
    }
    for (k, v) in params.as_object().unwrap() {
        values.insert(k.clone(), v.clone());
    }
    let render = |v: &Value| match v {
        Value::String(s) => s.clone(),
        // KFP keeps integers as doubles; render them that way to prove the bootstrap
        // converts back to the declared type.
        Value::Number(n) if n.is_i64() => format!("{}.0", n),
        other => other.to_string(),
    };
    let placeholder = regex::Regex::new(
        r"\{\{\$\.([a-z_]+)\.?(parameters|artifacts)?(?:\['([^']+)'\])?(?:\.(path|uri))?\}\}",
    )
    .unwrap();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut outputs = Vec::new();
    while done.len() < tasks.len() {
        let before = done.len();
        for (name, t) in tasks {
            if done.contains(name) {
                continue;
            }
            let deps: Vec<&str> = t["dependentTasks"]
                .as_array()
                .map(|a| a.iter().map(|d| d.as_str().unwrap()).collect())
                .unwrap_or_default();
            if deps.iter().any(|d| !done.contains(*d)) {
                continue;
            }
            let comp = &spec["components"][t["componentRef"]["name"].as_str().unwrap()];
            let exec =
                &spec["deploymentSpec"]["executors"][comp["executorLabel"].as_str().unwrap()];
            let sub = |s: &str| -> String {
                placeholder
                    .replace_all(s, |c: &regex::Captures| {
                        let (scope, kind, key) = (&c[1], &c[2], &c[3]);
                        let field = c.get(4).map_or("", |m| m.as_str());
                        match (scope, kind, field) {
                            ("inputs", "parameters", _) => {
                                let src = t["inputs"]["parameters"][key]["componentInputParameter"]
                                    .as_str()
                                    .unwrap();
                                render(&values[src])
                            }
                            ("inputs", "artifacts", "path") => {
                                let src = &t["inputs"]["artifacts"][key]["taskOutputArtifact"];
                                root.join(src["producerTask"].as_str().unwrap())
                                    .join(src["outputArtifactKey"].as_str().unwrap())
                                    .display()
                                    .to_string()
                            }
                            ("outputs", "artifacts", "path") => {
                                root.join(name).join(key).display().to_string()
                            }
                            ("outputs", "artifacts", "uri") => {
                                format!("minio://mlpipeline/{name}/{key}")
                            }
                            _ => panic!("unexpected placeholder {}", &c[0]),
                        }
                    })
                    .replace(
                        "{{$.outputs.output_file}}",
                        &root
                            .join(name)
                            .join("executor_output.json")
                            .display()
                            .to_string(),
                    )
            };
            let command: Vec<String> = exec["container"]["command"]
                .as_array()
                .unwrap()
                .iter()
                .chain(exec["container"]["args"].as_array().unwrap())
                .map(|a| sub(a.as_str().unwrap()))
                .collect();
            assert_eq!(command[0], "python3");
            let out = Command::new(python())
                .args(&command[1..])
                .current_dir(root)
                .env_remove("PYTHONPATH")
                .output()
                .unwrap();
            let ok = out.status.success();
            outputs.push((name.clone(), out));
            if !ok {
                return outputs;
            }
            done.insert(name.clone());
        }
        assert!(done.len() > before, "no task could start: a cycle?");
    }
    outputs
}

#[test]
fn compiled_containers_run_the_step_programs_with_the_runs_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let nb = feature_notebook(dir.path(), 2);
    let out = dir.path().join("p.yaml");
    assert!(compile(&nb, &[], &out).status.success());
    let spec = &yaml_docs(&std::fs::read_to_string(&out).unwrap())[0];

    for (params, total, n) in [
        (json!({}), 0.5, 4),
        (
            json!({"a": 4, "scale": 2.0, "label": "hello", "flag": false}),
            12.0,
            5,
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let runs = emulate_kfp(spec, &params, root.path());
        for (task, o) in &runs {
            assert!(
                o.status.success(),
                "task {task} failed:\n{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(runs.len(), 4, "the runtime task and three steps");
        // The data artifact is a directory holding the marshalled file.
        assert!(root.path().join("make/data").read_dir().unwrap().count() == 1);
        let metrics: Value =
            serde_json::from_slice(&std::fs::read(root.path().join("use/kale-metrics")).unwrap())
                .unwrap();
        assert_eq!(metrics, json!({"total": total, "n": n}), "{params}");
        let executor_output: Value = serde_json::from_slice(
            &std::fs::read(root.path().join("use/executor_output.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            executor_output["artifacts"]["kale-metrics"]["artifacts"][0]["metadata"],
            metrics
        );
    }
}

#[test]
fn a_failing_step_fails_its_container_with_the_users_error() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "fail.ipynb",
        &[
            C::Code(&["step:a"], "x = 1"),
            C::Code(&["step:b", "prev:a"], "y = x / 0"),
        ],
        None,
    );
    let out = dir.path().join("p.yaml");
    assert!(compile(&nb, &[], &out).status.success());
    let spec = &yaml_docs(&std::fs::read_to_string(&out).unwrap())[0];
    let root = tempfile::tempdir().unwrap();
    let runs = emulate_kfp(spec, &json!({}), root.path());
    let (task, last) = runs.last().unwrap();
    assert_eq!(task, "b");
    assert!(!last.status.success());
    assert!(String::from_utf8_lossy(&last.stderr).contains("ZeroDivisionError"));
}

/// Every example and every corpus notebook that inspects cleanly compiles to a pipeline
/// the KFP validator accepts.
#[test]
fn examples_and_clean_corpus_notebooks_compile_to_valid_pipelines() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "ipynb") {
                out.push(p);
            }
        }
    }
    let mut notebooks = Vec::new();
    walk(&examples_dir(), &mut notebooks);
    walk(&corpus_dir(), &mut notebooks);
    notebooks.sort();
    let dir = tempfile::tempdir().unwrap();
    let mut compiled = Vec::new();
    for (i, nb) in notebooks.iter().enumerate() {
        let inspect = kale().arg("inspect").arg(nb).output().unwrap();
        if !inspect.status.success() {
            continue;
        }
        let out = dir.path().join(format!("{i}.yaml"));
        let res = compile(nb, &[], &out);
        assert!(
            res.status.success(),
            "{} inspects but does not compile:\n{}",
            nb.display(),
            String::from_utf8_lossy(&res.stderr)
        );
        compiled.push(out);
    }
    assert!(
        compiled.len() >= 20,
        "only {} notebooks compiled",
        compiled.len()
    );
    let failures = validate("validate_kfp.py", &compiled);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The runtime travels once per pipeline: the digits pipeline's YAML is at most 12.5 KB
/// per step (the runtime, compressed, is most of it; it grew with what carries the
/// notebook's process state, shared objects and code between steps), and a 30-step notebook stays far below etcd's 1.5 MiB object limit (the
/// Argo Workflow KFP creates holds every component).
#[test]
fn compiled_pipelines_carry_the_runtime_once() {
    let dir = tempfile::tempdir().unwrap();
    let digits = dir.path().join("digits.yaml");
    assert!(
        compile(&examples_dir().join("digits.ipynb"), &[], &digits)
            .status
            .success()
    );
    let text = std::fs::read_to_string(&digits).unwrap();
    let steps = 4;
    eprintln!(
        "digits: {} bytes, {} per step",
        text.len(),
        text.len() / steps
    );
    assert!(text.len() / steps <= 12_500, "{} bytes", text.len());
    let blob = &kale::kubeflow::kfp::runtime_bundle().blob;
    assert_eq!(text.matches(blob.as_str()).count(), 1);

    let mut cells: Vec<(Vec<String>, String)> = vec![
        (vec!["imports".into()], "import math".into()),
        (
            vec!["pipeline-parameters".into()],
            "rate = 0.5\nrounds = 3".into(),
        ),
        (vec!["step:s0".into()], "x0 = [rate] * rounds".into()),
    ];
    for i in 1..30 {
        cells.push((
            vec![format!("step:s{i}"), format!("prev:s{}", i - 1)],
            format!(
                "# step {i}: a few lines of ordinary notebook code\nx{i} = [math.sqrt(v + {i}) for v in x{}]\ntotal_{i} = sum(x{i})\nprint(f\"step {i}: {{total_{i}:.3f}}\")",
                i - 1
            ),
        ));
    }
    cells.push((vec!["pipeline-metrics".into()], "print(total_29)".into()));
    let owned: Vec<(Vec<&str>, &str)> = cells
        .iter()
        .map(|(t, s)| (t.iter().map(String::as_str).collect(), s.as_str()))
        .collect();
    let cs: Vec<C> = owned
        .iter()
        .map(|(t, s)| C::Code(t.as_slice(), s))
        .collect();
    let nb = write_notebook(dir.path(), "thirty.ipynb", &cs, None);
    let thirty = dir.path().join("thirty.yaml");
    let res = compile(&nb, &[], &thirty);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let size = std::fs::metadata(&thirty).unwrap().len();
    eprintln!("30 steps: {size} bytes");
    assert!(size < 200 * 1024, "{size} bytes");
    let failures = validate("validate_kfp.py", &[digits, thirty]);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The files the runtime task unpacks for the notebook itself: its last argument,
/// decoded (`shared-<digest>.py` → text).
fn shared_cells_of(spec: &Value) -> serde_json::Map<String, Value> {
    use base64::Engine as _;
    let args = spec["deploymentSpec"]["executors"]["exec-kale-runtime"]["container"]["args"]
        .as_array()
        .unwrap();
    let Some(blob) = args.get(5) else {
        return serde_json::Map::new();
    };
    let packed = base64::engine::general_purpose::STANDARD
        .decode(blob.as_str().unwrap())
        .unwrap();
    let files: Value =
        serde_json::from_slice(&miniz_oxide::inflate::decompress_to_vec_zlib(&packed).unwrap())
            .unwrap();
    files.as_object().unwrap().clone()
}

/// A notebook with a ~10 KB functions cell and `steps` steps, each calling one of its
/// functions; the last prints `total`.
fn many_step_notebook(dir: &Path, steps: usize) -> PathBuf {
    let mut functions = String::from("def helper_0(v):\n    return v + 1\n");
    let mut i = 1;
    while functions.len() < 10_000 {
        functions.push_str(&format!(
            "\n\ndef helper_{i}(v):\n    \"\"\"Shared helper number {i}: each step of the pipeline may call it.\"\"\"\n    return helper_{}(v) + {i} % 3\n",
            i - 1
        ));
        i += 1;
    }
    let mut cells: Vec<(Vec<String>, String)> = vec![
        (vec!["imports".into()], "import math".into()),
        (vec!["functions".into()], functions),
        (vec!["pipeline-parameters".into()], "start = 2".into()),
        (vec!["step:s0".into()], "x0 = helper_0(start)".into()),
    ];
    for k in 1..steps {
        let last = if k == steps - 1 {
            format!("\ntotal = x{k}")
        } else {
            String::new()
        };
        cells.push((
            vec![format!("step:s{k}"), format!("prev:s{}", k - 1)],
            format!("x{k} = helper_{k}(x{}) + math.floor(0.5){last}", k - 1),
        ));
    }
    cells.push((vec!["pipeline-metrics".into()], "print(total)".into()));
    let owned: Vec<(Vec<&str>, &str)> = cells
        .iter()
        .map(|(t, s)| (t.iter().map(String::as_str).collect(), s.as_str()))
        .collect();
    let cs: Vec<C> = owned
        .iter()
        .map(|(t, s)| C::Code(t.as_slice(), s))
        .collect();
    write_notebook(dir, &format!("many{steps}.ipynb"), &cs, None)
}

/// The imports and functions cells travel once per pipeline, in the runtime task: a
/// 10 KB functions cell adds ~10 KB to the pipeline, not 10 KB per step, and the steps
/// still run them (here under the emulated launcher, in kfp_local.rs under KFP's own).
#[test]
fn shared_cells_travel_once_per_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    let mut files = Vec::new();
    for steps in [2, 8] {
        let nb = many_step_notebook(dir.path(), steps);
        let out = dir.path().join(format!("many{steps}.yaml"));
        let res = compile(&nb, &[], &out);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        // No step carries the functions cell: only the runtime task, compressed.
        assert!(!text.contains("Shared helper number"), "{steps} steps");
        let spec = &yaml_docs(&text)[0];
        let shared = shared_cells_of(spec);
        assert_eq!(shared.len(), 1, "{:?}", shared.keys());
        let (name, body) = shared.iter().next().unwrap();
        let body = body.as_str().unwrap();
        assert_eq!(body.matches("def helper_0(v):").count(), 1);
        assert!(body.contains("import math"));
        let digest = name
            .strip_prefix("shared-")
            .and_then(|n| n.strip_suffix(".py"))
            .unwrap();
        for (label, exec) in spec["deploymentSpec"]["executors"].as_object().unwrap() {
            if label == "exec-kale-runtime" {
                continue;
            }
            let args = exec["container"]["args"].as_array().unwrap();
            let program = args.windows(2).find(|w| w[0] == "--program").unwrap()[1]
                .as_str()
                .unwrap();
            assert_eq!(
                program
                    .lines()
                    .filter(|l| *l == format!("# kale: shared cells {digest}"))
                    .count(),
                1,
                "{label}: {program}"
            );
        }
        // What the steps compute is what the notebook computes.
        let root = tempfile::tempdir().unwrap();
        let runs = emulate_kfp(spec, &json!({"start": 5}), root.path());
        for (task, o) in &runs {
            assert!(
                o.status.success(),
                "task {task} failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let last = format!("s{}", steps - 1);
        let metrics: Value = serde_json::from_slice(
            &std::fs::read(root.path().join(&last).join("kale-metrics")).unwrap(),
        )
        .unwrap();
        let run = kale()
            .args(["run", "--json", "-p", "start=5"])
            .arg(&nb)
            .env("KALE_PYTHON", python())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let doc: Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(metrics["total"], doc["metrics"]["total"], "{doc}");
        sizes.push(text.len());
        files.push(out);
    }
    let per_extra_step = (sizes[1] - sizes[0]) / 6;
    eprintln!(
        "2 steps: {} bytes, 8 steps: {} bytes, {per_extra_step} per extra step",
        sizes[0], sizes[1]
    );
    assert!(per_extra_step < 4_000, "{sizes:?}");
    let failures = validate("validate_kfp.py", &files);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// On a stock Python image the steps install the notebook's third-party packages,
/// pinned to the local Python's versions; what the local Python lacks is named.
#[test]
fn stock_python_images_get_the_notebooks_packages_pinned_or_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let nb = examples_dir().join("digits.ipynb");
    let version = |module: &str| {
        let out = Command::new(python())
            .args([
                "-c",
                &format!("import {module}; print({module}.__version__)"),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let out = dir.path().join("pinned.yaml");
    let res = kale()
        .arg("compile")
        .arg(&nb)
        .arg("-o")
        .arg(&out)
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    let want = [
        format!("numpy=={}", version("numpy")),
        format!("scikit-learn=={}", version("sklearn")),
    ];
    assert!(
        stderr.contains(&format!("install {}, {} at start", want[0], want[1])),
        "{stderr}"
    );
    let spec = &yaml_docs(&std::fs::read_to_string(&out).unwrap())[0];
    for (label, exec) in spec["deploymentSpec"]["executors"].as_object().unwrap() {
        let args: Vec<&str> = exec["container"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let pins: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--install")
            .map(|w| w[1])
            .collect();
        if label == "exec-kale-runtime" {
            assert!(pins.is_empty());
        } else {
            assert_eq!(pins, want, "{label}");
        }
    }

    let res = kale()
        .arg("compile")
        .arg(&nb)
        .arg("-o")
        .arg(dir.path().join("unpinned.yaml"))
        .env("KALE_PYTHON", dir.path().join("no-such-python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: steps on `python:3.11` import `numpy`, `sklearn`, which the image lacks and kale cannot pin"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(dir.path().join("unpinned.yaml")).unwrap();
    assert!(!text.contains("--install"));
    // `validate` warns the same, and counts it; with the packages pinnable it is quiet.
    let res = kale()
        .arg("validate")
        .arg(&nb)
        .env("KALE_PYTHON", dir.path().join("no-such-python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: steps on `python:3.11` import `numpy`, `sklearn`, which the image lacks and kale cannot pin"),
        "{stderr}"
    );
    assert!(stderr.contains("1 warning"), "{stderr}");
    let res = kale()
        .arg("validate")
        .arg(&nb)
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // An image of the user's own is trusted to have its libraries.
    let custom = write_notebook(
        dir.path(),
        "custom.ipynb",
        &[
            C::Code(&["imports"], "import numpy as np"),
            C::Code(&["step:a"], "x = np.zeros(3)"),
        ],
        Some(json!({"base_image": "ghcr.io/me/ds:1"})),
    );
    let res = kale()
        .arg("compile")
        .arg(&custom)
        .arg("-o")
        .arg(dir.path().join("custom.yaml"))
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    assert!(res.status.success());
    assert!(!String::from_utf8_lossy(&res.stderr).contains("numpy"));
    let text = std::fs::read_to_string(dir.path().join("custom.yaml")).unwrap();
    assert!(!text.contains("--install"));
}

/// `kale compile` reads the packages' versions from the interpreter's site directories
/// and knows the standard library by name: it starts no Python for either. The
/// interpreter here is a stand-in that leaves a file behind if it is ever run, in a
/// venv whose site-packages is the test Python's.
#[test]
fn compile_pins_packages_without_starting_python() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("python-ran");
    let real_venv: PathBuf = String::from_utf8(
        Command::new(python())
            .args(["-c", "import sys; print(sys.prefix)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .into();
    assert!(
        real_venv.join("pyvenv.cfg").exists(),
        "the test Python is a venv"
    );
    let venv = dir.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::copy(real_venv.join("pyvenv.cfg"), venv.join("pyvenv.cfg")).unwrap();
    std::os::unix::fs::symlink(real_venv.join("lib"), venv.join("lib")).unwrap();
    let stand_in = venv.join("bin/python3");
    std::fs::write(
        &stand_in,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();

    let version = |module: &str| {
        let out = Command::new(python())
            .args([
                "-c",
                &format!("import {module}; print({module}.__version__)"),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let out = dir.path().join("digits.yaml");
    let res = kale()
        .arg("compile")
        .arg(examples_dir().join("digits.ipynb"))
        .arg("-o")
        .arg(&out)
        .env("KALE_PYTHON", &stand_in)
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "install numpy=={}, scikit-learn=={} at start",
            version("numpy"),
            version("sklearn")
        )),
        "{stderr}"
    );
    assert!(!marker.exists(), "compile ran the interpreter");

    // A notebook importing only the standard library needs no interpreter at all.
    let nb = write_notebook(
        dir.path(),
        "stdlib.ipynb",
        &[
            C::Code(
                &["imports"],
                "import json, math, os.path\nfrom collections import Counter",
            ),
            C::Code(&["step:a"], "x = json.dumps(Counter('aab')) + str(math.pi)"),
        ],
        None,
    );
    let res = kale()
        .arg("compile")
        .arg(&nb)
        .arg("-o")
        .arg(dir.path().join("stdlib.yaml"))
        .env("KALE_PYTHON", dir.path().join("no-such-python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join("stdlib.yaml")).unwrap();
    assert!(!text.contains("--install"));
}

/// A credential-looking pipeline parameter with a default is said to end up in the
/// YAML in plain text, with KFP's secrets as the way out; the "reads files" warning
/// names data files, not URLs or the secrets Kubernetes mounts.
#[test]
fn credentials_in_parameters_are_warned_about_and_secret_reads_are_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "creds.ipynb",
        &[
            C::Code(
                &["pipeline-parameters"],
                "api_key = \"sk-live-123\"\ndb_password = \"\"\nmax_tokens = 64\nlr = 0.1",
            ),
            C::Code(
                &["step:fetch"],
                "token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\nremote = open('/etc/secrets/db/password').read()\nimport urllib.request\nimport pandas as pd\ntable = pd.read_csv('https://example.com/data.csv')\nlocal = open('data/train.csv').read()\nn = len(api_key) + len(db_password) + max_tokens + lr",
            ),
        ],
        None,
    );
    let out = dir.path().join("p.yaml");
    let res = compile(&nb, &[], &out);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: pipeline parameter `api_key` looks like a credential, and its default is written into the pipeline in plain text"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`secret:SECRET_NAME:KEY:ENV_VAR` tag"),
        "{stderr}"
    );
    // An empty default gives nothing away; `max_tokens` is no token.
    assert!(!stderr.contains("`db_password`"), "{stderr}");
    assert!(!stderr.contains("`max_tokens`"), "{stderr}");
    assert!(
        stderr.contains("step `fetch` reads files (data/train.csv)"),
        "{stderr}"
    );
    // The cache warning leaves out URLs and mounted secrets (the note naming what the
    // image or a volume must provide does name them).
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert!(!stderr.contains("example.com"), "{stderr}");
    assert!(
        !warnings.iter().any(|w| w.contains("/var/run/secrets")),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("note: step `fetch` reads `/etc/secrets/db/password`, which no step writes"),
        "{stderr}"
    );
    let failures = validate("validate_kfp.py", &[out]);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The runtime and the bootstrap ship without their docstrings: Python's own parser
/// finds the same program in the shipped text as in the source, docstrings aside.
#[test]
fn shipped_sources_are_the_same_code_without_docstrings() {
    let check = r#"
import ast, sys
def strip(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)
original, shipped = open(sys.argv[1]).read(), open(sys.argv[2]).read()
assert strip(ast.parse(original)) == strip(ast.parse(shipped)), sys.argv[1]
assert '"""' not in shipped.split("\n", 3)[0]
print(len(original), len(shipped))
"#;
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in [
        ("kale_runtime.py", kale::codegen::RUNTIME_SOURCE),
        ("kfp_bootstrap.py", kale::kubeflow::kfp::BOOTSTRAP_SOURCE),
    ] {
        let original = dir.path().join(format!("original-{name}"));
        let shipped = dir.path().join(format!("shipped-{name}"));
        std::fs::write(&original, source).unwrap();
        std::fs::write(&shipped, kale::kubeflow::kfp::shipped_source(source)).unwrap();
        let out = Command::new(python())
            .arg("-c")
            .arg(check)
            .arg(&original)
            .arg(&shipped)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The runtime ships without its comment-only lines: that is only safe while no line of
/// a multi-line string starts with `#`, which Python's own tokenizer checks here.
#[test]
fn shipped_sources_lose_only_comments() {
    let check = r##"
import io, sys, tokenize
bad = []
for path in sys.argv[1:]:
    src = open(path, encoding="utf-8").read()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.STRING:
            for i, line in enumerate(tok.string.splitlines()[1:], tok.start[0] + 1):
                if line.lstrip().startswith("#"):
                    bad.append("%s:%d" % (path, i))
print("\n".join(bad))
"##;
    let out = Command::new(python())
        .arg("-c")
        .arg(check)
        .arg(manifest_dir().join("src/runtime/kale_runtime.py"))
        .arg(manifest_dir().join("src/kubeflow/kfp_bootstrap.py"))
        .arg(manifest_dir().join("src/kubeflow/trial_driver.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = String::from_utf8_lossy(&out.stdout);
    assert!(
        bad.trim().is_empty(),
        "string lines that start with `#` would be dropped from the shipped runtime:\n{bad}"
    );
}
