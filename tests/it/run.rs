//! `kale run` with real Python subprocesses.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{C, kale_with_python, python, run_json, write_notebook};

fn step_manifest(run_dir: &Path, step: &str) -> Value {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap()
        .clone()
}

#[test]
fn linear_pipeline_passes_values_and_reports_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "linear.ipynb",
        &[
            C::Code(&["imports"], "import math"),
            C::Code(
                &["pipeline-parameters"],
                "n = 4\nscale = 0.5\nlabel = \"it's \\\"quoted\\\"\\\\n\"",
            ),
            C::Code(&["step:make"], "xs = [i * scale for i in range(n)]"),
            C::Code(
                &["step:total", "prev:make"],
                "total = math.fsum(xs)\nprint('total is', total)",
            ),
            C::Code(
                &["step:report", "prev:total"],
                "doubled = total * 2\nsize = len(label)",
            ),
            C::Code(&["pipeline-metrics"], "print(doubled)\nprint(size)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json(&nb, &["-p", "n=5"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["status"], "succeeded");
    // 0.5 * (0+1+2+3+4) * 2
    assert_eq!(doc["metrics"]["doubled"], json!(10.0));
    // the string parameter round-trips exactly: it's "quoted"\n with a real backslash-n
    assert_eq!(doc["metrics"]["size"], json!(r#"it's "quoted"\n"#.len()));
    assert!(stderr.contains("total │ total is 5.0"), "{stderr}");
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["succeeded"; 3]);
    let run_dir = Path::new(doc["run_dir"].as_str().unwrap());
    assert!(run_dir.starts_with(dir.path().canonicalize().unwrap().join(".kale/runs")));
    let make = step_manifest(run_dir, "make");
    assert_eq!(make["parameters"], json!({"n": 5, "scale": 0.5}));
    let hash = make["outputs"][0]["hash"].as_str().unwrap();
    assert!(hash.starts_with("sha256:"), "{hash}");
    assert_eq!(
        step_manifest(run_dir, "total")["inputs"]["xs"]["hash"],
        json!(hash)
    );
}

#[test]
fn fan_out_branches_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "fan.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["step:root"], "base = 10"),
            C::Code(
                &["step:left", "prev:root"],
                "t_left = (time.time(),)\ntime.sleep(0.8)\nleft = base + 1\nt_left += (time.time(),)",
            ),
            C::Code(
                &["step:right", "prev:root"],
                "t_right = (time.time(),)\ntime.sleep(0.8)\nright = base + 2\nt_right += (time.time(),)",
            ),
            C::Code(
                &["step:join", "prev:left", "prev:right"],
                "both = left + right\noverlap = min(t_left[1], t_right[1]) - max(t_left[0], t_right[0])",
            ),
            C::Code(&["pipeline-metrics"], "print(both)\nprint(overlap)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json(&nb, &["--jobs", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["metrics"]["both"], json!(23));
    // The two branches' sleeps overlapped in wall-clock time.
    let overlap = doc["metrics"]["overlap"].as_f64().unwrap();
    assert!(overlap > 0.3, "branches did not overlap: {overlap}");
}

#[test]
fn numpy_pandas_and_sklearn_objects_travel_between_steps() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "ml.ipynb",
        &[
            C::Code(
                &["imports"],
                "import numpy as np\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression",
            ),
            C::Code(&["pipeline-parameters"], "C = 1.0"),
            C::Code(
                &["step:data"],
                "rng = np.random.default_rng(0)\nX = rng.normal(size=(200, 3))\ny = (X[:, 0] + X[:, 1] > 0).astype(int)\nframe = pd.DataFrame(X, columns=['a', 'b', 'c'])",
            ),
            C::Code(
                &["step:features", "prev:data"],
                "frame['d'] = frame['a'] * 2\nfeatures = frame.to_numpy()",
            ),
            C::Code(
                &["step:fit", "prev:features"],
                "model = LogisticRegression(C=C).fit(features, y)",
            ),
            C::Code(
                &["step:score", "prev:fit"],
                "accuracy = float(model.score(features, y))\ncolumns = len(frame.columns)",
            ),
            C::Code(&["pipeline-metrics"], "print(accuracy)\nprint(columns)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json(&nb, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(doc["metrics"]["accuracy"].as_f64().unwrap() > 0.9);
    assert_eq!(doc["metrics"]["columns"], json!(4));
    let run_dir = Path::new(doc["run_dir"].as_str().unwrap());
    let backends: Vec<(String, String)> = ["data", "features", "fit"]
        .iter()
        .flat_map(|s| {
            step_manifest(run_dir, s)["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["name"].as_str().unwrap().to_string(),
                        o["backend"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, backend) in [("y", "numpy"), ("frame", "pandas"), ("model", "sklearn")] {
        assert!(
            backends.contains(&(name.to_string(), backend.to_string())),
            "{backends:?}"
        );
    }
}

#[test]
fn a_failing_step_names_the_cell_and_line_and_stops_its_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "fail.ipynb",
        &[
            C::Md("# doc"),
            C::Code(&["step:ok"], "x = 1"),
            C::Code(&["step:boom", "prev:ok"], "y = x + 1\nz = y / 0"),
            C::Code(&["step:after", "prev:boom"], "w = z"),
            C::Code(&["pipeline-metrics"], "print(w)"),
        ],
        None,
    );
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: step `boom` failed at {}: cell 3, line 2",
            nb.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("z = y / 0"), "{stderr}");
    assert!(
        stderr.contains("ZeroDivisionError: division by zero"),
        "{stderr}"
    );
    let (code, doc, _) = run_json(&nb, &["--no-cache"]);
    assert_eq!(code, 1);
    assert_eq!(doc["error"]["cell"], json!(3));
    assert_eq!(doc["error"]["line"], json!(2));
    let statuses: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "not_run"]);
}

#[test]
fn ipython_cells_run_under_ipython_and_errors_point_into_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "magic.ipynb",
        &[
            C::Code(
                &["step:a"],
                "%time n = 3\nfiles = !echo one two\nitems = files[0].split()",
            ),
            C::Code(
                &["step:b", "prev:a"],
                "count = len(items) + n\n!echo shell says {count}\nbad = undefined_thing",
            ),
            C::Code(&["pipeline-metrics"], "print(count)"),
        ],
        None,
    );
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `undefined_thing` is reported at validate time already.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cell 2, line 3"), "{stderr}");

    let nb = write_notebook(
        dir.path(),
        "magic2.ipynb",
        &[
            C::Code(
                &["step:a"],
                "%time n = 3\nfiles = !echo one two\nitems = files[0].split()",
            ),
            C::Code(
                &["step:b", "prev:a"],
                "count = len(items) + n\n!echo shell says {count}\nassert count < 0, 'negative expected'",
            ),
            C::Code(&["pipeline-metrics"], "print(count)"),
        ],
        None,
    );
    let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("b │ shell says 5"), "{stderr}");
    assert!(stderr.contains("cell 2, line 3"), "{stderr}");
    assert!(
        stderr.contains("AssertionError: negative expected"),
        "{stderr}"
    );
}

