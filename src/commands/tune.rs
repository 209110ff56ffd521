//! `kale tune`: local tuning with the live view.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kale::exec::{self, cache::Cache};
use kale::store::Store;
use kale::tune::{self, LiveState, TuneOptions, TuneReporter};
use serde_json::json;

use crate::cli::TuneArgs;

use super::compile::search_args;
use super::{EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_STEP_FAILED};

pub fn run(args: &TuneArgs) -> anyhow::Result<ExitCode> {
    if args.katib {
        return super::katib::tune(args);
    }
    let pipeline = match super::load_pipeline(&args.notebook) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let store_path = Store::default_path(&args.notebook);
    let store = match Store::open(&store_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let resolved = if args.resume {
        None
    } else {
        match kale::tune::space::resolve(&pipeline, &search_args(&args.search)) {
            Ok(r) => Some(r),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {}: {e}", args.notebook.display());
                }
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    };
    let (interpreter, python_source) = match super::interpreter(args.python.python.as_deref()) {
        Ok(i) => i,
        Err(code) => return Ok(code),
    };
    // Steps that cannot run on this machine are refused before an experiment is
    // recorded (the pool itself is sized below, once the parallelism is known).
    if let Err(code) = super::resource_pool(&args.notebook, &pipeline, &args.resources, 1, 1) {
        return Ok(code);
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => tune::default_name(&store, &pipeline)?,
    };
    let notebook_hash = kale::notebook::load(&args.notebook, &mut Default::default())
        .map(|nb| nb.content)
        .unwrap_or_default();
    let (experiment, search) = match tune::prepare(
        &pipeline,
        &notebook_hash,
        &store,
        &name,
        args.resume,
        resolved,
        args.search.max_trials,
        args.search.parallel,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    drop(store);
    if args.resume && experiment.spec.notebook_hash != notebook_hash {
        eprintln!(
            "warning: the notebook changed since experiment `{name}` started; new trials run the current notebook"
        );
    }
    let names: Vec<&str> = search
        .space
        .parameters()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    eprintln!(
        "experiment {name}: {} `{}` (direction from {}), {} over {} (space from {}), {} trials, {} at once{}",
        tune::direction_name(search.direction),
        search.objective,
        search.direction_source,
        match &search.algorithm_reason {
            Some(why) => format!("auto: {} ({why})", search.algorithm),
            None => search.algorithm.clone(),
        },
        names.join(", "),
        search.space_source,
        search.max_trials,
        search.parallel,
        search
            .goal
            .map(|g| format!(", stop at {g}"))
            .unwrap_or_default()
    );
    eprintln!("  {}", super::python_header(&interpreter, python_source));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let jobs_per_trial = (cores / search.parallel.max(1)).max(1);
    let resources = match super::resource_pool(
        &args.notebook,
        &pipeline,
        &args.resources,
        search.parallel,
        jobs_per_trial,
    ) {
        Ok(pool) => pool,
        Err(code) => return Ok(code),
    };
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
    let rt = super::runtime()?;
    let outcome = rt.block_on(async {
        let cancel = super::ctrl_c_signal();
        // The dashboard serves from this process for as long as the tune runs.
        if args.dashboard {
            match kale::dashboard::bind(&store_path, "127.0.0.1", args.dashboard_port).await {
                Ok(dash) => {
                    eprintln!(
                        "dashboard: {}e/{}",
                        dash.url(),
                        name.replace('%', "%25").replace(' ', "%20")
                    );
                    tokio::spawn(dash.serve());
                }
                Err(e) => eprintln!("warning: no dashboard: {e}"),
            }
        }
        tune::tune(&pipeline, experiment, &search, &opts, view.clone(), cancel).await
    });
    view.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            release_after_error(&store_path, &name, args.resume, &e.to_string());
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let count = |s: &str| outcome.trials.iter().filter(|t| t.status == s).count();
    if args.json {
        let best = outcome.best.as_ref().map(|b| {
            json!({"trial": b.number, "params": b.params, "metrics": b.metrics, "run_dir": b.run_dir})
        });
        let doc = json!({
            "experiment": name,
            "status": outcome.status,
            "reason": outcome.reason,
            "best": best,
            "trials": {
                "total": outcome.trials.iter().filter(|t| t.status != "interrupted").count(),
                "succeeded": count("succeeded"),
                "failed": count("failed"),
                "early_stopped": count("early_stopped"),
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
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    eprintln!(
        "experiment {name} {}: {} — {} succeeded, {} failed{}, cache {} hits / {} misses, {:.1}s",
        outcome.status,
        outcome.reason,
        count("succeeded"),
        count("failed"),
        match count("early_stopped") {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        outcome.cache_hits,
        outcome.cache_misses,
        outcome.experiment.wall_seconds
    );
    match &outcome.best {
        Some(best) => eprintln!(
            "best: trial {} {}={} with {}\n  run: {}",
            best.number,
            search.objective,
            kale::report::num(best.value.unwrap_or(f64::NAN)),
            tune::params_text(&best.params),
            best.run_dir.as_deref().unwrap_or("-")
        ),
        None => eprintln!("no trial succeeded"),
    }
    if outcome.trials.iter().any(|t| {
        t.error
            .as_deref()
            .is_some_and(|e| e.contains(": ModuleNotFoundError: "))
    }) {
        eprintln!(
            "{}",
            super::module_not_found_hint(&opts.interpreter, python_source)
        );
    }
    // Early stopping compares intermediate values; without them it never acts.
    let finished = outcome
        .trials
        .iter()
        .filter(|t| matches!(t.status.as_str(), "succeeded" | "early_stopped"));
    if search.early_stopping.is_some()
        && finished.clone().count() > 0
        && finished.clone().all(|t| t.intermediate.is_empty())
    {
        eprintln!(
            "warning: --early-stopping had nothing to compare: no step printed an intermediate `{obj}=VALUE` line\n  hint: print `{obj}=<value>` (e.g. `print(f\"{obj}={{{obj}}}\")`) after each epoch or step of the training loop",
            obj = search.objective
        );
    }
    if outcome.status == "interrupted" {
        eprintln!(
            "resume with: kale tune {} --name {name} --resume",
            args.notebook.display()
        );
    }
    Ok(match outcome.status.as_str() {
        "succeeded" => ExitCode::SUCCESS,
        "interrupted" => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::from(EXIT_STEP_FAILED),
    })
}

/// A tune that stopped on an error must not leave its experiment `running`: a new
/// experiment that made no trial is removed (its name is free again), any other is
/// marked failed with the error as the reason.
fn release_after_error(store_path: &std::path::Path, name: &str, resumed: bool, error: &str) {
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
        let _ = store.finish_experiment(e.id, "failed", error, 0.0);
    }
}

/// A redrawn status block on a terminal; one line per finished trial otherwise.
/// `kale tune --katib` shows the cluster's experiment with it too.
pub(crate) struct LiveView {
    bar: Option<ProgressBar>,
}

impl LiveView {
    pub(crate) fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{msg}").unwrap());
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        });
        LiveView { bar }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn render(s: &LiveState) -> String {
    let done = s.succeeded + s.failed + s.early_stopped;
    // At the pace so far: elapsed time per finished trial times the trials left.
    let eta = if done > 0 && done < s.max_trials {
        let left = s.max_trials - done;
        format!(", ETA {:.0}s", s.elapsed / done as f64 * left as f64)
    } else {
        String::new()
    };
    let mut out = format!(
        "{}  {} {}  trials {done}/{} done ({} ok, {} failed{}), {} running  {:.0}s{eta}\n",
        s.experiment,
        s.direction,
        s.objective,
        s.max_trials,
        s.succeeded,
        s.failed,
        if s.early_stopped > 0 {
            format!(", {} stopped early", s.early_stopped)
        } else {
            String::new()
        },
        s.running.len(),
        s.elapsed
    );
    match &s.best {
        Some((n, v, params)) => out.push_str(&format!(
            "best   trial {n}: {}={v:.6}  {params}\n",
            s.objective
        )),
        None => out.push_str("best   -\n"),
    }
    // Katib trials (and --no-cache) have no step cache to report.
    if s.cache_hits + s.cache_misses > 0 {
        out.push_str(&format!(
            "cache  {} hits, {} misses\n",
            s.cache_hits, s.cache_misses
        ));
    }
    for (n, label, secs) in &s.running {
        out.push_str(&format!("  ▶ trial {n:>3}  {label}  {secs:.1}s\n"));
    }
    for line in s.recent.iter().take(5) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

impl TuneReporter for LiveView {
    fn update(&self, state: &LiveState) {
        if let Some(bar) = &self.bar {
            bar.set_message(render(state));
        }
    }

    fn notice(&self, line: &str, state: &LiveState) {
        self.trial_finished(&format!("↻ {line}"), state);
    }

    fn trial_finished(&self, line: &str, state: &LiveState) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_message(render(state));
            }
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_block_shows_progress_best_running_and_cache() {
        let s = LiveState {
            experiment: "e".into(),
            objective: "acc".into(),
            direction: "maximize".into(),
            max_trials: 10,
            succeeded: 3,
            failed: 1,
            running: vec![(4, "lr=0.1".into(), 2.0)],
            best: Some((2, 0.9, "lr=0.01".into())),
            cache_hits: 6,
            cache_misses: 4,
            ..Default::default()
        };
        let text = render(&s);
        assert!(
            text.contains("trials 4/10 done (3 ok, 1 failed), 1 running"),
            "{text}"
        );
        assert!(
            text.contains("best   trial 2: acc=0.900000  lr=0.01"),
            "{text}"
        );
        assert!(text.contains("cache  6 hits, 4 misses"), "{text}");
        assert!(text.contains("▶ trial   4  lr=0.1"), "{text}");
    }
}
