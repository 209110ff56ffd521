//! What travels between steps: classes from `functions` cells, classes, functions and
//! lambdas defined in a step (by value, without dill), large arrays mapped copy-on-write.

use serde_json::json;

use crate::support::{C, bare_venv, run_json, run_json_with, succeed, write_notebook};

const ACC: &str = "class Acc:\n    def __init__(self):\n        self.n = 0\n    def add(self, v):\n        self.n += v\n        return self";

#[test]
fn a_functions_cell_class_travels_between_steps_without_dill() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_venv(dir.path(), "bare");
    let nb = write_notebook(
        dir.path(),
        "acc.ipynb",
        &[
            C::Code(&["functions"], ACC),
            C::Code(&["step:start"], "acc = Acc().add(3)"),
            C::Code(
                &["step:more", "prev:start"],
                "total = acc.add(4).n\nsame_class = int(type(acc) is Acc)",
            ),
            C::Code(&["pipeline-metrics"], "print(total)\nprint(same_class)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json_with(&nb, &bare);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["metrics"]["total"], json!(7));
    assert_eq!(doc["metrics"]["same_class"], json!(1));
}

#[test]
fn code_defined_in_a_step_travels_by_value_without_dill() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_venv(dir.path(), "bare");
    let nb = write_notebook(
        dir.path(),
        "inline.ipynb",
        &[
            C::Code(
                &["step:start"],
                &format!(
                    "{ACC}\nacc = Acc().add(3)\nops = {{'sq': lambda v: v * v}}\nk = 5\ndef make_adder(n):\n    return lambda v: v + n + k\nadd = make_adder(1)\ndef fact(n):\n    return 1 if n < 2 else n * fact(n - 1)"
                ),
            ),
            C::Code(
                &["step:more", "prev:start"],
                "total = acc.add(4).n + ops['sq'](3) + add(1) + fact(4)\nsame_class = int(type(acc) is Acc)",
            ),
            C::Code(&["pipeline-metrics"], "print(total)\nprint(same_class)"),
        ],
        None,
    );
    // A Python without dill: the class, the lambda in a dict, the closure (its cell and
    // the global it names) and the recursive function cross to `more` all the same.
    let (code, doc, stderr) = run_json_with(&nb, &bare);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["metrics"]["total"], json!(7 + 9 + 7 + 24));
    assert_eq!(doc["metrics"]["same_class"], json!(1));
}

