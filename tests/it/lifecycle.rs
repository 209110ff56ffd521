//! Experiment lifecycle: a tune that cannot start records nothing; delete, rename;
//! `kale run --params-from` replays a trial's parameters.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{C, kale, kale_with_python, run_json, succeed, write_notebook};

fn notebook(dir: &Path) -> std::path::PathBuf {
    write_notebook(
        dir,
        "quad.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0\ny = 'a'\nz = 0.5"),
            C::Code(
                &["step:score"],
                "score = -(x - 3) ** 2 - {'a': 1.0, 'b': 0.0, 'c': 2.0}[y] + 0 * z",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

fn list(dir: &Path) -> Value {
    let out = succeed(
        kale()
            .args(["experiments", "list", "--json", "-C"])
            .arg(dir),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn grid(nb: &Path, name: &str) {
    succeed(kale_with_python().arg("tune").arg(nb).args([
        "--objective",
        "score",
        "--algorithm",
        "grid",
        "--param",
        "x=int:0..5",
        "--param",
        "y=categorical:a,b,c",
        "--max-trials",
        "18",
        "--name",
        name,
    ]));
}

#[test]
fn a_tune_that_cannot_start_records_no_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    // Grid search cannot enumerate a double without a step.
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--algorithm",
            "grid",
            "--param",
            "z=double:0..6",
            "--name",
            "g",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("step"), "{stderr}");
    assert_eq!(list(dir.path()), json!([]));
    // The name is free for a tune that can run.
    grid(&nb, "g");
    let l = list(dir.path());
    assert_eq!(l[0]["name"], "g");
    assert_eq!(l[0]["status"], "succeeded");
}

#[test]
fn experiments_can_be_renamed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    grid(&nb, "first");
    grid(&nb, "second");
    let exp = |args: &[&str]| {
        kale()
            .arg("experiments")
            .args(args)
            .arg("-C")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(exp(&["rename", "first", "renamed"]).status.success());
    let names: Vec<Value> = list(dir.path())
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, [json!("renamed"), json!("second")]);
    // The trials came along.
    let out = succeed(
        kale()
            .args(["experiments", "show", "renamed", "--json", "-C"])
            .arg(dir.path()),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["trials"].as_array().unwrap().len(), 18);
    // Taken and unknown names are refused.
    let taken = exp(&["rename", "renamed", "second"]);
    assert_eq!(taken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    assert_eq!(exp(&["rename", "gone", "x"]).status.code(), Some(2));
    assert!(exp(&["delete", "renamed"]).status.success());
    assert_eq!(list(dir.path())[0]["name"], "second");
    assert_eq!(list(dir.path()).as_array().unwrap().len(), 1);
    assert_eq!(exp(&["delete", "renamed"]).status.code(), Some(2));
}

#[test]
fn run_params_from_replays_the_best_or_a_given_trial() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    grid(&nb, "g");
    // Best of the grid: x = 3, y = b, score 0.
    let (code, doc, stderr) = run_json(&nb, &["--params-from", "g"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["metrics"]["score"], json!(0.0));
    // A given trial, with its own parameters.
    let out = succeed(
        kale()
            .args(["experiments", "show", "g", "--json", "-C"])
            .arg(dir.path()),
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t0 = &shown["trials"][0];
    let (code, doc, stderr) = run_json(&nb, &["--params-from", "g/0"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        doc["metrics"]["score"],
        json!(t0["value"].as_f64().unwrap())
    );
    // -p still overrides.
    let (code, doc, _) = run_json(&nb, &["--params-from", "g", "-p", "y=c"]);
    assert_eq!(code, 0);
    assert_eq!(doc["metrics"]["score"], json!(-2.0));
    // Unknown experiment or trial: bad input.
    for spec in ["nope", "g/99", "g/x"] {
        let (code, _, stderr) = run_json(&nb, &["--params-from", spec]);
        assert_eq!(code, 2, "{spec}: {stderr}");
    }
}

#[test]
fn log_with_step_is_refused_and_silent_early_stopping_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--param",
            "z=double:0.1..100:log:step=10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`:log` and `:step` cannot be combined"),
        "{stderr}"
    );
    assert_eq!(list(dir.path()), json!([]));
    // The notebook prints no `score=` lines while it runs.
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "score",
            "--param",
            "x=int:0..5",
            "--max-trials",
            "3",
            "--early-stopping",
            "medianstop",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no step printed an intermediate `score=VALUE` line"),
        "{stderr}"
    );
}
