//! Questions about stored experiments and their trials, answered in one place for
//! every view (the terminal summaries and tables, the `--json` documents, the plots,
//! the dashboard) and for the tune loop itself: counts by status, the best trial, the
//! Pareto front, the best value so far, the time left, parameter importance, the search
//! space as table rows (numbers are written by [`crate::format`]).

use std::collections::HashSet;

use kale_search::importance::{FanovaOptions, ParamImportance, fanova};
use kale_search::space::{ParameterSpec, ParameterType};
use kale_search::{Direction, SearchSpace, Trial};
use serde::Serialize;

use crate::format::num;
use crate::store::{Experiment, ExperimentStatus, Objective, TrialRow, TrialStatus};

/// Trials that ended (or are) `status`.
pub fn count(trials: &[TrialRow], status: TrialStatus) -> usize {
    trials.iter().filter(|t| t.status == status).count()
}

/// Trials an experiment counts as made: all but those a stopped session interrupted
/// (a resumed session runs them again).
pub fn counted(trials: &[TrialRow]) -> usize {
    trials
        .iter()
        .filter(|t| t.status != TrialStatus::Interrupted)
        .count()
}

/// Trials that used up some of the budget (succeeded, failed or stopped early).
pub fn finished(trials: &[TrialRow]) -> usize {
    trials
        .iter()
        .filter(|t| t.status.counts_toward_budget())
        .count()
}

/// The best feasible succeeded trial of a single-objective experiment (the earliest
/// among ties).
pub fn best_trial(rows: &[TrialRow], direction: Direction) -> Option<&TrialRow> {
    rows.iter()
        .filter(|r| r.status == TrialStatus::Succeeded && r.value.is_some() && r.is_feasible())
        .fold(None, |best: Option<&TrialRow>, r| match best {
            Some(b) if !direction.better(r.value.unwrap(), b.value.unwrap()) => Some(b),
            _ => Some(r),
        })
}

/// The feasible succeeded trials no other feasible succeeded trial dominates, in
/// trial order: the results of a multi-objective experiment.
pub fn pareto_front<'a>(rows: &'a [TrialRow], objectives: &[Objective]) -> Vec<&'a TrialRow> {
    let directions: Vec<Direction> = objectives.iter().map(|o| o.direction).collect();
    let candidates: Vec<(&TrialRow, Trial)> = rows
        .iter()
        .filter(|r| r.status == TrialStatus::Succeeded && r.values.len() == objectives.len())
        .map(|r| {
            let t = Trial::complete_multi(r.number as u64, Default::default(), r.values.clone())
                .with_constraints(r.constraints.clone());
            (r, t)
        })
        .collect();
    let trials: Vec<Trial> = candidates.iter().map(|(_, t)| t.clone()).collect();
    let on_front: HashSet<u64> = kale_search::pareto::pareto_front(&trials, &directions)
        .iter()
        .map(|t| t.number)
        .collect();
    candidates
        .into_iter()
        .filter(|(r, _)| on_front.contains(&(r.number as u64)))
        .map(|(r, _)| r)
        .collect()
}

/// Seconds left at the mean finished-trial pace, while the experiment runs.
pub fn eta_seconds(e: &Experiment, trials: &[TrialRow]) -> Option<f64> {
    if e.status != ExperimentStatus::Running {
        return None;
    }
    let done: Vec<f64> = trials
        .iter()
        .filter(|t| t.status.counts_toward_budget())
        .filter_map(|t| t.seconds)
        .collect();
    if done.is_empty() {
        return None;
    }
    let mean = done.iter().sum::<f64>() / done.len() as f64;
    let left = (e.spec.max_trials - done.len() as i64).max(0) as f64;
    Some(mean * left / e.spec.parallel.max(1) as f64)
}

pub fn direction(e: &Experiment) -> Direction {
    e.spec.direction
}

/// The stored search space, if it still parses.
pub fn space(e: &Experiment) -> Option<SearchSpace> {
    serde_json::from_value(e.spec.space.clone()).ok()
}

/// fANOVA importance of each tuned parameter over the succeeded trials, most
/// important first; `Err` says why there is none (too few trials, unreadable space).
pub fn importance(e: &Experiment, trials: &[TrialRow]) -> Result<Vec<ParamImportance>, String> {
    importance_for(e, trials, 0)
}

/// [`importance`] for the objective at `index` of a multi-objective experiment (its
/// value in each succeeded trial; infeasible trials count, as in Optuna).
pub fn importance_for(
    e: &Experiment,
    trials: &[TrialRow],
    index: usize,
) -> Result<Vec<ParamImportance>, String> {
    let space = space(e).ok_or_else(|| "the stored search space is unreadable".to_string())?;
    let rows: Vec<TrialRow> = if index == 0 {
        trials.to_vec()
    } else {
        trials
            .iter()
            .map(|t| TrialRow {
                value: t.values.get(index).copied(),
                ..t.clone()
            })
            .collect()
    };
    let history: Vec<_> = crate::tune::record::history(&space, &rows, false)
        .into_iter()
        .filter(|t| t.state == kale_search::TrialState::Complete)
        .collect();
    fanova(&space, &history, &FanovaOptions::default()).map_err(|err| err.to_string())
}

/// Importance for each objective, by name, in the experiment's order.
pub fn importance_by_objective(
    e: &Experiment,
    trials: &[TrialRow],
) -> Vec<(String, Result<Vec<ParamImportance>, String>)> {
    e.spec
        .objectives
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.clone(), importance_for(e, trials, i)))
        .collect()
}

/// (trial number, best value so far) after each feasible succeeded trial.
pub fn best_so_far(direction: Direction, trials: &[TrialRow]) -> Vec<(i64, f64)> {
    let mut best: Option<f64> = None;
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded && t.is_feasible())
        .filter_map(|t| {
            let v = t.value?;
            let b = match best {
                Some(b) if !direction.better(v, b) => b,
                _ => v,
            };
            best = Some(b);
            Some((t.number, b))
        })
        .collect()
}

/// One row of the search-space table.
#[derive(Clone, Debug, Serialize)]
pub struct SpaceRow {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `min..max`, or the list of values.
    pub values: String,
    pub step: Option<String>,
    pub distribution: String,
}

pub fn space_rows(e: &Experiment) -> Vec<SpaceRow> {
    let Some(space) = space(e) else {
        return Vec::new();
    };
    space.parameters().iter().map(space_row).collect()
}

fn space_row(p: &ParameterSpec) -> SpaceRow {
    let fs = &p.feasible_space;
    let kind = match p.parameter_type {
        ParameterType::Int => "int",
        ParameterType::Double => "double",
        ParameterType::Categorical => "categorical",
        ParameterType::Discrete => "discrete",
    };
    let values = match (&fs.list, fs.min, fs.max) {
        (Some(list), _, _) => list.join(", "),
        (None, Some(lo), Some(hi)) => format!("{}..{}", num(lo), num(hi)),
        _ => "-".into(),
    };
    let distribution = match p.parameter_type {
        ParameterType::Categorical | ParameterType::Discrete => "-".to_string(),
        _ => match p.distribution() {
            kale_search::Distribution::Uniform => "uniform",
            kale_search::Distribution::LogUniform => "log-uniform",
            kale_search::Distribution::Normal => "normal",
            kale_search::Distribution::LogNormal => "log-normal",
        }
        .to_string(),
    };
    SpaceRow {
        name: p.name.clone(),
        kind: kind.into(),
        values,
        step: fs.step.map(num),
        distribution,
    }
}
