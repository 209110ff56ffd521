//! Building samplers and stopping rules from Katib's `algorithm` /
//! `earlyStopping` blocks (`algorithmName` plus `algorithmSettings`, whose values
//! are strings).
//!
//! | algorithmName | sampler | settings (default) |
//! |---|---|---|
//! | `auto` | [`AutoSampler`]: grid, GP-BO or TPE, chosen by [`crate::sampler::auto::choose`] on the first ask | `random_state`, `max_trials` (unbounded), `parallel` (1) |
//! | `random` | [`RandomSampler`] | `random_state` |
//! | `grid` | [`GridSampler`] | `random_state` |
//! | `tpe`, `multivariate-tpe` | [`TpeSampler`] | `random_state`, `n_startup_trials` (10), `n_ei_candidates` (24; `n_EI_candidates` also accepted), `gamma` (0.15), `prior_weight` (1.0), `consider_magic_clip` (true), `constant_liar` (true), `multivariate` (true for one objective, false for several: one density per parameter, as Optuna's default TPE) |
//! | `bayesianoptimization` | [`GpSampler`] | `random_state`, `n_initial_points` (10), `acq_func` (`EI`; also `PI`, `LCB`, `gp_hedge` = EI), `base_estimator` (`GP` only), `acq_optimizer` (ignored) |
//!
//! | early stopping | rule | settings (default) |
//! |---|---|---|
//! | `medianstop` | [`MedianStop`] | `min_trials_required` (3), `start_step` (4) |
//! | `asha` | [`Asha`] | `min_resource` (1), `reduction_factor` (3), `min_early_stopping_rate` (0) |
//!
//! Unknown names and unparsable values are errors, as in Katib, rather than being
//! silently ignored.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::sampler::Sampler;
use crate::sampler::auto::AutoSampler;
use crate::sampler::gp::{Acquisition, GpConfig, GpSampler};
use crate::sampler::grid::GridSampler;
use crate::sampler::random::RandomSampler;
use crate::sampler::tpe::{TpeConfig, TpeSampler};
use crate::stopping::{Asha, MedianStop, StoppingRule};

/// The search algorithms kale runs, by the names Katib's `algorithmName` and kale's
/// `--algorithm` give them: their words are [`AlgorithmName::as_str`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmName {
    /// Picked from the space and the budget (grid, GP-BO or TPE; with several
    /// objectives grid, MOTPE or NSGA-II).
    Auto,
    Random,
    Grid,
    Tpe,
    MultivariateTpe,
    BayesianOptimization,
    /// Several objectives only.
    Nsga2,
    /// Several objectives only (TPE's multi-objective form).
    Motpe,
}

impl AlgorithmName {
    pub const ALL: [AlgorithmName; 8] = [
        AlgorithmName::Auto,
        AlgorithmName::Random,
        AlgorithmName::Grid,
        AlgorithmName::Tpe,
        AlgorithmName::MultivariateTpe,
        AlgorithmName::BayesianOptimization,
        AlgorithmName::Nsga2,
        AlgorithmName::Motpe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlgorithmName::Auto => "auto",
            AlgorithmName::Random => "random",
            AlgorithmName::Grid => "grid",
            AlgorithmName::Tpe => "tpe",
            AlgorithmName::MultivariateTpe => "multivariate-tpe",
            AlgorithmName::BayesianOptimization => "bayesianoptimization",
            AlgorithmName::Nsga2 => "nsga2",
            AlgorithmName::Motpe => "motpe",
        }
    }
}

impl FromStr for AlgorithmName {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        AlgorithmName::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| ConfigError::UnknownAlgorithm(text.to_string(), ALGORITHMS))
    }
}

impl std::fmt::Display for AlgorithmName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The early-stopping rules kale runs, by the names Katib's `earlyStopping` block and
/// kale's `--early-stopping` give them: their words are [`StoppingName::as_str`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoppingName {
    MedianStop,
    Asha,
}

impl StoppingName {
    pub const ALL: [StoppingName; 2] = [StoppingName::MedianStop, StoppingName::Asha];

    pub fn as_str(self) -> &'static str {
        match self {
            StoppingName::MedianStop => "medianstop",
            StoppingName::Asha => "asha",
        }
    }
}

impl FromStr for StoppingName {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        StoppingName::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| ConfigError::UnknownAlgorithm(text.to_string(), STOPPERS))
    }
}

