//! `kale tune` with several objectives and constraints: the example notebook end to
//! end (real Python and scikit-learn, real SQLite), a store written by the version-1
//! schema read by this kale, and the refusals.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{C, examples_dir, kale, kale_with_python, python, succeed, write_notebook};

const OBJECTIVES: [&str; 4] = [
    "--objective",
    "accuracy:maximize",
    "--objective",
    "model_kb:minimize",
];

fn tradeoff(dir: &Path) -> PathBuf {
    let nb = dir.join("digits_tradeoff.ipynb");
    std::fs::copy(examples_dir().join("digits_tradeoff.ipynb"), &nb).unwrap();
    nb
}

fn tune(nb: &Path, args: &[&str]) -> (i32, Value, String) {
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

fn show(dir: &Path, name: &str) -> Value {
    let out = succeed(
        kale()
            .args(["experiments", "show", name, "--json", "--dir"])
            .arg(dir),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn numbers(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// `a` as good as `b` on both (accuracy up, size down) and better on one.
fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 >= b.0 && a.1 <= b.1 && (a.0 > b.0 || a.1 < b.1)
}

#[test]
fn two_objectives_and_a_constraint_on_the_example_notebook() {
    let dir = tempfile::tempdir().unwrap();
    let nb = tradeoff(dir.path());
    let mut args = OBJECTIVES.to_vec();
    args.extend([
        "--constraint",
        "accuracy>=0.95",
        "--max-trials",
        "10",
        "--parallel",
        "2",
        "--seed",
        "3",
        "--name",
        "mo",
    ]);
    let (code, doc, stderr) = tune(&nb, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("2 objectives accuracy (maximize), model_kb (minimize), subject to accuracy>=0.95, auto: motpe"),
        "{stderr}"
    );
    assert!(stderr.contains("Pareto front: "), "{stderr}");

    // Every trial's values and constraint as the run reported them.
    let trials = doc["trial_results"].as_array().unwrap();
    assert_eq!(trials.len(), 10);
    let mut points = Vec::new();
    for t in trials {
        assert_eq!(t["status"], "succeeded", "{t}");
        let (acc, kb) = (
            t["values"][0].as_f64().unwrap(),
            t["values"][1].as_f64().unwrap(),
        );
        let c = t["constraints"][0].as_f64().unwrap();
        assert!((c - (0.95 - acc)).abs() < 1e-9, "{t}");
        assert_eq!(t["feasible"], acc >= 0.95, "{t}");
        points.push((t["trial"].as_i64().unwrap(), (acc, kb), acc >= 0.95));
    }
    let infeasible: Vec<i64> = points.iter().filter(|p| !p.2).map(|p| p.0).collect();
    assert!(
        !infeasible.is_empty(),
        "the random start should break accuracy>=0.95 at least once: {points:?}"
    );
    // The front: feasible, non-dominated by any feasible trial, and every feasible
    // trial it leaves out is dominated by one on it.
    let front = doc["pareto_front"].as_array().unwrap();
    assert!(!front.is_empty(), "{doc}");
    let on_front: Vec<i64> = front.iter().map(|f| f["trial"].as_i64().unwrap()).collect();
    for (n, p, feasible) in &points {
        let dominated = points.iter().any(|(_, q, qf)| *qf && dominates(*q, *p));
        if on_front.contains(n) {
            assert!(*feasible && !dominated, "trial {n} {p:?} on the front");
        } else if *feasible {
            assert!(dominated, "trial {n} {p:?} missing from the front");
        }
    }
    for f in front {
        assert!(f["params"]["components"].is_i64(), "{f}");
        assert_eq!(f["values"].as_array().unwrap().len(), 2);
    }
    assert!(doc["best"].is_null());
    assert_eq!(doc["objectives"][1]["name"], "model_kb");
    assert_eq!(doc["objectives"][1]["direction"], "minimize");

    // The store says the same, and the text view marks front and infeasible trials.
    let stored = show(dir.path(), "mo");
    assert_eq!(numbers(&stored["pareto_front"]), on_front);
    assert_eq!(stored["experiment"]["constraints"][0]["bound"], ">=");
    let text = succeed(
        kale()
            .args(["experiments", "show", "mo", "--dir"])
            .arg(dir.path()),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("front      {} trial", on_front.len())),
        "{text}"
    );
    assert!(text.contains("constraints accuracy>=0.95"), "{text}");
    for n in &infeasible {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("trial {n:>3} ")))
            .unwrap();
        assert!(line.contains(" infeasible"), "{line}");
    }
    for n in &on_front {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("◆trial {n:>3} ")));
        assert!(line.is_some(), "trial {n} not marked in\n{text}");
    }
    let list = succeed(
        kale()
            .args(["experiments", "list", "--dir"])
            .arg(dir.path()),
    );
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&format!("front {}", on_front.len())),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    // The Pareto plot: one highlighted point per front trial, crosses for the
    // infeasible ones, axes named with their directions.
    let svg_path = dir.path().join("front.svg");
    succeed(
        kale()
            .args(["experiments", "plot", "mo", "--kind", "pareto", "-o"])
            .arg(&svg_path)
            .arg("--dir")
            .arg(dir.path()),
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    let trials_with = |class: &str| -> Vec<i64> {
        let mut out: Vec<i64> = svg
            .split(&format!("class=\"{class}\" data-trial=\""))
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse().unwrap())
            .collect();
        out.sort();
        out
    };
    assert_eq!(trials_with("front"), on_front);
    assert_eq!(trials_with("infeasible"), infeasible);
    assert!(svg.contains("accuracy (maximize, higher is better)"));
    assert!(svg.contains("model_kb (minimize, lower is better)"));
    // A PNG of it renders (resvg parses the SVG).
    let png = dir.path().join("front.png");
    succeed(
        kale()
            .args(["experiments", "plot", "mo", "--kind", "pareto", "-o"])
            .arg(&png)
            .arg("--dir")
            .arg(dir.path()),
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // No single best trial to run: the refusal names the front.
    let out = kale_with_python()
        .arg("run")
        .arg(&nb)
        .args(["--params-from", "mo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let listed = on_front
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        err.contains(&format!("its Pareto front is trials {listed}")) && err.contains("mo/TRIAL"),
        "{err}"
    );

    // Resume rebuilds the objectives and the constraint from the store.
    let (code, doc, stderr) = tune(&nb, &["--name", "mo", "--resume", "--max-trials", "13"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("2 objectives accuracy (maximize), model_kb (minimize), subject to accuracy>=0.95, motpe"),
        "{stderr}"
    );
    let numbers_after: Vec<i64> = doc["trial_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trial"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers_after, (0..13).collect::<Vec<_>>());
    for t in doc["trial_results"].as_array().unwrap() {
        let acc = t["values"][0].as_f64().unwrap();
        assert_eq!(t["feasible"], acc >= 0.95, "{t}");
    }
    assert!(!doc["pareto_front"].as_array().unwrap().is_empty());
}

/// The schema version-1 kale created, verbatim.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    notebook TEXT NOT NULL,
    notebook_hash TEXT NOT NULL,
    objective TEXT NOT NULL,
    direction TEXT NOT NULL,
    goal REAL,
    algorithm TEXT NOT NULL,
    settings TEXT NOT NULL,
    space TEXT NOT NULL,
    max_trials INTEGER NOT NULL,
    parallel INTEGER NOT NULL,
    max_failed INTEGER NOT NULL,
    early_stopping TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    wall_seconds REAL NOT NULL DEFAULT 0,
    owner_pid INTEGER
);
CREATE TABLE IF NOT EXISTS trials (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    value REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    intermediate TEXT NOT NULL DEFAULT '[]',
    started_at REAL NOT NULL,
    finished_at REAL,
    seconds REAL,
    cache_hits INTEGER NOT NULL DEFAULT 0,
    cache_misses INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    run_dir TEXT,
    PRIMARY KEY (experiment_id, number)
);
PRAGMA user_version = 1;
INSERT INTO experiments (name, notebook, notebook_hash, objective, direction, algorithm, settings, space,
    max_trials, parallel, max_failed, status, reason, created_at, updated_at)
VALUES ('old', 'quad.ipynb', 'h', 'score', 'maximize', 'random', '[]',
    '[{\"name\": \"x\", \"parameterType\": \"double\", \"feasibleSpace\": {\"min\": \"0\", \"max\": \"5\"}}]',
    3, 1, 3, 'succeeded', 'max trials reached', 1.0, 2.0);
INSERT INTO trials (experiment_id, number, params, status, value, metrics, started_at, finished_at, seconds)
VALUES (1, 0, '{\"x\": 1.0}', 'succeeded', -4.0, '{\"score\": -4.0}', 1.0, 2.0, 1.0),
       (1, 1, '{\"x\": 2.5}', 'succeeded', -0.25, '{\"score\": -0.25}', 1.0, 2.0, 1.0),
       (1, 2, '{\"x\": 4.0}', 'failed', NULL, '{}', 1.0, 2.0, 1.0);
";

fn quadratic(dir: &Path) -> PathBuf {
    write_notebook(
        dir,
        "quad.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0.0"),
            C::Code(&["step:score"], "score = -(x - 3) ** 2\nsize = x * 10"),
            C::Code(&["pipeline-metrics"], "print(score)\nprint(size)"),
        ],
        None,
    )
}

