//! When an experiment ends, and how: Katib's end conditions (goal reached, too many
//! failed trials, the budget spent) over the trials so far. Pure.

use kale_search::Direction;

use crate::store::{ExperimentStatus, TrialRow, TrialStatus};

/// The limits an experiment runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub direction: Direction,
    /// Stop once a succeeded trial's objective is at least this good.
    pub goal: Option<f64>,
    /// Fail once more than this many trials failed.
    pub max_failed: u64,
    pub max_trials: u64,
}

/// The first end condition the trials meet, with the reason shown to the user.
pub fn end_condition(trials: &[TrialRow], limits: &Limits) -> Option<(ExperimentStatus, String)> {
    let finished = trials
        .iter()
        .filter(|r| r.status.counts_toward_budget())
        .count() as u64;
    let failed = trials
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .count() as u64;
    if let Some(goal) = limits.goal
        && trials.iter().any(|r| {
            // An infeasible trial reaching the goal is not a result.
            r.status == TrialStatus::Succeeded
                && r.is_feasible()
                && r.value.is_some_and(|v| !limits.direction.better(goal, v))
        })
    {
        Some((ExperimentStatus::Succeeded, "goal reached".into()))
    } else if failed > limits.max_failed {
        Some((
            ExperimentStatus::Failed,
            format!("more than {} trials failed", limits.max_failed),
        ))
    } else if finished >= limits.max_trials {
        Some((ExperimentStatus::Succeeded, "max trials reached".into()))
    } else {
        None
    }
}

/// How a session ends once no trial is running. An experiment in which no trial
/// produced a result (none succeeded or stopped early) failed, whatever else ended it
/// (the budget spent, the space exhausted): its reason is the most common failure.
pub fn final_status(
    interrupted: bool,
    ended: Option<(ExperimentStatus, String)>,
    exhausted: bool,
    trials: &[TrialRow],
) -> (ExperimentStatus, String) {
    if interrupted {
        return (ExperimentStatus::Interrupted, "interrupted".into());
    }
    let (status, reason) = if let Some(end) = ended {
        end
    } else if exhausted {
        (ExperimentStatus::Succeeded, "search space exhausted".into())
    } else {
        (ExperimentStatus::Succeeded, "max trials reached".into())
    };
    let results = trials
        .iter()
        .any(|r| matches!(r.status, TrialStatus::Succeeded | TrialStatus::EarlyStopped));
    if status == ExperimentStatus::Succeeded && !results {
        return (ExperimentStatus::Failed, no_result_reason(trials, &reason));
    }
    (status, reason)
}

