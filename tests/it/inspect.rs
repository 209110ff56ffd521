//! `kale inspect`: the JSON contract and the data flow it reports.

use serde_json::json;

use crate::support::{C, inspect_json, kale, step, strings, write_notebook};

#[test]
fn json_contract_on_the_example() {
    let doc = inspect_json(&crate::support::examples_dir().join("digits.ipynb"));
    assert_eq!(
        doc["pipeline"],
        json!({"name": "digits-svc", "experiment": "digits", "description": "Classify handwritten digits with an SVC"})
    );
    assert_eq!(
        doc["parameters"],
        json!([
            {"name": "C", "type": "float", "default": 1.0},
            {"name": "gamma", "type": "float", "default": 0.001},
            {"name": "kernel", "type": "str", "default": "rbf"}
        ])
    );
    assert_eq!(doc["metrics"], json!(["accuracy", "f1"]));
    let names: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load_data", "scale", "train", "evaluate"]);
    let load = step(&doc, "load_data");
    assert_eq!(strings(&load["inputs"]), Vec::<String>::new());
    assert_eq!(
        strings(&load["outputs"]),
        ["X_train", "X_test", "y_test", "y_train"]
            .map(String::from)
            .to_vec()
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(strings(&load["parameters"]), Vec::<String>::new());
    let train = step(&doc, "train");
    assert_eq!(strings(&train["inputs"]), ["X_train_scaled", "y_train"]);
    assert_eq!(strings(&train["outputs"]), ["model"]);
    assert_eq!(strings(&train["parameters"]), ["C", "gamma", "kernel"]);
    assert_eq!(strings(&train["depends_on"]), ["scale"]);
    let eval = step(&doc, "evaluate");
    assert_eq!(
        strings(&eval["inputs"]),
        ["X_test_scaled", "model", "y_test"]
    );
    assert_eq!(strings(&eval["outputs"]), ["accuracy", "f1"]);
    assert_eq!(doc["warnings"], json!([]));
}

#[test]
fn nearest_ancestor_that_touched_a_name_provides_it() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "flow.ipynb",
        &[
            C::Code(&["imports"], "import math"),
            C::Code(
                &["functions"],
                "def scaled(v):\n    return v * FACTOR + math.pi * 0",
            ),
            C::Code(&["pipeline-parameters"], "FACTOR = 2\nlr = 0.5"),
            C::Code(&["step:load"], "df = {'a': [1, 2]}\nmodel = []"),
            // Reads and mutates df and model: a later reader takes them from here.
            C::Code(
                &["step:prep", "prev:load"],
                "df['b'] = [3]\nmodel.append(lr)",
            ),
            C::Code(&["step:left", "prev:prep"], "l = scaled(len(df))"),
            C::Code(&["step:right", "prev:prep"], "r = [v for v in df['a']]"),
            C::Code(
                &["step:join", "prev:left", "prev:right"],
                "total = l + sum(r) + len(model)",
            ),
            C::Code(&["pipeline-metrics"], "print(total)"),
        ],
        None,
    );
    let doc = inspect_json(&nb);
    assert_eq!(strings(&step(&doc, "prep")["inputs"]), ["df", "model"]);
    assert_eq!(strings(&step(&doc, "prep")["parameters"]), ["lr"]);
    assert_eq!(step(&doc, "left")["input_sources"], json!({"df": "prep"}));
    // `scaled` reads the parameter FACTOR: the step calling it uses the parameter.
    assert_eq!(strings(&step(&doc, "left")["parameters"]), ["FACTOR"]);
    assert_eq!(
        strings(&step(&doc, "right")["parameters"]),
        Vec::<String>::new()
    );
    // `v` is a comprehension variable: it does not leak.
    assert_eq!(strings(&step(&doc, "right")["outputs"]), ["r"]);
    assert_eq!(
        step(&doc, "join")["input_sources"],
        json!({"l": "left", "model": "prep", "r": "right"})
    );
    assert_eq!(strings(&step(&doc, "join")["outputs"]), ["total"]);
    assert_eq!(strings(&step(&doc, "prep")["outputs"]), ["df", "model"]);
}

#[test]
fn parallel_branches_binding_the_same_name_warn() {
    let dir = tempfile::tempdir().unwrap();
    let nb = write_notebook(
        dir.path(),
        "amb.ipynb",
        &[
            C::Code(&["step:a"], "x = 1"),
            C::Code(&["step:b"], "x = 2"),
            C::Code(&["step:c", "prev:a", "prev:b"], "y = x"),
        ],
        None,
    );
    let doc = inspect_json(&nb);
    assert_eq!(step(&doc, "c")["input_sources"], json!({"x": "b"}));
    let warnings = strings(&doc["warnings"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("parallel steps `a` and `b`"),
        "{warnings:?}"
    );
}

#[test]
fn human_view_lists_steps_and_dag() {
    let out = kale()
        .arg("inspect")
        .arg(crate::support::examples_dir().join("digits.ipynb"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("pipeline   digits-svc"), "{text}");
    assert!(text.contains("model ← train"), "{text}");
    assert!(text.contains("scale → train"), "{text}");
    assert!(
        text.contains("accuracy             from step evaluate"),
        "{text}"
    );
}
