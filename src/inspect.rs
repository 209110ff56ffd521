//! The `kale inspect` views of a pipeline: the JSON contract and the human-readable text.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::diagnostics::Diagnostics;
use crate::pipeline::Pipeline;

/// The `kale inspect --json` document. Lists are sorted; steps are in topological order.
pub fn to_json(p: &Pipeline, diags: &Diagnostics) -> Value {
    let parameters: Vec<Value> = p
        .parameters
        .iter()
        .map(|param| {
            json!({"name": param.name, "type": param.type_name(), "default": param.value.to_json()})
        })
        .collect();
    let mut metrics: Vec<&str> = p.metrics.iter().map(|m| m.name.as_str()).collect();
    metrics.sort();
    let steps: Vec<Value> = p
        .steps
        .iter()
        .map(|s| {
            let mut depends_on = s.depends_on.clone();
            depends_on.sort();
            json!({
                "name": s.name,
                "depends_on": depends_on,
                "ordered_after": s.ordered_after,
                "cells": s.cells,
                "inputs": s.inputs.keys().collect::<Vec<_>>(),
                "outputs": s.outputs.iter().collect::<Vec<_>>(),
                "parameters": s.parameters.iter().collect::<Vec<_>>(),
                "limits": s.config.limits,
                "resources": crate::exec::resources::StepResources::of(&s.config).ok(),
                "image": s.config.image,
                "input_sources": s.inputs,
                "metrics": s.metrics,
                "labels": s.config.labels,
                "annotations": s.config.annotations,
                "cache": s.config.cache,
                "ipython": s.ipython_at.is_some(),
            })
        })
        .collect();
    let warnings: Vec<String> = diags.warnings().map(|d| d.short()).collect();
    json!({
        "pipeline": {"name": p.name, "experiment": p.experiment, "description": p.description},
        "parameters": parameters,
        "metrics": metrics,
        "steps": steps,
        "warnings": warnings,
    })
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// A compact text view: header, parameters, metrics, then one block per step.
pub fn to_text(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pipeline   {}", p.name);
    if p.experiment != p.name {
        let _ = writeln!(out, "experiment {}", p.experiment);
    }
    if !p.description.is_empty() {
        let _ = writeln!(out, "           {}", p.description);
    }
    let _ = writeln!(out);
    if p.parameters.is_empty() {
        let _ = writeln!(out, "parameters -");
    } else {
        let _ = writeln!(out, "parameters");
        for param in &p.parameters {
            let _ = writeln!(
                out,
                "  {:<20} {:<5} = {}",
                param.name,
                param.type_name(),
                param.value.to_python()
            );
        }
    }
    if p.metrics.is_empty() {
        let _ = writeln!(out, "metrics    -");
    } else {
        let _ = writeln!(out, "metrics");
        for m in &p.metrics {
            let _ = writeln!(out, "  {:<20} from step {}", m.name, m.step);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "steps ({})", p.steps.len());
    for s in &p.steps {
        let cells = s
            .cells
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let after = if s.depends_on.is_empty() {
            String::new()
        } else {
            format!("  after {}", s.depends_on.join(", "))
        };
        let _ = writeln!(out, "  {}  (cells {cells}){after}", s.name);
        for o in &s.ordered_after {
            let _ = writeln!(out, "    after {} (kale: it {})", o.after, o.reason);
        }
        let shown = |v: &str| {
            if v == crate::pipeline::STATE_VARIABLE {
                "(process state)".to_string()
            } else {
                v.to_string()
            }
        };
        let inputs: Vec<String> = s
            .inputs
            .iter()
            .map(|(v, from)| format!("{} ← {from}", shown(v)))
            .collect();
        let _ = writeln!(out, "    inputs     {}", list(&inputs));
        let outputs: Vec<String> = s.outputs.iter().map(|v| shown(v)).collect();
        let _ = writeln!(out, "    outputs    {}", list(&outputs));
        let _ = writeln!(out, "    parameters {}", list(&s.parameters));
        if !s.metrics.is_empty() {
            let _ = writeln!(out, "    metrics    {}", list(&s.metrics));
        }
        let mut extras = Vec::new();
        for (k, v) in &s.config.limits {
            extras.push(format!("limit {k}={v}"));
        }
        if let Some(img) = &s.config.image {
            extras.push(format!("image {img}"));
        }
        if let Some(c) = s.config.cache {
            extras.push(format!("cache {}", if c { "enabled" } else { "disabled" }));
        }
        if s.ipython_at.is_some() {
            extras.push("runs under IPython".into());
        }
        if !extras.is_empty() {
            let _ = writeln!(out, "    config     {}", extras.join("; "));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "dag");
    let mut any_edge = false;
    for s in &p.steps {
        for parent in &s.depends_on {
            let _ = writeln!(out, "  {parent} → {}", s.name);
            any_edge = true;
        }
    }
    if !any_edge {
        let _ = writeln!(out, "  (no edges: every step is independent)");
    }
    out
}
