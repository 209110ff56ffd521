//! `auto`: picks the algorithm for an experiment from what is known before it
//! starts — the trial budget, the parameters and how many trials run at once —
//! and says why, so a CLI can print the choice and a Katib export can name the
//! algorithm that was actually used.
//!
//! The rules, and the measurements behind them (`examples/suite.rs`, see
//! `search/README.md`):
//! - **grid** when every parameter takes finitely many values and the whole grid
//!   fits in the budget: nothing can beat trying every point.
//! - **bayesianoptimization** (GP-BO) for budgets up to [`GP_MAX_TRIALS`], up
//!   to [`GP_MAX_DIMS`] parameters and up to [`GP_MAX_PARALLEL`] trials at once:
//!   on the suite it reaches a lower median regret than TPE at 25, 50 and 100
//!   trials in 2, 5, 10 and 20 dimensions and on the mixed spaces, and at 50
//!   trials with 4 and 8 trials in flight.
//! - **tpe** otherwise: a GP's ask costs `O(n³)` in the number of trials
//!   (measured on the shared 2-core VM: 0.1–0.3 s at 100 trials, 1–2 s at 200,
//!   2–7 s at 300, 16–30 s at 500; TPE's under a millisecond); above
//!   [`GP_MAX_DIMS`] parameters the GP was not measured; with 16 trials in
//!   flight (50 trials) it was no better than TPE in 5 and 10 dimensions and
//!   worse on the mixed spaces.

use crate::katib::{AlgorithmSetting, sampler_from_katib};
use crate::sampler::{Sampler, SamplerError, Suggestion, one_objective};
use crate::space::{Dim, SearchSpace};
use crate::trial::{Direction, Trial};

/// Largest budget for which `auto` picks GP-BO.
pub const GP_MAX_TRIALS: u64 = 300;
/// Most parameters for which `auto` picks GP-BO.
pub const GP_MAX_DIMS: usize = 20;
/// Most trials at once for which `auto` picks GP-BO.
pub const GP_MAX_PARALLEL: usize = 8;

/// What `auto` picked: a Katib algorithm name and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChoice {
    pub algorithm: &'static str,
    pub reason: String,
}

/// Number of points of the space when every parameter is finite (categorical,
/// discrete, int, or double with a step); `None` otherwise or when it overflows.
pub fn grid_size(space: &SearchSpace) -> Option<u64> {
    space.dims().iter().try_fold(1u64, |acc, d| {
        let k = match d {
            Dim::Choice(c) => c.labels.len(),
            Dim::Num(n) => n.lattice_len()?,
        };
        acc.checked_mul(k as u64)
    })
}

/// The algorithm for an experiment of at most `max_trials` trials (`None`:
/// unbounded) over `space`, `parallel` at once.
pub fn choose(space: &SearchSpace, max_trials: Option<u64>, parallel: usize) -> AutoChoice {
    let d = space.len();
    if let (Some(g), Some(budget)) = (grid_size(space), max_trials)
        && g <= budget
    {
        return AutoChoice {
            algorithm: "grid",
            reason: format!("all {g} points of the space fit in {budget} trials"),
        };
    }
    let n_cat = space
        .dims()
        .iter()
        .filter(|d| matches!(d, Dim::Choice(_)))
        .count();
    let what = if n_cat > 0 {
        format!("{d} parameters, {n_cat} categorical")
    } else {
        format!("{d} parameters")
    };
    let tpe = |why: String| AutoChoice {
        algorithm: "tpe",
        reason: why,
    };
    match max_trials {
        None => tpe("no trial limit: a GP's cost grows with every trial, TPE's barely".into()),
        Some(b) if b > GP_MAX_TRIALS => tpe(format!(
            "{b} trials: above {GP_MAX_TRIALS} a GP's ask gets slow and TPE catches up"
        )),
        Some(_) if d > GP_MAX_DIMS => tpe(format!(
            "{what}: more than {GP_MAX_DIMS}, where GP-BO is not measured to win"
        )),
        Some(_) if parallel > GP_MAX_PARALLEL => tpe(format!(
            "{parallel} trials at once: most suggestions would be made against guessed values"
        )),
        Some(b) => AutoChoice {
            algorithm: "bayesianoptimization",
            reason: format!("{b} trials over {what}: GP-BO needs fewest trials at this budget"),
        },
    }
}

/// A sampler chosen on the first `ask`, when the space is known: what both `auto`s
/// share (the choice, reseeding and telling go to the chosen sampler once there is
/// one).
pub(crate) struct Deferred {
    seed: Option<u64>,
    inner: Option<(Box<dyn Sampler>, AutoChoice)>,
}

