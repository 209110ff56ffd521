//! Experiment plots as SVG (and PNG through resvg): the optimisation history (one
//! experiment or several overlaid), parameter importance, parallel coordinates and
//! slice plots. `kale experiments plot` writes them and the dashboard serves the same
//! drawings, so a plot looks the same in a file and in the browser.
//!
//! What makes them readable: tick values from 1-2-5 steps, axes spanning the data
//! (never past 0 or 1 for data inside [0, 1]), a log scale on request, outliers on
//! the losing side pinned to the axis edge instead of squashing the interesting band,
//! failed and early-stopped trials drawn with their own marks, and a legend laid out
//! in rows that fit the width under a title cut to fit.

use crate::store::TrialStatus;
use std::fmt::Write as _;
use std::path::Path;

use kale_search::Direction;
use kale_search::importance::ParamImportance;
use kale_search::space::ParameterType;
use serde_json::Value;

use crate::format::num;
use crate::report;
use crate::store::{Experiment, TrialRow};

const FONT: &str = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
const BLUE: &str = "#1f77b4";
const RED: &str = "#d62728";
const ORANGE: &str = "#ff7f0e";
const GREY: &str = "#8c8c8c";
/// Series colours of the compare plot (Tableau 10).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    History,
    Importance,
    Parallel,
    Slice,
    Contour,
    /// Two objectives against each other, the Pareto front highlighted.
    Pareto,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "history" => Kind::History,
            "importance" => Kind::Importance,
            "parallel" => Kind::Parallel,
            "slice" => Kind::Slice,
            "contour" => Kind::Contour,
            "pareto" => Kind::Pareto,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::History => "history",
            Kind::Importance => "importance",
            Kind::Parallel => "parallel",
            Kind::Slice => "slice",
            Kind::Contour => "contour",
            Kind::Pareto => "pareto",
        }
    }

    pub const ALL: [Kind; 6] = [
        Kind::History,
        Kind::Importance,
        Kind::Parallel,
        Kind::Slice,
        Kind::Contour,
        Kind::Pareto,
    ];
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Objective axis in log scale (ignored unless every value is positive).
    pub log_y: bool,
}

/// Why `kind` does not apply to the experiment (a Pareto plot of one objective), or
/// `None` when it does.
pub fn inapplicable(kind: Kind, e: &Experiment) -> Option<String> {
    (kind == Kind::Pareto && e.spec.objectives.len() < 2).then(|| {
        format!(
            "experiment `{}` has one objective (`{}`); a Pareto plot needs two or more",
            e.spec.name, e.spec.objective
        )
    })
}

/// The plot of one experiment.
pub fn render(kind: Kind, e: &Experiment, trials: &[TrialRow], opts: Options) -> String {
    match kind {
        Kind::History => history(
            &e.spec.name,
            &e.spec.objective,
            &[Series {
                name: &e.spec.name,
                direction: report::direction(e),
                trials,
            }],
            opts,
        ),
        Kind::Importance => importance(&e.spec.name, report::importance(e, trials).as_deref()),
        Kind::Parallel => parallel(e, trials, opts),
        Kind::Slice => slice(e, trials, opts),
        Kind::Contour => contour(e, trials),
        Kind::Pareto => pareto(e, trials),
    }
}

/// One experiment's trials in a history plot.
pub struct Series<'a> {
    pub name: &'a str,
    pub direction: Direction,
    pub trials: &'a [TrialRow],
}

// ---------------------------------------------------------------------------
// Axes.

/// A scale from data to [0, 1] with its tick marks.
#[derive(Clone, Debug)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Where `v` falls, 0 at `lo` and 1 at `hi` (outside for values off the axis).
    pub fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }
}

/// The 1-2-5 step nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let e = 10f64.powf(raw.log10().floor());
    let f = raw / e;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * e
}

/// Ticks at multiples of a 1-2-5 step inside [lo, hi], about `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<(f64, String)> {
    if hi.is_nan() || lo.is_nan() || hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![(lo, num(lo))];
    }
    let step = nice_step((hi - lo) / target.max(2) as f64);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // `-0.000` would be noise.
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

/// A linear axis over the data, padded a little but not across 0, and not past 1
/// when the data lie in [0, 1] (accuracies, rates).
pub fn linear_axis(values: &[f64], target: usize) -> Axis {
    let (mut lo, mut hi) = min_max(values).unwrap_or((0.0, 1.0));
    if hi - lo < 1e-12 * lo.abs().max(1.0) {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        lo -= d;
        hi += d;
    } else {
        let pad = (hi - lo) * 0.05;
        let unit = lo >= 0.0 && hi <= 1.0;
        let (l, h) = (lo - pad, hi + pad);
        lo = if lo >= 0.0 && l < 0.0 { 0.0 } else { l };
        hi = if (unit && h > 1.0) || (hi <= 0.0 && h > 0.0) {
            hi.max(if unit { 1.0 } else { 0.0 })
        } else {
            h
        };
    }
    Axis {
        lo,
        hi,
        log: false,
        ticks: nice_ticks(lo, hi, target),
    }
}

