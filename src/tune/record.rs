//! The tune loop's writes to the experiment store, one committed transaction per
//! change, and the store's trials read back as the samplers' history.

use kale_search::{
    ParamValue as SearchValue, ParameterType, Params, SearchSpace, Trial, TrialState,
};
use serde_json::{Value, json};

use crate::store::{Experiment, Store, StoreError, TrialResult, TrialRow, TrialStatus};

/// The trials of one experiment, as the store holds them.
pub struct TrialLog<'a> {
    store: &'a Store,
    experiment: i64,
}

impl<'a> TrialLog<'a> {
    pub fn new(store: &'a Store, experiment: &Experiment) -> Self {
        TrialLog {
            store,
            experiment: experiment.id,
        }
    }

    /// Records a new running trial (with the run directory its files go to) and
    /// returns its row.
    pub fn start(
        &self,
        number: i64,
        params: &Params,
        run_dir: &str,
    ) -> Result<TrialRow, StoreError> {
        self.store
            .start_trial(self.experiment, number, &params_json(params))?;
        self.store.set_run_dir(self.experiment, number, run_dir)?;
        self.store.trial(self.experiment, number)
    }

    /// All intermediate reports so far (so a crash loses none of them).
    pub fn report(&self, number: i64, values: &[f64]) -> Result<(), StoreError> {
        self.store
            .record_intermediate(self.experiment, number, values)
    }

    /// Finishes a running trial; a finished one is never changed.
    pub fn finish(
        &self,
        number: i64,
        result: &TrialResult,
        seconds: f64,
    ) -> Result<TrialRow, StoreError> {
        self.store
            .finish_trial(self.experiment, number, result, seconds)?;
        self.store.trial(self.experiment, number)
    }
}

