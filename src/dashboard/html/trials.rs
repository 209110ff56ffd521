//! The trial table and its filter.

use std::fmt::Write as _;

use super::experiment::Page;
use super::{duration, enc, trial_badges};
use crate::dashboard::filter::STATES;
use crate::format::{num, value_text};
use crate::render::svg::xml;
use crate::store::{TrialRow, TrialStatus};

/// Rows a page shows at most; the JSON has them all.
const TABLE_ROWS: usize = 500;

pub fn section(p: &Page) -> String {
    let params = names(p);
    let metrics = metric_names(p);
    let matching = p.filter.matching(p.trials, p.notes);
    let mut m = String::from(r#"<section id="trials"><h2>Trials</h2>"#);
    m.push_str(&filter_form(p, &params, &metrics));
    let _ = write!(
        m,
        r#"<p class="muted" id="match-count" data-matching="{}" data-active="{}">{}</p>"#,
        matching
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        u8::from(p.filter.is_active()),
        if p.filter.is_active() {
            format!(
                "{} of {} trials match; the plots dim the others",
                matching.len(),
                p.trials.len()
            )
        } else {
            format!("{} trials", p.trials.len())
        }
    );
    m.push_str(
        r#"<table class="list sortable" id="trial-table"><thead><tr><th>#</th><th>status</th>"#,
    );
    let _ = write!(m, "<th>{}</th>", xml(&p.e.spec.objective));
    for n in params.iter().chain(&metrics) {
        let _ = write!(m, "<th>{}</th>", xml(n));
    }
    m.push_str(
        "<th>duration</th><th>cache hits</th><th>note</th><th>error</th></tr></thead><tbody>",
    );
    let best = crate::query::best_trial(p.trials, p.e.spec.direction)
        .filter(|_| p.e.spec.objectives.len() == 1)
        .map(|b| b.number);
    // A page with every row of a 10 000-trial experiment is megabytes of HTML; the
    // newest rows and the best one are what a person reads, the JSON has them all.
    let shown: Vec<&TrialRow> = p
        .trials
        .iter()
        .rev()
        .filter(|t| matching.contains(&t.number))
        .enumerate()
        .filter(|(i, t)| *i < TABLE_ROWS || Some(t.number) == best)
        .map(|(_, t)| t)
        .collect();
    for t in &shown {
        m.push_str(&row(p, t, &params, &metrics, Some(t.number) == best));
    }
    m.push_str("</tbody></table>");
    if matching.len() > shown.len() {
        let _ = writeln!(
            m,
            r#"<p class="muted">The newest {TABLE_ROWS} of {} trials (and the best); all of them: <a href="/api/experiments/{}">/api/experiments/{}</a>.</p>"#,
            matching.len(),
            enc(&p.e.spec.name),
            xml(&p.e.spec.name)
        );
    }
    m.push_str("</section>");
    m
}

fn names(p: &Page) -> Vec<String> {
    crate::query::space(p.e)
        .map(|s| s.parameters().iter().map(|x| x.name.clone()).collect())
        .unwrap_or_default()
}

fn metric_names(p: &Page) -> Vec<String> {
    let mut out: Vec<String> = p
        .trials
        .iter()
        .filter_map(|t| t.metrics.as_object())
        .flat_map(|m| m.keys().cloned())
        .filter(|k| *k != p.e.spec.objective)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// State boxes, the conditions and the text search: inputs of the view form.
fn filter_form(p: &Page, params: &[String], metrics: &[String]) -> String {
    let f = p.filter;
    let mut m = String::from(r#"<div class="filter" id="filter"><span class="picker">state "#);
    for s in STATES {
        let _ = write!(
            m,
            r#"<label><input type="checkbox" form="view" name="state" value="{s}"{}> {}</label> "#,
            if f.states.iter().any(|x| x == s) {
                " checked"
            } else {
                ""
            },
            s.replace('_', " ")
        );
    }
    let mut example: Vec<String> = params.iter().take(2).map(|n| format!("{n}>=…")).collect();
    example.extend(metrics.iter().take(1).map(|n| format!("{n}<…")));
    let _ = write!(
        m,
        r#"</span> <label class="picker">where <input type="text" form="view" name="where" size="30" value="{}" placeholder="{}" title="conditions on parameters and metrics (and value, trial, seconds): NAME<VALUE NAME>=VALUE NAME=VALUE NAME!=VALUE, separated by spaces"></label> <label class="picker">search <input type="search" form="view" name="q" value="{}" placeholder="parameters, errors, notes"></label></div>"#,
        xml(&f.text_where),
        xml(&example.join(" ")),
        xml(&f.q)
    );
    for err in &f.errors {
        let _ = write!(m, r#"<p class="error filter-error">{}</p>"#, xml(err));
    }
    m
}

fn row(p: &Page, t: &TrialRow, params: &[String], metrics: &[String], is_best: bool) -> String {
    let name = &p.e.spec.name;
    let mut m = format!(
        r#"<tr class="{}" data-trial="{}"><td class=num><a href="/e/{}/t/{}">{}</a></td><td>{}</td><td class=num>{}</td>"#,
        if is_best { "best" } else { "" },
        t.number,
        enc(name),
        t.number,
        t.number,
        trial_badges(t),
        t.value.map(num).unwrap_or_default()
    );
    let cell = |v: Option<&serde_json::Value>| {
        format!(
            "<td class=num>{}</td>",
            v.map(|v| xml(&value_text(v))).unwrap_or_default()
        )
    };
    for n in params {
        m.push_str(&cell(t.params.get(n)));
    }
    for k in metrics {
        m.push_str(&cell(t.metrics.get(k)));
    }
    let note = p
        .notes
        .get(&Some(t.number))
        .map(String::as_str)
        .unwrap_or_default();
    let _ = writeln!(
        m,
        r#"<td class=num>{}</td><td class=num>{}</td><td class="note" title="{}">{}</td><td class="err">{}</td></tr>"#,
        t.seconds.map(duration).unwrap_or_default(),
        if t.cache_hits + t.cache_misses > 0 {
            format!("{}/{}", t.cache_hits, t.cache_hits + t.cache_misses)
        } else {
            String::new()
        },
        xml(note),
        xml(&crate::render::svg::draw::fit(note, 240.0, 12.0)),
        t.error
            .as_deref()
            .filter(|_| t.status != TrialStatus::Succeeded)
            .map(xml)
            .unwrap_or_default()
    );
    m
}
