//! The [`Sampler`] trait and what the samplers share.
//!
//! # Lifecycle
//!
//! The driver (for example [`crate::Study`] or `kale tune`) owns the trials and
//! repeats:
//!
//! 1. **ask**: [`Sampler::ask_multi`] (or [`Sampler::ask`], its one-objective
//!    form) gets the search space, a snapshot of *all* trials so far (finished ones
//!    and those still running) and the objectives' directions, and returns parameters for one new trial, or [`Suggestion::Exhausted`] when
//!    it has nothing new to offer (grid search after the last point). The driver
//!    records the new trial as `Running` before asking again, which is how
//!    samplers avoid handing out a point that is already being evaluated.
//! 2. evaluate the trial (possibly concurrently with others, possibly stopped
//!    early by a [`crate::stopping::StoppingRule`]);
//! 3. **tell**: the driver marks the trial finished and calls [`Sampler::tell`]
//!    with the final snapshot. The default does nothing: samplers read
//!    everything they need from the history passed to `ask`, so a sampler built
//!    afresh over a stored history behaves like one that saw the whole run.
//!
//! Samplers never write trials. With a seed, the same sequence of `ask` calls over
//! the same histories gives the same suggestions.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::space::{Dim, Params, SearchSpace};
use crate::trial::{Direction, Trial};

pub mod auto;
pub mod gp;
pub mod grid;
pub mod multi_auto;
pub mod nsga2;
pub mod random;
pub mod tpe;

/// What [`Sampler::ask`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    Params(Params),
    /// No unvisited point is left; the experiment should end with "search space exhausted".
    Exhausted,
}

impl Suggestion {
    pub fn params(self) -> Option<Params> {
        match self {
            Suggestion::Params(p) => Some(p),
            Suggestion::Exhausted => None,
        }
    }
}

/// Why a sampler cannot work on a search space.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("{sampler}: parameter {name:?}: {reason}")]
    UnsupportedParameter {
        sampler: &'static str,
        name: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// A search algorithm. See the [module docs](self) for when each method is called.
pub trait Sampler: Send {
    /// Katib algorithm name of this sampler.
    fn name(&self) -> &'static str;

    /// Parameters for one new trial of a study with one objective per entry of
    /// `directions`: one for most studies (finished trials carry their value in
    /// [`Trial::value`]), several for a Pareto search (in [`Trial::values`]).
    /// This is the one method each sampler implements; `random`, `grid`, `tpe` (as
    /// MOTPE) and `nsga2` take any number of objectives, the others refuse several
    /// ([`one_objective`]).
    fn ask_multi(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        directions: &[Direction],
    ) -> Result<Suggestion, SamplerError>;

    /// [`Sampler::ask_multi`] for a study with one objective.
    fn ask(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        direction: Direction,
    ) -> Result<Suggestion, SamplerError> {
        self.ask_multi(space, trials, &[direction])
    }

    /// Called once when a trial has finished. Default: nothing.
    fn tell(&mut self, _trial: &Trial) {}

    /// Continues with a new random stream, as if built with `seed`. A driver resuming
    /// a seeded study reseeds from the seed and the trials already made, so the second
    /// session neither replays the first one's draws nor depends on the clock.
    fn reseed(&mut self, seed: u64);
}

/// The one direction of a study, for a sampler that searches one objective only;
/// several (or none) is an error that names the sampler.
pub fn one_objective(sampler: &str, directions: &[Direction]) -> Result<Direction, SamplerError> {
    match directions {
        [d] => Ok(*d),
        _ => Err(SamplerError::Other(format!(
            "{sampler} supports one objective, not {}",
            directions.len()
        ))),
    }
}

/// The history as a single-objective model-based sampler should see it under
/// constraints: every infeasible completed trial takes the worst value of the
/// feasible ones (or, while none is feasible, its violation as a loss, so the
/// search heads for feasibility first), and loses its constraints. Borrowed
/// unchanged when no trial is infeasible.
pub(crate) fn penalise_infeasible(
    trials: &[Trial],
    direction: Direction,
) -> std::borrow::Cow<'_, [Trial]> {
    use std::borrow::Cow;
    let infeasible = |t: &Trial| t.completed_value().is_some() && !t.is_feasible();
    if !trials.iter().any(infeasible) {
        return Cow::Borrowed(trials);
    }
    let worst = trials
        .iter()
        .filter(|t| t.is_feasible())
        .filter_map(Trial::completed_value)
        .max_by(|a, b| direction.loss(*a).total_cmp(&direction.loss(*b)));
    // Without a feasible trial, losses are violations; with one, infeasible
    // trials sit at the worst feasible value (never better than any feasible).
    let value_of = |t: &Trial| match worst {
        Some(w) => w,
        None => direction.loss(t.violation().min(f64::MAX)),
    };
    Cow::Owned(
        trials
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if infeasible(&t) {
                    t.value = Some(value_of(&t));
                    t.constraints.clear();
                }
                t
            })
            .collect(),
    )
}

