//! Tuning on the cluster (`kale tune --katib`): naming the Experiment, uploading the
//! pipeline version its trials run, and following the Experiment with the same
//! [`TuneReporter`] local tuning reports to.
//!
//! The KFP pipeline is uploaded before the Experiment is created (unless the user names
//! one), and the trials are pinned to that exact pipeline version: an Experiment that
//! looked the pipeline up by name at each trial would silently mix versions when the
//! notebook is submitted again while it runs.

use std::collections::HashSet;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::cluster::{ClusterError, ExperimentView, KatibClient, TrialView, ordered_trials};
use super::kfp_client::{KfpClient, KfpError, PipelineVersionRef};
use crate::pipeline::Pipeline;
use crate::store::{TrialRow, TrialStatus};
use crate::tune::{LiveState, TuneReporter, params_text, trial_line};

/// Safety net under the watch: re-read at least this often, so a dropped watch or a
/// server that cannot watch still shows progress.
const POLL: Duration = Duration::from_secs(5);

/// The name to create: `flag` if it is free, else the notebook's experiment name,
/// numbered like local experiments when the cluster already has it.
pub async fn free_name(
    katib: &KatibClient,
    flag: Option<String>,
    pipeline: &Pipeline,
) -> Result<String, ClusterError> {
    if let Some(name) = flag {
        // Checked before the upload, so a taken name costs no pipeline version; the
        // create still answers 409 if another client wins the race.
        if katib.experiment(&name).await?.is_some() {
            return Err(ClusterError::AlreadyExists {
                name,
                namespace: katib.namespace.clone(),
            });
        }
        return Ok(name);
    }
    let base = super::katib::default_name(&pipeline.experiment);
    let taken: HashSet<String> = katib
        .experiments()
        .await?
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let numbered = |n: usize| {
        let suffix = format!("-{n}");
        let mut name = base.clone();
        name.truncate(super::katib::MAX_NAME_LEN - suffix.len());
        format!("{}{suffix}", name.trim_end_matches('-'))
    };
    // Among len + 1 numbers one is free.
    Ok((1..=taken.len() + 1)
        .map(numbered)
        .find(|name| !taken.contains(name))
        .expect("one of len + 1 names is free"))
}

/// Uploads the compiled pipeline as a new version named after the experiment, as
/// `kale submit --upload-only` does.
pub fn upload(
    client: &KfpClient,
    pipeline: &Pipeline,
    yaml: &str,
    experiment: &str,
    namespace: Option<&str>,
) -> Result<PipelineVersionRef, KfpError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    client.upload(
        &super::kfp::pipeline_name(pipeline),
        &pipeline.description,
        yaml,
        &format!("{experiment}-{secs}"),
        namespace,
    )
}

/// The Experiment as last read, with its trials in Katib's creation order.
pub struct Watched {
    pub experiment: ExperimentView,
    pub trials: Vec<TrialView>,
    /// The user stopped watching; the Experiment runs on.
    pub detached: bool,
}

/// Trial counts: total, succeeded, failed, early-stopped, running.
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub early_stopped: u64,
    pub running: u64,
}

impl Watched {
    /// Katib's own counts once it has any, else the ones read off the Trials.
    pub fn counts(&self) -> Counts {
        let e = &self.experiment;
        if e.trials > 0 {
            return Counts {
                total: e.trials,
                succeeded: e.succeeded,
                failed: e.failed,
                early_stopped: e.early_stopped,
                running: e.running,
            };
        }
        let c = |s: &str| self.trials.iter().filter(|t| t.status == s).count() as u64;
        Counts {
            total: self.trials.len() as u64,
            succeeded: c("succeeded"),
            failed: c("failed"),
            early_stopped: c("early_stopped"),
            running: c("running") + c("pending"),
        }
    }

    /// Local-style number (from 1) of the Katib trial called `name`.
    pub fn number_of(&self, name: &str) -> Option<i64> {
        number_of(&self.trials, name)
    }

    /// Seconds from the Experiment's start to its end (or now).
    pub fn seconds(&self) -> Option<f64> {
        let e = &self.experiment;
        e.started.map(|s| {
            let end = e.finished.unwrap_or_else(Timestamp::now);
            (end.as_millisecond() - s.as_millisecond()).max(0) as f64 / 1000.0
        })
    }
}

