//! The local executor: runs a pipeline's steps as Python subprocesses, in parallel
//! where the DAG allows, and records everything in the run directory.
//!
//! Layout of `.kale/runs/<run-id>/` (beside the notebook):
//! `manifest.json`, `kale_runtime.py`, and per step `steps/<step>/` with `program.py`,
//! `linemap.json`, `context.json` (inputs for the runtime), `stdout.log`, `stderr.log`,
//! `outputs/` + `outputs.json`, `metrics.json`, `status.json` and, on failure,
//! `error.json`. Step processes come from the [`fork_server`] where it can run,
//! else are spawned one by one; both behave the same to the step.
//!
//! This file is the DAG runner ([`run`]: which steps may start, the manifest, the
//! cache keys, the inputs each step reads); `step.rs` runs one step (its process,
//! output, leftovers and record).

pub mod cache;
pub mod distributions;
pub mod fork_server;
pub mod manifest;
pub mod provenance;
pub mod python;
pub mod resources;
mod step;
mod tmpname;
pub mod trace;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::analysis::PipelineValue;
use crate::codegen;
use crate::pipeline::{Pipeline, Step};

pub use manifest::{Manifest, RunStatus, SavedObject, StepError, StepRecord, StepStatus};
pub use python::Interpreter;
use step::StepTask;
pub use step::{SNAPSHOT_FILE, read_snapshot};

#[cfg(test)]
mod dag_tests;

/// What a caller sees while a run progresses. Called from several tasks at once.
pub trait Reporter: Send + Sync {
    fn step_started(&self, _step: &str) {}
    fn step_output(&self, _step: &str, _line: &str, _is_stderr: bool) {}
    fn step_finished(&self, _step: &str, _status: StepStatus, _seconds: f64) {}
    /// Why a step that ran before runs again, or why its result is not kept.
    fn step_cache_note(&self, _step: &str, _note: &str) {}
    /// The GPUs a step holds while it runs (only for steps that asked for some).
    fn step_gpus(&self, _step: &str, _gpus: &[String]) {}
}

/// A reporter that shows nothing (tests, `--json` with `--quiet`).
pub struct Silent;
impl Reporter for Silent {}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interpreter: Interpreter,
    /// Value of every pipeline parameter for this run.
    pub values: BTreeMap<String, PipelineValue>,
    pub jobs: usize,
    /// Directory holding the runs (`.kale/runs` beside the notebook by default).
    pub runs_dir: PathBuf,
    pub run_id: Option<String>,
    /// The content-addressed store. Every saved output goes into it, so a run's
    /// snapshot lives once whatever the number of runs sharing it.
    pub cache: Option<Arc<cache::Cache>>,
    /// Reuse cached step results (`--no-cache` turns this off; outputs are still stored).
    pub reuse: bool,
    /// Set when the run is a trial of a tuning experiment.
    pub experiment: Option<(String, u64)>,
    /// Where steps get their processes from when not spawned one by one (see
    /// [`fork_server`]); shared by all trials of a tune.
    pub fork_server: Option<Arc<fork_server::ForkServerSlot>>,
    /// GPUs, CPU share and memory limits of the steps (shared by all trials of a
    /// tune). `None`: steps get whatever the machine gives them.
    pub resources: Option<Arc<resources::ResourcePool>>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub manifest: Manifest,
    pub run_dir: PathBuf,
    /// The first step that failed, with its error mapped to the notebook.
    pub failure: Option<(String, StepError)>,
}

/// Values of all parameters: the notebook defaults, with `overrides` applied.
pub fn parameter_values(
    pipeline: &Pipeline,
    overrides: &BTreeMap<String, PipelineValue>,
) -> BTreeMap<String, PipelineValue> {
    pipeline
        .parameters
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                overrides
                    .get(&p.name)
                    .cloned()
                    .unwrap_or_else(|| p.value.clone()),
            )
        })
        .collect()
}

/// Default directory for runs: `.kale/runs` beside the notebook.
pub fn default_runs_dir(notebook: &Path) -> PathBuf {
    crate::layout::Layout::for_notebook(notebook).runs()
}