#[test]
fn unsaveable_outputs_fail_with_the_variable_name_and_type() {
    let dir = tempfile::tempdir().unwrap();
    // What the analysis sees is refused before anything runs, at the reading step.
    for (src, what) in [
        (
            "gen = (i for i in range(3))",
            "a generator that step `a` creates",
        ),
        (
            "gen = open(__import__('os').devnull)",
            "an open file that step `a` creates",
        ),
    ] {
        let nb = write_notebook(
            dir.path(),
            "unsaveable.ipynb",
            &[
                C::Code(&["step:a"], src),
                C::Code(&["step:b", "prev:a"], "first = gen"),
            ],
            None,
        );
        let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("cell 2, line 1: step `b` reads `gen`"),
            "{stderr}"
        );
        assert!(stderr.contains(what), "{stderr}");
        assert!(stderr.contains("hint: "), "{stderr}");
    }
    // What it cannot see fails the step that saves it, with the variable and the type.
    for (src, ty) in [
        ("gen = {'g': (i for i in range(3))}['g']", "generator"),
        ("gen = [open(__import__('os').devnull)][0]", "TextIOWrapper"),
    ] {
        let nb = write_notebook(
            dir.path(),
            "unsaveable.ipynb",
            &[
                C::Code(&["step:a"], src),
                C::Code(&["step:b", "prev:a"], "first = gen"),
            ],
            None,
        );
        let out = kale_with_python().arg("run").arg(&nb).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("step `a` failed"), "{stderr}");
        assert!(stderr.contains("cannot save `gen`"), "{stderr}");
        assert!(stderr.contains(ty), "{stderr}");
    }
}

