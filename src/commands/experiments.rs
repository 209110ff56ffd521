//! `kale experiments list|show|compare|plot`, read from the experiment store.

use kale::Error;
use kale::kubeflow::cluster::{ExperimentView, KatibClient};
use kale::render::{svg, table};
use kale::store::{Experiment, Store, TrialRow};
use kale::tune::{best_trial, pareto_front};
use serde_json::json;

use crate::cli::{CompareArgs, ExperimentsCommand, ExperimentsListArgs, PlotArgs, StoreArgs};

pub fn run(cmd: &ExperimentsCommand) -> kale::Result<()> {
    match cmd {
        ExperimentsCommand::List(a) if a.katib => list_katib(a),
        ExperimentsCommand::List(a) => list(&a.store),
        ExperimentsCommand::Show(a) => show(&a.experiment, &a.store),
        ExperimentsCommand::Compare(a) => compare(a),
        ExperimentsCommand::Plot(a) => plot(a),
        ExperimentsCommand::Delete(a) => delete(&a.experiment, &a.store),
        ExperimentsCommand::Rename(a) => rename(&a.experiment, &a.new_name, &a.store),
    }
}

fn open(args: &StoreArgs) -> kale::Result<Store> {
    let path = Store::path_for(&args.dir);
    if !path.exists() {
        return Err(
            Error::bad_input(format!("no experiment store at {}", path.display()))
                .with_hint("run `kale tune` first, or pass --dir with the notebook's directory"),
        );
    }
    Ok(Store::open(&path)?)
}

fn load(store: &Store, name: &str) -> kale::Result<(Experiment, Vec<TrialRow>)> {
    let e = store.experiment(name).map_err(|err| {
        let known: Vec<String> = store
            .experiments()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("`{}`", e.spec.name))
            .collect();
        let err = Error::from(err);
        if known.is_empty() {
            err
        } else {
            Error::bad_input(format!(
                "{}; the experiments are {}",
                err.message().unwrap_or_default(),
                known.join(", ")
            ))
        }
    })?;
    let trials = store.trials(e.id)?;
    Ok((e, trials))
}

fn list(args: &StoreArgs) -> kale::Result<()> {
    let store = open(args)?;
    let experiments = store.experiments()?;
    let mut rows = Vec::new();
    for e in &experiments {
        let trials = store.trials(e.id)?;
        let best = best_trial(&trials, e.spec.direction).and_then(|b| b.value);
        rows.push((e, trials, best));
    }
    if args.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(e, t, best)| {
                let (ok, failed, total) = table::counts(t);
                let front = (e.spec.objectives.len() > 1)
                    .then(|| pareto_front(t, &e.spec.objectives).len());
                json!({"name": e.spec.name, "notebook": e.spec.notebook, "status": e.status, "reason": e.reason,
                       "objective": e.spec.objective, "direction": e.spec.direction,
                       "objectives": e.spec.objectives, "algorithm": e.spec.algorithm,
                       "trials": total, "succeeded": ok, "failed": failed,
                       "best": if front.is_some() { None } else { *best }, "front_size": front})
            })
            .collect();
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    if rows.is_empty() {
        kale::outln!("no experiments yet")?;
        return Ok(());
    }
    kale::out!("{}", table::experiments(&rows))?;
    // Those left `running` by a process that is gone (kill -9, a crash) read as
    // interrupted; say how to go on with each.
    for (e, _, _) in &rows {
        if e.owner_pid.is_some()
            && e.status == kale::store::ExperimentStatus::Interrupted
            && let Some(reason) = &e.reason
        {
            kale::errln!("note: experiment {}: {reason}", e.spec.name);
        }
    }
    Ok(())
}

fn show(name: &str, args: &StoreArgs) -> kale::Result<()> {
    let store = open(args)?;
    let (e, trials) = load(&store, name)?;
    let multi = e.spec.objectives.len() > 1;
    let best = best_trial(&trials, e.spec.direction).filter(|_| !multi);
    let importance = kale::report::importance(&e, &trials);
    if args.json {
        let front: Option<Vec<i64>> = multi.then(|| {
            pareto_front(&trials, &e.spec.objectives)
                .iter()
                .map(|t| t.number)
                .collect()
        });
        let doc = json!({"experiment": e, "best": best.map(|b| b.number), "pareto_front": front, "trials": trials,
            "importance": match &importance { Ok(i) => json!(i), Err(why) => json!({"unavailable": why}) }});
        kale::outln!("{}", serde_json::to_string(&doc)?)?;
        return Ok(());
    }
    kale::out!("{}", table::experiment(&e, &trials, best, &importance))?;
    Ok(())
}

