//! Exhaustive grid search with Katib's rules.
//!
//! Katib name `grid`; setting `random_state` (seed for the visiting order).
//!
//! - Every `double` needs a `step` (as in Katib); `int` uses its step, 1 by
//!   default; `categorical`/`discrete` use their lists.
//! - Points are visited once each in a seeded random order, so a budget smaller
//!   than the grid still spreads over the whole space instead of sweeping one corner.
//! - A point counts as visited as soon as any trial (running, finished or failed)
//!   holds it. Concurrent workers that ask in turn therefore never get the same
//!   point; a failed point is not retried.
//! - When every point is taken, `ask` returns [`Suggestion::Exhausted`].
//! - Grids above 2^24 points are refused rather than silently truncated.
//!
//! ```
//! use kale_search::{Direction, ParameterSpec, SearchSpace, Sampler, Suggestion, Trial};
//! use kale_search::sampler::grid::GridSampler;
//!
//! let space = SearchSpace::new(vec![
//!     ParameterSpec::int("layers", 1, 3),
//!     ParameterSpec::categorical("act", &["relu", "tanh"]),
//! ]).unwrap();
//! let mut grid = GridSampler::new(Some(0));
//! let mut trials = Vec::new();
//! while let Suggestion::Params(p) = grid.ask(&space, &trials, Direction::Minimize).unwrap() {
//!     trials.push(Trial::complete(trials.len() as u64, p, 0.0));
//! }
//! assert_eq!(trials.len(), 6);
//! ```

use std::collections::HashSet;

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

use super::{Sampler, SamplerError, Suggestion, make_rng};
use crate::space::{Dim, SearchSpace};
use crate::trial::{Direction, Trial};

const MAX_POINTS: usize = 1 << 24;

pub struct GridSampler {
    rng: Xoshiro256PlusPlus,
    /// Visiting order over the mixed-radix point indices, built on first use.
    order: Option<(Vec<usize>, Vec<u32>)>,
    /// Positions in `order` before this one are known to be taken.
    cursor: usize,
    seen_trials: usize,
}

impl GridSampler {
    pub fn new(seed: Option<u64>) -> Self {
        GridSampler {
            rng: make_rng(seed),
            order: None,
            cursor: 0,
            seen_trials: 0,
        }
    }

    /// Points per parameter, or an error naming the parameter that has no grid.
    pub fn axis_sizes(space: &SearchSpace) -> Result<Vec<usize>, SamplerError> {
        space
            .parameters()
            .iter()
            .zip(space.dims())
            .map(|(p, d)| match d {
                Dim::Choice(c) => Ok(c.labels.len()),
                Dim::Num(n) => n
                    .lattice_len()
                    .ok_or_else(|| SamplerError::UnsupportedParameter {
                        sampler: "grid",
                        name: p.name.clone(),
                        reason: "grid search needs a step for double parameters".into(),
                    }),
            })
            .collect()
    }

    /// Number of grid points.
    pub fn grid_len(space: &SearchSpace) -> Result<usize, SamplerError> {
        Self::axis_sizes(space)?
            .iter()
            .try_fold(1usize, |acc, &n| {
                acc.checked_mul(n).filter(|&t| t <= MAX_POINTS)
            })
            .ok_or_else(|| SamplerError::Other(format!("grid has more than {MAX_POINTS} points")))
    }
}

/// The grid index of a trial's parameters; `None` when one is not a grid point.
fn point_index(
    space: &SearchSpace,
    dims: &[Dim],
    sizes: &[usize],
    params: &crate::space::Params,
) -> Option<usize> {
    space
        .parameters()
        .iter()
        .zip(dims)
        .zip(sizes)
        .try_fold(0usize, |acc, ((p, d), &n)| {
            let k = d.index_of(params.get(&p.name)?)?;
            Some(acc * n + k.min(n - 1))
        })
}

/// The parameters at a grid index, each an exact lattice value.
fn point_params(
    space: &SearchSpace,
    dims: &[Dim],
    sizes: &[usize],
    mut idx: usize,
) -> crate::space::Params {
    let mut ks = vec![0; dims.len()];
    for i in (0..dims.len()).rev() {
        ks[i] = idx % sizes[i];
        idx /= sizes[i];
    }
    space
        .parameters()
        .iter()
        .zip(dims)
        .zip(ks)
        .map(|((p, d), k)| (p.name.clone(), d.value_at_index(k)))
        .collect()
}

impl Sampler for GridSampler {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = make_rng(Some(seed));
    }

    /// Directions do not matter to grid search: any number of objectives.
    fn ask_multi(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        _: &[Direction],
    ) -> Result<Suggestion, SamplerError> {
        let sizes = Self::axis_sizes(space)?;
        let total = Self::grid_len(space)?;
        let dims = space.dims();
        let stale = self
            .order
            .as_ref()
            .is_none_or(|(s, o)| *s != sizes || o.len() != total);
        if stale {
            let mut order: Vec<u32> = (0..total as u32).collect();
            order.shuffle(&mut self.rng);
            self.order = Some((sizes.clone(), order));
            self.cursor = 0;
        }
        // A shorter history than last time means a different study: rescan.
        if trials.len() < self.seen_trials {
            self.cursor = 0;
        }
        self.seen_trials = trials.len();
        let taken: HashSet<usize> = trials
            .iter()
            .filter_map(|t| point_index(space, &dims, &sizes, &t.params))
            .collect();
        let (_, order) = self.order.as_ref().expect("built above");
        while self.cursor < order.len() && taken.contains(&(order[self.cursor] as usize)) {
            self.cursor += 1;
        }
        let Some(&idx) = order.get(self.cursor) else {
            return Ok(Suggestion::Exhausted);
        };
        Ok(Suggestion::Params(point_params(
            space,
            &dims,
            &sizes,
            idx as usize,
        )))
    }
}
