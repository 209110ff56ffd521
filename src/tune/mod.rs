//! Local tuning: a sampler from the `search` crate proposes parameter values, each
//! trial is a pipeline run through the local executor (sharing one step cache, so
//! parameter-independent steps run once), and every state change lands in the
//! experiment store.
//!
//! End conditions follow Katib: goal reached, max trials, search space exhausted, more
//! failed trials than allowed. Intermediate values for early stopping come from step
//! output lines `<objective>=<number>`, the format of Katib's StdOut collector, so the
//! same notebook reports progress locally and on a cluster.

pub mod space;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kale_search::katib::{AlgorithmSetting, sampler_from_katib, stopping_from_katib};
use kale_search::{
    Direction, ParamValue as SearchValue, ParameterType, Params, SearchSpace, Trial, TrialState,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::analysis::ParamValue;
use crate::exec::cache::Cache;
use crate::exec::{self, Interpreter, Reporter, RunOptions, RunStatus, StepStatus};
use crate::pipeline::Pipeline;
use crate::store::{Experiment, NewExperiment, Store, TrialRow};

pub use space::{ResolvedSearch, SearchArgs};

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("run directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings that do not fit the notebook or the stored experiment are the user's to
/// fix; the store and the disk failing are not.
impl From<TuneError> for crate::Error {
    fn from(e: TuneError) -> Self {
        match e {
            TuneError::Store(e) => e.into(),
            TuneError::Setup(message) => crate::Error::bad_input(message),
            TuneError::Io(e) => crate::Error::environment(format!("run directory: {e}")),
        }
    }
}

pub struct TuneOptions {
    pub name: String,
    pub resume: bool,
    pub search: ResolvedSearch,
    pub interpreter: Interpreter,
    pub runs_dir: PathBuf,
    pub store_path: PathBuf,
    /// Step cache shared by the trials; `None` runs every step of every trial.
    pub cache: Option<Arc<Cache>>,
    /// Reuse cached step results across trials (`--no-cache` turns it off).
    pub reuse: bool,
    /// Steps run at once inside one trial.
    pub jobs_per_trial: usize,
    /// A trial running longer than this is stopped and counted as failed.
    pub trial_timeout: Option<Duration>,
    /// GPUs and CPU share, shared by all trials' steps.
    pub resources: Option<Arc<exec::resources::ResourcePool>>,
}

/// What the live view shows; rebuilt after every event.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    pub experiment: String,
    pub objective: String,
    pub direction: String,
    pub max_trials: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub early_stopped: u64,
    pub running: Vec<(i64, String, f64)>,
    pub best: Option<(i64, f64, String)>,
    pub recent: Vec<String>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub elapsed: f64,
}

pub trait TuneReporter: Send + Sync {
    /// Called after every change.
    fn update(&self, _state: &LiveState) {}
    /// One line per finished trial.
    fn trial_finished(&self, _line: &str, _state: &LiveState) {}
    /// A line worth keeping that is not a trial's end (why a cached step ran again).
    fn notice(&self, _line: &str, _state: &LiveState) {}
    /// Something went wrong that the tune carries on through (a dropped connection).
    fn warning(&self, _line: &str) {}
}

#[derive(Clone, Debug)]
pub struct TuneOutcome {
    pub experiment: Experiment,
    pub status: String,
    pub reason: String,
    pub best: Option<TrialRow>,
    pub trials: Vec<TrialRow>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Steps that ran again although cached, or whose result was not kept: (trial,
    /// step, why).
    pub cache_notes: Vec<(i64, String, String)>,
}

enum Event {
    Gpus {
        number: i64,
        gpus: Vec<String>,
    },
    CacheNote {
        number: i64,
        step: String,
        note: String,
    },
    Intermediate {
        number: i64,
        value: f64,
    },
    Finished {
        number: i64,
        // Boxed: a run outcome is large and intermediate reports are frequent.
        result: Box<std::io::Result<exec::RunOutcome>>,
        timed_out: bool,
    },
}

struct Running {
    params: Params,
    label: String,
    started: Instant,
    cancel: watch::Sender<bool>,
    intermediate: Vec<f64>,
    pruned: bool,
    /// The GPUs its current step holds.
    gpus: Vec<String>,
}

/// Settings stored with the experiment, from which a resumed session rebuilds them.
fn stored_search(
    e: &Experiment,
    max_trials: Option<u64>,
    parallel: Option<usize>,
) -> Result<ResolvedSearch, TuneError> {
    let space: SearchSpace = serde_json::from_value(e.spec.space.clone()).map_err(|err| {
        TuneError::Setup(format!(
            "stored search space of `{}` is unreadable: {err}",
            e.spec.name
        ))
    })?;
    let settings: Vec<AlgorithmSetting> =
        serde_json::from_value(e.spec.settings.clone()).unwrap_or_default();
    let early_stopping = e.spec.early_stopping.as_ref().and_then(|v| {
        let name = v.get("name")?.as_str()?.to_string();
        let settings: Vec<AlgorithmSetting> =
            serde_json::from_value(v.get("settings")?.clone()).ok()?;
        Some((name, settings))
    });
    Ok(ResolvedSearch {
        objective: e.spec.objective.clone(),
        additional_metrics: Vec::new(),
        direction: if e.spec.direction == "minimize" {
            Direction::Minimize
        } else {
            Direction::Maximize
        },
        direction_source: "the stored experiment",
        goal: e.spec.goal,
        algorithm: e.spec.algorithm.clone(),
        algorithm_reason: None,
        settings,
        space,
        space_source: "the stored experiment".into(),
        max_trials: max_trials.unwrap_or(e.spec.max_trials as u64),
        parallel: parallel.unwrap_or(e.spec.parallel as usize),
        max_failed: e.spec.max_failed as u64,
        early_stopping,
    })
}

/// Opens (or creates) the experiment. On resume the stored settings win over flags,
/// except the trial budget and parallelism, which a user may raise.
#[allow(clippy::too_many_arguments)] // each is a distinct user choice; a struct would only rename them
pub fn prepare(
    pipeline: &Pipeline,
    notebook_hash: &str,
    store: &Store,
    name: &str,
    resume: bool,
    search: Option<ResolvedSearch>,
    max_trials: Option<u64>,
    parallel: Option<usize>,
) -> Result<(Experiment, ResolvedSearch), TuneError> {
    if resume {
        let e = store.experiment(name)?;
        let search = stored_search(&e, max_trials, parallel)?;
        store.claim(&e)?;
        return Ok((store.experiment(name)?, search));
    }
    if store.experiment_exists(name)? {
        return Err(TuneError::Setup(format!(
            "an experiment named `{name}` already exists in {}; pass --resume to continue it, or choose another --name",
            store.path().display()
        )));
    }
    let search = search.ok_or_else(|| TuneError::Setup("no search settings".into()))?;
    check_startable(&search)?;
    let e = store.create_experiment(&NewExperiment {
        name: name.to_string(),
        notebook: pipeline.notebook.display().to_string(),
        notebook_hash: notebook_hash.to_string(),
        objective: search.objective.clone(),
        direction: direction_name(search.direction).into(),
        goal: search.goal,
        algorithm: search.algorithm.clone(),
        settings: serde_json::to_value(&search.settings).unwrap(),
        space: serde_json::to_value(&search.space).unwrap(),
        max_trials: search.max_trials as i64,
        parallel: search.parallel as i64,
        max_failed: search.max_failed as i64,
        early_stopping: search
            .early_stopping
            .as_ref()
            .map(|(n, s)| json!({"name": n, "settings": s})),
    })?;
    Ok((e, search))
}

/// Everything that would stop [`tune`] before its first trial, checked before the
/// experiment is recorded, so that a bad setting never leaves a `running` experiment
/// with no trials (nor a stored space that `--resume` would fail on again): the
/// algorithm and its settings, a first suggestion from a throwaway sampler (grid
/// refuses spaces it cannot enumerate there), and the early-stopping rule.
pub fn check_startable(search: &ResolvedSearch) -> Result<(), TuneError> {
    let mut probe = sampler_from_katib(&search.algorithm, &search.settings)
        .map_err(|e| TuneError::Setup(e.to_string()))?;
    probe
        .ask(&search.space, &[], search.direction)
        .map_err(|e| TuneError::Setup(e.to_string()))?;
    if let Some((name, settings)) = &search.early_stopping {
        stopping_from_katib(name, settings).map_err(|e| TuneError::Setup(e.to_string()))?;
    }
    Ok(())
}

pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Maximize => "maximize",
        Direction::Minimize => "minimize",
    }
}