/// Generator for a sampler: seeded when `random_state` is given, else from the
/// process's hash randomisation (which the OS seeds), so unseeded runs differ.
pub(crate) fn make_rng(seed: Option<u64>) -> Xoshiro256PlusPlus {
    let seed = seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, RandomState};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RandomState::new().hash_one(nanos)
    });
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

pub(crate) fn decode(space: &SearchSpace, dims: &[Dim], x: &[f64]) -> Params {
    space
        .parameters()
        .iter()
        .zip(dims)
        .zip(x)
        .map(|((p, d), &v)| (p.name.clone(), d.decode(v)))
        .collect()
}

/// Sampler coordinates of a trial's parameters; `None` when the trial does not fit
/// the space (e.g. it was run before the space was edited).
pub(crate) fn encode(space: &SearchSpace, dims: &[Dim], params: &Params) -> Option<Vec<f64>> {
    space
        .parameters()
        .iter()
        .zip(dims)
        .map(|(p, d)| d.encode(params.get(&p.name)?))
        .collect()
}

/// Latin-hypercube start: the first `n` trials each take a different stratum of
/// every parameter, so a 10-trial start covers each axis evenly and visits every
/// category of a small categorical, which independent random draws often miss.
#[derive(Debug, Clone)]
pub(crate) struct LatinStart {
    n: usize,
    strata: Vec<Vec<usize>>,
}

impl LatinStart {
    pub fn new<R: rand::Rng + ?Sized>(n: usize, dims: usize, rng: &mut R) -> Self {
        use rand::seq::SliceRandom;
        let strata = (0..dims)
            .map(|_| {
                let mut p: Vec<usize> = (0..n).collect();
                p.shuffle(rng);
                p
            })
            .collect();
        LatinStart { n, strata }
    }

    /// Point number `i` of the design, or `None` once the design is used up.
    pub fn point<R: rand::Rng + ?Sized>(
        &self,
        i: usize,
        dims: &[Dim],
        rng: &mut R,
    ) -> Option<Vec<f64>> {
        use rand::RngExt;
        if i >= self.n || dims.len() != self.strata.len() {
            return None;
        }
        Some(
            dims.iter()
                .zip(&self.strata)
                .map(|(d, s)| d.value_at_unit((s[i] as f64 + rng.random::<f64>()) / self.n as f64))
                .collect(),
        )
    }

    /// Design point `i`; when it repeats a trial (or the design is used up), a
    /// fresh random point, and when every draw repeats one, any random point.
    pub fn point_or_fresh<R: rand::Rng + ?Sized>(
        &self,
        i: usize,
        dims: &[Dim],
        rng: &mut R,
        is_new: impl Fn(&[f64]) -> bool,
    ) -> Vec<f64> {
        self.point(i, dims, rng)
            .filter(|x| is_new(x))
            .or_else(|| fresh_random_point(dims, rng, &is_new))
            .unwrap_or_else(|| dims.iter().map(|d| d.sample(rng)).collect())
    }
}

/// Up to 64 independent random points; the first that `is_new` accepts. Used
/// when a sampler's own proposal would repeat a trial (small discrete spaces).
pub(crate) fn fresh_random_point<R: rand::Rng + ?Sized>(
    dims: &[Dim],
    rng: &mut R,
    is_new: impl Fn(&[f64]) -> bool,
) -> Option<Vec<f64>> {
    (0..64)
        .map(|_| dims.iter().map(|d| d.sample(rng)).collect::<Vec<f64>>())
        .find(|x| is_new(x))
}

/// A standard normal draw (Marsaglia's polar method); `rand` 0.10 itself has no
/// normal distribution and one function does not justify `rand_distr`.
pub(crate) fn std_normal<R: rand::Rng + ?Sized>(rng: &mut R) -> f64 {
    use rand::RngExt;
    loop {
        let u = 2.0 * rng.random::<f64>() - 1.0;
        let v = 2.0 * rng.random::<f64>() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}
