//! The objective over two parameters (the two most important unless picked): each
//! cell of a 40 × 40 grid coloured by the inverse-distance-weighted mean of the
//! feasible succeeded trials (distances on the axes' scales, so log parameters in log
//! space), with the trials on top: the best (or the front) in red, infeasible ones
//! as crosses. An estimate, not a model: it shows where the good region is, and the
//! dots show how much data it rests on.

use std::fmt::Write as _;

use kale_search::Direction;
use kale_search::importance::ParamImportance;

use super::axis::{Scale, min_max, param_scales};
use super::draw::{GREY, Mark, RED, empty, fit, mark, open, ramp, title, trial_tip, xml};
use super::{Options, Target, best_number, front_numbers, succeeded};
use crate::format::num;
use crate::store::{Experiment, TrialRow};

/// A trial's place on the grid (fractions of each axis), value and number.
struct Point<'a> {
    x: f64,
    y: f64,
    value: f64,
    trial: &'a TrialRow,
}

/// The square the grid fills.
struct Square {
    left: f64,
    top: f64,
    size: f64,
}

/// With `importance` already computed (the dashboard has it).
pub fn contour_with(
    e: &Experiment,
    trials: &[TrialRow],
    importance: Result<&[ParamImportance], &String>,
    opts: &Options,
) -> String {
    let target = Target::of(e, opts.objective.as_deref());
    let ok = succeeded(trials, &target);
    let size = (opts.width_or(620.0) - 200.0).clamp(420.0, 640.0);
    let (w, h) = (size + 200.0, size + 140.0);
    let mut svg = String::new();
    open(&mut svg, w, h, "contour");
    let scales = param_scales(e, &ok, &[]);
    let names = axes_of(&scales, importance, &opts.params);
    let (Some(xn), Some(yn)) = (names.first(), names.get(1)) else {
        title(&mut svg, &format!("{} — contour", e.spec.name), w);
        return empty(&mut svg, w, h, "a contour plot needs two parameters");
    };
    title(
        &mut svg,
        &format!("{} — {} over {xn} and {yn}", e.spec.name, target.name),
        w,
    );
    let pick = |n: &str| scales.iter().find(|(s, _)| s == n).map(|(_, sc)| sc);
    let (Some(xs), Some(ys)) = (pick(xn), pick(yn)) else {
        return empty(&mut svg, w, h, "parameters not in the stored space");
    };
    let points: Vec<Point> = ok
        .iter()
        .filter_map(|t| {
            Some(Point {
                x: xs.frac(t.params.get(xn)?)?,
                y: ys.frac(t.params.get(yn)?)?,
                value: target.value(t)?,
                trial: t,
            })
        })
        .collect();
    let feasible: Vec<&Point> = points.iter().filter(|p| p.trial.is_feasible()).collect();
    if feasible.len() < 2 {
        return empty(
            &mut svg,
            w,
            h,
            "needs at least two feasible succeeded trials",
        );
    }
    let sq = Square {
        left: 80.0,
        top: 60.0,
        size,
    };
    let (lo, hi) = min_max(&feasible.iter().map(|p| p.value).collect::<Vec<_>>()).unwrap();
    grid(&mut svg, &sq, &feasible, lo, hi, target.direction);
    let highlighted: Vec<i64> = if target.multi {
        front_numbers(e, trials)
    } else {
        best_number(trials, &target).into_iter().collect()
    };
    for p in &points {
        dot(
            &mut svg,
            &sq,
            p,
            &target,
            highlighted.contains(&p.trial.number),
            (xn, yn),
        );
    }
    frame(&mut svg, &sq, (xn, xs), (yn, ys));
    colour_scale(&mut svg, &sq, lo, hi, target.direction);
    svg.push_str("</svg>\n");
    svg
}

