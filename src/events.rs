//! The machine-readable progress of `kale run` and `kale tune` (`--events FILE|-`):
//! one JSON object per line, its `event` field naming the kind. kale's JupyterLab panel
//! follows runs and tunes with it; any other tool can too. The human view (stderr)
//! is unchanged beside it.
//!
//! [`EventStream`] is a [`Reporter`] and a [`TuneReporter`]: the executor and the tuner
//! report to it as they do to the terminal views, and [`Both`] sends the same reports
//! to the two. `run_started`/`run_finished` come from the command, which knows the plan
//! and the outcome; `tune_started`/`tune_finished` from the tune operation
//! ([`crate::tune::local`]), through the same reporter.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::exec::{Reporter, RunStatus, StepError, StepStatus};
use crate::store::{TrialRow, TrialStatus};
use crate::tune::local::{LocalReport, Started};
use crate::tune::{LiveState, TuneReporter};

/// One line of the stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `kale run` is about to start its steps (in this topological order).
    RunStarted {
        notebook: PathBuf,
        steps: Vec<PlannedStep>,
    },
    StepStarted {
        step: String,
    },
    /// A line the step printed (`stream` is `stdout` or `stderr`).
    StepOutput {
        step: String,
        stream: &'static str,
        line: String,
    },
    /// Why a step that ran before runs again, or why its result is not kept.
    StepCacheNote {
        step: String,
        note: String,
    },
    /// The GPUs a step holds while it runs.
    StepGpus {
        step: String,
        gpus: Vec<String>,
    },
    StepFinished {
        step: String,
        status: StepStatus,
        seconds: f64,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
        seconds: f64,
        metrics: BTreeMap<String, Value>,
        steps: Vec<FinishedStep>,
        /// The step that failed, located in the notebook.
        error: Option<Failure>,
        run_dir: PathBuf,
    },
    /// `kale tune` has its plan: the experiment, what it optimises, over what, how.
    TuneStarted {
        experiment: String,
        notebook: PathBuf,
        resumed: bool,
        objectives: Vec<crate::store::Objective>,
        constraints: Vec<String>,
        algorithm: String,
        /// The search space, as Katib's `parameters` list.
        parameters: Value,
        max_trials: u64,
        parallel: usize,
    },
    TrialStarted {
        trial: i64,
        params: Value,
        run_dir: Option<String>,
    },
    TrialFinished(TrialSummary),
    /// The counts changed, a trial started or ended, or the best trial changed.
    Progress(Progress),
    /// A line worth keeping that is not a trial's end (why a cached step ran again).
    Notice {
        message: String,
    },
    /// Something went wrong that the tune carries on through.
    Warning {
        message: String,
    },
    TuneFinished {
        experiment: String,
        status: crate::store::ExperimentStatus,
        reason: String,
        best: Option<TrialSummary>,
        pareto_front: Vec<TrialSummary>,
        succeeded: usize,
        failed: usize,
        early_stopped: usize,
        cache_hits: u64,
        cache_misses: u64,
        seconds: f64,
    },
    /// `kale tune --katib`: the cluster's Experiment ended, or kale stopped watching it
    /// (`detached`).
    KatibFinished {
        experiment: String,
        namespace: String,
        phase: crate::kubeflow::katib_view::Phase,
        reason: String,
        detached: bool,
        best: Option<KatibBest>,
        succeeded: u64,
        failed: u64,
        early_stopped: u64,
        running: u64,
    },
}

/// Katib's best trial (`currentOptimalTrial`), by its Trial name and kale's number.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KatibBest {
    pub trial: String,
    pub number: Option<i64>,
    pub value: Option<f64>,
    pub params: Value,
    pub metrics: Value,
}

