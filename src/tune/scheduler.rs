//! Starting a trial's pipeline run in the background and hearing back from it: its
//! GPUs, cache notes, intermediate objective reports and its end, as [`Event`]s on one
//! channel the tune loop waits on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kale_search::Params;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::analysis::PipelineValue;
use crate::exec::{self, Reporter, RunOptions};
use crate::pipeline::Pipeline;

pub enum Event {
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
        run: Box<std::io::Result<exec::RunOutcome>>,
        timed_out: bool,
    },
}

/// A trial whose run is in flight.
pub struct Running {
    pub params: Params,
    /// Its parameters as the live view shows them.
    pub label: String,
    pub started: Instant,
    cancel: watch::Sender<bool>,
    pub intermediate: Vec<f64>,
    /// The early-stopping rule stopped it.
    pub pruned: bool,
    /// The GPUs its current step holds.
    pub gpus: Vec<String>,
}

impl Running {
    /// Asks the run to stop (its steps are interrupted).
    pub fn cancel(&self) {
        let _ = self.cancel.send(true);
    }
}

#[cfg(test)]
impl Running {
    /// A trial in flight with no run behind it, and what its cancellation sends: the
    /// tune loop's tests play the run's part themselves.
    pub fn without_run(params: Params) -> (Running, watch::Receiver<bool>) {
        let (cancel, cancelled) = watch::channel(false);
        let running = Running {
            label: String::new(),
            params,
            started: Instant::now(),
            cancel,
            intermediate: Vec::new(),
            pruned: false,
            gpus: Vec::new(),
        };
        (running, cancelled)
    }
}

/// Starts `run_opts`' run of `pipeline` as trial `number`; its events go to `events`.
/// The run is cancelled when [`Running::cancel`] is called or after `timeout`.
#[allow(clippy::too_many_arguments)] // the trial's identity, its run and where it reports
pub fn launch(
    tasks: &mut JoinSet<()>,
    events: &mpsc::UnboundedSender<Event>,
    pipeline: &Pipeline,
    number: i64,
    params: Params,
    tuned: &BTreeMap<String, PipelineValue>,
    run_opts: RunOptions,
    objective: &str,
    timeout: Option<Duration>,
) -> Running {
    let (cancel_tx, mut cancel_rx) = watch::channel(false);
    let reporter = Arc::new(TrialReporter {
        number,
        objective_prefix: format!("{objective}="),
        events: events.clone(),
    });
    let pipeline = pipeline.clone();
    let tx = events.clone();
    crate::exec::trace::event("trial.launch", || number.to_string());
    tasks.spawn(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        // A timeout turns into a cancellation of the run.
        let timed_out = Arc::new(AtomicBool::new(false));
        let flag = timed_out.clone();
        let watcher = tokio::spawn(async move {
            let sleep = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let cancelled = async {
                while cancel_rx.changed().await.is_ok() {
                    if *cancel_rx.borrow() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = sleep => {
                    flag.store(true, Ordering::SeqCst);
                    let _ = stop_tx.send(true);
                }
                _ = cancelled => {
                    let _ = stop_tx.send(true);
                }
            }
        });
        let run = exec::run(&pipeline, &run_opts, reporter, stop_rx).await;
        watcher.abort();
        let _ = tx.send(Event::Finished {
            number,
            run: Box::new(run),
            timed_out: timed_out.load(Ordering::SeqCst),
        });
    });
    Running {
        params,
        label: label(tuned),
        started: Instant::now(),
        cancel: cancel_tx,
        intermediate: Vec::new(),
        pruned: false,
        gpus: Vec::new(),
    }
}

fn label(p: &BTreeMap<String, PipelineValue>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running trial's value, written as [`super::params_text`] writes finished ones.
fn short(v: &PipelineValue) -> String {
    match v {
        PipelineValue::Float(f) => crate::format::num(*f),
        PipelineValue::Str(s) => s.clone(),
        other => other.to_python(),
    }
}

/// Turns a trial's step reports into events; `<objective>=<number>` output lines are
/// intermediate reports (the format of Katib's StdOut collector).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> (TrialReporter, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let r = TrialReporter {
            number: 7,
            objective_prefix: "acc=".into(),
            events,
        };
        (r, rx)
    }

    #[test]
    fn objective_lines_are_intermediate_reports_and_other_lines_are_not() {
        let (r, mut rx) = reporter();
        for line in [
            "acc=0.5",
            "  acc= 0.75 ",
            "loss=0.1",
            "acc=nan",
            "acc=high",
            "acc=inf",
        ] {
            r.step_output("train", line, false);
        }
        let mut values = Vec::new();
        while let Ok(e) = rx.try_recv() {
            match e {
                Event::Intermediate { number, value } => {
                    assert_eq!(number, 7);
                    values.push(value);
                }
                _ => panic!("only intermediate reports"),
            }
        }
        assert_eq!(values, [0.5, 0.75]);
    }

    #[test]
    fn gpus_and_cache_notes_reach_the_loop_with_the_trial_number() {
        let (r, mut rx) = reporter();
        r.step_gpus("train", &["0".into(), "1".into()]);
        r.step_cache_note("prep", "ran again: its input changed");
        match rx.try_recv().unwrap() {
            Event::Gpus { number, gpus } => {
                assert_eq!((number, gpus), (7, vec!["0".into(), "1".into()]))
            }
            _ => panic!("gpus first"),
        }
        match rx.try_recv().unwrap() {
            Event::CacheNote { number, step, note } => {
                assert_eq!((number, step.as_str()), (7, "prep"));
                assert_eq!(note, "ran again: its input changed");
            }
            _ => panic!("then the cache note"),
        }
    }

    #[test]
    fn a_running_trial_is_labelled_with_its_tuned_values() {
        let tuned = BTreeMap::from([
            ("lr".to_string(), PipelineValue::Float(0.001)),
            ("kernel".to_string(), PipelineValue::Str("rbf".into())),
        ]);
        assert_eq!(label(&tuned), "kernel=rbf lr=0.001");
    }
}
