//! `kale tune --katib` as one operation: from the flags ([`KatibPlan`]) to the Katib
//! Experiment on the cluster, watched with the same [`TuneReporter`] local tuning
//! reports to, and the document `--json` prints ([`KatibReport`]).
//!
//! [`KatibTune::prepare`] checks the plan without the cluster (a dry run of the real
//! builder), connects, names the Experiment, uploads the pipeline version its trials
//! run and creates it (or, with `--resume`, finds it again); [`KatibTune::watch`]
//! follows it until Katib ends it or the user detaches.
//!
//! The KFP pipeline is uploaded before the Experiment is created (unless the user names
//! one), and the trials are pinned to that exact pipeline version: an Experiment that
//! looked the pipeline up by name at each trial would silently mix versions when the
//! notebook is submitted again while it runs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::cluster::{ClusterError, KatibClient};
use super::katib_experiment::TrialTarget;
use super::katib_view::{ExperimentView, Phase, TrialState, TrialView, ordered_trials};
use super::kfp_client::{KfpClient, KfpError, PipelineVersionRef};
use crate::pipeline::Pipeline;
use crate::store::{TrialRow, TrialStatus};
use crate::tune::plan::SearchArgs;
use crate::tune::{LiveState, TuneReporter, params_text, trial_line};
use crate::{Error, ErrorKind};

/// What the user asked of a tune on the cluster.
#[derive(Clone, Debug)]
pub struct KatibPlan {
    pub notebook: PathBuf,
    pub search: SearchArgs,
    /// The Experiment's name (`--name`, else `--experiment-name`); default: the
    /// notebook's experiment name, numbered when the cluster has it.
    pub name: Option<String>,
    /// Watch the existing Experiment `name` again.
    pub resume: bool,
    /// What the trials run and where they find KFP.
    pub target: TrialTarget,
    /// kubeconfig context and namespace.
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// The KFP API the pipeline is uploaded to.
    pub kfp_endpoint: Option<String>,
    /// `--python`: the Python whose packages pin the steps' installs.
    pub python: Option<PathBuf>,
    /// Flags given that only local tuning uses (the cluster ignores them).
    pub local_flags: bool,
}

/// An Experiment on the cluster that kale created or found again, not yet watched.
pub struct KatibTune {
    katib: KatibClient,
    name: String,
    reattach: String,
    reporter: Arc<dyn TuneReporter>,
}

/// How the watch ended: the Experiment as last read, and how to watch it again.
pub struct KatibReport {
    pub name: String,
    pub namespace: String,
    pub watched: Watched,
    /// The command that watches the Experiment again.
    pub reattach: String,
}

impl KatibTune {
    /// Everything before the watch. Problems with the objective, the space or the
    /// budget are reported before anything reaches the cluster or KFP.
    pub async fn prepare(
        mut pipeline: Pipeline,
        plan: &KatibPlan,
        reporter: Arc<dyn TuneReporter>,
    ) -> crate::Result<KatibTune> {
        if !plan.resume
            && let Some(line) = super::pod::default_to_own_pod_image(&mut pipeline).await
        {
            reporter.say(&line);
        }
        if let Some(n) = &plan.name {
            super::katib_experiment::check_name(n)?;
        }
        if !plan.resume {
            // A dry run of the real builder with stand-ins for what only the cluster
            // and the upload decide.
            let mut dry = plan.target.clone();
            dry.pipeline_id.get_or_insert_with(|| "dry-run".into());
            super::katib_experiment::plan(&pipeline, plan.name.as_deref(), &plan.search, dry)?;
        }
        if plan.local_flags {
            reporter.say(
                "warning: --trial-timeout, --no-cache and --python apply to local tuning; the cluster ignores them",
            );
        }
        let katib =
            KatibClient::connect(plan.context.as_deref(), plan.namespace.as_deref()).await?;
        katib.check_installed().await?;
        let name = if plan.resume {
            reattach(&katib, plan, reporter.as_ref()).await?
        } else {
            create(&katib, pipeline, plan, reporter.as_ref()).await?
        };
        let mut cluster_flags = format!(" -n {}", katib.namespace);
        if let Some(c) = &plan.context {
            cluster_flags.push_str(&format!(" --context {c}"));
        }
        let reattach = format!(
            "kale tune {} --katib --name {name}{cluster_flags} --resume",
            plan.notebook.display(),
        );
        Ok(KatibTune {
            katib,
            name,
            reattach,
            reporter,
        })
    }

