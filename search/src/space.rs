//! Search spaces with Katib's field names and semantics.
//!
//! A [`SearchSpace`] is the `spec.parameters` list of a Katib `Experiment`. It
//! (de)serialises with Katib's JSON names, so a `katib_metadata.parameters` block
//! from a Kale notebook loads directly, and [`SearchSpace::to_katib_json`] emits what
//! the Katib webhook expects (feasible-space numbers as strings).
//!
//! Feasible values:
//! - `int` / `double` with `min`/`max`: the closed interval. With `step`, the
//!   lattice `min, min+step, min+2·step, …` up to `max` (`int` always has a lattice,
//!   step 1 by default). This is the lattice Katib's grid algorithm enumerates.
//! - `categorical`: the strings in `list`; `discrete`: the numbers in `list`.
//!
//! Distributions (how random draws are spread; ignored for list types):
//! - `uniform`: flat over the interval;
//! - `logUniform`: flat in `ln(value)`, needs `min > 0`;
//! - `normal`: μ = (min+max)/2, σ = (max−min)/6, as Katib's hyperopt service
//!   does, but truncated to the interval so every draw is feasible;
//! - `logNormal`: the same in `ln(value)`.
//!
//! Draws with a `step` are rounded to the nearest lattice point.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::special::{norm_cdf, norm_ppf};

/// Katib `parameterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParameterType {
    Int,
    Double,
    Categorical,
    Discrete,
}

/// Katib `feasibleSpace.distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Distribution {
    #[default]
    Uniform,
    LogUniform,
    Normal,
    LogNormal,
}

impl Distribution {
    /// Whether the distribution lives on `ln(value)`.
    pub fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }
}

/// Katib `feasibleSpace`. Numbers are read from strings or JSON numbers and always
/// written as strings, because that is the type Katib's Go API declares.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeasibleSpace {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    pub step: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_list"
    )]
    pub list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// One entry of Katib's `spec.parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    pub name: String,
    pub parameter_type: ParameterType,
    #[serde(default)]
    pub feasible_space: FeasibleSpace,
}

impl ParameterSpec {
    /// A `double` on `[min, max]`.
    pub fn double(name: impl Into<String>, min: f64, max: f64) -> Self {
        Self::ranged(name, ParameterType::Double, min, max)
    }

    /// An `int` on `[min, max]`, both ends included.
    pub fn int(name: impl Into<String>, min: i64, max: i64) -> Self {
        Self::ranged(name, ParameterType::Int, min as f64, max as f64)
    }

    /// A `categorical` over the given strings.
    pub fn categorical<S: ToString>(name: impl Into<String>, values: &[S]) -> Self {
        Self::listed(
            name,
            ParameterType::Categorical,
            values.iter().map(|v| v.to_string()).collect(),
        )
    }

    /// A `discrete` over the given numbers.
    pub fn discrete(name: impl Into<String>, values: &[f64]) -> Self {
        Self::listed(
            name,
            ParameterType::Discrete,
            values.iter().map(|v| fmt_num(*v)).collect(),
        )
    }

    /// Restricts an `int`/`double` to the lattice `min + k·step`.
    pub fn with_step(mut self, step: f64) -> Self {
        self.feasible_space.step = Some(step);
        self
    }

    pub fn with_distribution(mut self, distribution: Distribution) -> Self {
        self.feasible_space.distribution = Some(distribution);
        self
    }

    /// Shorthand for `with_distribution(Distribution::LogUniform)`.
    pub fn log(self) -> Self {
        self.with_distribution(Distribution::LogUniform)
    }

    pub fn distribution(&self) -> Distribution {
        self.feasible_space.distribution.unwrap_or_default()
    }

    fn ranged(name: impl Into<String>, parameter_type: ParameterType, min: f64, max: f64) -> Self {
        ParameterSpec {
            name: name.into(),
            parameter_type,
            feasible_space: FeasibleSpace {
                min: Some(min),
                max: Some(max),
                ..Default::default()
            },
        }
    }

