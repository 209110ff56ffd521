//! Weighted product-kernel density over the whole search space (the "l(x)" and
//! "g(x)" of TPE). One kernel per observation plus one broad prior kernel.
//!
//! Per dimension a kernel is
//! - a normal truncated to the parameter's interval (in log scale for log
//!   parameters),
//! - for a linear lattice (ints, doubles with `step`): the same normal integrated
//!   over the lattice cell, so densities of neighbouring values are comparable;
//! - for a categorical: most mass on the observed choice, the rest spread evenly
//!   (`prior_weight / kernels` each, as in Optuna).
//!
//! Evaluation is the hot path of `ask` (candidates × kernels × dimensions), so
//! everything that does not depend on the candidate is folded into per-kernel
//! constants up front.

use rand::Rng;
use rand::RngExt;

use crate::sampler::std_normal;
use crate::special::{LN_SQRT_2PI, log_norm_mass};

/// How the estimator treats one dimension, in working coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Axis {
    /// Real line segment `[a, b]` (already log-transformed when needed).
    Cont {
        a: f64,
        b: f64,
    },
    /// Lattice with cells of width `q` covering `[a, b]`.
    Bin {
        a: f64,
        b: f64,
        q: f64,
    },
    Cat {
        k: usize,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ParzenConfig {
    pub prior_weight: f64,
    pub magic_clip: bool,
    /// Bandwidth multiplier of the product-kernel rule.
    pub bandwidth: f64,
    /// Scale the bandwidth by the observations' spread instead of the range.
    pub adaptive: bool,
}

pub(crate) struct Parzen {
    axes: Vec<Axis>,
    n: usize,
    /// Cumulative normalised kernel weights, for drawing a kernel.
    cum_w: Vec<f64>,
    /// Dimension-major `d × n` (a dimension's kernels are contiguous, which lets
    /// the evaluation loops vectorise); unused entries for categorical axes.
    mu: Vec<f64>,
    sigma: Vec<f64>,
    inv_sigma: Vec<f64>,
    /// `ln w_k` plus the normalising constants of every continuous axis.
    log_c: Vec<f64>,
    /// For lattice axes, `ln` of the kernel's mass inside `[a, b]`, laid out like `mu`.
    log_trunc: Vec<f64>,
    /// For categorical axes, `n × k` tables of log-probabilities (indexed by axis).
    cat_logp: Vec<Vec<f64>>,
}

impl Parzen {
    /// `obs` are observations in working coordinates (categoricals as indices),
    /// with their weights; `prior_centre` puts the prior kernel's centre and width
    /// per continuous axis (`None` = middle of the interval, full-width spread).
    pub fn new(
        axes: &[Axis],
        obs: &[&[f64]],
        obs_w: &[f64],
        prior: &[Option<(f64, f64)>],
        cfg: ParzenConfig,
    ) -> Parzen {
        let d = axes.len();
        let m = obs.len();
        let n = m + 1;
        // Scott-style product-kernel rule: bandwidth shrinks with the number of
        // kernels at the rate optimal for a d-dimensional density.
        let shrink = cfg.bandwidth * (n as f64).powf(-1.0 / (d as f64 + 4.0));
        let mut weights: Vec<f64> = obs_w.to_vec();
        weights.push(cfg.prior_weight);
        let total: f64 = weights.iter().sum();
        let mut cum_w = Vec::with_capacity(n);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cum_w.push(acc);
        }
        let mut mu = vec![0.0; n * d];
        let mut sigma = vec![1.0; n * d];
        let mut log_c: Vec<f64> = weights.iter().map(|w| (w / total).ln()).collect();
        let mut log_trunc = vec![0.0; n * d];
        let mut cat_logp = vec![Vec::new(); d];
        for (j, axis) in axes.iter().enumerate() {
            match *axis {
                Axis::Cont { a, b } | Axis::Bin { a, b, .. } => {
                    let range = b - a;
                    let min_s = if cfg.magic_clip {
                        range / (m as f64 + 1.0).min(100.0)
                    } else {
                        range * 1e-6
                    };
                    let spread = if cfg.adaptive && m >= 2 {
                        let wsum: f64 = obs_w.iter().sum();
                        let mean = obs.iter().zip(obs_w).map(|(o, w)| o[j] * w).sum::<f64>() / wsum;
                        let var = obs
                            .iter()
                            .zip(obs_w)
                            .map(|(o, w)| w * (o[j] - mean).powi(2))
                            .sum::<f64>()
                            / wsum;
                        var.sqrt()
                    } else {
                        range
                    };
                    let s = (shrink * spread).clamp(min_s, range);
                    for k in 0..n {
                        let (c, sk) = if k < m {
                            (obs[k][j], s)
                        } else {
                            prior[j].unwrap_or((0.5 * (a + b), range))
                        };
                        mu[j * n + k] = c;
                        sigma[j * n + k] = sk;
                        let lt = log_norm_mass((a - c) / sk, (b - c) / sk);
                        match axis {
                            Axis::Cont { .. } => log_c[k] += -sk.ln() - LN_SQRT_2PI - lt,
                            _ => log_trunc[j * n + k] = lt,
                        }
                    }
                }
                Axis::Cat { k: kc } => {
                    let mut table = vec![0.0; n * kc];
                    // Optuna's smoothing: `prior_weight / kernels` on every choice,
                    // so each kernel grows more decisive as evidence accumulates.
                    let base = cfg.prior_weight / n as f64;
                    for k in 0..n {
                        let row = &mut table[k * kc..(k + 1) * kc];
                        if k < m {
                            let c = obs[k][j] as usize;
                            let z = (1.0 + base * kc as f64).ln();
                            for (i, p) in row.iter_mut().enumerate() {
                                *p = (base + if i == c { 1.0 } else { 0.0 }).ln() - z;
                            }
                        } else {
                            row.fill(-(kc as f64).ln());
                        }
                    }
                    cat_logp[j] = table;
                }
            }
        }
        let inv_sigma = sigma.iter().map(|s| 1.0 / s).collect();
        Parzen {
            axes: axes.to_vec(),
            n,
            cum_w,
            mu,
            sigma,
            inv_sigma,
            log_c,
            log_trunc,
            cat_logp,
        }
    }

    /// One draw in working coordinates (lattice and categorical values are exact).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let u: f64 = rng.random();
        let k = self.cum_w.partition_point(|&c| c < u).min(self.n - 1);
        self.axes
            .iter()
            .enumerate()
            .map(|(j, axis)| match *axis {
                Axis::Cont { a, b } => trunc_normal(
                    rng,
                    self.mu[j * self.n + k],
                    self.sigma[j * self.n + k],
                    a,
                    b,
                ),
                Axis::Bin { a, b, q } => {
                    let x = trunc_normal(
                        rng,
                        self.mu[j * self.n + k],
                        self.sigma[j * self.n + k],
                        a,
                        b,
                    );
                    let lo = a + 0.5 * q;
                    let cells = ((b - a) / q).round() - 1.0;
                    lo + ((x - lo) / q).round().clamp(0.0, cells) * q
                }
                Axis::Cat { k: kc } => {
                    let row = &self.cat_logp[j][k * kc..(k + 1) * kc];
                    let mut u: f64 = rng.random();
                    let mut pick = kc - 1;
                    for (i, lp) in row.iter().enumerate() {
                        u -= lp.exp();
                        if u <= 0.0 {
                            pick = i;
                            break;
                        }
                    }
                    pick as f64
                }
            })
            .collect()
    }

    /// `ln` density (mass, on lattice and categorical axes) at `x`.
    pub fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_c);
        for (j, axis) in self.axes.iter().enumerate() {
            let xj = x[j];
            match *axis {
                Axis::Cont { .. } => {
                    let mu = &self.mu[j * self.n..(j + 1) * self.n];
                    let is = &self.inv_sigma[j * self.n..(j + 1) * self.n];
                    for ((acc, m), i) in scratch.iter_mut().zip(mu).zip(is) {
                        let z = (xj - m) * i;
                        *acc -= 0.5 * z * z;
                    }
                }
                Axis::Bin { q, .. } => {
                    for (k, acc) in scratch.iter_mut().enumerate() {
                        let (m, is) = (self.mu[j * self.n + k], self.inv_sigma[j * self.n + k]);
                        let lo = (xj - 0.5 * q - m) * is;
                        *acc += log_norm_mass(lo, lo + q * is) - self.log_trunc[j * self.n + k];
                    }
                }
                Axis::Cat { k: kc } => {
                    let c = xj as usize;
                    let table = &self.cat_logp[j];
                    for (k, acc) in scratch.iter_mut().enumerate() {
                        *acc += table[k * kc + c];
                    }
                }
            }
        }
        let max = scratch.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        max + scratch.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
    }
}

/// Normal draw restricted to `[a, b]`; rejection is cheap because kernels are
/// centred inside the interval, and clamping after many misses keeps it total.
fn trunc_normal<R: Rng + ?Sized>(rng: &mut R, mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    for _ in 0..64 {
        let x = mu + sigma * std_normal(rng);
        if x >= a && x <= b {
            return x;
        }
    }
    mu.clamp(a, b)
}
