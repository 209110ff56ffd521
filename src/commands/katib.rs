//! `kale tune --katib` and `kale experiments list --katib`: the Experiment runs on the
//! cluster, kale creates it and watches it with the same live view as local tuning.
//!
//! The KFP pipeline is uploaded before the Experiment is created (unless --pipeline-id
//! names one), and the trials are pinned to that exact pipeline version: an Experiment
//! that looked the pipeline up by name at each trial would silently mix versions when
//! the notebook is submitted again while it runs.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kale::kubeflow::cluster::{ClusterError, ExperimentView, Katib, TrialView, ordered_trials};
use kale::kubeflow::kfp;
use kale::kubeflow::kfp_client::KfpClient;
use kale::store::TrialRow;
use kale::tune::{LiveState, TuneReporter, params_text, trial_line};
use serde_json::{Value, json};

use crate::cli::{ExperimentsListArgs, TuneArgs};

use super::compile::{default_trial_image, katib_experiment};
use super::tune::LiveView;
use super::{EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_STEP_FAILED};

/// Safety net under the watch: re-read at least this often, so a dropped watch or a
/// server that cannot watch still shows progress.
const POLL: Duration = Duration::from_secs(5);

fn fail(e: &ClusterError) -> ExitCode {
    eprintln!("error: {e}\n  hint: {}", e.hint());
    ExitCode::from(EXIT_BAD_INPUT)
}

/// The flags that reach the same cluster and namespace again, for printed commands.
fn cluster_flags(args: &TuneArgs, katib: &Katib) -> String {
    let mut s = format!(" -n {}", katib.namespace);
    if let Some(c) = &args.context {
        s.push_str(&format!(" --context {c}"));
    }
    s
}

pub fn tune(args: &TuneArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match super::load_pipeline(&args.notebook) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let name_flag = args
        .name
        .clone()
        .or_else(|| args.katib_target.experiment_name.clone());
    if let Some(n) = &name_flag
        && let Err(e) = kale::kubeflow::katib::check_name(n)
    {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    if !args.resume {
        // Objective, space and budget problems are reported before anything reaches the
        // cluster or KFP: a dry run of the real builder with stand-ins for what only the
        // cluster and the upload decide (and no warnings, which the real run prints).
        let mut dry = args.katib_target.clone();
        dry.experiment_name = Some(
            name_flag
                .clone()
                .unwrap_or_else(|| kale::kubeflow::katib::default_name(&pipeline.experiment)),
        );
        dry.pipeline_id.get_or_insert_with(|| "dry-run".into());
        dry.trial_image.get_or_insert_with(default_trial_image);
        if let Err(code) = katib_experiment(&pipeline, &dry, &args.search) {
            return Ok(code);
        }
    }
    if args.trial_timeout.is_some() || args.no_cache || args.python.python.is_some() {
        eprintln!(
            "warning: --trial-timeout, --no-cache and --python apply to local tuning; the cluster ignores them"
        );
    }

    let rt = super::runtime()?;
    let katib = match rt.block_on(async {
        let k = Katib::connect(args.context.as_deref(), args.namespace.as_deref()).await?;
        k.check_installed().await?;
        Ok::<_, ClusterError>(k)
    }) {
        Ok(k) => k,
        Err(e) => return Ok(fail(&e)),
    };

    let name = if args.resume {
        let name = name_flag.expect("clap requires --name with --resume");
        match rt.block_on(katib.experiment(&name)) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Ok(fail(&ClusterError::NoSuchExperiment {
                    name,
                    namespace: katib.namespace.clone(),
                }));
            }
            Err(e) => return Ok(fail(&e)),
        }
        eprintln!(
            "reattaching to Katib experiment {name} in namespace {}",
            katib.namespace
        );
        name
    } else {
        let name = match rt.block_on(experiment_name(&katib, name_flag, &pipeline)) {
            Ok(n) => n,
            Err(e) => return Ok(fail(&e)),
        };
        let mut target = args.katib_target.clone();
        target.experiment_name = Some(name.clone());
        if target.pipeline_id.is_none() {
            match upload(&pipeline, &name, args) {
                Ok((pipeline_id, version_id)) => {
                    target.pipeline_id = Some(pipeline_id);
                    target.pipeline_version = Some(version_id);
                }
                Err(code) => return Ok(code),
            }
        }
        let experiment = match katib_experiment(&pipeline, &target, &args.search) {
            Ok(e) => e,
            Err(code) => return Ok(code),
        };
        if let Err(e) = rt.block_on(katib.create_experiment(&experiment.value)) {
            return Ok(fail(&e));
        }
        let spec = &experiment.value["spec"];
        eprintln!(
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
        );
        name
    };
    let reattach = format!(
        "kale tune {} --katib --name {name}{} --resume",
        args.notebook.display(),
        cluster_flags(args, &katib)
    );
    let view = LiveView::new();
    let watched = rt.block_on(watch(&katib, &name, &view));
    view.finish();
    let watched = match watched {
        Ok(w) => w,
        Err(e) => return Ok(fail(&e)),
    };
    report(args, &katib, &name, &watched, &reattach)
}