    fn listed(name: impl Into<String>, parameter_type: ParameterType, list: Vec<String>) -> Self {
        ParameterSpec {
            name: name.into(),
            parameter_type,
            feasible_space: FeasibleSpace {
                list: Some(list),
                ..Default::default()
            },
        }
    }

    /// Checks this parameter on its own; errors name the parameter.
    pub fn validate(&self) -> Result<(), SpaceError> {
        let err = |reason: String| {
            Err(SpaceError::Invalid {
                name: self.name.clone(),
                reason,
            })
        };
        if self.name.is_empty() {
            return Err(SpaceError::Invalid {
                name: String::new(),
                reason: "parameter name is empty".into(),
            });
        }
        let fs = &self.feasible_space;
        match self.parameter_type {
            ParameterType::Int | ParameterType::Double => {
                if fs.list.is_some() {
                    return err(format!(
                        "{} parameter must not have a list",
                        type_name(self.parameter_type)
                    ));
                }
                let (Some(min), Some(max)) = (fs.min, fs.max) else {
                    return err("min and max are required".into());
                };
                if !min.is_finite() || !max.is_finite() {
                    return err("min and max must be finite".into());
                }
                if min >= max {
                    return err(format!(
                        "min ({}) must be less than max ({})",
                        fmt_num(min),
                        fmt_num(max)
                    ));
                }
                let int = self.parameter_type == ParameterType::Int;
                if int && (min.fract() != 0.0 || max.fract() != 0.0) {
                    return err("int min and max must be whole numbers".into());
                }
                if let Some(step) = fs.step {
                    if !(step.is_finite() && step > 0.0) {
                        return err(format!("step ({}) must be positive", fmt_num(step)));
                    }
                    if int && step.fract() != 0.0 {
                        return err(format!(
                            "int step ({}) must be a whole number",
                            fmt_num(step)
                        ));
                    }
                    if step > max - min {
                        return err(format!("step ({}) is larger than max - min", fmt_num(step)));
                    }
                }
                if self.distribution().is_log() && min <= 0.0 {
                    return err(format!(
                        "{:?} distribution needs min > 0 (got {})",
                        self.distribution(),
                        fmt_num(min)
                    ));
                }
            }
            ParameterType::Categorical | ParameterType::Discrete => {
                if fs.min.is_some() || fs.max.is_some() || fs.step.is_some() {
                    return err(format!(
                        "{} parameter takes a list, not min/max/step",
                        type_name(self.parameter_type)
                    ));
                }
                let Some(list) = &fs.list else {
                    return err("list is required".into());
                };
                if list.is_empty() {
                    return err("list is empty".into());
                }
                let mut seen = HashSet::new();
                for v in list {
                    if !seen.insert(v.as_str()) {
                        return err(format!("list value {v:?} appears twice"));
                    }
                    if self.parameter_type == ParameterType::Discrete
                        && !v.trim().parse::<f64>().is_ok_and(f64::is_finite)
                    {
                        return err(format!("discrete value {v:?} is not a number"));
                    }
                }
            }
        }
        Ok(())
    }
}

fn type_name(t: ParameterType) -> &'static str {
    match t {
        ParameterType::Int => "int",
        ParameterType::Double => "double",
        ParameterType::Categorical => "categorical",
        ParameterType::Discrete => "discrete",
    }
}

/// Why a search space or a parameter value was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    #[error("parameter {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("parameter {0:?} is declared twice")]
    Duplicate(String),
    #[error("search space has no parameters")]
    Empty,
    #[error("parameter {name:?}: value {value} is not feasible")]
    Infeasible { name: String, value: String },
    #[error("parameter {0:?} has no value")]
    Missing(String),
}