/// Follows the Experiment until Katib marks it Succeeded or Failed, or until `detach`
/// turns true (Ctrl-C: the Experiment keeps running on the cluster).
pub async fn watch(
    katib: &KatibClient,
    name: &str,
    reporter: &dyn TuneReporter,
    mut detach: tokio::sync::watch::Receiver<bool>,
) -> Result<Watched, ClusterError> {
    let mut changes = Box::pin(katib.changes(name, POLL));
    let mut reported: HashSet<String> = HashSet::new();
    let mut warned_unreachable = false;
    loop {
        let read =
            async {
                let obj = katib.experiment(name).await?.ok_or_else(|| {
                    ClusterError::NoSuchExperiment {
                        name: name.to_string(),
                        namespace: katib.namespace.clone(),
                    }
                })?;
                let exp = ExperimentView::from_object(&obj);
                let trials = ordered_trials(&katib.trials(name).await?, &exp);
                Ok::<_, ClusterError>((exp, trials))
            };
        match read.await {
            Ok((exp, trials)) => {
                warned_unreachable = false;
                let now = Timestamp::now();
                let state = live_state(&exp, &trials, now);
                for (i, t) in trials.iter().enumerate() {
                    if t.is_finished() && reported.insert(t.name.clone()) {
                        let line =
                            trial_line(&row(i, t, now), std::slice::from_ref(&exp.objective));
                        reporter.trial_finished(&format!("{line}  {}", t.name), &state);
                    }
                }
                reporter.update(&state);
                let finished = exp.is_finished();
                let last = Watched {
                    experiment: exp,
                    trials,
                    detached: !finished,
                };
                if finished || *detach.borrow() {
                    return Ok(last);
                }
                tokio::select! {
                    _ = detach.changed() => return Ok(last),
                    _ = changes.next() => {
                        // A trial's update comes as a burst of events: read once for all of them.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while let Some(Some(())) = changes.next().now_or_never() {}
                    }
                }
            }
            // The experiment runs on without kale: a blip in the connection is no reason
            // to stop watching.
            Err(e @ ClusterError::Unreachable { .. }) => {
                if !warned_unreachable {
                    reporter.warning(&format!("{e}; retrying (Ctrl-C detaches)"));
                    warned_unreachable = true;
                }
                tokio::select! {
                    _ = detach.changed() => return Err(e),
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// A Katib trial in the shape local trials are printed from.
fn row(index: usize, t: &TrialView, now: Timestamp) -> TrialRow {
    TrialRow {
        experiment_id: 0,
        number: index as i64 + 1,
        params: t.params.clone(),
        // Katib's pending trials are waiting to run: running, as far as the line says.
        status: TrialStatus::parse(&t.status).unwrap_or(TrialStatus::Running),
        value: t.value,
        values: t.value.into_iter().collect(),
        constraints: Vec::new(),
        metrics: Value::Object(t.metrics.clone()),
        intermediate: Vec::new(),
        started_at: 0.0,
        finished_at: None,
        seconds: t.seconds(now),
        cache_hits: 0,
        cache_misses: 0,
        error: t.message.clone(),
        run_dir: None,
    }
}

fn number_of(trials: &[TrialView], name: &str) -> Option<i64> {
    trials
        .iter()
        .position(|t| t.name == name)
        .map(|i| i as i64 + 1)
}

fn live_state(exp: &ExperimentView, trials: &[TrialView], now: Timestamp) -> LiveState {
    let count = |s: &str| trials.iter().filter(|t| t.status == s).count() as u64;
    let best = exp.best.as_ref().and_then(|b| {
        Some((
            number_of(trials, &b.trial)?,
            b.value?,
            params_text(&b.params),
        ))
    });
    LiveState {
        front: None,
        experiment: exp.name.clone(),
        objective: exp.objective.clone(),
        direction: exp.direction.clone(),
        max_trials: exp.max_trials,
        succeeded: count("succeeded"),
        failed: count("failed"),
        early_stopped: count("early_stopped"),
        running: trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_finished())
            .map(|(i, t)| {
                (
                    i as i64 + 1,
                    format!("{}  {}", params_text(&t.params), t.status),
                    t.seconds(now).unwrap_or(0.0),
                )
            })
            .collect(),
        best,
        recent: trials
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, t)| t.is_finished())
            .take(5)
            .map(|(i, t)| trial_line(&row(i, t, now), std::slice::from_ref(&exp.objective)))
            .collect(),
        cache_hits: 0,
        cache_misses: 0,
        elapsed: exp
            .started
            .map(|s| (now.as_millisecond() - s.as_millisecond()).max(0) as f64 / 1000.0)
            .unwrap_or(0.0),
    }
}
