//! Several objectives: Pareto dominance, non-dominated sorting, the Pareto
//! front of a study and its hypervolume.
//!
//! Conventions:
//! - Objective values come with a [`Direction`] each. The functions on raw
//!   points (`&[Vec<f64>]`) take *losses* (every objective to be minimised,
//!   see [`to_losses`]); the ones on trials take the directions and convert.
//! - Constraints follow Optuna: a trial is feasible when every constraint value
//!   is `<= 0` ([`Trial::is_feasible`]). Feasible trials rank before infeasible
//!   ones, and infeasible ones are compared by total violation
//!   ([`Trial::violation`]); this is Deb's constrained domination
//!   ([`constrained_dominates`]).
//! - The hypervolume is the volume dominated by the points and bounded by a
//!   reference point, which must be worse than every point that should count
//!   on every objective (for a minimised objective: larger, for a maximised one:
//!   smaller). Points not strictly better than the reference on every objective
//!   add nothing. Exact for any number of objectives: a sweep for 2, the WFG
//!   algorithm (While, Bradstreet and Barone, 2012) above.
//!
//! ```
//! use kale_search::{Direction, Params, Trial};
//! use kale_search::pareto::{pareto_front, trials_hypervolume};
//!
//! let dirs = [Direction::Maximize, Direction::Minimize]; // accuracy, latency
//! let t = |n, acc, ms| Trial::complete_multi(n, Params::new(), vec![acc, ms]);
//! let trials = vec![t(0, 0.90, 30.0), t(1, 0.95, 80.0), t(2, 0.85, 40.0),
//!                   t(3, 0.97, 60.0).with_constraints(vec![12.0])]; // model too big
//! let front: Vec<u64> = pareto_front(&trials, &dirs).iter().map(|t| t.number).collect();
//! assert_eq!(front, [0, 1]);
//! // Reference: accuracy 0.8, latency 100 ms.
//! let hv = trials_hypervolume(&trials, &dirs, &[0.8, 100.0]);
//! assert!((hv - (0.10 * 70.0 + 0.05 * 20.0)).abs() < 1e-9);
//! ```

use std::cmp::Ordering;

use crate::trial::{Direction, Trial};

/// The values as losses (maximised objectives negated).
pub fn to_losses(values: &[f64], directions: &[Direction]) -> Vec<f64> {
    values
        .iter()
        .zip(directions)
        .map(|(&v, d)| d.loss(v))
        .collect()
}

/// Whether loss vector `a` Pareto-dominates `b`: no worse on every objective
/// and strictly better on at least one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        strictly |= x < y;
    }
    strictly
}

/// [`dominates`] on objective values with their directions.
pub fn dominates_with(a: &[f64], b: &[f64], directions: &[Direction]) -> bool {
    dominates(&to_losses(a, directions), &to_losses(b, directions))
}

/// Deb's constrained domination between two completed trials: a feasible
/// trial beats an infeasible one, of two infeasible ones the smaller total
/// violation wins, and two feasible ones compare by Pareto dominance. `false`
/// when either trial has no usable values.
pub fn constrained_dominates(a: &Trial, b: &Trial, directions: &[Direction]) -> bool {
    let (Some(va), Some(vb)) = (a.completed_values(), b.completed_values()) else {
        return false;
    };
    match (a.is_feasible(), b.is_feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation() < b.violation(),
        (true, true) => dominates_with(va, vb, directions),
    }
}