/// A validated list of parameters; the order is the order of Katib's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ParameterSpec>", into = "Vec<ParameterSpec>")]
pub struct SearchSpace {
    params: Vec<ParameterSpec>,
}

impl TryFrom<Vec<ParameterSpec>> for SearchSpace {
    type Error = SpaceError;
    fn try_from(params: Vec<ParameterSpec>) -> Result<Self, SpaceError> {
        SearchSpace::new(params)
    }
}

impl From<SearchSpace> for Vec<ParameterSpec> {
    fn from(space: SearchSpace) -> Self {
        space.params
    }
}

impl SearchSpace {
    /// Validates and wraps the parameters.
    pub fn new(params: Vec<ParameterSpec>) -> Result<Self, SpaceError> {
        let space = SearchSpace { params };
        space.validate()?;
        Ok(space)
    }

    /// Checks every parameter and that names are unique.
    pub fn validate(&self) -> Result<(), SpaceError> {
        if self.params.is_empty() {
            return Err(SpaceError::Empty);
        }
        let mut names = HashSet::new();
        for p in &self.params {
            p.validate()?;
            if !names.insert(p.name.as_str()) {
                return Err(SpaceError::Duplicate(p.name.clone()));
            }
        }
        Ok(())
    }

    pub fn parameters(&self) -> &[ParameterSpec] {
        &self.params
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Parses Katib's `spec.parameters` JSON (a list).
    pub fn from_katib_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Katib's `spec.parameters` as JSON, numbers written as strings.
    pub fn to_katib_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("parameter specs always serialise")
    }

    /// Errors unless `params` has exactly one feasible value for every parameter.
    pub fn check(&self, params: &Params) -> Result<(), SpaceError> {
        for (spec, dim) in self.params.iter().zip(self.dims()) {
            let v = params
                .get(&spec.name)
                .ok_or_else(|| SpaceError::Missing(spec.name.clone()))?;
            if dim.encode(v).is_none() {
                return Err(SpaceError::Infeasible {
                    name: spec.name.clone(),
                    value: v.to_string(),
                });
            }
        }
        if let Some(extra) = params
            .keys()
            .find(|k| !self.params.iter().any(|p| &p.name == *k))
        {
            return Err(SpaceError::Infeasible {
                name: extra.clone(),
                value: "(not in the space)".into(),
            });
        }
        Ok(())
    }

    /// The sampler-facing view of each parameter, in order.
    pub(crate) fn dims(&self) -> Vec<Dim> {
        self.params.iter().map(Dim::from_spec).collect()
    }
}

/// A parameter value. `discrete` values are numbers: `Int` when the list entry is
/// a whole number, `Double` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Double(f64),
    Categorical(String),
}

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Double(d) => Some(*d),
            ParamValue::Categorical(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Categorical(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for ParamValue {
    /// The string Katib substitutes for `${trialParameters.<name>}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Double(d) => f.write_str(&fmt_num(*d)),
            ParamValue::Categorical(s) => f.write_str(s),
        }
    }
}

/// Parameter assignment of one trial, keyed by parameter name.
pub type Params = BTreeMap<String, ParamValue>;

/// Shortest decimal text that round-trips, never in exponent form (Katib parses
/// these strings with Go's `strconv.ParseFloat`, which accepts both, but plain
/// decimals are what people write in YAML).
pub(crate) fn fmt_num(v: f64) -> String {
    format!("{v}")
}

mod num_str {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(f64),
        Str(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&fmt_num(*v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => Ok(Some(n)),
            // Katib clients write "" for an unset step.
            Some(NumOrStr::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => s
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number"))),
        }
    }
}

fn str_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Str(String),
        Num(serde_json::Number),
        Bool(bool),
    }
    let items = Option::<Vec<Item>>::deserialize(d)?;
    Ok(items.map(|v| {
        v.into_iter()
            .map(|i| match i {
                Item::Str(s) => s,
                Item::Num(n) => n.to_string(),
                Item::Bool(b) => b.to_string(),
            })
            .collect()
    }))
}