/// A log axis over positive data: ticks at powers of ten, with 2 and 5 between them
/// when the data span less than two decades.
pub fn log_axis(values: &[f64]) -> Axis {
    let (lo, hi) = min_max(values).unwrap_or((1.0, 10.0));
    let (lo, hi) = if hi / lo < 1.0 + 1e-9 {
        (lo / 2.0, hi * 2.0)
    } else {
        let pad = (hi / lo).powf(0.04);
        (lo / pad, hi * pad)
    };
    let decades = (hi / lo).log10();
    let mults: &[f64] = if decades < 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let stride = ((k1 - k0) / 8).max(1);
    for k in (k0..=k1).filter(|k| (k - k0) % stride == 0) {
        for m in mults {
            let v = m * 10f64.powi(k);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                ticks.push((v, num(v)));
            }
        }
    }
    if ticks.len() < 2 {
        // Less than a factor of 2: evenly spaced ticks read better.
        ticks = nice_ticks(lo, hi, 4);
    }
    Axis {
        lo,
        hi,
        log: true,
        ticks,
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), v| (a.min(v), b.max(v))))
}

/// Values far on the losing side (beyond 3 interquartile ranges of the quartile):
/// the axis leaves them out so the band of good values is not squashed.
fn losing_outlier_fence(values: &[f64], direction: Direction) -> Option<f64> {
    if values.len() < 8 {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    if iqr <= 0.0 {
        return None;
    }
    Some(match direction {
        Direction::Maximize => q1 - 3.0 * iqr,
        Direction::Minimize => q3 + 3.0 * iqr,
    })
}

fn is_outlier(v: f64, fence: Option<f64>, direction: Direction) -> bool {
    match (fence, direction) {
        (Some(f), Direction::Maximize) => v < f,
        (Some(f), Direction::Minimize) => v > f,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// SVG helpers.

pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Rough width of text at `size` px in a sans-serif font (average glyph ≈ 0.6 em).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// `s` cut with an ellipsis to fit `width` px.
fn fit(s: &str, width: f64, size: f64) -> String {
    let max = (width / (size * 0.6)).floor().max(1.0) as usize;
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn open(svg: &mut String, w: f64, h: f64, label: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12" role="img" aria-label="{}" data-plot="{}">"#,
        xml(label),
        xml(label)
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
}

fn title(svg: &mut String, text: &str, w: f64) {
    let _ = writeln!(
        svg,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">{}</text>"#,
        xml(&fit(text, w - 24.0, 15.0))
    );
}

/// Legend marks.
enum Mark<'a> {
    Dot(&'a str),
    Ring(&'a str),
    Cross(&'a str),
    Line(&'a str),
    Triangle(&'a str),
}

fn mark(svg: &mut String, m: &Mark, x: f64, y: f64) {
    let _ = match m {
        Mark::Dot(c) => writeln!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{c}" fill-opacity="0.8"/>"#
        ),
        Mark::Ring(c) => writeln!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="white" stroke="{c}" stroke-width="1.5"/>"#
        ),
        Mark::Cross(c) => writeln!(
            svg,
            r#"<path d="M{:.1},{:.1}l7,7m0,-7l-7,7" stroke="{c}" stroke-width="1.6"/>"#,
            x - 3.5,
            y - 3.5
        ),
        Mark::Line(c) => writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="2.5"/>"#,
            x - 8.0,
            x + 8.0
        ),
        Mark::Triangle(c) => writeln!(
            svg,
            r#"<path d="M{:.1},{:.1}l4,7h-8z" fill="{c}"/>"#,
            x,
            y - 3.5
        ),
    };
}

/// Lays the legend out in rows under the title; returns the y below it.
fn legend(svg: &mut String, items: &[(Mark, String)], w: f64, y0: f64) -> f64 {
    let (mut x, mut y) = (20.0, y0);
    for (m, label) in items {
        let label = fit(label, w - 60.0, 12.0);
        let item = 22.0 + text_width(&label, 12.0) + 18.0;
        if x > 20.0 && x + item > w - 10.0 {
            x = 20.0;
            y += 18.0;
        }
        mark(svg, m, x, y - 4.0);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{y:.1}" class="legend">{}</text>"#,
            x + 12.0,
            xml(&label)
        );
        x += item;
    }
    y + 14.0
}

/// Horizontal grid lines and tick labels of a y axis.
fn y_ticks(svg: &mut String, axis: &Axis, left: f64, right: f64, py: &dyn Fn(f64) -> f64) {
    for (v, label) in &axis.ticks {
        let y = py(*v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e6e6e6"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 4.0,
            xml(label)
        );
    }
}

fn empty(svg: &mut String, w: f64, h: f64, why: &str) -> String {
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text></svg>"##,
        w / 2.0,
        h / 2.0,
        xml(why)
    );
    std::mem::take(svg)
}

// ---------------------------------------------------------------------------
// Plots.

/// Each trial's objective by trial number and the best so far, for one or more
/// experiments (the compare plot overlays them, one colour each).
pub fn history(title_text: &str, objective: &str, series: &[Series], opts: Options) -> String {
    let (w, h) = (820.0_f64, 460.0_f64);
    let single = series.len() == 1;
    let mut svg = String::new();
    open(&mut svg, w, h, "history");
    title(&mut svg, &format!("{title_text} — {objective} by trial"), w);
    // The values that set the axis: succeeded trials, and early-stopped ones at
    // their last intermediate value.
    let plotted = |t: &TrialRow| match t.status {
        TrialStatus::Succeeded | TrialStatus::EarlyStopped => t.value.filter(|v| v.is_finite()),
        _ => None,
    };
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.trials.iter().filter_map(plotted))
        .collect();
    let direction = series.first().map_or(Direction::Maximize, |s| s.direction);
    let fence = losing_outlier_fence(&all, direction);
    let inside: Vec<f64> = all
        .iter()
        .copied()
        .filter(|v| !is_outlier(*v, fence, direction))
        .collect();
    let log = opts.log_y && !inside.is_empty() && inside.iter().all(|v| *v > 0.0);
    let axis = if log {
        log_axis(&inside)
    } else {
        linear_axis(&inside, 6)
    };
    let count = |s: TrialStatus| {
        series
            .iter()
            .flat_map(|x| x.trials.iter())
            .filter(|t| t.status == s)
            .count()
    };
    let (failed, stopped, running) = (
        count(TrialStatus::Failed),
        count(TrialStatus::EarlyStopped),
        count(TrialStatus::Running),
    );
    let outliers = all.len() - inside.len();
    let mut items: Vec<(Mark, String)> = Vec::new();
    if single {
        items.push((Mark::Dot(BLUE), "trial objective".into()));
        items.push((Mark::Line(RED), "best so far".into()));
    } else {
        for (i, s) in series.iter().enumerate() {
            items.push((Mark::Line(PALETTE[i % PALETTE.len()]), s.name.to_string()));
        }
    }
    if stopped > 0 {
        items.push((
            Mark::Ring(ORANGE),
            format!("early stopped ({stopped}, last value)"),
        ));
    }
    if failed > 0 {
        items.push((Mark::Cross(RED), format!("failed ({failed})")));
    }
    if running > 0 {
        items.push((Mark::Dot(GREY), format!("running ({running})")));
    }
    if outliers > 0 {
        let side = if direction == Direction::Maximize {
            "below"
        } else {
            "above"
        };
        items.push((
            Mark::Triangle(GREY),
            format!("{outliers} far {side} the axis, shown at its edge"),
        ));
    }
    let top = legend(&mut svg, &items, w, 44.0) + 6.0;
    if all.is_empty() && failed + running == 0 {
        return empty(&mut svg, w, h, "no finished trials yet");
    }
    let (left, right, bottom) = (72.0, 20.0, 62.0);
    let y0 = h - bottom;
    let max_x = series
        .iter()
        .flat_map(|s| s.trials.iter().map(|t| t.number))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let px = |x: f64| left + (x / max_x) * (w - left - right);
    let py = |v: f64| {
        let f = axis.frac(v).clamp(-0.01, 1.01);
        top + (1.0 - f) * (y0 - top)
    };
    y_ticks(&mut svg, &axis, left, w - right, &py);
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{y0}" x2="{}" y2="{y0}" stroke="#333"/><line x1="{left}" y1="{top:.1}" x2="{left}" y2="{y0}" stroke="#333"/>"##,
        w - right
    );
    let xstep = nice_step(max_x / 10.0).max(1.0);
    let mut x = 0.0;
    while x <= max_x + 1e-9 {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            y0 + 30.0,
            x as i64
        );
        x += xstep;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">trial</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    let mid = (top + y0) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{mid:.1}" transform="rotate(-90 16 {mid:.1})" text-anchor="middle">{}{}</text>"#,
        xml(&fit(objective, y0 - top, 12.0)),
        if log { " (log)" } else { "" }
    );
    // Clip the data to the plot area; outliers are drawn at its edge on purpose.
    let _ = writeln!(
        svg,
        r#"<defs><clipPath id="area"><rect x="{left}" y="{:.1}" width="{}" height="{:.1}"/></clipPath></defs>"#,
        top - 6.0,
        w - left - right + 6.0,
        y0 - top + 12.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = if single {
            RED
        } else {
            PALETTE[i % PALETTE.len()]
        };
        let dot = if single { BLUE } else { colour };
        // Best so far as a step line.
        let best = report::best_so_far(s.direction, s.trials);
        let mut path = String::new();
        let mut prev: Option<f64> = None;
        for (n, b) in &best {
            let (x, y) = (px(*n as f64), py(*b));
            match prev {
                None => {
                    let _ = write!(path, "M{x:.1},{y:.1}");
                }
                Some(p) => {
                    let _ = write!(path, " L{x:.1},{p:.1} L{x:.1},{y:.1}");
                }
            }
            prev = Some(y);
        }
        if let Some(p) = prev {
            // Carried on to the last trial, so a late plateau stays visible.
            let _ = write!(path, " L{:.1},{p:.1}", px(max_x));
        }
        for t in s.trials {
            let x = px(t.number as f64);
            let tip = format!(
                "{}trial {} {}{}",
                if single {
                    String::new()
                } else {
                    format!("{} ", s.name)
                },
                t.number,
                t.status,
                t.value
                    .map(|v| format!(" {objective}={}", num(v)))
                    .unwrap_or_default()
            );
            let _ = write!(
                svg,
                r#"<g class="trial trial-{}"><title>{}</title>"#,
                t.status,
                xml(&tip)
            );
            match (t.status.as_str(), plotted(t)) {
                ("succeeded", Some(v)) if is_outlier(v, fence, s.direction) => {
                    let y = if s.direction == Direction::Maximize {
                        y0 - 4.0
                    } else {
                        top + 4.0
                    };
                    mark(&mut svg, &Mark::Triangle(GREY), x, y);
                }
                ("succeeded", Some(v)) => mark(&mut svg, &Mark::Dot(dot), x, py(v)),
                ("early_stopped", Some(v)) => {
                    let y = if is_outlier(v, fence, s.direction) {
                        y0 - 4.0
                    } else {
                        py(v)
                    };
                    mark(&mut svg, &Mark::Ring(ORANGE), x, y)
                }
                ("failed", _) | ("early_stopped", None) => {
                    mark(&mut svg, &Mark::Cross(RED), x, y0 + 12.0)
                }
                ("running", _) => mark(&mut svg, &Mark::Dot(GREY), x, y0 + 12.0),
                _ => {}
            }
            svg.push_str("</g>\n");
        }
        if !path.is_empty() {
            let _ = writeln!(
                svg,
                r#"<path class="best-line" d="{path}" fill="none" stroke="{colour}" stroke-width="2.2" clip-path="url(#area)"/>"#
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Horizontal bars, most important parameter first.
pub fn importance(name: &str, imp: Result<&[ParamImportance], &String>) -> String {
    let n = imp.map_or(0, |i| i.len());
    let (w, h) = (820.0_f64, (80.0 + 30.0 * n as f64).max(160.0));
    let mut svg = String::new();
    open(&mut svg, w, h, "importance");
    title(
        &mut svg,
        &format!("{name} — parameter importance (fANOVA)"),
        w,
    );
    let imp = match imp {
        Ok(i) if !i.is_empty() => i,
        Ok(_) => return empty(&mut svg, w, h, "no parameters"),
        Err(why) => return empty(&mut svg, w, h, why),
    };
    let longest = imp
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4) as f64;
    let left = (longest * 7.5 + 24.0).clamp(80.0, 260.0);
    let right = 70.0;
    let width = w - left - right;
    for (i, p) in imp.iter().enumerate() {
        let y = 50.0 + 30.0 * i as f64;
        let bw = (p.importance * width).max(0.5);
        let _ = writeln!(
            svg,
            r#"<g class="bar"><title>{} {:.1}%</title><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left:.1}" y="{y:.1}" width="{bw:.1}" height="20" fill="{BLUE}"/><text x="{:.1}" y="{:.1}">{:.1}%</text></g>"#,
            xml(&p.name),
            100.0 * p.importance,
            left - 8.0,
            y + 14.0,
            xml(&fit(&p.name, left - 16.0, 12.0)),
            left + bw + 6.0,
            y + 14.0,
            100.0 * p.importance
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// How one parameter is laid out on an axis.
enum Scale {
    Num(Axis),
    /// Categories, evenly spaced.
    Cat(Vec<String>),
}

impl Scale {
    fn frac(&self, v: &Value) -> Option<f64> {
        match self {
            Scale::Num(a) => {
                let f = v.as_f64()?;
                (!a.log || f > 0.0).then(|| a.frac(f))
            }
            Scale::Cat(list) => {
                let s = crate::format::value_text(v);
                let i = list.iter().position(|c| *c == s)?;
                Some(if list.len() == 1 {
                    0.5
                } else {
                    i as f64 / (list.len() - 1) as f64
                })
            }
        }
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Num(a) => a
                .ticks
                .iter()
                .map(|(v, l)| (a.frac(*v), l.clone()))
                .collect(),
            Scale::Cat(list) => list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let f = if list.len() == 1 {
                        0.5
                    } else {
                        i as f64 / (list.len() - 1) as f64
                    };
                    (f, c.clone())
                })
                .collect(),
        }
    }
}

/// A parameter's type, whether it is log-distributed, and its list of values.
type SpaceInfo = (ParameterType, bool, Option<Vec<String>>);

/// The parameters of an experiment with the scale each is drawn on: the space's
/// type and distribution when the stored space reads, else what the values look like.
fn param_scales(e: &Experiment, trials: &[&TrialRow]) -> Vec<(String, Scale)> {
    let names: Vec<(String, Option<SpaceInfo>)> = match report::space(e) {
        Some(space) => space
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    Some((
                        p.parameter_type,
                        p.distribution().is_log(),
                        p.feasible_space.list.clone(),
                    )),
                )
            })
            .collect(),
        None => {
            let mut n: Vec<String> = trials
                .iter()
                .filter_map(|t| t.params.as_object())
                .flat_map(|m| m.keys().cloned())
                .collect();
            n.sort();
            n.dedup();
            n.into_iter().map(|k| (k, None)).collect()
        }
    };
    names
        .into_iter()
        .map(|(name, info)| {
            let values: Vec<&Value> = trials.iter().filter_map(|t| t.params.get(&name)).collect();
            let numeric = values.iter().all(|v| v.is_number());
            let scale = match info {
                Some((ParameterType::Categorical, _, Some(list))) => Scale::Cat(list),
                Some((ParameterType::Discrete, _, Some(list))) => Scale::Cat(
                    list.iter()
                        .map(|l| match l.trim().parse::<f64>() {
                            Ok(f) => crate::format::value_text(&serde_json::json!(f)),
                            Err(_) => l.clone(),
                        })
                        .collect(),
                ),
                _ if !numeric || values.is_empty() => {
                    let mut l: Vec<String> = values
                        .iter()
                        .map(|v| crate::format::value_text(v))
                        .collect();
                    l.sort();
                    l.dedup();
                    Scale::Cat(l)
                }
                Some((_, log, _)) => {
                    let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                    Scale::Num(if log && nums.iter().all(|v| *v > 0.0) {
                        log_axis(&nums)
                    } else {
                        linear_axis(&nums, 5)
                    })
                }
                None => {
                    let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                    Scale::Num(linear_axis(&nums, 5))
                }
            };
            (name, scale)
        })
        .collect()
}

