//! Experiment plots as SVG (and PNG through resvg). `kale experiments plot` writes
//! them and the dashboard serves the same drawings, so a plot looks the same in a file
//! and in the browser; the dashboard's script adds the interaction (tooltips from each
//! mark's `<title>`, click-through from its `data-trial`, zoom and pan by asking for
//! the plot again with `x=`/`y=` ranges read off the root's `data-area`/`data-x`/`data-y`).
//!
//! What makes them readable: tick values from 1-2-5 steps, axes spanning the data
//! (never past 0 or 1 for data inside [0, 1]), a log scale on request, outliers on
//! the losing side pinned to the axis edge instead of squashing the interesting band,
//! failed, early-stopped and infeasible trials drawn with their own marks, and a legend
//! laid out in rows that fit the width under a title cut to fit.
//!
//! One module per kind of plot; [`axis`] (scales and ticks) and [`draw`] (SVG
//! pieces: marks, legends, frames) are what they share.

pub mod axis;
mod contour;
pub mod draw;
mod edf;
mod file;
mod history;
mod importance;
mod intermediate;
mod parallel;
mod pareto;
mod slice;
mod timeline;

pub use contour::contour_with;
pub use draw::xml;
pub use edf::{EdfSeries, edf};
pub use file::{format_of, to_png, write};
pub use history::{Series, history};
pub use importance::importance;

use kale_search::Direction;

