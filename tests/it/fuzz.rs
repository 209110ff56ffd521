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

/// Names as a hostile notebook or user would give them: path pieces, separators,
/// control characters, case, unicode, lengths around the limits.
fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,70}",
        prop::collection::vec(
            prop_oneof![
                Just("..".to_string()),
                Just("/".to_string()),
                Just("\\".to_string()),
                Just("\n".to_string()),
                Just("\0".to_string()),
                Just(".".to_string()),
                Just("-".to_string()),
                Just("_".to_string()),
                Just(" ".to_string()),
                "[A-Za-z0-9]{1,8}",
                "\\PC{1,3}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat()),
        "\\PC{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn a_name_the_rule_accepts_stays_inside_the_folder_it_is_joined_to(name in name_strategy()) {
        let layout = kale::layout::Layout::for_notebook(Path::new("work/nb.ipynb"));
        if kale::names::problem(&name).is_none() {
            let dir = layout.run(&name).unwrap();
            let runs = layout.runs();
            prop_assert_eq!(dir.parent(), Some(runs.as_path()));
            prop_assert!(kale::names::check("an experiment", &name).is_ok());
        } else {
            let e = kale::names::check("an experiment", &name).unwrap_err();
            prop_assert_eq!(e.kind().exit_status(), 2);
            prop_assert!(!e.hints().is_empty());
        }
        if let Ok(dir) = layout.run(&name) {
            // Whatever the layout accepts is one plain component under runs/.
            let runs = layout.runs();
            prop_assert_eq!(dir.parent(), Some(runs.as_path()));
            prop_assert!(dir.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
        }
        if let Some(s) = kale::names::suggestion(&name) {
            prop_assert_eq!(kale::names::problem(&s), None);
        }
    }

    #[test]
    fn any_pipeline_name_in_the_metadata_becomes_a_name_the_rule_accepts(name in name_strategy()) {
        let text = serde_json::json!({
            "cells": [
                {"cell_type": "code", "metadata": {"tags": ["step:a"]}, "source": "x = 1"},
            ],
            "metadata": {"kubeflow_notebook": {"pipeline_name": name}},
            "nbformat": 4,
        })
        .to_string();
        let mut d = Diagnostics::default();
        let nb = kale::notebook::parse(Path::new("fuzz.ipynb"), &text, &mut d).unwrap();
        let (pipeline, diags) = kale::pipeline::build(&nb);
        let p = pipeline.expect("a name alone never stops the pipeline");
        prop_assert_eq!(kale::names::problem(&p.name), None, "{:?} became {:?}", name, p.name);
        if p.name != name && !name.is_empty() {
            prop_assert!(diags.warnings().any(|w| w.message.contains("pipeline_name")));
        }
    }

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