    /// Follows the Experiment until Katib ends it, or until `detach` turns true
    /// (Ctrl-C: the Experiment keeps running on the cluster).
    pub async fn watch(
        self,
        detach: tokio::sync::watch::Receiver<bool>,
    ) -> crate::Result<KatibReport> {
        self.reporter
            .say("watching; Ctrl-C detaches and leaves the experiment running");
        let watched = watch(&self.katib, &self.name, self.reporter.as_ref(), detach).await?;
        Ok(KatibReport {
            name: self.name,
            namespace: self.katib.namespace.clone(),
            watched,
            reattach: self.reattach,
        })
    }
}

/// `--resume`: the Experiment must exist.
async fn reattach(
    katib: &KatibClient,
    plan: &KatibPlan,
    reporter: &dyn TuneReporter,
) -> crate::Result<String> {
    let name = plan
        .name
        .clone()
        .expect("clap requires --name with --resume");
    if katib.experiment(&name).await?.is_none() {
        return Err(ClusterError::NoSuchExperiment {
            name,
            namespace: katib.namespace.clone(),
        }
        .into());
    }
    reporter.say(&format!(
        "reattaching to Katib experiment {name} in namespace {}",
        katib.namespace
    ));
    Ok(name)
}

/// Names the Experiment, uploads the pipeline version its trials run (unless the
/// user named one) and creates it.
async fn create(
    katib: &KatibClient,
    pipeline: Pipeline,
    plan: &KatibPlan,
    reporter: &dyn TuneReporter,
) -> crate::Result<String> {
    let name = free_name(katib, plan.name.clone(), &pipeline).await?;
    let mut target = plan.target.clone();
    if target.pipeline_id.is_none() {
        // Compiling may ask Python for package versions, and the KFP client blocks.
        let version =
            tokio::task::block_in_place(|| upload_compiled(&pipeline, plan, &name, reporter))?;
        target.pipeline_id = Some(version.pipeline_id);
        target.pipeline_version = Some(version.version_id);
    }
    let experiment = super::katib_experiment::plan(&pipeline, Some(&name), &plan.search, target)?;
    katib.create_experiment(&experiment.value).await?;
    reporter.say(&created_line(katib, &name, &experiment.value["spec"]));
    Ok(name)
}

/// Compiles the pipeline and uploads it as a new version named after the experiment.
fn upload_compiled(
    pipeline: &Pipeline,
    plan: &KatibPlan,
    name: &str,
    reporter: &dyn TuneReporter,
) -> crate::Result<PipelineVersionRef> {
    let packages = super::packages::for_steps(pipeline, plan.python.as_deref());
    let compiled = super::kfp::compile_with(pipeline, &packages)?;
    for w in &compiled.warnings {
        reporter.say(&format!("warning: {w}"));
    }
    for n in &compiled.notes {
        reporter.say(&format!("note: {n}"));
    }
    let client = KfpClient::from_env(plan.kfp_endpoint.as_deref());
    let version = upload(
        &client,
        pipeline,
        &compiled.yaml,
        name,
        plan.namespace.as_deref(),
    )
    .map_err(|e| {
        Error::from(e)
            .with_hint("or upload it yourself (`kale submit --upload-only`) and pass --pipeline-id")
    })?;
    reporter.say(&format!(
        "uploaded pipeline `{}` to {} (id {}), version {}; the trials run this version",
        super::kfp::pipeline_name(pipeline),
        client.endpoint(),
        version.pipeline_id,
        version.version_id
    ));
    Ok(version)
}

