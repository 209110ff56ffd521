//! Parameter importance by functional ANOVA over a random forest ("fANOVA",
//! Hutter, Hoos & Leyton-Brown 2014), the estimator Optuna uses by default.
//!
//! A random forest of regression trees is fitted to the finished trials (objective
//! against parameters). Each tree is a piecewise-constant function on boxes of the
//! search space, so its variance under a uniform distribution over the space, and the
//! variance of its one-parameter marginals (the tree averaged over every other
//! parameter), are exact sums over the leaves. A parameter's importance in one tree is
//! the share of the tree's variance its marginal explains; the importances are
//! averaged over the trees and scaled to sum to 1.
//!
//! Coordinates: numbers as they are (in `ln` for log distributions), a categorical or
//! discrete parameter as its list index, each choice owning a unit-wide slice, so
//! that every choice weighs the same under the uniform distribution.

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

use crate::sampler::make_rng;
use crate::space::{Dim, SearchSpace};
use crate::trial::{Trial, TrialState};

/// Forest settings; the defaults are Optuna's fANOVA evaluator's (64 trees, depth 64,
/// one sample per leaf at least, every parameter considered at every split).
#[derive(Debug, Clone)]
pub struct FanovaOptions {
    pub n_trees: usize,
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Seed of the bootstrap draws, so the same trials give the same importances.
    pub seed: u64,
    /// Fit on at most this many trials (a seeded random subset of them): importance
    /// settles long before, and a 10 000-trial experiment must still show quickly.
    pub max_samples: usize,
}

impl Default for FanovaOptions {
    fn default() -> Self {
        FanovaOptions {
            n_trees: 64,
            max_depth: 64,
            min_samples_split: 2,
            min_samples_leaf: 1,
            seed: 0,
            max_samples: 1000,
        }
    }
}

/// One parameter's share of the objective's variance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParamImportance {
    pub name: String,
    /// In `[0, 1]`; the importances of a space sum to 1 unless every one is 0.
    pub importance: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportanceError {
    #[error("parameter importance needs at least 2 completed trials (have {0})")]
    TooFewTrials(usize),
}

/// Importance of every parameter of `space`, most important first (ties by name
/// order in the space). Only `Complete` trials with a finite value and a feasible
/// value for every parameter are used. When the objective never varies, every
/// importance is 0.
pub fn fanova(
    space: &SearchSpace,
    trials: &[Trial],
    opts: &FanovaOptions,
) -> Result<Vec<ParamImportance>, ImportanceError> {
    let dims = space.dims();
    let bounds: Vec<(f64, f64)> = dims.iter().map(domain).collect();
    let mut xs: Vec<Vec<f64>> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    'trials: for t in trials {
        let Some(y) = t
            .value
            .filter(|v| t.state == TrialState::Complete && v.is_finite())
        else {
            continue;
        };
        let mut row = Vec::with_capacity(dims.len());
        for (spec, dim) in space.parameters().iter().zip(&dims) {
            let Some(x) = t.params.get(&spec.name).and_then(|v| dim.encode(v)) else {
                continue 'trials;
            };
            row.push(working(dim, x));
        }
        xs.push(row);
        ys.push(y);
    }
    if xs.len() < 2 {
        return Err(ImportanceError::TooFewTrials(xs.len()));
    }
    let mut rng = make_rng(Some(opts.seed));
    if xs.len() > opts.max_samples.max(2) {
        // Partial Fisher-Yates: the first `max_samples` become a uniform subset.
        let k = opts.max_samples.max(2);
        for i in 0..k {
            let j = rng.random_range(i..xs.len());
            xs.swap(i, j);
            ys.swap(i, j);
        }
        xs.truncate(k);
        ys.truncate(k);
    }
    let mut sums = vec![0.0; dims.len()];
    let mut counted = 0usize;
    for _ in 0..opts.n_trees.max(1) {
        let sample: Vec<usize> = (0..xs.len())
            .map(|_| rng.random_range(0..xs.len()))
            .collect();
        let tree = Tree::fit(&xs, &ys, sample, opts, &mut rng);
        if let Some(shares) = tree.variance_shares(&bounds) {
            for (s, v) in sums.iter_mut().zip(shares) {
                *s += v;
            }
            counted += 1;
        }
    }
    let mut out: Vec<ParamImportance> = space
        .parameters()
        .iter()
        .zip(&sums)
        .map(|(p, s)| ParamImportance {
            name: p.name.clone(),
            importance: if counted == 0 {
                0.0
            } else {
                s / counted as f64
            },
        })
        .collect();
    let total: f64 = out.iter().map(|p| p.importance).sum();
    if total > 0.0 {
        for p in &mut out {
            p.importance /= total;
        }
    }
    // Stable sort keeps the space's order among equals.
    out.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    Ok(out)
}

