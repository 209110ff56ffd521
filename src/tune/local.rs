//! `kale tune` on this machine as one operation, from the flags ([`LocalPlan`]) to the
//! experiment in the store and the document `--json` prints ([`LocalReport`]).
//!
//! [`LocalTune::prepare`] resolves the search, picks the Python and sizes this
//! machine's resources, records the experiment (or reopens it with `--resume`) and
//! tells the reporter what is about to run. [`LocalTune::run`] runs the trials with
//! [`super::tune`]; when that stops on an error, the experiment does not stay
//! `running`. Between the two, the caller may serve the store (`--dashboard`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::plan::{self, ResolvedSearch, SearchArgs};
use super::{TuneOptions, TuneOutcome, TuneReporter};
use crate::exec::cache::Cache;
use crate::exec::resources::{ResourcePool, StepResources};
use crate::machine::{MachineSettings, StepPython};
use crate::pipeline::Pipeline;
use crate::store::{Experiment, ExperimentStatus, Store, TrialStatus};
use crate::{Error, ErrorKind};

/// What the user asked of a local tune.
#[derive(Clone, Debug)]
pub struct LocalPlan {
    pub notebook: PathBuf,
    pub search: SearchArgs,
    /// The experiment's name (default: the first free `<pipeline>-<n>`).
    pub name: Option<String>,
    /// Continue the experiment `name` where it stopped.
    pub resume: bool,
    /// `--python`.
    pub python: Option<PathBuf>,
    pub machine: MachineSettings,
    pub trial_timeout: Option<Duration>,
    /// Run every step of every trial (`--no-cache`).
    pub no_cache: bool,
}

/// What a tune is about to do, once its experiment is recorded: the header a person
/// reads and the `tune_started` event a program reads.
#[derive(Clone, Debug)]
pub struct Started {
    pub experiment: String,
    pub notebook: PathBuf,
    pub resumed: bool,
    pub search: ResolvedSearch,
    /// What lets fewer trials' steps run at once than `--parallel` says.
    pub limited: Option<String>,
    pub python: StepPython,
}

/// A local tune whose experiment is recorded and whose trials have not started.
pub struct LocalTune {
    pipeline: Pipeline,
    experiment: Experiment,
    started: Started,
    opts: TuneOptions,
    reporter: Arc<dyn TuneReporter>,
}

/// How a local tune ended: its experiment, its trials, what it was asked.
#[derive(Clone, Debug)]
pub struct LocalReport {
    pub started: Started,
    pub outcome: TuneOutcome,
}

impl LocalTune {
    /// Everything before the first trial. Bad settings are refused before the
    /// experiment is recorded; an experiment recorded here and not run is released.
    pub fn prepare(
        pipeline: Pipeline,
        plan: &LocalPlan,
        reporter: Arc<dyn TuneReporter>,
    ) -> crate::Result<LocalTune> {
        let store_path = Store::default_path(&plan.notebook);
        let store = Store::open(&store_path)?;
        let resolved = if plan.resume {
            None
        } else {
            Some(
                plan::resolve(&pipeline, &plan.search)
                    .map_err(|e| e.in_notebook(&plan.notebook))?,
            )
        };
        let python = StepPython::find(plan.python.as_deref())?;
        // Steps that cannot run on this machine are refused before an experiment is
        // recorded (the pool itself is sized below, once the parallelism is known).
        plan.machine.pool(&plan.notebook, &pipeline, 1, 1)?;
        let name = experiment_name(&store, &pipeline, plan)?;
        let notebook_hash = crate::notebook::load(&plan.notebook, &mut Default::default())
            .map(|nb| nb.content)
            .unwrap_or_default();
        let (experiment, search) = super::prepare(
            &pipeline,
            &notebook_hash,
            &store,
            &name,
            plan.resume,
            resolved,
            plan.search.max_trials,
            plan.search.parallel,
        )?;
        drop(store);
        let release = |e: Error| {
            release_after_error(&store_path, &name, plan.resume, &e.to_string());
            e
        };
        if plan.resume && experiment.spec.notebook_hash != notebook_hash {
            reporter.say(&format!(
                "warning: the notebook changed since experiment `{name}` started; new trials run the current notebook"
            ));
        }
        let jobs_per_trial = (cores() / search.parallel.max(1)).max(1);
        let resources = plan
            .machine
            .pool(&plan.notebook, &pipeline, search.parallel, jobs_per_trial)
            .map_err(release)?;
        let started = Started {
            experiment: name.clone(),
            notebook: plan.notebook.clone(),
            resumed: plan.resume,
            limited: parallelism_limit(&pipeline, &resources, search.parallel),
            search,
            python,
        };
        reporter.started(&started);
        let cache =
            Cache::open(&Cache::default_root(&plan.notebook)).map_err(|e| release(e.into()))?;
        let opts = TuneOptions {
            name,
            resume: plan.resume,
            jobs_per_trial,
            search: started.search.clone(),
            interpreter: started.python.interpreter.clone(),
            runs_dir: crate::exec::default_runs_dir(&plan.notebook),
            store_path,
            cache: Some(Arc::new(cache)),
            reuse: !plan.no_cache,
            trial_timeout: plan.trial_timeout,
            resources: Some(resources),
        };
        Ok(LocalTune {
            pipeline,
            experiment,
            started,
            opts,
            reporter,
        })
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    pub fn store_path(&self) -> &Path {
        &self.opts.store_path
    }

    /// Runs the trials to an end condition, or until `cancel` turns true. A tune
    /// that stops on an error leaves its experiment failed (or, with no trial made,
    /// removed), never `running`.
    pub async fn run(self, cancel: watch::Receiver<bool>) -> crate::Result<LocalReport> {
        let LocalTune {
            pipeline,
            experiment,
            started,
            opts,
            reporter,
        } = self;
        let outcome = super::tune(
            &pipeline,
            experiment,
            &started.search,
            &opts,
            reporter.clone(),
            cancel,
        )
        .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                release_after_error(&opts.store_path, &opts.name, opts.resume, &e.to_string());
                return Err(e.into());
            }
        };
        let report = LocalReport { started, outcome };
        reporter.finished(&report);
        Ok(report)
    }
}