/// The name to create: the flag's, else the notebook's experiment name, numbered like
/// local experiments when the cluster already has it.
async fn experiment_name(
    katib: &Katib,
    flag: Option<String>,
    pipeline: &kale::pipeline::Pipeline,
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
    let base = kale::kubeflow::katib::default_name(&pipeline.experiment);
    let taken: HashSet<String> = katib
        .experiments()
        .await?
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for n in 1.. {
        let suffix = format!("-{n}");
        let mut name = base.clone();
        name.truncate(kale::kubeflow::katib::MAX_NAME_LEN - suffix.len());
        let name = format!("{}{suffix}", name.trim_end_matches('-'));
        if !taken.contains(&name) {
            return Ok(name);
        }
    }
    unreachable!()
}

/// Uploads the pipeline as `kale submit --upload-only` does; returns (pipeline, version).
fn upload(
    pipeline: &kale::pipeline::Pipeline,
    experiment: &str,
    args: &TuneArgs,
) -> Result<(String, String), ExitCode> {
    let compiled = super::kfp_compile(pipeline, args.python.python.as_deref()).map_err(|e| {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    let name = kfp::pipeline_name(pipeline);
    let client = KfpClient::from_env(args.kfp_endpoint.as_deref());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let version = client
        .upload(
            &name,
            &pipeline.description,
            &compiled.yaml,
            &format!("{experiment}-{secs}"),
            args.namespace.as_deref(),
        )
        .map_err(|e| {
            eprintln!(
                "error: {e}\n  hint: {}\n  hint: or upload it yourself (`kale submit --upload-only`) and pass --pipeline-id",
                e.hint()
            );
            ExitCode::from(EXIT_BAD_INPUT)
        })?;
    eprintln!(
        "uploaded pipeline `{name}` to {} (id {}), version {}; the trials run this version",
        client.endpoint(),
        version.pipeline_id,
        version.version_id
    );
    Ok((version.pipeline_id, version.version_id))
}

struct Watched {
    experiment: ExperimentView,
    trials: Vec<TrialView>,
    detached: bool,
}

/// Follows the Experiment until Katib marks it Succeeded or Failed, or until Ctrl-C.
async fn watch(katib: &Katib, name: &str, view: &LiveView) -> Result<Watched, ClusterError> {
    // Registered before the first read, so an early Ctrl-C detaches instead of killing.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| ClusterError::BadConfig(format!("cannot catch Ctrl-C: {e}")))?;
    eprintln!("watching; Ctrl-C detaches and leaves the experiment running");
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
                        let line = trial_line(&row(i, t, now), &exp.objective);
                        view.trial_finished(&format!("{line}  {}", t.name), &state);
                    }
                }
                view.update(&state);
                if exp.is_finished() {
                    return Ok(Watched {
                        experiment: exp,
                        trials,
                        detached: false,
                    });
                }
                let last = Watched {
                    experiment: exp,
                    trials,
                    detached: true,
                };
                tokio::select! {
                    _ = interrupt.recv() => return Ok(last),
                    _ = changes.next() => {
                        // A trial's update comes as a burst of events: read once for all of them.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while let Some(Some(())) = changes.next().now_or_never() {}
                    }
                }
            }
            // The experiment runs on without kale: a blip in the connection is no reason to stop watching.
            Err(e @ ClusterError::Unreachable { .. }) => {
                if !warned_unreachable {
                    eprintln!("warning: {e}; retrying (Ctrl-C detaches)");
                    warned_unreachable = true;
                }
                tokio::select! {
                    _ = interrupt.recv() => {
                        return Err(e);
                    }
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
        status: t.status.clone(),
        value: t.value,
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
            .map(|(i, t)| trial_line(&row(i, t, now), &exp.objective))
            .collect(),
        cache_hits: 0,
        cache_misses: 0,
        elapsed: exp
            .started
            .map(|s| (now.as_millisecond() - s.as_millisecond()).max(0) as f64 / 1000.0)
            .unwrap_or(0.0),
    }
}

