//! NSGA-II (Deb et al., 2002) for one or several objectives, with Deb's
//! constrained domination for constraints.
//!
//! Name `nsga2` (not a Katib algorithm: built by
//! [`crate::sampler::multi_auto::multi_objective_sampler`]).
//!
//! How a suggestion is made, all from the history passed to `ask` (no state
//! that a resumed study would lack):
//! 1. Trials belong to generations by position: the first `population_size`
//!    trials are generation 0, the next `population_size` generation 1, and so
//!    on. Generation 0 is a Latin-hypercube design over the parameters' own
//!    distributions (Optuna: independent random draws).
//! 2. For a later generation `g`, the parents are the best `population_size`
//!    completed trials of generations `< g`: whole constrained non-domination
//!    ranks ([`crate::pareto::constrained_ranks`]: feasible trials by Pareto
//!    rank, then infeasible ones by violation) while they fit, the last rank cut
//!    by crowding distance. This is NSGA-II's elitist selection applied to the
//!    whole history rather than to last generation's parents plus children;
//!    trials still running when a generation starts join the pool once they
//!    finish.
//! 3. A child: two parents by binary tournament (lower rank wins, then larger
//!    crowding distance); with probability `crossover_prob` a crossover of the
//!    two, else a copy of the first; then each parameter mutates with
//!    probability `mutation_prob`.
//!    - `crossover` `uniform` (default, Optuna's `UniformCrossover`): each
//!      parameter from either parent (`swapping_prob` 0.5); mutation redraws
//!      the parameter from its own distribution, as Optuna's NSGA-II does.
//!    - `crossover` `sbx`: simulated binary crossover (η = `sbx_eta`, 15) on
//!      numeric parameters, in log scale for log parameters, and polynomial
//!      mutation (η = 20) — Deb's original operators. Categorical parameters
//!      are inherited and redrawn as in `uniform`.
//! 4. A child that repeats any trial, running ones included, is redrawn (32
//!    tries), then replaced by a fresh random point: concurrent workers never
//!    get a point already being evaluated while a new one exists.
//!
//! Settings (defaults as Optuna's `NSGAIISampler`): `random_state`,
//! `population_size` (50), `crossover` (`uniform`), `crossover_prob` (0.9),
//! `swapping_prob` (0.5), `mutation_prob` (1 / number of parameters),
//! `sbx_eta` (15).

use std::collections::HashSet;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

use super::{
    LatinStart, Sampler, SamplerError, Suggestion, decode, encode, fresh_random_point, make_rng,
};
use crate::pareto::{constrained_ranks, crowding_distance, to_losses};
use crate::space::{Dim, ParameterSpec, SearchSpace};
use crate::trial::{Direction, Trial};

/// How two parents are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossover {
    Uniform,
    Sbx,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nsga2Config {
    pub seed: Option<u64>,
    pub population_size: usize,
    pub crossover: Crossover,
    pub crossover_prob: f64,
    pub swapping_prob: f64,
    /// `None`: 1 / number of parameters.
    pub mutation_prob: Option<f64>,
    pub sbx_eta: f64,
}

impl Default for Nsga2Config {
    fn default() -> Self {
        Nsga2Config {
            seed: None,
            population_size: 50,
            crossover: Crossover::Uniform,
            crossover_prob: 0.9,
            swapping_prob: 0.5,
            mutation_prob: None,
            sbx_eta: 15.0,
        }
    }
}

/// A parent: working coordinates (log scale for log parameters, indices for
/// categoricals), rank and crowding distance.
#[derive(Debug, Clone)]
struct Parent {
    w: Vec<f64>,
    rank: usize,
    crowd: f64,
}

pub struct Nsga2Sampler {
    cfg: Nsga2Config,
    rng: Xoshiro256PlusPlus,
    start: Option<LatinStart>,
    space: Vec<ParameterSpec>,
    /// Parents of a generation, keyed by the generation and the number of
    /// completed trials they were selected from.
    parents: Option<((usize, usize), Vec<Parent>)>,
}

impl Nsga2Sampler {
    pub fn new(cfg: Nsga2Config) -> Self {
        Nsga2Sampler {
            rng: make_rng(cfg.seed),
            cfg,
            start: None,
            space: Vec::new(),
            parents: None,
        }
    }

    pub fn with_seed(seed: u64) -> Self {
        Self::new(Nsga2Config {
            seed: Some(seed),
            ..Nsga2Config::default()
        })
    }

    fn population(&self) -> usize {
        self.cfg.population_size.max(2)
    }
}