/// The first free `<pipeline>-<n>` experiment name.
pub fn default_name(store: &Store, pipeline: &Pipeline) -> Result<String, TuneError> {
    for n in 1.. {
        let name = format!("{}-{n}", pipeline.name);
        if !store.experiment_exists(&name)? {
            return Ok(name);
        }
    }
    unreachable!()
}

/// A sampler's parameters as JSON (numbers stay numbers).
fn params_json(p: &Params) -> Value {
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

pub(crate) fn history_from_rows(space: &SearchSpace, rows: &[TrialRow]) -> Vec<Trial> {
    rows.iter()
        .filter_map(|r| {
            let params = params_from_json(space, &r.params)?;
            let state = match r.status.as_str() {
                "succeeded" => TrialState::Complete,
                "failed" => TrialState::Failed,
                "early_stopped" => TrialState::Pruned,
                _ => return None,
            };
            let mut t = Trial::running(r.number as u64, params);
            t.state = state;
            t.value = r.value;
            t.intermediate_values = by_step(&r.intermediate);
            Some(t)
        })
        .collect()
}

fn label(p: &BTreeMap<String, ParamValue>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running trial's value, written as [`params_text`] writes finished ones.
fn short(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(f) => crate::report::num(*f),
        ParamValue::Str(s) => s.clone(),
        other => other.to_python(),
    }
}

struct TrialReporter {
    number: i64,
    objective_prefix: String,
    events: mpsc::UnboundedSender<Event>,
}

impl Reporter for TrialReporter {
    fn step_gpus(&self, _step: &str, gpus: &[String]) {
        let _ = self.events.send(Event::Gpus {
            number: self.number,
            gpus: gpus.to_vec(),
        });
    }

    fn step_cache_note(&self, step: &str, note: &str) {
        let _ = self.events.send(Event::CacheNote {
            number: self.number,
            step: step.to_string(),
            note: note.to_string(),
        });
    }

    fn step_output(&self, _step: &str, line: &str, _is_stderr: bool) {
        if let Some(rest) = line.trim().strip_prefix(&self.objective_prefix)
            && let Ok(value) = rest.trim().parse::<f64>()
            && value.is_finite()
        {
            let _ = self.events.send(Event::Intermediate {
                number: self.number,
                value,
            });
        }
    }
}

/// Runs the experiment to one of its end conditions, or until `cancel` turns true.
pub async fn tune(
    pipeline: &Pipeline,
    experiment: Experiment,
    search: &ResolvedSearch,
    opts: &TuneOptions,
    reporter: Arc<dyn TuneReporter>,
    mut cancel: watch::Receiver<bool>,
) -> Result<TuneOutcome, TuneError> {
    let session_start = Instant::now();
    let store = Store::open(&opts.store_path)?;
    let mut rows = store.trials(experiment.id)?;
    let mut next_number = store.next_trial_number(experiment.id)?;
    // A resumed session must not replay the suggestions of the first one: derive a
    // fresh but reproducible seed from the user's seed and the trials already made.
    let mut settings = search.settings.clone();
    if next_number > 0
        && let Some(s) = settings.iter_mut().find(|s| s.name == "random_state")
        && let Ok(seed) = s.value.trim().parse::<u64>()
    {
        s.value = seed
            .wrapping_add((next_number as u64).wrapping_mul(0x9E37_79B9))
            .to_string();
    }
    let mut sampler = sampler_from_katib(&search.algorithm, &settings)
        .map_err(|e| TuneError::Setup(e.to_string()))?;
    let stopping = match &search.early_stopping {
        Some((name, settings)) => {
            Some(stopping_from_katib(name, settings).map_err(|e| TuneError::Setup(e.to_string()))?)
        }
        None => None,
    };
    let mut history = history_from_rows(&search.space, &rows);
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut running: HashMap<i64, Running> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut stop_reason: Option<(&'static str, String)> = None;
    let mut interrupted = *cancel.borrow();
    let mut exhausted = false;
    let mut cache_hits: u64 = rows.iter().map(|r| r.cache_hits as u64).sum();
    let mut cache_misses: u64 = rows.iter().map(|r| r.cache_misses as u64).sum();
    let objective_prefix = format!("{}=", search.objective);
    let mut cache_notes = Vec::new();
    // One fork server for the whole session: the notebook's imports are paid
    // once, not once per step of every trial.
    let fork_server = exec::fork_server::ForkServerSlot::for_pipeline(pipeline);

    let live =
        |rows: &[TrialRow], running: &HashMap<i64, Running>, hits: u64, misses: u64| -> LiveState {
            let mut state = LiveState {
                experiment: experiment.spec.name.clone(),
                objective: search.objective.clone(),
                direction: direction_name(search.direction).into(),
                max_trials: search.max_trials,
                cache_hits: hits,
                cache_misses: misses,
                elapsed: experiment.wall_seconds + session_start.elapsed().as_secs_f64(),
                ..Default::default()
            };
            for r in rows {
                match r.status.as_str() {
                    "succeeded" => state.succeeded += 1,
                    "failed" => state.failed += 1,
                    "early_stopped" => state.early_stopped += 1,
                    _ => {}
                }
            }
            if let Some(best) = best_trial(rows, search.direction) {
                state.best = Some((
                    best.number,
                    best.value.unwrap_or(f64::NAN),
                    params_text(&best.params),
                ));
            }
            let mut r: Vec<_> = running
                .iter()
                .map(|(n, t)| {
                    let label = match t.gpus.as_slice() {
                        [] => t.label.clone(),
                        gpus => format!("{}  [gpu {}]", t.label, gpus.join(",")),
                    };
                    (*n, label, t.started.elapsed().as_secs_f64())
                })
                .collect();
            r.sort_by_key(|x| x.0);
            state.running = r;
            state.recent = rows
                .iter()
                .rev()
                .filter(|r| r.status != "running" && r.status != "interrupted")
                .take(5)
                .map(|r| trial_line(r, &search.objective))
                .collect();
            state
        };

    loop {
        let finished = rows
            .iter()
            .filter(|r| counts_toward_budget(&r.status))
            .count();
        let failed = rows.iter().filter(|r| r.status == "failed").count() as u64;
        if stop_reason.is_none() {
            if let Some(goal) = search.goal
                && rows.iter().any(|r| {
                    r.status == "succeeded"
                        && r.value.is_some_and(|v| !search.direction.better(goal, v))
                })
            {
                stop_reason = Some(("succeeded", "goal reached".into()));
            } else if failed > search.max_failed {
                stop_reason = Some((
                    "failed",
                    format!("more than {} trials failed", search.max_failed),
                ));
            } else if finished as u64 >= search.max_trials {
                stop_reason = Some(("succeeded", "max trials reached".into()));
            }
        }
        let can_launch = stop_reason.is_none() && !interrupted && !exhausted;
        if can_launch {
            while running.len() < search.parallel
                && (finished + running.len()) < search.max_trials as usize
            {
                let mut snapshot = history.clone();
                for (n, t) in &running {
                    snapshot.push(Trial::running(*n as u64, t.params.clone()));
                }
                let suggestion = sampler
                    .ask(&search.space, &snapshot, search.direction)
                    .map_err(|e| TuneError::Setup(e.to_string()))?;
                let Some(params) = suggestion.params() else {
                    exhausted = true;
                    break;
                };
                let mut values = exec::parameter_values(pipeline, &BTreeMap::new());
                for (name, v) in &params {
                    let like = values.get(name).cloned().ok_or_else(|| {
                        TuneError::Setup(format!("`{name}` is not a pipeline parameter"))
                    })?;
                    let converted = space::to_pipeline_value(&like, v)
                        .map_err(|e| TuneError::Setup(format!("parameter `{name}`: {e}")))?;
                    values.insert(name.clone(), converted);
                }
                let number = next_number;
                next_number += 1;
                store.start_trial(experiment.id, number, &params_json(&params))?;
                rows.push(store.trial(experiment.id, number)?);
                let tuned: BTreeMap<String, ParamValue> = values
                    .iter()
                    .filter(|(k, _)| params.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let (cancel_tx, cancel_rx) = watch::channel(false);
                running.insert(
                    number,
                    Running {
                        params: params.clone(),
                        label: label(&tuned),
                        started: Instant::now(),
                        cancel: cancel_tx,
                        intermediate: Vec::new(),
                        pruned: false,
                        gpus: Vec::new(),
                    },
                );
                let run_id = format!(
                    "{}-t{number}-{}",
                    experiment.spec.name,
                    &exec::new_run_id()[16..]
                );
                let run_opts = RunOptions {
                    interpreter: opts.interpreter.clone(),
                    values,
                    jobs: opts.jobs_per_trial,
                    runs_dir: opts.runs_dir.clone(),
                    run_id: Some(run_id.clone()),
                    cache: opts.cache.clone(),
                    reuse: opts.reuse,
                    experiment: Some((experiment.spec.name.clone(), number as u64)),
                    fork_server: fork_server.clone(),
                    resources: opts.resources.clone(),
                };
                store.set_run_dir(
                    experiment.id,
                    number,
                    &opts.runs_dir.join(&run_id).display().to_string(),
                )?;
                let pipeline = pipeline.clone();
                let tx = events_tx.clone();
                let trial_reporter = Arc::new(TrialReporter {
                    number,
                    objective_prefix: objective_prefix.clone(),
                    events: events_tx.clone(),
                });
                let timeout = opts.trial_timeout;
                tasks.spawn(async move {
                    let mut cancel_rx = cancel_rx;
                    let (timer_tx, timer_rx) = watch::channel(false);
                    // A timeout turns into a cancellation of the run.
                    let timed_out = Arc::new(Mutex::new(false));
                    let flag = timed_out.clone();
                    let watcher = tokio::spawn(async move {
                        let sleep = async {
                            match timeout {
                                Some(t) => tokio::time::sleep(t).await,
                                None => std::future::pending::<()>().await,
                            }
                        };
                        tokio::select! {
                            _ = sleep => { *flag.lock().unwrap() = true; let _ = timer_tx.send(true); }
                            _ = async { while cancel_rx.changed().await.is_ok() { if *cancel_rx.borrow() { break; } } } => { let _ = timer_tx.send(true); }
                        }
                    });
                    let result = exec::run(&pipeline, &run_opts, trial_reporter, timer_rx).await;
                    watcher.abort();
                    let timed_out = *timed_out.lock().unwrap();
                    let _ = tx.send(Event::Finished { number, result: Box::new(result), timed_out });
                });
            }
        }
        reporter.update(&live(&rows, &running, cache_hits, cache_misses));
        if running.is_empty() {
            break;
        }
        let event = tokio::select! {
            e = events.recv() => e,
            changed = cancel.changed(), if !interrupted => {
                if changed.is_err() || *cancel.borrow() {
                    interrupted = true;
                    for t in running.values() {
                        let _ = t.cancel.send(true);
                    }
                }
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        let Some(event) = event else { break };
        match event {
            Event::Gpus { number, gpus } => {
                if let Some(t) = running.get_mut(&number) {
                    t.gpus = gpus;
                }
            }
            Event::CacheNote { number, step, note } => {
                reporter.notice(
                    &format!("trial {number} · {step}: {note}"),
                    &live(&rows, &running, cache_hits, cache_misses),
                );
                cache_notes.push((number, step, note));
            }
            Event::Intermediate { number, value } => {
                let Some(t) = running.get_mut(&number) else {
                    continue;
                };
                t.intermediate.push(value);
                store.record_intermediate(experiment.id, number, &t.intermediate)?;
                if let Some(rule) = &stopping
                    && !t.pruned
                {
                    let mut me = Trial::running(number as u64, t.params.clone());
                    me.intermediate_values = by_step(&t.intermediate);
                    if rule.should_stop(&me, &history, search.direction) {
                        t.pruned = true;
                        let _ = t.cancel.send(true);
                    }
                }
            }
            Event::Finished {
                number,
                result,
                timed_out,
            } => {
                let Some(t) = running.remove(&number) else {
                    continue;
                };
                let seconds = t.started.elapsed().as_secs_f64();
                let (status, value, metrics, hits, misses, error) = match *result {
                    Err(e) => (
                        "failed",
                        None,
                        BTreeMap::new(),
                        0,
                        0,
                        Some(format!("kale could not run the trial: {e}")),
                    ),
                    Ok(outcome) => {
                        let m = &outcome.manifest;
                        let hits = m
                            .steps
                            .iter()
                            .filter(|s| s.status == StepStatus::Cached)
                            .count() as i64;
                        let misses = m
                            .steps
                            .iter()
                            .filter(|s| {
                                s.status == StepStatus::Succeeded || s.status == StepStatus::Failed
                            })
                            .count() as i64;
                        let metrics = m.metrics.clone();
                        let (status, value, error) = if t.pruned {
                            (
                                "early_stopped",
                                t.intermediate.last().copied(),
                                Some("stopped early by the early-stopping rule".into()),
                            )
                        } else if timed_out {
                            (
                                "failed",
                                None,
                                Some(format!(
                                    "timed out after {:.0}s",
                                    opts.trial_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0)
                                )),
                            )
                        } else if m.status == RunStatus::Interrupted {
                            ("interrupted", None, Some("interrupted".into()))
                        } else if let Some((step, err)) = &outcome.failure {
                            let at = match (err.cell, err.line) {
                                (Some(c), Some(l)) => format!(" at cell {c}, line {l}"),
                                _ => String::new(),
                            };
                            (
                                "failed",
                                None,
                                Some(format!(
                                    "step `{step}` failed{at}: {}: {}",
                                    err.kind, err.message
                                )),
                            )
                        } else {
                            match m.metrics.get(&search.objective).map(objective_value) {
                                Some(Ok(v)) => ("succeeded", Some(v), None),
                                Some(Err(why)) => (
                                    "failed",
                                    None,
                                    Some(format!("objective `{}` {why}", search.objective)),
                                ),
                                None => (
                                    "failed",
                                    None,
                                    Some(format!(
                                        "the run reported no `{}` metric",
                                        search.objective
                                    )),
                                ),
                            }
                        };
                        (status, value, metrics, hits, misses, error)
                    }
                };
                cache_hits += hits as u64;
                cache_misses += misses as u64;
                store.finish_trial(
                    experiment.id,
                    number,
                    status,
                    value,
                    &metrics,
                    seconds,
                    hits,
                    misses,
                    error.as_deref(),
                )?;
                let row = store.trial(experiment.id, number)?;
                if let Some(slot) = rows.iter_mut().find(|r| r.number == number) {
                    *slot = row.clone();
                }
                if status != "interrupted" {
                    let mut done = Trial::running(number as u64, t.params.clone());
                    done.state = match status {
                        "succeeded" => TrialState::Complete,
                        "early_stopped" => TrialState::Pruned,
                        _ => TrialState::Failed,
                    };
                    done.value = value;
                    done.intermediate_values = by_step(&t.intermediate);
                    sampler.tell(&done);
                    history.push(done);
                    reporter.trial_finished(
                        &trial_line(&row, &search.objective),
                        &live(&rows, &running, cache_hits, cache_misses),
                    );
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}

    let (status, reason) = if interrupted {
        ("interrupted".to_string(), "interrupted".to_string())
    } else if let Some((s, r)) = stop_reason {
        (s.to_string(), r)
    } else if exhausted {
        ("succeeded".into(), "search space exhausted".into())
    } else {
        ("succeeded".into(), "max trials reached".into())
    };
    store.finish_experiment(
        experiment.id,
        &status,
        &reason,
        session_start.elapsed().as_secs_f64(),
    )?;
    let trials = store.trials(experiment.id)?;
    Ok(TuneOutcome {
        experiment: store.experiment(&experiment.spec.name)?,
        best: best_trial(&trials, search.direction).cloned(),
        status,
        reason,
        trials,
        cache_hits,
        cache_misses,
        cache_notes,
    })
}

/// Reports in arrival order, numbered as the stopping rules expect.
fn by_step(values: &[f64]) -> BTreeMap<u64, f64> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, *v))
        .collect()
}

fn counts_toward_budget(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "early_stopped")
}

fn objective_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| "is not a finite number".to_string()),
        Value::String(s) => Err(format!("is `{s}`, not a finite number")),
        other => Err(format!("is {other}, not a number")),
    }
}

