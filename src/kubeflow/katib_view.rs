//! What kale reads off Katib's objects (pure): an Experiment's phase, counts and best
//! trial, each Trial's state, metrics and times, in the shape the live view, the
//! summary and `kale experiments list --katib` show. Tested without a cluster.

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use kale_search::Direction;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Where an Experiment is, from its latest true condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Created, no trial running yet (or no condition at all).
    Created,
    Running,
    Restarting,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Running => "running",
            Phase::Restarting => "restarting",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
        }
    }

    /// Katib will not change it again.
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// A Trial's state in kale's local names (Katib's Killed and MetricsUnavailable
/// count as failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    Pending,
    Running,
    Succeeded,
    Failed,
    EarlyStopped,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "pending",
            TrialState::Running => "running",
            TrialState::Succeeded => "succeeded",
            TrialState::Failed => "failed",
            TrialState::EarlyStopped => "early_stopped",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, TrialState::Pending | TrialState::Running)
    }
}

macro_rules! text_enum {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, so table columns (`{:<11}`) line up
                f.pad(self.as_str())
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

text_enum!(Phase);
text_enum!(TrialState);

fn condition_true<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

fn count(status: &Value, field: &str) -> u64 {
    status[field].as_u64().unwrap_or(0)
}

/// A metric's value as Katib ranks it: `min`, `max` or `latest` observation, per the
/// Experiment's metric strategy (the webhook fills the strategies in; without them Katib
/// takes max when maximizing and min when minimizing).
fn observed(metrics: &Value, name: &str, strategy: &str) -> Option<f64> {
    let m = metrics.as_array()?.iter().find(|m| m["name"] == name)?;
    let text = m[strategy].as_str().or_else(|| m["latest"].as_str())?;
    // Katib stores "unavailable" when the collector saw no value.
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The parts of an Experiment the live view, the summary and `experiments list` show.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentView {
    pub name: String,
    pub objective: String,
    pub direction: Direction,
    pub algorithm: String,
    pub max_trials: u64,
    pub parallel: u64,
    pub phase: Phase,
    /// Katib's reason for the latest condition, in kale's words where kale has them.
    pub reason: String,
    pub trials: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub early_stopped: u64,
    pub best: Option<BestTrial>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// metric name → strategy (`min`, `max`, `latest`).
    strategies: Map<String, Value>,
    /// parameter name → Katib type (`int`, `double`, `categorical`, `discrete`).
    parameter_types: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BestTrial {
    pub trial: String,
    pub params: Value,
    pub metrics: Map<String, Value>,
    pub value: Option<f64>,
}

impl ExperimentView {
    pub fn from_object(obj: &Value) -> ExperimentView {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let objective = spec["objective"]["objectiveMetricName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Katib's webhook fills the type in; an object without it reads as maximize.
        let direction = spec["objective"]["type"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(Direction::Maximize);
        let mut strategies = Map::new();
        for s in spec["objective"]["metricStrategies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(v)) = (s["name"].as_str(), s["value"].as_str()) {
                strategies.insert(n.into(), json!(v));
            }
        }
        let mut parameter_types = Map::new();
        for p in spec["parameters"].as_array().into_iter().flatten() {
            if let (Some(n), Some(t)) = (p["name"].as_str(), p["parameterType"].as_str()) {
                parameter_types.insert(n.into(), json!(t));
            }
        }
        let phase = if condition_true(obj, "Succeeded").is_some() {
            Phase::Succeeded
        } else if condition_true(obj, "Failed").is_some() {
            Phase::Failed
        } else if condition_true(obj, "Restarting").is_some() {
            Phase::Restarting
        } else if condition_true(obj, "Running").is_some() {
            Phase::Running
        } else {
            Phase::Created
        };
        let reason = ["Succeeded", "Failed", "Restarting", "Running", "Created"]
            .iter()
            .find_map(|k| condition_true(obj, k))
            .map(|c| {
                let reason = c["reason"].as_str().unwrap_or_default();
                match reason {
                    "ExperimentGoalReached" => "goal reached".to_string(),
                    "ExperimentMaxTrialsReached" => "max trials reached".to_string(),
                    "ExperimentSuggestionEndReached" => "search space exhausted".to_string(),
                    _ => c["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .unwrap_or(reason)
                        .to_string(),
                }
            })
            .unwrap_or_else(|| "waiting for Katib".into());
        let mut view = ExperimentView {
            name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
            algorithm: spec["algorithm"]["algorithmName"]
                .as_str()
                .unwrap_or_default()
                .into(),
            max_trials: spec["maxTrialCount"].as_u64().unwrap_or(0),
            parallel: spec["parallelTrialCount"].as_u64().unwrap_or(0),
            phase,
            reason,
            trials: count(status, "trials"),
            succeeded: count(status, "trialsSucceeded"),
            failed: count(status, "trialsFailed") + count(status, "trialMetricsUnavailable"),
            running: count(status, "trialsRunning"),
            early_stopped: count(status, "trialsEarlyStopped"),
            best: None,
            started: timestamp(&status["startTime"])
                .or_else(|| timestamp(&obj["metadata"]["creationTimestamp"])),
            finished: timestamp(&status["completionTime"]),
            objective,
            direction,
            strategies,
            parameter_types,
        };
        let optimal = &status["currentOptimalTrial"];
        let best_name = optimal["bestTrialName"].as_str().unwrap_or_default();
        if !best_name.is_empty() || optimal["parameterAssignments"].is_array() {
            let metrics = view.metrics(&optimal["observation"]["metrics"]);
            let value = metrics.get(&view.objective).and_then(Value::as_f64);
            // Katib reports an empty optimal trial until one has an observation.
            if value.is_some() || !best_name.is_empty() {
                view.best = Some(BestTrial {
                    trial: best_name.to_string(),
                    params: view.params(&optimal["parameterAssignments"]),
                    metrics,
                    value,
                });
            }
        }
        view
    }

    pub fn is_finished(&self) -> bool {
        self.phase.is_finished()
    }

    fn strategy(&self, metric: &str) -> &str {
        self.strategies
            .get(metric)
            .and_then(Value::as_str)
            .unwrap_or(match self.direction {
                Direction::Minimize => "min",
                Direction::Maximize => "max",
            })
    }

    /// Observed metrics as numbers, each by its strategy.
    pub fn metrics(&self, observation: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        for m in observation.as_array().into_iter().flatten() {
            let Some(name) = m["name"].as_str() else {
                continue;
            };
            if let Some(v) = observed(observation, name, self.strategy(name)) {
                out.insert(name.into(), json!(v));
            }
        }
        out
    }

    /// Katib's string assignments, with numeric parameters as numbers like local tuning
    /// reports them.
    pub fn params(&self, assignments: &Value) -> Value {
        let mut out = Map::new();
        for a in assignments.as_array().into_iter().flatten() {
            let (Some(name), Some(text)) = (a["name"].as_str(), a["value"].as_str()) else {
                continue;
            };
            let kind = self
                .parameter_types
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("");
            let v = match kind {
                "int" => text.parse::<i64>().map(|i| json!(i)).ok(),
                "double" | "discrete" => text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| json!(f)),
                _ => None,
            };
            out.insert(name.into(), v.unwrap_or_else(|| json!(text)));
        }
        Value::Object(out)
    }
}

/// One Trial as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialView {
    pub name: String,
    pub status: TrialState,
    pub params: Value,
    pub metrics: Map<String, Value>,
    pub value: Option<f64>,
    pub created: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// Why a trial failed, from its condition.
    pub message: Option<String>,
}

impl TrialView {
    pub fn from_object(obj: &Value, exp: &ExperimentView) -> TrialView {
        let status = if condition_true(obj, "Succeeded").is_some() {
            TrialState::Succeeded
        } else if condition_true(obj, "EarlyStopped").is_some() {
            TrialState::EarlyStopped
        } else if ["Failed", "Killed", "MetricsUnavailable"]
            .iter()
            .any(|k| condition_true(obj, k).is_some())
        {
            TrialState::Failed
        } else if condition_true(obj, "Running").is_some() {
            TrialState::Running
        } else {
            TrialState::Pending
        };
        let message = ["Failed", "MetricsUnavailable", "Killed"]
            .iter()
            .find_map(|k| condition_true(obj, k))
            .and_then(|c| c["message"].as_str().or(c["reason"].as_str()))
            .map(str::to_string);
        let metrics = exp.metrics(&obj["status"]["observation"]["metrics"]);
        TrialView {
            name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
            status,
            params: exp.params(&obj["spec"]["parameterAssignments"]),
            value: metrics.get(&exp.objective).and_then(Value::as_f64),
            metrics,
            created: timestamp(&obj["metadata"]["creationTimestamp"]),
            started: timestamp(&obj["status"]["startTime"]),
            finished: timestamp(&obj["status"]["completionTime"]),
            message,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// Seconds the trial ran (until now when it still runs).
    pub fn seconds(&self, now: Timestamp) -> Option<f64> {
        let start = self.started.or(self.created)?;
        let end = if self.is_finished() {
            self.finished.unwrap_or(now)
        } else {
            now
        };
        Some((end.as_millisecond() - start.as_millisecond()).max(0) as f64 / 1000.0)
    }
}

/// Trials in creation order, which numbers them 1, 2, … the way local trials are
/// numbered (Katib names them `<experiment>-<random>`).
pub fn ordered_trials(objects: &[Value], exp: &ExperimentView) -> Vec<TrialView> {
    let mut trials: Vec<TrialView> = objects
        .iter()
        .map(|o| TrialView::from_object(o, exp))
        .collect();
    trials.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    trials
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment() -> Value {
        json!({
            "metadata": {"name": "digits", "creationTimestamp": "2026-11-22T10:00:00Z"},
            "spec": {
                "objective": {"type": "maximize", "objectiveMetricName": "acc",
                              "metricStrategies": [{"name": "acc", "value": "max"}, {"name": "loss", "value": "min"}]},
                "algorithm": {"algorithmName": "random"},
                "maxTrialCount": 4, "parallelTrialCount": 2,
                "parameters": [
                    {"name": "lr", "parameterType": "double"},
                    {"name": "depth", "parameterType": "int"},
                    {"name": "act", "parameterType": "categorical"},
                ],
            },
            "status": {
                "startTime": "2026-11-22T10:00:01Z",
                "completionTime": "2026-11-22T10:05:00Z",
                "conditions": [
                    {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                    {"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                    {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                     "message": "Experiment has succeeded because max trial count has reached"},
                ],
                "trials": 4, "trialsSucceeded": 3, "trialsFailed": 1, "trialMetricsUnavailable": 0,
                "currentOptimalTrial": {
                    "bestTrialName": "digits-abcd1234",
                    "parameterAssignments": [{"name": "lr", "value": "0.01"}, {"name": "depth", "value": "3"}, {"name": "act", "value": "relu"}],
                    "observation": {"metrics": [
                        {"name": "acc", "latest": "0.9", "min": "0.8", "max": "0.95"},
                        {"name": "loss", "latest": "0.3", "min": "0.2", "max": "0.4"},
                    ]},
                },
            },
        })
    }

    #[test]
    fn experiment_status_counts_best_and_reason() {
        let v = ExperimentView::from_object(&experiment());
        assert_eq!(v.phase, "succeeded");
        assert!(v.is_finished());
        assert_eq!(v.reason, "max trials reached");
        assert_eq!((v.trials, v.succeeded, v.failed), (4, 3, 1));
        let best = v.best.unwrap();
        assert_eq!(best.trial, "digits-abcd1234");
        assert_eq!(best.params, json!({"lr": 0.01, "depth": 3, "act": "relu"}));
        // each metric by its own strategy
        assert_eq!(
            best.metrics,
            *json!({"acc": 0.95, "loss": 0.2}).as_object().unwrap()
        );
        assert_eq!(best.value, Some(0.95));
    }

    #[test]
    fn a_new_experiment_waits_and_failure_keeps_katibs_message() {
        let v = ExperimentView::from_object(&json!({"metadata": {"name": "x"}, "spec": {}}));
        assert_eq!(
            (v.phase.as_str(), v.reason.as_str()),
            ("created", "waiting for Katib")
        );
        assert!(v.best.is_none() && !v.is_finished());
        let v = ExperimentView::from_object(&json!({"metadata": {"name": "x"}, "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "ExperimentFailed",
                            "message": "Experiment has failed because max failed count has reached"}],
            "currentOptimalTrial": {"bestTrialName": "", "observation": {"metrics": null}}}}));
        assert_eq!(v.phase, "failed");
        assert_eq!(
            v.reason,
            "Experiment has failed because max failed count has reached"
        );
        assert!(v.best.is_none());
    }

    #[test]
    fn trial_states_metrics_and_order() {
        let exp = ExperimentView::from_object(&experiment());
        let t = |name: &str, created: &str, conds: Value, metrics: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "spec": {"parameterAssignments": [{"name": "lr", "value": "0.1"}]},
                   "status": {"conditions": conds, "observation": {"metrics": metrics},
                              "startTime": created}})
        };
        let objs = vec![
            t(
                "digits-b",
                "2026-11-22T10:00:02Z",
                json!([{"type": "Running", "status": "True"}]),
                Value::Null,
            ),
            t(
                "digits-a",
                "2026-11-22T10:00:01Z",
                json!([{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]),
                json!([{"name": "acc", "latest": "0.7", "min": "0.7", "max": "0.7"}]),
            ),
            t(
                "digits-c",
                "2026-11-22T10:00:03Z",
                json!([{"type": "MetricsUnavailable", "status": "True", "message": "Metrics are not available"}]),
                json!([{"name": "acc", "latest": "unavailable", "min": "unavailable", "max": "unavailable"}]),
            ),
        ];
        let trials = ordered_trials(&objs, &exp);
        let names: Vec<_> = trials.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["digits-a", "digits-b", "digits-c"]);
        assert_eq!(trials[0].status, "succeeded");
        assert_eq!(trials[0].value, Some(0.7));
        assert_eq!(trials[0].params, json!({"lr": 0.1}));
        assert_eq!(trials[1].status, "running");
        assert_eq!(trials[2].status, "failed");
        assert_eq!(trials[2].value, None);
        assert_eq!(
            trials[2].message.as_deref(),
            Some("Metrics are not available")
        );
        let now: Timestamp = "2026-11-22T10:00:12Z".parse().unwrap();
        assert_eq!(trials[1].seconds(now), Some(10.0));
    }
}
