//! The step cache's snapshots: a cached step is reused only while what it read (data
//! files, local modules, the interpreter, package versions) is unchanged, with real
//! Python processes and the real cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    C, bare_venv, kale_with_python, run_json, run_json_with, succeed, write_notebook,
};

fn statuses(doc: &Value) -> Vec<(String, String)> {
    doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {doc:#}"))
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(doc: &Value, step: &str) -> String {
    statuses(doc)
        .into_iter()
        .find(|(n, _)| n == step)
        .unwrap_or_else(|| panic!("no step {step} in {doc:#}"))
        .1
}

fn note_of(doc: &Value, step: &str) -> Option<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .and_then(|s| s["cache_note"].as_str().map(String::from))
}

fn run_ok(nb: &Path, extra: &[&str]) -> (Value, String) {
    let (code, doc, stderr) = run_json(nb, extra);
    assert_eq!(code, 0, "{stderr}");
    (doc, stderr)
}

/// Runs `kale run --json` with another interpreter; it must succeed.
fn run_with(nb: &Path, interpreter: &Path) -> (Value, String) {
    let (code, doc, stderr) = run_json_with(nb, interpreter);
    assert_eq!(code, 0, "{stderr}");
    (doc, stderr)
}

fn set_mtime_later(path: &Path, seconds: u64) {
    let f = if path.is_dir() {
        std::fs::File::open(path).unwrap()
    } else {
        std::fs::File::options().write(true).open(path).unwrap()
    };
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(seconds))
        .unwrap();
}

fn data_notebook(dir: &Path) -> PathBuf {
    write_notebook(
        dir,
        "stale.ipynb",
        &[
            C::Code(&["step:load"], "base = int(open('data.txt').read())"),
            C::Code(&["step:score", "prev:load"], "score = base * 2"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    )
}

#[test]
fn spawned_steps_are_tracked_like_forked_ones() {
    let dir = tempfile::tempdir().unwrap();
    let nb = data_notebook(dir.path());
    let data = dir.path().join("data.txt");
    std::fs::write(&data, "1\n").unwrap();
    let spawned = |nb: &Path| {
        let out = kale_with_python()
            .env("KALE_FORK_SERVER", "0")
            .arg("run")
            .arg(nb)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(spawned(&nb)["metrics"]["score"], json!(2));
    assert_eq!(status_of(&spawned(&nb), "load"), "cached");
    std::fs::write(&data, "4\n").unwrap();
    let changed = spawned(&nb);
    assert_eq!(
        note_of(&changed, "load").as_deref(),
        Some("data.txt changed")
    );
    assert_eq!(changed["metrics"]["score"], json!(8));
}

#[test]
fn a_changed_data_file_reruns_the_step_that_read_it_and_an_mtime_alone_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let nb = data_notebook(dir.path());
    let data = dir.path().join("data.txt");
    std::fs::write(&data, "10\n").unwrap();
    let (first, _) = run_ok(&nb, &[]);
    assert_eq!(first["metrics"]["score"], json!(20));

    let (second, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&second, "load"), "cached");
    assert_eq!(status_of(&second, "score"), "cached");
    assert_eq!(second["metrics"]["score"], json!(20));

    // Touched, same bytes: still a hit.
    set_mtime_later(&data, 30);
    let (touched, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&touched, "load"), "cached", "{touched:#}");

    std::fs::write(&data, "20\n").unwrap();
    let (changed, stderr) = run_ok(&nb, &[]);
    assert_eq!(status_of(&changed, "load"), "succeeded");
    assert_eq!(
        note_of(&changed, "load").as_deref(),
        Some("data.txt changed")
    );
    assert!(stderr.contains("load: data.txt changed"), "{stderr}");
    assert_eq!(changed["metrics"]["score"], json!(40));

    // The explanation lists the file and says the new snapshot holds.
    let out = succeed(
        kale_with_python()
            .args(["cache", "explain", "last", "load", "--dir"])
            .arg(dir.path()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("read      data.txt"), "{text}");
    assert!(text.contains("holds     yes"), "{text}");
    std::fs::write(&data, "30\n").unwrap();
    let out = succeed(
        kale_with_python()
            .args(["cache", "explain", "last", "load", "--json", "--dir"])
            .arg(dir.path()),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["steps"][0]["holds"], json!(false));
    assert_eq!(doc["steps"][0]["stale_because"], "data.txt changed");
}

#[test]
fn a_file_written_by_a_cached_step_is_restored_for_the_step_that_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "files.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "factor = 1"),
            C::Code(
                &["step:prepare"],
                "with open('features.txt', 'w') as f:\n    f.write('7')\nwith open('executions.log', 'a') as log:\n    log.write('prepare\\n')",
            ),
            C::Code(
                &["step:use", "prev:prepare"],
                "value = int(open('features.txt').read()) * factor",
            ),
            C::Code(&["pipeline-metrics"], "print(value)"),
        ],
        None,
    );
    let (first, _) = run_ok(&nb, &[]);
    assert_eq!(first["metrics"]["value"], json!(7));
    let features = dir.path().join("features.txt");
    std::fs::remove_file(&features).unwrap();

    // `use` runs with another factor: it must find the file `prepare` wrote.
    let (second, _) = run_ok(&nb, &["-p", "factor=3"]);
    assert_eq!(status_of(&second, "prepare"), "cached", "{second:#}");
    assert_eq!(status_of(&second, "use"), "succeeded");
    assert_eq!(second["metrics"]["value"], json!(21));
    assert_eq!(std::fs::read_to_string(&features).unwrap(), "7");
    let log = std::fs::read_to_string(dir.path().join("executions.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "prepare ran again: {log}");

    // Changed by hand: restored as the notebook would write it.
    std::fs::write(&features, "100").unwrap();
    let (third, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&third, "prepare"), "cached");
    assert_eq!(third["metrics"]["value"], json!(7), "{third:#}");
}