// ---------------------------------------------------------------------------
// Sampler-facing view.

/// How a sampler sees one parameter: a number on an interval (maybe on a lattice,
/// maybe log-scaled) or one of `n` choices.
#[derive(Debug, Clone)]
pub(crate) enum Dim {
    Num(NumDim),
    Choice(ChoiceDim),
}

#[derive(Debug, Clone)]
pub(crate) struct NumDim {
    /// Smallest feasible value.
    pub lo: f64,
    /// Largest feasible value (the last lattice point when there is a step).
    pub hi: f64,
    /// Lattice spacing; `Some(1.0)` at least for ints.
    pub step: Option<f64>,
    pub int: bool,
    pub dist: Distribution,
    /// Decimal places kept when snapping to a lattice, so `0.01 + 3·0.01` is 0.04.
    decimals: Option<i32>,
}

#[derive(Debug, Clone)]
pub(crate) struct ChoiceDim {
    pub labels: Vec<String>,
    /// For `discrete`, the numeric value of each label.
    pub numbers: Option<Vec<f64>>,
}

impl Dim {
    fn from_spec(p: &ParameterSpec) -> Dim {
        let fs = &p.feasible_space;
        match p.parameter_type {
            ParameterType::Int | ParameterType::Double => {
                let int = p.parameter_type == ParameterType::Int;
                let lo = fs.min.unwrap_or(0.0);
                let max = fs.max.unwrap_or(1.0);
                let step = fs.step.or(if int { Some(1.0) } else { None });
                let (hi, decimals) = match step {
                    Some(s) => {
                        let k = ((max - lo) / s + 1e-9).floor();
                        let decimals = decimals_of(s).max(decimals_of(lo));
                        (round_to(lo + k * s, decimals), Some(decimals))
                    }
                    None => (max, None),
                };
                Dim::Num(NumDim {
                    lo,
                    hi,
                    step,
                    int,
                    dist: p.distribution(),
                    decimals,
                })
            }
            ParameterType::Categorical | ParameterType::Discrete => {
                let labels = fs.list.clone().unwrap_or_default();
                let numbers = (p.parameter_type == ParameterType::Discrete).then(|| {
                    labels
                        .iter()
                        .map(|l| l.trim().parse().unwrap_or(f64::NAN))
                        .collect()
                });
                Dim::Choice(ChoiceDim { labels, numbers })
            }
        }
    }

    /// The sampler coordinate of a value: the number itself, or the choice index.
    /// `None` when the value is not feasible.
    pub fn encode(&self, v: &ParamValue) -> Option<f64> {
        match self {
            Dim::Num(d) => {
                let x = v.as_f64()?;
                if d.int && !matches!(v, ParamValue::Int(_)) && x.fract() != 0.0 {
                    return None;
                }
                let tol = 1e-9 * (d.hi - d.lo).abs().max(1.0);
                if !(x >= d.lo - tol && x <= d.hi + tol) {
                    return None;
                }
                if let Some(s) = d.step {
                    let k = (x - d.lo) / s;
                    if (k - k.round()).abs() > 1e-6 {
                        return None;
                    }
                }
                Some(x)
            }
            Dim::Choice(c) => match (v, &c.numbers) {
                (ParamValue::Categorical(s), None) => {
                    c.labels.iter().position(|l| l == s).map(|i| i as f64)
                }
                (_, Some(nums)) => {
                    let x = v.as_f64()?;
                    nums.iter()
                        .position(|n| (n - x).abs() <= 1e-9 * n.abs().max(1.0))
                        .map(|i| i as f64)
                }
                _ => None,
            },
        }
    }

