//! Local tuning: a sampler from the `search` crate proposes parameter values, each
//! trial is a pipeline run through the local executor (sharing one step cache, so
//! parameter-independent steps run once), and every state change lands in the
//! experiment store.
//!
//! End conditions follow Katib: goal reached, max trials, search space exhausted, more
//! failed trials than allowed. Intermediate values for early stopping come from step
//! output lines `<objective>=<number>`, the format of Katib's StdOut collector, so the
//! same notebook reports progress locally and on a cluster.

pub mod local;
pub mod outcome;
pub mod plan;
pub mod record;
pub mod rules;
pub mod scheduler;

#[cfg(test)]
mod loop_tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kale_search::katib::{AlgorithmSetting, sampler_from_katib, stopping_from_katib};
use kale_search::sampler::Sampler;
use kale_search::sampler::multi_auto::multi_objective_sampler;
use kale_search::{SearchSpace, Trial};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::analysis::PipelineValue;
use crate::exec::cache::Cache;
use crate::exec::{self, Interpreter, RunOptions};
use crate::pipeline::Pipeline;
use crate::query::{best_trial, pareto_front};
use crate::store::{
    Experiment, ExperimentStatus, NewExperiment, Objective, Store, TrialRow, TrialStatus,
};
use record::TrialLog;
use scheduler::{Event, Running};

pub use plan::{ResolvedSearch, SearchArgs};

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Setup(String),
    /// A setting that cannot start, and what to do instead.
    #[error("{message}")]
    Refused { message: String, hint: String },
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
            TuneError::Refused { message, hint } => {
                crate::Error::bad_input(message).with_hint(hint)
            }
            TuneError::Io(e) => e.into(),
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
    /// Several objectives: the Pareto front so far, one line per trial (`best` is
    /// `None`).
    pub front: Option<Vec<String>>,
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
    /// A trial was recorded as running, with its parameters.
    fn trial_started(&self, _trial: &TrialRow) {}
    /// A trial's record once it ended, however it ended.
    fn trial_result(&self, _trial: &TrialRow) {}
    /// A line worth keeping that is not a trial's end (why a cached step ran again).
    fn notice(&self, _line: &str, _state: &LiveState) {}
    /// Something went wrong that the tune carries on through (a dropped connection).
    fn warning(&self, _line: &str) {}
    /// A line for whoever watches the tune, about what it does before or beside its
    /// trials (a notebook changed since the experiment started, a pipeline uploaded).
    fn say(&self, _line: &str) {}
    /// A local tune recorded its experiment and is about to start its trials.
    fn started(&self, _started: &local::Started) {}
    /// A local tune ended; the report says how.
    fn finished(&self, _report: &local::LocalReport) {}
}

