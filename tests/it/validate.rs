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

fn validate_stderr(nb: &std::path::Path) -> (Option<i32>, String) {
    let out = kale().arg("validate").arg(nb).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A syntax error quotes its line with a caret under the column Python stops at, once
/// per cell, in Python's terms (no Rust debug text), with no follow-on error about
/// names the parser's recovery invented.
#[test]
fn syntax_errors_quote_the_line_and_point_at_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "syntax.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "lr = 0.1\nn = (2"),
            C::Code(&["step:a"], "a = 1\nb = a +* 2"),
            C::Code(&["step:b", "prev:a"], "x = 0x\nprint(x)"),
            C::Code(&["step:c", "prev:b"], "token = ***\nprint(token)"),
        ],
        None,
    );
    let (code, stderr) = validate_stderr(&nb);
    assert_eq!(code, Some(2), "{stderr}");
    let hint = "  hint: fix the line (the notebook's kernel rejects it too), or tag the cell `skip` to leave it out of the pipeline";
    for expected in [
        "cell 1, line 2: syntax error: unexpected EOF while parsing\n    n = (2\n          ^\n",
        "cell 2, line 2: syntax error: Starred expression cannot be used here\n    b = a +* 2\n           ^\n",
        "cell 3, line 1: syntax error: invalid number literal `0x`\n    x = 0x\n        ^\n",
        "cell 4, line 1: syntax error: Expected an expression\n    token = ***\n            ^\n",
    ] {
        assert!(
            stderr.contains(&format!("{expected}{hint}")),
            "{expected}\n--- stderr\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        4,
        "{stderr}"
    );
    assert!(!stderr.contains("ParseIntError"), "{stderr}");
    assert!(!stderr.contains("reads ``"), "{stderr}");
    crate::errors::assert_every_error_has_a_hint(&stderr);
}

/// Messages about tags and special cells say why, and hint at the fix that applies.
#[test]
fn tag_and_cell_problems_say_why_without_follow_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "tags.ipynb",
        &[
            C::Code(&["parameters"], "lr = 0.1"),
            C::Code(&["imports"], "import math"),
            C::Code(&["block:"], "base = 2"),
            C::Code(&["step:Load-Data", "prev:x"], "a = 1"),
            C::Code(&["step:load"], "data = [1, 2, 3]\nmodel = None"),
            C::Code(
                &["functions"],
                "def f(v):\n    return v\nfor epoch in range(3):\n    loss = f(epoch)\n    total = loss + math.pi\n    print(epoch, loss, data, model)\nresults = total",
            ),
            C::Code(&["step:train", "prev:load"], "out = f(data)\nscore = 1"),
            C::Code(&["pipeline-metrics"], "final = score\nprint(score)"),
        ],
        None,
    );
    let (code, stderr) = validate_stderr(&nb);
    assert_eq!(code, Some(2), "{stderr}");
    for expected in [
        // Papermill's parameters cell: kale's tag is suggested, twice where it matters.
        "cell 1: tag `parameters` belongs to papermill; kale ignores it\n  hint: if this cell holds the notebook's parameters, tag it `pipeline-parameters` as well",
        "hint: cell 1 is papermill's `parameters` cell: tag it `pipeline-parameters` too",
        // An empty `block:` after the imports cell joins it: said, with the fix.
        "cell 3: tag `block:` names no step, so this cell continues the `imports` cell above it and runs at the start of every step\n  hint: write the step's name after the colon (`block:NAME`)",
        // The invalid step name, and not also its `prev:` as attached to no step.
        "cell 4: invalid step name `Load-Data`",
        // One error for the functions cell, saying when it runs.
        "cell 6, line 6: the `functions` cell reads `data` and `model` at its top level without defining them: that cell runs at the start of every step, once, before the step's own cells and inputs",
        // The location is said once.
        "cell 8, line 1: `final = score` is not a metric",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected}\n--- stderr\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("on a cell that declares no step name"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 1: line 1"), "{stderr}");
    assert_eq!(
        stderr.matches("`functions` cell reads").count(),
        1,
        "{stderr}"
    );
    crate::errors::assert_every_error_has_a_hint(&stderr);
}

/// Parallel branches: a warning only when a branch assigns the name (reading it, as
/// `fit(X)` does, leaves their common ancestor's value), and three branches are not
/// "both".
#[test]
fn branch_warnings_name_assignments_and_count_right() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "branches.ipynb",
        &[
            C::Code(&["step:load"], "X = [1, 2]\nscore = 0"),
            C::Code(&["step:a", "prev:load"], "fa = sum(X)\nscore = 1"),
            C::Code(&["step:b", "prev:load"], "fb = len(X)\nscore = 2"),
            C::Code(&["step:c", "prev:load"], "fc = max(X)\nscore = 3"),
            C::Code(
                &["step:report", "prev:a", "prev:b", "prev:c"],
                "print(X, fa, fb, fc, score)",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, stderr) = validate_stderr(&nb);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("reads `X`"), "{stderr}");
    assert!(
        stderr.contains(
            "step `report` reads `score`, which parallel steps `a`, `b` and `c` all touch"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("both"), "{stderr}");

    // A metric three branches set, with no step after them.
    let nb = write_notebook(
        dir.path(),
        "metric.ipynb",
        &[
            C::Code(&["step:load"], "X = [1, 2]"),
            C::Code(&["step:a", "prev:load"], "score = sum(X)"),
            C::Code(&["step:b", "prev:load"], "score = len(X)"),
            C::Code(&["step:c", "prev:load"], "score = max(X)"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, stderr) = validate_stderr(&nb);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("metric `score` is set by parallel steps `a`, `b` and `c`; reporting the value from `c` (the latest in the notebook)\n  hint: "),
        "{stderr}"
    );
}