/// A colour from light (worst) to dark (best) for a rank fraction in [0, 1].
fn ramp(f: f64) -> String {
    let f = f.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(198.0, 8.0),
        lerp(219.0, 48.0),
        lerp(239.0, 107.0)
    )
}

fn objective_axis(values: &[f64], opts: Options) -> Axis {
    if opts.log_y && !values.is_empty() && values.iter().all(|v| *v > 0.0) {
        log_axis(values)
    } else {
        linear_axis(values, 5)
    }
}

/// One vertical axis per parameter and one for the objective; a line per succeeded
/// trial, darker for better values, the best trial in red.
pub fn parallel(e: &Experiment, trials: &[TrialRow], opts: Options) -> String {
    let ok: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded && t.value.is_some_and(f64::is_finite))
        .collect();
    let scales = param_scales(e, &ok);
    let n_axes = scales.len() + 1;
    let (w, h) = ((170.0 * n_axes as f64).max(600.0), 440.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "parallel");
    title(
        &mut svg,
        &format!("{} — parallel coordinates", e.spec.name),
        w,
    );
    let top = legend(
        &mut svg,
        &[
            (Mark::Line(&ramp(1.0)), "better".into()),
            (Mark::Line(&ramp(0.0)), "worse".into()),
            (Mark::Line(RED), "best trial".into()),
        ],
        w,
        44.0,
    ) + 14.0;
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    let values: Vec<f64> = ok.iter().filter_map(|t| t.value).collect();
    let obj = objective_axis(&values, opts);
    let (bottom, margin) = (h - 40.0, 80.0);
    let gap = (w - 2.0 * margin) / (n_axes - 1).max(1) as f64;
    let ax = |i: usize| margin + gap * i as f64;
    let py = |f: f64| top + (1.0 - f) * (bottom - top);
    let direction = report::direction(e);
    let best = crate::tune::best_trial(trials, direction).map(|b| b.number);
    let mut order: Vec<&&TrialRow> = ok.iter().collect();
    // Worse first, so the better (darker) lines are drawn on top.
    order.sort_by(|a, b| {
        direction
            .loss(b.value.unwrap())
            .total_cmp(&direction.loss(a.value.unwrap()))
    });
    // Losses sorted descending (worst first): a trial's rank is how many are worse,
    // found by binary search (counting per trial is quadratic at 10 000 trials).
    let mut losses: Vec<f64> = values.iter().map(|v| direction.loss(*v)).collect();
    losses.sort_by(|a, b| b.total_cmp(a));
    let rank = |t: &TrialRow| -> f64 {
        let loss = direction.loss(t.value.unwrap());
        let worse = losses.partition_point(|x| *x > loss);
        if values.len() < 2 {
            1.0
        } else {
            worse as f64 / (values.len() - 1) as f64
        }
    };
    for t in order {
        let mut pts = Vec::new();
        for (i, (name, scale)) in scales.iter().enumerate() {
            if let Some(f) = t.params.get(name).and_then(|v| scale.frac(v)) {
                pts.push((ax(i), py(f)));
            }
        }
        pts.push((ax(n_axes - 1), py(obj.frac(t.value.unwrap()))));
        let d: String = pts
            .iter()
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" }))
            .collect();
        let is_best = Some(t.number) == best;
        let _ = writeln!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="0.85"><title>trial {} {}={} {}</title></path>"#,
            if is_best {
                RED.to_string()
            } else {
                ramp(rank(t))
            },
            if is_best { 3.0 } else { 1.3 },
            t.number,
            xml(&e.spec.objective),
            num(t.value.unwrap()),
            xml(&crate::tune::params_text(&t.params))
        );
    }
    let axes: Vec<(String, Vec<(f64, String)>)> = scales
        .iter()
        .map(|(n, s)| (n.clone(), s.ticks()))
        .chain([(
            e.spec.objective.clone(),
            obj.ticks
                .iter()
                .map(|(v, l)| (obj.frac(*v), l.clone()))
                .collect(),
        )])
        .collect();
    for (i, (name, ticks)) in axes.iter().enumerate() {
        let x = ax(i);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"##,
            bottom + 22.0,
            xml(&fit(name, gap.min(160.0), 12.0))
        );
        for (f, label) in ticks {
            let y = py(*f);
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{x:.1}" y2="{y:.1}" stroke="#333"/><text x="{:.1}" y="{:.1}" font-size="11" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"##,
                x - 4.0,
                x + 4.0,
                y + 4.0,
                xml(&fit(label, gap - 12.0, 11.0))
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// One panel per parameter: its value against the objective, one dot per succeeded
/// trial, darker for later trials.
pub fn slice(e: &Experiment, trials: &[TrialRow], opts: Options) -> String {
    let ok: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded && t.value.is_some_and(f64::is_finite))
        .collect();
    let scales = param_scales(e, &ok);
    let cols = scales.len().clamp(1, 3);
    let rows = scales.len().div_ceil(cols).max(1);
    let (pw, ph) = (280.0_f64, 230.0_f64);
    let (w, h) = ((pw * cols as f64).max(600.0), 70.0 + ph * rows as f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "slice");
    title(&mut svg, &format!("{} — slice plots", e.spec.name), w);
    let _ = legend(
        &mut svg,
        &[
            (Mark::Dot(&ramp(0.0)), "early trial".into()),
            (Mark::Dot(&ramp(1.0)), "late trial".into()),
        ],
        w,
        44.0,
    );
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    let values: Vec<f64> = ok.iter().filter_map(|t| t.value).collect();
    let obj = objective_axis(&values, opts);
    let last = ok.iter().map(|t| t.number).max().unwrap_or(1).max(1) as f64;
    for (i, (name, scale)) in scales.iter().enumerate() {
        let (ox, oy) = (pw * (i % cols) as f64, 62.0 + ph * (i / cols) as f64);
        let (left, right, top, bottom) = (ox + 62.0, ox + pw - 14.0, oy + 8.0, oy + ph - 48.0);
        let py = |v: f64| top + (1.0 - obj.frac(v)) * (bottom - top);
        let px = |f: f64| left + 8.0 + f * (right - left - 16.0);
        y_ticks(&mut svg, &obj, left, right, &py);
        let _ = writeln!(
            svg,
            r##"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            right - left,
            bottom - top
        );
        for (f, label) in scale.ticks() {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                px(f),
                bottom + 15.0,
                xml(&fit(&label, 60.0, 11.0))
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}{}</text>"#,
            (left + right) / 2.0,
            bottom + 34.0,
            xml(&fit(name, right - left, 12.0)),
            if matches!(scale, Scale::Num(a) if a.log) {
                " (log)"
            } else {
                ""
            }
        );
        for t in &ok {
            if let Some(f) = t.params.get(name).and_then(|v| scale.frac(v)) {
                let v = t.value.unwrap();
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}" fill-opacity="0.85"><title>trial {} {}={} {}={}</title></circle>"#,
                    px(f),
                    py(v),
                    ramp(t.number as f64 / last),
                    t.number,
                    xml(name),
                    xml(&crate::format::value_text(&t.params[name])),
                    xml(&e.spec.objective),
                    num(v)
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The first two objectives against each other: every succeeded trial a dot,
/// infeasible ones a cross, the feasible Pareto front (over all objectives) in red
/// and joined in the order of the first objective. Each axis is
/// labelled with its objective and direction; with more than two objectives the
/// title says which two are shown.
pub fn pareto(e: &Experiment, trials: &[TrialRow]) -> String {
    let (w, h) = (820.0_f64, 520.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "pareto");
    let objectives = &e.spec.objectives;
    let shown = if objectives.len() > 2 {
        format!(" (the first two of {} objectives)", objectives.len())
    } else {
        String::new()
    };
    title(
        &mut svg,
        &format!("{} — Pareto front{shown}", e.spec.name),
        w,
    );
    let y_legend = legend(
        &mut svg,
        &[
            (
                Mark::Dot(RED),
                "Pareto front (feasible, non-dominated)".into(),
            ),
            (Mark::Dot(BLUE), "other trials".into()),
            (Mark::Cross(GREY), "infeasible (breaks a constraint)".into()),
        ],
        w,
        44.0,
    );
    if objectives.len() < 2 {
        return empty(
            &mut svg,
            w,
            h,
            "one objective: a Pareto plot needs two (tune with --objective A --objective B)",
        );
    }
    let ok: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| {
            t.status == TrialStatus::Succeeded
                && t.values.len() == objectives.len()
                && t.values.iter().all(|v| v.is_finite())
        })
        .collect();
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    let front: Vec<i64> = crate::tune::pareto_front(trials, objectives)
        .iter()
        .map(|t| t.number)
        .collect();
    let xs: Vec<f64> = ok.iter().map(|t| t.values[0]).collect();
    let ys: Vec<f64> = ok.iter().map(|t| t.values[1]).collect();
    let (ax, ay) = (linear_axis(&xs, 6), linear_axis(&ys, 6));
    let (left, right, top, bottom) = (80.0, w - 30.0, y_legend + 6.0, h - 58.0);
    let px = |v: f64| left + ax.frac(v) * (right - left);
    let py = |v: f64| bottom - ay.frac(v) * (bottom - top);
    y_ticks(&mut svg, &ay, left, right, &py);
    for (v, label) in &ax.ticks {
        let x = px(*v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#f0f0f0"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 16.0,
            xml(label)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        right - left,
        bottom - top
    );
    let axis_label = |o: &crate::store::Objective| {
        format!(
            "{} ({}{})",
            o.name,
            crate::store::direction_text(o.direction),
            match o.direction {
                Direction::Maximize => ", higher is better",
                Direction::Minimize => ", lower is better",
            }
        )
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" class="x-label">{}</text>"#,
        (left + right) / 2.0,
        h - 18.0,
        xml(&axis_label(&objectives[0]))
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle" font-weight="bold" class="y-label">{}</text>"#,
        (top + bottom) / 2.0,
        xml(&axis_label(&objectives[1]))
    );
    // The front joined along the first axis: the boundary of what the search has
    // shown to be reachable.
    let mut on_front: Vec<&&TrialRow> = ok.iter().filter(|t| front.contains(&t.number)).collect();
    on_front.sort_by(|a, b| a.values[0].total_cmp(&b.values[0]));
    if on_front.len() > 1 {
        let mut d = String::new();
        for (i, t) in on_front.iter().enumerate() {
            let (x, y) = (px(t.values[0]), py(t.values[1]));
            if i == 0 {
                let _ = write!(d, "M{x:.1},{y:.1}");
            } else {
                let _ = write!(d, "L{x:.1},{y:.1}");
            }
        }
        let _ = writeln!(
            svg,
            r#"<path class="front-line" d="{d}" fill="none" stroke="{RED}" stroke-width="1.5" stroke-opacity="0.7"/>"#
        );
    }
    let names: Vec<&str> = objectives.iter().map(|o| o.name.as_str()).collect();
    for t in &ok {
        let (x, y) = (px(t.values[0]), py(t.values[1]));
        let tip = format!(
            "trial {} {}{} {}",
            t.number,
            names
                .iter()
                .zip(&t.values)
                .map(|(n, v)| format!("{n}={}", num(*v)))
                .collect::<Vec<_>>()
                .join(" "),
            if t.is_feasible() { "" } else { " infeasible" },
            crate::tune::params_text(&t.params)
        );
        if !t.is_feasible() {
            let _ = writeln!(
                svg,
                r#"<path class="infeasible" data-trial="{}" d="M{:.1},{:.1}l7,7m0,-7l-7,7" stroke="{GREY}" stroke-width="1.6"><title>{}</title></path>"#,
                t.number,
                x - 3.5,
                y - 3.5,
                xml(&tip)
            );
        } else if front.contains(&t.number) {
            let _ = writeln!(
                svg,
                r#"<circle class="front" data-trial="{}" cx="{x:.1}" cy="{y:.1}" r="5" fill="{RED}"><title>{}</title></circle>"#,
                t.number,
                xml(&tip)
            );
        } else {
            let _ = writeln!(
                svg,
                r#"<circle class="trial" data-trial="{}" cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{BLUE}" fill-opacity="0.6"><title>{}</title></circle>"#,
                t.number,
                xml(&tip)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The objective over the two most important parameters: each cell of a 40 × 40
/// grid coloured by the inverse-distance-weighted mean of the succeeded trials
/// (distances on the axes' scales, so log parameters in log space), with the trials
/// on top and the best one in red. An estimate, not a model: it shows where the good
/// region is, and the dots show how much data it rests on.
pub fn contour(e: &Experiment, trials: &[TrialRow]) -> String {
    contour_with(e, trials, report::importance(e, trials).as_deref())
}

/// [`contour`] with the importance already computed (the dashboard has it).
pub fn contour_with(
    e: &Experiment,
    trials: &[TrialRow],
    importance: Result<&[ParamImportance], &String>,
) -> String {
    let ok: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded && t.value.is_some_and(f64::is_finite))
        .collect();
    let (w, h) = (620.0_f64, 560.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "contour");
    let scales = param_scales(e, &ok);
    // The two parameters that matter most, in importance order (else the first two).
    let mut names: Vec<String> = match importance {
        Ok(imp) => imp.iter().map(|p| p.name.clone()).collect(),
        Err(_) => scales.iter().map(|(n, _)| n.clone()).collect(),
    };
    names.truncate(2);
    let pick = |n: &str| scales.iter().find(|(s, _)| s == n).map(|(_, sc)| sc);
    let (Some(xn), Some(yn)) = (names.first().cloned(), names.get(1).cloned()) else {
        title(&mut svg, &format!("{} — contour", e.spec.name), w);
        return empty(&mut svg, w, h, "a contour plot needs two parameters");
    };
    title(
        &mut svg,
        &format!(
            "{} — {} over {} and {}",
            e.spec.name, e.spec.objective, xn, yn
        ),
        w,
    );
    let (Some(xs), Some(ys)) = (pick(&xn), pick(&yn)) else {
        return empty(&mut svg, w, h, "parameters not in the stored space");
    };
    let points: Vec<(f64, f64, f64, i64)> = ok
        .iter()
        .filter_map(|t| {
            Some((
                xs.frac(t.params.get(&xn)?)?,
                ys.frac(t.params.get(&yn)?)?,
                t.value?,
                t.number,
            ))
        })
        .collect();
    if points.len() < 2 {
        return empty(&mut svg, w, h, "needs at least two succeeded trials");
    }
    let direction = report::direction(e);
    let (lo, hi) = min_max(&points.iter().map(|p| p.2).collect::<Vec<_>>()).unwrap();
    // Darker is better whatever the direction.
    let shade = |v: f64| {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
        ramp(if direction == Direction::Maximize {
            f
        } else {
            1.0 - f
        })
    };
    let (left, top, size) = (80.0, 60.0, 420.0);
    let cells = 40;
    let cell = size / cells as f64;
    for i in 0..cells {
        for j in 0..cells {
            let (cx, cy) = (
                (i as f64 + 0.5) / cells as f64,
                (j as f64 + 0.5) / cells as f64,
            );
            let (mut num_, mut den) = (0.0, 0.0);
            for (px, py, v, _) in &points {
                let d2 = (px - cx).powi(2) + (py - cy).powi(2) + 1e-6;
                num_ += v / d2;
                den += 1.0 / d2;
            }
            let _ = writeln!(
                svg,
                r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                left + i as f64 * cell,
                top + size - (j as f64 + 1.0) * cell,
                cell + 0.3,
                cell + 0.3,
                shade(num_ / den)
            );
        }
    }
    let best = crate::tune::best_trial(trials, direction).map(|b| b.number);
    for (px, py, v, n) in &points {
        let is_best = Some(*n) == best;
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{}" stroke="white" stroke-width="1"><title>trial {n} {}={}</title></circle>"#,
            left + px * size,
            top + (1.0 - py) * size,
            if is_best { 5.5 } else { 3.5 },
            if is_best { RED } else { "#111" },
            xml(&e.spec.objective),
            num(*v)
        );
    }
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
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"#,
        left + size / 2.0,
        top + size + 36.0,
        xml(&xn)
    );
    let mid = top + size / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{mid:.1}" transform="rotate(-90 16 {mid:.1})" text-anchor="middle" font-weight="bold">{}</text>"#,
        xml(&yn)
    );
    // Colour scale.
    let (sx, sy, sh) = (left + size + 30.0, top, size);
    for k in 0..20 {
        let f = k as f64 / 19.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{sx:.1}" y="{:.1}" width="16" height="{:.1}" fill="{}"/>"#,
            sy + (19 - k) as f64 * sh / 20.0,
            sh / 20.0 + 1.0,
            ramp(f)
        );
    }
    let (best_v, worst_v) = match direction {
        Direction::Maximize => (hi, lo),
        Direction::Minimize => (lo, hi),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
        sx + 20.0,
        sy + 10.0,
        num(best_v),
        sx + 20.0,
        sy + sh,
        num(worst_v)
    );
    svg.push_str("</svg>\n");
    svg
}

/// A trial's intermediate values (the `<objective>=<value>` lines its steps printed)
/// in report order.
pub fn intermediate(title_text: &str, objective: &str, values: &[f64]) -> String {
    let (w, h) = (820.0_f64, 300.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "intermediate");
    title(
        &mut svg,
        &format!("{title_text} — intermediate {objective}"),
        w,
    );
    if values.is_empty() {
        return empty(&mut svg, w, h, "no intermediate values");
    }
    let axis = linear_axis(values, 5);
    let (left, right, top, bottom) = (72.0, 20.0, 40.0, h - 44.0);
    let last = (values.len() - 1).max(1) as f64;
    let px = |i: f64| left + i / last * (w - left - right);
    let py = |v: f64| top + (1.0 - axis.frac(v)) * (bottom - top);
    y_ticks(&mut svg, &axis, left, w - right, &py);
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/>"##,
        w - right
    );
    let xstep = nice_step(last / 8.0).max(1.0);
    let mut x = 0.0;
    while x <= last + 1e-9 {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            bottom + 16.0,
            x as i64
        );
        x += xstep;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">report</text>"#,
        (left + w - right) / 2.0,
        h - 8.0
    );
    let d: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                px(i as f64),
                py(*v)
            )
        })
        .collect();
    let _ = writeln!(
        svg,
        r#"<path d="{d}" fill="none" stroke="{BLUE}" stroke-width="2"/>"#
    );
    for (i, v) in values.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{BLUE}"><title>report {i}: {}</title></circle>"#,
            px(i as f64),
            py(*v),
            num(*v)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------------------