fn compare(a: &CompareArgs) -> kale::Result<()> {
    let (names, args) = (&a.experiments, &a.store);
    if let Some(file) = &a.plot
        && let Err(why) = svg::format_of(file)
    {
        return Err(bad_plot_file(why, file));
    }
    let store = open(args)?;
    let columns = names
        .iter()
        .map(|name| load(&store, name))
        .collect::<kale::Result<Vec<_>>>()?;
    let bests: Vec<_> = columns
        .iter()
        .map(|(e, t)| best_trial(t, e.spec.direction))
        .collect();
    kale::out!("{}", table::comparison(&columns, &bests))?;
    if let Some(file) = &a.plot {
        let series: Vec<svg::Series> = columns
            .iter()
            .map(|(e, t)| svg::Series {
                name: &e.spec.name,
                direction: e.spec.direction,
                trials: t,
            })
            .collect();
        let svg = svg::history(
            &names.join(" vs "),
            &columns[0].0.spec.objective,
            &series,
            svg::Options { log_y: a.log_y },
        );
        svg::write(file, &svg).map_err(|why| unwritable(why, file))?;
        kale::errln!("wrote {}", file.display());
    }
    Ok(())
}

fn plot(a: &PlotArgs) -> kale::Result<()> {
    let Some(kind) = svg::Kind::parse(&a.kind) else {
        return Err(Error::bad_input(format!("unknown plot kind `{}`", a.kind))
            .with_hint("--kind is one of history, importance, parallel, slice, contour, pareto"));
    };
    if let Err(why) = svg::format_of(&a.output) {
        return Err(bad_plot_file(why, &a.output));
    }
    let store = open(&a.store)?;
    let (e, trials) = load(&store, &a.experiment)?;
    if let Some(why) = svg::inapplicable(kind, &e) {
        return Err(Error::bad_input(why).with_hint(
            "`--kind history`, `importance`, `parallel`, `slice` or `contour` draw one objective; tune with several `--objective`s for a Pareto front",
        ));
    }
    let svg = svg::render(kind, &e, &trials, svg::Options { log_y: a.log_y });
    svg::write(&a.output, &svg).map_err(|why| unwritable(why, &a.output))?;
    kale::errln!("wrote {}", a.output.display());
    Ok(())
}

fn delete(name: &str, args: &StoreArgs) -> kale::Result<()> {
    let store = open(args)?;
    load(&store, name)?;
    let e = store.delete_experiment(name)?;
    kale::errln!(
        "deleted experiment {} ({} on {})",
        e.spec.name,
        e.status,
        e.spec.notebook
    );
    Ok(())
}

fn rename(from: &str, to: &str, args: &StoreArgs) -> kale::Result<()> {
    kale::names::check("an experiment", to)?;
    let store = open(args)?;
    load(&store, from)?;
    store.rename_experiment(from, to).map_err(|e| match e {
        kale::store::StoreError::Taken(_) => Error::bad_input(&e).with_hint(format!(
            "choose another new name, or delete the other experiment first (`kale experiments delete {to}`)"
        )),
        e => Error::from(e),
    })?;
    let runs_dir = kale::layout::Layout::of_store(store.path()).runs();
    kale::snapshot::rename_experiment_runs(&runs_dir, from, to).map_err(|e| {
        Error::environment(format!(
            "renamed experiment {from} to {to}, but could not rewrite its runs' manifests in {}",
            runs_dir.display()
        ))
        .caused_by(e)
        .with_hint(format!(
            "`kale debug {to}/N` still finds the trials through the store"
        ))
    })?;
    kale::errln!("renamed experiment {from} to {to}");
    Ok(())
}

/// `kale experiments list --katib`: the cluster's Experiments in the namespace.
fn list_katib(args: &ExperimentsListArgs) -> kale::Result<()> {
    let rt = super::runtime()?;
    let (katib, items) = rt.block_on(async {
        let k = KatibClient::connect(args.context.as_deref(), args.namespace.as_deref()).await?;
        let items = k.experiments().await?;
        Ok::<_, kale::kubeflow::cluster::ClusterError>((k, items))
    })?;
    let views: Vec<ExperimentView> = items.iter().map(ExperimentView::from_object).collect();
    if args.store.json {
        let doc: Vec<serde_json::Value> = views
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
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if views.is_empty() {
        kale::outln!("no Katib experiments in namespace {}", katib.namespace)?;
    } else {
        kale::out!("{}", table::katib_experiments(&views))?;
    }
    Ok(())
}

/// A plot file name kale cannot write: the extension picks the format.
fn bad_plot_file(why: String, file: &std::path::Path) -> Error {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "plot".into());
    Error::bad_input(why).with_hint(format!(
        "name it `{stem}.svg`, or `{stem}.png` for a PNG image (other formats are not written)"
    ))
}

/// The plot could not be written where the user asked.
fn unwritable(why: String, file: &std::path::Path) -> Error {
    Error::bad_input(why).with_hint(format!(
        "check that the directory of {} exists and is writable",
        file.display()
    ))
}
