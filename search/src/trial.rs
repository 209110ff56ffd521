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
}

impl Trial {
    pub fn running(number: u64, params: Params) -> Self {
        Trial {
            number,
            params,
            state: TrialState::Running,
            value: None,
            intermediate_values: BTreeMap::new(),
        }
    }

    pub fn complete(number: u64, params: Params, value: f64) -> Self {
        Trial {
            number,
            params,
            state: TrialState::Complete,
            value: Some(value),
            intermediate_values: BTreeMap::new(),
        }
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