/// The two parameters on the axes: those picked, else the two most important, else
/// the first two.
fn axes_of(
    scales: &[(String, Scale)],
    importance: Result<&[ParamImportance], &String>,
    picked: &[String],
) -> Vec<String> {
    let known = |n: &String| scales.iter().any(|(s, _)| s == n);
    let fallback: Vec<String> = match importance {
        Ok(imp) => imp.iter().map(|p| p.name.clone()).collect(),
        Err(_) => scales.iter().map(|(n, _)| n.clone()).collect(),
    };
    let mut names: Vec<String> = Vec::new();
    for n in picked.iter().filter(|n| known(n)).cloned().chain(fallback) {
        if names.len() >= 2 {
            break;
        }
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.truncate(2);
    names
}

/// Darker is better whatever the direction.
fn shade(v: f64, lo: f64, hi: f64, direction: Direction) -> String {
    let f = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
    ramp(if direction == Direction::Maximize {
        f
    } else {
        1.0 - f
    })
}

fn grid(svg: &mut String, sq: &Square, points: &[&Point], lo: f64, hi: f64, direction: Direction) {
    let cells = 40;
    let cell = sq.size / cells as f64;
    for i in 0..cells {
        for j in 0..cells {
            let (cx, cy) = (
                (i as f64 + 0.5) / cells as f64,
                (j as f64 + 0.5) / cells as f64,
            );
            let (mut sum, mut weight) = (0.0, 0.0);
            for p in points {
                let d2 = (p.x - cx).powi(2) + (p.y - cy).powi(2) + 1e-6;
                sum += p.value / d2;
                weight += 1.0 / d2;
            }
            let _ = writeln!(
                svg,
                r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                sq.left + i as f64 * cell,
                sq.top + sq.size - (j as f64 + 1.0) * cell,
                cell + 0.3,
                cell + 0.3,
                shade(sum / weight, lo, hi, direction)
            );
        }
    }
}

fn dot(
    svg: &mut String,
    sq: &Square,
    p: &Point,
    target: &Target,
    highlighted: bool,
    (xn, yn): (&str, &str),
) {
    let t = p.trial;
    let text = |n: &str| {
        t.params
            .get(n)
            .map(crate::format::value_text)
            .unwrap_or_default()
    };
    let tip = trial_tip(&[
        format!("trial {}", t.number),
        format!("{}={}", target.name, num(p.value)),
        format!("{xn}={} {yn}={}", text(xn), text(yn)),
        if t.is_feasible() {
            String::new()
        } else {
            "infeasible".into()
        },
    ]);
    let (x, y) = (sq.left + p.x * sq.size, sq.top + (1.0 - p.y) * sq.size);
    let _ = write!(
        svg,
        r#"<g class="trial" data-trial="{}"><title>{}</title>"#,
        t.number,
        xml(&tip)
    );
    if !t.is_feasible() {
        mark(svg, &Mark::Cross(GREY), x, y);
    } else {
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{}" fill="{}" stroke="white" stroke-width="1"/>"#,
            if highlighted { 5.5 } else { 3.5 },
            if highlighted { RED } else { "#111" },
        );
    }
    svg.push_str("</g>\n");
}

fn frame(svg: &mut String, sq: &Square, (xn, xs): (&str, &Scale), (yn, ys): (&str, &Scale)) {
    let Square { left, top, size } = *sq;
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#333"/>"##
    );
    for (f, label) in xs.ticks() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
            left + f * size,
            top + size + 16.0,
            xml(&fit(&label, 60.0, 11.0))
        );
    }
    for (f, label) in ys.ticks() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            left - 6.0,
            top + (1.0 - f) * size + 4.0,
            xml(&fit(&label, 70.0, 11.0))
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" class="x-label">{}</text>"#,
        left + size / 2.0,
        top + size + 36.0,
        xml(xn)
    );
    let mid = top + size / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{mid:.1}" transform="rotate(-90 16 {mid:.1})" text-anchor="middle" font-weight="bold" class="y-label">{}</text>"#,
        xml(yn)
    );
}

fn colour_scale(svg: &mut String, sq: &Square, lo: f64, hi: f64, direction: Direction) {
    let (sx, sy, sh) = (sq.left + sq.size + 30.0, sq.top, sq.size);
    for k in 0..20 {
        let _ = writeln!(
            svg,
            r#"<rect x="{sx:.1}" y="{:.1}" width="16" height="{:.1}" fill="{}"/>"#,
            sy + (19 - k) as f64 * sh / 20.0,
            sh / 20.0 + 1.0,
            ramp(k as f64 / 19.0)
        );
    }
    let (best, worst) = match direction {
        Direction::Maximize => (hi, lo),
        Direction::Minimize => (lo, hi),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
        sx + 20.0,
        sy + 10.0,
        num(best),
        sx + 20.0,
        sy + sh,
        num(worst)
    );
}