pub fn notebook_dir(notebook: &Path) -> PathBuf {
    match notebook.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh, sortable run id: UTC time plus random suffix.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let suffix: u32 = rand::random::<u32>() & 0xffff;
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}-{suffix:04x}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

struct Finished {
    step: String,
    record: StepRecord,
    /// The step's process, waiting to run a next step of the trial (see `hand_on`).
    idle: Option<fork_server::IdleChild>,
}

/// Runs the pipeline. Returns when every step has finished, failed, or been stopped
/// because `cancel` turned true. I/O errors on the run directory are returned as `Err`.
pub async fn run(
    pipeline: &Pipeline,
    opts: &RunOptions,
    reporter: Arc<dyn Reporter>,
    mut cancel: watch::Receiver<bool>,
) -> std::io::Result<RunOutcome> {
    let run_id = opts.run_id.clone().unwrap_or_else(new_run_id);
    let places = RunPlaces::make(pipeline, opts, &run_id)?;
    let run_dir = places.run_dir.clone();

    let mut manifest = new_manifest(pipeline, opts, &run_id);

    let jobs = opts.jobs.max(1);
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut stopping = false;
    let mut interrupted = *cancel.borrow();
    let mut failure: Option<(String, StepError)> = None;
    // A change to the manifest waits for the next write (see MANIFEST_INTERVAL); the
    // first is due one interval after the start (a trial often ends before).
    let mut unwritten = true;
    let mut written_at = tokio::time::Instant::now();
    // In a tune, a trial's step may run in the process of a step it reads from,
    // which then hands its outputs on in memory: one process start, save-and-load
    // and teardown less per link of the trial's chain. Processes no step took in
    // the turn after theirs ended are let go.
    let hand_on =
        opts.experiment.is_some() && std::env::var_os("KALE_STEP_REUSE").is_none_or(|v| v != "0");
    let mut idle: HashMap<String, fork_server::IdleChild> = HashMap::new();
    let launch = Launch {
        pipeline,
        opts,
        places: &places,
        hand_on,
        reporter: &reporter,
    };

    loop {
        if !stopping && !interrupted {
            let free = jobs.saturating_sub(running.len());
            for step in ready_steps(pipeline, &manifest).into_iter().take(free) {
                let inputs = match resolve_inputs(step, &manifest, &run_dir) {
                    Ok(i) => i,
                    Err(e) => {
                        if unwritten {
                            let _ = manifest.write(&run_dir);
                        }
                        return Err(e);
                    }
                };
                unwritten = true;
                let task = launch.task(step, inputs, &mut manifest, &mut idle, &cancel);
                running.spawn(task.run());
            }
        }
        idle.clear();
        if running.is_empty() {
            break;
        }
        // At most one write per interval while the run goes on: a trial's steps reused
        // from the cache finish within a millisecond or two of each other, and each
        // write is a new file and a rename. The last state is always written.
        let write_due = written_at + MANIFEST_INTERVAL;
        if unwritten && tokio::time::Instant::now() >= write_due {
            manifest.write(&run_dir)?;
            unwritten = false;
            written_at = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(write_due), if unwritten => {
                manifest.write(&run_dir)?;
                unwritten = false;
                written_at = tokio::time::Instant::now();
            }
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let finished = joined.map_err(std::io::Error::other)?;
                trace::event("step.joined", || finished.step.clone());
                reporter.step_finished(
                    &finished.step,
                    finished.record.status,
                    finished.record.seconds.unwrap_or(0.0),
                );
                if let Some(child) = finished.idle {
                    idle.insert(finished.step.clone(), child);
                }
                match record_finished(&mut manifest, finished.step, finished.record) {
                    Ended::Failed(step, err) if failure.is_none() => {
                        failure = Some((step, err));
                        stopping = true;
                    }
                    Ended::Interrupted => interrupted = true,
                    _ => {}
                }
                unwritten = true;
            }
            changed = cancel.changed(), if !interrupted => {
                if changed.is_err() || *cancel.borrow() {
                    interrupted = true;
                }
            }
        }
    }

    close(&mut manifest, interrupted, failure.is_some());
    manifest.write(&run_dir)?;
    trace::event("run.end", || run_id.clone());
    Ok(RunOutcome {
        manifest,
        run_dir,
        failure,
    })
}

