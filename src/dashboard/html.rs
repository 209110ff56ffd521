//! The dashboard's pages, rendered from the same documents the JSON endpoints serve.

use crate::store::TrialStatus;
use std::fmt::Write as _;

use serde_json::Value;

use crate::format::{num, value_text};
use crate::render::svg::{self, Kind, Series, xml};
use crate::report;
use crate::store::{Experiment, TrialRow};

/// Trial rows an experiment page shows.
const TABLE_ROWS: usize = 500;

fn layout(title: &str, crumbs: &str, main: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · kale dashboard</title>
<link rel="stylesheet" href="/static/style.css">
</head><body>
<header><a class="brand" href="/">kale dashboard</a>{crumbs}<span id="live" class="live" title="updates as the store changes">live</span></header>
<main id="main">
{main}
</main>
<script src="/static/app.js"></script>
</body></html>
"#,
        t = xml(title)
    )
}

pub fn error_page(message: &str) -> String {
    layout(
        "error",
        "",
        &format!(r#"<p class="error">{}</p>"#, xml(message)),
    )
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn exp_link(name: &str) -> String {
    format!(r#"<a href="/e/{}">{}</a>"#, enc(name), xml(name))
}

fn badge(status: &str) -> String {
    format!(
        r#"<span class="badge s-{}">{}</span>"#,
        xml(status),
        xml(&status.replace('_', " "))
    )
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

fn params_cells(params: &Value, names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "<td class=num>{}</td>",
                params
                    .get(n)
                    .map(|v| xml(&value_text(v)))
                    .unwrap_or_default()
            )
        })
        .collect()
}

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
        let c = super::counts(trials);
        let multi = e.spec.objectives.len() > 1;
        let best = crate::tune::best_trial(trials, report::direction(e));
        let objective = if multi {
            crate::tune::objectives_text(&e.spec.objectives)
        } else {
            format!(
                "{} {}",
                crate::store::direction_text(e.spec.direction),
                e.spec.objective
            )
        };
        let best_cell = if multi {
            format!(
                "front {}",
                crate::tune::pareto_front(trials, &e.spec.objectives).len()
            )
        } else {
            best.and_then(|b| b.value)
                .map(|v| {
                    format!(
                        "{} <span class=muted>(#{})</span>",
                        num(v),
                        best.unwrap().number
                    )
                })
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            m,
            r#"<tr><td><input type="checkbox" name="e" value="{}" aria-label="compare {}"></td><td>{}</td><td>{}</td><td>{}</td><td class=num>{} ok · {} failed{}{}</td><td class=num>{}</td><td>{}</td><td class="path">{}</td><td class="time" data-t="{}"></td></tr>"#,
            xml(&e.spec.name),
            xml(&e.spec.name),
            exp_link(&e.spec.name),
            badge(e.status.as_str()),
            xml(&objective),
            c["succeeded"],
            c["failed"],
            match c["running"].as_u64() {
                Some(n) if n > 0 => format!(" · {n} running"),
                _ => String::new(),
            },
            format_args!(" / {}", e.spec.max_trials),
            best_cell,
            xml(&e.spec.algorithm),
            xml(&e.spec.notebook),
            e.updated_at
        );
    }
    m.push_str(r#"</tbody></table><p><button type="submit">Compare selected</button></p></form>"#);
    layout("experiments", "", &m)
}