    /// The value for a sampler coordinate (snapped onto the lattice / rounded to a choice).
    pub fn decode(&self, x: f64) -> ParamValue {
        match self {
            Dim::Num(d) => {
                let x = d.snap(x);
                if d.int {
                    ParamValue::Int(x as i64)
                } else {
                    ParamValue::Double(x)
                }
            }
            Dim::Choice(c) => {
                let i = (x.round().max(0.0) as usize).min(c.labels.len() - 1);
                match &c.numbers {
                    None => ParamValue::Categorical(c.labels[i].clone()),
                    Some(n) if n[i].fract() == 0.0 && n[i].abs() < 9e15 => {
                        ParamValue::Int(n[i] as i64)
                    }
                    Some(n) => ParamValue::Double(n[i]),
                }
            }
        }
    }
}

impl NumDim {
    pub fn log(&self) -> bool {
        self.dist.is_log()
    }

    /// Interval that random draws cover, in the (possibly log) working scale.
    /// Lattice end points get half a step of slack so that rounding gives every
    /// lattice point the same share.
    pub fn warped_bounds(&self) -> (f64, f64) {
        let half = self.step.map_or(0.0, |s| 0.5 * s);
        let (mut a, b) = (self.lo - half, self.hi + half);
        if self.log() {
            if a <= 0.0 {
                a = 0.5 * self.lo;
            }
            (a.ln(), b.ln())
        } else {
            (a, b)
        }
    }

    pub fn warp(&self, x: f64) -> f64 {
        if self.log() { x.ln() } else { x }
    }

    pub fn unwarp(&self, w: f64) -> f64 {
        if self.log() { w.exp() } else { w }
    }

    /// Nearest feasible value.
    pub fn snap(&self, x: f64) -> f64 {
        let x = if x.is_nan() {
            self.lo
        } else {
            x.clamp(self.lo, self.hi)
        };
        match (self.step, self.decimals) {
            (Some(s), Some(dec)) => {
                let kmax = ((self.hi - self.lo) / s).round();
                let k = ((x - self.lo) / s).round().clamp(0.0, kmax);
                let v = round_to(self.lo + k * s, dec);
                if self.int { v.round() } else { v }
            }
            _ => x,
        }
    }

    /// Number of lattice points, if there is a lattice.
    pub fn lattice_len(&self) -> Option<usize> {
        self.step
            .map(|s| ((self.hi - self.lo) / s).round() as usize + 1)
    }

    /// A draw from the parameter's own distribution, driven by `u ∈ (0, 1)` so that
    /// callers can stratify; then snapped.
    pub fn value_at_unit(&self, u: f64) -> f64 {
        let (a, b) = self.warped_bounds();
        let w = match self.dist {
            Distribution::Uniform | Distribution::LogUniform => a + u * (b - a),
            Distribution::Normal | Distribution::LogNormal => {
                // Katib's μ and σ, computed on the declared (warped) min/max.
                let (lo, hi) = (self.warp(self.lo), self.warp(self.hi));
                let mu = 0.5 * (lo + hi);
                let sigma = (hi - lo) / 6.0;
                let (ca, cb) = (norm_cdf((a - mu) / sigma), norm_cdf((b - mu) / sigma));
                (mu + sigma * norm_ppf(ca + u * (cb - ca))).clamp(a, b)
            }
        };
        self.snap(self.unwarp(w))
    }
}

impl Dim {
    /// One draw from the parameter's own distribution.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.value_at_unit(rng.random::<f64>())
    }

    pub fn value_at_unit(&self, u: f64) -> f64 {
        match self {
            Dim::Num(d) => d.value_at_unit(u),
            Dim::Choice(c) => ((u * c.labels.len() as f64) as usize).min(c.labels.len() - 1) as f64,
        }
    }
}

fn decimals_of(v: f64) -> i32 {
    let s = fmt_num(v);
    s.split_once('.').map_or(0, |(_, f)| f.len() as i32)
}