/// A sampler's parameters as JSON (numbers stay numbers).
pub fn params_json(p: &Params) -> Value {
    Value::Object(
        p.iter()
            .map(|(k, v)| {
                let v = match v {
                    SearchValue::Int(i) => json!(i),
                    SearchValue::Double(f) => json!(f),
                    SearchValue::Categorical(s) => json!(s),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// Back from stored JSON to a sampler's parameters, typed by the space.
fn params_from_json(space: &SearchSpace, v: &Value) -> Option<Params> {
    let mut out = Params::new();
    for spec in space.parameters() {
        let raw = v.get(&spec.name)?;
        let value = match spec.parameter_type {
            ParameterType::Int => {
                SearchValue::Int(raw.as_i64().or_else(|| raw.as_f64().map(|f| f as i64))?)
            }
            ParameterType::Double | ParameterType::Discrete => SearchValue::Double(raw.as_f64()?),
            ParameterType::Categorical => SearchValue::Categorical(match raw {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        };
        out.insert(spec.name.clone(), value);
    }
    Some(out)
}

/// A finished trial as the samplers and stopping rules see it. `multi`: the study
/// has several objectives, whose values go in `Trial::values` (one objective's in
/// `Trial::value`).
pub fn sampler_trial(
    number: i64,
    params: Params,
    result: &TrialResult,
    intermediate: &[f64],
    multi: bool,
) -> Option<Trial> {
    let mut t = Trial::running(number as u64, params);
    t.state = sampler_state(result.status)?;
    set_values(
        &mut t,
        result.value,
        &result.values,
        &result.constraints,
        multi,
    );
    t.intermediate_values = by_step(intermediate);
    Some(t)
}

fn set_values(t: &mut Trial, value: Option<f64>, values: &[f64], constraints: &[f64], multi: bool) {
    if multi {
        // A trial that did not complete has no values; the samplers skip it.
        if t.state == TrialState::Complete {
            t.values = values.to_vec();
        }
    } else {
        t.value = value;
    }
    t.constraints = constraints.to_vec();
}

fn sampler_state(status: TrialStatus) -> Option<TrialState> {
    match status {
        TrialStatus::Succeeded => Some(TrialState::Complete),
        TrialStatus::Failed => Some(TrialState::Failed),
        TrialStatus::EarlyStopped => Some(TrialState::Pruned),
        TrialStatus::Running | TrialStatus::Interrupted => None,
    }
}

/// The stored trials the samplers learn from: finished ones whose parameters fit the
/// space (interrupted trials were never evaluated).
pub fn history(space: &SearchSpace, rows: &[TrialRow], multi: bool) -> Vec<Trial> {
    rows.iter()
        .filter_map(|r| {
            let params = params_from_json(space, &r.params)?;
            let mut t = Trial::running(r.number as u64, params);
            t.state = sampler_state(r.status)?;
            set_values(&mut t, r.value, &r.values, &r.constraints, multi);
            t.intermediate_values = by_step(&r.intermediate);
            Some(t)
        })
        .collect()
}

/// Reports in arrival order, numbered as the stopping rules expect.
pub fn by_step(values: &[f64]) -> std::collections::BTreeMap<u64, f64> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewExperiment;
    use kale_search::Direction;
    use std::collections::BTreeMap;

    fn space() -> SearchSpace {
        serde_json::from_value(json!([
            {"name": "C", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "10"}},
            {"name": "kernel", "parameterType": "categorical", "feasibleSpace": {"list": ["rbf", "poly"]}},
        ]))
        .unwrap()
    }

    fn result(status: TrialStatus, value: Option<f64>) -> TrialResult {
        TrialResult {
            status,
            value,
            values: value.into_iter().collect(),
            constraints: Vec::new(),
            metrics: BTreeMap::from([("acc".to_string(), json!(value))]),
            cache_hits: 1,
            cache_misses: 2,
            error: None,
        }
    }

    #[test]
    fn trials_written_through_the_log_come_back_as_the_samplers_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kale.db")).unwrap();
        let e = store
            .create_experiment(&NewExperiment {
                name: "e".into(),
                notebook: "nb.ipynb".into(),
                notebook_hash: "h".into(),
                objective: "acc".into(),
                direction: Direction::Maximize,
                objectives: vec![crate::store::Objective {
                    name: "acc".into(),
                    direction: Direction::Maximize,
                }],
                constraints: Vec::new(),
                goal: None,
                algorithm: "random".into(),
                settings: json!([]),
                space: serde_json::to_value(space()).unwrap(),
                max_trials: 3,
                parallel: 1,
                max_failed: 3,
                early_stopping: None,
            })
            .unwrap();
        let log = TrialLog::new(&store, &e);
        let params = |c: f64, k: &str| -> Params {
            Params::from([
                ("C".to_string(), SearchValue::Double(c)),
                ("kernel".to_string(), SearchValue::Categorical(k.into())),
            ])
        };
        let row = log.start(0, &params(1.5, "rbf"), "runs/t0").unwrap();
        assert_eq!(row.status, TrialStatus::Running);
        assert_eq!(row.run_dir.as_deref(), Some("runs/t0"));
        log.report(0, &[0.5, 0.8]).unwrap();
        let row = log
            .finish(0, &result(TrialStatus::Succeeded, Some(0.9)), 2.0)
            .unwrap();
        assert_eq!((row.status, row.value), (TrialStatus::Succeeded, Some(0.9)));
        assert_eq!(row.intermediate, [0.5, 0.8]);
        // A second finish does not change a finished trial.
        let row = log
            .finish(0, &result(TrialStatus::Failed, None), 3.0)
            .unwrap();
        assert_eq!(row.status, TrialStatus::Succeeded);
        log.start(1, &params(3.0, "poly"), "runs/t1").unwrap();
        log.start(2, &params(5.0, "poly"), "runs/t2").unwrap();
        log.finish(2, &result(TrialStatus::Interrupted, None), 1.0)
            .unwrap();

        let history = history(&space(), &store.trials(e.id).unwrap(), false);
        // The running and the interrupted trial were never evaluated.
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].state, TrialState::Complete);
        assert_eq!(history[0].params, params(1.5, "rbf"));
        assert_eq!(history[0].intermediate_values.len(), 2);
    }
}
