//! Compiled pipelines executed by Kubeflow Pipelines' own engine, `kfp.local` (kfp
//! 2.17, from the venv `scripts/validators-env` builds), through the harness
//! `tests/kfp_local/run_pipeline.py`: KFP orders the tasks, renders the placeholders,
//! passes parameters and artifacts and decides cache hits. The harness relaxes
//! kfp.local's refusal of container components (CI has no Docker) and uses the test
//! Python as the step image's interpreter; everything else is KFP's.
//!
//! For each notebook: `kale run` with default and with overridden parameters, then the
//! compiled pipeline with the same two parameter sets in one kfp.local session. The
//! metrics must be exactly `kale run`'s, the first run executes every task, and in the
//! second the tasks that neither use nor descend from a changed parameter are cache
//! hits while the others run again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::kubeflow::validators_python;
use crate::support::{C, corpus_dir, examples_dir, kale, python, write_notebook};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `kfp.local` session over `runs` (`(pipeline, cwd, params)`); returns the
/// harness's document. `env` goes to the harness (and so to the step processes).
fn kfp_local(runs: &[(&Path, &Path, Value)], env: &[(&str, &Path)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let plan = json!({
        "pipeline_root": dir.path().join("root"),
        "runs": runs.iter().map(|(p, cwd, params)| json!({"pipeline": p, "cwd": cwd, "params": params})).collect::<Vec<_>>(),
    });
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let out_path = dir.path().join("out.json");
    let mut cmd = Command::new(validators_python());
    cmd.arg(manifest_dir().join("tests/kfp_local/run_pipeline.py"))
        .arg(&plan_path)
        .arg(&out_path)
        .arg("--step-python")
        .arg(python())
        .env_remove("PYTHONPATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kfp.local harness failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("relaxes that guard because CI has no Docker"),
        "the harness must say it relaxes kfp.local's guard:\n{stderr}"
    );
    serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap()
}

/// Compiled with the test Python as kale's Python: steps on a stock image pin its
/// versions, which the step processes (the same Python) already have, so nothing is
/// installed.
fn compile(nb: &Path, out: &Path) {
    let res = kale()
        .arg("compile")
        .arg(nb)
        .arg("-o")
        .arg(out)
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "compile {}:\n{}",
        nb.display(),
        String::from_utf8_lossy(&res.stderr)
    );
}

/// The metrics of `kale run --json` with `-p` overrides. Compared as parsed doubles:
/// without serde_json's `float_roundtrip`, kale's reading of what the step wrote is off
/// by one ulp now and then, while the harness reads the step's file with Python.
fn kale_run(nb: &Path, params: &Value) -> BTreeMap<String, Value> {
    let mut cmd = kale();
    cmd.arg("run")
        .arg(nb)
        .arg("--json")
        .arg("--quiet")
        // Corpus notebooks ask for cluster GPUs (`limit:nvidia.com/gpu:2`).
        .arg("--ignore-gpu-limits")
        .env("KALE_PYTHON", python());
    for (k, v) in params.as_object().unwrap() {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        cmd.arg("-p").arg(format!("{k}={text}"));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kale run {} {params}:\n{stdout}\n{}",
        nb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    doc["metrics"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Tasks whose result depends on a parameter in `changed`: those that take it, and
/// every task downstream of one (its input artifacts are new).
fn affected_tasks(spec: &Value, changed: &BTreeSet<String>) -> BTreeSet<String> {
    let tasks = spec["root"]["dag"]["tasks"].as_object().unwrap();
    let mut affected = BTreeSet::new();
    loop {
        let before = affected.len();
        for (name, t) in tasks {
            let uses = t["inputs"]["parameters"].as_object().is_some_and(|ps| {
                ps.values().any(|p| {
                    p["componentInputParameter"]
                        .as_str()
                        .is_some_and(|n| changed.contains(n))
                })
            });
            let downstream = t["dependentTasks"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|d| affected.contains(d.as_str().unwrap())));
            if uses || downstream {
                affected.insert(name.clone());
            }
        }
        if affected.len() == before {
            return affected;
        }
    }
}

struct Case {
    notebook: PathBuf,
    /// The second run's parameters (the first uses the defaults).
    other: Value,
    /// Metrics that are deterministic (seeded code, or parameters reported as metrics),
    /// so kfp.local must give exactly `kale run`'s values; the others (unseeded random
    /// draws) must be present.
    exact: &'static [&'static str],
}

/// Copies the notebook's directory into a temporary one: steps run in the notebook's
/// directory and may write there, and `kale run` keeps `.kale/` beside it.
fn private_copy(nb: &Path, tmp: &Path) -> PathBuf {
    let src_dir = nb.parent().unwrap();
    for e in std::fs::read_dir(src_dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, tmp.join(p.file_name().unwrap())).unwrap();
        }
    }
    tmp.join(nb.file_name().unwrap())
}

