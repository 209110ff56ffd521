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
