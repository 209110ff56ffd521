//! What a trial's finished run means for the experiment: its status, objective value,
//! metrics, cache counts and the one-line reason when it did not succeed. Pure, so
//! every case is tested without running Python.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::exec::{RunOutcome, RunStatus, StepStatus};
use crate::store::{Constraint, TrialResult, TrialStatus};

/// How a trial's run ended, as the tune loop saw it.
pub struct Ended<'a> {
    /// The run, or why kale could not run it at all.
    pub run: &'a std::io::Result<RunOutcome>,
    /// The early-stopping rule cancelled it.
    pub pruned: bool,
    /// Its intermediate objective reports, in order.
    pub intermediate: &'a [f64],
    /// Its `--trial-timeout` cancelled it.
    pub timed_out: bool,
    pub trial_timeout: Option<Duration>,
    /// Every objective's metric, in the experiment's order.
    pub objectives: &'a [String],
    pub constraints: &'a [Constraint],
}

pub fn classify(ended: &Ended) -> TrialResult {
    let outcome = match ended.run {
        Ok(outcome) => outcome,
        Err(e) => {
            return TrialResult {
                status: TrialStatus::Failed,
                value: None,
                values: Vec::new(),
                constraints: Vec::new(),
                metrics: BTreeMap::new(),
                cache_hits: 0,
                cache_misses: 0,
                error: Some(format!("kale could not run the trial: {e}")),
            };
        }
    };
    let m = &outcome.manifest;
    let cache_hits = m
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Cached)
        .count() as i64;
    let cache_misses = m
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Failed))
        .count() as i64;
    let (status, value, error) = if ended.pruned {
        (
            TrialStatus::EarlyStopped,
            ended.intermediate.last().copied(),
            Some("stopped early by the early-stopping rule".to_string()),
        )
    } else if ended.timed_out {
        (
            TrialStatus::Failed,
            None,
            Some(format!(
                "timed out after {:.0}s",
                ended.trial_timeout.map_or(0.0, |d| d.as_secs_f64())
            )),
        )
    } else if m.status == RunStatus::Interrupted {
        (
            TrialStatus::Interrupted,
            None,
            Some("interrupted".to_string()),
        )
    } else if let Some((step, err)) = &outcome.failure {
        let at = match (err.cell, err.line) {
            (Some(c), Some(l)) => format!(" at cell {c}, line {l}"),
            _ => String::new(),
        };
        (
            TrialStatus::Failed,
            None,
            Some(format!(
                "step `{step}` failed{at}: {}: {}",
                err.kind, err.message
            )),
        )
    } else {
        let mut values = Vec::new();
        let mut problem = None;
        for name in ended.objectives {
            match m.metrics.get(name).map(objective_value) {
                Some(Ok(v)) => values.push(v),
                Some(Err(why)) => {
                    problem = Some(format!("objective `{name}` {why}"));
                    break;
                }
                None => {
                    problem = Some(format!("the run reported no `{name}` metric"));
                    break;
                }
            }
        }
        match problem {
            None => (TrialStatus::Succeeded, values.first().copied(), None),
            Some(why) => (TrialStatus::Failed, None, Some(why)),
        }
    };
    let values = match status {
        TrialStatus::Succeeded => ended
            .objectives
            .iter()
            .filter_map(|n| m.metrics.get(n).and_then(|v| objective_value(v).ok()))
            .collect(),
        TrialStatus::EarlyStopped => value.into_iter().collect(),
        _ => Vec::new(),
    };
    // Constraints are evaluated for every run that reported metrics, so a failed
    // trial's record still says which bound it broke.
    let constraints = ended
        .constraints
        .iter()
        .map(|c| {
            c.evaluate(
                m.metrics
                    .get(&c.metric)
                    .and_then(|v| objective_value(v).ok()),
            )
        })
        .collect();
    TrialResult {
        status,
        value,
        values,
        constraints,
        metrics: m.metrics.clone(),
        cache_hits,
        cache_misses,
        error,
    }
}