/// Runs the case; returns the tasks that were cache hits in the second run.
fn check_case(case: &Case) -> BTreeSet<String> {
    let tmp = tempfile::tempdir().unwrap();
    let nb = private_copy(&case.notebook, tmp.path());
    let label = case.notebook.display().to_string();
    let want_default = kale_run(&nb, &json!({}));
    let want_other = kale_run(&nb, &case.other);

    let yaml = tmp.path().join("pipeline.yaml");
    compile(&nb, &yaml);
    let spec =
        &serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(&yaml).unwrap()).unwrap()[0];
    let doc = kfp_local(
        &[
            (&yaml, tmp.path(), json!({})),
            (&yaml, tmp.path(), case.other.clone()),
        ],
        &[],
    );
    let runs = doc["runs"].as_array().unwrap();
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(
            run["status"], "succeeded",
            "{label}: kfp.local run {i} failed: {}\n{:#}",
            run["error"], run["tasks"]
        );
    }
    let all: BTreeSet<String> = spec["root"]["dag"]["tasks"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let first: BTreeSet<String> = runs[0]["tasks"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(first, all, "{label}: every task runs");
    for (task, t) in runs[0]["tasks"].as_object().unwrap() {
        assert_eq!(t["cached"], false, "{label}: {task} in a fresh cache");
        assert!(
            !t["log"].as_str().unwrap().contains("installs"),
            "{label}: {task} installed packages its image has"
        );
    }

    let changed: BTreeSet<String> = case.other.as_object().unwrap().keys().cloned().collect();
    let affected = affected_tasks(spec, &changed);
    assert!(!affected.contains("kale-runtime"));
    for (task, t) in runs[1]["tasks"].as_object().unwrap() {
        // A task compiled with caching off (the notebook's `enable_caching: false`, a
        // `cache:` tag) always runs.
        let enabled = spec["root"]["dag"]["tasks"][task]["cachingOptions"]["enableCache"] == true;
        assert_eq!(
            t["cached"],
            enabled && !affected.contains(task),
            "{label}: {task} with {}: affected tasks are {affected:?}",
            case.other
        );
    }

    for (run, want) in runs.iter().zip([&want_default, &want_other]) {
        let got: BTreeMap<String, Value> = run["metrics"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{label}"
        );
        for name in case.exact {
            assert_eq!(
                got.get(*name),
                want.get(*name),
                "{label}: metric {name} of kfp.local vs kale run"
            );
        }
    }
    let cached = runs[1]["tasks"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, t)| t["cached"] == true)
        .map(|(k, _)| k.clone())
        .collect();
    eprintln!("{label}: second run's cache hits: {cached:?}");
    cached
}

#[test]
fn digits_runs_under_kfp_local_with_kale_runs_metrics_and_cache_hits() {
    let cached = check_case(&Case {
        notebook: examples_dir().join("digits.ipynb"),
        other: json!({"C": 10.0, "gamma": 0.01}),
        exact: &["accuracy", "f1"],
    });
    // Loading and scaling do not read C or gamma: KFP reuses them, as Katib trials would.
    assert_eq!(
        cached,
        BTreeSet::from(["kale-runtime".into(), "load-data".into(), "scale".into()])
    );
}

