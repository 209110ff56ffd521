//! `kale tune`: tuning on this machine with the live view, or on the cluster as a Katib
//! Experiment (`--katib`) with the same view.

use kale::store::{ExperimentStatus, TrialStatus};
use std::sync::Arc;

use kale::events::{Both, Event, KatibBest, TrialSummary};
use kale::exec::{self, cache::Cache};
use kale::kubeflow::cluster::{ClusterError, KatibClient};
use kale::kubeflow::cluster_tune;
use kale::kubeflow::kfp_client::KfpClient;
use kale::render::live::LiveView;
use kale::store::Store;
use kale::tune::{self, TuneOptions, TuneReporter, params_text};
use kale::{Error, ErrorKind};
use serde_json::json;

use crate::cli::TuneArgs;

pub fn run(args: &TuneArgs) -> kale::Result<()> {
    if args.katib {
        return on_katib(args);
    }
    let pipeline = super::load_pipeline(&args.notebook)?;
    let store_path = Store::default_path(&args.notebook);
    let store = Store::open(&store_path)?;
    let resolved = if args.resume {
        None
    } else {
        Some(
            kale::tune::plan::resolve(&pipeline, &args.search.plan())
                .map_err(|e| e.in_notebook(&args.notebook))?,
        )
    };
    let (interpreter, python_source) = super::interpreter(args.python.python.as_deref())?;
    // Steps that cannot run on this machine are refused before an experiment is
    // recorded (the pool itself is sized below, once the parallelism is known).
    super::resource_pool(&args.notebook, &pipeline, &args.resources, 1, 1)?;
    let name = match &args.name {
        // A new experiment's name becomes its run directories: it must follow the
        // name rule. One already recorded (resumed) is looked up as it is.
        Some(n) if !args.resume => {
            kale::names::check("an experiment", n)?;
            n.clone()
        }
        Some(n) => n.clone(),
        None => tune::default_name(&store, &pipeline)?,
    };
    let notebook_hash = kale::notebook::load(&args.notebook, &mut Default::default())
        .map(|nb| nb.content)
        .unwrap_or_default();
    let (experiment, search) = tune::prepare(
        &pipeline,
        &notebook_hash,
        &store,
        &name,
        args.resume,
        resolved,
        args.search.max_trials,
        args.search.parallel,
    )?;
    drop(store);
    if args.resume && experiment.spec.notebook_hash != notebook_hash {
        kale::errln!(
            "warning: the notebook changed since experiment `{name}` started; new trials run the current notebook"
        );
    }
    let names: Vec<&str> = search
        .space
        .parameters()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let objectives = if search.is_multi() {
        format!(
            "{} objectives {}",
            search.objectives.len(),
            tune::objectives_text(&search.objectives)
        )
    } else {
        format!(
            "{} `{}` (direction from {})",
            kale::store::direction_text(search.direction),
            search.objective,
            search.direction_source,
        )
    };
    let constraints = if search.constraints.is_empty() {
        String::new()
    } else {
        format!(
            ", subject to {}",
            search
                .constraints
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let jobs_per_trial = (cores / search.parallel.max(1)).max(1);
    let resources = super::resource_pool(
        &args.notebook,
        &pipeline,
        &args.resources,
        search.parallel,
        jobs_per_trial,
    )?;
    // What lets fewer trials' steps run at once than --parallel says.
    let asked: Vec<u32> = pipeline
        .steps
        .iter()
        .filter_map(|s| kale::exec::resources::StepResources::of(&s.config).ok())
        .map(|r| resources.effective(r).gpus)
        .collect();
    let limited = resources.limit_on(
        search.parallel,
        asked.iter().copied().max().unwrap_or(0),
        asked.iter().any(|&g| g == 0),
    );
    kale::errln!(
        "experiment {name}: {objectives}{constraints}, {} over {} (space from {}), {} trials, {} at once{}{}",
        match &search.algorithm_reason {
            Some(why) => format!("auto: {} ({why})", search.algorithm),
            None => search.algorithm.clone(),
        },
        names.join(", "),
        search.space_source,
        search.max_trials,
        search.parallel,
        limited
            .map(|why| format!(" (at most {why})"))
            .unwrap_or_default(),
        search
            .goal
            .map(|g| format!(", stop at {g}"))
            .unwrap_or_default()
    );
    kale::errln!("  {}", super::python_header(&interpreter, python_source));
    let opts = TuneOptions {
        name: name.clone(),
        resume: args.resume,
        jobs_per_trial,
        search: search.clone(),
        interpreter,
        runs_dir: exec::default_runs_dir(&args.notebook),
        store_path: store_path.clone(),
        cache: Some(Arc::new(Cache::open(&Cache::default_root(&args.notebook))?)),
        reuse: !args.no_cache,
        trial_timeout: args.trial_timeout.map(std::time::Duration::from_secs_f64),
        resources: Some(resources),
    };
    let view = Arc::new(LiveView::new());
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let reporter: Arc<dyn TuneReporter> = match &events {
        Some(stream) => {
            stream.emit(&Event::TuneStarted {
                experiment: name.clone(),
                notebook: args.notebook.clone(),
                resumed: args.resume,
                objectives: search.objectives.clone(),
                constraints: search.constraints.iter().map(|c| c.to_string()).collect(),
                algorithm: search.algorithm.clone(),
                parameters: search.space.to_katib_json(),
                max_trials: search.max_trials,
                parallel: search.parallel,
            });
            Arc::new(Both(view.clone(), stream.clone()))
        }
        None => view.clone(),
    };
    let rt = super::runtime()?;
    let mut dashboard_url = None;
    let outcome = rt.block_on(async {
        let cancel = super::interrupt_signal("stopping running steps");
        // The dashboard serves from this process while the tune runs, and after it
        // until Ctrl-C (below), so a page someone is reading does not go away.
        if args.dashboard {
            let path = format!("e/{}", name.replace('%', "%25").replace(' ', "%20"));
            match kale::dashboard::bind(&store_path, "127.0.0.1", args.dashboard_port).await {
                Ok(dash) => {
                    let url = dash.url_with_token(&path);
                    kale::errln!("dashboard: {url}");
                    dashboard_url = Some(url);
                    tokio::spawn(dash.serve());
                }
                Err(e) => kale::errln!("warning: no dashboard: {e}"),
            }
        }
        tune::tune(&pipeline, experiment, &search, &opts, reporter, cancel).await
    });
    view.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            release_after_error(&store_path, &name, args.resume, &e.to_string());
            return Err(e.into());
        }
    };
    let count = |s: TrialStatus| outcome.trials.iter().filter(|t| t.status == s).count();
    if let Some(stream) = &events {
        stream.emit(&Event::TuneFinished {
            experiment: name.clone(),
            status: outcome.status,
            reason: outcome.reason.clone(),
            best: outcome.best.as_ref().map(TrialSummary::from),
            pareto_front: outcome.front.iter().map(TrialSummary::from).collect(),
            succeeded: count(TrialStatus::Succeeded),
            failed: count(TrialStatus::Failed),
            early_stopped: count(TrialStatus::EarlyStopped),
            cache_hits: outcome.cache_hits,
            cache_misses: outcome.cache_misses,
            seconds: outcome.experiment.wall_seconds,
        });
    }
    let result = report_outcome(args, &name, &search, &opts, python_source, &outcome);
    if let Some(url) = dashboard_url
        && outcome.status != ExperimentStatus::Interrupted
    {
        kale::errln!("dashboard: still serving {url} — Ctrl-C to stop");
        rt.block_on(super::wait_for_ctrl_c());
    }
    result
}

