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
///
/// `min`, `max` and `step` are doubles; an `int`'s are also kept as the integers they
/// were written as (`exact`), since a double holds every integer only up to 2^53:
/// counting and drawing an `int` parameter's values is done on those.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    from = "RawFeasibleSpace",
    into = "RawFeasibleSpace"
)]
pub struct FeasibleSpace {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    pub list: Option<Vec<String>>,
    pub distribution: Option<Distribution>,
    /// `min`, `max`, `step` as written, when each is a whole number that fits in an
    /// `i64` (see [`FeasibleSpace::int_range`]).
    pub exact: [Option<i64>; 3],
}

/// The wire form: numbers as Katib writes them (strings), read from strings or JSON
/// numbers, their text kept so that integers stay exact.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFeasibleSpace {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    min: Option<NumText>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    max: Option<NumText>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num_str")]
    step: Option<NumText>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_list"
    )]
    list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distribution: Option<Distribution>,
}

/// A number with the integer it was written as, if it was one that fits in an i64.
#[derive(Clone, Copy)]
struct NumText {
    value: f64,
    int: Option<i64>,
}

impl From<RawFeasibleSpace> for FeasibleSpace {
    fn from(r: RawFeasibleSpace) -> Self {
        FeasibleSpace {
            min: r.min.map(|n| n.value),
            max: r.max.map(|n| n.value),
            step: r.step.map(|n| n.value),
            list: r.list,
            distribution: r.distribution,
            exact: [r.min, r.max, r.step].map(|n| n.and_then(|n| beyond_f64(n.int?))),
        }
    }
}

impl From<FeasibleSpace> for RawFeasibleSpace {
    fn from(f: FeasibleSpace) -> Self {
        let num = |value: Option<f64>, int: Option<i64>| value.map(|value| NumText { value, int });
        RawFeasibleSpace {
            min: num(f.min, f.exact[0]),
            max: num(f.max, f.exact[1]),
            step: num(f.step, f.exact[2]),
            list: f.list,
            distribution: f.distribution,
        }
    }
}

/// Largest magnitude up to which a double holds every integer exactly.
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

/// `i` when a double cannot hold it exactly (beyond 2^53), else `None`: below that
/// the double is the integer, and spaces compare equal however they were built.
fn beyond_f64(i: i64) -> Option<i64> {
    (i.unsigned_abs() > EXACT_IN_F64 as u64).then_some(i)
}

/// An integer range: both ends included, every `step`-th value from `min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    pub max: i64,
    pub step: i64,
}

