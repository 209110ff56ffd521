//! Parallel coordinates: one vertical axis per parameter and per objective, a line
//! per succeeded trial, darker for better values of the objective shown; the best
//! trial in red, or with several objectives the Pareto front; infeasible trials grey
//! and dashed.

use std::fmt::Write as _;

use super::axis::{Axis, Scale, param_scales, value_axis};
use super::draw::{GREY, Mark, RED, empty, fit, legend, open, ramp, title, trial_tip, xml};
use super::{Options, Target, best_number, front_numbers, succeeded};
use crate::format::num;
use crate::store::{Experiment, TrialRow};

/// An axis of the plot: a parameter, or an objective (by index) on its value axis.
enum Column {
    Param(String, Scale),
    Objective(Target, Axis),
}

impl Column {
    fn name(&self) -> &str {
        match self {
            Column::Param(n, _) => n,
            Column::Objective(t, _) => &t.name,
        }
    }

    fn frac(&self, t: &TrialRow) -> Option<f64> {
        match self {
            Column::Param(n, s) => t.params.get(n).and_then(|v| s.frac(v)),
            Column::Objective(target, a) => target.value(t).map(|v| a.frac(v)),
        }
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Column::Param(_, s) => s.ticks(),
            Column::Objective(_, a) => a
                .ticks
                .iter()
                .map(|(v, l)| (a.frac(*v), l.clone()))
                .collect(),
        }
    }
}

pub fn parallel(e: &Experiment, trials: &[TrialRow], target: &Target, opts: &Options) -> String {
    let ok = succeeded(trials, target);
    let columns = columns(e, &ok, target, opts);
    let n = columns.len();
    let (w, h) = (opts.width_or((170.0 * n as f64).max(600.0)), 440.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "parallel");
    title(
        &mut svg,
        &format!(
            "{} — parallel coordinates, shaded by {}",
            e.spec.name, target.name
        ),
        w,
    );
    let front = front_numbers(e, trials);
    let (dark, light) = (ramp(1.0), ramp(0.0));
    let mut items = vec![
        (Mark::Line(&dark), format!("better {}", target.name)),
        (Mark::Line(&light), format!("worse {}", target.name)),
        if target.multi {
            (Mark::Line(RED), format!("Pareto front ({})", front.len()))
        } else {
            (Mark::Line(RED), "best trial".into())
        },
    ];
    let infeasible = ok.iter().filter(|t| !t.is_feasible()).count();
    if infeasible > 0 {
        items.push((Mark::Line(GREY), format!("infeasible ({infeasible})")));
    }
    let top = legend(&mut svg, &items, w, 44.0) + 14.0;
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    let (bottom, margin) = (h - 40.0, 80.0);
    let gap = (w - 2.0 * margin) / (n - 1).max(1) as f64;
    let geometry = Geometry {
        top,
        bottom,
        margin,
        gap,
    };
    let highlighted: Vec<i64> = if target.multi {
        front
    } else {
        best_number(trials, target).into_iter().collect()
    };
    lines(&mut svg, &geometry, &columns, &ok, target, &highlighted);
    axes(&mut svg, &geometry, &columns);
    svg.push_str("</svg>\n");
    svg
}

struct Geometry {
    top: f64,
    bottom: f64,
    margin: f64,
    gap: f64,
}

impl Geometry {
    fn x(&self, i: usize) -> f64 {
        self.margin + self.gap * i as f64
    }

    fn y(&self, f: f64) -> f64 {
        self.top + (1.0 - f) * (self.bottom - self.top)
    }
}

/// The parameters picked (all by default), then the objective shown, then any other
/// objectives.
fn columns(e: &Experiment, ok: &[&TrialRow], target: &Target, opts: &Options) -> Vec<Column> {
    let mut out: Vec<Column> = param_scales(e, ok, &opts.params)
        .into_iter()
        .map(|(n, s)| Column::Param(n, s))
        .collect();
    let mut targets = vec![target.clone()];
    for o in &e.spec.objectives {
        if o.name != target.name {
            targets.push(Target::of(e, Some(&o.name)));
        }
    }
    for t in targets {
        let values: Vec<f64> = ok.iter().filter_map(|r| t.value(r)).collect();
        let axis = value_axis(&values, opts.log_y, 5);
        out.push(Column::Objective(t, axis));
    }
    out
}

/// A line per trial: infeasible ones first (grey, dashed), then worse to better so
/// the darker lines lie on top, the highlighted ones last.
fn lines(
    svg: &mut String,
    g: &Geometry,
    columns: &[Column],
    ok: &[&TrialRow],
    target: &Target,
    highlighted: &[i64],
) {
    let loss = |t: &TrialRow| target.direction.loss(target.value(t).unwrap_or(f64::NAN));
    let mut order: Vec<&&TrialRow> = ok.iter().collect();
    order.sort_by(|a, b| {
        let key = |t: &TrialRow| (t.is_feasible(), highlighted.contains(&t.number));
        key(a).cmp(&key(b)).then(loss(b).total_cmp(&loss(a)))
    });
    // A trial's shade is its rank among the feasible ones (binary search: counting
    // per trial is quadratic at 10 000 trials).
    let mut losses: Vec<f64> = ok
        .iter()
        .filter(|t| t.is_feasible())
        .map(|t| loss(t))
        .collect();
    losses.sort_by(|a, b| b.total_cmp(a));
    let rank = |t: &TrialRow| {
        let worse = losses.partition_point(|x| *x > loss(t));
        if losses.len() < 2 {
            1.0
        } else {
            worse as f64 / (losses.len() - 1) as f64
        }
    };
    for t in order {
        let d: String = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.frac(t).map(|f| (g.x(i), g.y(f))))
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" }))
            .collect();
        let (stroke, width, extra) = if !t.is_feasible() {
            (GREY.to_string(), 1.2, r#" stroke-dasharray="4 3""#)
        } else if highlighted.contains(&t.number) {
            (RED.to_string(), 3.0, "")
        } else {
            (ramp(rank(t)), 1.3, "")
        };
        let tip = trial_tip(&[
            format!("trial {}", t.number),
            format!(
                "{}={}",
                target.name,
                num(target.value(t).unwrap_or(f64::NAN))
            ),
            if t.is_feasible() {
                String::new()
            } else {
                "infeasible".into()
            },
            crate::tune::params_text(&t.params),
        ]);
        let _ = writeln!(
            svg,
            r#"<path class="trial" data-trial="{}" d="{d}" fill="none" stroke="{stroke}" stroke-width="{width}" stroke-opacity="0.85"{extra}><title>{}</title></path>"#,
            t.number,
            xml(&tip)
        );
    }
}

fn axes(svg: &mut String, g: &Geometry, columns: &[Column]) {
    for (i, c) in columns.iter().enumerate() {
        let x = g.x(i);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"##,
            g.top,
            g.bottom,
            g.bottom + 22.0,
            xml(&fit(c.name(), g.gap.min(160.0), 12.0))
        );
        for (f, label) in c.ticks() {
            let y = g.y(f);
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{x:.1}" y2="{y:.1}" stroke="#333"/><text x="{:.1}" y="{:.1}" font-size="11" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"##,
                x - 4.0,
                x + 4.0,
                y + 4.0,
                xml(&fit(&label, g.gap - 12.0, 11.0))
            );
        }
    }
}