/// Katib's own counts once it has any, else the ones read off the Trials.
fn counts(w: &Watched) -> (u64, u64, u64, u64, u64) {
    let e = &w.experiment;
    if e.trials > 0 {
        return (e.trials, e.succeeded, e.failed, e.early_stopped, e.running);
    }
    let c = |s: &str| w.trials.iter().filter(|t| t.status == s).count() as u64;
    (
        w.trials.len() as u64,
        c("succeeded"),
        c("failed"),
        c("early_stopped"),
        c("running") + c("pending"),
    )
}

fn report(
    args: &TuneArgs,
    katib: &Katib,
    name: &str,
    w: &Watched,
    reattach: &str,
) -> anyhow::Result<ExitCode> {
    let exp = &w.experiment;
    let (total, succeeded, failed, early_stopped, running) = counts(w);
    let reason = if w.detached {
        "detached; the experiment keeps running on the cluster".to_string()
    } else {
        exp.reason.clone()
    };
    if args.json {
        let best = exp.best.as_ref().map(|b| {
            json!({"trial": b.trial, "number": number_of(&w.trials, &b.trial),
                   "params": b.params, "metrics": b.metrics})
        });
        let doc = json!({
            "experiment": name,
            "namespace": katib.namespace,
            "status": exp.phase,
            "reason": reason,
            "best": best,
            "trials": {
                "total": total,
                "succeeded": succeeded,
                "failed": failed,
                "early_stopped": early_stopped,
                "running": running,
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    let secs = exp.started.map(|s| {
        let end = exp.finished.unwrap_or_else(Timestamp::now);
        (end.as_millisecond() - s.as_millisecond()).max(0) as f64 / 1000.0
    });
    eprintln!(
        "experiment {name} {}: {reason} — {succeeded} succeeded, {failed} failed{}{}{}",
        exp.phase,
        match early_stopped {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        match running {
            0 => String::new(),
            n => format!(", {n} running"),
        },
        secs.map(|s| format!(", {s:.1}s")).unwrap_or_default(),
    );
    match &exp.best {
        Some(best) => eprintln!(
            "best: trial {} ({}) {}={} with {}",
            number_of(&w.trials, &best.trial)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            best.trial,
            exp.objective,
            best.value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            params_text(&best.params)
        ),
        None if w.detached => eprintln!("no trial succeeded yet"),
        None => eprintln!("no trial succeeded"),
    }
    if w.detached {
        eprintln!("reattach with: {reattach}");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(if exp.phase == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_STEP_FAILED)
    })
}

/// `kale experiments list --katib`.
pub fn list(args: &ExperimentsListArgs) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    let (katib, items) = match rt.block_on(async {
        let k = Katib::connect(args.context.as_deref(), args.namespace.as_deref()).await?;
        let items = k.experiments().await?;
        Ok::<_, ClusterError>((k, items))
    }) {
        Ok(x) => x,
        Err(e) => return Ok(fail(&e)),
    };
    let views: Vec<ExperimentView> = items.iter().map(ExperimentView::from_object).collect();
    if args.store.json {
        let doc: Vec<Value> = views
            .iter()
            .map(|e| {
                json!({"name": e.name, "namespace": katib.namespace, "status": e.phase, "reason": e.reason,
                       "objective": e.objective, "direction": e.direction, "algorithm": e.algorithm,
                       "trials": e.trials, "succeeded": e.succeeded, "failed": e.failed,
                       "running": e.running, "max_trials": e.max_trials,
                       "best": e.best.as_ref().and_then(|b| b.value),
                       "best_trial": e.best.as_ref().map(|b| b.trial.clone())})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!("no Katib experiments in namespace {}", katib.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:<11} {:<22} {:>10} {:>8} {:>12}  ALGORITHM",
        "EXPERIMENT", "STATUS", "OBJECTIVE", "TRIALS", "RUNNING", "BEST"
    );
    for e in &views {
        println!(
            "{:<32} {:<11} {:<22} {:>10} {:>8} {:>12}  {}",
            e.name,
            e.phase,
            format!(
                "{} {}",
                if e.direction == "minimize" {
                    "min"
                } else {
                    "max"
                },
                e.objective
            ),
            format!("{}/{} ({}✗)", e.trials, e.max_trials, e.failed).replace(" (0✗)", ""),
            e.running,
            e.best
                .as_ref()
                .and_then(|b| b.value)
                .map(|b| format!("{b:.6}"))
                .unwrap_or_else(|| "-".into()),
            e.algorithm
        );
    }
    Ok(ExitCode::SUCCESS)
}
