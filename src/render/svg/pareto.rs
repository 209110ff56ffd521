//! Two objectives against each other (the first two unless picked): every succeeded
//! trial a dot, the feasible Pareto front (over all objectives) in red and joined in
//! the order of the x objective, infeasible trials as grey crosses. The axes span the
//! feasible trials, so an infeasible outlier does not squash the front into a corner:
//! those beyond them are pinned to the edge and counted in the legend.

use std::fmt::Write as _;

use kale_search::Direction;

use super::axis::{linear_axis, near};
use super::draw::{BLUE, Frame, GREY, Mark, RED, empty, legend, open, title, trial_tip, xml};
use super::{Options, Target, front_numbers};
use crate::format::num;
use crate::store::{Experiment, TrialRow, TrialStatus};

pub fn pareto(e: &Experiment, trials: &[TrialRow], opts: &Options) -> String {
    let (w, h) = (opts.width_or(820.0), 520.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "pareto");
    let objectives = &e.spec.objectives;
    if objectives.len() < 2 {
        title(&mut svg, &format!("{} — Pareto front", e.spec.name), w);
        return empty(
            &mut svg,
            w,
            h,
            "one objective: a Pareto plot needs two (tune with --objective A --objective B)",
        );
    }
    let (tx, ty) = pair(e, opts);
    let shown = if objectives.len() > 2 {
        format!(
            " ({} and {} of {} objectives)",
            tx.name,
            ty.name,
            objectives.len()
        )
    } else {
        String::new()
    };
    title(
        &mut svg,
        &format!("{} — Pareto front{shown}", e.spec.name),
        w,
    );
    let ok: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| {
            t.status == TrialStatus::Succeeded && tx.value(t).is_some() && ty.value(t).is_some()
        })
        .collect();
    let xs = axis_values(&ok, &tx);
    let ys = axis_values(&ok, &ty);
    let y_legend = 44.0;
    let frame = Frame {
        left: 80.0,
        top: y_legend + 26.0,
        right: w - 30.0,
        bottom: h - 58.0,
        x: linear_axis(&xs, 6).zoomed(opts.x_range),
        y: linear_axis(&ys, 6).zoomed(opts.y_range),
        under: 0.0,
    };
    let front = front_numbers(e, trials);
    let pinned = ok
        .iter()
        .filter(|t| {
            !frame.holds(
                frame.px(tx.value(t).unwrap()),
                frame.py(ty.value(t).unwrap()),
            )
        })
        .count();
    let mut items = vec![
        (
            Mark::Dot(RED),
            "Pareto front (feasible, non-dominated)".to_string(),
        ),
        (Mark::Dot(BLUE), "other trials".into()),
        (Mark::Cross(GREY), "infeasible (breaks a constraint)".into()),
    ];
    if pinned > 0 {
        items.push((
            Mark::Triangle(GREY),
            format!("{pinned} beyond the axes, shown at their edge"),
        ));
    }
    legend(&mut svg, &items, w, y_legend);
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    frame.draw(&mut svg, "pareto", &axis_label(&tx), &axis_label(&ty));
    front_line(&mut svg, &frame, &ok, &front, (&tx, &ty));
    let names: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
    for t in &ok {
        point(
            &mut svg,
            &frame,
            t,
            front.contains(&t.number),
            (&tx, &ty),
            &names,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The values an axis spans: the feasible trials', and the infeasible ones near them.
fn axis_values(ok: &[&TrialRow], target: &Target) -> Vec<f64> {
    let (feasible, infeasible): (Vec<&&TrialRow>, Vec<&&TrialRow>) =
        ok.iter().partition(|t| t.is_feasible());
    let values = |list: Vec<&&TrialRow>| -> Vec<f64> {
        list.iter().filter_map(|t| target.value(t)).collect()
    };
    near(&values(feasible), &values(infeasible))
}

/// The objectives on the x and y axes.
fn pair(e: &Experiment, opts: &Options) -> (Target, Target) {
    let tx = Target::of(e, opts.objective.as_deref());
    let second = opts
        .objective2
        .as_deref()
        .filter(|n| *n != tx.name && e.spec.objectives.iter().any(|o| o.name == *n))
        .map(str::to_string)
        .or_else(|| {
            e.spec
                .objectives
                .iter()
                .find(|o| o.name != tx.name)
                .map(|o| o.name.clone())
        });
    let ty = Target::of(e, second.as_deref());
    (tx, ty)
}

fn axis_label(t: &Target) -> String {
    format!(
        "{} ({}{})",
        t.name,
        t.direction.as_str(),
        match t.direction {
            Direction::Maximize => ", higher is better",
            Direction::Minimize => ", lower is better",
        }
    )
}

/// The front joined along the x axis: the boundary of what the search has shown to
/// be reachable.
fn front_line(
    svg: &mut String,
    f: &Frame,
    ok: &[&TrialRow],
    front: &[i64],
    (tx, ty): (&Target, &Target),
) {
    let mut on: Vec<(f64, f64)> = ok
        .iter()
        .filter(|t| front.contains(&t.number))
        .map(|t| (tx.value(t).unwrap(), ty.value(t).unwrap()))
        .collect();
    on.sort_by(|a, b| a.0.total_cmp(&b.0));
    if on.len() < 2 {
        return;
    }
    let d: String = on
        .iter()
        .enumerate()
        .map(|(i, (x, y))| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { "L" },
                f.px(*x),
                f.py(*y)
            )
        })
        .collect();
    let _ = writeln!(
        svg,
        r#"<path class="front-line" d="{d}" fill="none" stroke="{RED}" stroke-width="1.5" stroke-opacity="0.7" clip-path="url(#clip-pareto)" pointer-events="none"/>"#
    );
}