impl IntRange {
    /// Number of values: `(max - min) / step + 1`, exactly (up to 2^64).
    pub fn len(&self) -> u128 {
        ((i128::from(self.max) - i128::from(self.min)) / i128::from(self.step)) as u128 + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `k`-th value (`k < len()`).
    pub fn value(&self, k: u128) -> i64 {
        let v = i128::from(self.min) + (k as i128) * i128::from(self.step);
        i64::try_from(v).unwrap_or(self.max)
    }

    /// The index of `v`, when it is one of the values.
    pub fn index_of(&self, v: i64) -> Option<u128> {
        let off = i128::from(v) - i128::from(self.min);
        let k = off / i128::from(self.step);
        (off >= 0 && off % i128::from(self.step) == 0 && (k as u128) < self.len())
            .then_some(k as u128)
    }

    /// The last value (`max` itself unless the step does not land on it).
    pub fn last(&self) -> i64 {
        self.value(self.len() - 1)
    }
}

impl FeasibleSpace {
    /// An `int` parameter's range, or why it is not one: each bound as written when it
    /// was a whole number within `i64`, else from its double (exact up to 2^53).
    pub fn int_range(&self) -> Result<IntRange, String> {
        let whole = |exact: Option<i64>,
                     value: Option<f64>,
                     what: &str|
         -> Result<Option<i64>, String> {
            match (exact, value) {
                (Some(i), _) => Ok(Some(i)),
                (None, None) => Ok(None),
                (None, Some(v)) if v.fract() != 0.0 || !v.is_finite() => Err(format!(
                    "int {what} ({}) must be a whole number",
                    fmt_num(v)
                )),
                (None, Some(v)) if v.abs() <= EXACT_IN_F64 => Ok(Some(v as i64)),
                (None, Some(v)) => Err(format!(
                    "int {what} ({}) is beyond the 64-bit integers kale counts with (-9223372036854775808..9223372036854775807)",
                    fmt_num(v)
                )),
            }
        };
        let min = whole(self.exact[0], self.min, "min")?.ok_or("min and max are required")?;
        let max = whole(self.exact[1], self.max, "max")?.ok_or("min and max are required")?;
        let step = whole(self.exact[2], self.step, "step")?.unwrap_or(1);
        Ok(IntRange { min, max, step })
    }
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
        let mut p = Self::ranged(name, ParameterType::Int, min as f64, max as f64);
        p.feasible_space.exact = [beyond_f64(min), beyond_f64(max), None];
        p
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
        self.feasible_space.exact[2] = None;
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
                let int = self.parameter_type == ParameterType::Int;
                // An int's exact bounds are compared below (two ints near 2^63 can be
                // the same double).
                if !int && min >= max {
                    return err(format!(
                        "min ({}) must be less than max ({})",
                        fmt_num(min),
                        fmt_num(max)
                    ));
                }
                if int && (min.fract() != 0.0 || max.fract() != 0.0) {
                    return err("int min and max must be whole numbers".into());
                }
                if int {
                    // Counted and drawn as integers: the exact bounds decide.
                    let r = fs.int_range().map_err(|reason| SpaceError::Invalid {
                        name: self.name.clone(),
                        reason,
                    })?;
                    if r.min >= r.max {
                        return err(format!("min ({}) must be less than max ({})", r.min, r.max));
                    }
                    if r.step <= 0 {
                        return err(format!("step ({}) must be positive", r.step));
                    }
                    if i128::from(r.step) > i128::from(r.max) - i128::from(r.min) {
                        return err(format!("step ({}) is larger than max - min", r.step));
                    }
                }
                if let Some(step) = fs.step.filter(|_| !int) {
                    if !(step.is_finite() && step > 0.0) {
                        return err(format!("step ({}) must be positive", fmt_num(step)));
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
        Num(serde_json::Number),
        Str(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<NumText>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(NumText { int: Some(i), .. }) => s.serialize_str(&i.to_string()),
            Some(n) => s.serialize_str(&fmt_num(n.value)),
            None => s.serialize_none(),
        }
    }

    fn parse(text: &str) -> Option<NumText> {
        let text = text.trim();
        let value = text.parse::<f64>().ok()?;
        Some(NumText {
            value,
            int: text.parse::<i64>().ok(),
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NumText>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => parse(&n.to_string())
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a number"))),
            // Katib clients write "" for an unset step.
            Some(NumOrStr::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a number"))),
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
    /// An `int`'s values, exactly: counted and drawn as integers, not doubles.
    pub ints: Option<IntRange>,
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
            ParameterType::Int if fs.int_range().is_ok() => {
                let r = fs.int_range().expect("checked");
                Dim::Num(NumDim {
                    lo: r.min as f64,
                    hi: r.last() as f64,
                    step: Some(r.step as f64),
                    int: true,
                    dist: p.distribution(),
                    decimals: Some(0),
                    ints: Some(r),
                })
            }
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
                    ints: None,
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
            Dim::Num(NumDim {
                ints: Some(r), lo, ..
            }) => {
                let i = match v {
                    ParamValue::Int(i) => *i,
                    other => {
                        let x = other.as_f64()?;
                        if x.fract() != 0.0 || x.abs() > EXACT_IN_F64 {
                            return None;
                        }
                        x as i64
                    }
                };
                // The coordinate is the offset from `lo` (exact while it stays below
                // 2^53, as any range samplers model does), plus `lo`.
                let k = r.index_of(i)?;
                Some(lo + (k as f64) * r.step as f64)
            }
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
            Dim::Num(NumDim {
                ints: Some(r), lo, ..
            }) => {
                // Nearest lattice index, then the value from it in integers.
                let k = if x.is_nan() {
                    0.0
                } else {
                    ((x - lo) / r.step as f64).round().max(0.0)
                };
                let k = (k as u128).min(r.len() - 1);
                ParamValue::Int(r.value(k))
            }
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

    /// Number of lattice points, if there is a lattice (`usize::MAX` for an `int`
    /// with more values than that).
    pub fn lattice_len(&self) -> Option<usize> {
        if let Some(r) = &self.ints {
            return Some(usize::try_from(r.len()).unwrap_or(usize::MAX));
        }
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
    /// One value drawn from the parameter's own distribution; a uniform `int` is
    /// drawn as an integer (every value equally likely, however large the range).
    pub fn sample_value<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> ParamValue {
        if let Dim::Num(NumDim {
            ints: Some(r),
            dist: Distribution::Uniform,
            ..
        }) = self
        {
            let n = r.len();
            let k = if n > u128::from(u64::MAX) {
                u128::from(rng.random::<u64>())
            } else {
                u128::from(rng.random_range(0..n as u64))
            };
            return ParamValue::Int(r.value(k));
        }
        self.decode(self.sample(rng))
    }

    /// The `k`-th value of a lattice (grid search), exactly.
    pub fn value_at_index(&self, k: usize) -> ParamValue {
        match self {
            Dim::Num(NumDim { ints: Some(r), .. }) => {
                ParamValue::Int(r.value((k as u128).min(r.len() - 1)))
            }
            Dim::Num(d) => self.decode(d.lo + k as f64 * d.step.unwrap_or(1.0)),
            Dim::Choice(_) => self.decode(k as f64),
        }
    }

    /// The lattice index of a value (grid search), if it is a lattice point.
    pub fn index_of(&self, v: &ParamValue) -> Option<usize> {
        match self {
            Dim::Num(NumDim { ints: Some(r), .. }) => {
                let i = match v {
                    ParamValue::Int(i) => *i,
                    other => other.as_f64().filter(|x| x.fract() == 0.0)? as i64,
                };
                usize::try_from(r.index_of(i)?).ok()
            }
            Dim::Num(d) => {
                let x = self.encode(v)?;
                Some(((x - d.lo) / d.step.unwrap_or(1.0)).round() as usize)
            }
            Dim::Choice(_) => Some(self.encode(v)? as usize),
        }
    }

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
    fn int_ranges_count_and_draw_exact_integers_up_to_i64() {
        use rand::SeedableRng;
        let space =
            SearchSpace::new(vec![ParameterSpec::int("n", i64::MAX - 9, i64::MAX)]).unwrap();
        let Dim::Num(d) = &space.dims()[0] else {
            panic!()
        };
        assert_eq!(d.lattice_len(), Some(10));
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let ParamValue::Int(v) = space.dims()[0].sample_value(&mut rng) else {
                panic!()
            };
            seen.insert(v);
        }
        assert_eq!(seen, (i64::MAX - 9..=i64::MAX).collect());
        // The whole of i64: 2^64 values, more than a usize counts.
        let all = SearchSpace::new(vec![ParameterSpec::int("n", i64::MIN, i64::MAX)]).unwrap();
        let Dim::Num(d) = &all.dims()[0] else {
            panic!()
        };
        assert_eq!(d.ints.unwrap().len(), 1u128 << 64);
        assert_eq!(d.lattice_len(), Some(usize::MAX));
        // The exact bounds survive the trip through Katib's JSON.
        let json = all.to_katib_json();
        assert_eq!(json[0]["feasibleSpace"]["max"], "9223372036854775807");
        let back: SearchSpace = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.parameters()[0].feasible_space.int_range().unwrap().max,
            i64::MAX
        );
        // A step lands exactly, and its values are indexed exactly.
        let r = IntRange {
            min: i64::MAX - 10,
            max: i64::MAX,
            step: 3,
        };
        assert_eq!((r.len(), r.last()), (4, i64::MAX - 1));
        assert_eq!(r.index_of(i64::MAX - 4), Some(2));
        assert_eq!(r.index_of(i64::MAX), None);
        // Beyond i64, or not whole: refused, naming the parameter.
        let beyond = r#"[{"name":"big","parameterType":"int","feasibleSpace":{"min":"0","max":"18446744073709551616"}}]"#;
        let e = serde_json::from_str::<SearchSpace>(beyond)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"big\"") && e.contains("beyond the 64-bit integers"),
            "{e}"
        );
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
