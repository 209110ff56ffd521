//! Samplers for studies with several objectives, by name, and `auto` for them.
//!
//! Katib has no multi-objective experiments, so these names are not Katib
//! algorithms and [`crate::katib::sampler_from_katib`] does not know them;
//! [`multi_objective_sampler`] builds them:
//!
//! | name | sampler | settings (default) |
//! |---|---|---|
//! | `auto` | [`MultiAutoSampler`]: grid, MOTPE or NSGA-II, chosen by [`choose_multi`] on the first ask | `random_state`, `max_trials` (unbounded) |
//! | `nsga2` | [`Nsga2Sampler`] | `random_state`, `population_size` (50), `crossover` (`uniform`; or `sbx`), `crossover_prob` (0.9), `swapping_prob` (0.5), `mutation_prob` (1/parameters), `sbx_eta` (15) |
//! | `motpe`, `tpe` | [`crate::sampler::tpe::TpeSampler`] asked with several directions | as Katib's `tpe` |
//! | `random`, `grid` | as for one objective | `random_state` |
//!
//! All of them also serve one objective, so a study can use one code path.
//!
//! `auto`'s rules (measured with `examples/mo_bench.rs`, see `search/README.md`):
//! - **grid** when the whole grid fits in the budget, as for one objective;
//! - **motpe** up to [`MOTPE_MAX_TRIALS`] trials: at 50, 100, 200 and 500
//!   trials it reached a smaller hypervolume regret than NSGA-II on ZDT1–3 and
//!   DTLZ2 (NSGA-II's first generation alone is 50 random trials);
//! - **nsga2** for larger or unbounded budgets: by 1000 trials it has caught
//!   up on ZDT1 and is ahead on ZDT3, and its ask costs the same at any
//!   history length while MOTPE's grows (up to ~10 ms per ask at 1000 trials).

use crate::katib::{AlgorithmSetting, ConfigError, sampler_from_katib};
use crate::sampler::auto::{AutoChoice, Deferred, grid_size};
use crate::sampler::nsga2::{Crossover, Nsga2Config, Nsga2Sampler};
use crate::sampler::{Sampler, SamplerError, Suggestion};
use crate::space::SearchSpace;
use crate::trial::{Direction, Trial};

/// Largest budget for which `auto` picks MOTPE with several objectives.
pub const MOTPE_MAX_TRIALS: u64 = 500;

const NAMES: &str = "auto, nsga2, motpe, tpe, random, grid";

/// The algorithm for a study with `n_objectives` objectives and at most
/// `max_trials` trials (`None`: unbounded) over `space`.
pub fn choose_multi(
    space: &SearchSpace,
    n_objectives: usize,
    max_trials: Option<u64>,
) -> AutoChoice {
    if let (Some(g), Some(budget)) = (grid_size(space), max_trials)
        && g <= budget
    {
        return AutoChoice {
            algorithm: "grid",
            reason: format!("all {g} points of the space fit in {budget} trials"),
        };
    }
    match max_trials {
        None => AutoChoice {
            algorithm: "nsga2",
            reason: "no trial limit: NSGA-II's cost per trial stays flat, MOTPE's grows".into(),
        },
        Some(b) if b > MOTPE_MAX_TRIALS => AutoChoice {
            algorithm: "nsga2",
            reason: format!(
                "{b} trials, {n_objectives} objectives: above {MOTPE_MAX_TRIALS} NSGA-II catches up with MOTPE and its ask stays cheap"
            ),
        },
        Some(b) => AutoChoice {
            algorithm: "motpe",
            reason: format!(
                "{b} trials, {n_objectives} objectives: MOTPE reaches a larger hypervolume than NSGA-II at small budgets"
            ),
        },
    }
}

