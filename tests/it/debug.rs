//! `kale runs` and `kale debug`: a step of a recorded run reopened as a notebook, and
//! executed cell by cell with IPython as Jupyter would.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{C, kale, kale_with_python, python, run_json, write_notebook};

/// Runs the code cells of a notebook in order in one IPython shell, with the notebook's
/// directory as working directory (as Jupyter does); stops at the first error.
/// Returns (stdout of the cells, {"cells": n, "error": {type, message, kale} | null}).
fn execute(notebook: &Path) -> (String, Value) {
    const DRIVER: &str = r#"
import json, sys
from traitlets.config import Config
from IPython.core.interactiveshell import InteractiveShell
cfg = Config()
cfg.HistoryManager.enabled = False
cfg.InteractiveShell.colors = "nocolor"
shell = InteractiveShell.instance(config=cfg)
nb = json.load(open(sys.argv[1], encoding="utf-8"))
result = {"cells": 0, "error": None}
for cell in nb["cells"]:
    if cell["cell_type"] != "code":
        continue
    r = shell.run_cell("".join(cell["source"]), store_history=False)
    result["cells"] += 1
    err = r.error_before_exec or r.error_in_exec
    if err is not None:
        result["error"] = {"type": type(err).__name__, "message": str(err),
                           "kale": cell["metadata"].get("kale_debug")}
        break
sys.stdout.flush()
print("KALE-RESULT " + json.dumps(result))
"#;
    let ipython_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(DRIVER)
        .arg(notebook)
        .current_dir(notebook.parent().unwrap())
        .env("IPYTHONDIR", ipython_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("KALE-RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "driver failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (stdout.clone(), serde_json::from_str(result).unwrap())
}

/// `kale debug ... --json` in `dir`; returns the written notebook's path.
fn debug(dir: &Path, args: &[&str]) -> PathBuf {
    let out = kale()
        .arg("debug")
        .args(args)
        .arg("--json")
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kale debug {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(doc["path"].as_str().unwrap())
}

fn manifest(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap()).unwrap()
}

fn step<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

/// Output name → hash, as the check cell printed them.
fn checked_hashes(stdout: &str) -> Vec<(String, String, bool)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (name, hash, verdict) = (parts.next()?, parts.next()?, parts.next()?);
            hash.starts_with("sha256:").then(|| {
                (
                    name.to_string(),
                    hash.to_string(),
                    verdict == "same as the run",
                )
            })
        })
        .collect()
}

fn failing_notebook(dir: &Path) -> PathBuf {
    write_notebook(
        dir,
        "ratios.ipynb",
        &[
            C::Code(&["imports"], "import numpy as np\nimport pandas as pd"),
            C::Code(&["functions"], "def ratio(a, b):\n    return a / b"),
            C::Code(&["pipeline-parameters"], "scale = 2\ndenom = 1.0"),
            C::Code(
                &["step:load"],
                "xs = np.arange(5) * scale\ndf = pd.DataFrame({'x': xs, 'y': xs ** 2})\nzero = denom - 1.0",
            ),
            C::Code(
                &["step:compute", "prev:load"],
                "total = float(df['y'].sum()) * scale",
            ),
            C::Code(&[], "r = ratio(total, zero)\nprint('ratio', r)"),
            C::Code(&["step:report", "prev:compute"], "out = r * 2"),
        ],
        None,
    )
}