#[test]
fn an_edited_local_module_reruns_the_steps_that_import_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("helpers.py"), "FACTOR = 3\n").unwrap();
    let nb = write_notebook(
        dir.path(),
        "modules.ipynb",
        &[
            C::Code(&["imports"], "import helpers"),
            C::Code(&["step:calc"], "score = helpers.FACTOR * 2"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (first, _) = run_ok(&nb, &[]);
    assert_eq!(first["metrics"]["score"], json!(6));
    let (second, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&second, "calc"), "cached");

    std::fs::write(dir.path().join("helpers.py"), "FACTOR = 5\n").unwrap();
    let (edited, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&edited, "calc"), "succeeded");
    assert_eq!(
        note_of(&edited, "calc").as_deref(),
        Some("helpers.py changed")
    );
    assert_eq!(edited["metrics"]["score"], json!(10));
}

#[test]
fn another_interpreter_or_package_version_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let venv_python = bare_venv(dir.path(), "venv-b");
    let site = Command::new(&venv_python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8_lossy(&site.stdout).trim());
    // A distribution installed the way pip leaves it: the package and its dist-info.
    let install = |version: &str, value: u32| {
        for old in std::fs::read_dir(&site).unwrap().flatten() {
            if old.file_name().to_string_lossy().starts_with("fake_pkg-") {
                std::fs::remove_dir_all(old.path()).unwrap();
            }
        }
        std::fs::create_dir_all(site.join("fakepkg")).unwrap();
        std::fs::write(
            site.join("fakepkg/__init__.py"),
            format!("VALUE = {value}\n"),
        )
        .unwrap();
        let info = site.join(format!("fake_pkg-{version}.dist-info"));
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            info.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: fake-pkg\nVersion: {version}\n"),
        )
        .unwrap();
        std::fs::write(
            info.join("RECORD"),
            format!("fakepkg/__init__.py,,\nfake_pkg-{version}.dist-info/RECORD,,\n"),
        )
        .unwrap();
        // Like pip: the site directory's mtime moves when a dist-info comes or goes.
        set_mtime_later(&site, u64::from(value));
    };
    install("1.0", 1);
    let nb = write_notebook(
        dir.path(),
        "env.ipynb",
        &[
            C::Code(
                &["step:calc"],
                "import fakepkg\nscore = fakepkg.VALUE + 100",
            ),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );

    let (first, _) = run_with(&nb, &venv_python);
    assert_eq!(first["metrics"]["score"], json!(101));
    let (again, _) = run_with(&nb, &venv_python);
    assert_eq!(status_of(&again, "calc"), "cached");

    // An upgrade of the package: the new version's result, and why.
    install("1.1", 2);
    let (upgraded, stderr) = run_with(&nb, &venv_python);
    assert_eq!(status_of(&upgraded, "calc"), "succeeded", "{stderr}");
    assert_eq!(
        note_of(&upgraded, "calc").as_deref(),
        Some("fake-pkg 1.0 → 1.1")
    );
    assert_eq!(upgraded["metrics"]["score"], json!(102));

    // A stdlib-only step computed by one interpreter is not reused by another.
    let plain = write_notebook(
        dir.path(),
        "plain.ipynb",
        &[
            C::Code(&["step:calc"], "import sys\nscore = 1"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    run_with(&plain, &venv_python);
    let (other, _) = run_ok(&plain, &[]);
    assert_eq!(status_of(&other, "calc"), "succeeded");
    let note = note_of(&other, "calc").unwrap();
    assert!(
        note.starts_with("Python ") && note.contains("venv-b"),
        "{note}"
    );
}

#[test]
fn a_step_that_used_the_network_is_reused_only_when_tagged_cache_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let source = "import socket\ns = socket.socket()\ns.settimeout(0.5)\ns.connect_ex(('127.0.0.1', 9))\ns.close()\nn = 1";
    let nb = write_notebook(
        dir.path(),
        "net.ipynb",
        &[
            C::Code(&["step:fetch"], source),
            C::Code(&["pipeline-metrics"], "print(n)"),
        ],
        None,
    );
    run_ok(&nb, &[]);
    let (second, _) = run_ok(&nb, &[]);
    assert_eq!(status_of(&second, "fetch"), "succeeded");
    let note = note_of(&second, "fetch").unwrap();
    assert!(
        note.contains("connected to") && note.contains("cache:enabled"),
        "{note}"
    );

    let tagged = write_notebook(
        dir.path(),
        "net.ipynb",
        &[
            C::Code(&["step:fetch", "cache:enabled"], source),
            C::Code(&["pipeline-metrics"], "print(n)"),
        ],
        None,
    );
    let (third, _) = run_ok(&tagged, &[]);
    assert_eq!(status_of(&third, "fetch"), "cached", "{third:#}");
}

#[test]
fn a_tune_reads_its_data_once_while_the_data_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "5\n").unwrap();
    let nb = write_notebook(
        dir.path(),
        "tune.ipynb",
        &[
            C::Code(&["pipeline-parameters"], "x = 0.5"),
            C::Code(
                &["step:load"],
                "base = int(open('data.txt').read())\nwith open('executions.log', 'a') as log:\n    log.write('load\\n')",
            ),
            C::Code(&["step:fit", "prev:load"], "score = -(x - 0.3) ** 2 + base"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let out = succeed(kale_with_python().arg("tune").arg(&nb).args([
        "--objective",
        "score",
        "--algorithm",
        "random",
        "--param",
        "x=double:0..1",
        "--max-trials",
        "20",
        "--parallel",
        "2",
        "--json",
    ]));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["trials"]["succeeded"], json!(20));
    let log = std::fs::read_to_string(dir.path().join("executions.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "load ran more than once: {log}");
    assert_eq!(doc["cache"]["hits"], json!(19));
    assert_eq!(doc["cache"]["notes"], json!([]));
    let best = doc["best"]["metrics"]["score"].as_f64().unwrap();
    assert!(best > 4.9 && best <= 5.0, "{best}");
}
