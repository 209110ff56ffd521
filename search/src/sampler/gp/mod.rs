//! Gaussian-process Bayesian optimisation.
//!
//! Katib name `bayesianoptimization`. Meant for small budgets (tens to a few
//! hundred trials) of expensive trials: each suggestion costs milliseconds to a
//! few tens of milliseconds, far more than TPE, but typically needs far fewer
//! trials for the same result.
//!
//! Model: inputs scaled to `[0, 1]` (log parameters in log scale; lattice
//! parameters at their lattice points), categoricals compared by equality,
//! outputs standardised; Matérn-5/2 kernel with one lengthscale per parameter,
//! hyperparameters fitted by maximising the marginal likelihood under weak
//! priors (see `model.rs`). Running trials enter the model as if they had
//! returned the worst value seen so far (a pessimistic constant liar), which
//! pushes the acquisition away from them, so concurrent workers spread out
//! instead of crowding around the current optimum.
//!
//! The acquisition is maximised over a few thousand random and near-best
//! candidates, then polished by pattern search from the most promising ones.
//!
//! Unlike Katib's scikit-optimize service, `distribution` is honoured as declared
//! (Katib's service samples every double log-uniformly) and `step` is respected.
//!
//! Settings (Katib names, defaults):
//! - `random_state`: seed (unseeded);
//! - `n_initial_points`: 10 trials from a Latin-hypercube design before the GP is used;
//! - `acq_func`: `EI` (default; computed in log space so it stays informative
//!   when improvement is tiny), `PI`, `LCB`; `gp_hedge` is accepted and means `EI`;
//! - `base_estimator`: only `GP`;
//! - `acq_optimizer`: accepted for compatibility and ignored.

mod model;
mod optim;

use std::collections::HashSet;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

use self::model::{Data, Gp, Hyper, fit_hyper};
use super::{
    LatinStart, Sampler, SamplerError, Suggestion, decode, encode, fresh_random_point, make_rng,
    std_normal,
};
use crate::space::{Dim, ParameterSpec, SearchSpace};
use crate::special::{LN_SQRT_2PI, log_norm_cdf, norm_cdf, norm_pdf};
use crate::trial::{Direction, Trial, TrialState};

/// Acquisition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    ExpectedImprovement,
    ProbabilityOfImprovement,
    LowerConfidenceBound,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpConfig {
    pub seed: Option<u64>,
    pub n_initial_points: usize,
    pub acquisition: Acquisition,
    /// Random candidates scored before local refinement.
    pub n_candidates: usize,
}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            seed: None,
            n_initial_points: 10,
            acquisition: Acquisition::ExpectedImprovement,
            n_candidates: 2000,
        }
    }
}

pub struct GpSampler {
    cfg: GpConfig,
    rng: Xoshiro256PlusPlus,
    start: Option<LatinStart>,
    hyper: Option<Hyper>,
    space: Vec<ParameterSpec>,
}

impl GpSampler {
    pub fn new(cfg: GpConfig) -> Self {
        GpSampler {
            rng: make_rng(cfg.seed),
            cfg,
            start: None,
            hyper: None,
            space: Vec::new(),
        }
    }

    pub fn with_seed(seed: u64) -> Self {
        Self::new(GpConfig {
            seed: Some(seed),
            ..GpConfig::default()
        })
    }
}

/// Maps between parameter values and the GP's unit-cube features.
struct Scaler<'a> {
    dims: &'a [Dim],
}

impl Scaler<'_> {
    fn to_unit(&self, x: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(x)
            .map(|(d, &v)| match d {
                Dim::Num(n) => {
                    let (a, b) = (n.warp(n.lo), n.warp(n.hi));
                    ((n.warp(v) - a) / (b - a)).clamp(0.0, 1.0)
                }
                Dim::Choice(_) => v,
            })
            .collect()
    }

    fn value_at_unit(&self, u: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(u)
            .map(|(d, &v)| match d {
                Dim::Num(n) => {
                    let (a, b) = (n.warp(n.lo), n.warp(n.hi));
                    n.snap(n.unwarp(a + v.clamp(0.0, 1.0) * (b - a)))
                }
                Dim::Choice(_) => v,
            })
            .collect()
    }

    /// Moves lattice coordinates onto the lattice so the acquisition is scored
    /// where the trial would actually run.
    fn snap_unit(&self, u: &mut [f64]) {
        for (j, d) in self.dims.iter().enumerate() {
            if let Dim::Num(n) = d
                && n.step.is_some()
            {
                let (a, b) = (n.warp(n.lo), n.warp(n.hi));
                let v = n.snap(n.unwarp(a + u[j].clamp(0.0, 1.0) * (b - a)));
                u[j] = (n.warp(v) - a) / (b - a);
            }
        }
    }
}