fn key(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn bounds(d: &Dim) -> (f64, f64) {
    match d {
        Dim::Num(n) => (n.warp(n.lo), n.warp(n.hi)),
        Dim::Choice(c) => (0.0, (c.labels.len() - 1) as f64),
    }
}

fn to_working(dims: &[Dim], x: &[f64]) -> Vec<f64> {
    dims.iter()
        .zip(x)
        .map(|(d, &v)| match d {
            Dim::Num(n) => n.warp(v),
            Dim::Choice(_) => v,
        })
        .collect()
}

fn from_working(dims: &[Dim], w: &[f64]) -> Vec<f64> {
    dims.iter()
        .zip(w)
        .map(|(d, &v)| match d {
            Dim::Num(n) => n.snap(n.unwarp(v)),
            Dim::Choice(c) => v.round().clamp(0.0, (c.labels.len() - 1) as f64),
        })
        .collect()
}

/// Elitist selection of `size` parents from the completed trials.
fn select_parents(
    trials: &[&Trial],
    dims: &[Dim],
    space: &SearchSpace,
    directions: &[Direction],
    size: usize,
) -> Vec<Parent> {
    let owned: Vec<Trial> = trials.iter().map(|t| (*t).clone()).collect();
    let ranks = constrained_ranks(&owned, directions);
    let mut by_rank: Vec<(usize, usize)> = ranks
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (r, i)))
        .collect();
    by_rank.sort_unstable();
    let mut out = Vec::with_capacity(size);
    let mut k = 0;
    while k < by_rank.len() && out.len() < size {
        let r = by_rank[k].0;
        let front: Vec<usize> = by_rank[k..]
            .iter()
            .take_while(|(rr, _)| *rr == r)
            .map(|(_, i)| *i)
            .collect();
        k += front.len();
        let feasible = owned[front[0]].is_feasible();
        let crowd = if feasible {
            let pts: Vec<Vec<f64>> = front
                .iter()
                .map(|&i| to_losses(owned[i].completed_values().expect("ranked"), directions))
                .collect();
            crowding_distance(&pts)
        } else {
            vec![0.0; front.len()]
        };
        let mut members: Vec<(usize, f64)> = front.into_iter().zip(crowd).collect();
        if out.len() + members.len() > size {
            // The last rank that fits only in part: the least crowded first.
            members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            members.truncate(size - out.len());
        }
        for (i, c) in members {
            if let Some(x) = encode(space, dims, &owned[i].params) {
                out.push(Parent {
                    w: to_working(dims, &x),
                    rank: r,
                    crowd: c,
                });
            }
        }
    }
    out
}

impl Sampler for Nsga2Sampler {
    fn name(&self) -> &'static str {
        "nsga2"
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = make_rng(Some(seed));
    }

    fn ask_multi(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        directions: &[Direction],
    ) -> Result<Suggestion, SamplerError> {
        if directions.is_empty() {
            return Err(SamplerError::Other("nsga2: no objective".into()));
        }
        let dims = space.dims();
        if self.space != space.parameters() {
            self.space = space.parameters().to_vec();
            self.start = None;
            self.parents = None;
        }
        let pop = self.population();
        let visited: HashSet<Vec<u64>> = trials
            .iter()
            .filter_map(|t| encode(space, &dims, &t.params))
            .map(|x| key(&x))
            .collect();
        let is_new = |x: &[f64]| !visited.contains(&key(x));
        let generation = trials.len() / pop;
        let pool: Vec<&Trial> = trials[..(generation * pop).min(trials.len())]
            .iter()
            .filter(|t| {
                t.completed_values()
                    .is_some_and(|v| v.len() == directions.len())
                    && encode(space, &dims, &t.params).is_some()
            })
            .collect();
        if generation == 0 || pool.is_empty() {
            let start = self
                .start
                .get_or_insert_with(|| LatinStart::new(pop, dims.len(), &mut self.rng));
            let x = start.point_or_fresh(trials.len(), &dims, &mut self.rng, is_new);
            return Ok(Suggestion::Params(decode(space, &dims, &x)));
        }
        let cache_key = (generation, pool.len());
        if self.parents.as_ref().is_none_or(|(k, _)| *k != cache_key) {
            let parents = select_parents(&pool, &dims, space, directions, pop);
            self.parents = Some((cache_key, parents));
        }
        let parents = &self.parents.as_ref().expect("set above").1;
        let pm = self
            .cfg
            .mutation_prob
            .unwrap_or(1.0 / dims.len().max(1) as f64);
        let rng = &mut self.rng;
        for _ in 0..32 {
            let a = tournament(parents, None, rng);
            let b = tournament(parents, Some(a), rng);
            let mut w = parents[a].w.clone();
            if rng.random::<f64>() < self.cfg.crossover_prob {
                crossover(&self.cfg, &dims, &mut w, &parents[b].w, rng);
            }
            mutate(&self.cfg, &dims, &mut w, pm, rng);
            let x = from_working(&dims, &w);
            if is_new(&x) {
                return Ok(Suggestion::Params(decode(space, &dims, &x)));
            }
        }
        let x = fresh_random_point(&dims, rng, is_new)
            .unwrap_or_else(|| dims.iter().map(|d| d.sample(rng)).collect());
        Ok(Suggestion::Params(decode(space, &dims, &x)))
    }
}