impl std::fmt::Display for StoppingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One `{name, value}` entry of `algorithmSettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlgorithmSetting {
    pub name: String,
    pub value: String,
}

impl AlgorithmSetting {
    pub fn new(name: impl Into<String>, value: impl ToString) -> Self {
        AlgorithmSetting {
            name: name.into(),
            value: value.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown algorithm {0:?} (known: {1})")]
    UnknownAlgorithm(String, &'static str),
    #[error("algorithm {algorithm:?} has no setting {name:?} (known: {known})")]
    UnknownSetting {
        algorithm: String,
        name: String,
        known: &'static str,
    },
    #[error("setting {name:?} = {value:?}: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
}

const SAMPLERS: &str = "auto, random, grid, tpe, multivariate-tpe, bayesianoptimization";
const STOPPERS: &str = "medianstop, asha";
const ALGORITHMS: &str =
    "auto, random, grid, tpe, multivariate-tpe, bayesianoptimization, nsga2, motpe";

fn parse<T: FromStr>(
    s: &AlgorithmSetting,
    ok: impl Fn(&T) -> bool,
    reason: &str,
) -> Result<T, ConfigError> {
    s.value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|v| ok(v))
        .ok_or_else(|| ConfigError::BadValue {
            name: s.name.clone(),
            value: s.value.clone(),
            reason: reason.into(),
        })
}

fn parse_bool(s: &AlgorithmSetting) -> Result<bool, ConfigError> {
    match s.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::BadValue {
            name: s.name.clone(),
            value: s.value.clone(),
            reason: "expected true or false".into(),
        }),
    }
}

fn seed(s: &AlgorithmSetting) -> Result<Option<u64>, ConfigError> {
    // Katib clients sometimes write "None" for "unseeded".
    if s.value.trim().is_empty() || s.value.trim() == "None" {
        return Ok(None);
    }
    parse::<u64>(s, |_| true, "expected an integer >= 0").map(Some)
}

/// A sampler from Katib's `algorithmName` and `algorithmSettings`.
pub fn sampler_from_katib(
    algorithm: &str,
    settings: &[AlgorithmSetting],
) -> Result<Box<dyn Sampler>, ConfigError> {
    let unknown = |s: &AlgorithmSetting, known: &'static str| ConfigError::UnknownSetting {
        algorithm: algorithm.to_string(),
        name: s.name.clone(),
        known,
    };
    match algorithm.parse::<AlgorithmName>() {
        Ok(AlgorithmName::Auto) => {
            let (mut random_state, mut max_trials, mut parallel) = (None, None, 1);
            for s in settings {
                match s.name.as_str() {
                    "random_state" => random_state = seed(s)?,
                    "max_trials" => {
                        max_trials = Some(parse(s, |v| *v > 0, "expected an integer > 0")?)
                    }
                    "parallel" => parallel = parse(s, |v| *v > 0, "expected an integer > 0")?,
                    _ => return Err(unknown(s, "random_state, max_trials, parallel")),
                }
            }
            Ok(Box::new(AutoSampler::new(
                random_state,
                max_trials,
                parallel,
            )))
        }
        Ok(name @ (AlgorithmName::Random | AlgorithmName::Grid)) => {
            let mut random_state = None;
            for s in settings {
                match s.name.as_str() {
                    "random_state" => random_state = seed(s)?,
                    _ => return Err(unknown(s, "random_state")),
                }
            }
            Ok(if name == AlgorithmName::Random {
                Box::new(RandomSampler::new(random_state))
            } else {
                Box::new(GridSampler::new(random_state))
            })
        }
        Ok(AlgorithmName::Tpe | AlgorithmName::MultivariateTpe) => {
            const KNOWN: &str = "random_state, n_startup_trials, n_ei_candidates, gamma, prior_weight, consider_magic_clip, constant_liar, multivariate";
            let mut cfg = TpeConfig::default();
            for s in settings {
                match s.name.as_str() {
                    "random_state" | "seed" => cfg.seed = seed(s)?,
                    "n_startup_trials" => {
                        cfg.n_startup_trials = parse(s, |_| true, "expected an integer >= 0")?
                    }
                    "n_ei_candidates" | "n_EI_candidates" => {
                        cfg.n_ei_candidates = parse(s, |v| *v > 0, "expected an integer > 0")?
                    }
                    "gamma" => {
                        cfg.gamma = parse(
                            s,
                            |v: &f64| *v > 0.0 && *v < 1.0,
                            "expected a number in (0, 1)",
                        )?
                    }
                    "prior_weight" => {
                        cfg.prior_weight = parse(
                            s,
                            |v: &f64| *v > 0.0 && v.is_finite(),
                            "expected a number > 0",
                        )?
                    }
                    "consider_magic_clip" => cfg.consider_magic_clip = parse_bool(s)?,
                    "constant_liar" => cfg.constant_liar = parse_bool(s)?,
                    "multivariate" => cfg.multivariate = Some(parse_bool(s)?),
                    _ => return Err(unknown(s, KNOWN)),
                }
            }
            Ok(Box::new(TpeSampler::new(cfg)))
        }
        Ok(AlgorithmName::BayesianOptimization) => {
            const KNOWN: &str =
                "random_state, n_initial_points, acq_func, base_estimator, acq_optimizer";
            let mut cfg = GpConfig::default();
            for s in settings {
                match s.name.as_str() {
                    "random_state" => cfg.seed = seed(s)?,
                    "n_initial_points" => {
                        cfg.n_initial_points = parse(s, |_| true, "expected an integer >= 0")?
                    }
                    "acq_func" => {
                        cfg.acquisition = match s.value.trim() {
                            "EI" | "gp_hedge" | "EIps" => Acquisition::ExpectedImprovement,
                            "PI" | "PIps" => Acquisition::ProbabilityOfImprovement,
                            "LCB" => Acquisition::LowerConfidenceBound,
                            _ => {
                                return Err(ConfigError::BadValue {
                                    name: s.name.clone(),
                                    value: s.value.clone(),
                                    reason: "expected EI, PI, LCB or gp_hedge".into(),
                                });
                            }
                        }
                    }
                    "base_estimator" if s.value.trim() == "GP" => {}
                    "base_estimator" => {
                        return Err(ConfigError::BadValue {
                            name: s.name.clone(),
                            value: s.value.clone(),
                            reason: "only GP is implemented".into(),
                        });
                    }
                    "acq_optimizer" => {}
                    _ => return Err(unknown(s, KNOWN)),
                }
            }
            Ok(Box::new(GpSampler::new(cfg)))
        }
        _ => Err(ConfigError::UnknownAlgorithm(
            algorithm.to_string(),
            SAMPLERS,
        )),
    }
}

/// A stopping rule from Katib's `earlyStopping` block.
pub fn stopping_from_katib(
    algorithm: &str,
    settings: &[AlgorithmSetting],
) -> Result<Box<dyn StoppingRule>, ConfigError> {
    let unknown = |s: &AlgorithmSetting, known: &'static str| ConfigError::UnknownSetting {
        algorithm: algorithm.to_string(),
        name: s.name.clone(),
        known,
    };
    match algorithm.parse::<StoppingName>() {
        Ok(StoppingName::MedianStop) => {
            let mut rule = MedianStop::default();
            for s in settings {
                match s.name.as_str() {
                    "min_trials_required" => {
                        rule.min_trials_required = parse(s, |v| *v > 0, "expected an integer > 0")?
                    }
                    "start_step" => {
                        rule.start_step = parse(s, |v| *v >= 1, "expected an integer >= 1")?
                    }
                    _ => return Err(unknown(s, "min_trials_required, start_step")),
                }
            }
            Ok(Box::new(rule))
        }
        Ok(StoppingName::Asha) => {
            let mut rule = Asha::default();
            for s in settings {
                match s.name.as_str() {
                    "min_resource" => {
                        rule.min_resource = parse(s, |v| *v >= 1, "expected an integer >= 1")?
                    }
                    "reduction_factor" => {
                        rule.reduction_factor = parse(s, |v| *v >= 2, "expected an integer >= 2")?
                    }
                    "min_early_stopping_rate" => {
                        rule.min_early_stopping_rate =
                            parse(s, |v| *v < 32, "expected an integer in 0..32")?
                    }
                    _ => {
                        return Err(unknown(
                            s,
                            "min_resource, reduction_factor, min_early_stopping_rate",
                        ));
                    }
                }
            }
            Ok(Box::new(rule))
        }
        _ => Err(ConfigError::UnknownAlgorithm(
            algorithm.to_string(),
            STOPPERS,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_reads_back_from_its_words_and_others_are_katibs_unknown_algorithm() {
        for a in AlgorithmName::ALL {
            assert_eq!(a.as_str().parse::<AlgorithmName>(), Ok(a));
        }
        for s in StoppingName::ALL {
            assert_eq!(s.as_str().parse::<StoppingName>(), Ok(s));
        }
        assert!(matches!(
            "hyperband".parse::<AlgorithmName>(),
            Err(ConfigError::UnknownAlgorithm(..))
        ));
        assert_eq!(
            "median".parse::<StoppingName>().unwrap_err().to_string(),
            r#"unknown algorithm "median" (known: medianstop, asha)"#
        );
        // The samplers kale builds from Katib's names are those the names say.
        assert!(sampler_from_katib("nsga2", &[]).is_err());
        assert_eq!(sampler_from_katib("random", &[]).unwrap().name(), "random");
        assert_eq!(sampler_from_katib("grid", &[]).unwrap().name(), "grid");
    }
}