/// Non-domination rank of each loss vector: 0 for the Pareto front, 1 for the
/// front of what remains, and so on (Deb's fast non-dominated sort,
/// `O(M N²)`). Equal vectors share a rank.
pub fn non_dominated_sort(points: &[Vec<f64>]) -> Vec<usize> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(&points[i], &points[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut rank = vec![usize::MAX; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut r = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            rank[i] = r;
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        current = next;
        r += 1;
    }
    rank
}

/// Ranks of trials under constrained domination: completed feasible trials by
/// non-dominated sorting, then completed infeasible ones, each a rank of its
/// own in order of violation (equal violations share one). `None` for trials
/// that did not complete with usable values.
pub fn constrained_ranks(trials: &[Trial], directions: &[Direction]) -> Vec<Option<usize>> {
    let mut out = vec![None; trials.len()];
    let feasible: Vec<usize> = (0..trials.len())
        .filter(|&i| usable(&trials[i], directions) && trials[i].is_feasible())
        .collect();
    let losses: Vec<Vec<f64>> = feasible
        .iter()
        .map(|&i| to_losses(trials[i].completed_values().expect("usable"), directions))
        .collect();
    let ranks = non_dominated_sort(&losses);
    let base = ranks.iter().max().map_or(0, |r| r + 1);
    for (&i, r) in feasible.iter().zip(ranks) {
        out[i] = Some(r);
    }
    let mut infeasible: Vec<usize> = (0..trials.len())
        .filter(|&i| usable(&trials[i], directions) && !trials[i].is_feasible())
        .collect();
    infeasible.sort_by(|&a, &b| trials[a].violation().total_cmp(&trials[b].violation()));
    let mut r = base;
    for (k, &i) in infeasible.iter().enumerate() {
        if k > 0 && trials[i].violation() > trials[infeasible[k - 1]].violation() {
            r += 1;
        }
        out[i] = Some(r);
    }
    out
}

fn usable(t: &Trial, directions: &[Direction]) -> bool {
    t.completed_values()
        .is_some_and(|v| v.len() == directions.len())
}

/// The feasible completed trials that no other feasible completed trial
/// dominates, in trial order. Trials with equal values are all kept.
pub fn pareto_front<'a>(trials: &'a [Trial], directions: &[Direction]) -> Vec<&'a Trial> {
    let cand: Vec<&Trial> = trials
        .iter()
        .filter(|t| usable(t, directions) && t.is_feasible())
        .collect();
    let losses: Vec<Vec<f64>> = cand
        .iter()
        .map(|t| to_losses(t.completed_values().expect("usable"), directions))
        .collect();
    let ranks = non_dominated_sort(&losses);
    cand.into_iter()
        .zip(ranks)
        .filter(|(_, r)| *r == 0)
        .map(|(t, _)| t)
        .collect()
}

/// The best feasible completed trial of a single-objective study (the
/// earliest among ties), or `None` when no trial is feasible.
pub fn best_feasible(trials: &[Trial], direction: Direction) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.is_feasible())
        .filter_map(|t| t.completed_value().map(|v| (t, v)))
        .fold(None, |best: Option<(&Trial, f64)>, (t, v)| match best {
            Some((b, bv)) if !direction.better(v, bv) => Some((b, bv)),
            _ => Some((t, v)),
        })
        .map(|(t, _)| t)
}

/// Hypervolume of the feasible completed trials, with the reference point in
/// the objectives' own units (see the [module docs](self)).
pub fn trials_hypervolume(trials: &[Trial], directions: &[Direction], reference: &[f64]) -> f64 {
    let r = to_losses(reference, directions);
    let pts: Vec<Vec<f64>> = trials
        .iter()
        .filter(|t| usable(t, directions) && t.is_feasible())
        .map(|t| to_losses(t.completed_values().expect("usable"), directions))
        .collect();
    hypervolume(&pts, &r)
}

/// Hypervolume of loss vectors with respect to the reference loss vector:
/// the volume of the points `y` with `p <= y <= reference` for some `p`.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let m = reference.len();
    let pts: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.len() == m && p.iter().zip(reference).all(|(x, r)| x < r))
        .cloned()
        .collect();
    match m {
        0 => 0.0,
        1 => pts.iter().map(|p| reference[0] - p[0]).fold(0.0, f64::max),
        2 => hv2(&pts, reference),
        3 => hv3(&pts, reference),
        _ => wfg(non_dominated(pts), reference),
    }
}

/// The non-dominated points, duplicates removed.
fn non_dominated(mut pts: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    // Lexicographic order: a point can only be dominated by one before it.
    pts.sort_by(|a, b| lex(a, b));
    pts.dedup();
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(pts.len());
    for p in pts {
        if !out.iter().any(|q| dominates(q, &p)) {
            out.push(p);
        }
    }
    out
}

