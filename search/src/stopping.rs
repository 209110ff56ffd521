//! Early stopping over intermediate values.
//!
//! A [`StoppingRule`] looks at one running trial's reported values and at the
//! other trials, and says whether to stop it now. The driver calls it after each
//! report and marks a stopped trial `Pruned` (Katib: `EarlyStopped`).
//!
//! - [`MedianStop`] (Katib `medianstop`): Katib's settings and rule, except that
//!   the threshold is a true median (Katib's service takes the mean).
//! - [`Asha`] (`asha`): asynchronous successive halving.

use crate::trial::{Direction, Trial, TrialState};

pub trait StoppingRule: Send {
    fn name(&self) -> &'static str;

    /// Whether `trial` (running, with its latest report already recorded) should
    /// stop. `trials` is every trial of the study and may include `trial`.
    fn should_stop(&self, trial: &Trial, trials: &[Trial], direction: Direction) -> bool;
}

/// Stops a trial whose best value after `start_step` reports is worse than the
/// median, over completed trials, of the mean of their first `start_step` reports.
///
/// Settings: `min_trials_required` (completed trials needed before stopping
/// anything, default 3, > 0) and `start_step` (reports before a trial can be
/// stopped, default 4, ≥ 1).
#[derive(Debug, Clone, PartialEq)]
pub struct MedianStop {
    pub min_trials_required: usize,
    pub start_step: usize,
}

impl Default for MedianStop {
    fn default() -> Self {
        MedianStop {
            min_trials_required: 3,
            start_step: 4,
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

impl StoppingRule for MedianStop {
    fn name(&self) -> &'static str {
        "medianstop"
    }

    fn should_stop(&self, trial: &Trial, trials: &[Trial], direction: Direction) -> bool {
        let k = self.start_step.max(1);
        if trial.intermediate_values.len() < k {
            return false;
        }
        let averages: Vec<f64> = trials
            .iter()
            .filter(|t| t.number != trial.number && t.state == TrialState::Complete)
            .filter(|t| t.intermediate_values.len() >= k)
            .map(|t| t.intermediate_values.values().take(k).sum::<f64>() / k as f64)
            .collect();
        if averages.len() < self.min_trials_required.max(1) {
            return false;
        }
        let Some(threshold) = median(averages) else {
            return false;
        };
        let best = trial
            .intermediate_values
            .values()
            .copied()
            .filter(|v| !v.is_nan())
            .min_by(|a, b| direction.loss(*a).total_cmp(&direction.loss(*b)));
        match best {
            Some(b) => direction.better(threshold, b),
            // Only NaNs reported: nothing suggests the trial is going anywhere.
            None => true,
        }
    }
}

/// Asynchronous successive halving (Li et al., 2020).
///
/// Rungs sit at steps `min_resource · reduction_factor^(k + min_early_stopping_rate)`.
/// When a trial's report first reaches a rung, its value there is ranked against
/// every trial that reached the same rung; it continues only if it is in the top
/// `1 / reduction_factor` (the top one while fewer than `reduction_factor` trials
/// are there), so early trials are never stopped for lack of competition.
///
/// Settings: `min_resource` (1), `reduction_factor` (3, ≥ 2), `min_early_stopping_rate` (0).
#[derive(Debug, Clone, PartialEq)]
pub struct Asha {
    pub min_resource: u64,
    pub reduction_factor: u64,
    pub min_early_stopping_rate: u32,
}

impl Default for Asha {
    fn default() -> Self {
        Asha {
            min_resource: 1,
            reduction_factor: 3,
            min_early_stopping_rate: 0,
        }
    }
}

impl Asha {
    /// Step of rung `k`, saturating instead of overflowing.
    fn rung(&self, k: u32) -> u64 {
        let eta = self.reduction_factor.max(2);
        eta.checked_pow(k + self.min_early_stopping_rate)
            .and_then(|p| p.checked_mul(self.min_resource.max(1)))
            .unwrap_or(u64::MAX)
    }

    /// A trial's value at a rung: its first report at or after the rung's step.
    fn value_at(trial: &Trial, rung: u64) -> Option<(u64, f64)> {
        trial
            .intermediate_values
            .range(rung..)
            .next()
            .map(|(s, v)| (*s, *v))
    }
}

impl StoppingRule for Asha {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn should_stop(&self, trial: &Trial, trials: &[Trial], direction: Direction) -> bool {
        let Some((last_step, _)) = trial.last_intermediate() else {
            return false;
        };
        // The highest rung the trial has reached.
        let mut k = 0;
        if self.rung(0) > last_step {
            return false;
        }
        while self.rung(k + 1) <= last_step && self.rung(k + 1) != u64::MAX {
            k += 1;
        }
        let rung = self.rung(k);
        // Decide only on the report that reaches the rung, so a trial promoted
        // once is not demoted later as the rung fills up.
        let Some((first_step, value)) = Self::value_at(trial, rung) else {
            return false;
        };
        if first_step != last_step {
            return false;
        }
        if value.is_nan() {
            return true;
        }
        let mut values: Vec<f64> = trials
            .iter()
            .filter(|t| t.number != trial.number)
            .filter_map(|t| Self::value_at(t, rung).map(|(_, v)| v))
            .filter(|v| !v.is_nan())
            .map(|v| direction.loss(v))
            .collect();
        values.push(direction.loss(value));
        let keep = (values.len() / self.reduction_factor.max(2) as usize).max(1);
        values.sort_by(f64::total_cmp);
        direction.loss(value) > values[keep - 1]
    }
}
