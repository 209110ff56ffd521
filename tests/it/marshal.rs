//! What travels between steps: classes from `functions` cells without dill, classes
//! defined in a step (dill), large arrays mapped copy-on-write.

use serde_json::json;

use crate::support::{C, bare_venv, run_json, run_json_with, write_notebook};

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
fn a_class_defined_in_a_step_needs_dill_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_venv(dir.path(), "bare");
    let nb = write_notebook(
        dir.path(),
        "inline.ipynb",
        &[
            C::Code(&["step:start"], &format!("{ACC}\nacc = Acc().add(3)")),
            C::Code(&["step:more", "prev:start"], "total = acc.add(4).n"),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    );
    let (code, _, stderr) = run_json_with(&nb, &bare);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("defined in the step itself") && stderr.contains("install dill"),
        "{stderr}"
    );
    assert!(stderr.contains("`functions` cell"), "{stderr}");
    // With dill (the test Python has it) the object travels by value.
    let (code, doc, stderr) = run_json(&nb, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["metrics"]["total"], json!(7));
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