fn lex(a: &[f64], b: &[f64]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// 2-d hypervolume by a sweep over the first loss (dominated and repeated
/// points add nothing), `O(n log n)`.
fn hv2(pts: &[Vec<f64>], r: &[f64]) -> f64 {
    let mut sorted: Vec<&Vec<f64>> = pts.iter().collect();
    sorted.sort_by(|a, b| a[0].total_cmp(&b[0]).then(b[1].total_cmp(&a[1])));
    let mut hv = 0.0;
    let mut y_prev = r[1];
    for p in sorted {
        if p[1] < y_prev {
            hv += (r[0] - p[0]) * (y_prev - p[1]);
            y_prev = p[1];
        }
    }
    hv
}

/// 3-d hypervolume by slices along the last loss: between consecutive values
/// of it, the 2-d hypervolume of the points below, `O(n² log n)`.
fn hv3(pts: &[Vec<f64>], r: &[f64]) -> f64 {
    let mut sorted: Vec<&Vec<f64>> = pts.iter().collect();
    sorted.sort_by(|a, b| a[2].total_cmp(&b[2]));
    let mut slice: Vec<Vec<f64>> = Vec::with_capacity(sorted.len());
    let mut total = 0.0;
    for (i, p) in sorted.iter().enumerate() {
        slice.push(vec![p[0], p[1]]);
        let top = sorted.get(i + 1).map_or(r[2], |q| q[2]);
        if top > p[2] {
            total += hv2(&slice, r) * (top - p[2]);
        }
    }
    total
}

/// WFG: the sum of each point's exclusive hypervolume over those after it,
/// computed as its box minus the hypervolume of the later points limited to
/// that box. `pts` are non-dominated and strictly inside the reference.
fn wfg(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    let m = r.len();
    if m <= 3 {
        return if m == 3 { hv3(&pts, r) } else { hv2(&pts, r) };
    }
    match pts.len() {
        0 => return 0.0,
        1 => return inclusive(&pts[0], r),
        _ => {}
    }
    // Sorting by the last objective, worst first, keeps the limited sets small.
    pts.sort_by(|a, b| b[m - 1].total_cmp(&a[m - 1]));
    let mut total = 0.0;
    for k in 0..pts.len() {
        let limited: Vec<Vec<f64>> = pts[k + 1..]
            .iter()
            .map(|q| q.iter().zip(&pts[k]).map(|(a, b)| a.max(*b)).collect())
            .collect();
        total += inclusive(&pts[k], r) - wfg(non_dominated(limited), r);
    }
    total
}

fn inclusive(p: &[f64], r: &[f64]) -> f64 {
    p.iter().zip(r).map(|(a, b)| b - a).product()
}

/// Each point's exclusive contribution: the hypervolume lost when it alone is
/// removed (0 for dominated points and for all but one of equal points).
pub fn hypervolume_contributions(points: &[Vec<f64>], reference: &[f64]) -> Vec<f64> {
    let total = hypervolume(points, reference);
    (0..points.len())
        .map(|i| {
            let rest: Vec<Vec<f64>> = points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p.clone())
                .collect();
            (total - hypervolume(&rest, reference)).max(0.0)
        })
        .collect()
}

/// Optuna's reference point for a set of loss vectors when none is given: the
/// worst loss on each objective pushed 10% further out (`1e-12` for a 0).
pub fn default_reference(points: &[Vec<f64>]) -> Vec<f64> {
    let m = points.first().map_or(0, Vec::len);
    (0..m)
        .map(|j| {
            let w = points
                .iter()
                .map(|p| p[j])
                .fold(f64::NEG_INFINITY, f64::max);
            if w == 0.0 {
                1e-12
            } else {
                (1.1 * w).max(0.9 * w)
            }
        })
        .collect()
}