#[test]
fn a_version_1_store_is_migrated_in_place_and_its_experiments_still_show() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path());
    let db = dir.path().join(".kale/kale.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    // Written by Python's sqlite3, the way an older kale left it.
    let script = format!(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript({SCHEMA_V1:?})\nc.commit()"
    );
    let out = std::process::Command::new(python())
        .args(["-c", &script])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stored = show(dir.path(), "old");
    assert_eq!(stored["best"], 1);
    assert!(stored["pareto_front"].is_null());
    let objectives = stored["experiment"]["objectives"].as_array().unwrap();
    assert_eq!(objectives.len(), 1);
    assert_eq!(objectives[0]["name"], "score");
    assert_eq!(objectives[0]["direction"], "maximize");
    assert_eq!(stored["trials"][1]["values"][0], -0.25);
    assert_eq!(stored["trials"][2]["values"].as_array().unwrap().len(), 0);
    let text = succeed(
        kale()
            .args(["experiments", "show", "old", "--dir"])
            .arg(dir.path()),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("best       trial 1: score=-0.25"), "{text}");

    // The store is at version 3 now, with the new columns, and keeps working: a new
    // multi-objective experiment beside the old one, and the old one resumed.
    let check = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.execute('PRAGMA user_version').fetchone()[0])\nprint(sorted(r[1] for r in c.execute('PRAGMA table_info(trials)')))";
    let out = std::process::Command::new(python())
        .args(["-c", check])
        .arg(&db)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.starts_with("3\n"), "{printed}");
    assert!(printed.contains("'constraint_values'") && printed.contains("'objective_values'"));
    let (code, _, stderr) = tune(
        &nb,
        &[
            "--objective",
            "score",
            "--objective",
            "size:minimize",
            "--param",
            "x=double:0..5",
            "--max-trials",
            "4",
            "--parallel",
            "1",
            "--name",
            "new",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, doc, stderr) = tune(&nb, &["--name", "old", "--resume", "--max-trials", "5"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("maximize `score`"), "{stderr}");
    assert_eq!(doc["trial_results"].as_array().unwrap().len(), 5);
    assert!(doc["best"]["trial"].as_i64().is_some(), "{doc}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(args: &[&str]) -> String {
    let out = kale_with_python().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}

#[test]
fn what_several_objectives_cannot_do_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let nb = quadratic(dir.path());
    let nb = nb.to_str().unwrap();
    let two = ["--objective", "score", "--objective", "size:minimize"];
    let space = ["--param", "x=double:0..5"];
    let tune_with = |extra: &[&str]| -> String {
        let mut args = vec!["tune", nb];
        args.extend(two);
        args.extend(space);
        args.extend(extra);
        refused(&args)
    };
    for flag in [
        &["--goal", "maximize"][..],
        &["--target-value", "1"],
        &["--early-stopping", "medianstop"],
    ] {
        let err = tune_with(flag);
        assert!(
            err.contains(&format!("{} applies to one objective", flag[0])),
            "{err}"
        );
    }
    let err = tune_with(&["--algorithm", "bayesianoptimization"]);
    assert!(
        err.contains("--algorithm `bayesianoptimization` cannot search several objectives\n  hint: use auto (the default), nsga2, motpe"),
        "{err}"
    );
    let err = refused(&[
        "tune",
        nb,
        "--objective",
        "score:upward",
        "--param",
        "x=double:0..5",
    ]);
    assert!(
        err.contains("the direction must be `maximize` or `minimize`, not `upward`"),
        "{err}"
    );
    let err = refused(&[
        "tune",
        nb,
        "--objective",
        "score",
        "--objective",
        "nope",
        "--param",
        "x=double:0..5",
    ]);
    assert!(
        err.contains("objective `nope` is not a pipeline metric; the metrics are `score`, `size`"),
        "{err}"
    );
    let err = refused(&[
        "tune",
        nb,
        "--objective",
        "score",
        "--constraint",
        "size<50",
        "--param",
        "x=double:0..5",
    ]);
    assert!(
        err.contains("--constraint `size<50`: no `<=` or `>=`"),
        "{err}"
    );
    let err = refused(&[
        "tune",
        nb,
        "--objective",
        "score",
        "--constraint",
        "mb<=50",
        "--param",
        "x=double:0..5",
    ]);
    assert!(
        err.contains("constraint metric `mb` is not a pipeline metric"),
        "{err}"
    );
    // Nothing was recorded by the refused runs.
    assert!(
        !dir.path().join(".kale/kale.db").exists() || {
            let out = succeed(
                kale()
                    .args(["experiments", "list", "--json", "--dir"])
                    .arg(dir.path()),
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap() == serde_json::json!([])
        }
    );

    // Katib: no multi-objective experiments and no constraints.
    let out_yaml = dir.path().join("katib.yaml");
    let out = out_yaml.to_str().unwrap();
    let compile = |extra: &[&str]| {
        let mut args = vec!["compile", nb, "--target", "katib", "-o", out];
        args.extend(space);
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut with_two = two.to_vec();
    let err = refused(&strs(&compile(&with_two)));
    assert!(
        err.contains("Katib has no multi-objective experiments"),
        "{err}"
    );
    assert!(err.contains("--katib-first-objective"), "{err}");
    let err = refused(&strs(&compile(&[
        "--objective",
        "score",
        "--constraint",
        "size<=30",
    ])));
    assert!(
        err.contains("Katib has no constraints: --constraint `size<=30`"),
        "{err}"
    );
    let err = refused(&[
        "tune",
        nb,
        "--katib",
        "--objective",
        "score",
        "--objective",
        "size",
        "--param",
        "x=double:0..5",
    ]);
    assert!(
        err.contains("Katib has no multi-objective experiments"),
        "{err}"
    );
    with_two.push("--katib-first-objective");
    succeed(kale().args(compile(&with_two)));
    let yaml = std::fs::read_to_string(&out_yaml).unwrap();
    let doc: Value = serde_saphyr::from_str(&yaml).unwrap();
    let objective = &doc["spec"]["objective"];
    assert_eq!(objective["objectiveMetricName"], "score");
    assert_eq!(objective["type"], "maximize");
    assert_eq!(
        objective["additionalMetricNames"],
        serde_json::json!(["size"])
    );
}

/// The example with several objectives and a constraint saved in its katib_metadata, as
/// kale's JupyterLab panel saves them beside Katib's one `objective`.
fn tradeoff_with_saved_objectives(dir: &Path, objectives: Value, constraints: Value) -> PathBuf {
    let nb = tradeoff(dir);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&nb).unwrap()).unwrap();
    let katib = &mut doc["metadata"]["kubeflow_notebook"]["katib_metadata"];
    katib["objectives"] = objectives;
    katib["constraints"] = constraints;
    std::fs::write(&nb, serde_json::to_string(&doc).unwrap()).unwrap();
    nb
}

#[test]
fn objectives_and_constraints_saved_in_the_notebook_are_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let nb = tradeoff_with_saved_objectives(
        dir.path(),
        serde_json::json!([
            {"type": "maximize", "objectiveMetricName": "accuracy"},
            {"type": "minimize", "objectiveMetricName": "model_kb"}
        ]),
        serde_json::json!(["accuracy>=0.9"]),
    );
    let (code, doc, stderr) = tune(
        &nb,
        &[
            "--max-trials",
            "3",
            "--parallel",
            "1",
            "--algorithm",
            "random",
            "--name",
            "saved",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        doc["objectives"],
        serde_json::json!([
            {"name": "accuracy", "direction": "maximize"},
            {"name": "model_kb", "direction": "minimize"}
        ])
    );
    assert_eq!(doc["constraints"][0]["metric"], "accuracy");
    assert!(doc["pareto_front"].is_array(), "{doc}");
    // Flags still win over what the notebook saved.
    let (code, doc, stderr) = tune(
        &nb,
        &[
            "--objective",
            "accuracy",
            "--max-trials",
            "1",
            "--name",
            "flag",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["objectives"].as_array().unwrap().len(), 1);

    // Katib can run neither: refused as the flags are, naming where they came from.
    let out = kale()
        .args(["compile", "--target", "katib"])
        .arg(&nb)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the notebook's katib_metadata constraint `accuracy>=0.9`"),
        "{stderr}"
    );
}

#[test]
fn malformed_saved_objectives_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nb = tradeoff_with_saved_objectives(
        dir.path(),
        serde_json::json!([{"objectiveMetricName": "accuracy"}, {"type": "sideways"}]),
        serde_json::json!([3]),
    );
    let (code, _, stderr) = tune(&nb, &["--max-trials", "1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("katib_metadata.objectives[0]"), "{stderr}");
    assert!(stderr.contains("katib_metadata.objectives[1]"), "{stderr}");
    assert!(
        stderr.contains("katib_metadata.constraints` holds 3"),
        "{stderr}"
    );
}
