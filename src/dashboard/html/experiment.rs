//! An experiment's page: what it is and how far it got, its note, the best trial or
//! the Pareto front, the plots with their pickers, the search space and the trials.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kale_search::importance::ParamImportance;

use super::plots::{self, Section};
use super::{
    badge, counts_text, enc, exp_link, layout, notes, objective_text, trial_link, trials, wall_text,
};
use crate::dashboard::filter::Filter;
use crate::dashboard::view::View;
use crate::format::{num, value_text};
use crate::query;
use crate::render::svg::{self, Kind, Target, xml};
use crate::store::{Experiment, TrialRow};

/// What the page is drawn from.
pub struct Page<'a> {
    pub e: &'a Experiment,
    pub trials: &'a [TrialRow],
    pub notes: &'a BTreeMap<Option<i64>, String>,
    pub view: &'a View,
    pub filter: &'a Filter,
}

impl Page<'_> {
    fn multi(&self) -> bool {
        self.e.spec.objectives.len() > 1
    }

    fn target(&self) -> Target {
        Target::of(self.e, self.view.objective.as_deref())
    }

    fn params(&self) -> Vec<String> {
        query::space(self.e)
            .map(|s| s.parameters().iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    }
}

pub fn experiment(p: &Page) -> String {
    let name = &p.e.spec.name;
    let mut m = header(p);
    m.push_str(&notes::editor(
        &format!("/api/experiments/{}/note", enc(name)),
        p.notes.get(&None).map(String::as_str),
        "Note on this experiment",
    ));
    if p.multi() {
        m.push_str(&front(p));
    } else {
        m.push_str(&best(p));
    }
    m.push_str(plots::view_form());
    m.push_str(&plot_sections(p));
    m.push_str(&space(p.e));
    m.push_str(&trials::section(p));
    layout(name, &format!(" / {}", exp_link(name)), &m)
}

fn header(p: &Page) -> String {
    let e = p.e;
    let eta = crate::query::eta_seconds(e, p.trials)
        .map(|s| format!("<div><b>ETA</b> {}</div>", super::duration(s)))
        .unwrap_or_default();
    let goal = e
        .spec
        .goal
        .map(|g| format!(" (goal {})", num(g)))
        .unwrap_or_default();
    let constraints = if e.spec.constraints.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = e.spec.constraints.iter().map(|c| c.to_string()).collect();
        format!(" · subject to {}", xml(&list.join(", ")))
    };
    format!(
        r#"<h1>{} {}</h1><p class="muted">{}{}</p>
<section class="facts" id="facts"><div><b>{}</b> {}{goal}{constraints}</div><div><b>algorithm</b> {}</div><div><b>trials</b> {}</div><div><b>at once</b> {}</div><div><b>wall time</b> {}</div>{eta}</section>
"#,
        xml(&e.spec.name),
        badge(e.status.as_str()),
        e.reason
            .as_deref()
            .map(|r| format!("{} · ", xml(r)))
            .unwrap_or_default(),
        xml(&e.spec.notebook),
        if p.multi() { "objectives" } else { "objective" },
        xml(&objective_text(e)),
        xml(&e.spec.algorithm),
        counts_text(e, p.trials),
        e.spec.parallel,
        wall_text(e)
    )
}