/// Greedy hypervolume subset selection: `k` indices of `points`, each step
/// adding the point that adds most hypervolume to those already chosen (what
/// Optuna's TPE uses to break ties inside a non-domination rank). Ties go to
/// the earlier index. Lazy: a point's gain can only shrink as the set grows
/// (hypervolume is submodular), so a stale gain is an upper bound and only
/// the current leader is recomputed — the same choices at a fraction of the
/// hypervolume computations.
pub fn greedy_hv_subset(points: &[Vec<f64>], k: usize, reference: &[f64]) -> Vec<usize> {
    let k = k.min(points.len());
    let mut bound: Vec<f64> = points
        .iter()
        .map(|p| hypervolume(std::slice::from_ref(p), reference))
        .collect();
    // Whether `bound[i]` is exact for the current chosen set.
    let mut fresh = vec![true; points.len()];
    let mut taken = vec![false; points.len()];
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut chosen_pts: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut base = 0.0;
    while chosen.len() < k {
        // The leader by bound, earlier index on ties.
        let lead = (0..points.len())
            .filter(|&i| !taken[i])
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) if bound[b] >= bound[i] => Some(b),
                _ => Some(i),
            })
            .expect("k <= points");
        if !fresh[lead] {
            chosen_pts.push(points[lead].clone());
            bound[lead] = (hypervolume(&chosen_pts, reference) - base).max(0.0);
            chosen_pts.pop();
            fresh[lead] = true;
            continue;
        }
        taken[lead] = true;
        base += bound[lead];
        chosen.push(lead);
        chosen_pts.push(points[lead].clone());
        fresh.iter_mut().for_each(|f| *f = false);
    }
    chosen
}