#[test]
fn a_step_writing_into_a_mapped_input_changes_neither_the_cache_nor_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "mmap.ipynb",
        &[
            C::Code(&["imports"], "import numpy as np"),
            C::Code(&["pipeline-parameters"], "k = 1"),
            C::Code(
                &["step:make"],
                "data = np.arange(2_000_000, dtype=np.float64)",
            ),
            C::Code(
                &["step:mutate", "prev:make"],
                "before = float(data[:5].sum())\nplain = int(type(data) is np.ndarray and data.flags.writeable)\nmapped = int(isinstance(data.base, np.memmap))\ndata[:] = -k\nafter = float(data[:5].sum())",
            ),
            C::Code(
                &["pipeline-metrics"],
                "print(before)\nprint(after)\nprint(plain)\nprint(mapped)",
            ),
        ],
        None,
    );
    for k in [1, 2, 3] {
        let (code, doc, stderr) = run_json(&nb, &["-p", &format!("k={k}")]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(doc["metrics"]["before"], json!(10.0), "run k={k}: {doc:#}");
        assert_eq!(doc["metrics"]["after"], json!(-5.0 * k as f64));
        assert_eq!(doc["metrics"]["plain"], json!(1));
        assert_eq!(
            doc["metrics"]["mapped"],
            json!(1),
            "a 16 MB input is mapped, not read"
        );
        if k > 1 {
            let make = doc["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "make")
                .unwrap();
            assert_eq!(make["status"], "cached", "{doc:#}");
        }
    }
}

/// In a tune, the inputs a trial's step reads from a step reused from the cache are
/// held by the fork server and inherited by each trial's process: a trial writing into
/// them changes neither the cache nor what the next trial sees, and an input whose
/// class a `functions` cell defines (which the server cannot hold) is loaded by the step.
#[test]
fn a_tune_holds_shared_inputs_in_the_fork_server_and_trials_writing_into_them_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "warm.ipynb",
        &[
            C::Code(&["imports"], "import numpy as np"),
            C::Code(&["functions"], ACC),
            C::Code(&["pipeline-parameters"], "k = 1"),
            C::Code(
                &["step:make"],
                "data = np.arange(2_000_000, dtype=np.float64)\nsmall = [1, 2, 3]\nacc = Acc().add(5)",
            ),
            C::Code(
                &["step:use", "prev:make"],
                "before = float(data[:5].sum()) + sum(small) + acc.n\ndata[:] = -k\nsmall.append(k)\nacc.add(k)\nsame_class = int(type(acc) is Acc)",
            ),
            C::Code(&["pipeline-metrics"], "print(before)\nprint(same_class)"),
        ],
        None,
    );
    let out = crate::support::kale_with_python()
        .arg("tune")
        .arg(&nb)
        .args([
            "--json",
            "--objective",
            "before",
            "--algorithm",
            "grid",
            "--param",
            "k=int:1..4",
            "--parallel",
            "1",
            "--name",
            "warm",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let runs = dir.path().join(".kale/runs");
    let mut trials: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    trials.sort_by_key(|p| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("manifest.json")).unwrap())
                .unwrap();
        m["trial"].as_u64().unwrap()
    });
    assert_eq!(trials.len(), 4, "{stderr}");
    for (number, run) in trials.iter().enumerate() {
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap())
                .unwrap();
        // 0+1+2+3+4 from the array, 6 from the list, 5 from the accumulator: as made.
        assert_eq!(manifest["metrics"]["before"], json!(21.0), "trial {number}");
        assert_eq!(
            manifest["metrics"]["same_class"],
            json!(1),
            "trial {number}"
        );
        let status = step_status(run, "use");
        // Held by the server for the trials after the first; in the first, handed on in
        // memory by `make`, which ran in the same process. Never `acc`: its class is the
        // functions cell's, which each step defines anew.
        assert_eq!(
            status["warm_inputs"],
            json!(["data", "small"]),
            "trial {number}"
        );
    }
    // The cached array is still what `make` saved.
    let saved = trials[0].join("steps/make/outputs/data.npy");
    let check = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg("import sys, numpy as np; a = np.load(sys.argv[1]); print(int((a == np.arange(a.size)).all()))")
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "1");
}

