//! The dashboard's pages, rendered from the same documents the JSON endpoints serve.
//! One module per page; the pieces several pages use are here.

mod compare;
pub mod experiment;
mod index;
mod notes;
mod plots;
mod trial;
mod trials;

pub use compare::{compare, compare_plot};
pub use experiment::experiment;
pub use index::index;
pub use trial::trial;

use std::fmt::Write as _;

use crate::render::svg::xml;
use crate::store::{Experiment, TrialRow, TrialStatus};

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
<div id="tip" class="tip" hidden></div>
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

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
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

fn trial_link(exp: &str, number: i64, text: &str) -> String {
    format!(r#"<a href="/e/{}/t/{number}">{}</a>"#, enc(exp), xml(text))
}

fn badge(status: &str) -> String {
    format!(
        r#"<span class="badge s-{}">{}</span>"#,
        xml(status),
        xml(&status.replace('_', " "))
    )
}

/// A trial's status badge, and `infeasible` beside it when it breaks a constraint.
fn trial_badges(t: &TrialRow) -> String {
    if t.status == TrialStatus::Succeeded && !t.is_feasible() {
        format!("{} {}", badge(t.status.as_str()), badge("infeasible"))
    } else {
        badge(t.status.as_str())
    }
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

/// `maximize accuracy`, or `accuracy (maximize), size (minimize)` with several.
fn objective_text(e: &Experiment) -> String {
    if e.spec.objectives.len() > 1 {
        crate::tune::objectives_text(&e.spec.objectives)
    } else {
        format!("{} {}", e.spec.direction.as_str(), e.spec.objective)
    }
}

/// The live counts every page shows the same way: trials finished of the budget,
/// then running, failed and stopped early (the numbers are also attributes, which the
/// script and the browser test read).
fn counts_text(e: &Experiment, trials: &[TrialRow]) -> String {
    let c = super::counts(trials);
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let finished = n("succeeded") + n("failed") + n("early_stopped");
    let mut text = format!("{finished} of {} finished", e.spec.max_trials);
    for (key, word) in [
        ("running", "running"),
        ("succeeded", "ok"),
        ("failed", "failed"),
        ("early_stopped", "stopped early"),
    ] {
        if n(key) > 0 || key == "running" || key == "failed" {
            let _ = write!(text, " · {} {word}", n(key));
        }
    }
    format!(
        r#"<span class="counts" data-finished="{finished}" data-max="{}" data-running="{}" data-failed="{}">{}</span>"#,
        e.spec.max_trials,
        n("running"),
        n("failed"),
        xml(&text)
    )
}

/// Wall time; while the experiment runs it includes the running session, and the
/// script keeps it ticking between updates.
fn wall_text(e: &Experiment) -> String {
    let running = e.status == crate::store::ExperimentStatus::Running;
    let s = e.wall_seconds_now();
    format!(
        r#"<span class="wall" data-wall="{s:.3}" data-ticking="{}">{}</span>"#,
        u8::from(running),
        duration(s)
    )
}
