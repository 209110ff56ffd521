//! The fork server: steps are children of one Python process that imported the
//! notebook's modules once (Linux), and `KALE_FORK_SERVER=0` turns it off.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{C, kale_with_python, write_notebook};

/// A module on `PYTHONPATH` that logs the importing process's pid, and a
/// three-step notebook importing it whose steps record their parent's pid.
fn counted_import_notebook(dir: &Path) -> (PathBuf, PathBuf) {
    let lib = dir.join("pylib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(
        lib.join("counted_import.py"),
        "import os\nwith open(os.environ['KALE_TEST_IMPORT_LOG'], 'a') as f:\n    f.write(f'{os.getpid()}\\n')\n",
    )
    .unwrap();
    // A module beside the notebook is the user's own code: each step imports it
    // afresh, so an edit between steps or trials is seen.
    std::fs::write(
        dir.join("local_helper.py"),
        "import os\nwith open(os.environ['KALE_TEST_IMPORT_LOG'] + '.local', 'a') as f:\n    f.write(f'{os.getpid()}\\n')\n",
    )
    .unwrap();
    let nb = write_notebook(
        dir,
        "counted.ipynb",
        &[
            C::Code(
                &["imports"],
                "import os\nimport random\nimport numpy as np\nimport numpy.random\nimport counted_import\nimport local_helper",
            ),
            C::Code(&["pipeline-parameters"], "x = 1.0"),
            C::Code(
                &["step:first"],
                "first_parent = os.getppid()\nfirst_draws = [float(np.random.random()), random.random()]",
            ),
            C::Code(
                &["step:second", "prev:first"],
                "second_parent = os.getppid()\nprint('x' * 200_000)\nprint('done')",
            ),
            C::Code(
                &["step:third", "prev:second"],
                "third_parent = os.getppid()\nthird_draws = [float(np.random.random()), random.random()]\n\
                 fresh_randomness = int(all(a != b for a, b in zip(first_draws, third_draws)))\n\
                 score = -(x - 2) ** 2",
            ),
            C::Code(
                &["pipeline-metrics"],
                "print(first_parent)\nprint(second_parent)\nprint(third_parent)\nprint(fresh_randomness)\nprint(score)",
            ),
        ],
        None,
    );
    (nb, lib)
}

fn importing_pids(log: &Path) -> Vec<i64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn run(nb: &Path, lib: &Path, log: &Path, fork_server: bool) -> Value {
    let mut cmd = kale_with_python();
    cmd.arg("run")
        .arg(nb)
        .args(["--json", "--no-cache"])
        .env("PYTHONPATH", lib)
        .env("KALE_TEST_IMPORT_LOG", log);
    if !fork_server {
        cmd.env("KALE_FORK_SERVER", "0");
    }
    let out = crate::support::succeed(&mut cmd);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[cfg(target_os = "linux")]
fn steps_are_forked_from_one_process_that_imported_the_modules_once() {
    let dir = tempfile::tempdir().unwrap();
    let (nb, lib) = counted_import_notebook(dir.path());

    let log = dir.path().join("imports-forked.log");
    let doc = run(&nb, &lib, &log, true);
    let importers = importing_pids(&log);
    assert_eq!(importers.len(), 1, "imported once: {importers:?}");
    // Unseeded numpy and `random` draws differ from step to step, as they do
    // between spawned processes.
    assert_eq!(doc["metrics"]["fresh_randomness"], 1, "{doc}");
    let local = importing_pids(&log.with_extension("log.local"));
    assert_eq!(
        local.len(),
        3,
        "the notebook's own module, per step: {local:?}"
    );
    for step in ["first_parent", "second_parent", "third_parent"] {
        assert_eq!(doc["metrics"][step], importers[0], "{doc}");
    }
    // Output larger than a pipe's buffer reaches the log whole, in order.
    let second = dir
        .path()
        .join(".kale/runs")
        .join(doc["run_id"].as_str().unwrap());
    let stdout = std::fs::read_to_string(second.join("steps/second/stdout.log")).unwrap();
    assert_eq!(stdout, format!("{}\ndone\n", "x".repeat(200_000)));

    // The runs directory holds runs only (tools list it); the server's log is beside it.
    for entry in std::fs::read_dir(dir.path().join(".kale/runs")).unwrap() {
        let path = entry.unwrap().path();
        assert!(path.join("manifest.json").exists(), "{}", path.display());
    }
    assert!(dir.path().join(".kale/fork-server.log").exists());

    let log = dir.path().join("imports-spawned.log");
    let doc = run(&nb, &lib, &log, false);
    let importers = importing_pids(&log);
    assert_eq!(importers.len(), 3, "each step imports: {importers:?}");
    assert_ne!(doc["metrics"]["first_parent"], importers[0]);
}

#[test]
#[cfg(target_os = "linux")]
fn a_tune_imports_the_modules_once_for_all_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let (nb, lib) = counted_import_notebook(dir.path());
    let log = dir.path().join("imports.log");
    let out = crate::support::succeed(
        kale_with_python()
            .arg("tune")
            .arg(&nb)
            .args(["--json", "--objective", "score", "--algorithm", "random"])
            .args([
                "--param",
                "x=double:0..4",
                "--max-trials",
                "4",
                "--parallel",
                "2",
            ])
            .env("PYTHONPATH", &lib)
            .env("KALE_TEST_IMPORT_LOG", &log),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["trials"]["succeeded"], 4, "{doc}");
    // `first` and `second` run once (cached), `third` four times: five step
    // processes, one import.
    assert_eq!(importing_pids(&log).len(), 1);
}

#[test]
#[cfg(target_os = "linux")]
fn a_forked_steps_traceback_is_the_one_python_would_print() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "fails.ipynb",
        &[
            C::Code(&["imports"], "import json"),
            C::Code(&["step:boom"], "x = 1\nraise ValueError('no good')"),
        ],
        None,
    );
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cell 2, line 2"), "{stderr}");
    let runs = dir.path().join(".kale/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("manifest.json").exists())
        .unwrap();
    let log = std::fs::read_to_string(run.join("steps/boom/stderr.log")).unwrap();
    assert!(
        log.starts_with("Traceback (most recent call last):\n  File \""),
        "{log}"
    );
    assert!(log.contains("program.py\", line"), "{log}");
    assert!(log.contains("ValueError: no good"), "{log}");
    assert!(!log.contains("kale_zygote"), "{log}");
}