/// The corpus notebooks `kale run` can run with the test environment (no TensorFlow,
/// PyTorch, datasets or cluster volumes).
#[test]
fn runnable_corpus_notebooks_run_under_kfp_local() {
    let pypi = corpus_dir().join("kale-tests/pypi_kubeflow-kale-2.3.0");
    let cases = [
        // `strtest` is read by no step: the second run takes `create_matrix` from KFP's
        // cache (`sum_matrix` runs again: the notebook turns caching off, the step
        // turns it back on with `cache:enabled`).
        Case {
            notebook: pypi.join("kale/tests/assets/notebooks/pipeline_parameters_and_metrics.ipynb"),
            other: json!({"strtest": "other"}),
            exact: &["d1", "d2"],
        },
        Case {
            notebook: pypi.join("kale/tests/assets/notebooks/pipeline_parameters_and_metrics.ipynb"),
            other: json!({"d1": 3}),
            exact: &["d1", "d2"],
        },
        Case {
            notebook: pypi.join("examples/iris/sklearn/iris.ipynb"),
            other: json!({"N_ESTIMATORS": 50, "MAX_DEPTH": 3}),
            exact: &[],
        },
        Case {
            notebook: pypi.join("examples/serving/sklearn/iris.ipynb"),
            other: json!({"MAX_DEPTH": 4}),
            exact: &[],
        },
        Case {
            notebook: pypi.join("examples/base/candies_sharing.ipynb"),
            other: json!({"CANDIES": 40}),
            exact: &[],
        },
        // No parameters: the second, identical run is all cache hits.
        Case {
            notebook: pypi.join("examples/composition/notebook_a.ipynb"),
            other: json!({}),
            exact: &[],
        },
        Case {
            notebook: corpus_dir().join(
                "kale-tests/kubeflow-kale_kale@1b95a35_2019-history/backend/kale/tests/notebooks/test_tag_parsing.ipynb",
            ),
            other: json!({}),
            exact: &[],
        },
    ];
    for case in &cases {
        check_case(case);
    }
}

/// A step that raises is reported against the notebook on KFP as `kale run` reports it:
/// the task's log and its termination message (which Argo makes the error KFP shows)
/// name the step, the cell and the line.
#[test]
fn a_failing_step_names_the_same_cell_and_line_as_kale_run() {
    let dir = tempfile::tempdir().unwrap();
    let cell_line = regex::Regex::new(r"cell (\d+), line (\d+)").unwrap();
    let notebooks = [
        ("plain.ipynb", "z = x + y\nw = z / 0"),
        // IPython syntax: the cell runs through IPython, under the name `<cell N>`.
        ("magic.ipynb", "!true\nz = x + y\nw = z / 0"),
    ];
    for (name, failing) in notebooks {
        let nb = write_notebook(
            dir.path(),
            name,
            &[
                C::Md("# a failing pipeline"),
                C::Code(&["step:a"], "x = 1\ny = 2"),
                C::Code(&["step:b", "prev:a"], failing),
            ],
            None,
        );
        let local = kale()
            .arg("run")
            .arg(&nb)
            .env("KALE_PYTHON", python())
            .output()
            .unwrap();
        assert_eq!(local.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&local.stderr);
        let caps = cell_line
            .captures(&stderr)
            .unwrap_or_else(|| panic!("{name}: kale run does not locate: {stderr}"));
        let want = format!("step `b` failed at cell {}, line {}", &caps[1], &caps[2]);

        let yaml = dir.path().join(format!("{name}.yaml"));
        compile(&nb, &yaml);
        let term = dir.path().join(format!("{name}.termination-log"));
        std::fs::write(&term, "").unwrap();
        let doc = kfp_local(
            &[(&yaml, dir.path(), json!({}))],
            &[("KALE_TERMINATION_LOG", &term)],
        );
        let run = &doc["runs"][0];
        assert_eq!(run["status"], "failed", "{name}");
        assert!(
            run["error"]
                .as_str()
                .unwrap()
                .contains("Inner task failed: 'b'"),
            "{name}: {}",
            run["error"]
        );
        assert_eq!(run["tasks"]["a"]["status"], "succeeded");
        // kfp.local indents a task's output; on a cluster it is the pod's log as is.
        let log = run["tasks"]["b"]["log"].as_str().unwrap();
        let lines: Vec<&str> = log.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| *l == format!("kale: {want}: ZeroDivisionError: division by zero"))
            .unwrap_or_else(|| panic!("{name}: {want} not in the task log:\n{log}"));
        assert_eq!(
            lines[at + 1],
            "w = z / 0",
            "{name}: the failing line follows"
        );
        let message = std::fs::read_to_string(&term).unwrap();
        assert!(
            message.starts_with(&format!("{want}: ZeroDivisionError")),
            "{name}: termination message {message:?}"
        );
    }
}
