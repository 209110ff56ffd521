//! The optimisation history: each trial's objective by trial number and the best so
//! far, for one experiment or several overlaid (the compare plot, one colour each).

use std::fmt::Write as _;

use kale_search::Direction;

use super::axis::{Axis, is_outlier, linear_axis, losing_outlier_fence, near, value_axis};
use super::draw::{
    BLUE, Frame, GREY, Mark, ORANGE, PALETTE, RED, empty, legend, mark, open, title, trial_tip, xml,
};
use super::{Options, Target};
use crate::format::num;
use crate::store::{Experiment, TrialRow, TrialStatus};

/// One experiment's trials in a history plot, and the objective it shows.
pub struct Series<'a> {
    pub name: &'a str,
    pub target: Target,
    pub trials: &'a [TrialRow],
}

impl<'a> Series<'a> {
    pub fn of(e: &'a Experiment, trials: &'a [TrialRow], target: &Target) -> Series<'a> {
        Series {
            name: &e.spec.name,
            target: target.clone(),
            trials,
        }
    }

    fn direction(&self) -> Direction {
        self.target.direction
    }

    /// The value a trial is drawn at: succeeded trials', early-stopped ones' last report.
    fn plotted(&self, t: &TrialRow) -> Option<f64> {
        match t.status {
            TrialStatus::Succeeded | TrialStatus::EarlyStopped => self.target.value(t),
            _ => None,
        }
    }

    /// (trial number, best feasible value so far) after each succeeded trial.
    fn best_so_far(&self) -> Vec<(i64, f64)> {
        let mut best: Option<f64> = None;
        let mut out = Vec::new();
        for t in self.trials {
            if t.status != TrialStatus::Succeeded || !t.is_feasible() {
                continue;
            }
            let Some(v) = self.target.value(t) else {
                continue;
            };
            let b = match best {
                Some(b) if !self.direction().better(v, b) => b,
                _ => v,
            };
            best = Some(b);
            out.push((t.number, b));
        }
        out
    }
}

/// Counts of the marks the legend explains.
#[derive(Default)]
struct Tally {
    failed: usize,
    stopped: usize,
    running: usize,
    infeasible: usize,
    outliers: usize,
}

pub fn history(title_text: &str, objective: &str, series: &[Series], opts: &Options) -> String {
    let (w, h) = (opts.width_or(820.0), 460.0_f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "history");
    title(&mut svg, &format!("{title_text} — {objective} by trial"), w);
    let direction = series
        .first()
        .map_or(Direction::Maximize, |s| s.direction());
    let (axis, fence, tally) = value_scale(series, opts, direction);
    let top = legend(&mut svg, &legend_items(series, &tally, direction), w, 44.0) + 6.0;
    let any = series.iter().any(|s| {
        s.trials
            .iter()
            .any(|t| t.status != TrialStatus::Interrupted)
    });
    if !any {
        return empty(&mut svg, w, h, "no finished trials yet");
    }
    let max_x = series
        .iter()
        .flat_map(|s| s.trials.iter().map(|t| t.number))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = Axis {
        lo: 0.0,
        hi: max_x,
        log: false,
        ticks: linear_axis(&[0.0, max_x], 10).ticks,
    };
    let mut x = x.zoomed(opts.x_range);
    x = x.whole_ticks();
    let frame = Frame {
        left: 72.0,
        top,
        right: w - 20.0,
        bottom: h - 72.0,
        x,
        y: axis.zoomed(opts.y_range),
        under: 20.0,
    };
    let log = if frame.y.log { " (log)" } else { "" };
    frame.draw(&mut svg, "history", "trial", &format!("{objective}{log}"));
    for (i, s) in series.iter().enumerate() {
        let colour = if series.len() == 1 {
            RED
        } else {
            PALETTE[i % PALETTE.len()]
        };
        draw_series(&mut svg, &frame, s, series.len() == 1, colour, fence);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The objective axis over the feasible values, losing outliers left out, and what
/// the legend has to count.
fn value_scale(
    series: &[Series],
    opts: &Options,
    direction: Direction,
) -> (Axis, Option<f64>, Tally) {
    let feasible: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            s.trials
                .iter()
                .filter(|t| t.is_feasible())
                .filter_map(|t| s.plotted(t))
        })
        .collect();
    let fence = losing_outlier_fence(&feasible, direction);
    let inside: Vec<f64> = feasible
        .iter()
        .copied()
        .filter(|v| !is_outlier(*v, fence, direction))
        .collect();
    let infeasible: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            s.trials
                .iter()
                .filter(|t| !t.is_feasible())
                .filter_map(|t| s.plotted(t))
        })
        .collect();
    let axis = value_axis(&near(&inside, &infeasible), opts.log_y, 6);
    let all = || series.iter().flat_map(|s| s.trials.iter());
    let count = |st: TrialStatus| all().filter(|t| t.status == st).count();
    let tally = Tally {
        failed: count(TrialStatus::Failed),
        stopped: count(TrialStatus::EarlyStopped),
        running: count(TrialStatus::Running),
        infeasible: all()
            .filter(|t| t.status == TrialStatus::Succeeded && !t.is_feasible())
            .count(),
        outliers: feasible.len() - inside.len(),
    };
    (axis, fence, tally)
}

