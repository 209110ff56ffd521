//! Scales from data to the page: numeric axes (linear or log) with round tick
//! values, and a parameter's axis (numeric, or its categories evenly spaced).

use kale_search::Direction;
use kale_search::space::ParameterType;
use serde_json::Value;

use crate::format::num;
use crate::query;
use crate::store::{Experiment, TrialRow};

/// A scale from data to [0, 1] with its tick marks.
#[derive(Clone, Debug)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Where `v` falls, 0 at `lo` and 1 at `hi` (outside for values off the axis).
    pub fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// `lo hi log`, the form the dashboard's script reads to turn a dragged box back
    /// into data ranges.
    pub fn attr(&self) -> String {
        format!("{} {} {}", self.lo, self.hi, u8::from(self.log))
    }

    /// Keeps the whole-number ticks, labelled as whole numbers (trial and report
    /// numbers: `3`, not `3.0`).
    pub fn whole_ticks(mut self) -> Axis {
        self.ticks.retain(|(v, _)| v.fract() == 0.0);
        for (v, label) in &mut self.ticks {
            *label = format!("{}", *v as i64);
        }
        self
    }

    /// This axis over `range` instead (a zoomed view), ticks recomputed; a range that
    /// is empty, reversed or not positive on a log axis leaves it as it is.
    pub fn zoomed(self, range: Option<(f64, f64)>) -> Axis {
        let Some((lo, hi)) = range.filter(|(lo, hi)| lo.is_finite() && hi.is_finite() && hi > lo)
        else {
            return self;
        };
        if self.log && lo > 0.0 {
            let mut a = log_axis(&[lo, hi]);
            (a.lo, a.hi) = (lo, hi);
            a.ticks.retain(|(v, _)| *v >= lo && *v <= hi);
            a
        } else if self.log {
            self
        } else {
            Axis {
                lo,
                hi,
                log: false,
                ticks: nice_ticks(lo, hi, self.ticks.len().max(4)),
            }
        }
    }
}

/// The 1-2-5 step nearest above `raw`.
pub fn nice_step(raw: f64) -> f64 {
    let e = 10f64.powf(raw.log10().floor());
    let f = raw / e;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * e
}

/// Ticks at multiples of a 1-2-5 step inside [lo, hi], about `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<(f64, String)> {
    if hi.is_nan() || lo.is_nan() || hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![(lo, num(lo))];
    }
    let step = nice_step((hi - lo) / target.max(2) as f64);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // `-0.000` would be noise.
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

/// A linear axis over the data, padded a little but not across 0, and not past 1
/// when the data lie in [0, 1] (accuracies, rates).
pub fn linear_axis(values: &[f64], target: usize) -> Axis {
    let (mut lo, mut hi) = min_max(values).unwrap_or((0.0, 1.0));
    if hi - lo < 1e-12 * lo.abs().max(1.0) {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        lo -= d;
        hi += d;
    } else {
        let pad = (hi - lo) * 0.05;
        let unit = lo >= 0.0 && hi <= 1.0;
        let (l, h) = (lo - pad, hi + pad);
        lo = if lo >= 0.0 && l < 0.0 { 0.0 } else { l };
        hi = if (unit && h > 1.0) || (hi <= 0.0 && h > 0.0) {
            hi.max(if unit { 1.0 } else { 0.0 })
        } else {
            h
        };
    }
    Axis {
        lo,
        hi,
        log: false,
        ticks: nice_ticks(lo, hi, target),
    }
}

/// A log axis over positive data: ticks at powers of ten, with 2 and 5 between them
/// when the data span less than two decades.
pub fn log_axis(values: &[f64]) -> Axis {
    let (lo, hi) = min_max(values).unwrap_or((1.0, 10.0));
    let (lo, hi) = if hi / lo < 1.0 + 1e-9 {
        (lo / 2.0, hi * 2.0)
    } else {
        let pad = (hi / lo).powf(0.04);
        (lo / pad, hi * pad)
    };
    let decades = (hi / lo).log10();
    let mults: &[f64] = if decades < 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let stride = ((k1 - k0) / 8).max(1);
    for k in (k0..=k1).filter(|k| (k - k0) % stride == 0) {
        for m in mults {
            let v = m * 10f64.powi(k);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                ticks.push((v, num(v)));
            }
        }
    }
    if ticks.len() < 2 {
        // Less than a factor of 2: evenly spaced ticks read better.
        ticks = nice_ticks(lo, hi, 4);
    }
    Axis {
        lo,
        hi,
        log: true,
        ticks,
    }
}