#[test]
fn failing_step_reopens_with_its_data_and_raises_the_same_exception() {
    let dir = tempfile::tempdir().unwrap();
    let nb = failing_notebook(dir.path());
    let (code, doc, stderr) = run_json(&nb, &["-p", "scale=3"]);
    assert_eq!(code, 1, "{stderr}");
    let run_dir = PathBuf::from(doc["run_dir"].as_str().unwrap());
    let m = manifest(&run_dir);
    let run_id = m["run_id"].as_str().unwrap();
    let error = &step(&m, "compute")["error"];
    assert_eq!(error["type"], "ZeroDivisionError", "{m:#}");

    // `runs list` names the failing step.
    let out = kale()
        .args(["runs", "list", "--json"])
        .arg(&nb)
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["run"], json!(run_id));
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["failed_step"], "compute");

    // The plain form prints the path and the next command; STEP defaults to the failed one.
    let out = kale()
        .args(["debug", &run_id[..12]])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let path = dir.path().join(path);
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        format!("ratios.kale-debug-compute-{run_id}.ipynb")
    );
    assert!(stderr.contains("next: jupyter lab "), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    let generated: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // After the imports and functions cells, as in the step program.
    let cells = generated["cells"].as_array().unwrap();
    let at = cells
        .iter()
        .position(|c| c["metadata"]["kale_debug"]["role"] == "snapshot")
        .expect("a loader cell");
    let roles: Vec<&str> = cells[..at]
        .iter()
        .filter_map(|c| c["metadata"]["kale_debug"]["role"].as_str())
        .collect();
    assert_eq!(roles, ["imports", "functions"]);
    let loader: String = cells[at]["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(loader.contains("scale = 3"), "{loader}");
    assert!(loader.contains("\"df\": \".kale/runs/"), "{loader}");

    let (stdout, result) = execute(&path);
    let err = &result["error"];
    assert_eq!(err["type"], error["type"], "{stdout}");
    assert_eq!(err["message"], error["message"], "{stdout}");
    // Raised where the run raised it: in `ratio` (the functions cell, 2), called from
    // the step's second cell (6).
    assert_eq!(error["cell"], json!(2));
    assert_eq!(err["kale"], json!({"role": "step", "cell": 6}), "{stdout}");
    assert!(stdout.contains("in ratio(a, b)"), "{stdout}");
    // imports, functions, the step's two cells, after the loader
    assert_eq!(result["cells"], json!(5));
}

#[test]
fn succeeded_step_recomputes_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let nb = failing_notebook(dir.path());
    let (code, doc, stderr) = run_json(&nb, &[]);
    assert_eq!(code, 1, "{stderr}");
    let run_dir = PathBuf::from(doc["run_dir"].as_str().unwrap());
    let m = manifest(&run_dir);
    let run_id = m["run_id"].as_str().unwrap();
    let path = debug(dir.path(), &[run_id, "load"]);
    let (stdout, result) = execute(&path);
    assert_eq!(result["error"], Value::Null, "{stdout}");
    let recorded: Vec<(String, String, bool)> = step(&m, "load")["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["hash"].as_str().unwrap().to_string(),
                true,
            )
        })
        .collect();
    let mut checked = checked_hashes(&stdout);
    checked.sort();
    let mut recorded = recorded;
    recorded.sort();
    assert_eq!(checked, recorded, "{stdout}");

    // `runs show` lists the outputs with their hashes, and the step that read them.
    let out = kale()
        .args(["runs", "show", run_id, "--json", "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["data"]["complete"], true);
    let input = &step(&shown, "compute")["inputs"]["df"];
    assert_eq!(input["step"], "load");
    assert_eq!(input["location"], "run");
    assert!(input["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn pruned_snapshot_names_what_is_gone_and_pinned_runs_keep_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let nb = failing_notebook(dir.path());
    let (_, first, _) = run_json(&nb, &[]);
    let first = first["run_id"].as_str().unwrap().to_string();
    let (_, second, _) = run_json(&nb, &["-p", "scale=5"]);
    let second = second["run_id"].as_str().unwrap().to_string();
    let pin = kale()
        .args(["runs", "pin", &second, "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(pin.status.success());
    let prune = kale()
        .args(["cache", "prune", "--keep-runs", "0", "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );

    let out = kale()
        .args(["debug", &first, "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the snapshot of run `{first}` is incomplete: 1 of the inputs step `compute` read has been pruned"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("gone: `df` (saved by step `load`"),
        "{stderr}"
    );
    assert!(stderr.contains("kale runs pin"), "{stderr}");

    let shown = kale()
        .args(["runs", "show", &first, "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("objects pruned") && text.contains("PRUNED"),
        "{text}"
    );

    // The pinned run kept everything.
    let path = debug(dir.path(), &[&second]);
    let (stdout, result) = execute(&path);
    assert_eq!(result["error"]["type"], "ZeroDivisionError", "{stdout}");
}

#[test]
fn trial_of_a_tuning_experiment_reopens_by_experiment_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "tuned.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 1"),
            C::Code(&["step:base"], "base = list(range(4))"),
            C::Code(
                &["step:fit", "prev:base"],
                "ys = [(b - x) ** 2 for b in base]\nscore = -sum(ys)",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    crate::support::succeed(kale_with_python().arg("tune").arg(&nb).args([
        "--objective",
        "score",
        "--algorithm",
        "grid",
        "--param",
        "x=int:2..3",
        "--max-trials",
        "2",
        "--name",
        "grid1",
        "--json",
    ]));
    let path = debug(dir.path(), &["grid1/1", "fit"]);
    let text = std::fs::read_to_string(&path).unwrap();
    let shown = kale()
        .args(["runs", "show", "grid1/1", "--json", "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["trial"], json!(1));
    let x = &shown["parameters"]["x"];
    assert!(text.contains(&format!("x = {x}")), "{text}");
    let (stdout, result) = execute(&path);
    assert_eq!(result["error"], Value::Null, "{stdout}");
    let checked = checked_hashes(&stdout);
    assert_eq!(checked.len(), 1, "{stdout}");
    assert!(checked[0].2, "{stdout}");
    assert!(text.contains("trial `grid1/1`"), "{text}");
}