/// Several objectives: the front as a table and the Pareto plot.
fn front(p: &Page) -> String {
    let (e, name) = (p.e, &p.e.spec.name);
    let front = crate::query::pareto_front(p.trials, &e.spec.objectives);
    let mut m = format!(
        r#"<section class="card" id="front"><h2>Pareto front</h2><p class="muted">{} feasible trial{} that no other feasible trial dominates (as good on every objective, better on one); run one again with <code>kale run {} --params-from {}/TRIAL</code></p>"#,
        front.len(),
        if front.len() == 1 { "" } else { "s" },
        xml(&e.spec.notebook),
        xml(name)
    );
    if front.is_empty() {
        m.push_str(r#"<p class="empty">No feasible trial has succeeded yet.</p>"#);
    } else {
        m.push_str(r#"<table class="list" id="front-table"><thead><tr><th>#</th>"#);
        for o in &e.spec.objectives {
            let _ = write!(m, "<th>{}</th>", xml(&o.name));
        }
        m.push_str("<th>parameters</th></tr></thead><tbody>");
        for t in &front {
            let _ = write!(
                m,
                r#"<tr data-trial="{}"><td class=num>{}</td>"#,
                t.number,
                trial_link(name, t.number, &t.number.to_string())
            );
            for v in &t.values {
                let _ = write!(m, "<td class=num>{}</td>", num(*v));
            }
            let _ = writeln!(
                m,
                "<td>{}</td></tr>",
                xml(&crate::tune::params_text(&t.params))
            );
        }
        m.push_str("</tbody></table>");
    }
    m.push_str("</section>");
    let names: Vec<String> = e.spec.objectives.iter().map(|o| o.name.clone()).collect();
    let opts = p.view.options(Kind::Pareto);
    let x = Target::of(e, opts.objective.as_deref()).name;
    let y = p
        .view
        .py
        .as_deref()
        .filter(|y| *y != x)
        .or(names.iter().find(|n| **n != x).map(String::as_str));
    let controls =
        plots::select("px", "x", &names, Some(&x)) + &plots::select("py", "y", &names, y);
    m + &plots::section(Section {
        id: "pareto",
        heading: "Pareto plot".into(),
        exp: name,
        kind: Kind::Pareto,
        controls,
        svg: svg::render(Kind::Pareto, e, p.trials, &opts),
        zoomed: p.view.zoomed(Kind::Pareto),
    })
}

fn best(p: &Page) -> String {
    let (e, name) = (p.e, &p.e.spec.name);
    let mut m = String::from(r#"<section class="card" id="best"><h2>Best trial</h2>"#);
    let Some(b) = crate::query::best_trial(p.trials, query::direction(e)) else {
        m.push_str(r#"<p class="empty">No trial has succeeded yet.</p></section>"#);
        return m;
    };
    let value = b.value.unwrap_or(f64::NAN);
    let _ = writeln!(
        m,
        r#"<p class="best-value">{}: {} = <b data-best="{value}">{}</b></p><table class="kv">"#,
        trial_link(name, b.number, &format!("trial {}", b.number)),
        xml(&e.spec.objective),
        num(value)
    );
    let params = b.params.as_object().cloned().unwrap_or_default();
    for (k, v) in &params {
        let _ = writeln!(
            m,
            "<tr><th>{}</th><td>{}</td></tr>",
            xml(k),
            xml(&value_text(v))
        );
    }
    let line: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect();
    let _ = writeln!(
        m,
        r#"</table><p class="muted">run it again: <code>kale run {} --params-from {}</code> ({})</p></section>"#,
        xml(&e.spec.notebook),
        xml(name),
        xml(&line.join(" "))
    );
    m
}

/// The plots, with the objective picker above them when there are several objectives.
fn plot_sections(p: &Page) -> String {
    let (e, name) = (p.e, p.e.spec.name.as_str());
    let target = p.target();
    let mut m = String::from(r#"<div class="view-bar">"#);
    if p.multi() {
        let names: Vec<String> = e.spec.objectives.iter().map(|o| o.name.clone()).collect();
        m.push_str(&plots::select(
            "objective",
            "objective shown",
            &names,
            Some(&target.name),
        ));
    }
    let _ = write!(
        m,
        r#"<label class="picker"><input type="checkbox" form="view" name="log" value="1"{}> log scale</label></div>"#,
        if p.view.log { " checked" } else { "" }
    );
    // The forest is the costly part of a page: fit it once for both plots using it.
    let importance = query::importance_for(e, p.trials, target.index);
    let label = target.label(e.spec.objectives.len());
    let section = |id: &'static str, heading: String, kind: Kind, controls: String, svg: String| {
        plots::section(Section {
            id,
            heading,
            exp: name,
            kind,
            controls,
            svg,
            zoomed: p.view.zoomed(kind),
        })
    };
    let opts = |k: Kind| p.view.options(k);
    m.push_str(&section(
        "history",
        format!("Optimisation history of {label}"),
        Kind::History,
        String::new(),
        svg::render(Kind::History, e, p.trials, &opts(Kind::History)),
    ));
    m.push_str(&section(
        "importance",
        format!("Parameter importance for {label}"),
        Kind::Importance,
        String::new(),
        svg::importance(name, &label, importance.as_deref(), &opts(Kind::Importance)),
    ));
    let params = p.params();
    m.push_str(&section(
        "parallel",
        "Parallel coordinates".into(),
        Kind::Parallel,
        plots::checkboxes("parallel", "parameters", &params, &p.view.parallel),
        svg::render(Kind::Parallel, e, p.trials, &opts(Kind::Parallel)),
    ));
    m.push_str(&section(
        "slice",
        format!("Slice plots of {label}"),
        Kind::Slice,
        plots::checkboxes("slice", "parameters", &params, &p.view.slice),
        svg::render(Kind::Slice, e, p.trials, &opts(Kind::Slice)),
    ));
    m.push_str(&section(
        "contour",
        format!("Contour of {label}"),
        Kind::Contour,
        contour_pickers(p, &params, importance.as_deref()),
        svg::contour_with(e, p.trials, importance.as_deref(), &opts(Kind::Contour)),
    ));
    m.push_str(&section(
        "timeline",
        "Trial timeline".into(),
        Kind::Timeline,
        String::new(),
        svg::render(Kind::Timeline, e, p.trials, &opts(Kind::Timeline)),
    ));
    m.push_str(&section(
        "intermediate",
        format!("Intermediate values of {}", e.spec.objective),
        Kind::Intermediate,
        String::new(),
        svg::render(Kind::Intermediate, e, p.trials, &opts(Kind::Intermediate)),
    ));
    m
}

/// The contour's x and y pickers, set to what it draws (the two most important by
/// default).
fn contour_pickers(
    p: &Page,
    params: &[String],
    importance: Result<&[ParamImportance], &String>,
) -> String {
    let ranked: Vec<String> = match importance {
        Ok(i) => i.iter().map(|x| x.name.clone()).collect(),
        Err(_) => params.to_vec(),
    };
    let x = p.view.cx.clone().or_else(|| ranked.first().cloned());
    let y = p
        .view
        .cy
        .clone()
        .or_else(|| ranked.iter().find(|n| Some(*n) != x.as_ref()).cloned());
    plots::select("cx", "x", params, x.as_deref()) + &plots::select("cy", "y", params, y.as_deref())
}

fn space(e: &Experiment) -> String {
    let mut m = String::from(
        r#"<section id="space"><h2>Search space</h2><table class="list"><thead><tr><th>parameter</th><th>type</th><th>values</th><th>step</th><th>distribution</th></tr></thead><tbody>"#,
    );
    for r in query::space_rows(e) {
        let _ = writeln!(
            m,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            xml(&r.name),
            xml(&r.kind),
            xml(&r.values),
            r.step.as_deref().map(xml).unwrap_or_else(|| "-".into()),
            xml(&r.distribution)
        );
    }
    m.push_str("</tbody></table></section>");
    m
}