#[test]
fn metric_never_set_at_run_time_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    // `score` is bound only on a branch that does not run: statically it is bound.
    let nb = write_notebook(
        dir.path(),
        "metric.ipynb",
        &[
            C::Code(&["step:a"], "if False:\n    score = 1.0"),
            C::Code(&["pipeline-metrics"], "print(score)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json(&nb, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(doc["error"]["type"], "MetricError");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metric `score` was never set")
    );
}

#[test]
fn bad_invocations_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "p.ipynb",
        &[
            C::Code(
                &["pipeline-parameters"],
                "lr = 0.1\nepochs = 3\nuse_gpu = False",
            ),
            C::Code(&["step:a"], "x = lr * epochs"),
        ],
        None,
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["-p", "lr=fast"],
            "`lr` is a float (default 0.1), and `fast` is not a finite number",
        ),
        (
            &["-p", "epochs=2.5"],
            "`epochs` is an int (default 3), and `2.5` is not an integer",
        ),
        (&["-p", "use_gpu=maybe"], "is not true or false"),
        (
            &["-p", "momentum=0.9"],
            "`momentum` is not a pipeline parameter; the parameters are `lr`, `epochs`, `use_gpu`",
        ),
        (&["-p", "lr"], "not of the form NAME=VALUE"),
    ];
    for (args, expected) in cases {
        let out = kale_with_python()
            .arg("run")
            .arg(&nb)
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }
    let out = crate::support::kale()
        .arg("run")
        .arg(&nb)
        .arg("--python")
        .arg("/nonexistent/python3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot start Python `/nonexistent/python3`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: pass --python PATH or set KALE_PYTHON"),
        "{stderr}"
    );
}