/// An objective axis: log when asked for and every value is positive.
pub fn value_axis(values: &[f64], log: bool, target: usize) -> Axis {
    if log && !values.is_empty() && values.iter().all(|v| *v > 0.0) {
        log_axis(values)
    } else {
        linear_axis(values, target)
    }
}

/// The values an axis spans: `main`, and those of `others` within half the range of
/// `main` of it (farther ones are pinned to the edge rather than squashing the plot;
/// infeasible trials are the others).
pub fn near(main: &[f64], others: &[f64]) -> Vec<f64> {
    let Some((lo, hi)) = min_max(main) else {
        return others.to_vec();
    };
    let slack = if hi > lo {
        0.5 * (hi - lo)
    } else {
        0.5 * lo.abs().max(1.0)
    };
    let close = others
        .iter()
        .copied()
        .filter(|v| *v >= lo - slack && *v <= hi + slack);
    main.iter().copied().chain(close).collect()
}

pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), v| (a.min(v), b.max(v))))
}

/// Values far on the losing side (beyond 3 interquartile ranges of the quartile):
/// the axis leaves them out so the band of good values is not squashed.
pub fn losing_outlier_fence(values: &[f64], direction: Direction) -> Option<f64> {
    if values.len() < 8 {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    if iqr <= 0.0 {
        return None;
    }
    Some(match direction {
        Direction::Maximize => q1 - 3.0 * iqr,
        Direction::Minimize => q3 + 3.0 * iqr,
    })
}

pub fn is_outlier(v: f64, fence: Option<f64>, direction: Direction) -> bool {
    match (fence, direction) {
        (Some(f), Direction::Maximize) => v < f,
        (Some(f), Direction::Minimize) => v > f,
        _ => false,
    }
}

/// How one parameter is laid out on an axis.
pub enum Scale {
    Num(Axis),
    /// Categories, evenly spaced.
    Cat(Vec<String>),
}

impl Scale {
    pub fn frac(&self, v: &Value) -> Option<f64> {
        match self {
            Scale::Num(a) => {
                let f = v.as_f64()?;
                (!a.log || f > 0.0).then(|| a.frac(f))
            }
            Scale::Cat(list) => {
                let s = crate::format::value_text(v);
                let i = list.iter().position(|c| *c == s)?;
                Some(category_frac(i, list.len()))
            }
        }
    }

    pub fn ticks(&self) -> Vec<(f64, String)> {
        match self {
            Scale::Num(a) => a
                .ticks
                .iter()
                .map(|(v, l)| (a.frac(*v), l.clone()))
                .collect(),
            Scale::Cat(list) => list
                .iter()
                .enumerate()
                .map(|(i, c)| (category_frac(i, list.len()), c.clone()))
                .collect(),
        }
    }

    pub fn is_log(&self) -> bool {
        matches!(self, Scale::Num(a) if a.log)
    }
}

fn category_frac(i: usize, n: usize) -> f64 {
    if n == 1 {
        0.5
    } else {
        i as f64 / (n - 1) as f64
    }
}

/// A parameter's type, whether it is log-distributed, and its list of values.
type SpaceInfo = (ParameterType, bool, Option<Vec<String>>);

/// The parameters of an experiment with the scale each is drawn on: the space's
/// type and distribution when the stored space reads, else what the values look like.
/// `picked` (when not empty) keeps those parameters, in its order.
pub fn param_scales(
    e: &Experiment,
    trials: &[&TrialRow],
    picked: &[String],
) -> Vec<(String, Scale)> {
    let mut names = space_info(e, trials);
    if !picked.is_empty() {
        names = picked
            .iter()
            .filter_map(|p| names.iter().find(|(n, _)| n == p).cloned())
            .collect();
    }
    names
        .into_iter()
        .map(|(name, info)| {
            let values: Vec<&Value> = trials.iter().filter_map(|t| t.params.get(&name)).collect();
            let scale = scale_of(&values, info);
            (name, scale)
        })
        .collect()
}

/// Every parameter's name, with what the stored space says of it.
fn space_info(e: &Experiment, trials: &[&TrialRow]) -> Vec<(String, Option<SpaceInfo>)> {
    match query::space(e) {
        Some(space) => space
            .parameters()
            .iter()
            .map(|p| {
                let info = (
                    p.parameter_type,
                    p.distribution().is_log(),
                    p.feasible_space.list.clone(),
                );
                (p.name.clone(), Some(info))
            })
            .collect(),
        None => {
            let mut n: Vec<String> = trials
                .iter()
                .filter_map(|t| t.params.as_object())
                .flat_map(|m| m.keys().cloned())
                .collect();
            n.sort();
            n.dedup();
            n.into_iter().map(|k| (k, None)).collect()
        }
    }
}

fn scale_of(values: &[&Value], info: Option<SpaceInfo>) -> Scale {
    let numeric = values.iter().all(|v| v.is_number());
    let nums = || -> Vec<f64> { values.iter().filter_map(|v| v.as_f64()).collect() };
    match info {
        Some((ParameterType::Categorical, _, Some(list))) => Scale::Cat(list),
        Some((ParameterType::Discrete, _, Some(list))) => Scale::Cat(
            list.iter()
                .map(|l| match l.trim().parse::<f64>() {
                    Ok(f) => crate::format::value_text(&serde_json::json!(f)),
                    Err(_) => l.clone(),
                })
                .collect(),
        ),
        _ if !numeric || values.is_empty() => {
            let mut l: Vec<String> = values
                .iter()
                .map(|v| crate::format::value_text(v))
                .collect();
            l.sort();
            l.dedup();
            Scale::Cat(l)
        }
        Some((_, log, _)) => {
            let nums = nums();
            Scale::Num(if log && nums.iter().all(|v| *v > 0.0) {
                log_axis(&nums)
            } else {
                linear_axis(&nums, 5)
            })
        }
        None => Scale::Num(linear_axis(&nums(), 5)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        let t: Vec<String> = nice_ticks(0.057, 1.037, 5)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(t, ["0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t: Vec<String> = nice_ticks(0.981, 0.9905, 5)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(t, ["0.982", "0.984", "0.986", "0.988", "0.990"]);
        let t: Vec<f64> = nice_ticks(-3.0, 12.0, 5)
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(t, [0.0, 5.0, 10.0]);
    }

    #[test]
    fn accuracy_axis_stops_at_one_and_zero() {
        let a = linear_axis(&[0.2, 0.99, 0.5], 5);
        assert!(a.hi <= 1.0 && a.hi >= 0.99, "{a:?}");
        let a = linear_axis(&[0.01, 0.4], 5);
        assert!(a.lo >= 0.0, "{a:?}");
        // Other data get their padding.
        let a = linear_axis(&[10.0, 20.0], 5);
        assert!(a.lo < 10.0 && a.hi > 20.0);
    }

    #[test]
    fn log_axis_ticks_are_powers_of_ten() {
        let a = log_axis(&[1e-4, 0.1]);
        let labels: Vec<&str> = a.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["1e-4", "0.001", "0.01", "0.1"]);
        assert!(a.frac(1e-4) > 0.0 && a.frac(0.1) < 1.0);
    }

    #[test]
    fn a_zoomed_axis_spans_the_range_asked_for_with_its_own_ticks() {
        let a = linear_axis(&[0.0, 100.0], 5).zoomed(Some((20.0, 30.0)));
        assert_eq!((a.lo, a.hi), (20.0, 30.0));
        assert!(a.ticks.iter().all(|(v, _)| (20.0..=30.0).contains(v)));
        assert!(a.ticks.len() >= 3, "{a:?}");
        let l = log_axis(&[1e-4, 1.0]).zoomed(Some((1e-3, 1e-2)));
        assert!(l.log && l.lo == 1e-3 && l.hi == 1e-2, "{l:?}");
        // Nonsense leaves the axis alone.
        let a = linear_axis(&[0.0, 1.0], 5).zoomed(Some((3.0, 3.0)));
        assert_eq!((a.lo, a.hi), (0.0, 1.0));
    }

    #[test]
    fn a_losing_outlier_leaves_the_axis_to_the_good_band() {
        let mut v = vec![0.981, 0.983, 0.985, 0.986, 0.987, 0.988, 0.989, 0.99];
        v.push(0.10);
        let fence = losing_outlier_fence(&v, Direction::Maximize);
        assert!(is_outlier(0.10, fence, Direction::Maximize));
        assert!(!is_outlier(0.981, fence, Direction::Maximize));
        // The same value is the best one when minimising: never hidden.
        let fence = losing_outlier_fence(&v, Direction::Minimize);
        assert!(!is_outlier(0.10, fence, Direction::Minimize));
    }
}
