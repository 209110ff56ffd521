//! `kale tune` end to end with real Python, the real step cache and a real SQLite store.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{C, kale_with_python, write_notebook};

/// A notebook with an expensive-looking parameter-independent step that leaves a side
/// effect (one line per execution in `executions.log`), and a cheap tuned step whose
/// objective peaks at x = 3, y = "b".
fn quadratic(dir: &Path, sleep: f64) -> std::path::PathBuf {
    write_notebook(
        dir,
        "quad.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0.0\ny = 'a'\nn = 1"),
            C::Code(
                &["step:prepare"],
                &format!(
                    "with open('executions.log', 'a') as log:\n    log.write('prepare\\n')\ntime.sleep({sleep})\noffsets = {{'a': 1.0, 'b': 0.0, 'c': 2.0}}"
                ),
            ),
            C::Code(
                &["step:score", "prev:prepare"],
                "score = -(x - 3) ** 2 - offsets[y] + n * 0",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

fn tune_json(nb: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = kale_with_python()
        .arg("tune")
        .arg(nb)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn show(nb: &Path, name: &str) -> Value {
    let out = crate::support::succeed(
        crate::support::kale()
            .args(["experiments", "show", name, "--json", "--dir"])
            .arg(nb.parent().unwrap()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn grid_search_finds_the_known_best_point_and_runs_shared_steps_once() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.0);
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "score",
            "--algorithm",
            "grid",
            "--param",
            "x=int:0..5",
            "--param",
            "y=categorical:a,b,c",
            "--max-trials",
            "100",
            "--parallel",
            "3",
            "--name",
            "grid1",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("maximize `score` (direction from the default)"),
        "{stderr}"
    );
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["reason"], "search space exhausted");
    assert_eq!(doc["trials"]["total"], json!(18));
    assert_eq!(doc["trials"]["succeeded"], json!(18));
    assert_eq!(doc["best"]["params"], json!({"x": 3, "y": "b"}));
    assert_eq!(doc["best"]["metrics"]["score"].as_f64(), Some(0.0));
    // The parameter-independent step ran once across the 18 trials; every other trial
    // reused it from the cache.
    let log = std::fs::read_to_string(dir.path().join("executions.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert_eq!(doc["cache"]["hits"], json!(17));
    assert_eq!(doc["cache"]["misses"], json!(19));
    // Each trial is a run directory whose manifest names the experiment.
    let shown = show(&nb, "grid1");
    let trials = shown["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 18);
    let run_dir = trials[0]["run_dir"].as_str().unwrap();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(run_dir).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["experiment"], "grid1");
}

/// Without `--algorithm` (and no algorithm in the notebook) `auto` chooses, and
/// the header line says what and why; the experiment stores the chosen one.
#[test]
fn auto_is_the_default_and_the_header_says_what_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.0);
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "score",
            "--param",
            "x=double:0..5",
            "--param",
            "y=categorical:a,b,c",
            "--max-trials",
            "14",
            "--parallel",
            "2",
            "--seed",
            "3",
            "--name",
            "auto1",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("auto: bayesianoptimization (14 trials over 2 parameters, 1 categorical: "),
        "{stderr}"
    );
    assert_eq!(doc["trials"]["succeeded"], json!(14));
    assert_eq!(
        show(&nb, "auto1")["experiment"]["algorithm"],
        "bayesianoptimization"
    );
}

#[test]
fn random_and_tpe_searches_improve_and_compare_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.0);
    for (name, algorithm) in [("rand", "random"), ("tpe", "tpe")] {
        let (code, doc, stderr) = tune_json(
            &nb,
            &[
                "--objective",
                "score",
                "--algorithm",
                algorithm,
                "--seed",
                "3",
                "--param",
                "x=double:-10..10",
                "--param",
                "y=categorical:a,b,c",
                "--max-trials",
                "24",
                "--parallel",
                "2",
                "--name",
                name,
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(doc["trials"]["succeeded"], json!(24), "{doc}");
        let best = doc["best"]["metrics"]["score"].as_f64().unwrap();
        assert!(best > -2.5, "{algorithm}: best {best}");
    }
    // Without a terminal, one line per finished trial.
    let out = crate::support::kale()
        .args(["experiments", "compare", "rand", "tpe", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    for row in [
        "algorithm",
        "trials",
        "best value",
        "best params",
        "wall time",
        "cache hit rate",
    ] {
        assert!(text.contains(row), "{row} missing in\n{text}");
    }
    assert!(text.contains("random") && text.contains("tpe"), "{text}");
    assert!(text.contains("24 (24 ok, 0 failed)"), "{text}");
    let svg = dir.path().join("history.svg");
    let out = crate::support::kale()
        .args(["experiments", "plot", "tpe", "-o"])
        .arg(&svg)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    // One mark per trial (a dot, or a triangle at the axis edge for an outlier the
    // axis leaves out: which trials are outliers depends on the run's suggestions).
    assert_eq!(
        text.matches(r#"<g class="trial trial-succeeded" data-trial="#)
            .count(),
        24,
        "one mark per trial"
    );
    assert!(text.contains("best so far"));
    let list = crate::support::kale()
        .args(["experiments", "list", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[test]
fn failing_trials_are_recorded_with_the_cell_and_line_and_end_the_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "fail.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 1"),
            C::Code(
                &["step:a"],
                "if x >= 7:\n    raise ValueError('x too large')\nvalue = x",
            ),
            C::Code(&["pipeline-metrics"], "print(value)"),
        ],
        None,
    );
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "value",
            "--algorithm",
            "grid",
            "--seed",
            "1",
            "--param",
            "x=int:0..9",
            "--max-failed",
            "2",
            "--parallel",
            "1",
            "--name",
            "f",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["reason"], "more than 2 trials failed");
    assert_eq!(doc["trials"]["failed"], json!(3));
    let shown = show(&nb, "f");
    // The grid's order is shuffled by its seed; the best is the largest x that worked.
    let best_ok = shown["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "succeeded")
        .map(|t| t["params"]["x"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(best_ok <= 6);
    assert_eq!(doc["best"]["params"], json!({"x": best_ok}));
    let failed: Vec<&Value> = shown["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .collect();
    let error = failed[0]["error"].as_str().unwrap();
    assert_eq!(
        error,
        "step `a` failed at cell 2, line 2: ValueError: x too large"
    );
}

#[test]
fn objective_must_be_a_metric_and_params_must_be_pipeline_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.0);
    let (code, _, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "loss",
            "--param",
            "lr=double:0..1",
            "--param",
            "x=int:0..3:step=0",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("objective `loss` is not a pipeline metric; the metrics are `score`"),
        "{stderr}"
    );
    assert!(stderr.contains("`lr` is not a pipeline parameter, so it cannot be tuned; the parameters are `x`, `y`, `n`"), "{stderr}");
    let (code, _, stderr) = tune_json(&nb, &["--objective", "score", "--param", "n=double:0..1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`n` is an int parameter (default 1), so it cannot take double values\n  hint: use `--param n=int:MIN..MAX`"), "{stderr}");
    let (code, _, stderr) = tune_json(&nb, &["--objective", "score", "--param", "x=double:1..0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("x"), "{stderr}");
}

#[test]
fn kill_9_then_resume_reaches_the_full_count_without_losing_or_repeating_trials() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "slow.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(&["step:work"], "time.sleep(0.4)\nvalue = -(x - 1) ** 2"),
            C::Code(&["pipeline-metrics"], "print(value)"),
        ],
        None,
    );
    let args = [
        "--objective",
        "value",
        "--algorithm",
        "random",
        "--seed",
        "5",
        "--param",
        "x=double:0..2",
        "--max-trials",
        "10",
        "--parallel",
        "2",
        "--name",
        "k",
    ];
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
        .env("KALE_PYTHON", crate::support::python())
        .arg("tune")
        .arg(&nb)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some trials finished, then kill -9 while others run.
    let db = dir.path().join(".kale/kale.db");
    let started = Instant::now();
    let completed_before = loop {
        std::thread::sleep(Duration::from_millis(200));
        let out = crate::support::kale()
            .args(["experiments", "show", "k", "--json", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let done = if db.exists() && out.status.success() {
            let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
            shown["trials"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["status"] == "succeeded")
                .count()
        } else {
            0
        };
        if done >= 3 {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "tune made no progress"
        );
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let before = show(&nb, "k");
    let succeeded_before: Vec<(i64, Value)> = before["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "succeeded")
        .map(|t| (t["number"].as_i64().unwrap(), t["params"].clone()))
        .collect();
    assert!(succeeded_before.len() >= completed_before);
    assert!(succeeded_before.len() < 10);

    let (code, doc, stderr) = tune_json(&nb, &["--name", "k", "--resume"]);
    assert_eq!(code, 0, "{stderr}");
    let after = show(&nb, "k");
    assert_eq!(doc["trials"]["succeeded"], json!(10), "{doc}\n{after:#}");
    let trials = after["trials"].as_array().unwrap();
    let succeeded: Vec<&Value> = trials
        .iter()
        .filter(|t| t["status"] == "succeeded")
        .collect();
    assert_eq!(succeeded.len(), 10);
    // Every trial completed before the kill is still there, unchanged, and no trial
    // number appears twice.
    for (number, params) in &succeeded_before {
        let t = trials
            .iter()
            .find(|t| t["number"] == json!(number))
            .unwrap();
        assert_eq!(t["status"], "succeeded");
        assert_eq!(&t["params"], params);
    }
    let mut numbers: Vec<i64> = trials
        .iter()
        .map(|t| t["number"].as_i64().unwrap())
        .collect();
    numbers.dedup();
    assert_eq!(numbers.len(), trials.len());
    // Trials that were running at the kill are marked, not counted.
    assert!(
        trials
            .iter()
            .all(|t| t["status"] == "succeeded" || t["status"] == "interrupted"),
        "{trials:?}"
    );
}

#[test]
fn early_stopping_reads_katib_style_lines_and_stops_bad_trials() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "epochs.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(
                &["step:train"],
                "for epoch in range(8):\n    score = -(x - 3) ** 2 + 0.01 * epoch\n    print(f'score={score}')\n    time.sleep(0.15)",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "score",
            "--algorithm",
            "grid",
            "--seed",
            "2",
            "--param",
            "x=int:0..6",
            "--parallel",
            "1",
            "--max-trials",
            "7",
            "--name",
            "es",
            "--early-stopping",
            "medianstop",
            "--early-stopping-setting",
            "min_trials_required=2",
            "--early-stopping-setting",
            "start_step=2",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        doc["trials"]["early_stopped"].as_u64().unwrap() >= 1,
        "{doc}\n{stderr}"
    );
    let shown = show(&nb, "es");
    for t in shown["trials"].as_array().unwrap() {
        let reports = t["intermediate"].as_array().unwrap().len();
        match t["status"].as_str().unwrap() {
            "succeeded" => assert_eq!(reports, 8, "{t}"),
            "early_stopped" => assert!(reports < 8, "{t}"),
            other => panic!("unexpected status {other}: {t}"),
        }
    }
}

#[test]
fn search_space_from_a_katib_file_and_from_notebook_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "meta.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0.0\nkind = 'a'"),
            C::Code(
                &["step:s"],
                "loss = (x - 1) ** 2 + (0 if kind == 'b' else 1)",
            ),
            C::Code(&["pipeline-metrics"], "print(loss)"),
        ],
        Some(json!({
            "pipeline_name": "meta", "experiment_name": "meta",
            "katib_metadata": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "4"}]},
                "parameters": [
                    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "2", "step": "0.5"}},
                    {"name": "kind", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}
                ],
                "maxTrialCount": 6, "parallelTrialCount": 2, "maxFailedTrialCount": 1
            }
        })),
    );
    let (code, doc, stderr) = tune_json(&nb, &["--name", "from-meta"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("minimize `loss` (direction from the notebook's katib_metadata)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("space from the notebook's katib_metadata"),
        "{stderr}"
    );
    assert_eq!(doc["trials"]["total"], json!(6));
    for t in show(&nb, "from-meta")["trials"].as_array().unwrap() {
        let x = t["params"]["x"].as_f64().unwrap();
        assert!(
            (x * 2.0).fract() == 0.0 && (0.0..=2.0).contains(&x),
            "step 0.5 respected: {x}"
        );
    }

    let space = dir.path().join("space.yaml");
    std::fs::write(
        &space,
        "- name: x\n  parameterType: double\n  feasibleSpace:\n    min: \"0.5\"\n    max: \"1.5\"\n- name: kind\n  parameterType: categorical\n  feasibleSpace:\n    list: [\"b\"]\n",
    )
    .unwrap();
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--name",
            "from-file",
            "--space",
            space.to_str().unwrap(),
            "--max-trials",
            "4",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["trials"]["total"], json!(4));
    for t in show(&nb, "from-file")["trials"].as_array().unwrap() {
        let x = t["params"]["x"].as_f64().unwrap();
        assert!((0.5..=1.5).contains(&x), "{x}");
        assert_eq!(t["params"]["kind"], "b");
    }
}