pub fn best_trial(rows: &[TrialRow], direction: Direction) -> Option<&TrialRow> {
    rows.iter()
        .filter(|r| r.status == "succeeded" && r.value.is_some())
        .fold(None, |best: Option<&TrialRow>, r| match best {
            Some(b) if !direction.better(r.value.unwrap(), b.value.unwrap()) => Some(b),
            _ => Some(r),
        })
}

pub fn params_text(params: &Value) -> String {
    match params {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::report::value_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

pub fn trial_line(r: &TrialRow, objective: &str) -> String {
    let outcome = match (r.status.as_str(), r.value) {
        ("succeeded", Some(v)) => format!("{objective}={v:.6}"),
        (s, _) => s.to_string(),
    };
    let cache = if r.cache_hits + r.cache_misses > 0 {
        format!("  cache {}/{}", r.cache_hits, r.cache_hits + r.cache_misses)
    } else {
        String::new()
    };
    let error = r
        .error
        .as_deref()
        .filter(|_| r.status != "succeeded")
        .map(|e| format!("  — {e}"))
        .unwrap_or_default();
    format!(
        "trial {:>3}  {:<22}  {}  {:.1}s{cache}{error}",
        r.number,
        outcome,
        params_text(&r.params),
        r.seconds.unwrap_or(0.0)
    )
}

/// `-p` texts for a trial's parameters: the best trial of `EXP`, or `EXP/TRIAL`.
pub fn params_from(notebook: &std::path::Path, spec: &str) -> Result<Vec<String>, String> {
    let (name, trial) = match spec.rsplit_once('/') {
        Some((n, t)) => (
            n,
            Some(
                t.parse::<i64>()
                    .map_err(|_| format!("`{t}` in `{spec}` is not a trial number"))?,
            ),
        ),
        None => (spec, None),
    };
    let path = Store::default_path(notebook);
    if !path.exists() {
        return Err(format!("no experiment store at {}", path.display()));
    }
    let store = Store::open_read_only(&path).map_err(|e| e.to_string())?;
    let e = store.experiment(name).map_err(|e| e.to_string())?;
    let trials = store.trials(e.id).map_err(|e| e.to_string())?;
    let row = match trial {
        Some(n) => trials
            .iter()
            .find(|t| t.number == n)
            .ok_or_else(|| format!("experiment `{name}` has no trial {n}"))?,
        None => best_trial(
            &trials,
            if e.spec.direction == "minimize" {
                Direction::Minimize
            } else {
                Direction::Maximize
            },
        )
        .ok_or_else(|| format!("experiment `{name}` has no succeeded trial"))?,
    };
    Ok(row
        .params
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect()
        })
        .unwrap_or_default())
}
