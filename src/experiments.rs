//! `kale experiments`: each subcommand as one operation on the experiment store (or,
//! for `list --katib`, on the cluster), returning what the command prints: a text view
//! from [`crate::render::table`] and the document `--json` prints.
//!
//! The questions asked of the stored trials (best, front, counts, importance) are
//! [`crate::query`]'s; this module opens the store, finds the experiments a command
//! names, checks its flags against them, and writes plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Error;
use crate::kubeflow::cluster::{ClusterError, KatibClient};
use crate::kubeflow::katib_view::ExperimentView;
use crate::query::{best_trial, pareto_front};
use crate::render::{svg, table};
use crate::store::{Experiment, ExperimentStatus, Store, StoreError, TrialRow};
use kale_search::importance::ParamImportance;

/// The store of the notebook (or directory) `dir`; one that does not exist yet says
/// how it comes to be.
pub fn open_store(dir: &Path) -> crate::Result<Store> {
    let path = Store::path_for(dir);
    if !path.exists() {
        return Err(
            Error::bad_input(format!("no experiment store at {}", path.display()))
                .with_hint("run `kale tune` first, or pass --dir with the notebook's directory"),
        );
    }
    Ok(Store::open(&path)?)
}

/// Experiment `name` and its trials; an unknown name lists the known ones.
pub fn load(store: &Store, name: &str) -> crate::Result<(Experiment, Vec<TrialRow>)> {
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

/// `kale experiments list`: every stored experiment with its trials and best value.
pub struct Listing {
    rows: Vec<(Experiment, Vec<TrialRow>, Option<f64>)>,
}

impl Listing {
    pub fn of(dir: &Path) -> crate::Result<Listing> {
        let store = open_store(dir)?;
        let mut rows = Vec::new();
        for e in store.experiments()? {
            let trials = store.trials(e.id)?;
            let best = best_trial(&trials, e.spec.direction).and_then(|b| b.value);
            rows.push((e, trials, best));
        }
        Ok(Listing { rows })
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `--json` document: one object per experiment.
    pub fn document(&self) -> Value {
        let doc: Vec<_> = self
            .rows
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
        Value::Array(doc)
    }

    /// The table, one row per experiment.
    pub fn table(&self) -> String {
        table::experiments(&self.rows)
    }

    /// Those left `running` by a process that is gone (kill -9, a crash) read as
    /// interrupted; a note for each says how to go on.
    pub fn notes(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|(e, _, _)| {
                let reason = e.reason.as_ref()?;
                (e.owner_pid.is_some() && e.status == ExperimentStatus::Interrupted)
                    .then(|| format!("note: experiment {}: {reason}", e.spec.name))
            })
            .collect()
    }
}

/// `kale experiments show`: one experiment, its trials, importance and notes.
pub struct Shown {
    experiment: Experiment,
    trials: Vec<TrialRow>,
    by_objective: Vec<(String, Result<Vec<ParamImportance>, String>)>,
    notes: BTreeMap<Option<i64>, String>,
}

impl Shown {
    pub fn of(dir: &Path, name: &str) -> crate::Result<Shown> {
        let store = open_store(dir)?;
        let (experiment, trials) = load(&store, name)?;
        let by_objective = crate::query::importance_by_objective(&experiment, &trials);
        let notes = store.notes(experiment.id)?;
        Ok(Shown {
            experiment,
            trials,
            by_objective,
            notes,
        })
    }

    fn multi(&self) -> bool {
        self.experiment.spec.objectives.len() > 1
    }

    fn best(&self) -> Option<&TrialRow> {
        best_trial(&self.trials, self.experiment.spec.direction).filter(|_| !self.multi())
    }

    /// The `--json` document.
    pub fn document(&self) -> Value {
        let (e, trials, multi) = (&self.experiment, &self.trials, self.multi());
        let front: Option<Vec<i64>> = multi.then(|| {
            pareto_front(trials, &e.spec.objectives)
                .iter()
                .map(|t| t.number)
                .collect()
        });
        let as_json = |r: &Result<_, String>| match r {
            Ok(i) => json!(i),
            Err(why) => json!({"unavailable": why}),
        };
        let per_objective: serde_json::Map<String, Value> = self
            .by_objective
            .iter()
            .map(|(n, r)| (n.clone(), as_json(r)))
            .collect();
        let trial_notes: serde_json::Map<String, Value> = self
            .notes
            .iter()
            .filter_map(|(k, v)| Some((k.as_ref()?.to_string(), json!(v))))
            .collect();
        json!({"experiment": e, "best": self.best().map(|b| b.number), "pareto_front": front, "trials": trials,
            "importance": as_json(&self.by_objective[0].1),
            "importance_by_objective": multi.then_some(per_objective),
            "notes": {"experiment": self.notes.get(&None), "trials": trial_notes}})
    }

    /// The terminal view.
    pub fn text(&self) -> String {
        table::experiment(
            &self.experiment,
            &self.trials,
            self.best(),
            &self.by_objective,
            &self.notes,
        )
    }
}

/// What `kale experiments compare` asks.
pub struct CompareRequest {
    pub dir: PathBuf,
    pub experiments: Vec<String>,
    /// Also write the histories overlaid in one plot.
    pub plot: Option<PathBuf>,
    pub log_y: bool,
    /// The objective the best-trial rows and the plot show.
    pub objective: Option<String>,
}

/// Several experiments side by side, checked against the request.
pub struct Comparison {
    columns: Vec<(Experiment, Vec<TrialRow>)>,
    request: CompareRequest,
}

impl Comparison {
    pub fn of(request: CompareRequest) -> crate::Result<Comparison> {
        if let Some(file) = &request.plot
            && let Err(why) = svg::format_of(file)
        {
            return Err(bad_plot_file(why, file));
        }
        let store = open_store(&request.dir)?;
        let columns = request
            .experiments
            .iter()
            .map(|name| load(&store, name))
            .collect::<crate::Result<Vec<_>>>()?;
        if let Some(o) = &request.objective
            && !columns
                .iter()
                .any(|(e, _)| e.spec.objectives.iter().any(|x| x.name == *o))
        {
            return Err(Error::bad_input(format!(
                "none of these experiments has an objective `{o}`"
            ))
            .with_hint("`kale experiments show EXP` lists an experiment's objectives"));
        }
        Ok(Comparison { columns, request })
    }

    /// The side-by-side table.
    pub fn table(&self) -> String {
        table::comparison(&self.columns, self.request.objective.as_deref())
    }

    /// Writes the overlaid histories when the request asks for a plot; the file
    /// written.
    pub fn write_plot(&self) -> crate::Result<Option<&Path>> {
        let Some(file) = &self.request.plot else {
            return Ok(None);
        };
        let objective = self.request.objective.as_deref();
        let targets: Vec<svg::Target> = self
            .columns
            .iter()
            .map(|(e, _)| svg::Target::of(e, objective))
            .collect();
        let series: Vec<svg::Series> = self
            .columns
            .iter()
            .zip(&targets)
            .map(|((e, t), target)| svg::Series::of(e, t, target))
            .collect();
        let svg = svg::history(
            &self.request.experiments.join(" vs "),
            &targets[0].name,
            &series,
            &svg::Options::log(self.request.log_y),
        );
        svg::write(file, &svg).map_err(|why| unwritable(why, file))?;
        Ok(Some(file))
    }
}

/// What `kale experiments plot` asks.
pub struct PlotRequest {
    pub dir: PathBuf,
    pub experiments: Vec<String>,
    pub output: PathBuf,
    pub kind: svg::Kind,
    /// The parameters shown (slice, parallel, contour).
    pub params: Vec<String>,
    /// The objectives shown (two for pareto's axes).
    pub objective: Vec<String>,
    pub log_y: bool,
}

/// `kale experiments plot`: draws the plot the request asks for and writes it to
/// `request.output`.
pub fn plot(request: &PlotRequest) -> crate::Result<()> {
    let kind = request.kind;
    if let Err(why) = svg::format_of(&request.output) {
        return Err(bad_plot_file(why, &request.output));
    }
    let several = request.experiments.len() > 1;
    if several && !matches!(kind, svg::Kind::History | svg::Kind::Edf) {
        return Err(Error::bad_input(format!(
            "--kind {kind} draws one experiment; history and edf overlay several"
        ))
        .with_hint("name one experiment, or use --kind history or --kind edf"));
    }
    let store = open_store(&request.dir)?;
    let loaded = request
        .experiments
        .iter()
        .map(|name| load(&store, name))
        .collect::<crate::Result<Vec<_>>>()?;
    if let Some(why) = svg::inapplicable(kind, &loaded[0].0) {
        return Err(Error::bad_input(why).with_hint(
            "`--kind history`, `importance`, `parallel`, `slice` or `contour` draw one objective; tune with several `--objective`s for a Pareto front",
        ));
    }
    let opts = plot_options(request, &loaded)?;
    let svg = if several {
        overlay(kind, &loaded, &request.experiments.join(" vs "), &opts)
    } else {
        svg::render(kind, &loaded[0].0, &loaded[0].1, &opts)
    };
    svg::write(&request.output, &svg).map_err(|why| unwritable(why, &request.output))
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

/// The drawing options the request asks for, checked against the experiments:
/// objectives they have, parameters of their space, and flags that apply to the kind.
fn plot_options(
    request: &PlotRequest,
    loaded: &[(Experiment, Vec<TrialRow>)],
) -> crate::Result<svg::Options> {
    use svg::Kind;
    let kind = request.kind;
    let e = &loaded[0].0;
    let objectives: Vec<&str> = e.spec.objectives.iter().map(|o| o.name.as_str()).collect();
    for o in &request.objective {
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
    if request.objective.len() > most
        || (!request.objective.is_empty() && matches!(kind, Kind::Timeline | Kind::Intermediate))
    {
        return Err(Error::bad_input(format!(
            "--kind {kind} takes {} --objective",
            match kind {
                Kind::Pareto => "at most two (x and y)",
                Kind::Timeline | Kind::Intermediate => "no",
                _ => "one",
            }
        ))
        .with_hint("--kind pareto takes two (x, y); history, importance, parallel, slice, contour and edf one"));
    }
    check_params(request, e)?;
    Ok(svg::Options {
        log_y: request.log_y,
        objective: request.objective.first().cloned(),
        objective2: request.objective.get(1).cloned(),
        params: request.params.clone(),
        ..svg::Options::default()
    })
}

fn check_params(request: &PlotRequest, e: &Experiment) -> crate::Result<()> {
    use svg::Kind;
    let (kind, params) = (request.kind, &request.params);
    if params.is_empty() {
        return Ok(());
    }
    if !matches!(kind, Kind::Slice | Kind::Parallel | Kind::Contour) {
        return Err(Error::bad_input(format!(
            "--params applies to slice, parallel and contour plots, not {kind}"
        ))
        .with_hint("leave --params out, or pick --kind slice, parallel or contour"));
    }
    let known: Vec<String> = crate::query::space(e)
        .map(|s| s.parameters().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    if let Some(p) = params.iter().find(|p| !known.contains(p)) {
        return Err(Error::bad_input(format!(
            "experiment `{}` has no parameter `{p}`; its parameters are {}",
            e.spec.name,
            known.join(", ")
        ))
        .with_hint("`kale experiments show EXP` lists its search space"));
    }
    if kind == Kind::Contour && params.len() != 2 {
        return Err(
            Error::bad_input("a contour takes two --params: X,Y").with_hint(
                "e.g. --params lr,depth (x, then y); without --params, the two most important",
            ),
        );
    }
    Ok(())
}

/// `kale experiments delete`: removes experiment `name` and its trials; the
/// experiment as it was.
pub fn delete(dir: &Path, name: &str) -> crate::Result<Experiment> {
    let store = open_store(dir)?;
    load(&store, name)?;
    Ok(store.delete_experiment(name)?)
}

/// `kale experiments rename`: the store's record, then its runs' manifests (which
/// `kale debug EXP/N` reads).
pub fn rename(dir: &Path, from: &str, to: &str) -> crate::Result<()> {
    crate::names::check("an experiment", to)?;
    let store = open_store(dir)?;
    load(&store, from)?;
    store.rename_experiment(from, to).map_err(|e| match e {
        StoreError::Taken(_) => Error::bad_input(&e).with_hint(format!(
            "choose another new name, or delete the other experiment first (`kale experiments delete {to}`)"
        )),
        e => Error::from(e),
    })?;
    let runs_dir = crate::layout::Layout::of_store(store.path()).runs();
    crate::snapshot::rename_experiment_runs(&runs_dir, from, to).map_err(|e| {
        Error::environment(format!(
            "renamed experiment {from} to {to}, but could not rewrite its runs' manifests in {}",
            runs_dir.display()
        ))
        .caused_by(e)
        .with_hint(format!(
            "`kale debug {to}/N` still finds the trials through the store"
        ))
    })?;
    Ok(())
}

/// `kale experiments list --katib`: the cluster's Experiments in one namespace.
pub struct KatibListing {
    pub namespace: String,
    pub views: Vec<ExperimentView>,
}

impl KatibListing {
    /// Asks the cluster of kubeconfig context `context` (default: the current one).
    pub async fn of(
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<KatibListing, ClusterError> {
        let katib = KatibClient::connect(context, namespace).await?;
        let items = katib.experiments().await?;
        Ok(KatibListing {
            namespace: katib.namespace.clone(),
            views: items.iter().map(ExperimentView::from_object).collect(),
        })
    }

    /// The `--json` document: one object per Experiment.
    pub fn document(&self) -> Value {
        let doc: Vec<Value> = self
            .views
            .iter()
            .map(|e| {
                json!({"name": e.name, "namespace": self.namespace, "status": e.phase, "reason": e.reason,
                       "objective": e.objective, "direction": e.direction, "algorithm": e.algorithm,
                       "trials": e.trials, "succeeded": e.succeeded, "failed": e.failed,
                       "running": e.running, "max_trials": e.max_trials,
                       "best": e.best.as_ref().and_then(|b| b.value),
                       "best_trial": e.best.as_ref().map(|b| b.trial.clone())})
            })
            .collect();
        Value::Array(doc)
    }

    /// The table, or a line saying there are none.
    pub fn text(&self) -> String {
        if self.views.is_empty() {
            format!("no Katib experiments in namespace {}\n", self.namespace)
        } else {
            table::katib_experiments(&self.views)
        }
    }
}

/// A plot file name kale cannot write: the extension picks the format.
fn bad_plot_file(why: String, file: &Path) -> Error {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "plot".into());
    Error::bad_input(why).with_hint(format!(
        "name it `{stem}.svg`, or `{stem}.png` for a PNG image (other formats are not written)"
    ))
}

/// The plot could not be written where the user asked.
fn unwritable(why: String, file: &Path) -> Error {
    Error::bad_input(why).with_hint(format!(
        "check that the directory of {} exists and is writable",
        file.display()
    ))
}
