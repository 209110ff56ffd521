//! `kale experiments list|show|compare|plot`, read from the experiment store.

use kale::Error;
use kale::kubeflow::cluster::KatibClient;
use kale::kubeflow::katib_view::ExperimentView;
use kale::query::{best_trial, pareto_front};
use kale::render::{svg, table};
use kale::store::{Experiment, Store, TrialRow};
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
    let by_objective = kale::query::importance_by_objective(&e, &trials);
    let notes = store.notes(e.id)?;
    if args.json {
        let front: Option<Vec<i64>> = multi.then(|| {
            pareto_front(&trials, &e.spec.objectives)
                .iter()
                .map(|t| t.number)
                .collect()
        });
        let as_json = |r: &Result<_, String>| match r {
            Ok(i) => json!(i),
            Err(why) => json!({"unavailable": why}),
        };
        let per_objective: serde_json::Map<String, serde_json::Value> = by_objective
            .iter()
            .map(|(n, r)| (n.clone(), as_json(r)))
            .collect();
        let trial_notes: serde_json::Map<String, serde_json::Value> = notes
            .iter()
            .filter_map(|(k, v)| Some((k.as_ref()?.to_string(), json!(v))))
            .collect();
        let doc = json!({"experiment": e, "best": best.map(|b| b.number), "pareto_front": front, "trials": trials,
            "importance": as_json(&by_objective[0].1),
            "importance_by_objective": multi.then_some(per_objective),
            "notes": {"experiment": notes.get(&None), "trials": trial_notes}});
        kale::outln!("{}", serde_json::to_string(&doc)?)?;
        return Ok(());
    }
    kale::out!(
        "{}",
        table::experiment(&e, &trials, best, &by_objective, &notes)
    )?;
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
    if let Some(o) = &a.objective
        && !columns
            .iter()
            .any(|(e, _)| e.spec.objectives.iter().any(|x| x.name == *o))
    {
        return Err(
            Error::bad_input(format!("none of these experiments has an objective `{o}`"))
                .with_hint("`kale experiments show EXP` lists an experiment's objectives"),
        );
    }
    kale::out!("{}", table::comparison(&columns, a.objective.as_deref()))?;
    if let Some(file) = &a.plot {
        let targets: Vec<svg::Target> = columns
            .iter()
            .map(|(e, _)| svg::Target::of(e, a.objective.as_deref()))
            .collect();
        let series: Vec<svg::Series> = columns
            .iter()
            .zip(&targets)
            .map(|((e, t), target)| svg::Series::of(e, t, target))
            .collect();
        let svg = svg::history(
            &names.join(" vs "),
            &targets[0].name,
            &series,
            &svg::Options::log(a.log_y),
        );
        svg::write(file, &svg).map_err(|why| unwritable(why, file))?;
        kale::errln!("wrote {}", file.display());
    }
    Ok(())
}

fn plot(a: &PlotArgs) -> kale::Result<()> {
    let kind = a.kind;
    if let Err(why) = svg::format_of(&a.output) {
        return Err(bad_plot_file(why, &a.output));
    }
    let several = a.experiments.len() > 1;
    if several && !matches!(kind, svg::Kind::History | svg::Kind::Edf) {
        return Err(Error::bad_input(format!(
            "--kind {} draws one experiment; history and edf overlay several",
            a.kind
        ))
        .with_hint("name one experiment, or use --kind history or --kind edf"));
    }
    let store = open(&a.store)?;
    let loaded = a
        .experiments
        .iter()
        .map(|name| load(&store, name))
        .collect::<kale::Result<Vec<_>>>()?;
    if let Some(why) = svg::inapplicable(kind, &loaded[0].0) {
        return Err(Error::bad_input(why).with_hint(
            "`--kind history`, `importance`, `parallel`, `slice` or `contour` draw one objective; tune with several `--objective`s for a Pareto front",
        ));
    }
    let opts = plot_options(a, kind, &loaded)?;
    let svg = if several {
        overlay(kind, &loaded, &a.experiments.join(" vs "), &opts)
    } else {
        svg::render(kind, &loaded[0].0, &loaded[0].1, &opts)
    };
    svg::write(&a.output, &svg).map_err(|why| unwritable(why, &a.output))?;
    kale::errln!("wrote {}", a.output.display());
    Ok(())
}