/// The interval a parameter's working coordinate covers.
fn domain(dim: &Dim) -> (f64, f64) {
    match dim {
        Dim::Num(d) => {
            let (lo, hi) = if d.log() {
                (d.lo.ln(), d.hi.ln())
            } else {
                (d.lo, d.hi)
            };
            // On a lattice each point owns half a step either side, so that the
            // uniform measure weighs the end points like the inner ones.
            match d.step {
                Some(s) if !d.log() => (lo - s / 2.0, hi + s / 2.0),
                _ => (lo, hi),
            }
        }
        Dim::Choice(c) => (-0.5, c.labels.len() as f64 - 0.5),
    }
}

fn working(dim: &Dim, x: f64) -> f64 {
    match dim {
        Dim::Num(d) if d.log() => x.ln(),
        _ => x,
    }
}

enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn fit(
        xs: &[Vec<f64>],
        ys: &[f64],
        sample: Vec<usize>,
        opts: &FanovaOptions,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Tree {
        // The sample sorted once by each feature; splits keep each list sorted, so
        // no node sorts again (CART's presorting).
        let d = xs.first().map_or(0, Vec::len);
        let sorted: Vec<Vec<usize>> = (0..d)
            .map(|f| {
                let mut s = sample.clone();
                s.sort_by(|&a, &b| xs[a][f].total_cmp(&xs[b][f]));
                s
            })
            .collect();
        let mut tree = Tree { nodes: Vec::new() };
        tree.grow(xs, ys, sorted, 0, opts, rng);
        tree
    }

    /// Adds the subtree for the samples in `sorted` (one list per feature, each the
    /// same samples in that feature's order) and returns its node index.
    fn grow(
        &mut self,
        xs: &[Vec<f64>],
        ys: &[f64],
        sorted: Vec<Vec<usize>>,
        depth: usize,
        opts: &FanovaOptions,
        rng: &mut Xoshiro256PlusPlus,
    ) -> usize {
        let n = sorted[0].len();
        let mean = sorted[0].iter().map(|&i| ys[i]).sum::<f64>() / n as f64;
        let me = self.nodes.len();
        self.nodes.push(Node::Leaf(mean));
        if n < opts.min_samples_split.max(2) || depth >= opts.max_depth {
            return me;
        }
        let Some((feature, threshold)) = best_split(xs, ys, &sorted, opts.min_samples_leaf, rng)
        else {
            return me;
        };
        let mut left = Vec::with_capacity(sorted.len());
        let mut right = Vec::with_capacity(sorted.len());
        for list in sorted {
            let (l, r): (Vec<usize>, Vec<usize>) =
                list.into_iter().partition(|&i| xs[i][feature] <= threshold);
            left.push(l);
            right.push(r);
        }
        let left = self.grow(xs, ys, left, depth + 1, opts, rng);
        let right = self.grow(xs, ys, right, depth + 1, opts, rng);
        self.nodes[me] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        me
    }

    /// Every leaf as (value, box), the boxes partitioning `bounds`.
    fn leaves(&self, bounds: &[(f64, f64)]) -> Vec<(f64, Vec<(f64, f64)>)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, bounds.to_vec())];
        while let Some((n, b)) = stack.pop() {
            match &self.nodes[n] {
                Node::Leaf(v) => out.push((*v, b)),
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    let (lo, hi) = b[*feature];
                    let t = threshold.clamp(lo, hi);
                    let mut lb = b.clone();
                    lb[*feature].1 = t;
                    let mut rb = b;
                    rb[*feature].0 = t;
                    stack.push((*left, lb));
                    stack.push((*right, rb));
                }
            }
        }
        out
    }

    /// Each feature's marginal variance over the tree's total variance, under the
    /// uniform distribution on `bounds`; `None` when the tree is constant.
    fn variance_shares(&self, bounds: &[(f64, f64)]) -> Option<Vec<f64>> {
        let leaves = self.leaves(bounds);
        let frac = |f: usize, (lo, hi): (f64, f64)| {
            let range = bounds[f].1 - bounds[f].0;
            if range > 0.0 { (hi - lo) / range } else { 1.0 }
        };
        let weights: Vec<f64> = leaves
            .iter()
            .map(|(_, b)| b.iter().enumerate().map(|(f, iv)| frac(f, *iv)).product())
            .collect();
        let mean: f64 = leaves.iter().zip(&weights).map(|((v, _), w)| v * w).sum();
        let total: f64 = leaves
            .iter()
            .zip(&weights)
            .map(|((v, _), w)| w * (v - mean).powi(2))
            .sum();
        if total.is_nan() || total <= 1e-300 {
            return None;
        }
        let mut shares = Vec::with_capacity(bounds.len());
        for f in 0..bounds.len() {
            // The tree's cut points on this feature split its range into intervals
            // on which the marginal is constant.
            let mut cuts: Vec<f64> = leaves.iter().flat_map(|(_, b)| [b[f].0, b[f].1]).collect();
            cuts.sort_by(f64::total_cmp);
            cuts.dedup();
            if cuts.len() < 3 {
                // Never split on: its marginal is the constant mean.
                shares.push(0.0);
                continue;
            }
            // Each leaf adds its value, weighted by its share of the other features,
            // to every interval it spans: a difference array makes that one add at
            // its first interval and one subtract past its last, instead of a loop
            // over the intervals (leaves × intervals was most of the time).
            let mut delta = vec![0.0; cuts.len()];
            for ((v, b), w) in leaves.iter().zip(&weights) {
                let fw = frac(f, b[f]);
                if fw <= 0.0 {
                    continue;
                }
                let rest = w / fw;
                let start = cuts.partition_point(|c| *c < b[f].0);
                let end = cuts.partition_point(|c| *c < b[f].1);
                delta[start] += v * rest;
                delta[end] -= v * rest;
            }
            let mut marginal = vec![0.0; cuts.len() - 1];
            let mut acc = 0.0;
            for (m, d) in marginal.iter_mut().zip(&delta) {
                acc += d;
                *m = acc;
            }
            let var: f64 = marginal
                .iter()
                .enumerate()
                .map(|(k, m)| frac(f, (cuts[k], cuts[k + 1])) * (m - mean).powi(2))
                .sum();
            shares.push((var / total).clamp(0.0, 1.0));
        }
        Some(shares)
    }
}