fn round_to(v: f64, decimals: i32) -> f64 {
    if decimals <= 0 {
        return v.round();
    }
    if decimals > 15 {
        return v;
    }
    let p = 10f64.powi(decimals);
    let r = (v * p).round() / p;
    if r.is_finite() { r } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_katib_strings_and_numbers() {
        let json = r#"[
            {"name":"lr","parameterType":"double","feasibleSpace":{"min":"0.01","max":"0.1","step":"0.01"}},
            {"name":"layers","parameterType":"int","feasibleSpace":{"min":1,"max":"5"}},
            {"name":"opt","parameterType":"categorical","feasibleSpace":{"list":["sgd","adam"]}},
            {"name":"bs","parameterType":"discrete","feasibleSpace":{"list":["16",32,"64"]}},
            {"name":"wd","parameterType":"double","feasibleSpace":{"min":"1e-5","max":"0.1","distribution":"logUniform"}}
        ]"#;
        let space = SearchSpace::from_katib_json(json).unwrap();
        assert_eq!(space.len(), 5);
        assert_eq!(space.parameters()[0].feasible_space.step, Some(0.01));
        assert_eq!(
            space.parameters()[3].feasible_space.list.as_ref().unwrap()[1],
            "32"
        );
        let out = space.to_katib_json();
        assert_eq!(out[0]["feasibleSpace"]["min"], "0.01");
        assert_eq!(out[1]["feasibleSpace"]["max"], "5");
        assert_eq!(out[4]["feasibleSpace"]["min"], "0.00001");
        assert_eq!(out[4]["feasibleSpace"]["distribution"], "logUniform");
        let back: SearchSpace = serde_json::from_value(out).unwrap();
        assert_eq!(back, space);
    }

    #[test]
    fn validation_names_the_parameter() {
        let cases = [
            (
                r#"{"name":"a","parameterType":"double","feasibleSpace":{"min":"1","max":"1"}}"#,
                "min (1) must be less than max (1)",
            ),
            (
                r#"{"name":"b","parameterType":"double","feasibleSpace":{"min":"0","max":"1","distribution":"logUniform"}}"#,
                "needs min > 0",
            ),
            (
                r#"{"name":"c","parameterType":"categorical","feasibleSpace":{"list":[]}}"#,
                "list is empty",
            ),
            (
                r#"{"name":"d","parameterType":"int","feasibleSpace":{"min":"0.5","max":"3"}}"#,
                "whole numbers",
            ),
            (
                r#"{"name":"e","parameterType":"discrete","feasibleSpace":{"list":["x"]}}"#,
                "not a number",
            ),
            (
                r#"{"name":"f","parameterType":"double","feasibleSpace":{"max":"3"}}"#,
                "min and max are required",
            ),
            (
                r#"{"name":"g","parameterType":"double","feasibleSpace":{"min":"0","max":"1","step":"-1"}}"#,
                "must be positive",
            ),
        ];
        for (json, want) in cases {
            let e = serde_json::from_str::<SearchSpace>(&format!("[{json}]"))
                .unwrap_err()
                .to_string();
            let name = &json[9..10];
            assert!(
                e.contains(want) && e.contains(&format!("\"{name}\"")),
                "{e}"
            );
        }
        let dup = SearchSpace::new(vec![
            ParameterSpec::double("x", 0.0, 1.0),
            ParameterSpec::int("x", 0, 3),
        ]);
        assert_eq!(dup.unwrap_err(), SpaceError::Duplicate("x".into()));
    }

    #[test]
    fn lattice_snaps_to_clean_decimals() {
        let space =
            SearchSpace::new(vec![ParameterSpec::double("lr", 0.01, 0.1).with_step(0.01)]).unwrap();
        let Dim::Num(d) = &space.dims()[0] else {
            panic!()
        };
        assert_eq!(d.snap(0.0412), 0.04);
        assert_eq!(d.snap(0.3), 0.1);
        assert_eq!(d.lattice_len(), Some(10));
    }
}