impl Event {
    /// `run_started`: the steps `kale run` is about to run.
    pub fn run_started(notebook: &std::path::Path, p: &crate::pipeline::Pipeline) -> Event {
        Event::RunStarted {
            notebook: notebook.to_path_buf(),
            steps: p
                .steps
                .iter()
                .map(|s| PlannedStep {
                    name: s.name.clone(),
                    depends_on: s.depends_on.clone(),
                    cells: s.cells.clone(),
                })
                .collect(),
        }
    }

    /// `run_finished`: how a run ended.
    pub fn run_finished(r: &crate::run::RunReport) -> Event {
        let (o, m) = (&r.outcome, &r.outcome.manifest);
        Event::RunFinished {
            run_id: m.run_id.clone(),
            status: m.status,
            seconds: r.seconds(),
            metrics: m.metrics.clone(),
            steps: m
                .steps
                .iter()
                .map(|s| FinishedStep {
                    name: s.name.clone(),
                    status: s.status,
                    seconds: s.seconds,
                    cache_note: s.cache_note.clone(),
                })
                .collect(),
            error: o
                .failure
                .as_ref()
                .map(|(step, err)| Failure::new(step, err)),
            run_dir: o.run_dir.clone(),
        }
    }

    /// `katib_finished`: how the watch of a Katib Experiment ended.
    pub fn katib_finished(r: &crate::kubeflow::katib_tune::KatibReport) -> Event {
        let (w, c) = (&r.watched, r.watched.counts());
        let exp = &w.experiment;
        Event::KatibFinished {
            experiment: r.name.clone(),
            namespace: r.namespace.clone(),
            phase: exp.phase,
            reason: r.reason(),
            detached: w.detached,
            best: exp.best.as_ref().map(|b| KatibBest {
                trial: b.trial.clone(),
                number: w.number_of(&b.trial),
                value: b.value,
                params: b.params.clone(),
                metrics: b.metrics.clone().into(),
            }),
            succeeded: c.succeeded,
            failed: c.failed,
            early_stopped: c.early_stopped,
            running: c.running,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedStep {
    pub name: String,
    pub depends_on: Vec<String>,
    /// The cells (1-based, as Jupyter numbers them) the step is made of.
    pub cells: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinishedStep {
    pub name: String,
    pub status: StepStatus,
    pub seconds: Option<f64>,
    pub cache_note: Option<String>,
}

/// Where and how a step failed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub step: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub cell: Option<usize>,
    pub line: Option<u32>,
    pub code: Option<String>,
}

impl Failure {
    pub fn new(step: &str, err: &StepError) -> Self {
        Failure {
            step: step.to_string(),
            kind: err.kind.clone(),
            message: err.message.clone(),
            cell: err.cell,
            line: err.line,
            code: err.code.clone(),
        }
    }
}

/// A trial as the stream shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrialSummary {
    pub trial: i64,
    pub status: TrialStatus,
    /// The first objective's value.
    pub value: Option<f64>,
    pub values: Vec<f64>,
    /// Constraint values (`null`: the metric was not reported); `feasible` when
    /// every one is `<= 0`.
    pub constraints: Vec<Option<f64>>,
    pub feasible: bool,
    pub params: Value,
    pub metrics: Value,
    pub intermediate: Vec<f64>,
    pub seconds: Option<f64>,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub error: Option<String>,
    pub run_dir: Option<String>,
}

impl From<&TrialRow> for TrialSummary {
    fn from(r: &TrialRow) -> Self {
        TrialSummary {
            trial: r.number,
            status: r.status,
            value: r.value,
            values: r.values.clone(),
            constraints: r
                .constraints
                .iter()
                .map(|v| v.is_finite().then_some(*v))
                .collect(),
            feasible: r.is_feasible(),
            params: r.params.clone(),
            metrics: r.metrics.clone(),
            intermediate: r.intermediate.clone(),
            seconds: r.seconds,
            cache_hits: r.cache_hits,
            cache_misses: r.cache_misses,
            error: r.error.clone(),
            run_dir: r.run_dir.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub max_trials: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub early_stopped: u64,
    /// Trial numbers running now.
    pub running: Vec<i64>,
    /// The best trial so far and its objective value (one objective).
    pub best: Option<BestSoFar>,
    /// Several objectives: how many trials the Pareto front holds.
    pub front_size: Option<usize>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub elapsed: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BestSoFar {
    pub trial: i64,
    pub value: f64,
}

impl Progress {
    fn of(s: &LiveState) -> Self {
        Progress {
            max_trials: s.max_trials,
            succeeded: s.succeeded,
            failed: s.failed,
            early_stopped: s.early_stopped,
            running: s.running.iter().map(|r| r.0).collect(),
            best: s.best.as_ref().map(|(trial, value, _)| BestSoFar {
                trial: *trial,
                value: *value,
            }),
            front_size: s.front.as_ref().map(Vec::len),
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
            elapsed: s.elapsed,
        }
    }

    /// Whether anything but the clock moved.
    fn same_as(&self, other: &Progress) -> bool {
        Progress {
            elapsed: other.elapsed,
            ..self.clone()
        } == *other
    }
}

/// Writes each event as one JSON line and flushes it, so a reader sees it at once.
/// A reader that went away (a closed pipe) ends the stream quietly; the run goes on.
pub struct EventStream {
    out: Mutex<Sink>,
}

struct Sink {
    writer: Option<Box<dyn Write + Send>>,
    last_progress: Option<Progress>,
}

impl EventStream {
    pub fn new(writer: Box<dyn Write + Send>) -> Self {
        EventStream {
            out: Mutex::new(Sink {
                writer: Some(writer),
                last_progress: None,
            }),
        }
    }

    /// To a file (created or truncated), or to stdout for `-`.
    pub fn to_path(path: &std::path::Path) -> std::io::Result<Self> {
        if path.as_os_str() == "-" {
            // A full disk there ends the command with exit 3 (see `crate::output`).
            Ok(Self::new(Box::new(crate::output::Stdout)))
        } else {
            Ok(Self::new(Box::new(std::fs::File::create(path)?)))
        }
    }

    pub fn emit(&self, event: &Event) {
        let mut sink = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::Progress(p) = event {
            if sink
                .last_progress
                .as_ref()
                .is_some_and(|last| last.same_as(p))
            {
                return;
            }
            sink.last_progress = Some(p.clone());
        }
        let Some(writer) = sink.writer.as_mut() else {
            return;
        };
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        if writer
            .write_all(&line)
            .and_then(|()| writer.flush())
            .is_err()
        {
            sink.writer = None;
        }
    }
}

impl Reporter for EventStream {
    fn step_started(&self, step: &str) {
        self.emit(&Event::StepStarted { step: step.into() });
    }

    fn step_output(&self, step: &str, line: &str, is_stderr: bool) {
        self.emit(&Event::StepOutput {
            step: step.into(),
            stream: if is_stderr { "stderr" } else { "stdout" },
            line: line.into(),
        });
    }

    fn step_finished(&self, step: &str, status: StepStatus, seconds: f64) {
        self.emit(&Event::StepFinished {
            step: step.into(),
            status,
            seconds,
        });
    }

    fn step_cache_note(&self, step: &str, note: &str) {
        self.emit(&Event::StepCacheNote {
            step: step.into(),
            note: note.into(),
        });
    }

    fn step_gpus(&self, step: &str, gpus: &[String]) {
        self.emit(&Event::StepGpus {
            step: step.into(),
            gpus: gpus.to_vec(),
        });
    }
}

impl TuneReporter for EventStream {
    fn update(&self, state: &LiveState) {
        self.emit(&Event::Progress(Progress::of(state)));
    }

    fn trial_started(&self, trial: &TrialRow) {
        self.emit(&Event::TrialStarted {
            trial: trial.number,
            params: trial.params.clone(),
            run_dir: trial.run_dir.clone(),
        });
    }

    fn trial_result(&self, trial: &TrialRow) {
        self.emit(&Event::TrialFinished(trial.into()));
    }

    fn notice(&self, line: &str, state: &LiveState) {
        self.emit(&Event::Notice {
            message: line.into(),
        });
        self.update(state);
    }

    fn warning(&self, line: &str) {
        self.emit(&Event::Warning {
            message: line.into(),
        });
    }

    fn started(&self, s: &Started) {
        self.emit(&Event::TuneStarted {
            experiment: s.experiment.clone(),
            notebook: s.notebook.clone(),
            resumed: s.resumed,
            objectives: s.search.objectives.clone(),
            constraints: s.search.constraints.iter().map(|c| c.to_string()).collect(),
            algorithm: s.search.algorithm.clone(),
            parameters: s.search.space.to_katib_json(),
            max_trials: s.search.max_trials,
            parallel: s.search.parallel,
        });
    }

    fn finished(&self, r: &LocalReport) {
        let o = &r.outcome;
        self.emit(&Event::TuneFinished {
            experiment: r.name().to_string(),
            status: o.status,
            reason: o.reason.clone(),
            best: o.best.as_ref().map(TrialSummary::from),
            pareto_front: o.front.iter().map(TrialSummary::from).collect(),
            succeeded: r.count(TrialStatus::Succeeded),
            failed: r.count(TrialStatus::Failed),
            early_stopped: r.count(TrialStatus::EarlyStopped),
            cache_hits: o.cache_hits,
            cache_misses: o.cache_misses,
            seconds: o.experiment.wall_seconds,
        });
    }
}

/// Reports to two reporters: the terminal view and the event stream.
pub struct Both<A, B>(pub A, pub B);

impl<A: Reporter, B: Reporter> Reporter for Both<A, B> {
    fn step_started(&self, step: &str) {
        self.0.step_started(step);
        self.1.step_started(step);
    }
    fn step_output(&self, step: &str, line: &str, is_stderr: bool) {
        self.0.step_output(step, line, is_stderr);
        self.1.step_output(step, line, is_stderr);
    }
    fn step_finished(&self, step: &str, status: StepStatus, seconds: f64) {
        self.0.step_finished(step, status, seconds);
        self.1.step_finished(step, status, seconds);
    }
    fn step_cache_note(&self, step: &str, note: &str) {
        self.0.step_cache_note(step, note);
        self.1.step_cache_note(step, note);
    }
    fn step_gpus(&self, step: &str, gpus: &[String]) {
        self.0.step_gpus(step, gpus);
        self.1.step_gpus(step, gpus);
    }
}

impl<A: TuneReporter, B: TuneReporter> TuneReporter for Both<A, B> {
    fn update(&self, state: &LiveState) {
        self.0.update(state);
        self.1.update(state);
    }
    fn trial_started(&self, trial: &TrialRow) {
        self.0.trial_started(trial);
        self.1.trial_started(trial);
    }
    fn trial_result(&self, trial: &TrialRow) {
        self.0.trial_result(trial);
        self.1.trial_result(trial);
    }
    fn trial_finished(&self, line: &str, state: &LiveState) {
        self.0.trial_finished(line, state);
        self.1.trial_finished(line, state);
    }
    fn notice(&self, line: &str, state: &LiveState) {
        self.0.notice(line, state);
        self.1.notice(line, state);
    }
    fn warning(&self, line: &str) {
        self.0.warning(line);
        self.1.warning(line);
    }
    fn say(&self, line: &str) {
        self.0.say(line);
        self.1.say(line);
    }
    fn started(&self, s: &Started) {
        self.0.started(s);
        self.1.started(s);
    }
    fn finished(&self, r: &LocalReport) {
        self.0.finished(r);
        self.1.finished(r);
    }
}

impl<R: Reporter + ?Sized> Reporter for std::sync::Arc<R> {
    fn step_started(&self, step: &str) {
        (**self).step_started(step);
    }
    fn step_output(&self, step: &str, line: &str, is_stderr: bool) {
        (**self).step_output(step, line, is_stderr);
    }
    fn step_finished(&self, step: &str, status: StepStatus, seconds: f64) {
        (**self).step_finished(step, status, seconds);
    }
    fn step_cache_note(&self, step: &str, note: &str) {
        (**self).step_cache_note(step, note);
    }
    fn step_gpus(&self, step: &str, gpus: &[String]) {
        (**self).step_gpus(step, gpus);
    }
}

impl<R: TuneReporter + ?Sized> TuneReporter for std::sync::Arc<R> {
    fn update(&self, state: &LiveState) {
        (**self).update(state);
    }
    fn trial_started(&self, trial: &TrialRow) {
        (**self).trial_started(trial);
    }
    fn trial_result(&self, trial: &TrialRow) {
        (**self).trial_result(trial);
    }
    fn trial_finished(&self, line: &str, state: &LiveState) {
        (**self).trial_finished(line, state);
    }
    fn notice(&self, line: &str, state: &LiveState) {
        (**self).notice(line, state);
    }
    fn warning(&self, line: &str) {
        (**self).warning(line);
    }
    fn say(&self, line: &str) {
        (**self).say(line);
    }
    fn started(&self, s: &Started) {
        (**self).started(s);
    }
    fn finished(&self, r: &LocalReport) {
        (**self).finished(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test reads back; `fail` makes every write fail, as a closed pipe does.
    #[derive(Clone, Default)]
    struct Buffer {
        bytes: Arc<Mutex<Vec<u8>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if *self.fail.lock().unwrap() {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn events(&self) -> Vec<Value> {
            String::from_utf8(self.bytes.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    fn state(succeeded: u64, elapsed: f64) -> LiveState {
        LiveState {
            max_trials: 4,
            succeeded,
            running: vec![(succeeded as i64, "x=1".into(), elapsed)],
            best: (succeeded > 0).then(|| (0, 0.5, "x=1".into())),
            elapsed,
            ..Default::default()
        }
    }

    #[test]
    fn progress_is_written_when_more_than_the_clock_moved() {
        let buf = Buffer::default();
        let stream = EventStream::new(Box::new(buf.clone()));
        stream.update(&state(0, 0.1));
        stream.update(&state(0, 0.6));
        stream.update(&state(0, 1.1));
        stream.update(&state(1, 1.6));
        let events = buf.events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["event"], "progress");
        assert_eq!(events[0]["running"], serde_json::json!([0]));
        assert_eq!(events[1]["succeeded"], 1);
        assert_eq!(
            events[1]["best"],
            serde_json::json!({"trial": 0, "value": 0.5})
        );
    }

    #[test]
    fn a_reader_that_went_away_ends_the_stream_quietly() {
        let buf = Buffer::default();
        let stream = EventStream::new(Box::new(buf.clone()));
        stream.step_started("a");
        *buf.fail.lock().unwrap() = true;
        stream.step_output("a", "lost", false);
        *buf.fail.lock().unwrap() = false;
        // Once the reader is gone the stream stays closed: no half-written history.
        stream.step_finished("a", StepStatus::Succeeded, 0.5);
        assert_eq!(
            buf.events(),
            [serde_json::json!({"event": "step_started", "step": "a"})]
        );
    }

    #[test]
    fn both_reporters_hear_every_report() {
        let (a, b) = (Buffer::default(), Buffer::default());
        let both = Both(
            Arc::new(EventStream::new(Box::new(a.clone()))),
            Arc::new(EventStream::new(Box::new(b.clone()))),
        );
        both.step_cache_note("load", "data.txt changed");
        TuneReporter::warning(&both, "connection dropped");
        let want = [
            serde_json::json!({"event": "step_cache_note", "step": "load", "note": "data.txt changed"}),
            serde_json::json!({"event": "warning", "message": "connection dropped"}),
        ];
        assert_eq!(a.events(), want);
        assert_eq!(b.events(), want);
    }
}