use crate::report;
use crate::store::{Experiment, TrialRow, TrialStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    History,
    Importance,
    Parallel,
    Slice,
    Contour,
    /// Two objectives against each other, the Pareto front highlighted.
    Pareto,
    /// The empirical distribution of the objective (several experiments overlaid).
    Edf,
    /// When each trial ran, for how long, and how it ended.
    Timeline,
    /// Every trial's intermediate values, the curves early stopping acts on.
    Intermediate,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::History,
        Kind::Importance,
        Kind::Parallel,
        Kind::Slice,
        Kind::Contour,
        Kind::Pareto,
        Kind::Edf,
        Kind::Timeline,
        Kind::Intermediate,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::History => "history",
            Kind::Importance => "importance",
            Kind::Parallel => "parallel",
            Kind::Slice => "slice",
            Kind::Contour => "contour",
            Kind::Pareto => "pareto",
            Kind::Edf => "edf",
            Kind::Timeline => "timeline",
            Kind::Intermediate => "intermediate",
        }
    }

    /// Whether the plot has x/y axes a viewer can zoom into (`Options::x_range`).
    pub fn zooms(self) -> bool {
        matches!(
            self,
            Kind::History | Kind::Pareto | Kind::Edf | Kind::Timeline | Kind::Intermediate
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Objective axis in log scale (ignored unless every value is positive).
    pub log_y: bool,
    /// Width in pixels (the dashboard draws at the page's width); `None`: the plot's own.
    pub width: Option<f64>,
    /// The objective shown, by name; `None` (or a name the experiment lacks): the first.
    pub objective: Option<String>,
    /// The Pareto plot's second objective; `None`: the first one after `objective`.
    pub objective2: Option<String>,
    /// Parameters shown by slice and parallel plots, the contour's two axes; empty:
    /// every parameter (the contour: the two most important).
    pub params: Vec<String>,
    /// A zoomed view: the data range of each axis.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

impl Options {
    pub fn log(log_y: bool) -> Options {
        Options {
            log_y,
            ..Options::default()
        }
    }

    /// The width to draw at: the plot's `default`, or the one asked for within reason.
    fn width_or(&self, default: f64) -> f64 {
        self.width.map_or(default, |w| w.clamp(480.0, 2800.0))
    }
}

/// Which objective a plot shows, and how to read it from a trial.
#[derive(Clone, Debug)]
pub struct Target {
    pub index: usize,
    pub name: String,
    pub direction: Direction,
    /// The experiment has several objectives (the plot says which one it shows).
    pub multi: bool,
}

impl Target {
    /// The objective `name` (the first when `None` or unknown).
    pub fn of(e: &Experiment, name: Option<&str>) -> Target {
        let index = name
            .and_then(|n| e.spec.objectives.iter().position(|o| o.name == n))
            .unwrap_or(0);
        match e.spec.objectives.get(index) {
            Some(o) => Target {
                index,
                name: o.name.clone(),
                direction: o.direction,
                multi: e.spec.objectives.len() > 1,
            },
            None => Target {
                index: 0,
                name: e.spec.objective.clone(),
                direction: report::direction(e),
                multi: false,
            },
        }
    }

    /// A trial's value of this objective: a succeeded trial's, or (first objective)
    /// an early-stopped one's last report.
    pub fn value(&self, t: &TrialRow) -> Option<f64> {
        let v = if self.index == 0 {
            t.value
        } else if t.status == TrialStatus::Succeeded {
            t.values.get(self.index).copied()
        } else {
            None
        };
        v.filter(|v| v.is_finite())
    }

    /// The best feasible succeeded trial on this objective alone, with its value
    /// (the earliest among ties).
    pub fn best<'a>(&self, trials: &'a [TrialRow]) -> Option<(&'a TrialRow, f64)> {
        trials
            .iter()
            .filter(|t| t.status == TrialStatus::Succeeded && t.is_feasible())
            .filter_map(|t| Some((t, self.value(t)?)))
            .fold(None, |best, (t, v)| match best {
                Some((b, bv)) if !self.direction.better(v, bv) => Some((b, bv)),
                _ => Some((t, v)),
            })
    }

    /// `accuracy`, or `accuracy (objective 1 of 2)` when there are several.
    pub fn label(&self, count: usize) -> String {
        if self.multi {
            format!("{} (objective {} of {count})", self.name, self.index + 1)
        } else {
            self.name.clone()
        }
    }
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
pub fn render(kind: Kind, e: &Experiment, trials: &[TrialRow], opts: &Options) -> String {
    let target = Target::of(e, opts.objective.as_deref());
    match kind {
        Kind::History => history(
            &e.spec.name,
            &target.label(e.spec.objectives.len()),
            &[Series::of(e, trials, &target)],
            opts,
        ),
        Kind::Importance => importance(
            &e.spec.name,
            &target.label(e.spec.objectives.len()),
            report::importance_for(e, trials, target.index).as_deref(),
            opts,
        ),
        Kind::Parallel => parallel::parallel(e, trials, &target, opts),
        Kind::Slice => slice::slice(e, trials, &target, opts),
        Kind::Contour => {
            let imp = report::importance_for(e, trials, target.index);
            contour_with(e, trials, imp.as_deref(), opts)
        }
        Kind::Pareto => pareto::pareto(e, trials, opts),
        Kind::Edf => edf(
            &e.spec.name,
            &target.name,
            &[EdfSeries::of(e, trials, &target)],
            opts,
        ),
        Kind::Timeline => timeline::timeline(e, trials, opts),
        Kind::Intermediate => intermediate::intermediate(e, trials, opts),
    }
}

/// Succeeded trials with a finite value of `target`, feasible or not.
fn succeeded<'a>(trials: &'a [TrialRow], target: &Target) -> Vec<&'a TrialRow> {
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded && target.value(t).is_some())
        .collect()
}

/// The feasible Pareto front of a multi-objective experiment (empty with one).
fn front_numbers(e: &Experiment, trials: &[TrialRow]) -> Vec<i64> {
    if e.spec.objectives.len() < 2 {
        return Vec::new();
    }
    crate::tune::pareto_front(trials, &e.spec.objectives)
        .iter()
        .map(|t| t.number)
        .collect()
}

/// The trial a plot highlights: the best feasible one of a single objective, none
/// for an experiment with several (it has a front, not a best).
fn best_number(trials: &[TrialRow], target: &Target) -> Option<i64> {
    if target.multi {
        return None;
    }
    crate::tune::best_trial(trials, target.direction).map(|b| b.number)
}
