//! Exit statuses and the shape of errors, as the README's table documents them: one
//! kind of problem, one status, whatever command meets it; `error: ...` then `hint:`.

use crate::support::{C, kale, write_notebook};

fn notebook(dir: &std::path::Path) -> std::path::PathBuf {
    write_notebook(
        dir,
        "nb.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "n = 1"),
            C::Code(&["step:a"], "x = n + 1"),
        ],
        None,
    )
}

fn status_and_stderr(cmd: &mut assert_cmd::Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_2_with_its_hint_whatever_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    // A Python that does not exist: the user's choice, so bad input, with the fix and
    // where that Python came from.
    let (code, stderr) = status_and_stderr(
        kale()
            .arg("run")
            .arg(&nb)
            .args(["--python", "/no/such/python3"]),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot start Python `/no/such/python3`"),
        "{stderr}"
    );
    assert!(stderr.contains("\n  hint: pass --python PATH"), "{stderr}");
    assert!(
        stderr.contains("\n  hint: this Python came from --python"),
        "{stderr}"
    );
    // A run that does not exist, from three commands.
    for args in [
        &["runs", "show", "nope"][..],
        &["debug", "nope"],
        &["cache", "explain", "nope"],
    ] {
        let (code, stderr) = status_and_stderr(kale().args(args).arg("-C").arg(dir.path()));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: no runs in "),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("\n  hint: "), "{args:?}: {stderr}");
    }
}

#[test]
fn a_store_written_by_a_newer_kale_is_an_environment_failure_3() {
    let dir = tempfile::tempdir().unwrap();
    notebook(dir.path());
    let db = dir.path().join(".kale/kale.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let (code, stderr) = status_and_stderr(
        kale()
            .args(["experiments", "list", "--dir"])
            .arg(dir.path()),
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("has schema version 99"), "{stderr}");
    assert!(stderr.contains("hint: a newer kale wrote it"), "{stderr}");
}

/// Every `error:` line of `stderr` is followed by its `hint:` line(s).
pub fn assert_every_error_has_a_hint(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("error: ")),
        "no error in: {stderr}"
    );
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("error: ") {
            // A quoted line and its caret come between an error and its hint.
            let next = lines[i + 1..].iter().find(|l| !l.starts_with("    "));
            assert!(
                next.is_some_and(|n| n.starts_with("  hint: ")),
                "error without a hint: {line}\n--- stderr\n{stderr}"
            );
        }
    }
}

/// MiniKF saves this `katib_metadata` for every notebook until parameters and an
/// objective are chosen in Kale's Katib dialog.
fn minikf_notebook(dir: &std::path::Path) -> std::path::PathBuf {
    write_notebook(
        dir,
        "minikf.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "lr = 0.1\nepochs = 3"),
            C::Code(&["step:train"], "accuracy = lr * epochs"),
            C::Code(&["pipeline-metrics"], "print(accuracy)"),
        ],
        Some(serde_json::json!({
            "experiment_name": "minikf",
            "pipeline_name": "minikf",
            "katib_run": false,
            "katib_metadata": {
                "algorithm": {"algorithmName": "grid"},
                "maxFailedTrialCount": 3,
                "maxTrialCount": 12,
                "objective": {
                    "additionalMetricNames": [],
                    "goal": 0,
                    "objectiveMetricName": "",
                    "type": "minimize"
                },
                "parallelTrialCount": 1,
                "parameters": []
            }
        })),
    )
}