// Files.

/// Renders an SVG document to PNG with the system's fonts.
pub fn to_png(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("SVG: {e}"))?;
    let size = tree.size().to_int_size();
    // Twice the size: plots are read on high-density screens.
    let scale = 2.0;
    let mut pixmap = tiny_skia::Pixmap::new(
        (size.width() as f32 * scale) as u32,
        (size.height() as f32 * scale) as u32,
    )
    .ok_or("the plot has no area")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| format!("PNG: {e}"))
}

/// The output format a file name asks for: `svg` or `png`.
pub fn format_of(path: &Path) -> Result<&'static str, String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok("svg"),
        Some("png") => Ok("png"),
        _ => Err(format!(
            "{}: the file name must end in .svg or .png (the format written)",
            path.display()
        )),
    }
}

/// Writes `svg` to `path`, as PNG when the name ends in `.png`.
pub fn write(path: &Path, svg: &str) -> Result<(), String> {
    let bytes = match format_of(path)? {
        "png" => to_png(svg)?,
        _ => svg.as_bytes().to_vec(),
    };
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        let t: Vec<String> = nice_ticks(0.057, 1.037, 5)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(t, ["0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t: Vec<String> = nice_ticks(0.981, 0.9905, 5)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(t, ["0.982", "0.984", "0.986", "0.988", "0.990"]);
        let t: Vec<f64> = nice_ticks(-3.0, 12.0, 5)
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(t, [0.0, 5.0, 10.0]);
    }

    #[test]
    fn accuracy_axis_stops_at_one_and_zero() {
        let a = linear_axis(&[0.2, 0.99, 0.5], 5);
        assert!(a.hi <= 1.0 && a.hi >= 0.99, "{a:?}");
        let a = linear_axis(&[0.01, 0.4], 5);
        assert!(a.lo >= 0.0, "{a:?}");
        // Other data get their padding.
        let a = linear_axis(&[10.0, 20.0], 5);
        assert!(a.lo < 10.0 && a.hi > 20.0);
    }

    #[test]
    fn log_axis_ticks_are_powers_of_ten() {
        let a = log_axis(&[1e-4, 0.1]);
        let labels: Vec<&str> = a.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["1e-4", "0.001", "0.01", "0.1"]);
        assert!(a.frac(1e-4) > 0.0 && a.frac(0.1) < 1.0);
    }

    #[test]
    fn a_losing_outlier_leaves_the_axis_to_the_good_band() {
        let mut v = vec![0.981, 0.983, 0.985, 0.986, 0.987, 0.988, 0.989, 0.99];
        v.push(0.10);
        let fence = losing_outlier_fence(&v, Direction::Maximize);
        assert!(is_outlier(0.10, fence, Direction::Maximize));
        assert!(!is_outlier(0.981, fence, Direction::Maximize));
        // The same value is the best one when minimising: never hidden.
        let fence = losing_outlier_fence(&v, Direction::Minimize);
        assert!(!is_outlier(0.10, fence, Direction::Minimize));
    }

    #[test]
    fn long_text_is_cut_to_fit() {
        let s = fit(&"x".repeat(200), 120.0, 12.0);
        assert!(text_width(&s, 12.0) <= 120.0);
        assert!(s.ends_with('…'));
        assert_eq!(fit("short", 120.0, 12.0), "short");
    }

    #[test]
    fn file_formats_follow_the_extension() {
        assert_eq!(format_of(Path::new("a.PNG")), Ok("png"));
        assert_eq!(format_of(Path::new("a.svg")), Ok("svg"));
        assert!(format_of(Path::new("a.pdf")).is_err());
    }
}