/// Binary tournament: the lower rank wins, then the larger crowding distance.
/// `other` (the first parent) is avoided when there is a choice.
fn tournament(parents: &[Parent], other: Option<usize>, rng: &mut Xoshiro256PlusPlus) -> usize {
    let n = parents.len();
    let draw = |rng: &mut Xoshiro256PlusPlus| loop {
        let i = rng.random_range(0..n);
        if n == 1 || Some(i) != other {
            return i;
        }
    };
    let (i, j) = (draw(rng), draw(rng));
    let (p, q) = (&parents[i], &parents[j]);
    if q.rank < p.rank || (q.rank == p.rank && q.crowd > p.crowd) {
        j
    } else {
        i
    }
}

fn crossover(
    cfg: &Nsga2Config,
    dims: &[Dim],
    w: &mut [f64],
    other: &[f64],
    rng: &mut Xoshiro256PlusPlus,
) {
    for (j, d) in dims.iter().enumerate() {
        match (cfg.crossover, d) {
            (Crossover::Sbx, Dim::Num(_)) => {
                if rng.random::<f64>() < 0.5 {
                    w[j] = sbx(w[j], other[j], bounds(d), cfg.sbx_eta, rng);
                }
            }
            _ => {
                if rng.random::<f64>() < cfg.swapping_prob {
                    w[j] = other[j];
                }
            }
        }
    }
}

fn mutate(cfg: &Nsga2Config, dims: &[Dim], w: &mut [f64], pm: f64, rng: &mut Xoshiro256PlusPlus) {
    for (j, d) in dims.iter().enumerate() {
        if rng.random::<f64>() >= pm {
            continue;
        }
        w[j] = match (cfg.crossover, d) {
            (Crossover::Sbx, Dim::Num(_)) => polynomial_mutation(w[j], bounds(d), 20.0, rng),
            (_, Dim::Num(n)) => n.warp(d.sample(rng)),
            (_, Dim::Choice(_)) => d.sample(rng),
        };
    }
}

/// One child of simulated binary crossover with bounds (Deb and Agrawal, 1995,
/// in the bounded form of Deb's NSGA-II code): the spread factor's distribution
/// is cut at the bounds, so children stay inside without clamping onto them.
fn sbx(x1: f64, x2: f64, (lo, hi): (f64, f64), eta: f64, rng: &mut Xoshiro256PlusPlus) -> f64 {
    if (x1 - x2).abs() < 1e-14 || hi <= lo {
        return x1;
    }
    let (y1, y2) = if x1 < x2 { (x1, x2) } else { (x2, x1) };
    let u: f64 = rng.random();
    let child = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(eta + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (eta + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
        }
    };
    let bl = child(1.0 + 2.0 * (y1 - lo) / (y2 - y1));
    let c1 = 0.5 * ((y1 + y2) - bl * (y2 - y1));
    let bu = child(1.0 + 2.0 * (hi - y2) / (y2 - y1));
    let c2 = 0.5 * ((y1 + y2) + bu * (y2 - y1));
    let c = if rng.random::<bool>() { c1 } else { c2 };
    c.clamp(lo, hi)
}

/// Deb's polynomial mutation with bounds.
fn polynomial_mutation(
    x: f64,
    (lo, hi): (f64, f64),
    eta: f64,
    rng: &mut Xoshiro256PlusPlus,
) -> f64 {
    if hi <= lo {
        return x;
    }
    let (d1, d2) = ((x - lo) / (hi - lo), (hi - x) / (hi - lo));
    let u: f64 = rng.random();
    let p = 1.0 / (eta + 1.0);
    let dq = if u < 0.5 {
        let v = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - d1).powf(eta + 1.0);
        v.powf(p) - 1.0
    } else {
        let v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - d2).powf(eta + 1.0);
        1.0 - v.powf(p)
    };
    (x + dq * (hi - lo)).clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sbx_and_mutation_stay_in_bounds_and_centre_on_parents() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut sum = 0.0;
        for _ in 0..4000 {
            let c = sbx(0.2, 0.4, (0.0, 1.0), 15.0, &mut rng);
            assert!((0.0..=1.0).contains(&c));
            sum += c;
            let m = polynomial_mutation(0.95, (0.0, 1.0), 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&m));
        }
        // Children spread around the parents' mean.
        assert!((sum / 4000.0 - 0.3).abs() < 0.02, "{}", sum / 4000.0);
    }
}