/// Small notebooks exercising the data-flow rules; for each, `kale run` must compute
/// the metrics that running every code cell top to bottom in one interpreter computes.
fn equivalence_corpus() -> Vec<Vec<(Vec<&'static str>, &'static str)>> {
    vec![
        // mutation through a reader: `prep` mutates `data`, `use` must see the mutation
        vec![
            (vec!["step:load"], "data = [3, 1, 2]"),
            (
                vec!["step:prep", "prev:load"],
                "data.sort()\ndata.append(10)",
            ),
            (
                vec!["step:use", "prev:prep"],
                "result = data[0] * 100 + data[-1]",
            ),
            (vec!["pipeline-metrics"], "print(result)"),
        ],
        // helper in a functions cell reading a global set by a step, and a parameter
        vec![
            (vec!["pipeline-parameters"], "factor = 3"),
            (
                vec!["functions"],
                "def scaled(v):\n    return v * factor + offset",
            ),
            (vec!["step:setup"], "offset = 7"),
            (vec!["step:compute", "prev:setup"], "value = scaled(5)"),
            (vec!["pipeline-metrics"], "print(value)"),
        ],
        // a function and a class defined in one step, used in a later one
        vec![
            (
                vec!["step:define"],
                "class Acc:\n    def __init__(self):\n        self.n = 0\n    def add(self, k):\n        self.n += k\n        return self\n\ndef square(v):\n    return v * v\nacc = Acc()",
            ),
            (
                vec!["step:use", "prev:define"],
                "acc.add(square(4))\ntotal = acc.n + square(2)",
            ),
            (vec!["pipeline-metrics"], "print(total)"),
        ],
        // comprehension variables, walrus, augmented assignment, global in a function
        vec![
            (
                vec!["step:a"],
                "counter = 0\nvals = [y for x in range(5) if (y := x * x) > 3]",
            ),
            (
                vec!["step:b", "prev:a"],
                "def bump():\n    global counter\n    counter += 1\nbump(); bump()\ncounter += len(vals)",
            ),
            (vec!["step:c", "prev:b"], "out = counter * 10 + sum(vals)"),
            (vec!["pipeline-metrics"], "print(out)"),
        ],
        // fan-out / fan-in with a re-bound name on one branch and a skipped cell
        vec![
            (vec!["step:root"], "k = 2"),
            (vec!["skip"], "k = 1000"),
            (vec!["step:left", "prev:root"], "left = k + 1"),
            (vec!["step:right", "prev:root"], "right = k * 5"),
            (
                vec!["step:join", "prev:left", "prev:right"],
                "joined = left * right",
            ),
            (vec!["pipeline-metrics"], "print(joined)"),
        ],
        // untagged cells continue a step; a step appended to later; try/except; with
        vec![
            (vec!["imports"], "import io"),
            (vec!["step:a"], "parts = []"),
            (
                vec![],
                "try:\n    parts.append(int('x'))\nexcept ValueError as err:\n    parts.append(len(str(err)) > 0)",
            ),
            (
                vec!["step:b", "prev:a"],
                "with io.StringIO('abc') as fh:\n    parts.append(fh.read())",
            ),
            (vec!["step:a"], "parts.append('late')"),
            (vec!["step:c", "prev:b"], "n_parts = len(parts)"),
            (vec!["pipeline-metrics"], "print(n_parts)"),
        ],
        // a reassigned pipeline parameter reaches descendants with its new value
        vec![
            (vec!["pipeline-parameters"], "lr = 0.5"),
            (vec!["step:warm"], "lr = lr / 10"),
            (vec!["step:train", "prev:warm"], "final_lr = lr * 2"),
            (vec!["pipeline-metrics"], "print(final_lr)"),
        ],
        // lambda capturing a global; dict mutation through subscript assignment
        vec![
            (
                vec!["step:a"],
                "base = 4\nconfig = {'w': 1}\nfn = lambda v: v + base",
            ),
            (vec!["step:b", "prev:a"], "config['w'] = fn(1)"),
            (vec!["step:c", "prev:b"], "weight = config['w'] * 3"),
            (vec!["pipeline-metrics"], "print(weight)"),
        ],
    ]
}

