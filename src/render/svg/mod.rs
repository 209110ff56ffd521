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

use crate::query;
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

    /// The kind's word: `--kind`'s value, the dashboard's `kind=`, the file names.
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

/// `--kind`, with [`Kind::name`]'s words.
impl clap::ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Kind] {
        &Kind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
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
                direction: query::direction(e),
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
            query::importance_for(e, trials, target.index).as_deref(),
            opts,
        ),
        Kind::Parallel => parallel::parallel(e, trials, &target, opts),
        Kind::Slice => slice::slice(e, trials, &target, opts),
        Kind::Contour => {
            let imp = query::importance_for(e, trials, target.index);
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
    crate::query::pareto_front(trials, &e.spec.objectives)
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
    crate::query::best_trial(trials, target.direction).map(|b| b.number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Bound, Constraint, ExperimentStatus, NewExperiment, Objective};
    use serde_json::json;

    fn experiment(objectives: &[(&str, Direction)], constrained: bool) -> Experiment {
        let objectives: Vec<Objective> = objectives
            .iter()
            .map(|(n, d)| Objective {
                name: n.to_string(),
                direction: *d,
            })
            .collect();
        Experiment {
            id: 1,
            spec: NewExperiment {
                name: "e".into(),
                notebook: "nb.ipynb".into(),
                notebook_hash: "h".into(),
                objective: objectives[0].name.clone(),
                direction: objectives[0].direction,
                objectives,
                constraints: if constrained {
                    vec![Constraint {
                        metric: "kb".into(),
                        bound: Bound::AtMost,
                        value: 50.0,
                    }]
                } else {
                    Vec::new()
                },
                goal: None,
                algorithm: "random".into(),
                settings: json!([]),
                space: json!([{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "10"}}]),
                max_trials: 10,
                parallel: 2,
                max_failed: 10,
                early_stopping: None,
            },
            status: ExperimentStatus::Succeeded,
            reason: None,
            created_at: 0.0,
            updated_at: 0.0,
            wall_seconds: 1.0,
            owner_pid: None,
            session_started_at: None,
        }
    }

    fn trial(number: i64, values: &[f64], violation: f64) -> TrialRow {
        TrialRow {
            experiment_id: 1,
            number,
            params: json!({"x": number as f64}),
            status: TrialStatus::Succeeded,
            value: values.first().copied(),
            values: values.to_vec(),
            constraints: vec![violation],
            metrics: json!({}),
            intermediate: vec![values[0] / 2.0, values[0]],
            started_at: number as f64,
            finished_at: Some(number as f64 + 1.0),
            seconds: Some(1.0),
            cache_hits: 0,
            cache_misses: 0,
            error: None,
            run_dir: None,
        }
    }

    /// The numbers after `data-trial="` in marks of `class`.
    fn marked(svg: &str, class: &str) -> Vec<i64> {
        svg.split(&format!("class=\"{class}\" data-trial=\""))
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn an_infeasible_outlier_does_not_squash_the_pareto_front() {
        let e = experiment(
            &[("acc", Direction::Maximize), ("kb", Direction::Minimize)],
            true,
        );
        let mut trials: Vec<TrialRow> = (0..6)
            .map(|i| trial(i, &[0.8 + 0.02 * i as f64, 10.0 + 5.0 * i as f64], -1.0))
            .collect();
        trials.push(trial(6, &[0.85, 100_000.0], 99_950.0));
        let svg = render(Kind::Pareto, &e, &trials, &Options::default());
        let hi = zoom_area_y_max(&svg);
        assert!(hi < 100.0, "the y axis reaches {hi}");
        assert_eq!(marked(&svg, "infeasible"), [6]);
        assert!(svg.contains("1 beyond the axes"));
    }

    /// The upper end of the y range a plot's zoomable area declares (`data-y="lo hi"`).
    fn zoom_area_y_max(svg: &str) -> f64 {
        let frame = svg.split("class=\"zoom-area\"").nth(1).unwrap();
        frame
            .split("data-y=\"")
            .nth(1)
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn with_several_objectives_the_plots_say_which_and_highlight_the_front() {
        let e = experiment(
            &[("acc", Direction::Maximize), ("kb", Direction::Minimize)],
            false,
        );
        let trials: Vec<TrialRow> = (0..5)
            .map(|i| trial(i, &[0.8 + 0.02 * i as f64, 10.0 + 5.0 * i as f64], -1.0))
            .collect();
        let opts = Options {
            objective: Some("kb".into()),
            ..Options::default()
        };
        let history = render(Kind::History, &e, &trials, &opts);
        assert!(
            history.contains("kb (objective 2 of 2) by trial"),
            "{history}"
        );
        let parallel = render(Kind::Parallel, &e, &trials, &opts);
        assert!(parallel.contains("Pareto front (5)") && !parallel.contains("best trial"));
    }

    #[test]
    fn infeasible_trials_are_marked_and_never_the_best_so_far() {
        let e = experiment(&[("acc", Direction::Maximize)], true);
        let trials = vec![
            trial(0, &[0.5], -1.0),
            trial(1, &[0.99], 3.0),
            trial(2, &[0.6], -1.0),
        ];
        let history = render(Kind::History, &e, &trials, &Options::default());
        assert!(history.contains("infeasible (1, breaks a constraint)"));
        // The best line steps to 0.6 at trial 2, never to 0.99.
        let hi = zoom_area_y_max(&history);
        assert!(hi < 0.99, "the axis spans the feasible values: {hi}");
        let timeline = render(Kind::Timeline, &e, &trials, &Options::default());
        assert!(
            timeline.contains("infeasible (1)")
                && timeline.matches("<rect class=\"trial ").count() == 3
        );
        let inter = render(Kind::Intermediate, &e, &trials, &Options::default());
        assert_eq!(inter.matches("<g class=\"trial\"").count(), 3);
    }
}