/// A sampler for a study with several objectives (or one), by name; see the
/// [module docs](self) for names and settings.
pub fn multi_objective_sampler(
    name: &str,
    settings: &[AlgorithmSetting],
) -> Result<Box<dyn Sampler>, ConfigError> {
    let bad = |s: &AlgorithmSetting, reason: &str| ConfigError::BadValue {
        name: s.name.clone(),
        value: s.value.clone(),
        reason: reason.into(),
    };
    let unknown = |s: &AlgorithmSetting, known: &'static str| ConfigError::UnknownSetting {
        algorithm: name.to_string(),
        name: s.name.clone(),
        known,
    };
    let seed = |s: &AlgorithmSetting| -> Result<Option<u64>, ConfigError> {
        let v = s.value.trim();
        if v.is_empty() || v == "None" {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| bad(s, "expected an integer >= 0"))
    };
    let prob = |s: &AlgorithmSetting| -> Result<f64, ConfigError> {
        s.value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| bad(s, "expected a number in [0, 1]"))
    };
    use crate::katib::AlgorithmName as A;
    match name.parse::<A>() {
        Ok(A::Auto) => {
            let (mut seed_v, mut max_trials) = (None, None);
            for s in settings {
                match s.name.as_str() {
                    "random_state" => seed_v = seed(s)?,
                    "max_trials" => {
                        max_trials = Some(
                            s.value
                                .trim()
                                .parse::<u64>()
                                .ok()
                                .filter(|v| *v > 0)
                                .ok_or_else(|| bad(s, "expected an integer > 0"))?,
                        )
                    }
                    _ => return Err(unknown(s, "random_state, max_trials")),
                }
            }
            Ok(Box::new(MultiAutoSampler::new(seed_v, max_trials)))
        }
        Ok(A::Nsga2) => {
            const KNOWN: &str = "random_state, population_size, crossover, crossover_prob, swapping_prob, mutation_prob, sbx_eta";
            let mut cfg = Nsga2Config::default();
            for s in settings {
                match s.name.as_str() {
                    "random_state" | "seed" => cfg.seed = seed(s)?,
                    "population_size" => {
                        cfg.population_size = s
                            .value
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|v| *v >= 2)
                            .ok_or_else(|| bad(s, "expected an integer >= 2"))?
                    }
                    "crossover" => {
                        cfg.crossover = match s.value.trim() {
                            "uniform" => Crossover::Uniform,
                            "sbx" => Crossover::Sbx,
                            _ => return Err(bad(s, "expected uniform or sbx")),
                        }
                    }
                    "crossover_prob" => cfg.crossover_prob = prob(s)?,
                    "swapping_prob" => cfg.swapping_prob = prob(s)?,
                    "mutation_prob" => cfg.mutation_prob = Some(prob(s)?),
                    "sbx_eta" => {
                        cfg.sbx_eta = s
                            .value
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|v| *v >= 0.0 && v.is_finite())
                            .ok_or_else(|| bad(s, "expected a number >= 0"))?
                    }
                    _ => return Err(unknown(s, KNOWN)),
                }
            }
            Ok(Box::new(Nsga2Sampler::new(cfg)))
        }
        Ok(A::Motpe | A::Tpe) => sampler_from_katib(A::Tpe.as_str(), settings),
        Ok(A::Random | A::Grid) => sampler_from_katib(name, settings),
        _ => Err(ConfigError::UnknownAlgorithm(name.to_string(), NAMES)),
    }
}

/// `auto` for several objectives: makes the choice on the first ask, when the
/// space and the number of objectives are known, then delegates.
pub struct MultiAutoSampler {
    max_trials: Option<u64>,
    deferred: Deferred,
}

impl MultiAutoSampler {
    pub fn new(seed: Option<u64>, max_trials: Option<u64>) -> Self {
        MultiAutoSampler {
            max_trials,
            deferred: Deferred::new(seed),
        }
    }

    /// The choice, once the first `ask` has made it.
    pub fn choice(&self) -> Option<&AutoChoice> {
        self.deferred.choice()
    }
}

impl Sampler for MultiAutoSampler {
    fn name(&self) -> &'static str {
        self.choice().map_or("auto", |c| c.algorithm)
    }

    fn reseed(&mut self, seed: u64) {
        self.deferred.reseed(seed);
    }

    fn ask_multi(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        directions: &[Direction],
    ) -> Result<Suggestion, SamplerError> {
        let max_trials = self.max_trials;
        self.deferred
            .sampler(
                || choose_multi(space, directions.len(), max_trials),
                multi_objective_sampler,
            )?
            .ask_multi(space, trials, directions)
    }

    fn tell(&mut self, trial: &Trial) {
        self.deferred.tell(trial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParameterSpec;

    #[test]
    fn budget_picks_the_algorithm() {
        let s = SearchSpace::new(vec![
            ParameterSpec::double("lr", 1e-4, 1e-1).log(),
            ParameterSpec::int("depth", 2, 10),
        ])
        .unwrap();
        let small = choose_multi(&s, 2, Some(60));
        assert_eq!(small.algorithm, "motpe", "{small:?}");
        assert!(small.reason.contains("60 trials"), "{small:?}");
        assert_eq!(
            choose_multi(&s, 2, Some(MOTPE_MAX_TRIALS)).algorithm,
            "motpe"
        );
        assert_eq!(
            choose_multi(&s, 2, Some(MOTPE_MAX_TRIALS + 1)).algorithm,
            "nsga2"
        );
        assert_eq!(choose_multi(&s, 3, None).algorithm, "nsga2");
        let tiny = SearchSpace::new(vec![ParameterSpec::int("depth", 2, 5)]).unwrap();
        assert_eq!(choose_multi(&tiny, 2, Some(4)).algorithm, "grid");
    }

    #[test]
    fn names_and_settings_are_checked() {
        assert!(
            multi_objective_sampler("nsga2", &[AlgorithmSetting::new("population_size", 1)])
                .is_err()
        );
        assert!(
            multi_objective_sampler("nsga2", &[AlgorithmSetting::new("crossover", "sbx")]).is_ok()
        );
        assert!(multi_objective_sampler("nsga2", &[AlgorithmSetting::new("foo", 1)]).is_err());
        assert!(matches!(
            multi_objective_sampler("bayesianoptimization", &[]),
            Err(ConfigError::UnknownAlgorithm(..))
        ));
        assert_eq!(multi_objective_sampler("motpe", &[]).unwrap().name(), "tpe");
    }
}