fn point(
    svg: &mut String,
    f: &Frame,
    t: &TrialRow,
    on_front: bool,
    (tx, ty): (&Target, &Target),
    names: &[&str],
) {
    let tip = trial_tip(&[
        format!("trial {}", t.number),
        names
            .iter()
            .zip(&t.values)
            .map(|(n, v)| format!("{n}={}", num(*v)))
            .collect::<Vec<_>>()
            .join(" "),
        if t.is_feasible() {
            String::new()
        } else {
            "infeasible".into()
        },
        crate::tune::params_text(&t.params),
    ]);
    let (x, y) = (f.px(tx.value(t).unwrap()), f.py(ty.value(t).unwrap()));
    let (cx, cy) = (x.clamp(f.left, f.right), y.clamp(f.top, f.bottom));
    let n = t.number;
    let tip = xml(&tip);
    if !f.holds(x, y) {
        // Beyond the axes: a triangle at the edge, still classed infeasible if it is.
        let class = if t.is_feasible() {
            "pinned"
        } else {
            "infeasible"
        };
        let _ = writeln!(
            svg,
            r#"<path class="{class}" data-trial="{n}" data-pinned="1" d="M{cx:.1},{:.1}l4,7h-8z" fill="{GREY}"><title>{tip}</title></path>"#,
            cy - 3.5
        );
    } else if !t.is_feasible() {
        let _ = writeln!(
            svg,
            r#"<path class="infeasible" data-trial="{n}" d="M{:.1},{:.1}l7,7m0,-7l-7,7" stroke="{GREY}" stroke-width="1.6"><title>{tip}</title></path>"#,
            x - 3.5,
            y - 3.5,
        );
    } else if on_front {
        let _ = writeln!(
            svg,
            r#"<circle class="front" data-trial="{n}" cx="{x:.1}" cy="{y:.1}" r="5" fill="{RED}"><title>{tip}</title></circle>"#
        );
    } else {
        let _ = writeln!(
            svg,
            r#"<circle class="trial" data-trial="{n}" cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{BLUE}" fill-opacity="0.6"><title>{tip}</title></circle>"#
        );
    }
}