/// The name a new experiment gets, or the one `--resume` continues.
fn experiment_name(store: &Store, pipeline: &Pipeline, plan: &LocalPlan) -> crate::Result<String> {
    Ok(match &plan.name {
        // A new experiment's name becomes its run directories: it must follow the
        // name rule. One already recorded (resumed) is looked up as it is.
        Some(n) if !plan.resume => {
            crate::names::check("an experiment", n)?;
            n.clone()
        }
        Some(n) => n.clone(),
        None => super::default_name(store, pipeline)?,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// What lets fewer trials' steps run at once than `parallel` says: the GPUs the
/// steps ask for, or the CPU budget.
fn parallelism_limit(pipeline: &Pipeline, pool: &ResourcePool, parallel: usize) -> Option<String> {
    let asked: Vec<u32> = pipeline
        .steps
        .iter()
        .filter_map(|s| StepResources::of(&s.config).ok())
        .map(|r| pool.effective(r).gpus)
        .collect();
    pool.limit_on(
        parallel,
        asked.iter().copied().max().unwrap_or(0),
        asked.contains(&0),
    )
}

/// A tune that stopped on an error must not leave its experiment `running`: a new
/// experiment that made no trial is removed (its name is free again), any other is
/// marked failed with the error as the reason.
fn release_after_error(store_path: &Path, name: &str, resumed: bool, error: &str) {
    // A store deleted under the tune is not recreated empty just to record this.
    if !store_path.is_file() {
        return;
    }
    let Ok(store) = Store::open(store_path) else {
        return;
    };
    let Ok(e) = store.experiment(name) else {
        return;
    };
    let made_trials = store.trials(e.id).map(|t| !t.is_empty()).unwrap_or(true);
    if !resumed && !made_trials {
        let _ = store.delete_experiment(name);
    } else {
        let _ = store.finish_experiment(e.id, ExperimentStatus::Failed, error, 0.0);
    }
}

impl LocalReport {
    pub fn name(&self) -> &str {
        &self.started.experiment
    }

    /// Trials that ended `status`.
    pub fn count(&self, status: TrialStatus) -> usize {
        crate::query::count(&self.outcome.trials, status)
    }

    /// The `--json` document of `kale tune`.
    pub fn document(&self) -> Value {
        let (o, search) = (&self.outcome, &self.started.search);
        let best = o.best.as_ref().map(|b| {
            json!({"trial": b.number, "params": b.params, "metrics": b.metrics, "run_dir": b.run_dir})
        });
        let front: Vec<_> = o
            .front
            .iter()
            .map(|t| json!({"trial": t.number, "values": t.values, "params": t.params, "run_dir": t.run_dir}))
            .collect();
        let per_trial: Vec<_> = o
            .trials
            .iter()
            .map(|t| {
                json!({"trial": t.number, "status": t.status, "values": t.values,
                       "constraints": nan_as_null(&t.constraints), "feasible": t.is_feasible(),
                       "params": t.params})
            })
            .collect();
        json!({
            "experiment": self.name(),
            "status": o.status,
            "reason": o.reason,
            "objectives": search.objectives,
            "constraints": search.constraints,
            "best": best,
            "pareto_front": if search.is_multi() { json!(front) } else { Value::Null },
            "trial_results": per_trial,
            "trials": {
                "total": crate::query::counted(&o.trials),
                "succeeded": self.count(TrialStatus::Succeeded),
                "failed": self.count(TrialStatus::Failed),
                "early_stopped": self.count(TrialStatus::EarlyStopped),
            },
            "cache": {
                "hits": o.cache_hits,
                "misses": o.cache_misses,
                "notes": o.cache_notes.iter().map(|(trial, step, note)| {
                    json!({"trial": trial, "step": step, "note": note})
                }).collect::<Vec<_>>(),
            },
            "python": self.started.python.to_json(),
        })
    }

    /// The exit status the outcome calls for: a failed experiment fails the command,
    /// an interrupted one ends it as interrupted.
    pub fn result(&self) -> crate::Result<()> {
        let o = &self.outcome;
        match o.status {
            // Its trials failed because the disk refused their outputs: the machine's
            // problem (exit 3), as for `kale run`.
            ExperimentStatus::Failed if DISK_REFUSED.iter().any(|m| o.reason.contains(m)) => {
                Err(Error::environment(format!(
                    "experiment {} failed: the disk refused its trials' outputs",
                    self.name()
                ))
                .with_hint(
                    "free space on that disk (or make it writable), then continue with --resume",
                ))
            }
            ExperimentStatus::Succeeded => Ok(()),
            ExperimentStatus::Interrupted => Err(Error::reported(ErrorKind::Interrupted)),
            ExperimentStatus::Failed | ExperimentStatus::Running => {
                Err(Error::reported(ErrorKind::Failed))
            }
        }
    }
}

/// What a trial's error says when the disk refused its outputs (no space, read-only,
/// over quota).
const DISK_REFUSED: &[&str] = &[
    ": KaleDiskError: ",
    "[Errno 28]",
    "[Errno 30]",
    "[Errno 122]",
];

/// Constraint values for JSON: a metric the run did not report (NaN) as `null`.
fn nan_as_null(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|v| v.is_finite().then_some(*v)).collect()
}
