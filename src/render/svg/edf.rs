//! The empirical distribution function of the objective (Optuna's EDF plot): for each
//! experiment, the share of its feasible succeeded trials whose value is at most x.
//! Overlaid, it compares how good the trials of each search were, not only the best.

use std::fmt::Write as _;

use super::axis::value_axis;
use super::draw::{Frame, Mark, PALETTE, empty, legend, open, title, trial_tip, xml};
use super::{Options, Target};
use crate::format::num;
use crate::store::{Experiment, TrialRow, TrialStatus};

/// One experiment's values: (trial number, value), sorted by value.
pub struct EdfSeries {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

impl EdfSeries {
    /// The feasible succeeded trials' values of `target`.
    pub fn of(e: &Experiment, trials: &[TrialRow], target: &Target) -> EdfSeries {
        let mut points: Vec<(i64, f64)> = trials
            .iter()
            .filter(|t| t.status == TrialStatus::Succeeded && t.is_feasible())
            .filter_map(|t| Some((t.number, target.value(t)?)))
            .collect();
        points.sort_by(|a, b| a.1.total_cmp(&b.1));
        EdfSeries {
            name: e.spec.name.clone(),
            points,
        }
    }
}

pub fn edf(title_text: &str, objective: &str, series: &[EdfSeries], opts: &Options) -> String {
    let (w, h) = (opts.width_or(820.0), 440.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "edf");
    title(
        &mut svg,
        &format!("{title_text} — empirical distribution of {objective}"),
        w,
    );
    let items: Vec<(Mark, String)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                Mark::Line(PALETTE[i % PALETTE.len()]),
                format!("{} ({} trials)", s.name, s.points.len()),
            )
        })
        .collect();
    let top = legend(&mut svg, &items, w, 44.0) + 8.0;
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    if values.is_empty() {
        return empty(&mut svg, w, h, "no feasible succeeded trials yet");
    }
    let x = value_axis(&values, opts.log_y, 6).zoomed(opts.x_range);
    let mut y = super::axis::linear_axis(&[0.0, 1.0], 5).zoomed(opts.y_range);
    if opts.y_range.is_none() {
        (y.lo, y.hi) = (0.0, 1.0);
    }
    let frame = Frame {
        left: 72.0,
        top,
        right: w - 24.0,
        bottom: h - 58.0,
        x,
        y,
        under: 0.0,
    };
    let log = if frame.x.log { " (log)" } else { "" };
    frame.draw(
        &mut svg,
        "edf",
        &format!("{objective}{log}"),
        "share of trials ≤ value",
    );
    for (i, s) in series.iter().enumerate() {
        steps(
            &mut svg,
            &frame,
            s,
            PALETTE[i % PALETTE.len()],
            series.len() > 1,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The step function, then a dot per trial at its step (hover and click-through).
fn steps(svg: &mut String, f: &Frame, s: &EdfSeries, colour: &str, several: bool) {
    let n = s.points.len() as f64;
    if s.points.is_empty() {
        return;
    }
    let mut d = format!("M{:.1},{:.1}", f.left, f.py(0.0));
    for (k, (_, v)) in s.points.iter().enumerate() {
        let x = f.px(*v);
        let _ = write!(
            d,
            " L{x:.1},{:.1} L{x:.1},{:.1}",
            f.py(k as f64 / n),
            f.py((k + 1) as f64 / n)
        );
    }
    let _ = write!(d, " L{:.1},{:.1}", f.right, f.py(1.0));
    let _ = writeln!(
        svg,
        r#"<path class="edf-line" data-exp="{}" d="{d}" fill="none" stroke="{colour}" stroke-width="2" clip-path="url(#clip-edf)" pointer-events="none"/>"#,
        xml(&s.name)
    );
    for (k, (number, v)) in s.points.iter().enumerate() {
        let (x, y) = (f.px(*v), f.py((k + 1) as f64 / n));
        if !f.holds(x, y) {
            continue;
        }
        let tip = trial_tip(&[
            if several {
                s.name.clone()
            } else {
                String::new()
            },
            format!("trial {number}"),
            format!("value {}", num(*v)),
            format!("{:.0}% of trials at or below", 100.0 * (k + 1) as f64 / n),
        ]);
        let _ = writeln!(
            svg,
            r#"<circle class="trial" data-trial="{number}" data-exp="{}" cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"><title>{}</title></circle>"#,
            xml(&s.name),
            xml(&tip)
        );
    }
}