/// Why an experiment without results failed: the error most of its failed trials
/// ended with (the earliest among ties), or that no trial ran at all.
fn no_result_reason(trials: &[TrialRow], ended: &str) -> String {
    let failed: Vec<&TrialRow> = trials
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .collect();
    if failed.is_empty() {
        return format!("no trial ran ({ended})");
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in &failed {
        let error = r.error.as_deref().unwrap_or("no error recorded");
        match counts.iter_mut().find(|(e, _)| *e == error) {
            Some((_, n)) => *n += 1,
            None => counts.push((error, 1)),
        }
    }
    let (error, n) = counts
        .iter()
        .fold(counts[0], |best, c| if c.1 > best.1 { *c } else { best });
    let of = if n == failed.len() {
        format!("all {n}")
    } else {
        format!("{n} of {}", failed.len())
    };
    format!("no trial succeeded; {of} failed trials: {error}")
}

/// Trials that may start now: up to `parallel` at once, within the budget.
pub fn free_slots(trials: &[TrialRow], running: usize, parallel: usize, max_trials: u64) -> usize {
    let finished = trials
        .iter()
        .filter(|r| r.status.counts_toward_budget())
        .count();
    let budget_left = (max_trials as usize).saturating_sub(finished + running);
    parallel.saturating_sub(running).min(budget_left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: i64, status: TrialStatus, value: Option<f64>) -> TrialRow {
        TrialRow {
            experiment_id: 1,
            number,
            params: serde_json::json!({}),
            status,
            value,
            values: value.into_iter().collect(),
            constraints: Vec::new(),
            metrics: serde_json::json!({}),
            intermediate: Vec::new(),
            started_at: 0.0,
            finished_at: None,
            seconds: None,
            cache_hits: 0,
            cache_misses: 0,
            error: None,
            run_dir: None,
        }
    }

    const LIMITS: Limits = Limits {
        direction: Direction::Maximize,
        goal: Some(0.95),
        max_failed: 1,
        max_trials: 4,
    };

    #[test]
    fn the_goal_ends_the_experiment_in_the_objectives_direction() {
        let mut trials = vec![trial(0, TrialStatus::Succeeded, Some(0.9))];
        assert_eq!(end_condition(&trials, &LIMITS), None);
        trials.push(trial(1, TrialStatus::Succeeded, Some(0.95)));
        assert_eq!(
            end_condition(&trials, &LIMITS),
            Some((ExperimentStatus::Succeeded, "goal reached".into()))
        );
        let minimize = Limits {
            direction: Direction::Minimize,
            goal: Some(0.1),
            ..LIMITS
        };
        assert_eq!(end_condition(&trials, &minimize), None);
    }

    #[test]
    fn an_infeasible_trial_does_not_reach_the_goal() {
        let mut t = trial(0, TrialStatus::Succeeded, Some(0.99));
        t.constraints = vec![0.5];
        assert_eq!(end_condition(&[t.clone()], &LIMITS), None);
        // A constraint metric the run never reported is violated too.
        t.constraints = vec![f64::NAN];
        assert_eq!(end_condition(&[t.clone()], &LIMITS), None);
        t.constraints = vec![-0.5, 0.0];
        assert!(end_condition(&[t], &LIMITS).is_some());
    }

    #[test]
    fn too_many_failures_fail_it_and_interrupted_trials_do_not_count() {
        let mut trials = vec![
            trial(0, TrialStatus::Failed, None),
            trial(1, TrialStatus::Interrupted, None),
            trial(2, TrialStatus::Interrupted, None),
            trial(3, TrialStatus::Interrupted, None),
        ];
        assert_eq!(end_condition(&trials, &LIMITS), None);
        assert_eq!(free_slots(&trials, 0, 2, 4), 2);
        trials.push(trial(4, TrialStatus::Failed, None));
        assert_eq!(
            end_condition(&trials, &LIMITS),
            Some((ExperimentStatus::Failed, "more than 1 trials failed".into()))
        );
    }

    #[test]
    fn the_budget_counts_finished_and_running_trials() {
        let trials = vec![
            trial(0, TrialStatus::Succeeded, Some(0.1)),
            trial(1, TrialStatus::EarlyStopped, Some(0.2)),
            trial(2, TrialStatus::Running, None),
        ];
        assert_eq!(free_slots(&trials, 1, 4, 4), 1);
        assert_eq!(free_slots(&trials, 1, 1, 4), 0);
        let mut spent = [trials.clone(), vec![trial(3, TrialStatus::Failed, None)]].concat();
        // The running trial is not finished: three of four.
        assert_eq!(end_condition(&spent, &LIMITS), None);
        spent.push(trial(4, TrialStatus::Succeeded, Some(0.3)));
        assert_eq!(
            end_condition(&spent, &LIMITS),
            Some((ExperimentStatus::Succeeded, "max trials reached".into()))
        );
    }

    #[test]
    fn an_interrupted_session_ends_interrupted_whatever_else_happened() {
        let goal = Some((ExperimentStatus::Succeeded, "goal reached".to_string()));
        let ok = [trial(0, TrialStatus::Succeeded, Some(0.96))];
        assert_eq!(
            final_status(true, goal.clone(), true, &ok).0,
            ExperimentStatus::Interrupted
        );
        assert_eq!(final_status(false, goal, true, &ok).1, "goal reached");
        assert_eq!(
            final_status(false, None, true, &ok).1,
            "search space exhausted"
        );
        assert_eq!(
            final_status(false, None, false, &ok).1,
            "max trials reached"
        );
    }

    #[test]
    fn without_a_result_the_experiment_failed_with_the_most_common_failure() {
        let failed = |n, error: &str| TrialRow {
            error: Some(error.into()),
            ..trial(n, TrialStatus::Failed, None)
        };
        let trials = [
            failed(0, "step `train` failed: MemoryError"),
            failed(1, "ModuleNotFoundError: No module named 'numpy'"),
            failed(2, "ModuleNotFoundError: No module named 'numpy'"),
            trial(3, TrialStatus::Interrupted, None),
        ];
        let (status, reason) = final_status(false, None, false, &trials);
        assert_eq!(status, ExperimentStatus::Failed);
        assert_eq!(
            reason,
            "no trial succeeded; 2 of 3 failed trials: ModuleNotFoundError: No module named 'numpy'"
        );
        // An empty space (nothing to try) is no success either.
        let (status, reason) = final_status(false, None, true, &[]);
        assert_eq!(status, ExperimentStatus::Failed);
        assert_eq!(reason, "no trial ran (search space exhausted)");
        // A trial stopped early has a value: a result.
        let stopped = [
            trial(0, TrialStatus::EarlyStopped, Some(0.2)),
            failed(1, "x"),
        ];
        assert_eq!(
            final_status(false, None, false, &stopped).0,
            ExperimentStatus::Succeeded
        );
    }
}