#[derive(Clone, Debug)]
pub struct TuneOutcome {
    pub experiment: Experiment,
    pub status: ExperimentStatus,
    pub reason: String,
    /// The best feasible trial; `None` with several objectives (see `front`).
    pub best: Option<TrialRow>,
    /// Several objectives: the feasible Pareto front, in trial order.
    pub front: Vec<TrialRow>,
    pub trials: Vec<TrialRow>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Steps that ran again although cached, or whose result was not kept: (trial,
    /// step, why).
    pub cache_notes: Vec<(i64, String, String)>,
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
        objectives: e.spec.objectives.clone(),
        constraints: e.spec.constraints.clone(),
        additional_metrics: Vec::new(),
        direction: e.spec.direction,
        direction_source: "the stored experiment",
        goal: e.spec.goal,
        algorithm: e.spec.algorithm.clone(),
        algorithm_reason: None,
        algorithm_from_notebook: false,
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
    let taken = || TuneError::Refused {
        message: format!(
            "an experiment named `{name}` already exists in {}",
            store.path().display()
        ),
        hint: "pass --resume to continue it, or choose another --name".into(),
    };
    if store.experiment_exists(name)? {
        return Err(taken());
    }
    let search = search.ok_or_else(|| TuneError::Setup("no search settings".into()))?;
    check_startable(&search)?;
    let e = store.create_experiment(&NewExperiment {
        name: name.to_string(),
        notebook: pipeline.notebook.display().to_string(),
        notebook_hash: notebook_hash.to_string(),
        objective: search.objective.clone(),
        direction: search.direction,
        objectives: search.objectives.clone(),
        constraints: search.constraints.clone(),
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
    });
    match e {
        Ok(e) => Ok((e, search)),
        // Two tunes given the same --name at once: the later one is told as above.
        Err(crate::store::StoreError::Taken(_)) => Err(taken()),
        Err(e) => Err(e.into()),
    }
}

/// Everything that would stop [`tune`] before its first trial, checked before the
/// experiment is recorded, so that a bad setting never leaves a `running` experiment
/// with no trials (nor a stored space that `--resume` would fail on again): the
/// algorithm and its settings, a first suggestion from a throwaway sampler (grid
/// refuses spaces it cannot enumerate there), and the early-stopping rule.
pub fn check_startable(search: &ResolvedSearch) -> Result<(), TuneError> {
    let mut probe = sampler_for(search)?;
    probe
        .ask_multi(&search.space, &[], &search.directions())
        .map_err(|e| TuneError::Refused {
            message: format!(
                "algorithm `{}`{} cannot search this space: {e}",
                search.algorithm,
                if search.algorithm_from_notebook {
                    " (from the notebook's katib_metadata)"
                } else {
                    ""
                }
            ),
            hint: if search.algorithm == "grid" {
                "give every double parameter a step (`--param lr=double:0.01..1:step=0.1`) or a list (`discrete:0.01,0.1,1`), or pass --algorithm random (or tpe, bayesianoptimization)".into()
            } else {
                "pass another --algorithm (random, tpe, bayesianoptimization, grid)".into()
            },
        })?;
    if let Some((name, settings)) = &search.early_stopping {
        stopping_from_katib(name, settings).map_err(|e| TuneError::Refused {
            message: e.to_string(),
            hint: "use `--early-stopping medianstop` or `asha`, with their own settings".into(),
        })?;
    }
    Ok(())
}

/// The experiment's sampler: a Katib algorithm for one objective, a multi-objective
/// one (NSGA-II, MOTPE, ...) for several.
fn sampler_for(search: &ResolvedSearch) -> Result<Box<dyn Sampler>, TuneError> {
    if search.is_multi() {
        multi_objective_sampler(&search.algorithm, &search.settings)
    } else {
        sampler_from_katib(&search.algorithm, &search.settings)
    }
    .map_err(|e| TuneError::Setup(e.to_string()))
}

/// The first free `<pipeline>-<n>` experiment name.
pub fn default_name(store: &Store, pipeline: &Pipeline) -> Result<String, TuneError> {
    for n in 1u64.. {
        let suffix = format!("-{n}");
        let mut base = pipeline.name.clone();
        base.truncate(crate::names::MAX_LEN - suffix.len());
        let name = format!("{}{suffix}", base.trim_end_matches('-'));
        if !store.experiment_exists(&name)? {
            return Ok(name);
        }
    }
    unreachable!()
}

/// Runs the experiment to one of its end conditions, or until `cancel` turns true.
///
/// The loop: while the end conditions ([`rules`]) allow, ask the sampler and
/// [`scheduler::launch`] trials up to the parallelism; wait for the next event; a
/// finished run is classified ([`outcome::classify`]), stored ([`record::TrialLog`])
/// and told to the sampler.
pub async fn tune(
    pipeline: &Pipeline,
    experiment: Experiment,
    search: &ResolvedSearch,
    opts: &TuneOptions,
    reporter: Arc<dyn TuneReporter>,
    mut cancel: watch::Receiver<bool>,
) -> Result<TuneOutcome, TuneError> {
    let store = Store::open(&opts.store_path)?;
    let interrupted = *cancel.borrow();
    let mut s = Session::open(&store, pipeline, &experiment, search, opts, reporter)?;
    s.interrupted = interrupted;
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut tasks: JoinSet<()> = JoinSet::new();
    loop {
        s.start_trials(&mut tasks, &events_tx)?;
        s.reporter.update(&s.live());
        if s.running.is_empty() {
            break;
        }
        let event = tokio::select! {
            e = events.recv() => e,
            changed = cancel.changed(), if !s.interrupted => {
                if changed.is_err() || *cancel.borrow() {
                    s.interrupted = true;
                    s.cancel_running();
                }
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        let Some(event) = event else { break };
        match s.on_event(event) {
            Ok(()) => {}
            Err(Halt::StoreGone(gone)) => {
                s.cancel_running();
                while tasks.join_next().await.is_some() {}
                return Err(gone.into());
            }
            Err(Halt::Error(e)) => return Err(e),
        }
    }
    while tasks.join_next().await.is_some() {}
    s.finish()
}

/// One session of the tune loop: what it knows of the experiment's trials (the rows
/// the store holds, the sampler's history, the trials in flight) and how it ends.
/// [`tune`] waits on the events; the session decides what each one means.
struct Session<'a> {
    store: &'a Store,
    log: TrialLog<'a>,
    pipeline: &'a Pipeline,
    experiment: &'a Experiment,
    search: &'a ResolvedSearch,
    opts: &'a TuneOptions,
    reporter: Arc<dyn TuneReporter>,
    sampler: Box<dyn Sampler>,
    stopping: Option<Box<dyn kale_search::stopping::StoppingRule>>,
    limits: rules::Limits,
    objective_names: Vec<String>,
    /// The experiment's trials as stored, this session's included.
    rows: Vec<TrialRow>,
    /// Finished trials as the sampler and the stopping rule see them.
    history: Vec<Trial>,
    running: HashMap<i64, Running>,
    next_number: i64,
    ended: Option<(ExperimentStatus, String)>,
    interrupted: bool,
    /// The sampler has nothing left to suggest.
    exhausted: bool,
    cache_hits: u64,
    cache_misses: u64,
    cache_notes: Vec<(i64, String, String)>,
    /// One fork server for the whole session: the notebook's imports are paid once,
    /// not once per step of every trial.
    fork_server: Option<Arc<exec::fork_server::ForkServerSlot>>,
    /// What run directories are named after.
    run_prefix: String,
    started: Instant,
}

/// Why the loop stops early: the store went away under it (the trials in flight are
/// stopped first), or any other error.
enum Halt {
    StoreGone(crate::store::StoreError),
    Error(TuneError),
}

impl From<TuneError> for Halt {
    fn from(e: TuneError) -> Halt {
        Halt::Error(e)
    }
}

impl From<crate::store::StoreError> for Halt {
    fn from(e: crate::store::StoreError) -> Halt {
        Halt::Error(e.into())
    }
}

impl<'a> Session<'a> {
    fn open(
        store: &'a Store,
        pipeline: &'a Pipeline,
        experiment: &'a Experiment,
        search: &'a ResolvedSearch,
        opts: &'a TuneOptions,
        reporter: Arc<dyn TuneReporter>,
    ) -> Result<Session<'a>, TuneError> {
        let started = Instant::now();
        let rows = store.trials(experiment.id)?;
        let next_number = store.next_trial_number(experiment.id)?;
        let mut sampler = sampler_for(search)?;
        // A resumed session must not replay the suggestions of the first one: a fresh
        // but reproducible seed from the user's seed and the trials already made.
        if next_number > 0
            && let Some(seed) = search
                .settings
                .iter()
                .find(|s| s.name == "random_state")
                .and_then(|s| s.value.trim().parse::<u64>().ok())
        {
            sampler.reseed(seed.wrapping_add((next_number as u64).wrapping_mul(0x9E37_79B9)));
        }
        let stopping = match &search.early_stopping {
            Some((name, settings)) => Some(
                stopping_from_katib(name, settings).map_err(|e| TuneError::Setup(e.to_string()))?,
            ),
            None => None,
        };
        // Run directories are named after the experiment; one recorded by an older kale
        // under a name that is not a DNS label gets the nearest name that is.
        let run_prefix = match crate::names::problem(&experiment.spec.name) {
            None => experiment.spec.name.clone(),
            Some(_) => {
                crate::names::suggestion(&experiment.spec.name).unwrap_or_else(|| "trial".into())
            }
        };
        Ok(Session {
            store,
            log: TrialLog::new(store, experiment),
            pipeline,
            experiment,
            search,
            opts,
            reporter,
            sampler,
            stopping,
            limits: rules::Limits {
                direction: search.direction,
                goal: search.goal,
                max_failed: search.max_failed,
                max_trials: search.max_trials,
            },
            objective_names: search.objectives.iter().map(|o| o.name.clone()).collect(),
            history: record::history(&search.space, &rows, search.is_multi()),
            cache_hits: rows.iter().map(|r| r.cache_hits as u64).sum(),
            cache_misses: rows.iter().map(|r| r.cache_misses as u64).sum(),
            rows,
            running: HashMap::new(),
            next_number,
            ended: None,
            interrupted: false,
            exhausted: false,
            cache_notes: Vec::new(),
            fork_server: exec::fork_server::ForkServerSlot::for_pipeline(pipeline),
            run_prefix,
            started,
        })
    }

    /// Starts trials while the experiment has not ended and there is room for them.
    fn start_trials(
        &mut self,
        tasks: &mut JoinSet<()>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), TuneError> {
        if self.ended.is_none() {
            self.ended = rules::end_condition(&self.rows, &self.limits);
        }
        while self.ended.is_none() && !self.interrupted && !self.exhausted && self.free_slots() > 0
        {
            let Some(params) = self.ask()? else {
                self.exhausted = true;
                break;
            };
            self.launch(tasks, events, params)?;
        }
        Ok(())
    }

    fn free_slots(&self) -> usize {
        rules::free_slots(
            &self.rows,
            self.running.len(),
            self.search.parallel,
            self.search.max_trials,
        )
    }

    /// The sampler's next parameters, given the finished trials and those still
    /// running (so parallel trials do not all get the same suggestion); `None` when
    /// the space is exhausted.
    fn ask(&mut self) -> Result<Option<kale_search::Params>, TuneError> {
        let mut snapshot = self.history.clone();
        for (n, t) in &self.running {
            snapshot.push(Trial::running(*n as u64, t.params.clone()));
        }
        let suggestion = self
            .sampler
            .ask_multi(&self.search.space, &snapshot, &self.search.directions())
            .map_err(|e| TuneError::Setup(e.to_string()))?;
        Ok(suggestion.params())
    }

    /// Records trial `next_number` as running and starts its pipeline run.
    fn launch(
        &mut self,
        tasks: &mut JoinSet<()>,
        events: &mpsc::UnboundedSender<Event>,
        params: kale_search::Params,
    ) -> Result<(), TuneError> {
        let (pipeline, opts) = (self.pipeline, self.opts);
        let values = trial_values(pipeline, &params)?;
        let number = self.next_number;
        self.next_number += 1;
        let run_id = format!(
            "{}-t{number}-{}",
            self.run_prefix,
            &exec::new_run_id()[16..]
        );
        let run_dir = crate::layout::child(&opts.runs_dir, &run_id)?
            .display()
            .to_string();
        let started = self.log.start(number, &params, &run_dir)?;
        self.reporter.trial_started(&started);
        self.rows.push(started);
        let tuned: BTreeMap<String, PipelineValue> = values
            .iter()
            .filter(|(k, _)| params.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let run_opts = RunOptions {
            interpreter: opts.interpreter.clone(),
            values,
            jobs: opts.jobs_per_trial,
            runs_dir: opts.runs_dir.clone(),
            run_id: Some(run_id),
            cache: opts.cache.clone(),
            reuse: opts.reuse,
            experiment: Some((self.experiment.spec.name.clone(), number as u64)),
            fork_server: self.fork_server.clone(),
            resources: opts.resources.clone(),
        };
        let trial = scheduler::launch(
            tasks,
            events,
            pipeline,
            number,
            params,
            &tuned,
            run_opts,
            &self.search.objective,
            opts.trial_timeout,
        );
        self.running.insert(number, trial);
        Ok(())
    }

    fn cancel_running(&self) {
        for t in self.running.values() {
            t.cancel();
        }
    }

    fn on_event(&mut self, event: Event) -> Result<(), Halt> {
        match event {
            Event::Gpus { number, gpus } => {
                if let Some(t) = self.running.get_mut(&number) {
                    t.gpus = gpus;
                }
            }
            Event::CacheNote { number, step, note } => {
                self.reporter
                    .notice(&format!("trial {number} · {step}: {note}"), &self.live());
                self.cache_notes.push((number, step, note));
            }
            Event::Intermediate { number, value } => self.on_intermediate(number, value)?,
            Event::Finished {
                number,
                run,
                timed_out,
            } => self.on_finished(number, &run, timed_out)?,
        }
        Ok(())
    }

    /// Records a trial's intermediate report, and stops the trial when the
    /// early-stopping rule says so.
    fn on_intermediate(&mut self, number: i64, value: f64) -> Result<(), TuneError> {
        let Some(t) = self.running.get_mut(&number) else {
            return Ok(());
        };
        t.intermediate.push(value);
        self.log.report(number, &t.intermediate)?;
        if let Some(rule) = &self.stopping
            && !t.pruned
        {
            let mut me = Trial::running(number as u64, t.params.clone());
            me.intermediate_values = record::by_step(&t.intermediate);
            if rule.should_stop(&me, &self.history, self.search.direction) {
                t.pruned = true;
                t.cancel();
            }
        }
        Ok(())
    }

    /// Records how a trial's run ended, and tells the sampler.
    fn on_finished(
        &mut self,
        number: i64,
        run: &std::io::Result<exec::RunOutcome>,
        timed_out: bool,
    ) -> Result<(), Halt> {
        let Some(t) = self.running.remove(&number) else {
            return Ok(());
        };
        exec::trace::event("trial.finished", || number.to_string());
        let result = outcome::classify(&outcome::Ended {
            run,
            pruned: t.pruned,
            intermediate: &t.intermediate,
            timed_out,
            trial_timeout: self.opts.trial_timeout,
            objectives: &self.objective_names,
            constraints: &self.search.constraints,
        });
        self.cache_hits += result.cache_hits as u64;
        self.cache_misses += result.cache_misses as u64;
        let row = self
            .log
            .finish(number, &result, t.started.elapsed().as_secs_f64())?;
        if let Err(gone) = self.store.check_still_there() {
            return Err(Halt::StoreGone(gone));
        }
        exec::trace::event("trial.stored", || number.to_string());
        if let Some(slot) = self.rows.iter_mut().find(|r| r.number == number) {
            *slot = row.clone();
        }
        self.reporter.trial_result(&row);
        if let Some(done) = record::sampler_trial(
            number,
            t.params,
            &result,
            &t.intermediate,
            self.search.is_multi(),
        ) {
            self.sampler.tell(&done);
            self.history.push(done);
            self.reporter
                .trial_finished(&trial_line(&row, &self.objective_names), &self.live());
        }
        Ok(())
    }

    fn live(&self) -> LiveState {
        live_state(
            &self.experiment.spec.name,
            self.search,
            &self.rows,
            &self.running,
            (self.cache_hits, self.cache_misses),
            self.experiment.wall_seconds + self.started.elapsed().as_secs_f64(),
        )
    }

    /// Records how the session ended, once no trial is running.
    fn finish(self) -> Result<TuneOutcome, TuneError> {
        let (store, search) = (self.store, self.search);
        store.check_still_there()?;
        let trials = store.trials(self.experiment.id)?;
        let (status, reason) =
            rules::final_status(self.interrupted, self.ended, self.exhausted, &trials);
        store.finish_experiment(
            self.experiment.id,
            status,
            &reason,
            self.started.elapsed().as_secs_f64(),
        )?;
        let multi = search.is_multi();
        Ok(TuneOutcome {
            experiment: store.experiment(&self.experiment.spec.name)?,
            best: if multi {
                None
            } else {
                best_trial(&trials, search.direction).cloned()
            },
            front: if multi {
                pareto_front(&trials, &search.objectives)
                    .into_iter()
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            },
            status,
            reason,
            trials,
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            cache_notes: self.cache_notes,
        })
    }
}

/// The pipeline's parameter values for a trial: the notebook's, with the suggested
/// ones converted to the types the notebook assigns.
fn trial_values(
    pipeline: &Pipeline,
    params: &kale_search::Params,
) -> Result<BTreeMap<String, PipelineValue>, TuneError> {
    let mut values = exec::parameter_values(pipeline, &BTreeMap::new());
    for (name, v) in params {
        let like = values
            .get(name)
            .cloned()
            .ok_or_else(|| TuneError::Setup(format!("`{name}` is not a pipeline parameter")))?;
        let converted = plan::to_pipeline_value(&like, v)
            .map_err(|e| TuneError::Setup(format!("parameter `{name}`: {e}")))?;
        values.insert(name.clone(), converted);
    }
    Ok(values)
}

/// What the live view shows.
fn live_state(
    name: &str,
    search: &ResolvedSearch,
    rows: &[TrialRow],
    running: &HashMap<i64, Running>,
    (cache_hits, cache_misses): (u64, u64),
    elapsed: f64,
) -> LiveState {
    let count = |s: TrialStatus| crate::query::count(rows, s) as u64;
    let mut in_flight: Vec<_> = running
        .iter()
        .map(|(n, t)| {
            let label = match t.gpus.as_slice() {
                [] => t.label.clone(),
                gpus => format!("{}  [gpu {}]", t.label, gpus.join(",")),
            };
            (*n, label, t.started.elapsed().as_secs_f64())
        })
        .collect();
    in_flight.sort_by_key(|x| x.0);
    let names: Vec<String> = search.objectives.iter().map(|o| o.name.clone()).collect();
    let multi = search.is_multi();
    LiveState {
        experiment: name.to_string(),
        objective: if multi {
            objectives_text(&search.objectives)
        } else {
            search.objective.clone()
        },
        direction: if multi {
            "Pareto front of".into()
        } else {
            search.direction.as_str().into()
        },
        max_trials: search.max_trials,
        succeeded: count(TrialStatus::Succeeded),
        failed: count(TrialStatus::Failed),
        early_stopped: count(TrialStatus::EarlyStopped),
        running: in_flight,
        front: multi.then(|| {
            pareto_front(rows, &search.objectives)
                .into_iter()
                .map(|r| trial_line(r, &names))
                .collect()
        }),
        best: best_trial(rows, search.direction)
            .filter(|_| !multi)
            .map(|best| {
                (
                    best.number,
                    best.value.unwrap_or(f64::NAN),
                    params_text(&best.params),
                )
            }),
        recent: rows
            .iter()
            .rev()
            .filter(|r| r.status.counts_toward_budget())
            .take(5)
            .map(|r| trial_line(r, &names))
            .collect(),
        cache_hits,
        cache_misses,
        elapsed,
    }
}

/// `accuracy (maximize), latency_ms (minimize)`.
pub fn objectives_text(objectives: &[Objective]) -> String {
    objectives
        .iter()
        .map(|o| format!("{} ({})", o.name, o.direction.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn params_text(params: &Value) -> String {
    match params {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::format::value_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// One trial: its objective values (or how it ended), `infeasible` when it broke a
/// constraint, its parameters, time, cache use and error.
pub fn trial_line(r: &TrialRow, objectives: &[String]) -> String {
    let mut outcome = match (r.status, r.value) {
        (TrialStatus::Succeeded, Some(v))
            if objectives.len() <= 1 || r.values.len() != objectives.len() =>
        {
            format!(
                "{}={v:.6}",
                objectives.first().map_or("value", String::as_str)
            )
        }
        (TrialStatus::Succeeded, Some(_)) => objectives
            .iter()
            .zip(&r.values)
            .map(|(n, v)| format!("{n}={}", crate::format::num(*v)))
            .collect::<Vec<_>>()
            .join(" "),
        (s, _) => s.to_string(),
    };
    if !r.is_feasible() && r.status == TrialStatus::Succeeded {
        outcome.push_str(" infeasible");
    }
    let cache = if r.cache_hits + r.cache_misses > 0 {
        format!("  cache {}/{}", r.cache_hits, r.cache_hits + r.cache_misses)
    } else {
        String::new()
    };
    let error = r
        .error
        .as_deref()
        .filter(|_| r.status != TrialStatus::Succeeded)
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
pub fn params_from(notebook: &std::path::Path, spec: &str) -> crate::Result<Vec<String>> {
    let bad = |message: String, hint: String| {
        crate::Error::bad_input(format!("--params-from {spec}: {message}")).with_hint(hint)
    };
    let (name, trial) = match spec.rsplit_once('/') {
        Some((n, t)) => (
            n,
            Some(t.parse::<i64>().map_err(|_| {
                bad(
                    format!("`{t}` in `{spec}` is not a trial number"),
                    format!("write `--params-from {n}` for its best trial, or `{n}/3` for trial 3"),
                )
            })?),
        ),
        None => (spec, None),
    };
    let path = Store::default_path(notebook);
    if !path.exists() {
        return Err(bad(
            format!("no experiment store at {}", path.display()),
            "tune the notebook first (`kale tune`); --params-from reads the experiments beside it"
                .into(),
        ));
    }
    let store_error = |e: crate::store::StoreError| match e {
        crate::store::StoreError::NotFound(_) => bad(
            e.to_string(),
            "`kale experiments list` shows the experiments".into(),
        ),
        e => crate::Error::from(e),
    };
    let store = Store::open_read_only(&path).map_err(store_error)?;
    let e = store.experiment(name).map_err(store_error)?;
    let trials = store.trials(e.id).map_err(store_error)?;
    let row = match trial {
        Some(n) => trials.iter().find(|t| t.number == n).ok_or_else(|| {
            bad(
                format!("experiment `{name}` has no trial {n}"),
                format!("`kale experiments show {name}` lists its trials"),
            )
        })?,
        None if e.spec.objectives.len() > 1 => {
            let front: Vec<String> = pareto_front(&trials, &e.spec.objectives)
                .iter()
                .map(|t| t.number.to_string())
                .collect();
            return Err(if front.is_empty() {
                bad(
                    format!(
                        "experiment `{name}` has several objectives and no feasible succeeded trial"
                    ),
                    format!("pick a trial yourself: `--params-from {name}/TRIAL`"),
                )
            } else {
                bad(
                    format!(
                        "experiment `{name}` has several objectives, so no single best trial; its Pareto front is trials {}",
                        front.join(", ")
                    ),
                    format!(
                        "pass one as `{name}/TRIAL`, e.g. `--params-from {name}/{}`",
                        front[0]
                    ),
                )
            });
        }
        None => best_trial(&trials, e.spec.direction).ok_or_else(|| {
            bad(
                format!("experiment `{name}` has no feasible succeeded trial"),
                format!("`kale experiments show {name}` says how its trials ended; pick one with `--params-from {name}/TRIAL`"),
            )
        })?,
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
