//! Finding trials: the experiment page's filter by state, by conditions on
//! parameters and metrics (`lr<0.01 depth>=4 kernel=rbf accuracy>0.9`) and by text
//! (in parameters, errors and notes). The page and the JSON read it from the query:
//! `state=failed&state=running&where=lr<0.01&q=oom`.

use std::collections::BTreeMap;

use regex::Regex;

use crate::format::value_text;
use crate::store::{TrialRow, TrialStatus};

/// The states a trial can be filtered by: its status, with succeeded trials that
/// break a constraint as `infeasible`.
pub const STATES: [&str; 6] = [
    "succeeded",
    "infeasible",
    "failed",
    "early_stopped",
    "running",
    "interrupted",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    name: String,
    op: Op,
    value: String,
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub states: Vec<String>,
    /// The conditions as typed.
    pub text_where: String,
    pub q: String,
    conditions: Vec<Condition>,
    /// What could not be read, for the page to say.
    pub errors: Vec<String>,
}

/// A trial's state as the filter names it.
pub fn state_of(t: &TrialRow) -> &'static str {
    if t.status == TrialStatus::Succeeded && !t.is_feasible() {
        "infeasible"
    } else {
        t.status.as_str()
    }
}

impl Filter {
    /// From the query; `names` are the parameters and metrics a condition may use.
    pub fn from_query(query: &[(String, String)], names: &[String]) -> Filter {
        fn get<'q>(query: &'q [(String, String)], k: &'q str) -> impl Iterator<Item = &'q str> {
            query
                .iter()
                .filter(move |(key, _)| key == k)
                .map(|(_, v)| v.trim())
        }
        let mut f = Filter {
            states: get(query, "state")
                .flat_map(|v| v.split(','))
                .filter(|s| STATES.contains(s))
                .map(String::from)
                .collect(),
            text_where: get(query, "where").collect::<Vec<_>>().join(" "),
            q: get(query, "q").collect::<Vec<_>>().join(" "),
            ..Filter::default()
        };
        f.parse_conditions(names);
        f
    }

    fn parse_conditions(&mut self, names: &[String]) {
        let spaces = Regex::new(r"\s*(<=|>=|!=|==|=|<|>)\s*").unwrap();
        let one = Regex::new(r"^([^<>=!\s,]+)(<=|>=|!=|==|=|<|>)(\S+)$").unwrap();
        let text = spaces.replace_all(&self.text_where, "$1");
        for token in text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
        {
            let Some(c) = one.captures(token) else {
                self.errors.push(format!(
                    "cannot read `{token}`: write NAME<VALUE, NAME>=VALUE, NAME=VALUE, …"
                ));
                continue;
            };
            let name = c[1].to_string();
            if !names.contains(&name) && !["value", "trial", "seconds"].contains(&name.as_str()) {
                self.errors.push(format!("no parameter or metric `{name}`"));
                continue;
            }
            let op = match &c[2] {
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "!=" => Op::Ne,
                _ => Op::Eq,
            };
            self.conditions.push(Condition {
                name,
                op,
                value: c[3].to_string(),
            });
        }
    }

    pub fn is_active(&self) -> bool {
        !self.states.is_empty() || !self.conditions.is_empty() || !self.q.is_empty()
    }

    pub fn matches(&self, t: &TrialRow, note: Option<&str>) -> bool {
        (self.states.is_empty() || self.states.iter().any(|s| s == state_of(t)))
            && self.conditions.iter().all(|c| holds(c, t))
            && (self.q.is_empty() || text_matches(&self.q, t, note))
    }

    /// The numbers of the trials that match.
    pub fn matching(&self, trials: &[TrialRow], notes: &BTreeMap<Option<i64>, String>) -> Vec<i64> {
        trials
            .iter()
            .filter(|t| self.matches(t, notes.get(&Some(t.number)).map(String::as_str)))
            .map(|t| t.number)
            .collect()
    }
}