/// How often, at most, the manifest of a running run is rewritten.
/// Where a run's files go, and what its steps need not snapshot.
struct RunPlaces {
    run_dir: PathBuf,
    runtime_dir: PathBuf,
    /// The notebook's folder: the steps' working directory.
    workdir: PathBuf,
    /// What the steps read there is covered by input and output hashes, not
    /// snapshots: `.kale/`, the runtime, the cache.
    untracked_dirs: Vec<PathBuf>,
}

impl RunPlaces {
    /// Makes the run's folder, installs the runtime and finds the notebook's folder.
    fn make(pipeline: &Pipeline, opts: &RunOptions, run_id: &str) -> std::io::Result<RunPlaces> {
        let run_dir = crate::layout::child(&opts.runs_dir, run_id)?;
        std::fs::create_dir_all(crate::layout::run_steps(&run_dir))
            .map_err(|e| crate::error::at_path(&run_dir, e))?;
        let run_dir = run_dir.canonicalize()?;
        trace::event("run.start", || run_id.to_string());
        let runtime_dir = install_runtime(&opts.runs_dir, Some(&opts.interpreter))?;
        let workdir = notebook_dir(&pipeline.notebook).canonicalize()?;
        let mut untracked_dirs = vec![
            crate::layout::Layout::beside_runs(&opts.runs_dir)
                .root()
                .canonicalize()?,
            runtime_dir.clone(),
        ];
        if let Some(c) = &opts.cache {
            untracked_dirs.push(c.root().to_path_buf());
        }
        Ok(RunPlaces {
            run_dir,
            runtime_dir,
            workdir,
            untracked_dirs,
        })
    }
}

/// What every step of a run starts from: the pipeline and options, the run's
/// folders, whether a step's process may go on to the next step (in a tune), and
/// where the steps report.
struct Launch<'a> {
    pipeline: &'a Pipeline,
    opts: &'a RunOptions,
    places: &'a RunPlaces,
    hand_on: bool,
    reporter: &'a Arc<dyn Reporter>,
}

