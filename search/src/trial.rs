//! Read-only trial snapshots that samplers and stopping rules look at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::space::Params;

/// Lifecycle of a trial. Only `Running` can change; the other states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrialState {
    Running,
    Complete,
    /// Stopped early by a stopping rule (Katib's `EarlyStopped`).
    Pruned,
    Failed,
}

impl TrialState {
    pub fn is_finished(self) -> bool {
        self != TrialState::Running
    }
}

/// Katib's `objective.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    /// The value turned into a loss (smaller is better), which is what every
    /// sampler works with internally.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.loss(a) < self.loss(b)
    }

    /// Katib's word for it (`objective.type`), which is also how kale writes and
    /// stores it: `minimize` or `maximize`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }

    pub const ALL: [Direction; 2] = [Direction::Maximize, Direction::Minimize];

    /// A direction a person typed: [`Direction::as_str`]'s words, or their
    /// abbreviations `max` and `min`.
    pub fn from_flag(text: &str) -> Option<Direction> {
        match text {
            "max" => Some(Direction::Maximize),
            "min" => Some(Direction::Minimize),
            word => word.parse().ok(),
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// [`Direction::as_str`]'s words, exactly.
impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(text: &str) -> Result<Direction, String> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a direction (`maximize` or `minimize`)"))
    }
}

/// Snapshot of one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// Position in the study, from 0; samplers use it to cache per-trial work.
    pub number: u64,
    pub params: Params,
    pub state: TrialState,
    /// Objective value, set for `Complete` trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Reported intermediate values by step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intermediate_values: BTreeMap<u64, f64>,
    /// Objective values of a `Complete` trial of a study with several
    /// objectives, in the order of the study's directions (`value` stays
    /// `None` there). Empty in single-objective studies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    /// Constraint values, Optuna's semantics: `c <= 0` is satisfied, and the
    /// trial is feasible when every one is. Empty: unconstrained (feasible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<f64>,
}

/// Total violation of constraints in the `c <= 0` form, `Σ max(0, c)`; a NaN
/// constraint (a metric that was never reported) counts as infinitely violated
/// (Optuna's semantics).
pub fn violation(constraints: &[f64]) -> f64 {
    constraints
        .iter()
        .map(|&c| {
            if c.is_nan() {
                f64::INFINITY
            } else {
                c.max(0.0)
            }
        })
        .sum()
}

impl Trial {
    pub fn running(number: u64, params: Params) -> Self {
        Trial {
            number,
            params,
            state: TrialState::Running,
            value: None,
            intermediate_values: BTreeMap::new(),
            values: Vec::new(),
            constraints: Vec::new(),
        }
    }

    pub fn complete(number: u64, params: Params, value: f64) -> Self {
        Trial {
            number,
            params,
            state: TrialState::Complete,
            value: Some(value),
            intermediate_values: BTreeMap::new(),
            values: Vec::new(),
            constraints: Vec::new(),
        }
    }

    /// A completed trial of a study with several objectives.
    pub fn complete_multi(number: u64, params: Params, values: Vec<f64>) -> Self {
        Trial {
            values,
            state: TrialState::Complete,
            ..Trial::running(number, params)
        }
    }

    /// The same trial with constraint values (`c <= 0` satisfied).
    pub fn with_constraints(mut self, constraints: Vec<f64>) -> Self {
        self.constraints = constraints;
        self
    }

    /// The objective values when the trial completed with usable (non-NaN)
    /// ones: `values` in a multi-objective study, else the single `value`.
    pub fn completed_values(&self) -> Option<&[f64]> {
        if self.state != TrialState::Complete {
            return None;
        }
        let v: &[f64] = if self.values.is_empty() {
            std::slice::from_ref(self.value.as_ref()?)
        } else {
            &self.values
        };
        (!v.iter().any(|x| x.is_nan())).then_some(v)
    }

    /// Total constraint violation ([`crate::trial::violation`]).
    pub fn violation(&self) -> f64 {
        violation(&self.constraints)
    }

    /// Whether every constraint is satisfied (`c <= 0`).
    pub fn is_feasible(&self) -> bool {
        self.violation() == 0.0
    }

    /// The objective value when the trial completed with a usable (non-NaN) one.
    pub fn completed_value(&self) -> Option<f64> {
        match (self.state, self.value) {
            (TrialState::Complete, Some(v)) if !v.is_nan() => Some(v),
            _ => None,
        }
    }

    /// The intermediate value reported at the last step.
    pub fn last_intermediate(&self) -> Option<(u64, f64)> {
        self.intermediate_values
            .iter()
            .next_back()
            .map(|(s, v)| (*s, *v))
    }
}