/// The summary of a finished tune (and its JSON), and the exit status it calls for.
fn report_outcome(
    args: &TuneArgs,
    name: &str,
    search: &kale::tune::plan::ResolvedSearch,
    opts: &TuneOptions,
    python_source: kale::exec::python::Source,
    outcome: &tune::TuneOutcome,
) -> kale::Result<()> {
    let count = |s: TrialStatus| outcome.trials.iter().filter(|t| t.status == s).count();
    if args.json {
        let best = outcome.best.as_ref().map(|b| {
            json!({"trial": b.number, "params": b.params, "metrics": b.metrics, "run_dir": b.run_dir})
        });
        let front: Vec<_> = outcome
            .front
            .iter()
            .map(|t| json!({"trial": t.number, "values": t.values, "params": t.params, "run_dir": t.run_dir}))
            .collect();
        let per_trial: Vec<_> = outcome
            .trials
            .iter()
            .map(|t| {
                json!({"trial": t.number, "status": t.status, "values": t.values,
                       "constraints": nan_as_null(&t.constraints), "feasible": t.is_feasible(),
                       "params": t.params})
            })
            .collect();
        let doc = json!({
            "experiment": name,
            "status": outcome.status,
            "reason": outcome.reason,
            "objectives": search.objectives,
            "constraints": search.constraints,
            "best": best,
            "pareto_front": if search.is_multi() { json!(front) } else { serde_json::Value::Null },
            "trial_results": per_trial,
            "trials": {
                "total": outcome.trials.iter().filter(|t| t.status != TrialStatus::Interrupted).count(),
                "succeeded": count(TrialStatus::Succeeded),
                "failed": count(TrialStatus::Failed),
                "early_stopped": count(TrialStatus::EarlyStopped),
            },
            "cache": {
                "hits": outcome.cache_hits,
                "misses": outcome.cache_misses,
                "notes": outcome.cache_notes.iter().map(|(trial, step, note)| {
                    json!({"trial": trial, "step": step, "note": note})
                }).collect::<Vec<_>>(),
            },
            "python": super::python_json(&opts.interpreter, python_source),
        });
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    }
    kale::errln!(
        "experiment {name} {}: {} — {} succeeded, {} failed{}, cache {} hits / {} misses, {:.1}s",
        outcome.status,
        outcome.reason,
        count(TrialStatus::Succeeded),
        count(TrialStatus::Failed),
        match count(TrialStatus::EarlyStopped) {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        outcome.cache_hits,
        outcome.cache_misses,
        outcome.experiment.wall_seconds
    );
    let names: Vec<String> = search.objectives.iter().map(|o| o.name.clone()).collect();
    match &outcome.best {
        _ if search.is_multi() => {
            if outcome.front.is_empty() {
                kale::errln!("no feasible trial succeeded");
            } else {
                kale::errln!(
                    "Pareto front: {} trial{} (feasible, non-dominated)",
                    outcome.front.len(),
                    if outcome.front.len() == 1 { "" } else { "s" }
                );
                for t in &outcome.front {
                    kale::errln!("  {}", tune::trial_line(t, &names));
                }
                kale::errln!(
                    "  pick one with: kale run {} --params-from {name}/TRIAL",
                    args.notebook.display()
                );
            }
        }
        Some(best) => kale::errln!(
            "best: trial {} {}={} with {}\n  run: {}",
            best.number,
            search.objective,
            kale::format::num(best.value.unwrap_or(f64::NAN)),
            tune::params_text(&best.params),
            best.run_dir.as_deref().unwrap_or("-")
        ),
        None if !search.constraints.is_empty()
            && outcome
                .trials
                .iter()
                .any(|t| t.status == TrialStatus::Succeeded) =>
        {
            kale::errln!("no succeeded trial met the constraints")
        }
        None => kale::errln!("no trial succeeded"),
    }
    if outcome.trials.iter().any(|t| {
        t.error
            .as_deref()
            .is_some_and(|e| e.contains(": ModuleNotFoundError: "))
    }) {
        kale::errln!(
            "{}",
            super::module_not_found_hint(&opts.interpreter, python_source)
        );
    }
    // Early stopping compares intermediate values; without them it never acts.
    let finished = outcome
        .trials
        .iter()
        .filter(|t| matches!(t.status, TrialStatus::Succeeded | TrialStatus::EarlyStopped));
    if search.early_stopping.is_some()
        && finished.clone().count() > 0
        && finished.clone().all(|t| t.intermediate.is_empty())
    {
        kale::errln!(
            "warning: --early-stopping had nothing to compare: no step printed an intermediate `{obj}=VALUE` line\n  hint: print `{obj}=<value>` (e.g. `print(f\"{obj}={{{obj}}}\")`) after each epoch or step of the training loop",
            obj = search.objective
        );
    }
    if outcome.status == ExperimentStatus::Interrupted {
        kale::errln!(
            "resume with: kale tune {} --name {name} --resume",
            args.notebook.display()
        );
    }
    match outcome.status {
        // Its trials failed because the disk refused their outputs: the machine's
        // problem (exit 3), as for `kale run`.
        ExperimentStatus::Failed
            if [
                ": KaleDiskError: ",
                "[Errno 28]",
                "[Errno 30]",
                "[Errno 122]",
            ]
            .iter()
            .any(|marker| outcome.reason.contains(marker)) =>
        {
            Err(Error::environment(format!(
                "experiment {name} failed: the disk refused its trials' outputs"
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

/// `kale tune --katib`: the Experiment runs on the cluster; kale names it, uploads the
/// pipeline version its trials run, creates it and watches it.
fn on_katib(args: &TuneArgs) -> kale::Result<()> {
    let mut pipeline = super::load_pipeline(&args.notebook)?;
    if !args.resume {
        super::default_to_own_pod_image(&mut pipeline);
    }
    let name_flag = args
        .name
        .clone()
        .or_else(|| args.katib_target.experiment_name.clone());
    if let Some(n) = &name_flag {
        kale::kubeflow::katib::check_name(n)?;
    }
    let plan = args.search.plan();
    if !args.resume {
        // Objective, space and budget problems are reported before anything reaches the
        // cluster or KFP: a dry run of the real builder with stand-ins for what only the
        // cluster and the upload decide.
        let mut dry = args.katib_target.trial_target();
        dry.pipeline_id.get_or_insert_with(|| "dry-run".into());
        kale::kubeflow::katib::plan(&pipeline, name_flag.as_deref(), &plan, dry)?;
    }
    if args.trial_timeout.is_some() || args.no_cache || args.python.python.is_some() {
        kale::errln!(
            "warning: --trial-timeout, --no-cache and --python apply to local tuning; the cluster ignores them"
        );
    }

    let rt = super::runtime()?;
    let katib = rt.block_on(async {
        let k = KatibClient::connect(args.context.as_deref(), args.namespace.as_deref()).await?;
        k.check_installed().await?;
        Ok::<_, ClusterError>(k)
    })?;

    let name = if args.resume {
        let name = name_flag.expect("clap requires --name with --resume");
        if rt.block_on(katib.experiment(&name))?.is_none() {
            return Err(ClusterError::NoSuchExperiment {
                name,
                namespace: katib.namespace.clone(),
            }
            .into());
        }
        kale::errln!(
            "reattaching to Katib experiment {name} in namespace {}",
            katib.namespace
        );
        name
    } else {
        let name = rt.block_on(cluster_tune::free_name(&katib, name_flag, &pipeline))?;
        let mut target = args.katib_target.trial_target();
        if target.pipeline_id.is_none() {
            let compiled = super::kfp_compile(&pipeline, args.python.python.as_deref())?;
            let client = KfpClient::from_env(args.kfp_endpoint.as_deref());
            let version = cluster_tune::upload(
                &client,
                &pipeline,
                &compiled.yaml,
                &name,
                args.namespace.as_deref(),
            )
            .map_err(|e| {
                Error::from(e).with_hint(
                    "or upload it yourself (`kale submit --upload-only`) and pass --pipeline-id",
                )
            })?;
            kale::errln!(
                "uploaded pipeline `{}` to {} (id {}), version {}; the trials run this version",
                kale::kubeflow::kfp::pipeline_name(&pipeline),
                client.endpoint(),
                version.pipeline_id,
                version.version_id
            );
            target.pipeline_id = Some(version.pipeline_id);
            target.pipeline_version = Some(version.version_id);
        }
        let experiment = kale::kubeflow::katib::plan(&pipeline, Some(&name), &plan, target)?;
        rt.block_on(katib.create_experiment(&experiment.value))?;
        let spec = &experiment.value["spec"];
        kale::errln!(
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
    let mut cluster_flags = format!(" -n {}", katib.namespace);
    if let Some(c) = &args.context {
        cluster_flags.push_str(&format!(" --context {c}"));
    }
    let reattach = format!(
        "kale tune {} --katib --name {name}{cluster_flags} --resume",
        args.notebook.display(),
    );
    kale::errln!("watching; Ctrl-C detaches and leaves the experiment running");
    let view = Arc::new(LiveView::new());
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let reporter: Arc<dyn TuneReporter> = match &events {
        Some(stream) => Arc::new(Both(view.clone(), stream.clone())),
        None => view.clone(),
    };
    let watched = rt.block_on(async {
        let detach =
            super::interrupt_signal("detaching; the experiment keeps running on the cluster");
        cluster_tune::watch(&katib, &name, reporter.as_ref(), detach).await
    });
    view.finish();
    let w = watched?;
    let exp = &w.experiment;
    let c = w.counts();
    let reason = if w.detached {
        "detached; the experiment keeps running on the cluster".to_string()
    } else {
        exp.reason.clone()
    };
    if let Some(stream) = &events {
        stream.emit(&Event::KatibFinished {
            experiment: name.clone(),
            namespace: katib.namespace.clone(),
            phase: exp.phase.clone(),
            reason: reason.clone(),
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
        });
    }
    if args.json {
        let best = exp.best.as_ref().map(|b| {
            json!({"trial": b.trial, "number": w.number_of(&b.trial),
                   "params": b.params, "metrics": b.metrics})
        });
        let doc = json!({
            "experiment": name,
            "namespace": katib.namespace,
            "status": exp.phase,
            "reason": reason,
            "best": best,
            "trials": {
                "total": c.total,
                "succeeded": c.succeeded,
                "failed": c.failed,
                "early_stopped": c.early_stopped,
                "running": c.running,
            },
        });
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    }
    kale::errln!(
        "experiment {name} {}: {reason} — {} succeeded, {} failed{}{}{}",
        exp.phase,
        c.succeeded,
        c.failed,
        match c.early_stopped {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        match c.running {
            0 => String::new(),
            n => format!(", {n} running"),
        },
        w.seconds()
            .map(|s| format!(", {s:.1}s"))
            .unwrap_or_default(),
    );
    match &exp.best {
        Some(best) => kale::errln!(
            "best: trial {} ({}) {}={} with {}",
            w.number_of(&best.trial)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            best.trial,
            exp.objective,
            best.value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            params_text(&best.params)
        ),
        None if w.detached => kale::errln!("no trial succeeded yet"),
        None => kale::errln!("no trial succeeded"),
    }
    if w.detached {
        kale::errln!("reattach with: {reattach}");
        return Err(Error::reported(ErrorKind::Interrupted));
    }
    if exp.phase == "succeeded" {
        Ok(())
    } else {
        Err(Error::reported(ErrorKind::Failed))
    }
}

/// Constraint values for JSON: a metric the run did not report (NaN) as `null`.
fn nan_as_null(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|v| v.is_finite().then_some(*v)).collect()
}

/// A tune that stopped on an error must not leave its experiment `running`: a new
/// experiment that made no trial is removed (its name is free again), any other is
/// marked failed with the error as the reason.
fn release_after_error(store_path: &std::path::Path, name: &str, resumed: bool, error: &str) {
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
