//! The machine-readable side of the commands editors drive: `--events` (JSON lines of
//! progress) from `kale run` and `kale tune`, and `--stdin` / `validate --json` for an
//! editor's unsaved notebook.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{C, kale, kale_with_python, notebook_json, write_notebook};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn chain(dir: &Path, fail: bool) -> std::path::PathBuf {
    write_notebook(
        dir,
        "chain.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "k = 3"),
            C::Code(
                &["step:make"],
                "xs = list(range(k))\nprint('made', len(xs))",
            ),
            C::Code(
                &["step:total", "prev:make"],
                if fail {
                    "total = sum(xs)\nratio = total / 0"
                } else {
                    "total = sum(xs)"
                },
            ),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    )
}

#[test]
fn run_streams_each_step_and_ends_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let nb = chain(dir.path(), false);
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .args(["--events", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only events on stdout (the metrics table is in `run_finished`).
    let events = lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        kinds(&events),
        [
            "run_started",
            "step_started",
            "step_output",
            "step_finished",
            "step_started",
            "step_finished",
            "run_finished"
        ]
    );
    assert_eq!(
        events[0]["steps"],
        json!([
            {"name": "make", "depends_on": [], "cells": [2]},
            {"name": "total", "depends_on": ["make"], "cells": [3]},
        ])
    );
    assert_eq!(
        events[2],
        json!({"event": "step_output", "step": "make", "stream": "stdout", "line": "made 3"})
    );
    let end = events.last().unwrap();
    assert_eq!(end["status"], "succeeded");
    assert_eq!(end["metrics"], json!({"total": 3}));
    assert_eq!(end["error"], Value::Null);
    assert!(
        Path::new(end["run_dir"].as_str().unwrap())
            .join("manifest.json")
            .exists()
    );

    // The same run again: both steps come from the cache.
    let events_file = dir.path().join("again.jsonl");
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .arg("--events")
        .arg(&events_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = lines(&std::fs::read_to_string(&events_file).unwrap());
    let statuses: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| &e["status"])
        .collect();
    assert_eq!(statuses, [&json!("cached"), &json!("cached")]);
}

#[test]
fn a_failed_step_is_located_in_the_last_event() {
    let dir = tempfile::tempdir().unwrap();
    let nb = chain(dir.path(), true);
    let file = dir.path().join("events.jsonl");
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .arg("--events")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let events = lines(&std::fs::read_to_string(&file).unwrap());
    let failed = events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "total")
        .unwrap();
    assert_eq!(failed["status"], "failed");
    let end = events.last().unwrap();
    assert_eq!(end["event"], "run_finished");
    assert_eq!(end["status"], "failed");
    assert_eq!(end["error"]["step"], "total");
    assert_eq!(end["error"]["type"], "ZeroDivisionError");
    assert_eq!(end["error"]["cell"], 3);
    assert_eq!(end["error"]["line"], 2);
}

