//! `kale run` as one operation, from the flags ([`RunPlan`]) to a recorded run and the
//! document `--json` prints ([`RunReport`]).
//!
//! [`LocalRun::prepare`] settles the parameter values (`--params-from`, then `-p`),
//! the Python that runs the steps, this machine's share for them and the step cache;
//! [`LocalRun::run`] runs the pipeline with the executor ([`crate::exec::run`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::exec::{self, Reporter, RunOptions, RunOutcome, RunStatus};
use crate::machine::{MachineSettings, StepPython};
use crate::pipeline::Pipeline;
use crate::{Error, ErrorKind};

/// What the user asked of `kale run`.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub notebook: PathBuf,
    /// `--params-from EXP/TRIAL`: a tuning trial's parameters.
    pub params_from: Option<String>,
    /// `-p NAME=VALUE`, over those of `params_from`.
    pub params: Vec<String>,
    /// `--python`.
    pub python: Option<PathBuf>,
    pub machine: MachineSettings,
    /// Steps at once (default: the machine's cores).
    pub jobs: Option<usize>,
    /// Run every step (`--no-cache`).
    pub no_cache: bool,
}

/// A run whose settings are checked and whose steps have not started.
pub struct LocalRun {
    pipeline: Pipeline,
    opts: RunOptions,
    python: StepPython,
    notebook: PathBuf,
}

/// How a run ended, with what it ran with.
pub struct RunReport {
    pub outcome: RunOutcome,
    pub python: StepPython,
    pub notebook: PathBuf,
}

impl LocalRun {
    /// Everything before the first step; `say` hears the lines worth printing on
    /// the way (where the parameters came from, then which Python runs the steps,
    /// printed even with `--quiet`: it is the first thing to check when a step fails
    /// on a missing module).
    pub fn prepare(pipeline: Pipeline, plan: &RunPlan, say: &dyn Fn(&str)) -> crate::Result<Self> {
        let notebook = &plan.notebook;
        let mut texts = Vec::new();
        if let Some(spec) = &plan.params_from {
            let t = crate::tune::params_from(notebook, spec)?;
            say(&format!("parameters from {spec}: {}", t.join(" ")));
            texts = t;
        }
        // Explicit -p flags come last, so they win over --params-from.
        texts.extend(plan.params.iter().cloned());
        let mut overrides = BTreeMap::new();
        for text in &texts {
            let (name, value) = crate::pipeline::parse_override(&pipeline, text)
                .map_err(|(message, hint)| Error::bad_input(message).with_hint(hint))?;
            overrides.insert(name, value);
        }
        let python = StepPython::find(plan.python.as_deref())?;
        check_ipython(&pipeline, &python, notebook)?;
        say(&format!(
            "run {}: {} steps, {}",
            notebook.display(),
            pipeline.steps.len(),
            python.header()
        ));
        let jobs = plan.jobs.unwrap_or_else(cores);
        let resources = plan.machine.pool(notebook, &pipeline, 1, jobs)?;
        let cache = exec::cache::Cache::open(&exec::cache::Cache::default_root(notebook))?;
        let opts = RunOptions {
            values: exec::parameter_values(&pipeline, &overrides),
            interpreter: python.interpreter.clone(),
            jobs,
            runs_dir: exec::default_runs_dir(notebook),
            run_id: None,
            cache: Some(Arc::new(cache)),
            reuse: !plan.no_cache,
            experiment: None,
            fork_server: exec::fork_server::ForkServerSlot::for_pipeline(&pipeline),
            resources: Some(resources),
        };
        Ok(LocalRun {
            pipeline,
            opts,
            python,
            notebook: notebook.clone(),
        })
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Runs the steps until the pipeline ends or `cancel` turns true.
    pub async fn run(
        self,
        reporter: Arc<dyn Reporter>,
        cancel: watch::Receiver<bool>,
    ) -> crate::Result<RunReport> {
        let outcome = exec::run(&self.pipeline, &self.opts, reporter, cancel).await?;
        Ok(RunReport {
            outcome,
            python: self.python,
            notebook: self.notebook,
        })
    }
}

/// A step with IPython syntax needs IPython in the Python that runs it.
fn check_ipython(pipeline: &Pipeline, python: &StepPython, notebook: &Path) -> crate::Result<()> {
    let interpreter = &python.interpreter;
    if let Some(step) = pipeline.steps.iter().find(|s| s.ipython_at.is_some())
        && !interpreter.has_ipython
    {
        let (cell, line) = step.ipython_at.unwrap();
        return Err(Error::bad_input(format!(
            "{}: cell {cell}, line {line}: step `{}` uses IPython syntax, but IPython is not installed in {}",
            notebook.display(),
            step.name,
            interpreter.executable.display(),
        ))
        .with_hint(format!(
            "`{} -m pip install ipython`, or rewrite the line as plain Python",
            interpreter.executable.display()
        )));
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl RunReport {
    pub fn seconds(&self) -> f64 {
        let m = &self.outcome.manifest;
        m.finished_at.unwrap_or(m.started_at) - m.started_at
    }

    /// The `--json` document of `kale run`.
    pub fn document(&self) -> Value {
        let (o, m) = (&self.outcome, &self.outcome.manifest);
        let mut doc = json!({
            "run_id": m.run_id,
            "status": m.status.as_str(),
            "metrics": m.metrics,
            "steps": m.steps.iter().map(|s| {
                let mut step = json!({"name": s.name, "status": s.status.as_str(), "seconds": s.seconds});
                if let Some(note) = &s.cache_note {
                    step["cache_note"] = json!(note);
                }
                step
            }).collect::<Vec<_>>(),
            "run_dir": o.run_dir,
            "python": self.python.to_json(),
        });
        if let Some((step, err)) = &o.failure {
            doc["error"] = json!({"step": step, "type": err.kind, "message": err.message, "cell": err.cell, "line": err.line});
        }
        doc
    }

    /// The exit status the run calls for. A failed step was described with its
    /// cell and line ([`crate::render::summary::run`]); a disk that refused a write
    /// is the machine's problem (exit 3).
    pub fn result(&self) -> crate::Result<()> {
        if let Some((step, err)) = &self.outcome.failure
            && err.is_disk_error()
        {
            return Err(Error::environment(format!(
                "step `{step}` failed: the disk refused a write"
            ))
            .caused_by(&err.message)
            .with_hint(
                "free space on that disk (or make it writable), then run again; steps that finished are cached",
            ));
        }
        match self.outcome.manifest.status {
            RunStatus::Succeeded => Ok(()),
            RunStatus::Interrupted => Err(Error::reported(ErrorKind::Interrupted)),
            _ => Err(Error::reported(ErrorKind::Failed)),
        }
    }
}
