//! Bounded property tests over the notebook reader, the tag parser and the whole
//! notebook → pipeline path: no input makes kale panic.

use std::path::Path;

use proptest::prelude::*;

use kale::diagnostics::Diagnostics;

fn tag_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("imports".to_string()),
        Just("functions".to_string()),
        Just("pipeline-parameters".to_string()),
        Just("pipeline-metrics".to_string()),
        Just("skip".to_string()),
        Just("parameters".to_string()),
        "(step|block|prev):[a-c_]{0,2}".prop_map(|s| s),
        "(limit|label|annotation|secret|image|cache|report|notebook):[a-zA-Z0-9./:_-]{0,12}",
        "[ -~]{0,16}",
    ]
}

fn source_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x = 1".to_string()),
        Just("y = x + 1".to_string()),
        Just("print(x)".to_string()),
        Just("def f(a):\n    return a + x".to_string()),
        Just("%time z = f(y)".to_string()),
        Just("!echo {x}".to_string()),
        Just("lr = 0.1\nn = -3\nname = 'a'".to_string()),
        Just("del x".to_string()),
        Just("for i in range(3):\n    x += i".to_string()),
        "[ -~\n]{0,40}",
    ]
}

fn notebook_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::bool::weighted(0.85), prop::collection::vec(tag_strategy(), 0..3), source_strategy()),
        0..10,
    )
    .prop_map(|cells| {
        let cells: Vec<serde_json::Value> = cells
            .into_iter()
            .map(|(code, tags, src)| {
                if code {
                    serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src})
                } else {
                    serde_json::json!({"cell_type": "markdown", "metadata": {}, "source": src})
                }
            })
            .collect();
        serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4}).to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn tag_parser_never_panics(tag in "[ -~]{0,40}") {
        let _ = kale::notebook::parse_tag(&tag);
    }

    #[test]
    fn notebook_reader_never_panics_on_arbitrary_text(text in "[ -~\n]{0,200}") {
        let mut d = Diagnostics::default();
        let _ = kale::notebook::parse(Path::new("fuzz.ipynb"), &text, &mut d);
    }

    #[test]
    fn notebook_to_pipeline_never_panics_and_errors_are_located(text in notebook_strategy()) {
        let mut d = Diagnostics::default();
        let nb = kale::notebook::parse(Path::new("fuzz.ipynb"), &text, &mut d).unwrap();
        let (pipeline, diags) = kale::pipeline::build(&nb);
        if pipeline.is_none() {
            prop_assert!(diags.has_errors());
        }
        for e in diags.errors() {
            // Errors about a cell name it; the rest concern the notebook as a whole.
            if e.cell.is_none() {
                prop_assert!(e.message.contains("no pipeline steps") || e.message.contains("cycle") || e.message.contains("kubeflow_notebook"), "{}", e.message);
            }
        }
        if let Some(p) = pipeline {
            let json = kale::inspect::to_json(&p, &diags);
            prop_assert!(json["steps"].as_array().is_some());
        }
    }
}