impl Launch<'_> {
    /// Marks `step` running in the manifest (with its inputs and cache key), tells
    /// the reporter, and returns the task that runs it (in the idle process of a step
    /// it reads from, when there is one).
    fn task(
        &self,
        step: &Step,
        inputs: BTreeMap<String, manifest::InputRef>,
        manifest: &mut Manifest,
        idle: &mut HashMap<String, fork_server::IdleChild>,
        cancel: &watch::Receiver<bool>,
    ) -> StepTask {
        let program = codegen::step_program(self.pipeline, step, &self.opts.values);
        // In a tune, what a step reads from a step reused from the cache is
        // the same in every trial: the fork server may hold it for all of them.
        let warm = if self.opts.experiment.is_some() {
            inputs
                .values()
                .filter(|i| {
                    manifest
                        .step(&i.from)
                        .is_some_and(|r| r.status == StepStatus::Cached)
                })
                .map(|i| (i.hash.clone(), i.file.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let key =
            (self.opts.cache.is_some() && self.opts.reuse && step.config.cache != Some(false))
                .then(|| cache::Cache::key(&program.source, &manifest.runtime_version, &inputs));
        let record = manifest.step_mut(&step.name);
        record.key = key.clone();
        record.status = StepStatus::Running;
        record.started_at = Some(manifest::now());
        record.inputs = inputs.clone();
        self.reporter.step_started(&step.name);
        trace::event("step.launch", || step.name.clone());
        let continue_in = step
            .inputs
            .values()
            .chain(step.depends_on.iter())
            .find_map(|provider| idle.remove(provider));
        StepTask {
            step: step.clone(),
            program,
            inputs,
            warm,
            run_dir: self.places.run_dir.clone(),
            runtime_dir: self.places.runtime_dir.clone(),
            workdir: self.places.workdir.clone(),
            interpreter: self.opts.interpreter.clone(),
            fork_server: self.opts.fork_server.clone(),
            fork_server_log: fork_server::log_path(&self.opts.runs_dir),
            sources: self.pipeline.sources.clone(),
            reporter: self.reporter.clone(),
            cancel: cancel.clone(),
            record: manifest.step(&step.name).cloned().unwrap(),
            cache: self.opts.cache.clone(),
            key,
            python: self.opts.interpreter.identity(),
            untracked_dirs: self.places.untracked_dirs.clone(),
            pool: self.opts.resources.clone(),
            hand_on: self.hand_on
                && self.pipeline.steps.iter().any(|s| {
                    s.depends_on.contains(&step.name) || s.inputs.values().any(|p| p == &step.name)
                }),
            continue_in,
            idle: None,
        }
    }
}

/// The manifest of a run about to start: every step pending, with the values of
/// the parameters it reads.
fn new_manifest(pipeline: &Pipeline, opts: &RunOptions, run_id: &str) -> Manifest {
    Manifest {
        run_id: run_id.to_string(),
        notebook: pipeline.notebook.clone(),
        notebook_hash: String::new(),
        pipeline: pipeline.name.clone(),
        status: RunStatus::Running,
        started_at: manifest::now(),
        finished_at: None,
        python: opts.interpreter.executable.clone(),
        runtime_version: codegen::runtime_version(),
        parameters: opts
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
        metrics: BTreeMap::new(),
        experiment: opts.experiment.as_ref().map(|(e, _)| e.clone()),
        trial: opts.experiment.as_ref().map(|(_, t)| *t),
        pinned: false,
        steps: pipeline
            .steps
            .iter()
            .map(|s| StepRecord {
                name: s.name.clone(),
                status: StepStatus::Pending,
                seconds: None,
                started_at: None,
                finished_at: None,
                key: None,
                parameters: s
                    .parameters
                    .iter()
                    .filter_map(|p| opts.values.get(p).map(|v| (p.clone(), v.to_json())))
                    .collect(),
                inputs: BTreeMap::new(),
                outputs: Vec::new(),
                metrics: BTreeMap::new(),
                error: None,
                exit_code: None,
                cache_note: None,
                cache_check_seconds: None,
            })
            .collect(),
    }
}

/// The steps that may start now, in the pipeline's order: pending, and every step
/// they depend on or read from has succeeded (or was reused from the cache).
fn ready_steps<'p>(pipeline: &'p Pipeline, manifest: &Manifest) -> Vec<&'p Step> {
    pipeline
        .steps
        .iter()
        .filter(|step| {
            manifest.step(&step.name).map(|r| r.status) == Some(StepStatus::Pending)
                && step
                    .depends_on
                    .iter()
                    .chain(step.inputs.values())
                    .all(|p| manifest.step(p).is_some_and(|r| r.status.is_success()))
        })
        .collect()
}

/// How a step that finished ended, for the run.
#[derive(Debug, PartialEq)]
enum Ended {
    /// It failed, with its error (a generic one when it recorded none).
    Failed(String, StepError),
    Interrupted,
    Other,
}

/// Records a finished step in the manifest (its record; its metrics become the
/// run's) and says how it ended.
fn record_finished(manifest: &mut Manifest, step: String, record: StepRecord) -> Ended {
    let ended = match record.status {
        StepStatus::Failed => Ended::Failed(
            step.clone(),
            record.error.clone().unwrap_or(StepError {
                kind: "Error".into(),
                message: "the step failed".into(),
                cell: None,
                line: None,
                code: None,
                variable: None,
            }),
        ),
        StepStatus::Interrupted => Ended::Interrupted,
        _ => Ended::Other,
    };
    for (k, v) in &record.metrics {
        manifest.metrics.insert(k.clone(), v.clone());
    }
    *manifest.step_mut(&step) = record;
    ended
}

/// Ends the run's record once no step is running: steps that never started did
/// not run; the run was interrupted, failed (a step failed or did not run) or
/// succeeded.
fn close(manifest: &mut Manifest, interrupted: bool, failed: bool) {
    for record in &mut manifest.steps {
        if record.status == StepStatus::Pending {
            record.status = StepStatus::NotRun;
        }
    }
    manifest.status = if interrupted {
        RunStatus::Interrupted
    } else if failed || manifest.steps.iter().any(|s| !s.status.is_success()) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    manifest.finished_at = Some(manifest::now());
}

