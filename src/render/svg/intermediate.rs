//! Intermediate values: every trial's reports (the `<objective>=<value>` lines its
//! steps printed while it ran) by report number, one line per trial, coloured by how
//! the trial ended. These are the curves early stopping compares.

use std::fmt::Write as _;

use super::Options;
use super::axis::{Axis, linear_axis};
use super::draw::{
    BLUE, Frame, GREEN, GREY, Mark, ORANGE, RED, empty, legend, open, title, trial_tip, xml,
};
use crate::format::num;
use crate::store::{Experiment, TrialRow, TrialStatus};

/// Lines drawn at most; beyond, the newest (and the best) are shown and the legend
/// says so.
const MAX_LINES: usize = 1000;

fn colour(t: &TrialRow) -> &'static str {
    match t.status {
        TrialStatus::Succeeded if !t.is_feasible() => GREY,
        TrialStatus::Succeeded => BLUE,
        TrialStatus::Failed => RED,
        TrialStatus::EarlyStopped => ORANGE,
        TrialStatus::Running => GREEN,
        TrialStatus::Interrupted => GREY,
    }
}

pub fn intermediate(e: &Experiment, trials: &[TrialRow], opts: &Options) -> String {
    let (w, h) = (opts.width_or(820.0), 420.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "intermediate");
    let single = trials.len() == 1;
    let what = match trials {
        [t] => format!("trial {}", t.number),
        _ => "every trial".into(),
    };
    title(
        &mut svg,
        &format!(
            "{} — intermediate {} of {what}",
            e.spec.name, e.spec.objective
        ),
        w,
    );
    let with: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| !t.intermediate.is_empty())
        .collect();
    let shown: Vec<&TrialRow> = with.iter().rev().take(MAX_LINES).rev().copied().collect();
    let mut items: Vec<(Mark, String)> = Vec::new();
    for (word, status) in [
        ("succeeded", TrialStatus::Succeeded),
        ("early stopped", TrialStatus::EarlyStopped),
        ("failed", TrialStatus::Failed),
        ("running", TrialStatus::Running),
    ] {
        let n = shown.iter().filter(|t| t.status == status).count();
        if n > 0 && !single {
            let c = colour(shown.iter().find(|t| t.status == status).unwrap());
            items.push((Mark::Line(c), format!("{word} ({n})")));
        }
    }
    if with.len() > shown.len() {
        items.push((
            Mark::Line(GREY),
            format!("the newest {MAX_LINES} of {} trials", with.len()),
        ));
    }
    let top = legend(&mut svg, &items, w, 44.0) + 8.0;
    if shown.is_empty() {
        let why = format!(
            "no intermediate values: early stopping reads lines {}=VALUE that a step prints while it runs",
            e.spec.objective
        );
        return empty(&mut svg, w, h, &why);
    }
    let values: Vec<f64> = shown
        .iter()
        .flat_map(|t| t.intermediate.iter().copied())
        .collect();
    let steps = shown
        .iter()
        .map(|t| t.intermediate.len())
        .max()
        .unwrap_or(1)
        .max(2)
        - 1;
    let mut x = Axis {
        lo: 0.0,
        hi: steps as f64,
        log: false,
        ticks: linear_axis(&[0.0, steps as f64], 8).ticks,
    }
    .zoomed(opts.x_range);
    (x.lo, x.hi) = if opts.x_range.is_some() {
        (x.lo, x.hi)
    } else {
        (0.0, steps as f64)
    };
    let (lo, hi) = (x.lo, x.hi);
    x.ticks.retain(|(v, _)| *v >= lo && *v <= hi);
    let x = x.whole_ticks();
    let frame = Frame {
        left: 72.0,
        top,
        right: w - 24.0,
        bottom: h - 58.0,
        x,
        y: linear_axis(&values, 5).zoomed(opts.y_range),
        under: 0.0,
    };
    frame.draw(&mut svg, "intermediate", "report", &e.spec.objective);
    for t in &shown {
        curve(&mut svg, &frame, t, &e.spec.objective, single);
    }
    svg.push_str("</svg>\n");
    svg
}

fn curve(svg: &mut String, f: &Frame, t: &TrialRow, objective: &str, single: bool) {
    let d: String = t
        .intermediate
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                f.px(i as f64),
                f.py(*v)
            )
        })
        .collect();
    let tip = trial_tip(&[
        format!("trial {}", t.number),
        t.status.to_string(),
        format!(
            "{} reports, last {objective}={}",
            t.intermediate.len(),
            num(*t.intermediate.last().unwrap())
        ),
        crate::tune::params_text(&t.params),
    ]);
    let c = if single { BLUE } else { colour(t) };
    let _ = write!(
        svg,
        r#"<g class="trial" data-trial="{}"><title>{}</title><path d="{d}" fill="none" stroke="{c}" stroke-width="{}" stroke-opacity="0.8" clip-path="url(#clip-intermediate)"/>"#,
        t.number,
        xml(&tip),
        if single { 2.0 } else { 1.4 }
    );
    if single {
        for (i, v) in t.intermediate.iter().enumerate() {
            let (x, y) = (f.px(i as f64), f.py(*v));
            if f.holds(x, y) {
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{BLUE}"><title>report {i}: {}</title></circle>"#,
                    num(*v)
                );
            }
        }
    }
    svg.push_str("</g>\n");
}