struct Acq<'a> {
    gp: &'a Gp,
    best: f64,
    kind: Acquisition,
    buf: Vec<f64>,
    terms: Vec<f64>,
    evals: usize,
}

impl Acq<'_> {
    /// Larger is better.
    fn score(&mut self, u: &[f64]) -> f64 {
        self.evals += 1;
        let (mean, var) = self.gp.predict(u, &mut self.buf, &mut self.terms);
        let sd = var.sqrt();
        let z = (self.best - mean) / sd;
        match self.kind {
            Acquisition::ExpectedImprovement => sd.ln() + log_h(z),
            Acquisition::ProbabilityOfImprovement => log_norm_cdf(z),
            Acquisition::LowerConfidenceBound => -(mean - 1.96 * sd),
        }
    }
}

/// `ln(z Φ(z) + φ(z))`, the standardised expected improvement, without
/// underflow for very negative `z`.
fn log_h(z: f64) -> f64 {
    if z > -6.0 {
        (z * norm_cdf(z) + norm_pdf(z)).max(f64::MIN_POSITIVE).ln()
    } else {
        let z2 = z * z;
        -0.5 * z2 - LN_SQRT_2PI + (1.0 / z2 - 3.0 / (z2 * z2) + 15.0 / (z2 * z2 * z2)).ln()
    }
}