/// Runs every code cell (except `skip` and `pipeline-metrics`) in order in one
/// interpreter and returns the metric values, as JSON.
fn run_top_to_bottom(cells: &[(Vec<&str>, &str)], metrics: &[&str]) -> Value {
    let mut script = String::from("import json\nns = {}\n");
    for (tags, src) in cells {
        if tags.contains(&"skip") || tags.contains(&"pipeline-metrics") {
            continue;
        }
        script.push_str(&format!("exec(compile({:?}, 'cell', 'exec'), ns)\n", src));
    }
    script.push_str(&format!(
        "print(json.dumps({{m: ns[m] for m in {:?}}}))\n",
        metrics
    ));
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn kale_run_computes_what_running_the_notebook_top_to_bottom_computes() {
    let dir = tempfile::tempdir().unwrap();
    for (i, cells) in equivalence_corpus().iter().enumerate() {
        let built: Vec<C> = cells
            .iter()
            .map(|(t, s)| C::Code(t.as_slice(), s))
            .collect();
        let nb = write_notebook(dir.path(), &format!("eq{i}.ipynb"), &built, None);
        let metrics: Vec<&str> = cells
            .iter()
            .filter(|(t, _)| t.contains(&"pipeline-metrics"))
            .flat_map(|(_, s)| {
                s.lines()
                    .map(|l| l.trim_start_matches("print(").trim_end_matches(')'))
            })
            .collect();
        let expected = run_top_to_bottom(cells, &metrics);
        let (code, doc, stderr) = run_json(&nb, &[]);
        assert_eq!(code, 0, "notebook {i}: {stderr}");
        for m in &metrics {
            let ours = &doc["metrics"][m];
            let theirs = &expected[m];
            let same = match (ours.as_f64(), theirs.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                _ => ours == theirs,
            };
            assert!(
                same,
                "notebook {i}, metric {m}: kale {ours} vs top-to-bottom {theirs}"
            );
        }
    }
}

/// `kale run NB` in the background, its output discarded but for `stderr`.
fn spawn_kale_run(nb: &Path, stderr: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("kale"))
        .env("KALE_PYTHON", python())
        .arg("run")
        .arg(nb)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits (up to `limit_s`) until `check` finds what it looks for in the first run
/// directory under `runs` of the `kale run` in `child`; kills it and panics with
/// `never` otherwise.
fn poll_first_run<T>(
    runs: &Path,
    child: &mut std::process::Child,
    limit_s: u64,
    never: &str,
    mut check: impl FnMut(&Path) -> Option<T>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let run = std::fs::read_dir(runs)
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path());
        if let Some(found) = run.as_deref().and_then(&mut check) {
            return found;
        }
        if started.elapsed().as_secs() >= limit_s {
            let _ = child.kill();
            panic!("{never}");
        }
    }
}

#[test]
fn ctrl_c_stops_running_steps_and_leaves_a_consistent_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "slow.ipynb",
        &[
            C::Code(&["imports"], "import time"),
            C::Code(&["step:quick"], "a = 1"),
            C::Code(&["step:slow", "prev:quick"], "time.sleep(60)\nb = a"),
            C::Code(&["step:after", "prev:slow"], "c = b"),
        ],
        None,
    );
    let mut child = spawn_kale_run(&nb, std::process::Stdio::piped());
    let runs = dir.path().join(".kale/runs");
    let status_file = poll_first_run(&runs, &mut child, 60, "step `slow` never started", |run| {
        let file = run.join("steps/slow/status.json");
        file.exists().then_some(file)
    });
    let step_pid: i32 = {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&status_file).unwrap()).unwrap();
        v["pid"].as_i64().unwrap() as i32
    };
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let run_dir = status_file
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["status"], "interrupted");
    let statuses: Vec<&str> = manifest["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "interrupted", "not_run"]);
    // The step's Python process is gone, not orphaned.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: signal 0 only probes for existence.
    let alive = unsafe { libc::kill(step_pid, 0) } == 0;
    assert!(!alive, "step process {step_pid} survived Ctrl-C");
    // No temporary files were left behind.
    let leftovers: Vec<_> = std::fs::read_dir(run_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_step_with_magics_needs_ipython_and_says_which_cell() {
    let dir = tempfile::tempdir().unwrap();
    // A bare interpreter: a venv without pip has only the standard library.
    let venv = dir.path().join("bare");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let nb = write_notebook(
        dir.path(),
        "magic.ipynb",
        &[
            C::Code(&["step:plain"], "a = 1"),
            C::Code(&["step:magic", "prev:plain"], "b = a\n%time c = b + 1"),
        ],
        None,
    );
    let out = crate::support::kale()
        .arg("run")
        .arg(&nb)
        .arg("--python")
        .arg(venv.join("bin/python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: {}: cell 2, line 2: step `magic` uses IPython syntax, but IPython is not installed", nb.display())),
        "{stderr}"
    );
}

/// A kale installed into a venv (as `pip install` of the wheel does) runs the steps with
/// that venv's Python when neither --python nor KALE_PYTHON says otherwise, and says so.
#[test]
fn kale_installed_in_a_venv_runs_the_steps_with_the_venv_python() {
    // Under the target dir, so the binary can be hard linked: /proc/self/exe resolves
    // symlinks, and a link would point back at target/debug.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let venv = dir.path().join("venv");
    let made = std::process::Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let kale = venv.join("bin").join("kale");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_kale"), &kale).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_kale"), &kale).unwrap();
    }
    let venv_python = venv.join("bin").join("python3");
    // The step itself reports whether it runs under the venv's interpreter.
    let step = format!(
        "import sys\nin_venv = float(sys.executable == {:?})",
        venv_python.display().to_string()
    );
    let nb = write_notebook(
        dir.path(),
        "where.ipynb",
        &[
            C::Code(&["step:where"], &step),
            C::Code(&["pipeline-metrics"], "print(in_venv)"),
        ],
        None,
    );
    let out = std::process::Command::new(&kale)
        .args(["run", "--json"])
        .arg(&nb)
        .env_remove("KALE_PYTHON")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["python"]["chosen_by"], json!("install-env"), "{doc:#}");
    assert_eq!(doc["python"]["executable"], json!(venv_python), "{doc:#}");
    assert_eq!(doc["metrics"]["in_venv"], json!(1.0), "{doc:#}");
    assert!(
        stderr.contains(&format!("python {} (3.", venv_python.display()))
            && stderr.contains("the environment kale is installed in"),
        "{stderr}"
    );
    // KALE_PYTHON still wins over the environment (--no-cache: the step's cached
    // output from the first run would otherwise answer for it).
    let out = std::process::Command::new(&kale)
        .args(["run", "--json", "--no-cache"])
        .arg(&nb)
        .env("KALE_PYTHON", python())
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["python"]["chosen_by"], json!("KALE_PYTHON"), "{doc:#}");
    assert_eq!(doc["metrics"]["in_venv"], json!(0.0), "{doc:#}");
}