#[test]
fn json_and_events_on_stdout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nb = chain(dir.path(), false);
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .args(["--json", "--events", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give --events a file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tune_streams_trials_as_they_start_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "t.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 1.0"),
            C::Code(&["step:base"], "base = 10"),
            C::Code(
                &["step:score", "prev:base"],
                "if x > 2.5:\n    raise ValueError('too big')\nloss = (x - 1.8) ** 2 + base",
            ),
            C::Code(&["pipeline-metrics"], "print(loss)"),
        ],
        None,
    );
    let file = dir.path().join("tune.jsonl");
    let out = kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--objective",
            "loss:minimize",
            "--param",
            "x=discrete:1,2,3",
            "--algorithm",
            "grid",
            "--parallel",
            "1",
            "--max-trials",
            "3",
            "--max-failed",
            "5",
            "--json",
            "--events",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = lines(&std::fs::read_to_string(&file).unwrap());
    let start = &events[0];
    assert_eq!(start["event"], "tune_started");
    assert_eq!(
        start["objectives"],
        json!([{"name": "loss", "direction": "minimize"}])
    );
    assert_eq!(start["algorithm"], "grid");
    assert_eq!(start["max_trials"], 3);
    assert_eq!(start["parameters"][0]["name"], "x");

    let started: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "trial_started")
        .map(|e| e["trial"].as_i64().unwrap())
        .collect();
    assert_eq!(started, [0, 1, 2]);
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "trial_finished")
        .collect();
    assert_eq!(finished.len(), 3);
    // Each trial's end comes after its start, with the values the store kept.
    for f in &finished {
        let n = f["trial"].as_i64().unwrap();
        let at = |kind: &str| {
            events
                .iter()
                .position(|e| e["event"] == kind && e["trial"] == n)
                .unwrap()
        };
        assert!(at("trial_started") < at("trial_finished"));
        let stored = doc["trial_results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trial"] == n)
            .unwrap();
        assert_eq!(f["status"], stored["status"]);
        assert_eq!(f["values"], stored["values"]);
        assert_eq!(f["params"], stored["params"]);
    }
    let failed = finished.iter().find(|f| f["status"] == "failed").unwrap();
    assert_eq!(failed["params"], json!({"x": 3}));
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("step `score` failed at cell 3, line 2: ValueError"),
        "{failed}"
    );

    // Progress only when something but the clock moved; the last one has the counts.
    let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
    for pair in progress.windows(2) {
        let strip = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("elapsed");
            v
        };
        assert_ne!(strip(pair[0]), strip(pair[1]));
    }
    let last = progress.last().unwrap();
    assert_eq!(
        (last["succeeded"].as_u64(), last["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(last["best"]["trial"], doc["best"]["trial"]);

    let end = events.last().unwrap();
    assert_eq!(end["event"], "tune_finished");
    assert_eq!(end["status"], "succeeded");
    assert_eq!(end["best"]["trial"], doc["best"]["trial"]);
    assert_eq!(end["best"]["params"], json!({"x": 2}));
    assert_eq!(
        (end["succeeded"].as_u64(), end["failed"].as_u64()),
        (Some(2), Some(1))
    );
}

/// `kale COMMAND NB --stdin --json` with `text` on stdin.
fn from_stdin(command: &str, nb: &Path, text: String) -> std::process::Output {
    kale()
        .arg(command)
        .arg(nb)
        .args(["--stdin", "--json"])
        .write_stdin(text)
        .output()
        .unwrap()
}

#[test]
fn validate_and_inspect_read_an_unsaved_notebook_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    // On disk: a valid two-step notebook. In the editor: `total` lost its `prev:` tag.
    let nb = chain(dir.path(), false);
    let unsaved = notebook_json(
        &[
            C::Code(&["pipeline-parameters"], "k = 3"),
            C::Code(&["step:make"], "xs = list(range(k))"),
            C::Code(&["step:total"], "n = 1\ntotal = sum(xs)"),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    );
    let out = from_stdin("validate", &nb, unsaved.to_string());
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["pipeline"], Value::Null);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!((d["cell"].as_u64(), d["line"].as_u64()), (Some(3), Some(2)));
    assert!(d["message"].as_str().unwrap().contains("`xs`"), "{d}");
    assert!(d["hint"].as_str().unwrap().contains("prev:make"), "{d}");

    // The file itself is fine, and the JSON then carries the pipeline.
    let out = kale()
        .arg("validate")
        .arg(&nb)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["errors"], 0);
    assert_eq!(
        doc["pipeline"]["steps"][1]["input_sources"],
        json!({"xs": "make"})
    );

    // inspect --stdin: the editor's version, not the file's (`m` is new).
    let fixed = notebook_json(
        &[
            C::Code(&["pipeline-parameters"], "k = 3\nm = 2"),
            C::Code(&["step:make"], "xs = list(range(k))"),
            C::Code(&["step:total", "prev:make"], "n = 1\ntotal = sum(xs)"),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    );
    let out = from_stdin("inspect", &nb, fixed.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["parameters"][1]["name"], "m");
    assert!(
        std::fs::read_to_string(&nb)
            .unwrap()
            .contains("\"prev:make\""),
        "the file on disk is not touched"
    );

    // Not a notebook on stdin: located like a bad file, exit 2.
    let out = from_stdin("validate", &nb, "{\"cells\": ".into());
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{doc}"
    );
}