/// History or EDF of several experiments in one plot.
fn overlay(
    kind: svg::Kind,
    loaded: &[(Experiment, Vec<TrialRow>)],
    title: &str,
    opts: &svg::Options,
) -> String {
    let targets: Vec<svg::Target> = loaded
        .iter()
        .map(|(e, _)| svg::Target::of(e, opts.objective.as_deref()))
        .collect();
    if kind == svg::Kind::Edf {
        let series: Vec<svg::EdfSeries> = loaded
            .iter()
            .zip(&targets)
            .map(|((e, t), target)| svg::EdfSeries::of(e, t, target))
            .collect();
        return svg::edf(title, &targets[0].name, &series, opts);
    }
    let series: Vec<svg::Series> = loaded
        .iter()
        .zip(&targets)
        .map(|((e, t), target)| svg::Series::of(e, t, target))
        .collect();
    svg::history(title, &targets[0].name, &series, opts)
}

/// The drawing options the flags ask for, checked against the experiments: objectives
/// they have, parameters of their space, and flags that apply to the kind.
fn plot_options(
    a: &PlotArgs,
    kind: svg::Kind,
    loaded: &[(Experiment, Vec<TrialRow>)],
) -> kale::Result<svg::Options> {
    use svg::Kind;
    let e = &loaded[0].0;
    let objectives: Vec<&str> = e.spec.objectives.iter().map(|o| o.name.as_str()).collect();
    for o in &a.objective {
        if !loaded
            .iter()
            .any(|(x, _)| x.spec.objectives.iter().any(|y| y.name == *o))
        {
            return Err(Error::bad_input(format!(
                "experiment `{}` has no objective `{o}`; its objectives are {}",
                e.spec.name,
                objectives.join(", ")
            ))
            .with_hint("`kale experiments show EXP` lists an experiment's objectives"));
        }
    }
    let most = if kind == Kind::Pareto { 2 } else { 1 };
    if a.objective.len() > most
        || (!a.objective.is_empty() && matches!(kind, Kind::Timeline | Kind::Intermediate))
    {
        return Err(Error::bad_input(format!(
            "--kind {} takes {} --objective",
            a.kind,
            match kind {
                Kind::Pareto => "at most two (x and y)",
                Kind::Timeline | Kind::Intermediate => "no",
                _ => "one",
            }
        ))
        .with_hint("--kind pareto takes two (x, y); history, importance, parallel, slice, contour and edf one"));
    }
    check_params(a, kind, e)?;
    Ok(svg::Options {
        log_y: a.log_y,
        objective: a.objective.first().cloned(),
        objective2: a.objective.get(1).cloned(),
        params: a.params.clone(),
        ..svg::Options::default()
    })
}

fn check_params(a: &PlotArgs, kind: svg::Kind, e: &Experiment) -> kale::Result<()> {
    use svg::Kind;
    if a.params.is_empty() {
        return Ok(());
    }
    if !matches!(kind, Kind::Slice | Kind::Parallel | Kind::Contour) {
        return Err(Error::bad_input(format!(
            "--params applies to slice, parallel and contour plots, not {}",
            a.kind
        ))
        .with_hint("leave --params out, or pick --kind slice, parallel or contour"));
    }
    let known: Vec<String> = kale::query::space(e)
        .map(|s| s.parameters().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    if let Some(p) = a.params.iter().find(|p| !known.contains(p)) {
        return Err(Error::bad_input(format!(
            "experiment `{}` has no parameter `{p}`; its parameters are {}",
            e.spec.name,
            known.join(", ")
        ))
        .with_hint("`kale experiments show EXP` lists its search space"));
    }
    if kind == Kind::Contour && a.params.len() != 2 {
        return Err(
            Error::bad_input("a contour takes two --params: X,Y").with_hint(
                "e.g. --params lr,depth (x, then y); without --params, the two most important",
            ),
        );
    }
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