#[test]
fn minikf_default_metadata_is_refused_with_what_to_pass_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let nb = minikf_notebook(dir.path());
    let out = dir.path().join("x.yaml");
    for args in [
        &[
            "compile",
            "--target",
            "katib",
            "--objective",
            "accuracy",
            "-o",
        ][..],
        &[
            "tune",
            "--objective",
            "accuracy",
            "--max-trials",
            "1",
            "--name",
        ],
    ] {
        let (code, stderr) =
            status_and_stderr(kale().args(&args[..1]).arg(&nb).args(&args[1..]).arg(
                if args[0] == "tune" {
                    std::path::Path::new("minikf-hpo")
                } else {
                    out.as_path()
                },
            ));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no search space: the notebook's katib_metadata lists no parameters (MiniKF saves an empty list"),
            "{stderr}"
        );
        assert!(
            stderr.contains("hint: pass --param NAME=SPEC for each parameter to tune (the pipeline parameters are `lr`, `epochs`), e.g. `--param lr=double:0.01..1 --param epochs=int:1..30`"),
            "{stderr}"
        );
        // The empty objective name is no objective, not a metric named ``.
        assert!(!stderr.contains("objective ``"), "{stderr}");
        assert_every_error_has_a_hint(&stderr);
    }
    // No --objective: the notebook names none, and kale says which metrics there are.
    let (code, stderr) = status_and_stderr(kale().arg("tune").arg(&nb));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no objective: the notebook's metrics are `accuracy`\n  hint: pass --objective with one of them, e.g. `--objective accuracy`"),
        "{stderr}"
    );
    assert_every_error_has_a_hint(&stderr);
    // An empty --space list is no search space either.
    let space = dir.path().join("space.json");
    std::fs::write(&space, "[]").unwrap();
    let (code, stderr) = status_and_stderr(
        kale()
            .arg("tune")
            .arg(&nb)
            .args(["--objective", "accuracy", "--space"])
            .arg(&space),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("space.json lists no parameters"),
        "{stderr}"
    );
    assert_every_error_has_a_hint(&stderr);
    // Its algorithm, grid, cannot search a stepless double: said, with where it came
    // from and what to do, before anything is recorded.
    let (code, stderr) = status_and_stderr(
        kale()
            .arg("tune")
            .arg(&nb)
            .args(["--objective", "accuracy", "--param", "lr=double:0.01..1"])
            .env("KALE_PYTHON", crate::support::python()),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "algorithm `grid` (from the notebook's katib_metadata) cannot search this space"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: give every double parameter a step"),
        "{stderr}"
    );
    assert_every_error_has_a_hint(&stderr);
    // With the parameters given, the same notebook compiles.
    let (code, stderr) = status_and_stderr(
        kale()
            .arg("compile")
            .arg(&nb)
            .args([
                "--target",
                "katib",
                "--objective",
                "accuracy",
                "--param",
                "lr=double:0.01..1",
                "-o",
            ])
            .arg(&out),
    );
    assert_eq!(code, Some(0), "{stderr}");
}

