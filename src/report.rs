//! What the experiment views (`kale experiments`, the dashboard, the plots) derive
//! from a stored experiment: the direction, best-so-far series, parameter importance,
//! the search space as table rows, and the one way numbers are written.

use crate::store::TrialStatus;
use kale_search::importance::{FanovaOptions, ParamImportance, fanova};
use kale_search::space::{ParameterSpec, ParameterType};
use kale_search::{Direction, SearchSpace};
use serde::Serialize;
use serde_json::Value;

use crate::store::{Experiment, TrialRow};

pub fn direction(e: &Experiment) -> Direction {
    e.spec.direction
}

/// The stored search space, if it still parses.
pub fn space(e: &Experiment) -> Option<SearchSpace> {
    serde_json::from_value(e.spec.space.clone()).ok()
}

/// fANOVA importance of each tuned parameter over the succeeded trials, most
/// important first; `Err` says why there is none (too few trials, unreadable space).
pub fn importance(e: &Experiment, trials: &[TrialRow]) -> Result<Vec<ParamImportance>, String> {
    let space = space(e).ok_or_else(|| "the stored search space is unreadable".to_string())?;
    let history: Vec<_> = crate::tune::record::history(&space, trials)
        .into_iter()
        .filter(|t| t.state == kale_search::TrialState::Complete)
        .collect();
    fanova(&space, &history, &FanovaOptions::default()).map_err(|err| err.to_string())
}

/// (trial number, best value so far) after each succeeded trial.
pub fn best_so_far(direction: Direction, trials: &[TrialRow]) -> Vec<(i64, f64)> {
    let mut best: Option<f64> = None;
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Succeeded)
        .filter_map(|t| {
            let v = t.value?;
            let b = match best {
                Some(b) if !direction.better(v, b) => b,
                _ => v,
            };
            best = Some(b);
            Some((t.number, b))
        })
        .collect()
}

/// A number the way every view writes it: at most 6 significant digits, no
/// trailing zeros, exponent form only for very large or small magnitudes.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&mag) {
        let s = format!("{v:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        return format!("{m}e{e}");
    }
    let decimals = (5 - mag).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A stored parameter or metric value as text: numbers through [`num`], strings bare.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row of the search-space table.
#[derive(Clone, Debug, Serialize)]
pub struct SpaceRow {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `min..max`, or the list of values.
    pub values: String,
    pub step: Option<String>,
    pub distribution: String,
}

pub fn space_rows(e: &Experiment) -> Vec<SpaceRow> {
    let Some(space) = space(e) else {
        return Vec::new();
    };
    space.parameters().iter().map(space_row).collect()
}

fn space_row(p: &ParameterSpec) -> SpaceRow {
    let fs = &p.feasible_space;
    let kind = match p.parameter_type {
        ParameterType::Int => "int",
        ParameterType::Double => "double",
        ParameterType::Categorical => "categorical",
        ParameterType::Discrete => "discrete",
    };
    let values = match (&fs.list, fs.min, fs.max) {
        (Some(list), _, _) => list.join(", "),
        (None, Some(lo), Some(hi)) => format!("{}..{}", num(lo), num(hi)),
        _ => "-".into(),
    };
    let distribution = match p.parameter_type {
        ParameterType::Categorical | ParameterType::Discrete => "-".to_string(),
        _ => match p.distribution() {
            kale_search::Distribution::Uniform => "uniform",
            kale_search::Distribution::LogUniform => "log-uniform",
            kale_search::Distribution::Normal => "normal",
            kale_search::Distribution::LogNormal => "log-normal",
        }
        .to_string(),
    };
    SpaceRow {
        name: p.name.clone(),
        kind: kind.into(),
        values,
        step: fs.step.map(num),
        distribution,
    }
}

/// `12.3 MiB`: sizes as people read them.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_round_trip_to_six_digits() {
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(0.987654321), "0.987654");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(123456.0), "123456");
        assert_eq!(num(1234567.0), "1.23457e6");
        assert_eq!(num(0.00012), "1.2e-4");
        assert_eq!(num(-3.0), "-3");
        assert_eq!(num(0.0), "0");
    }
}
