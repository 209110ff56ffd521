//! The trial timeline: a bar per trial from its start to its end (now, while it
//! runs), one row per trial, coloured by how it ended. It shows where the parallelism
//! went: gaps between bars are idle slots, long bars the trials that held the rest up.

use std::fmt::Write as _;

use super::Options;
use super::axis::{Axis, nice_ticks};
use super::draw::{
    BLUE, Frame, GREEN, GREY, LIGHT_GREY, Mark, ORANGE, RED, empty, legend, open, title, trial_tip,
    xml,
};
use crate::format::num;
use crate::store::{Experiment, TrialRow, TrialStatus};

/// The colour of a trial's bar and the legend's word for it.
fn look(t: &TrialRow) -> (&'static str, &'static str) {
    match t.status {
        TrialStatus::Succeeded if !t.is_feasible() => (GREY, "infeasible"),
        TrialStatus::Succeeded => (BLUE, "succeeded"),
        TrialStatus::Failed => (RED, "failed"),
        TrialStatus::EarlyStopped => (ORANGE, "early stopped"),
        TrialStatus::Running => (GREEN, "running"),
        TrialStatus::Interrupted => (LIGHT_GREY, "interrupted"),
    }
}

/// When a trial ended: its start plus its duration, now while it runs.
fn end_of(t: &TrialRow, now: f64) -> f64 {
    match (t.seconds, t.status) {
        (Some(s), _) => t.started_at + s,
        (None, TrialStatus::Running) => now,
        (None, _) => t.finished_at.unwrap_or(t.started_at),
    }
}

pub fn timeline(e: &Experiment, trials: &[TrialRow], opts: &Options) -> String {
    let (w, h) = (opts.width_or(820.0), 460.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "timeline");
    title(&mut svg, &format!("{} — trial timeline", e.spec.name), w);
    let mut items: Vec<(Mark, String)> = Vec::new();
    for word in [
        "succeeded",
        "infeasible",
        "failed",
        "early stopped",
        "running",
        "interrupted",
    ] {
        let n = trials.iter().filter(|t| look(t).1 == word).count();
        if let Some(t) = trials.iter().find(|t| look(t).1 == word) {
            items.push((Mark::Bar(look(t).0), format!("{word} ({n})")));
        }
    }
    let top = legend(&mut svg, &items, w, 44.0) + 8.0;
    if trials.is_empty() {
        return empty(&mut svg, w, h, "no trials yet");
    }
    let now = crate::exec::manifest::now();
    let t0 = trials
        .iter()
        .map(|t| t.started_at)
        .fold(f64::INFINITY, f64::min);
    let t1 = trials.iter().map(|t| end_of(t, now)).fold(t0, f64::max);
    let span = (t1 - t0).max(1e-3);
    let x = Axis {
        lo: 0.0,
        hi: span * 1.02,
        log: false,
        ticks: nice_ticks(0.0, span * 1.02, 8),
    }
    .zoomed(opts.x_range);
    let last = trials.iter().map(|t| t.number).max().unwrap_or(0) as f64;
    let mut y = Axis {
        lo: -0.6,
        hi: last + 0.6,
        log: false,
        ticks: nice_ticks(0.0, last, 8),
    }
    .zoomed(opts.y_range);
    y = y.whole_ticks();
    let frame = Frame {
        left: 72.0,
        top,
        right: w - 24.0,
        bottom: h - 58.0,
        x,
        y,
        under: 0.0,
    };
    frame.draw(
        &mut svg,
        "timeline",
        "seconds since the first trial started",
        "trial",
    );
    let row = ((frame.bottom - frame.top) / (frame.y.hi - frame.y.lo) * 0.8).clamp(1.0, 16.0);
    for t in trials {
        bar(&mut svg, &frame, t, t0, end_of(t, now), row);
    }
    svg.push_str("</svg>\n");
    svg
}

fn bar(svg: &mut String, f: &Frame, t: &TrialRow, t0: f64, end: f64, row: f64) {
    let (x0, x1) = (f.px(t.started_at - t0), f.px(end - t0));
    let y = f.py(t.number as f64);
    if x1 < f.left || x0 > f.right || y < f.top - row || y > f.bottom + row {
        return;
    }
    let (x0, x1) = (x0.max(f.left), x1.min(f.right));
    let (colour, word) = look(t);
    let tip = trial_tip(&[
        format!("trial {}", t.number),
        word.to_string(),
        format!(
            "started at {}s, ran {}s",
            num(t.started_at - t0),
            num(end - t.started_at)
        ),
        t.value
            .map(|v| format!("value {}", num(v)))
            .unwrap_or_default(),
        crate::tune::params_text(&t.params),
    ]);
    let _ = writeln!(
        svg,
        r#"<rect class="trial trial-{}" data-trial="{}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{row:.1}" fill="{colour}"><title>{}</title></rect>"#,
        t.status,
        t.number,
        y - row / 2.0,
        (x1 - x0).max(1.5),
        xml(&tip)
    );
}
