//! A trial's page: its outcome, note, parameters and metrics, intermediate values,
//! and each step's status, error and logs.

use std::fmt::Write as _;

use serde_json::Value;

use super::{duration, enc, exp_link, layout, notes, trial_badges};
use crate::format::{num, value_text};
use crate::render::svg::{self, Kind, xml};
use crate::store::{Experiment, TrialRow, TrialStatus};

pub fn trial(e: &Experiment, t: &TrialRow, doc: &Value, note: Option<&str>) -> String {
    let name = &e.spec.name;
    let mut m = facts(e, t);
    m.push_str(&notes::editor(
        &format!("/api/experiments/{}/trials/{}/note", enc(name), t.number),
        note,
        "Note on this trial",
    ));
    m.push_str(r#"<section class="card"><h2>Parameters</h2>"#);
    m.push_str(&kv(&t.params, "none"));
    m.push_str("<h2>Metrics</h2>");
    m.push_str(&kv(&t.metrics, "none reported"));
    m.push_str("</section>");
    m.push_str(&intermediate(e, t));
    m.push_str(&steps(doc));
    let crumbs = format!(
        r#" / {} / <a href="/e/{}/t/{}">trial {}</a>"#,
        exp_link(name),
        enc(name),
        t.number,
        t.number
    );
    layout(&format!("{name} trial {}", t.number), &crumbs, &m)
}

fn facts(e: &Experiment, t: &TrialRow) -> String {
    let values = if e.spec.objectives.len() > 1 && t.values.len() == e.spec.objectives.len() {
        e.spec
            .objectives
            .iter()
            .zip(&t.values)
            .map(|(o, v)| format!("<div><b>{}</b> {}</div>", xml(&o.name), num(*v)))
            .collect::<String>()
    } else {
        format!(
            "<div><b>{}</b> {}</div>",
            xml(&e.spec.objective),
            t.value.map(num).unwrap_or_else(|| "-".into())
        )
    };
    let mut m = format!(
        r#"<h1 data-trial="{}">trial {} {}</h1><section class="facts">{values}<div><b>duration</b> {}</div><div><b>cache</b> {} hits, {} misses</div><div><b>run</b> <code>{}</code></div></section>"#,
        t.number,
        t.number,
        trial_badges(t),
        t.seconds.map(duration).unwrap_or_else(|| "-".into()),
        t.cache_hits,
        t.cache_misses,
        xml(t.run_dir.as_deref().unwrap_or("-"))
    );
    if let Some(err) = t
        .error
        .as_deref()
        .filter(|_| t.status != TrialStatus::Succeeded)
    {
        let _ = writeln!(m, r#"<p class="error">{}</p>"#, xml(err));
    }
    m
}

fn kv(map: &Value, none: &str) -> String {
    let mut m = String::from(r#"<table class="kv">"#);
    match map.as_object().filter(|p| !p.is_empty()) {
        None => {
            let _ = write!(m, r#"<tr><td class="empty">{none}</td></tr>"#);
        }
        Some(p) => {
            for (k, v) in p {
                let _ = writeln!(
                    m,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    xml(k),
                    xml(&value_text(v))
                );
            }
        }
    }
    m.push_str("</table>");
    m
}

fn intermediate(e: &Experiment, t: &TrialRow) -> String {
    let mut m = String::from(r#"<section id="intermediate"><h2>Intermediate values</h2>"#);
    if t.intermediate.is_empty() {
        let _ = writeln!(
            m,
            r#"<p class="empty">None reported. Early stopping reads lines <code>{}=VALUE</code> that a step prints while it runs.</p>"#,
            xml(&e.spec.objective)
        );
    } else {
        let one = std::slice::from_ref(t);
        let svg = svg::render(Kind::Intermediate, e, one, &svg::Options::default());
        let _ = writeln!(
            m,
            r#"<div class="plot" data-kind="intermediate">{svg}</div>"#
        );
    }
    m.push_str("</section>");
    m
}

fn steps(doc: &Value) -> String {
    let mut m = String::from(r#"<section id="steps"><h2>Steps</h2>"#);
    let steps = doc["steps"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        m.push_str(r#"<p class="empty">The run directory has no manifest (pruned, or the trial never started).</p>"#);
    }
    for s in steps {
        m.push_str(&step(&s));
    }
    m.push_str("</section>");
    m
}

fn step(s: &Value) -> String {
    let status = s["status"].as_str().unwrap_or("");
    let mut m = format!(
        r#"<details class="step" {}><summary><b>{}</b> {} {}</summary>"#,
        if status == "failed" { "open" } else { "" },
        xml(s["name"].as_str().unwrap_or("")),
        super::badge(status),
        s["seconds"].as_f64().map(duration).unwrap_or_default()
    );
    if let Some(err) = s.get("error").filter(|e| !e.is_null()) {
        let at = match (err["cell"].as_u64(), err["line"].as_u64()) {
            (Some(c), Some(l)) => format!(" at cell {c}, line {l}"),
            _ => String::new(),
        };
        let _ = writeln!(
            m,
            r#"<p class="error">{}{}: {}</p>"#,
            xml(err["type"].as_str().unwrap_or("error")),
            at,
            xml(err["message"].as_str().unwrap_or(""))
        );
    }
    for stream in ["stdout", "stderr"] {
        if let Some(text) = s[stream].as_str().filter(|t| !t.is_empty()) {
            let _ = writeln!(
                m,
                r#"<h3>{stream}</h3><pre class="log">{}</pre>"#,
                xml(text)
            );
        }
    }
    m.push_str("</details>");
    m
}