/// The status.json a step of the run in `run` left.
fn step_status(run: &std::path::Path, step: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("steps").join(step).join("status.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// In a tune, a trial's step runs in the process of the step before it, whose outputs
/// it then takes from memory — and computes exactly what fresh processes compute: a
/// value is handed on to one step only (a step changing it in place does not change
/// what a later step reads), held inputs a step changed are read again from their
/// files, and what a step set in its process (environment, `sys.path`, globals, the
/// state of a module beside the notebook) is gone for the next.
#[test]
fn a_trials_steps_share_a_process_and_compute_what_fresh_processes_compute() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("helper.py"),
        "calls = []\n\nclass Box:\n    def __init__(self, v):\n        self.v = v\n",
    )
    .unwrap();
    let nb = write_notebook(
        dir.path(),
        "chain.ipynb",
        &[
            C::Code(
                &["imports"],
                "import os, sys\nimport numpy as np\nimport helper",
            ),
            C::Code(&["pipeline-parameters"], "k = 1"),
            C::Code(&["step:make"], "data = np.arange(10.0)"),
            C::Code(
                &["step:fit", "prev:make"],
                "data[:] = -1\narr = np.full(3, float(k))\nrows = [k]\nos.environ['KALE_TEST_LEAK'] = '1'\nsys.path.append('/leak')\nleaked = 1\nbox = helper.Box(k)",
            ),
            C::Code(
                &["step:check", "prev:fit"],
                "seen_data = float(data.sum())\nseen_arr = float(arr.sum())\nnp.copyto(arr, 100.0)\nrows.append(2)\nenv_leak = int('KALE_TEST_LEAK' in os.environ)\npath_leak = int('/leak' in sys.path)\nglobal_leak = int('leaked' in globals())\nsame_box_class = int(type(box) is helper.Box) * box.v\nhelper.calls.append(k)",
            ),
            C::Code(
                &["step:after", "prev:check"],
                "after_data = float(data.sum())\nafter_rows = len(rows)\nafter_arr = float(arr.sum())\nmodule_leak = len(helper.calls)",
            ),
            C::Code(
                &["pipeline-metrics"],
                "print(seen_data)\nprint(seen_arr)\nprint(env_leak)\nprint(path_leak)\nprint(module_leak)\nprint(same_box_class)\nprint(global_leak)\nprint(after_data)\nprint(after_rows)\nprint(after_arr)",
            ),
        ],
        None,
    );
    let tune = succeed(
        crate::support::kale_with_python()
            .current_dir(dir.path())
            .arg("tune")
            .arg(&nb)
            .args([
                "--json",
                "--objective",
                "seen_arr",
                "--algorithm",
                "grid",
                "--param",
                "k=int:1..3",
                "--parallel",
                "1",
                "--name",
                "chain",
            ]),
    );

    let stderr = String::from_utf8_lossy(&tune.stderr);
    assert!(
        stderr.contains("cell 5, line 9: step `check` changes global state that kale does not carry to later steps (`helper.calls.append`)"),
        "{stderr}"
    );

    // The same pipeline with a fresh process per step, as Kubeflow runs it.
    let fresh = |k: i64| {
        let out = succeed(
            crate::support::kale_with_python()
                .env("KALE_FORK_SERVER", "0")
                .current_dir(dir.path())
                .args(["run", "--json", "--no-cache", "-p"])
                .arg(format!("k={k}"))
                .arg(&nb),
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["metrics"].clone()
    };

    let mut shared = 0;
    for entry in std::fs::read_dir(dir.path().join(".kale/runs")).unwrap() {
        let run = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(run.join("manifest.json")) else {
            continue;
        };
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        if manifest["experiment"].is_null() {
            continue;
        }
        let k = manifest["parameters"]["k"].as_i64().unwrap();
        let metrics = &manifest["metrics"];
        assert_eq!(*metrics, fresh(k), "trial with k={k}");
        // Each step hands on what it changed (as Kale does: a value comes from the
        // latest step that had it), `np.copyto` included.
        assert_eq!(metrics["seen_data"], json!(-10.0), "k={k}");
        assert_eq!(metrics["seen_arr"], json!(3.0 * k as f64), "k={k}");
        assert_eq!(metrics["after_data"], json!(-10.0), "k={k}");
        assert_eq!(metrics["after_rows"], json!(2), "k={k}");
        assert_eq!(metrics["after_arr"], json!(300.0), "k={k}");
        // The environment and sys.path travel to later steps, as in the notebook's
        // kernel; `globals()` and a module's state do not (validate warns about both),
        // and a shared process forgets them as a fresh one never had them.
        assert_eq!(metrics["env_leak"], json!(1), "k={k}");
        assert_eq!(metrics["path_leak"], json!(1), "k={k}");
        assert_eq!(metrics["global_leak"], json!(0), "k={k}");
        assert_eq!(metrics["module_leak"], json!(0), "k={k}");
        assert_eq!(metrics["same_box_class"], json!(k), "k={k}");
        let (fit, check) = (step_status(&run, "fit"), step_status(&run, "check"));
        if fit["pid"] == check["pid"] {
            shared += 1;
            let warm = check["warm_inputs"].as_array().cloned().unwrap_or_default();
            assert!(warm.contains(&json!("arr")), "{check}");
        }
    }
    assert!(
        shared >= 2,
        "the trials' steps did not share processes: {shared}"
    );

    // Turned off, each step has a process of its own.
    succeed(
        crate::support::kale_with_python()
            .env("KALE_STEP_REUSE", "0")
            .current_dir(dir.path())
            .arg("tune")
            .arg(&nb)
            .args(["--json", "--objective", "seen_arr", "--algorithm", "grid"])
            .args(["--param", "k=int:4..5", "--name", "own"]),
    );
    let mut own = 0;
    for entry in std::fs::read_dir(dir.path().join(".kale/runs")).unwrap() {
        let run = entry.unwrap().path();
        if !run
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("own")
        {
            continue;
        }
        assert_ne!(
            step_status(&run, "fit")["pid"],
            step_status(&run, "check")["pid"],
            "{}",
            run.display()
        );
        own += 1;
    }
    assert_eq!(own, 2);
}