/// Crowding distance of each point of one front (NSGA-II): the normalised
/// perimeter of the box spanned by its neighbours on every objective; the
/// extremes of each objective get infinity.
pub fn crowding_distance(points: &[Vec<f64>]) -> Vec<f64> {
    let n = points.len();
    let mut d = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let m = points[0].len();
    let mut idx: Vec<usize> = (0..n).collect();
    #[allow(clippy::needless_range_loop)] // j indexes inside every point
    for j in 0..m {
        idx.sort_by(|&a, &b| points[a][j].total_cmp(&points[b][j]).then(a.cmp(&b)));
        let (lo, hi) = (points[idx[0]][j], points[idx[n - 1]][j]);
        d[idx[0]] = f64::INFINITY;
        d[idx[n - 1]] = f64::INFINITY;
        if hi > lo {
            for w in 1..n - 1 {
                d[idx[w]] += (points[idx[w + 1]][j] - points[idx[w - 1]][j]) / (hi - lo);
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervolume_2d_by_hand() {
        // Boxes to (4, 4): (1,3) adds 3·1, (2,2) adds 2·1 more, (3,1) 1·1 more.
        let pts = vec![
            vec![1.0, 3.0],
            vec![3.0, 1.0],
            vec![2.0, 2.0],
            vec![2.5, 2.5],
        ];
        assert_eq!(hypervolume(&pts, &[4.0, 4.0]), 6.0);
        // A point outside the reference on one axis counts for nothing.
        let mut more = pts.clone();
        more.push(vec![0.0, 5.0]);
        assert_eq!(hypervolume(&more, &[4.0, 4.0]), 6.0);
        // (2,2) alone covers [2,3]², less the corner (2.5,2.5) also covers.
        assert_eq!(
            hypervolume_contributions(&pts, &[4.0, 4.0]),
            vec![1.0, 1.0, 0.75, 0.0]
        );
    }

    #[test]
    fn hypervolume_3d_matches_inclusion_exclusion() {
        // Two boxes to (2,2,2): 1·2·2 + 2·1·2 − overlap 1·1·2, plus a third
        // point; checked against inclusion–exclusion over all subsets.
        let pts = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.5],
        ];
        let r = [2.0, 2.0, 2.0];
        let mut ie = 0.0;
        for mask in 1u32..8 {
            let members: Vec<&Vec<f64>> = (0..3)
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| &pts[i])
                .collect();
            let corner: Vec<f64> = (0..3)
                .map(|j| {
                    members
                        .iter()
                        .map(|p| p[j])
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect();
            let sign = if members.len() % 2 == 1 { 1.0 } else { -1.0 };
            ie += sign * inclusive(&corner, &r);
        }
        assert!((hypervolume(&pts, &r) - ie).abs() < 1e-12, "{ie}");
        assert!((ie - (4.0 + 4.0 + 2.0 - 2.0 - 1.0 - 1.0 + 1.0 * 1.0 * 0.5)).abs() < 1e-12);
        // 4 objectives, one point: its box.
        assert_eq!(hypervolume(&[vec![0.5; 4]], &[1.0; 4]), 0.0625);
        // The 3-d slices and WFG (4 objectives) against inclusion–exclusion
        // on pseudo-random points, some dominated.
        for m in [3usize, 4] {
            let mut s = 12345u64;
            let mut next = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64
            };
            let pts: Vec<Vec<f64>> = (0..7).map(|_| (0..m).map(|_| next()).collect()).collect();
            let r = vec![1.0; m];
            let mut ie = 0.0;
            for mask in 1u32..(1 << pts.len()) {
                let members: Vec<&Vec<f64>> = (0..pts.len())
                    .filter(|i| mask >> i & 1 == 1)
                    .map(|i| &pts[i])
                    .collect();
                let corner: Vec<f64> = (0..m)
                    .map(|j| {
                        members
                            .iter()
                            .map(|p| p[j])
                            .fold(f64::NEG_INFINITY, f64::max)
                    })
                    .collect();
                let sign = if members.len() % 2 == 1 { 1.0 } else { -1.0 };
                ie += sign * inclusive(&corner, &r);
            }
            let hv = hypervolume(&pts, &r);
            assert!((hv - ie).abs() < 1e-12, "{m}: {hv} vs {ie}");
        }
    }

    #[test]
    fn non_dominated_sort_by_hand() {
        let pts = vec![
            vec![1.0, 5.0], // front 0
            vec![2.0, 2.0], // front 0
            vec![3.0, 3.0], // dominated by (2,2)
            vec![4.0, 4.0], // dominated by (3,3)
            vec![5.0, 1.0], // front 0
            vec![2.0, 2.0], // equal to a front point: same rank
        ];
        assert_eq!(non_dominated_sort(&pts), vec![0, 0, 1, 2, 0, 0]);
    }

    #[test]
    fn greedy_subset_prefers_spread() {
        // Of three front points, one pick: the middle one has the largest box.
        let pts = vec![vec![0.0, 3.0], vec![1.5, 1.5], vec![3.0, 0.0]];
        assert_eq!(greedy_hv_subset(&pts, 1, &[4.0, 4.0]), vec![1]);
        let two = greedy_hv_subset(&pts, 2, &[4.0, 4.0]);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0], 1);
    }

    #[test]
    fn lazy_greedy_matches_plain_greedy() {
        let mut s = 99u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for m in [2usize, 3] {
            // Points on a front (x + y (+ z) = 1), so none is dominated.
            let pts: Vec<Vec<f64>> = (0..30)
                .map(|_| {
                    let v: Vec<f64> = (0..m).map(|_| next()).collect();
                    let t: f64 = v.iter().sum();
                    v.iter().map(|x| x / t).collect()
                })
                .collect();
            let r = vec![1.1; m];
            let mut plain: Vec<usize> = Vec::new();
            for _ in 0..8 {
                let mut best = (f64::NEG_INFINITY, 0);
                for i in (0..pts.len()).filter(|i| !plain.contains(i)) {
                    let mut with: Vec<Vec<f64>> = plain.iter().map(|&j| pts[j].clone()).collect();
                    with.push(pts[i].clone());
                    let hv = hypervolume(&with, &r);
                    if hv > best.0 {
                        best = (hv, i);
                    }
                }
                plain.push(best.1);
            }
            assert_eq!(greedy_hv_subset(&pts, 8, &r), plain, "{m} objectives");
        }
    }

    #[test]
    fn crowding_marks_extremes_infinite() {
        let pts = vec![
            vec![0.0, 4.0],
            vec![1.0, 2.0],
            vec![3.0, 1.0],
            vec![4.0, 0.0],
        ];
        let d = crowding_distance(&pts);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // (1,2): neighbours (0,4) and (3,1): 3/4 + 3/4.
        assert!((d[1] - 1.5).abs() < 1e-12);
        assert!((d[2] - (3.0 / 4.0 + 2.0 / 4.0)).abs() < 1e-12);
    }
}