/// What a condition's name reads from a trial: a parameter, a metric, or the
/// trial's own `value`, `trial` number or `seconds`.
fn field(t: &TrialRow, name: &str) -> Option<String> {
    let found = t.params.get(name).or_else(|| t.metrics.get(name));
    if let Some(v) = found {
        return Some(value_text(v));
    }
    match name {
        "value" => t.value.map(|v| v.to_string()),
        "trial" => Some(t.number.to_string()),
        "seconds" => t.seconds.map(|v| v.to_string()),
        _ => None,
    }
}

fn holds(c: &Condition, t: &TrialRow) -> bool {
    let Some(have) = field(t, &c.name) else {
        return false;
    };
    match (have.parse::<f64>(), c.value.parse::<f64>()) {
        (Ok(a), Ok(b)) => match c.op {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        },
        _ => match c.op {
            Op::Eq => have == c.value,
            Op::Ne => have != c.value,
            _ => false,
        },
    }
}

fn text_matches(q: &str, t: &TrialRow, note: Option<&str>) -> bool {
    let q = q.to_lowercase();
    let hay = [
        crate::tune::params_text(&t.params),
        t.error.clone().unwrap_or_default(),
        note.unwrap_or_default().to_string(),
    ];
    hay.iter().any(|h| h.to_lowercase().contains(&q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trial(number: i64, x: f64, kernel: &str, status: TrialStatus, acc: Option<f64>) -> TrialRow {
        TrialRow {
            experiment_id: 1,
            number,
            params: json!({"x": x, "kernel": kernel}),
            status,
            value: acc,
            values: acc.into_iter().collect(),
            constraints: Vec::new(),
            metrics: acc.map_or(json!({}), |a| json!({"accuracy": a})),
            intermediate: Vec::new(),
            started_at: 0.0,
            finished_at: None,
            seconds: Some(1.0),
            cache_hits: 0,
            cache_misses: 0,
            error: (status == TrialStatus::Failed).then(|| "MemoryError at cell 3".into()),
            run_dir: None,
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names() -> Vec<String> {
        ["x", "kernel", "accuracy"].map(String::from).to_vec()
    }

    #[test]
    fn conditions_on_parameters_and_metrics_and_states_narrow_the_trials() {
        let trials = [
            trial(0, 0.5, "rbf", TrialStatus::Succeeded, Some(0.9)),
            trial(1, 2.0, "rbf", TrialStatus::Succeeded, Some(0.7)),
            trial(2, 2.5, "poly", TrialStatus::Failed, None),
        ];
        let notes = BTreeMap::new();
        let f = Filter::from_query(&query(&[("where", "x >= 1, kernel=rbf")]), &names());
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.matching(&trials, &notes), [1]);
        let f = Filter::from_query(&query(&[("where", "accuracy>0.8")]), &names());
        assert_eq!(f.matching(&trials, &notes), [0]);
        let f = Filter::from_query(
            &query(&[("state", "failed"), ("state", "running")]),
            &names(),
        );
        assert_eq!(f.matching(&trials, &notes), [2]);
        let f = Filter::from_query(&query(&[("q", "memoryerror")]), &names());
        assert_eq!(f.matching(&trials, &notes), [2]);
        assert!(!Filter::from_query(&[], &names()).is_active());
    }

    #[test]
    fn text_finds_notes_and_unreadable_conditions_are_named() {
        let trials = [trial(0, 0.5, "rbf", TrialStatus::Succeeded, Some(0.9))];
        let notes = BTreeMap::from([(Some(0), "Looks like a data leak".to_string())]);
        let f = Filter::from_query(&query(&[("q", "LEAK")]), &names());
        assert_eq!(f.matching(&trials, &notes), [0]);
        let f = Filter::from_query(&query(&[("where", "depth>3 x~1")]), &names());
        assert_eq!(f.errors.len(), 2, "{:?}", f.errors);
        assert!(f.errors[0].contains("`depth`"), "{:?}", f.errors);
    }

    #[test]
    fn infeasible_trials_are_a_state_of_their_own() {
        let mut t = trial(0, 0.5, "rbf", TrialStatus::Succeeded, Some(0.9));
        t.constraints = vec![0.5];
        let f = Filter::from_query(&query(&[("state", "infeasible")]), &names());
        assert!(f.matches(&t, None));
        let f = Filter::from_query(&query(&[("state", "succeeded")]), &names());
        assert!(!f.matches(&t, None));
    }
}