/// `created Katib experiment NAME in namespace NS (SERVER): maximize `acc`, tpe over
/// lr, depth, 12 trials, 3 at once`.
fn created_line(katib: &KatibClient, name: &str, spec: &Value) -> String {
    format!(
        "created Katib experiment {name} in namespace {} ({}): {} `{}`, {} over {}, {} trials, {} at once",
        katib.namespace,
        katib.server,
        spec["objective"]["type"].as_str().unwrap_or_default(),
        spec["objective"]["objectiveMetricName"]
            .as_str()
            .unwrap_or_default(),
        spec["algorithm"]["algorithmName"]
            .as_str()
            .unwrap_or_default(),
        spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect::<Vec<_>>()
            .join(", "),
        spec["maxTrialCount"],
        spec["parallelTrialCount"],
    )
}

impl KatibReport {
    /// Katib's reason, or that kale stopped watching.
    pub fn reason(&self) -> String {
        if self.watched.detached {
            "detached; the experiment keeps running on the cluster".to_string()
        } else {
            self.watched.experiment.reason.clone()
        }
    }

    /// The `--json` document of `kale tune --katib`.
    pub fn document(&self) -> Value {
        let (w, c) = (&self.watched, self.watched.counts());
        let best = w.experiment.best.as_ref().map(|b| {
            json!({"trial": b.trial, "number": w.number_of(&b.trial),
                   "params": b.params, "metrics": b.metrics})
        });
        json!({
            "experiment": self.name,
            "namespace": self.namespace,
            "status": w.experiment.phase,
            "reason": self.reason(),
            "best": best,
            "trials": {
                "total": c.total,
                "succeeded": c.succeeded,
                "failed": c.failed,
                "early_stopped": c.early_stopped,
                "running": c.running,
            },
        })
    }

    /// Detached is an interruption; an Experiment that did not succeed fails the
    /// command.
    pub fn result(&self) -> crate::Result<()> {
        if self.watched.detached {
            Err(Error::reported(ErrorKind::Interrupted))
        } else if self.watched.experiment.phase == Phase::Succeeded {
            Ok(())
        } else {
            Err(Error::reported(ErrorKind::Failed))
        }
    }
}

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
    let base = super::katib_experiment::default_name(&pipeline.experiment);
    let taken: HashSet<String> = katib
        .experiments()
        .await?
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let numbered = |n: usize| {
        let suffix = format!("-{n}");
        let mut name = base.clone();
        name.truncate(super::katib_experiment::MAX_NAME_LEN - suffix.len());
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
        let c = |s: TrialState| self.trials.iter().filter(|t| t.status == s).count() as u64;
        Counts {
            total: self.trials.len() as u64,
            succeeded: c(TrialState::Succeeded),
            failed: c(TrialState::Failed),
            early_stopped: c(TrialState::EarlyStopped),
            running: c(TrialState::Running) + c(TrialState::Pending),
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
        status: local_status(t.status),
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

/// A Katib trial's state as a local trial's.
fn local_status(s: TrialState) -> TrialStatus {
    match s {
        // Katib's pending trials are waiting to run: running, as far as the line says.
        TrialState::Pending | TrialState::Running => TrialStatus::Running,
        TrialState::Succeeded => TrialStatus::Succeeded,
        TrialState::Failed => TrialStatus::Failed,
        TrialState::EarlyStopped => TrialStatus::EarlyStopped,
    }
}

fn number_of(trials: &[TrialView], name: &str) -> Option<i64> {
    trials
        .iter()
        .position(|t| t.name == name)
        .map(|i| i as i64 + 1)
}

fn live_state(exp: &ExperimentView, trials: &[TrialView], now: Timestamp) -> LiveState {
    let count = |s: TrialState| trials.iter().filter(|t| t.status == s).count() as u64;
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
        direction: exp.direction.as_str().into(),
        max_trials: exp.max_trials,
        succeeded: count(TrialState::Succeeded),
        failed: count(TrialState::Failed),
        early_stopped: count(TrialState::EarlyStopped),
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