#[test]
fn a_missing_module_names_the_interpreter_and_how_to_choose_another() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "missing.ipynb",
        &[
            C::Code(
                &["step:load"],
                "import kale_test_module_nobody_installs\nx = 1",
            ),
            C::Code(&["pipeline-metrics"], "print(x)"),
        ],
        None,
    );
    let (code, doc, stderr) = run_json(&nb, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        doc["error"]["type"],
        json!("ModuleNotFoundError"),
        "{doc:#}"
    );
    let exe = doc["python"]["executable"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "hint: the steps ran under {exe} (from KALE_PYTHON)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("--python PATH or KALE_PYTHON=PATH"),
        "{stderr}"
    );
}

#[test]
fn version_says_the_release_the_commit_and_the_runtime_version() {
    let out = crate::support::succeed(crate::support::kale().arg("--version"));
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text
        .trim_end()
        .strip_prefix(&format!("kale {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, runtime) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", runtime "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(runtime, kale::codegen::runtime_version(), "{text}");
    // A git checkout gives the abbreviated commit; a tarball without .git "unknown".
    let hex = commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit());
    assert!(hex || commit == "unknown", "{text}");
}

/// The manifest of a running run says what is running: writes are spaced out (a
/// trial's reused steps finish milliseconds apart), not left for the end.
#[test]
fn a_running_runs_manifest_shows_its_finished_and_running_steps() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "slow.ipynb",
        &[
            C::Code(&["step:quick"], "x = 1"),
            C::Code(
                &["step:slow", "prev:quick"],
                "import time\ntime.sleep(60)\ny = x",
            ),
        ],
        None,
    );
    let mut child = spawn_kale_run(&nb, std::process::Stdio::null());
    let runs = dir.path().join(".kale/runs");
    let seen = poll_first_run(
        &runs,
        &mut child,
        50,
        "the manifest never showed `slow` running",
        |run| {
            let text = std::fs::read_to_string(run.join("manifest.json")).ok()?;
            let m = serde_json::from_str::<Value>(&text).ok()?;
            let status = |name: &str| {
                m["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["name"] == name)
                    .map(|s| s["status"].clone())
                    .unwrap()
            };
            (status("slow") == json!("running")).then(|| (status("quick"), m["status"].clone()))
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, (json!("succeeded"), json!("running")));
}
