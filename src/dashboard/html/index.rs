//! The list of experiments.

use std::fmt::Write as _;

use super::{badge, counts_text, exp_link, layout, objective_text};
use crate::format::num;
use crate::query;
use crate::render::svg::xml;
use crate::store::{Experiment, TrialRow};

pub fn index(db: &str, experiments: &[(Experiment, Vec<TrialRow>)]) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        r#"<h1>Experiments</h1><p class="muted">store {}</p>"#,
        xml(db)
    );
    if experiments.is_empty() {
        m.push_str(r#"<p class="empty">No experiments yet: run <code>kale tune NOTEBOOK --objective METRIC</code>.</p>"#);
        return layout("experiments", "", &m);
    }
    m.push_str(r#"<form action="/compare" method="get"><table class="list" id="experiments"><thead><tr><th></th><th>experiment</th><th>status</th><th>objective</th><th>trials</th><th>best</th><th>algorithm</th><th>notebook</th><th>updated</th></tr></thead><tbody>"#);
    for (e, trials) in experiments.iter().rev() {
        let _ = writeln!(
            m,
            r#"<tr><td><input type="checkbox" name="e" value="{}" aria-label="compare {}"></td><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td><td class="path">{}</td><td class="time" data-t="{}"></td></tr>"#,
            xml(&e.spec.name),
            xml(&e.spec.name),
            exp_link(&e.spec.name),
            badge(e.status.as_str()),
            xml(&objective_text(e)),
            counts_text(e, trials),
            best_cell(e, trials),
            xml(&e.spec.algorithm),
            xml(&e.spec.notebook),
            e.updated_at
        );
    }
    m.push_str(r#"</tbody></table><p><button type="submit">Compare selected</button></p></form>"#);
    layout("experiments", "", &m)
}

fn best_cell(e: &Experiment, trials: &[TrialRow]) -> String {
    if e.spec.objectives.len() > 1 {
        return format!(
            "front {}",
            crate::query::pareto_front(trials, &e.spec.objectives).len()
        );
    }
    match crate::query::best_trial(trials, query::direction(e)) {
        Some(b) => format!(
            "{} <span class=muted>(#{})</span>",
            num(b.value.unwrap_or(f64::NAN)),
            b.number
        ),
        None => "-".into(),
    }
}