/// Refusals of the search settings, of `-p`, of experiment names and plot files: each
/// says what is wrong and has a hint, and a hint never suggests syntax for a setting
/// the user did not type.
#[test]
fn every_refusal_has_a_hint_that_fits_where_the_setting_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(dir.path());
    let metric_nb = write_notebook(
        dir.path(),
        "metric.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "n = 1\nrate = 0.5"),
            C::Code(&["step:a"], "validation_loss = n * rate"),
            C::Code(&["pipeline-metrics"], "print(validation_loss)"),
        ],
        None,
    );
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "tune",
                "NB",
                "--objective",
                "validation_loss",
                "--param",
                "n=int",
            ],
            "--param `n=int`: missing the type",
            "hint: write NAME=TYPE:..., e.g. `lr=double:1e-4..1e-1:log`",
        ),
        (
            &[
                "tune",
                "NB",
                "--objective",
                "validation_loss",
                "--param",
                "n=double:0..1",
            ],
            "`n` is an int parameter (default 1), so it cannot take double values",
            "hint: use `--param n=int:MIN..MAX`",
        ),
        (
            &[
                "tune",
                "NB",
                "--objective",
                "validation_loss",
                "--param",
                "m=int:1..3",
            ],
            "`m` is not a pipeline parameter, so it cannot be tuned; the parameters are `n`, `rate`",
            "hint: tune one of them, or assign `m` in the `pipeline-parameters` cell",
        ),
        (
            &[
                "tune",
                "NB",
                "--objective",
                "accuracy",
                "--param",
                "n=int:1..3",
            ],
            "objective `accuracy` is not a pipeline metric; the metrics are `validation_loss`",
            "hint: use one of them, or add `print(accuracy)` to the `pipeline-metrics` cell",
        ),
        (
            &[
                "tune",
                "NB",
                "--objective",
                "validation_loss",
                "--param",
                "n=int:1..3",
                "--algorithm",
                "hyperband",
            ],
            "--algorithm `hyperband` is not an algorithm kale knows",
            "hint: use one of auto (the default), random, grid, tpe, multivariate-tpe, bayesianoptimization; with several --objective, auto (the default), nsga2, motpe",
        ),
        (
            &[
                "tune",
                "NB",
                "--objective",
                "validation_loss",
                "--param",
                "n=int:1..3",
                "--algorithm",
                "nsga2",
            ],
            "--algorithm `nsga2` searches several objectives; this search has one",
            "hint: use auto (the default), random, grid, tpe",
        ),
        (
            &["run", "NB", "-p", "n=abc"],
            "`-p n=abc`: `n` is an int (default 1), and `abc` is not an integer",
            "hint: a parameter keeps the type of its default; write e.g. `-p n=1`",
        ),
        (
            &["run", "NB", "-p", "m=3"],
            "`m` is not a pipeline parameter; the parameters are `n`, `rate`",
            "hint: -p sets only what the `pipeline-parameters` cell assigns",
        ),
        (
            &["run", "NB", "--params-from", "nope"],
            "--params-from nope: no experiment",
            "hint: ",
        ),
    ];
    for (args, message, hint) in cases {
        let (code, stderr) = status_and_stderr(kale().args(args.iter().map(|a| {
            if *a == "NB" {
                metric_nb.as_os_str()
            } else {
                std::ffi::OsStr::new(a)
            }
        })));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
        assert_every_error_has_a_hint(&stderr);
    }

    // `--objective accuracy:maximise` is one error, with the spelling kale takes.
    let (code, stderr) = status_and_stderr(kale().arg("tune").arg(&metric_nb).args([
        "--objective",
        "validation_loss:maximise",
        "--param",
        "n=int:1..3",
    ]));
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("hint: write `--objective validation_loss:maximize`"),
        "{stderr}"
    );

    // Settings from the notebook's katib_metadata say so, and their hints point there
    // rather than at flags the user never typed.
    let katib_nb = write_notebook(
        dir.path(),
        "katib.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "n = 1\nrate = 0.5"),
            C::Code(&["step:a"], "validation_loss = n * rate"),
            C::Code(&["pipeline-metrics"], "print(validation_loss)"),
        ],
        Some(serde_json::json!({"katib_metadata": {
            "objective": {"objectiveMetricName": "validation-accuracy", "type": "maximize"},
            "algorithm": {"algorithmName": "hyperband"},
            "parameters": [
                {"name": "n", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                {"name": "depth", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}
            ]
        }})),
    );
    let (code, stderr) = status_and_stderr(kale().arg("tune").arg(&katib_nb));
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        "objective `validation-accuracy` (from the notebook's katib_metadata) is not a pipeline metric; the metrics are `validation_loss`\n  hint: set `objectiveMetricName` in the notebook's katib_metadata (Kale's Katib dialog) to one of them, or pass --objective validation_loss",
        "`n` (from the notebook's katib_metadata) is an int parameter (default 1), so it cannot take double values\n  hint: give it `\"parameterType\": \"int\"` in Kale's Katib dialog, or pass `--param n=int:MIN..MAX`",
        "`depth` (from the notebook's katib_metadata) is not a pipeline parameter",
        "algorithm `hyperband` (from the notebook's katib_metadata) is not an algorithm kale knows",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected}\n--- stderr\n{stderr}"
        );
    }
    assert!(!stderr.contains("--param `"), "{stderr}");
    assert_every_error_has_a_hint(&stderr);

    // A metric the notebook lacks is suggested as Python (`-` is `_`, as elsewhere).
    let (code, stderr) = status_and_stderr(kale().arg("tune").arg(&nb).args([
        "--objective",
        "validation-loss",
        "--param",
        "n=int:1..3",
    ]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("hint: add a cell tagged `pipeline-metrics` with `print(validation_loss)`"),
        "{stderr}"
    );
    assert!(!stderr.contains("print(validation-loss)"), "{stderr}");
    assert_every_error_has_a_hint(&stderr);

    // Plot files and experiment names.
    let (code, stderr) = status_and_stderr(
        kale()
            .args([
                "experiments",
                "plot",
                "nope",
                "--kind",
                "history",
                "-o",
                "best.jpg",
                "--dir",
            ])
            .arg(dir.path()),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("hint: name it `best.svg`, or `best.png` for a PNG image"),
        "{stderr}"
    );
}

/// Renaming onto a taken name says how to free it, not tune's `--resume`.
#[test]
fn renaming_onto_a_taken_name_says_how_to_free_it() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "m.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "n = 1"),
            C::Code(&["step:a"], "score = n + 1"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    for name in ["one", "two"] {
        let (code, stderr) = status_and_stderr(
            kale()
                .arg("tune")
                .arg(&nb)
                .args([
                    "--objective",
                    "score",
                    "--param",
                    "n=int:1..2",
                    "--max-trials",
                    "1",
                    "--name",
                    name,
                ])
                .env("KALE_PYTHON", crate::support::python()),
        );
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, stderr) = status_and_stderr(
        kale()
            .args(["experiments", "rename", "one", "two", "--dir"])
            .arg(dir.path()),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("an experiment named `two` already exists\n  hint: choose another new name, or delete the other experiment first (`kale experiments delete two`)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--resume"), "{stderr}");
}