fn legend_items<'a>(
    series: &[Series],
    tally: &Tally,
    direction: Direction,
) -> Vec<(Mark<'a>, String)> {
    let mut items: Vec<(Mark, String)> = Vec::new();
    if series.len() == 1 {
        items.push((Mark::Dot(BLUE), "trial objective".into()));
        let alone = if series[0].target.multi {
            " (this objective alone)"
        } else {
            ""
        };
        items.push((Mark::Line(RED), format!("best so far{alone}")));
    } else {
        for (i, s) in series.iter().enumerate() {
            items.push((Mark::Line(PALETTE[i % PALETTE.len()]), s.name.to_string()));
        }
    }
    let mut add = |n: usize, m: Mark<'a>, text: String| {
        if n > 0 {
            items.push((m, text));
        }
    };
    add(
        tally.stopped,
        Mark::Ring(ORANGE),
        format!("early stopped ({}, last value)", tally.stopped),
    );
    add(
        tally.infeasible,
        Mark::Cross(GREY),
        format!("infeasible ({}, breaks a constraint)", tally.infeasible),
    );
    add(
        tally.failed,
        Mark::Cross(RED),
        format!("failed ({})", tally.failed),
    );
    add(
        tally.running,
        Mark::Dot(GREY),
        format!("running ({})", tally.running),
    );
    let side = if direction == Direction::Maximize {
        "below"
    } else {
        "above"
    };
    add(
        tally.outliers,
        Mark::Triangle(GREY),
        format!("{} far {side} the axis, shown at its edge", tally.outliers),
    );
    items
}

/// A series' best-so-far step line under its trials (one `<g class="trial …"
/// data-trial=N>` each, with its tooltip).
fn draw_series(
    svg: &mut String,
    f: &Frame,
    s: &Series,
    single: bool,
    colour: &str,
    fence: Option<f64>,
) {
    let dot = if single { BLUE } else { colour };
    let path = best_line(f, s);
    if !path.is_empty() {
        let _ = writeln!(
            svg,
            r#"<path class="best-line" d="{path}" fill="none" stroke="{colour}" stroke-width="2.2" clip-path="url(#clip-history)" pointer-events="none"/>"#
        );
    }
    for t in s.trials {
        let x = f.px(t.number as f64);
        if x < f.left - 1.0 || x > f.right + 1.0 {
            continue;
        }
        let Some((m, y)) = trial_mark(f, s, t, dot, fence) else {
            continue;
        };
        let tip = trial_tip(&[
            if single {
                String::new()
            } else {
                s.name.to_string()
            },
            format!("trial {}", t.number),
            t.status.to_string(),
            s.plotted(t)
                .map(|v| format!("{}={}", s.target.name, num(v)))
                .unwrap_or_default(),
            if t.is_feasible() {
                String::new()
            } else {
                "infeasible".into()
            },
            crate::tune::params_text(&t.params),
        ]);
        let _ = write!(
            svg,
            r#"<g class="trial trial-{}" data-trial="{}"{}><title>{}</title>"#,
            t.status,
            t.number,
            if single {
                String::new()
            } else {
                format!(r#" data-exp="{}""#, xml(s.name))
            },
            xml(&tip)
        );
        mark(svg, &m, x, y);
        svg.push_str("</g>\n");
    }
}

/// Where and how a trial is drawn: failed and running ones under the axis, values
/// off the axis (outliers, or outside a zoomed view) pinned to its edge.
fn trial_mark<'a>(
    f: &Frame,
    s: &Series,
    t: &TrialRow,
    dot: &'a str,
    fence: Option<f64>,
) -> Option<(Mark<'a>, f64)> {
    let under = f.bottom + 12.0;
    let losing_edge = if s.direction() == Direction::Maximize {
        f.bottom - 4.0
    } else {
        f.top + 4.0
    };
    let at = |v: f64| -> Option<f64> {
        let y = f.py(v);
        (y >= f.top - 1.0 && y <= f.bottom + 1.0).then_some(y)
    };
    let value = s.plotted(t);
    Some(match (t.status, value) {
        (TrialStatus::Succeeded, Some(v))
            if t.is_feasible() && is_outlier(v, fence, s.direction()) =>
        {
            (Mark::Triangle(GREY), losing_edge)
        }
        (TrialStatus::Succeeded, Some(v)) if t.is_feasible() => (Mark::Dot(dot), at(v)?),
        // Infeasible: a grey cross, or a triangle at the edge it lies beyond.
        (TrialStatus::Succeeded, Some(v)) => match at(v) {
            Some(y) => (Mark::Cross(GREY), y),
            None if f.py(v) < f.top => (Mark::Triangle(GREY), f.top + 4.0),
            None => (Mark::Triangle(GREY), f.bottom - 4.0),
        },
        (TrialStatus::EarlyStopped, Some(v)) => (Mark::Ring(ORANGE), at(v).unwrap_or(losing_edge)),
        (TrialStatus::Failed, _) | (TrialStatus::EarlyStopped, None) => (Mark::Cross(RED), under),
        (TrialStatus::Running, _) => (Mark::Dot(GREY), under),
        _ => return None,
    })
}

/// The best feasible value so far as a step line, carried on to the last trial so a
/// late plateau stays visible.
fn best_line(f: &Frame, s: &Series) -> String {
    let best = s.best_so_far();
    let mut path = String::new();
    let mut prev: Option<f64> = None;
    for (n, b) in &best {
        let (x, y) = (f.px(*n as f64), f.py(*b));
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
        let last = s.trials.iter().map(|t| t.number).max().unwrap_or(0) as f64;
        let _ = write!(path, " L{:.1},{p:.1}", f.px(last));
    }
    path
}