fn objective_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| "is not a finite number".to_string()),
        Value::String(s) => Err(format!("is `{s}`, not a finite number")),
        other => Err(format!("is {other}, not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Manifest, StepError};
    use serde_json::json;

    fn run(status: &str, steps: &[&str], metrics: Value) -> std::io::Result<RunOutcome> {
        let steps: Vec<Value> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({"name": format!("s{i}"), "status": s, "seconds": null, "started_at": null,
                       "finished_at": null, "key": null, "parameters": {}, "inputs": {},
                       "outputs": [], "metrics": {}, "error": null, "exit_code": null})
            })
            .collect();
        let manifest: Manifest = serde_json::from_value(json!({
            "run_id": "r", "notebook": "nb.ipynb", "notebook_hash": "h", "pipeline": "p",
            "status": status, "started_at": 0.0, "finished_at": 1.0, "python": "python3",
            "runtime_version": "v", "parameters": {}, "metrics": metrics, "steps": steps,
        }))
        .unwrap();
        Ok(RunOutcome {
            manifest,
            run_dir: "runs/r".into(),
            failure: None,
        })
    }

    fn ended<'a>(run: &'a std::io::Result<RunOutcome>) -> Ended<'a> {
        Ended {
            run,
            pruned: false,
            intermediate: &[],
            timed_out: false,
            trial_timeout: None,
            objectives: names(&["acc"]),
            constraints: &[],
        }
    }

    fn names(n: &[&str]) -> &'static [String] {
        Box::leak(
            n.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }

    #[test]
    fn several_objectives_all_need_a_value_and_constraints_follow_optuna() {
        use crate::store::Bound;
        let constraints = [
            Constraint {
                metric: "kb".into(),
                bound: Bound::AtMost,
                value: 50.0,
            },
            Constraint {
                metric: "recall".into(),
                bound: Bound::AtLeast,
                value: 0.8,
            },
            Constraint {
                metric: "missing".into(),
                bound: Bound::AtMost,
                value: 1.0,
            },
        ];
        let r = run(
            "succeeded",
            &["succeeded"],
            json!({"acc": 0.9, "ms": 3.5, "kb": 60, "recall": 0.85}),
        );
        let mut e = ended(&r);
        e.objectives = names(&["acc", "ms"]);
        e.constraints = &constraints;
        let t = classify(&e);
        assert_eq!(t.status, TrialStatus::Succeeded);
        assert_eq!((t.value, t.values.as_slice()), (Some(0.9), &[0.9, 3.5][..]));
        // kb - 50 (violated by 10), 0.8 - recall (met), a metric never reported: NaN.
        assert!((t.constraints[0] - 10.0).abs() < 1e-12);
        assert!((t.constraints[1] + 0.05).abs() < 1e-12);
        assert!(t.constraints[2].is_nan());
        // The second objective missing fails the trial, naming it.
        e.objectives = names(&["acc", "latency"]);
        let t = classify(&e);
        assert_eq!(t.status, TrialStatus::Failed);
        assert_eq!(
            t.error.as_deref(),
            Some("the run reported no `latency` metric")
        );
        assert!(t.values.is_empty());
    }

    #[test]
    fn a_run_with_a_finite_objective_succeeds_with_its_cache_counts() {
        let r = run(
            "succeeded",
            &["cached", "succeeded"],
            json!({"acc": 0.9, "loss": 0.1}),
        );
        let t = classify(&ended(&r));
        assert_eq!(t.status, TrialStatus::Succeeded);
        assert_eq!(t.value, Some(0.9));
        assert_eq!((t.cache_hits, t.cache_misses), (1, 1));
        assert_eq!(t.metrics.len(), 2);
        assert_eq!(t.error, None);
    }

    #[test]
    fn a_missing_or_non_finite_objective_fails_the_trial_saying_which() {
        let r = run("succeeded", &["succeeded"], json!({"loss": 0.1}));
        let t = classify(&ended(&r));
        assert_eq!(t.status, TrialStatus::Failed);
        assert_eq!(t.error.as_deref(), Some("the run reported no `acc` metric"));
        let r = run("succeeded", &["succeeded"], json!({"acc": "nan"}));
        assert_eq!(
            classify(&ended(&r)).error.as_deref(),
            Some("objective `acc` is `nan`, not a finite number")
        );
    }

    #[test]
    fn a_failed_step_names_the_step_cell_and_line() {
        let mut r = run("failed", &["failed"], json!({}));
        r.as_mut().unwrap().failure = Some((
            "train".into(),
            StepError {
                kind: "ValueError".into(),
                message: "bad C".into(),
                cell: Some(4),
                line: Some(2),
                code: None,
                variable: None,
            },
        ));
        let t = classify(&ended(&r));
        assert_eq!(t.status, TrialStatus::Failed);
        assert_eq!(
            t.error.as_deref(),
            Some("step `train` failed at cell 4, line 2: ValueError: bad C")
        );
    }

    #[test]
    fn pruning_beats_timeout_beats_interruption() {
        let r = run("interrupted", &["interrupted"], json!({}));
        let mut e = ended(&r);
        e.pruned = true;
        e.timed_out = true;
        e.intermediate = &[0.5, 0.7];
        let t = classify(&e);
        assert_eq!((t.status, t.value), (TrialStatus::EarlyStopped, Some(0.7)));
        e.pruned = false;
        e.trial_timeout = Some(Duration::from_secs(30));
        let t = classify(&e);
        assert_eq!(t.status, TrialStatus::Failed);
        assert_eq!(t.error.as_deref(), Some("timed out after 30s"));
        e.timed_out = false;
        assert_eq!(classify(&e).status, TrialStatus::Interrupted);
    }

    #[test]
    fn a_run_kale_could_not_start_fails_with_the_reason() {
        let r: std::io::Result<RunOutcome> = Err(std::io::Error::other("no space left"));
        let t = classify(&ended(&r));
        assert_eq!(t.status, TrialStatus::Failed);
        assert_eq!(
            t.error.as_deref(),
            Some("kale could not run the trial: no space left")
        );
    }
}