#[test]
fn two_tunes_of_one_notebook_at_once_share_the_store_safely() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.2);
    let spawn = |name: &str, seed: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
            .env("KALE_PYTHON", crate::support::python())
            .arg("tune")
            .arg(&nb)
            .args([
                "--objective",
                "score",
                "--algorithm",
                "random",
                "--seed",
                seed,
                "--param",
                "x=double:0..6",
                "--max-trials",
                "8",
                "--parallel",
                "2",
                "--json",
                "--name",
                name,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("left", "1");
    let b = spawn("right", "2");
    for (child, name) in [(a, "left"), (b, "right")] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["trials"]["succeeded"], json!(8), "{name}: {doc}");
        assert_eq!(show(&nb, name)["trials"].as_array().unwrap().len(), 8);
    }
    let conn = rusqlite::Connection::open(dir.path().join(".kale/kale.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // A second tune may not take over an experiment another live process runs.
    let (code, _, stderr) = tune_json(&nb, &["--name", "left", "--resume"]);
    assert_eq!(
        code, 0,
        "resuming a finished experiment is allowed: {stderr}"
    );
}

#[test]
fn reaching_the_target_value_ends_the_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path(), 0.0);
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "score",
            "--algorithm",
            "grid",
            "--seed",
            "4",
            "--param",
            "x=int:0..5",
            "--param",
            "y=categorical:a,b,c",
            "--target-value",
            "-1",
            "--parallel",
            "1",
            "--max-trials",
            "18",
            "--name",
            "goal",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["reason"], "goal reached");
    assert!(doc["best"]["metrics"]["score"].as_f64().unwrap() >= -1.0);
    assert!(doc["trials"]["total"].as_u64().unwrap() < 18);
}