pub fn experiment(e: &Experiment, trials: &[TrialRow], log: bool) -> String {
    // The forest is the costly part of a page: fit it once for the document and
    // both plots that use it.
    let importance = report::importance(e, trials);
    let doc = super::experiment_doc_with(e, trials, &importance);
    let name = &e.spec.name;
    let direction = report::direction(e);
    let multi = e.spec.objectives.len() > 1;
    let best = crate::tune::best_trial(trials, direction).filter(|_| !multi);
    let front = if multi {
        crate::tune::pareto_front(trials, &e.spec.objectives)
    } else {
        Vec::new()
    };
    let mut m = String::new();
    let c = &doc["counts"];
    let _ = writeln!(
        m,
        r#"<h1>{} {}</h1><p class="muted">{}{}</p>"#,
        xml(name),
        badge(e.status.as_str()),
        e.reason
            .as_deref()
            .map(|r| format!("{} · ", xml(r)))
            .unwrap_or_default(),
        xml(&e.spec.notebook)
    );
    let eta = doc["eta_seconds"]
        .as_f64()
        .map(|s| format!("<div><b>ETA</b> {}</div>", duration(s)))
        .unwrap_or_default();
    let _ = writeln!(
        m,
        r#"<section class="facts"><div><b>{}</b> {}{}</div><div><b>algorithm</b> {}</div><div><b>trials</b> {} of {} · {} ok · {} failed · {} stopped early · {} running</div><div><b>at once</b> {}</div><div><b>wall time</b> {}</div>{eta}</section>"#,
        if multi { "objectives" } else { "objective" },
        if multi {
            xml(&crate::tune::objectives_text(&e.spec.objectives))
        } else {
            format!(
                "{} {}",
                xml(crate::store::direction_text(e.spec.direction)),
                xml(&e.spec.objective)
            )
        },
        match (e.spec.goal, e.spec.constraints.is_empty()) {
            (g, true) => g.map(|g| format!(" (goal {})", num(g))).unwrap_or_default(),
            (g, false) => format!(
                "{} · subject to {}",
                g.map(|g| format!(" (goal {})", num(g))).unwrap_or_default(),
                xml(&e
                    .spec
                    .constraints
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "))
            ),
        },
        xml(&e.spec.algorithm),
        c["total"],
        e.spec.max_trials,
        c["succeeded"],
        c["failed"],
        c["early_stopped"],
        c["running"],
        e.spec.parallel,
        duration(e.wall_seconds)
    );
    // Several objectives: the front and its plot instead of one best trial.
    if multi {
        let names: Vec<&str> = e.spec.objectives.iter().map(|o| o.name.as_str()).collect();
        let _ = write!(
            m,
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
            for n in &names {
                let _ = write!(m, "<th>{}</th>", xml(n));
            }
            m.push_str("<th>parameters</th></tr></thead><tbody>");
            for t in &front {
                let _ = write!(
                    m,
                    r#"<tr data-trial="{}"><td class=num><a href="/e/{}/t/{}">{}</a></td>"#,
                    t.number,
                    enc(name),
                    t.number,
                    t.number
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
        let _ = writeln!(
            m,
            r#"</section><section id="pareto"><h2>Pareto plot</h2><p class="tools"><a href="/plot/{}/pareto.svg" download>SVG</a></p><div class="plot">{}</div></section>"#,
            enc(name),
            svg::render(Kind::Pareto, e, trials, svg::Options::default())
        );
    }
    // Best trial.
    if !multi {
        m.push_str(r#"<section class="card" id="best"><h2>Best trial</h2>"#);
    }
    match best {
        _ if multi => {}
        Some(b) => {
            let _ = writeln!(
                m,
                r#"<p class="best-value"><a href="/e/{}/t/{}">trial {}</a>: {} = <b data-best="{}">{}</b></p><table class="kv">"#,
                enc(name),
                b.number,
                b.number,
                xml(&e.spec.objective),
                b.value.unwrap_or(f64::NAN),
                num(b.value.unwrap_or(f64::NAN))
            );
            if let Some(p) = b.params.as_object() {
                for (k, v) in p {
                    let _ = writeln!(
                        m,
                        "<tr><th>{}</th><td>{}</td></tr>",
                        xml(k),
                        xml(&value_text(v))
                    );
                }
            }
            m.push_str("</table>");
            let _ = writeln!(
                m,
                r#"<p class="muted">run it again: <code>kale run {} --params-from {}</code> ({})</p>"#,
                xml(&e.spec.notebook),
                xml(name),
                xml(&b
                    .params
                    .as_object()
                    .map(|p| p
                        .iter()
                        .map(|(k, v)| format!("{k}={}", value_text(v)))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default())
            );
        }
        None => m.push_str(r#"<p class="empty">No trial has succeeded yet.</p>"#),
    }
    if !multi {
        m.push_str("</section>");
    }
    // Plots.
    let opts = svg::Options { log_y: log };
    let _ = writeln!(
        m,
        r#"<section id="history"><h2>Optimisation history</h2><p class="tools"><a href="?{}">{}</a> · <a href="/plot/{}/history.svg{}" download>SVG</a></p><div class="plot">{}</div></section>"#,
        if log { "" } else { "log=1" },
        if log { "linear scale" } else { "log scale" },
        enc(name),
        if log { "?log=1" } else { "" },
        svg::render(Kind::History, e, trials, opts)
    );
    let _ = writeln!(
        m,
        r#"<section id="importance"><h2>Parameter importance</h2><div class="plot">{}</div></section>"#,
        svg::importance(&e.spec.name, importance.as_deref())
    );
    let _ = writeln!(
        m,
        r#"<section id="parallel"><h2>Parallel coordinates</h2><div class="plot">{}</div></section>"#,
        svg::render(Kind::Parallel, e, trials, opts)
    );
    let _ = writeln!(
        m,
        r#"<section id="slice"><h2>Slice plots</h2><div class="plot">{}</div></section>"#,
        svg::render(Kind::Slice, e, trials, opts)
    );
    let _ = writeln!(
        m,
        r#"<section id="contour"><h2>Contour (two most important parameters)</h2><div class="plot">{}</div></section>"#,
        svg::contour_with(e, trials, importance.as_deref())
    );
    // Search space.
    m.push_str(r#"<section id="space"><h2>Search space</h2><table class="list"><thead><tr><th>parameter</th><th>type</th><th>values</th><th>step</th><th>distribution</th></tr></thead><tbody>"#);
    for r in report::space_rows(e) {
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
    // Trials.
    let names: Vec<String> = report::space(e)
        .map(|s| s.parameters().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let mut metric_names: Vec<String> = trials
        .iter()
        .filter_map(|t| t.metrics.as_object())
        .flat_map(|m| m.keys().cloned())
        .filter(|k| *k != e.spec.objective)
        .collect();
    metric_names.sort();
    metric_names.dedup();
    m.push_str(r#"<section id="trials"><h2>Trials</h2><table class="list sortable" id="trial-table"><thead><tr><th>#</th><th>status</th>"#);
    let _ = write!(m, "<th>{}</th>", xml(&e.spec.objective));
    for n in names.iter().chain(&metric_names) {
        let _ = write!(m, "<th>{}</th>", xml(n));
    }
    m.push_str("<th>duration</th><th>cache hits</th><th>error</th></tr></thead><tbody>");
    // A page with every row of a 10 000-trial experiment is megabytes of HTML; the
    // newest rows and the best one are what a person reads, the JSON has them all.
    let shown: Vec<&TrialRow> = trials
        .iter()
        .rev()
        .enumerate()
        .filter(|(i, t)| *i < TABLE_ROWS || Some(t.number) == best.map(|b| b.number))
        .map(|(_, t)| t)
        .collect();
    for t in shown {
        let is_best = Some(t.number) == best.map(|b| b.number);
        let _ = write!(
            m,
            r#"<tr class="{}"><td class=num><a href="/e/{}/t/{}">{}</a></td><td>{}</td><td class=num>{}</td>{}"#,
            if is_best { "best" } else { "" },
            enc(name),
            t.number,
            t.number,
            if t.status == TrialStatus::Succeeded && !t.is_feasible() {
                format!("{} {}", badge(t.status.as_str()), badge("infeasible"))
            } else {
                badge(t.status.as_str())
            },
            t.value.map(num).unwrap_or_default(),
            params_cells(&t.params, &names)
        );
        for k in &metric_names {
            let _ = write!(
                m,
                "<td class=num>{}</td>",
                t.metrics
                    .get(k)
                    .map(|v| xml(&value_text(v)))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            m,
            r#"<td class=num>{}</td><td class=num>{}</td><td class="err">{}</td></tr>"#,
            t.seconds.map(duration).unwrap_or_default(),
            if t.cache_hits + t.cache_misses > 0 {
                format!("{}/{}", t.cache_hits, t.cache_hits + t.cache_misses)
            } else {
                String::new()
            },
            t.error
                .as_deref()
                .filter(|_| t.status != TrialStatus::Succeeded)
                .map(xml)
                .unwrap_or_default()
        );
    }
    m.push_str("</tbody></table>");
    if trials.len() > TABLE_ROWS {
        let _ = writeln!(
            m,
            r#"<p class="muted">The newest {TABLE_ROWS} of {} trials (and the best); all of them: <a href="/api/experiments/{}">/api/experiments/{}</a>.</p>"#,
            trials.len(),
            enc(name),
            xml(name)
        );
    }
    m.push_str("</section>");
    let crumbs = format!(" / {}", exp_link(name));
    layout(name, &crumbs, &m)
}

pub fn trial(e: &Experiment, t: &TrialRow, doc: &Value) -> String {
    let name = &e.spec.name;
    let mut m = String::new();
    let _ = writeln!(
        m,
        r#"<h1>trial {} {}</h1><section class="facts"><div><b>{}</b> {}</div><div><b>duration</b> {}</div><div><b>cache</b> {} hits, {} misses</div><div><b>run</b> <code>{}</code></div></section>"#,
        t.number,
        badge(t.status.as_str()),
        xml(&e.spec.objective),
        t.value.map(num).unwrap_or_else(|| "-".into()),
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
    m.push_str(r#"<section class="card"><h2>Parameters</h2><table class="kv">"#);
    if let Some(p) = t.params.as_object() {
        for (k, v) in p {
            let _ = writeln!(
                m,
                "<tr><th>{}</th><td>{}</td></tr>",
                xml(k),
                xml(&value_text(v))
            );
        }
    }
    m.push_str("</table><h2>Metrics</h2><table class=\"kv\">");
    if t.metrics.as_object().is_none_or(|p| p.is_empty()) {
        m.push_str(r#"<tr><td class="empty">none reported</td></tr>"#);
    }
    if let Some(p) = t.metrics.as_object() {
        for (k, v) in p {
            let _ = writeln!(
                m,
                "<tr><th>{}</th><td>{}</td></tr>",
                xml(k),
                xml(&value_text(v))
            );
        }
    }
    m.push_str("</table></section>");
    m.push_str(r#"<section id="intermediate"><h2>Intermediate values</h2>"#);
    if t.intermediate.is_empty() {
        let _ = writeln!(
            m,
            r#"<p class="empty">None reported. Early stopping reads lines <code>{}=VALUE</code> that a step prints while it runs.</p>"#,
            xml(&e.spec.objective)
        );
    } else {
        let _ = writeln!(
            m,
            r#"<div class="plot">{}</div>"#,
            svg::intermediate(
                &format!("{name} trial {}", t.number),
                &e.spec.objective,
                &t.intermediate
            )
        );
    }
    m.push_str("</section><section id=\"steps\"><h2>Steps</h2>");
    let steps = doc["steps"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        m.push_str(r#"<p class="empty">The run directory has no manifest (pruned, or the trial never started).</p>"#);
    }
    for s in steps {
        let status = s["status"].as_str().unwrap_or("");
        let _ = writeln!(
            m,
            r#"<details class="step" {}><summary><b>{}</b> {} {}</summary>"#,
            if status == "failed" { "open" } else { "" },
            xml(s["name"].as_str().unwrap_or("")),
            badge(status),
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
    }
    m.push_str("</section>");
    let crumbs = format!(
        r#" / {} / <a href="/e/{}/t/{}">trial {}</a>"#,
        exp_link(name),
        enc(name),
        t.number,
        t.number
    );
    layout(&format!("{name} trial {}", t.number), &crumbs, &m)
}

pub fn compare_plot(picked: &[(Experiment, Vec<TrialRow>)], log: bool) -> String {
    let series: Vec<Series> = picked
        .iter()
        .map(|(e, t)| Series {
            name: &e.spec.name,
            direction: report::direction(e),
            trials: t,
        })
        .collect();
    let objective = picked
        .first()
        .map(|(e, _)| e.spec.objective.as_str())
        .unwrap_or("objective");
    svg::history("compare", objective, &series, svg::Options { log_y: log })
}

pub fn compare(
    everything: &[(Experiment, Vec<TrialRow>)],
    picked: &[(Experiment, Vec<TrialRow>)],
    log: bool,
) -> String {
    let mut m = String::from("<h1>Compare experiments</h1>");
    m.push_str(r#"<form action="/compare" method="get" class="pick">"#);
    for (e, _) in everything {
        let on = picked.iter().any(|(p, _)| p.spec.name == e.spec.name);
        let _ = write!(
            m,
            r#"<label><input type="checkbox" name="e" value="{}" {}> {}</label> "#,
            xml(&e.spec.name),
            if on { "checked" } else { "" },
            xml(&e.spec.name)
        );
    }
    let _ = write!(
        m,
        r#"<label><input type="checkbox" name="log" value="1" {}> log scale</label> <button type="submit">Compare</button></form>"#,
        if log { "checked" } else { "" }
    );
    if picked.is_empty() {
        m.push_str(r#"<p class="empty">Pick the experiments to overlay.</p>"#);
        return layout("compare", " / compare", &m);
    }
    let objectives: Vec<&str> = picked
        .iter()
        .map(|(e, _)| e.spec.objective.as_str())
        .collect();
    if objectives.iter().any(|o| *o != objectives[0]) {
        let _ = writeln!(
            m,
            r#"<p class="error">These experiments optimise different metrics ({}); their values share one axis.</p>"#,
            xml(&objectives.join(", "))
        );
    }
    let _ = writeln!(
        m,
        r#"<section id="history"><div class="plot">{}</div></section>"#,
        compare_plot(picked, log)
    );
    m.push_str(r#"<table class="list"><thead><tr><th>experiment</th><th>status</th><th>algorithm</th><th>trials</th><th>best</th><th>best params</th><th>wall time</th></tr></thead><tbody>"#);
    for (e, t) in picked {
        let c = super::counts(t);
        let best = crate::tune::best_trial(t, report::direction(e));
        let _ = writeln!(
            m,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{} ({} ok, {} failed)</td><td class=num>{}</td><td>{}</td><td class=num>{}</td></tr>"#,
            exp_link(&e.spec.name),
            badge(e.status.as_str()),
            xml(&e.spec.algorithm),
            c["total"],
            c["succeeded"],
            c["failed"],
            best.and_then(|b| b.value)
                .map(num)
                .unwrap_or_else(|| "-".into()),
            best.map(|b| xml(&crate::tune::params_text(&b.params)))
                .unwrap_or_default(),
            duration(e.wall_seconds)
        );
    }
    m.push_str("</tbody></table>");
    layout("compare", " / compare", &m)
}