/// The split (feature, threshold) that lowers the squared error most, thresholds
/// halfway between neighbouring distinct values; features are tried in a random
/// order so ties do not always go to the first parameter. `sorted[f]` holds the
/// node's samples in the order of feature `f`.
fn best_split(
    xs: &[Vec<f64>],
    ys: &[f64],
    sorted: &[Vec<usize>],
    min_leaf: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Option<(usize, f64)> {
    let idx = &sorted[0];
    let n = idx.len();
    let min_leaf = min_leaf.max(1);
    let total_sum: f64 = idx.iter().map(|&i| ys[i]).sum();
    let total_sq: f64 = idx.iter().map(|&i| ys[i] * ys[i]).sum();
    let parent_sse = total_sq - total_sum * total_sum / n as f64;
    if parent_sse <= 1e-12 * total_sq.abs().max(1e-300) {
        return None;
    }
    let d = sorted.len();
    let mut order: Vec<usize> = (0..d).collect();
    for i in (1..d).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut best: Option<(f64, usize, f64)> = None;
    for f in order {
        let list = &sorted[f];
        let (mut ls, mut lq) = (0.0, 0.0);
        for k in 0..n - 1 {
            let y = ys[list[k]];
            ls += y;
            lq += y * y;
            let left_n = k + 1;
            let (a, b) = (xs[list[k]][f], xs[list[k + 1]][f]);
            if a == b || left_n < min_leaf || n - left_n < min_leaf {
                continue;
            }
            let (rs, rq) = (total_sum - ls, total_sq - lq);
            let sse = (lq - ls * ls / left_n as f64) + (rq - rs * rs / (n - left_n) as f64);
            if best.is_none_or(|(s, _, _)| sse < s - 1e-12 * parent_sse.abs()) {
                best = Some((sse, f, a + (b - a) / 2.0));
            }
        }
    }
    best.filter(|(sse, _, _)| *sse < parent_sse)
        .map(|(_, f, t)| (f, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{ParamValue, ParameterSpec, Params};

    fn trial(number: u64, params: Params, value: f64) -> Trial {
        let mut t = Trial::running(number, params);
        t.state = TrialState::Complete;
        t.value = Some(value);
        t
    }

    fn uniform_trials(n: usize, f: impl Fn(f64, f64, f64) -> f64) -> Vec<Trial> {
        let mut rng = make_rng(Some(7));
        (0..n)
            .map(|i| {
                let (a, b, c) = (
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..1.0),
                );
                let p: Params = [
                    ("x1".to_string(), ParamValue::Double(a)),
                    ("x2".to_string(), ParamValue::Double(b)),
                    ("x3".to_string(), ParamValue::Double(c)),
                ]
                .into();
                trial(i as u64, p, f(a, b, c))
            })
            .collect()
    }

    fn space3() -> SearchSpace {
        SearchSpace::new(vec![
            ParameterSpec::double("x1", 0.0, 1.0),
            ParameterSpec::double("x2", 0.0, 1.0),
            ParameterSpec::double("x3", 0.0, 1.0),
        ])
        .unwrap()
    }

    fn get(imp: &[ParamImportance], name: &str) -> f64 {
        imp.iter().find(|p| p.name == name).unwrap().importance
    }

    #[test]
    fn a_function_of_one_parameter_gives_it_all_the_importance() {
        let trials = uniform_trials(200, |a, _, _| (6.0 * a).sin());
        let imp = fanova(&space3(), &trials, &FanovaOptions::default()).unwrap();
        assert_eq!(imp[0].name, "x1");
        assert!(get(&imp, "x1") > 0.97, "{imp:?}");
        let sum: f64 = imp.iter().map(|p| p.importance).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn additive_terms_share_the_variance_by_their_size() {
        // Var(2·x1) = 4·Var(x2): x1 should get about 0.8, x2 about 0.2.
        let trials = uniform_trials(400, |a, b, _| 2.0 * a + b);
        let imp = fanova(&space3(), &trials, &FanovaOptions::default()).unwrap();
        let (x1, x2, x3) = (get(&imp, "x1"), get(&imp, "x2"), get(&imp, "x3"));
        assert!((x1 - 0.8).abs() < 0.08, "{imp:?}");
        assert!((x2 - 0.2).abs() < 0.08, "{imp:?}");
        assert!(x3 < 0.03, "{imp:?}");
    }

    #[test]
    fn categorical_and_log_parameters() {
        let space = SearchSpace::new(vec![
            ParameterSpec::categorical("kernel", &["linear", "rbf", "poly"]),
            ParameterSpec::double("lr", 1e-4, 1.0).log(),
        ])
        .unwrap();
        let mut rng = make_rng(Some(3));
        let trials: Vec<Trial> = (0..150)
            .map(|i| {
                let k = ["linear", "rbf", "poly"][rng.random_range(0..3)];
                let lr = 10f64.powf(rng.random_range(-4.0..0.0));
                let v = match k {
                    "rbf" => 0.9,
                    "poly" => 0.5,
                    _ => 0.1,
                } + 0.001 * lr.log10();
                let p: Params = [
                    ("kernel".to_string(), ParamValue::Categorical(k.into())),
                    ("lr".to_string(), ParamValue::Double(lr)),
                ]
                .into();
                trial(i, p, v)
            })
            .collect();
        let imp = fanova(&space, &trials, &FanovaOptions::default()).unwrap();
        assert_eq!(imp[0].name, "kernel");
        assert!(imp[0].importance > 0.95, "{imp:?}");
    }

    #[test]
    fn failed_trials_are_ignored_and_too_few_is_an_error() {
        let mut trials = uniform_trials(1, |a, _, _| a);
        let mut failed = trials[0].clone();
        failed.state = TrialState::Failed;
        trials.push(failed);
        assert_eq!(
            fanova(&space3(), &trials, &FanovaOptions::default()),
            Err(ImportanceError::TooFewTrials(1))
        );
    }

    #[test]
    fn a_subsample_of_many_trials_still_finds_the_parameter() {
        let trials = uniform_trials(3000, |a, _, _| (6.0 * a).sin());
        let opts = FanovaOptions {
            max_samples: 300,
            ..FanovaOptions::default()
        };
        let imp = fanova(&space3(), &trials, &opts).unwrap();
        assert!(get(&imp, "x1") > 0.95, "{imp:?}");
    }

    #[test]
    fn a_constant_objective_gives_zero_everywhere_and_is_deterministic() {
        let trials = uniform_trials(20, |_, _, _| 1.0);
        let imp = fanova(&space3(), &trials, &FanovaOptions::default()).unwrap();
        assert!(imp.iter().all(|p| p.importance == 0.0));
        let trials = uniform_trials(50, |a, b, c| a * b + c);
        let opts = FanovaOptions::default();
        assert_eq!(
            fanova(&space3(), &trials, &opts).unwrap(),
            fanova(&space3(), &trials, &opts).unwrap()
        );
    }
}