#[test]
fn a_trial_over_its_time_limit_fails_and_the_cache_reports_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "timeout.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["pipeline-parameters"], "x = 0"),
            C::Code(&["step:base"], "base = 10"),
            C::Code(
                &["step:work", "prev:base"],
                "time.sleep(30 if x == 1 else 0)\nvalue = x + base",
            ),
            C::Code(&["pipeline-metrics"], "print(value)"),
        ],
        None,
    );
    let started = Instant::now();
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "value",
            "--algorithm",
            "grid",
            "--param",
            "x=int:0..2",
            "--parallel",
            "3",
            "--trial-timeout",
            "3",
            "--name",
            "t",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the slow trial was not stopped"
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["trials"]["failed"], json!(1));
    let slow = show(&nb, "t")["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["params"]["x"] == json!(1))
        .unwrap()
        .clone();
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["error"], "timed out after 3s");

    let out = crate::support::succeed(
        crate::support::kale()
            .args(["cache", "stats", "--json", "--dir"])
            .arg(dir.path()),
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    // `base` once, `work` for x = 0 and x = 2.
    assert_eq!(stats["entries"], json!(3), "{stats}");
    assert!(stats["objects"].as_u64().unwrap() >= 2);
}

#[test]
fn trials_failing_on_a_missing_module_name_the_interpreter_and_how_to_choose_another() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "missing.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(
                &["step:score"],
                "import kale_test_module_nobody_installs\nscore = x",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, doc, stderr) = tune_json(
        &nb,
        &[
            "--objective",
            "score",
            "--param",
            "x=double:0..1",
            "--max-trials",
            "1",
        ],
    );
    assert_ne!(doc, Value::Null, "exit {code}: {stderr}");
    assert_eq!(doc["trials"]["failed"], json!(1), "{doc:#}");
    let exe = doc["python"]["executable"].as_str().unwrap();
    assert_eq!(doc["python"]["chosen_by"], json!("KALE_PYTHON"), "{doc:#}");
    // The header names the interpreter before any trial runs.
    assert!(stderr.contains(&format!("  python {exe} (3.")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "hint: the steps ran under {exe} (from KALE_PYTHON)"
        )),
        "{stderr}"
    );
}
