//! The compare page: the histories and the empirical distributions of the picked
//! experiments overlaid, and a table side by side (with several objectives, each
//! objective's best and the front's size).

use std::fmt::Write as _;

use super::plots::{self, Section};
use super::{badge, duration, exp_link, layout};
use crate::dashboard::view::View;
use crate::format::num;
use crate::render::svg::{self, EdfSeries, Kind, Series, Target, xml};
use crate::store::{Experiment, TrialRow};

/// The overlaid plot of `kind` (history or EDF) of the picked experiments, each
/// showing the objective the view names (its first when it has none by that name).
pub fn compare_plot(picked: &[(Experiment, Vec<TrialRow>)], kind: Kind, view: &View) -> String {
    let opts = view.options(kind);
    let targets: Vec<Target> = picked
        .iter()
        .map(|(e, _)| Target::of(e, view.objective.as_deref()))
        .collect();
    let objective = targets
        .first()
        .map_or("objective".to_string(), |t| t.name.clone());
    if kind == Kind::Edf {
        let series: Vec<EdfSeries> = picked
            .iter()
            .zip(&targets)
            .map(|((e, t), target)| EdfSeries::of(e, t, target))
            .collect();
        return svg::edf("compare", &objective, &series, &opts);
    }
    let series: Vec<Series> = picked
        .iter()
        .zip(&targets)
        .map(|((e, t), target)| Series::of(e, t, target))
        .collect();
    svg::history("compare", &objective, &series, &opts)
}

pub fn compare(
    everything: &[(Experiment, Vec<TrialRow>)],
    picked: &[(Experiment, Vec<TrialRow>)],
    view: &View,
) -> String {
    let mut m = String::from("<h1>Compare experiments</h1>");
    m.push_str(&pick_form(everything, picked, view));
    if picked.is_empty() {
        m.push_str(r#"<p class="empty">Pick the experiments to overlay.</p>"#);
        return layout("compare", " / compare", &m);
    }
    let targets: Vec<Target> = picked
        .iter()
        .map(|(e, _)| Target::of(e, view.objective.as_deref()))
        .collect();
    let shown: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    if shown.iter().any(|o| *o != shown[0]) {
        let _ = writeln!(
            m,
            r#"<p class="error">These experiments optimise different metrics ({}); their values share one axis.</p>"#,
            xml(&shown.join(", "))
        );
    }
    for (id, kind, heading) in [
        ("history", Kind::History, "Optimisation histories"),
        ("edf", Kind::Edf, "Empirical distribution of the objective"),
    ] {
        m.push_str(&plots::section(Section {
            id,
            heading: heading.into(),
            exp: "",
            kind,
            controls: String::new(),
            svg: compare_plot(picked, kind, view),
            zoomed: view.zoomed(kind),
        }));
    }
    m.push_str(&table(picked, &targets));
    layout("compare", " / compare", &m)
}

fn pick_form(
    everything: &[(Experiment, Vec<TrialRow>)],
    picked: &[(Experiment, Vec<TrialRow>)],
    view: &View,
) -> String {
    let mut m = String::from(r#"<form id="view" action="/compare" method="get" class="pick">"#);
    for (e, _) in everything {
        let on = picked.iter().any(|(p, _)| p.spec.name == e.spec.name);
        let _ = write!(
            m,
            r#"<label><input type="checkbox" name="e" value="{}"{}> {}</label> "#,
            xml(&e.spec.name),
            if on { " checked" } else { "" },
            xml(&e.spec.name)
        );
    }
    let mut names: Vec<String> = Vec::new();
    for (e, _) in picked {
        for o in &e.spec.objectives {
            if !names.contains(&o.name) {
                names.push(o.name.clone());
            }
        }
    }
    if names.len() > 1 {
        let current = view.objective.clone().unwrap_or_else(|| names[0].clone());
        m.push_str(
            &plots::select("objective", "objective", &names, Some(&current))
                .replace(r#" form="view""#, ""),
        );
    }
    let _ = write!(
        m,
        r#"<label><input type="checkbox" name="log" value="1"{}> log scale</label> <button type="submit">Compare</button></form>"#,
        if view.log { " checked" } else { "" }
    );
    m
}

fn table(picked: &[(Experiment, Vec<TrialRow>)], targets: &[Target]) -> String {
    let mut m = String::from(
        r#"<table class="list" id="compare-table"><thead><tr><th>experiment</th><th>status</th><th>algorithm</th><th>trials</th><th>objective shown</th><th>best</th><th>best params</th><th>front</th><th>wall time</th></tr></thead><tbody>"#,
    );
    for ((e, t), target) in picked.iter().zip(targets) {
        let c = crate::dashboard::counts(t);
        let best = target.best(t);
        let front = if e.spec.objectives.len() > 1 {
            crate::query::pareto_front(t, &e.spec.objectives)
                .len()
                .to_string()
        } else {
            "-".into()
        };
        let _ = writeln!(
            m,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{} ({} ok, {} failed)</td><td>{} ({})</td><td class=num>{}</td><td>{}</td><td class=num>{front}</td><td class=num>{}</td></tr>"#,
            exp_link(&e.spec.name),
            badge(e.status.as_str()),
            xml(&e.spec.algorithm),
            c["total"],
            c["succeeded"],
            c["failed"],
            xml(&target.name),
            target.direction.as_str(),
            best.map(|(_, v)| num(v)).unwrap_or_else(|| "-".into()),
            best.map(|(b, _)| xml(&crate::tune::params_text(&b.params)))
                .unwrap_or_default(),
            duration(e.wall_seconds_now())
        );
    }
    m.push_str("</tbody></table>");
    m
}
