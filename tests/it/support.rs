//! Shared helpers: build notebooks from (tags, source) pairs and run the binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

/// A code cell with tags, or a markdown cell.
pub enum C<'a> {
    Code(&'a [&'a str], &'a str),
    Md(&'a str),
}

pub fn notebook_json(cells: &[C], kubeflow: Option<Value>) -> Value {
    let cells: Vec<Value> = cells
        .iter()
        .map(|c| match c {
            C::Code(tags, src) => json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags}, "outputs": [], "source": src}),
            C::Md(src) => json!({"cell_type": "markdown", "metadata": {}, "source": src}),
        })
        .collect();
    let mut metadata = json!({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}});
    if let Some(k) = kubeflow {
        metadata["kubeflow_notebook"] = k;
    }
    json!({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})
}

/// Writes a notebook into `dir` and returns its path.
pub fn write_notebook(dir: &Path, name: &str, cells: &[C], kubeflow: Option<Value>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&notebook_json(cells, kubeflow)).unwrap(),
    )
    .unwrap();
    path
}

pub fn kale() -> Command {
    let mut cmd = Command::cargo_bin("kale").unwrap();
    // In a pod (a CI runner on Kubernetes), kale would make that pod's image the steps'
    // default; the tests that want that set it themselves.
    cmd.env_remove("KUBERNETES_SERVICE_HOST");
    cmd
}

/// Root of the shared corpus (`../shared/corpus` beside the project).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs `kale inspect --json` and parses the document; panics with stderr on failure.
pub fn inspect_json(path: &Path) -> Value {
    let out = kale()
        .arg("inspect")
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect failed for {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The step object named `name` in an inspect document.
pub fn step<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {doc:#}"))
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The Python the tests run steps with: `KALE_TEST_PYTHON` (set by `.ci/run`), else the
/// project's `.venv`, else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("KALE_TEST_PYTHON")
        && !p.is_empty()
    {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

/// `kale <args>` with the test Python selected.
pub fn kale_with_python() -> Command {
    let mut cmd = kale();
    cmd.env("KALE_PYTHON", python());
    cmd
}

/// Runs `kale run NB --json` and returns (exit code, JSON document or Null, stderr).
pub fn run_json(path: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = kale_with_python()
        .arg("run")
        .arg(path)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        doc,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs the command and asserts that it succeeded, showing its stderr when not.
pub fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A virtual environment with the standard library only (no numpy, no dill) beside the
/// test Python, in `dir/name`; returns its interpreter.
pub fn bare_venv(dir: &Path, name: &str) -> PathBuf {
    let venv = dir.join(name);
    let out = std::process::Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    venv.join("bin/python")
}

/// `kale run NB --json` with `interpreter` as KALE_PYTHON: (exit code, JSON or Null, stderr).
pub fn run_json_with(path: &Path, interpreter: &Path) -> (i32, Value, String) {
    let out = kale()
        .env("KALE_PYTHON", interpreter)
        .arg("run")
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        doc,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