fn key(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

impl Sampler for GpSampler {
    fn name(&self) -> &'static str {
        "bayesianoptimization"
    }

    fn ask(
        &mut self,
        space: &SearchSpace,
        trials: &[Trial],
        direction: Direction,
    ) -> Result<Suggestion, SamplerError> {
        let dims = space.dims();
        if self.space != space.parameters() {
            self.space = space.parameters().to_vec();
            self.start = None;
            self.hyper = None;
        }
        let d = dims.len();
        let scaler = Scaler { dims: &dims };
        let is_cat: Vec<bool> = dims.iter().map(|d| matches!(d, Dim::Choice(_))).collect();
        let n_choices: Vec<usize> = dims
            .iter()
            .map(|d| {
                if let Dim::Choice(c) = d {
                    c.labels.len()
                } else {
                    0
                }
            })
            .collect();

        let mut xs = Vec::new();
        let mut losses = Vec::new();
        let mut running = Vec::new();
        let mut visited = HashSet::new();
        for t in trials {
            let Some(x) = encode(space, &dims, &t.params) else {
                continue;
            };
            visited.insert(key(&x));
            match (t.state, t.completed_value()) {
                (TrialState::Complete, Some(v)) => {
                    xs.extend(scaler.to_unit(&x));
                    losses.push(direction.loss(v));
                }
                (TrialState::Running, _) => running.push(scaler.to_unit(&x)),
                _ => {}
            }
        }
        let n = losses.len();
        if n < self.cfg.n_initial_points.max(2) {
            let start = self.start.get_or_insert_with(|| {
                LatinStart::new(self.cfg.n_initial_points, d, &mut self.rng)
            });
            let x = start.point_or_fresh(trials.len(), &dims, &mut self.rng, |x| {
                !visited.contains(&key(x))
            });
            return Ok(Suggestion::Params(decode(space, &dims, &x)));
        }

        let mean = losses.iter().sum::<f64>() / n as f64;
        let sd = (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
        let y: Vec<f64> = losses.iter().map(|l| (l - mean) / sd).collect();

        let data = Data {
            x: &xs,
            y: &y,
            d,
            is_cat: &is_cat,
        };
        let mut starts = vec![Hyper::initial(d)];
        if let Some(h) = self.hyper.take() {
            starts.insert(0, h);
        }
        let hyper = fit_hyper(&data, &starts, 60);
        self.hyper = Some(hyper.clone());
        let Some(mut gp) = Gp::new(&data, hyper.clone()) else {
            let x: Vec<f64> = dims.iter().map(|d| d.sample(&mut self.rng)).collect();
            return Ok(Suggestion::Params(decode(space, &dims, &x)));
        };
        if !running.is_empty() {
            let mut buf = Vec::new();
            let mut terms = vec![0.0; d];
            let mut xs2 = xs.clone();
            let mut y2 = y.clone();
            let worst = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for r in &running {
                let (m, _) = gp.predict(r, &mut buf, &mut terms);
                xs2.extend_from_slice(r);
                y2.push(m.max(worst));
            }
            let data2 = Data {
                x: &xs2,
                y: &y2,
                d,
                is_cat: &is_cat,
            };
            if let Some(g) = Gp::new(&data2, hyper) {
                gp = g;
            }
        }
        let best_y = y.iter().copied().fold(f64::INFINITY, f64::min);
        let mut acq = Acq {
            gp: &gp,
            best: best_y,
            kind: self.cfg.acquisition,
            buf: Vec::new(),
            terms: vec![0.0; d],
            evals: 0,
        };

        // Candidate pool: uniform points plus perturbations of the best trials.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| y[a].partial_cmp(&y[b]).expect("finite"));
        let mut pool: Vec<(f64, Vec<f64>)> = Vec::with_capacity(self.cfg.n_candidates + 500);
        let rng = &mut self.rng;
        let random_point = |rng: &mut Xoshiro256PlusPlus| -> Vec<f64> {
            (0..d)
                .map(|j| {
                    if is_cat[j] {
                        rng.random_range(0..n_choices[j]) as f64
                    } else {
                        rng.random::<f64>()
                    }
                })
                .collect()
        };
        for _ in 0..self.cfg.n_candidates {
            let mut u = random_point(rng);
            scaler.snap_unit(&mut u);
            let s = acq.score(&u);
            pool.push((s, u));
        }
        for &i in order.iter().take(5) {
            for k in 0..100 {
                let scale = [0.2, 0.05, 0.01, 0.002][k % 4];
                let mut u: Vec<f64> = xs[i * d..(i + 1) * d].to_vec();
                for j in 0..d {
                    if is_cat[j] {
                        if rng.random::<f64>() < 0.2 {
                            u[j] = rng.random_range(0..n_choices[j]) as f64;
                        }
                    } else {
                        u[j] = (u[j] + scale * std_normal(rng)).clamp(0.0, 1.0);
                    }
                }
                scaler.snap_unit(&mut u);
                let s = acq.score(&u);
                pool.push((s, u));
            }
        }
        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut refined: Vec<(f64, Vec<f64>)> = Vec::new();
        for (s, u) in pool.iter().take(5) {
            refined.push(pattern_search(
                &mut acq,
                &scaler,
                &is_cat,
                &n_choices,
                u.clone(),
                *s,
                400,
            ));
        }
        refined.extend(pool.into_iter().skip(5).take(50));
        refined.sort_by(|a, b| b.0.total_cmp(&a.0));
        let pick = refined
            .iter()
            .map(|(_, u)| scaler.value_at_unit(u))
            .find(|x| !visited.contains(&key(x)))
            .or_else(|| fresh_random_point(&dims, rng, |x| !visited.contains(&key(x))))
            .unwrap_or_else(|| scaler.value_at_unit(&refined[0].1));
        Ok(Suggestion::Params(decode(space, &dims, &pick)))
    }
}

/// Coordinate pattern search (Hooke–Jeeves style) on the unit cube; categorical
/// coordinates try every other choice.
fn pattern_search(
    acq: &mut Acq,
    scaler: &Scaler,
    is_cat: &[bool],
    n_choices: &[usize],
    mut x: Vec<f64>,
    mut fx: f64,
    budget: usize,
) -> (f64, Vec<f64>) {
    let d = x.len();
    let mut step = 0.05;
    let start = acq.evals;
    while step > 1e-7 && acq.evals - start < budget {
        let base = x.clone();
        for j in 0..d {
            if is_cat[j] {
                for c in 0..n_choices[j] {
                    if c as f64 == x[j] {
                        continue;
                    }
                    let mut y = x.clone();
                    y[j] = c as f64;
                    let fy = acq.score(&y);
                    if fy > fx {
                        x = y;
                        fx = fy;
                    }
                }
                continue;
            }
            for dir in [1.0, -1.0] {
                let mut y = x.clone();
                y[j] = (x[j] + dir * step).clamp(0.0, 1.0);
                scaler.snap_unit(&mut y);
                if y[j] == x[j] {
                    continue;
                }
                let fy = acq.score(&y);
                if fy > fx {
                    x = y;
                    fx = fy;
                    break;
                }
            }
        }
        if x == base {
            step *= 0.5;
        } else {
            // Pattern move: keep going in the direction that just worked.
            let mut y: Vec<f64> = x
                .iter()
                .zip(&base)
                .map(|(a, b)| (2.0 * a - b).clamp(0.0, 1.0))
                .collect();
            for j in 0..d {
                if is_cat[j] {
                    y[j] = x[j];
                }
            }
            scaler.snap_unit(&mut y);
            let fy = acq.score(&y);
            if fy > fx {
                x = y;
                fx = fy;
            }
        }
    }
    (fx, x)
}