impl Deferred {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Deferred { seed, inner: None }
    }

    pub(crate) fn choice(&self) -> Option<&AutoChoice> {
        self.inner.as_ref().map(|(_, c)| c)
    }

    pub(crate) fn reseed(&mut self, seed: u64) {
        self.seed = Some(seed);
        if let Some((inner, _)) = &mut self.inner {
            inner.reseed(seed);
        }
    }

    pub(crate) fn tell(&mut self, trial: &Trial) {
        if let Some((s, _)) = self.inner.as_mut() {
            s.tell(trial);
        }
    }

    /// The chosen sampler: on the first call, `choose` picks the algorithm and
    /// `build` makes it, seeded with the seed so far.
    pub(crate) fn sampler<E: std::fmt::Display>(
        &mut self,
        choose: impl FnOnce() -> AutoChoice,
        build: impl FnOnce(&str, &[AlgorithmSetting]) -> Result<Box<dyn Sampler>, E>,
    ) -> Result<&mut Box<dyn Sampler>, SamplerError> {
        if self.inner.is_none() {
            let choice = choose();
            let settings: Vec<AlgorithmSetting> = self
                .seed
                .map(|s| AlgorithmSetting::new("random_state", s))
                .into_iter()
                .collect();
            let sampler = build(choice.algorithm, &settings)
                .map_err(|e| SamplerError::Other(e.to_string()))?;
            self.inner = Some((sampler, choice));
        }
        Ok(&mut self.inner.as_mut().expect("set above").0)
    }
}

/// Katib name `auto` for library users: makes the choice on the first `ask`,
/// when the space is known, then delegates every call to the chosen sampler.
/// (`kale tune` calls [`choose`] itself, to print and store the choice.)
pub struct AutoSampler {
    max_trials: Option<u64>,
    parallel: usize,
    deferred: Deferred,
}

impl AutoSampler {
    pub fn new(seed: Option<u64>, max_trials: Option<u64>, parallel: usize) -> Self {
        AutoSampler {
            max_trials,
            parallel,
            deferred: Deferred::new(seed),
        }
    }

    /// The choice, once the first `ask` has made it.
    pub fn choice(&self) -> Option<&AutoChoice> {
        self.deferred.choice()
    }
}

impl Sampler for AutoSampler {
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
        let direction = one_objective(self.name(), directions)?;
        let (max_trials, parallel) = (self.max_trials, self.parallel);
        self.deferred
            .sampler(|| choose(space, max_trials, parallel), sampler_from_katib)?
            .ask(space, trials, direction)
    }

    fn tell(&mut self, trial: &Trial) {
        self.deferred.tell(trial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParameterSpec;

    fn space(p: Vec<ParameterSpec>) -> SearchSpace {
        SearchSpace::new(p).unwrap()
    }

    #[test]
    fn small_finite_space_is_gridded() {
        let s = space(vec![
            ParameterSpec::int("depth", 2, 5),
            ParameterSpec::categorical("k", &["a", "b", "c"]),
        ]);
        assert_eq!(grid_size(&s), Some(12));
        let c = choose(&s, Some(12), 1);
        assert_eq!(c.algorithm, "grid", "{c:?}");
        assert!(c.reason.contains("12 points"), "{c:?}");
        // One trial short of the grid: a model-based search instead.
        assert_eq!(choose(&s, Some(11), 1).algorithm, "bayesianoptimization");
    }

    #[test]
    fn budget_dimensions_and_parallelism_move_it_to_tpe() {
        let s = space(vec![
            ParameterSpec::double("lr", 1e-4, 1e-1).log(),
            ParameterSpec::int("depth", 2, 10),
        ]);
        assert_eq!(grid_size(&s), None);
        assert_eq!(choose(&s, Some(50), 4).algorithm, "bayesianoptimization");
        assert_eq!(
            choose(&s, Some(GP_MAX_TRIALS), 1).algorithm,
            "bayesianoptimization"
        );
        let big = choose(&s, Some(GP_MAX_TRIALS + 1), 1);
        assert_eq!(big.algorithm, "tpe");
        assert!(big.reason.contains("301 trials"), "{big:?}");
        assert_eq!(choose(&s, None, 1).algorithm, "tpe");
        assert_eq!(choose(&s, Some(50), GP_MAX_PARALLEL + 1).algorithm, "tpe");
        let wide = space(
            (0..=GP_MAX_DIMS)
                .map(|i| ParameterSpec::double(format!("x{i}"), 0.0, 1.0))
                .collect(),
        );
        assert_eq!(choose(&wide, Some(50), 1).algorithm, "tpe");
    }
}