const MANIFEST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Writes the embedded runtime once per kale version under `.kale/runtime/<version>/`
/// (atomically: concurrent runs share it) and, given the steps' interpreter,
/// byte-compiles it, so steps do not recompile it on every start (many environments
/// set PYTHONDONTWRITEBYTECODE, which would otherwise cost each step ~13 ms).
pub fn install_runtime(
    runs_dir: &Path,
    interpreter: Option<&Interpreter>,
) -> std::io::Result<PathBuf> {
    let dir = crate::layout::Layout::beside_runs(runs_dir).runtime(&codegen::runtime_version());
    // Compared once per process and interpreter (a tune starts a run per trial);
    // after that, only whether it is still there.
    static INSTALLED: std::sync::Mutex<Vec<(PathBuf, Option<PathBuf>)>> =
        std::sync::Mutex::new(Vec::new());
    let this = (dir.clone(), interpreter.map(|i| i.executable.clone()));
    if INSTALLED.lock().unwrap().contains(&this) && dir.join(codegen::RUNTIME_FILE).exists() {
        return dir.canonicalize();
    }
    let installed =
        install_runtime_files(&dir, interpreter).map_err(|e| crate::error::at_path(&dir, e))?;
    INSTALLED.lock().unwrap().push(this);
    Ok(installed)
}

fn install_runtime_files(
    dir: &Path,
    interpreter: Option<&Interpreter>,
) -> std::io::Result<PathBuf> {
    let file = dir.join(codegen::RUNTIME_FILE);
    let current = std::fs::read_to_string(&file).ok();
    if current.as_deref() != Some(codegen::RUNTIME_SOURCE) {
        std::fs::create_dir_all(dir)?;
        let tmp = tmpname::beside(&file);
        std::fs::write(&tmp, codegen::RUNTIME_SOURCE)?;
        std::fs::rename(&tmp, &file)?;
    }
    let zygote = dir.join(fork_server::ZYGOTE_FILE);
    if std::fs::read_to_string(&zygote).ok().as_deref() != Some(fork_server::ZYGOTE_SOURCE) {
        let tmp = tmpname::beside(&zygote);
        std::fs::write(&tmp, fork_server::ZYGOTE_SOURCE)?;
        std::fs::rename(&tmp, &zygote)?;
    }
    let Some(interpreter) = interpreter else {
        return dir.canonicalize();
    };
    let (major, minor) = interpreter.version;
    let compiled = dir
        .join("__pycache__")
        .join(format!("kale_runtime.cpython-{major}{minor}.pyc"))
        .exists();
    if !compiled {
        // Best effort: a failure only costs start-up time.
        let _ = std::process::Command::new(&interpreter.executable)
            .arg("-m")
            .arg("py_compile")
            .arg(&file)
            .status();
    }
    dir.canonicalize()
}

fn resolve_inputs(
    step: &Step,
    manifest: &Manifest,
    run_dir: &Path,
) -> std::io::Result<BTreeMap<String, manifest::InputRef>> {
    let mut out = BTreeMap::new();
    for (var, provider) in &step.inputs {
        let record = manifest
            .step(provider)
            .expect("provider is a pipeline step");
        let saved = record
            .outputs
            .iter()
            .find(|o| &o.name == var)
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "step `{provider}` finished without saving `{var}`, which step `{}` reads",
                    step.name
                ))
            })?;
        out.insert(
            var.clone(),
            manifest::InputRef {
                from: provider.clone(),
                file: crate::layout::step_outputs(run_dir, provider).join(&saved.file),
                hash: saved.hash.clone(),
            },
        );
    }
    Ok(out)
}

pub use crate::layout::step_dir;

/// Step-name → record lookup for callers that want the outcome by name.
pub fn records_by_name(m: &Manifest) -> HashMap<&str, &StepRecord> {
    m.steps.iter().map(|s| (s.name.as_str(), s)).collect()
}
