//! `kale validate`: exit 0 on a good notebook, every problem located and exit 2 otherwise.

use predicates::prelude::*;
use serde_json::json;

use crate::support::{C, kale, write_notebook};

#[test]
fn example_notebook_is_valid() {
    kale()
        .arg("validate")
        .arg(crate::support::examples_dir().join("digits.ipynb"))
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "ok — 4 steps, 3 parameters, 2 metrics",
        ));
}

#[test]
fn every_problem_is_reported_with_cell_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "bad.ipynb",
        &[
            C::Md("# title"),
            C::Code(&["imports"], "import os"),
            C::Code(&["pipeline-parameters"], "lr = 0.1\nn = len([1])"),
            C::Code(&["step:load"], "x = 1"),
            C::Code(&["step:train"], "y = x + 1"),
            C::Code(&["step:eval", "prev:train"], "z = y +"),
            C::Code(&["wat"], ""),
            C::Code(&["pipeline-metrics"], "print(z)\nprint(missing_metric)"),
        ],
        None,
    );
    let out = kale().arg("validate").arg(&nb).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let path = nb.display().to_string();
    for expected in [
        format!("error: {path}: cell 3, line 2:"), // non-literal parameter
        format!("error: {path}: cell 5, line 1: step `train` reads `x`"), // missing prev:
        "hint: add the tag `prev:load` to cell 5".to_string(),
        format!("error: {path}: cell 6, line 1: syntax error"),
        format!("error: {path}: cell 7: unknown tag `wat`"),
        format!("error: {path}: cell 8, line 2: metric `missing_metric` is never set"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"));
}

#[test]
fn structural_errors_exit_2_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing.ipynb", String::new(), "cannot read the notebook"),
        ("garbage.ipynb", "{not json".into(), "not valid JSON"),
        ("list.ipynb", "[1,2,3]".into(), "not a Jupyter notebook"),
        (
            "nocells.ipynb",
            r#"{"metadata": {}}"#.into(),
            "no `cells` list",
        ),
        (
            "nosteps.ipynb",
            crate::support::notebook_json(&[C::Code(&[], "x = 1")], None).to_string(),
            "no pipeline steps",
        ),
        (
            "cycle.ipynb",
            crate::support::notebook_json(
                &[
                    C::Code(&["step:a"], "x = 1"),
                    C::Code(&["step:b", "prev:a"], "y = x"),
                    C::Code(&["step:a", "prev:b"], "z = y"),
                ],
                None,
            )
            .to_string(),
            "cycle",
        ),
        (
            "unknownprev.ipynb",
            crate::support::notebook_json(&[C::Code(&["step:a", "prev:ghost"], "x = 1")], None)
                .to_string(),
            "`prev:ghost` names a step that is not defined",
        ),
        (
            "metricsnotlast.ipynb",
            crate::support::notebook_json(
                &[
                    C::Code(&["step:a"], "x = 1"),
                    C::Code(&["pipeline-metrics"], "print(x)"),
                    C::Code(&["step:b", "prev:a"], "y = x"),
                ],
                None,
            )
            .to_string(),
            "comes after the `pipeline-metrics` cell",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        if !content.is_empty() {
            std::fs::write(&path, content).unwrap();
        }
        let out = kale().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.contains(name),
            "{name}: the message names the notebook:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn foreign_tags_warn_and_metadata_unknown_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "pm.ipynb",
        &[
            C::Code(&["parameters"], "alpha = 1"),
            C::Code(&["step:a"], "x = 1"),
        ],
        Some(json!({"pipeline_name": "p", "experiment_name": "e", "some_future_key": true})),
    );
    let out = kale().arg("validate").arg(&nb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("tag `parameters` belongs to papermill"),
        "{stderr}"
    );
    assert!(stderr.contains("some_future_key"), "{stderr}");
}

#[test]
fn ipython_syntax_never_breaks_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "magic.ipynb",
        &[
            C::Code(&["imports"], "%matplotlib inline\nimport os"),
            C::Code(
                &["step:load"],
                "!pip install --quiet nothing\nX = [1, 2]\nfiles = !ls\n%time n = len(X)",
            ),
            C::Code(&["step:fit", "prev:load"], "%%time\ntotal = sum(X) + n\nX?"),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    );
    kale().arg("validate").arg(&nb).assert().success();
}

#[test]
fn a_closed_stdout_ends_quietly_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let nb = crate::support::write_notebook(
        dir.path(),
        "many.ipynb",
        &(0..600)
            .map(|i| {
                let tags: &'static [&'static str] = Box::leak(
                    vec![&*Box::leak(format!("step:s{i}").into_boxed_str())].into_boxed_slice(),
                );
                crate::support::C::Code(tags, "x = 1")
            })
            .collect::<Vec<_>>(),
        None,
    );
    let bin = assert_cmd::cargo::cargo_bin("kale");
    // `kale inspect | head -1`, with a reader that leaves after one line.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' inspect '{}' --json | head -c 10 >/dev/null; echo \"status ${{PIPESTATUS[0]}}\" >&2",
            bin.display(),
            nb.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("status 141") || stderr.contains("status 0"),
        "{stderr}"
    );
}
