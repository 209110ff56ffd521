//! Where a tuning experiment's settings come from, and their validation against the
//! notebook: `--param` flags, else a `--space FILE`, else the notebook's
//! `kubeflow_notebook.katib_metadata` (so notebooks Kale's Katib dialog saved tune as
//! they are). Shared by `kale tune` and `kale compile --target katib`.

use std::path::PathBuf;

use kale_search::katib::{AlgorithmName, AlgorithmSetting, StoppingName};
use kale_search::space::{Distribution, FeasibleSpace, ParameterSpec, ParameterType};
use kale_search::{Direction, SearchSpace};
use serde_json::Value;

use crate::analysis::PipelineValue;
use crate::pipeline::{Pipeline, convert};
use crate::store::{Bound, Constraint, Objective};

/// Algorithms that search several objectives at once.
pub const MULTI_OBJECTIVE_ALGORITHMS: &str = "auto (the default), nsga2, motpe, tpe, random, grid";

impl ResolvedSearch {
    /// Several objectives: a Pareto front rather than one best trial.
    pub fn is_multi(&self) -> bool {
        self.objectives.len() > 1
    }

    pub fn directions(&self) -> Vec<Direction> {
        self.objectives.iter().map(|o| o.direction).collect()
    }
}

/// `NAME` or `NAME:maximize|minimize` (`max`/`min` too); an error is its message and
/// hint.
fn parse_objective_flag(text: &str) -> Result<(String, Option<Direction>), (String, String)> {
    let (name, direction) = match text.rsplit_once(':') {
        Some((name, d)) => {
            let d = match Direction::from_flag(d.trim()) {
                Some(d) => d,
                None => {
                    let other = d.trim();
                    let name = if name.trim().is_empty() {
                        "METRIC"
                    } else {
                        name.trim()
                    };
                    // `maximise`, `Maximize`, `maximum`: say which one was meant.
                    let meant = if other.to_ascii_lowercase().starts_with("max") {
                        "maximize"
                    } else if other.to_ascii_lowercase().starts_with("min") {
                        "minimize"
                    } else {
                        "maximize` or `minimize"
                    };
                    return Err((
                        format!(
                            "--objective `{text}`: the direction must be `maximize` or `minimize`, not `{other}`"
                        ),
                        format!("write `--objective {name}:{meant}`"),
                    ));
                }
            };
            (name.trim(), Some(d))
        }
        None => (text.trim(), None),
    };
    if name.is_empty() {
        return Err((
            format!("--objective `{text}`: missing the metric name"),
            "write `--objective METRIC` or `--objective METRIC:maximize` (or `:minimize`)".into(),
        ));
    }
    Ok((name.to_string(), direction))
}

/// `METRIC<=VALUE` or `METRIC>=VALUE`.
pub fn parse_constraint_flag(text: &str) -> Result<Constraint, String> {
    let bad = |why: &str| format!("--constraint `{text}`: {why}");
    let (metric, bound, value) = if let Some((m, v)) = text.split_once("<=") {
        (m, Bound::AtMost, v)
    } else if let Some((m, v)) = text.split_once(">=") {
        (m, Bound::AtLeast, v)
    } else {
        return Err(bad("no `<=` or `>=`"));
    };
    let metric = metric.trim();
    if metric.is_empty() {
        return Err(bad("missing the metric name"));
    }
    let value: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| bad(&format!("`{}` is not a finite number", value.trim())))?;
    Ok(Constraint {
        metric: metric.to_string(),
        bound,
        value,
    })
}

/// The search settings as the user gave them (flags), before resolution.
#[derive(Clone, Debug, Default)]
pub struct SearchArgs {
    /// `--objective` flags, each `NAME` or `NAME:maximize|minimize`.
    pub objectives: Vec<String>,
    /// `--constraint` flags, each `METRIC<=VALUE` or `METRIC>=VALUE`.
    pub constraints: Vec<String>,
    /// Katib only: with several objectives, compile the first as the objective and
    /// record the others as additional metrics instead of refusing.
    pub katib_first_objective: bool,
    /// `--goal`.
    pub goal: Option<Direction>,
    pub target_value: Option<f64>,
    pub algorithm: Option<String>,
    /// `name=value` algorithm settings.
    pub settings: Vec<String>,
    /// `--param` specs, e.g. `lr=double:1e-4..1e-1:log`.
    pub params: Vec<String>,
    pub space_file: Option<PathBuf>,
    pub max_trials: Option<u64>,
    pub parallel: Option<usize>,
    pub max_failed: Option<u64>,
    pub early_stopping: Option<String>,
    /// `name=value` early-stopping settings.
    pub early_stopping_settings: Vec<String>,
    pub seed: Option<u64>,
}

/// `--goal`: [`Direction::from_flag`]'s words, or the message and hint kale gives.
pub fn goal_flag(text: &str) -> Result<Direction, (String, String)> {
    Direction::from_flag(text).ok_or_else(|| {
        (
            format!("--goal must be `maximize` or `minimize`, not `{text}`"),
            "write `--goal maximize` or `--goal minimize`".into(),
        )
    })
}

/// `--algorithm`: one of [`AlgorithmName`]'s words, or the message and hint kale gives.
/// (Whether it searches this many objectives is settled with the objectives.)
pub fn algorithm_flag(text: &str) -> Result<AlgorithmName, (String, String)> {
    text.parse().map_err(|_| {
        (
            format!("--algorithm `{text}` is not an algorithm kale knows"),
            format!(
                "use one of {SINGLE_OBJECTIVE_ALGORITHMS}; with several --objective, {MULTI_OBJECTIVE_ALGORITHMS}"
            ),
        )
    })
}

/// `--early-stopping`: one of [`StoppingName`]'s words, or the message and hint kale
/// gives.
pub fn early_stopping_flag(text: &str) -> Result<StoppingName, (String, String)> {
    text.parse().map_err(|e| {
        (
            format!("--early-stopping `{text}`: {e}"),
            EARLY_STOPPING_HINT.into(),
        )
    })
}

const EARLY_STOPPING_HINT: &str = "use `--early-stopping medianstop` or `asha`; settings: medianstop takes min_trials_required and start_step, asha min_resource, reduction_factor and max_resource";

/// Every setting of an experiment, resolved and checked against the notebook.
#[derive(Clone, Debug)]
pub struct ResolvedSearch {
    /// The first objective's metric (and `direction` its direction): the one
    /// objective of a single-objective search.
    pub objective: String,
    /// Every objective, the first being `objective`.
    pub objectives: Vec<Objective>,
    pub constraints: Vec<Constraint>,
    /// The notebook's other metrics, recorded alongside the objective.
    pub additional_metrics: Vec<String>,
    pub direction: Direction,
    /// Where the direction came from, for the line kale always prints.
    pub direction_source: &'static str,
    pub goal: Option<f64>,
    pub algorithm: String,
    /// When `auto` chose the algorithm: why, for the header line.
    pub algorithm_reason: Option<String>,
    /// The algorithm is the one the notebook's `katib_metadata` names.
    pub algorithm_from_notebook: bool,
    pub settings: Vec<AlgorithmSetting>,
    pub space: SearchSpace,
    pub space_source: String,
    pub max_trials: u64,
    pub parallel: usize,
    pub max_failed: u64,
    pub early_stopping: Option<(String, Vec<AlgorithmSetting>)>,
}

/// Katib's defaults for a Kale notebook (`maxTrialCount` 12, `maxFailedTrialCount` 3).
pub const DEFAULT_MAX_TRIALS: u64 = 12;
pub const DEFAULT_MAX_FAILED: u64 = 3;

/// One thing wrong with the search settings, and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchError {
    pub message: String,
    pub hint: String,
}

/// Everything wrong with the search settings, each problem on its own line.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchErrors(pub Vec<SearchError>);

impl SearchErrors {
    /// The errors, each naming the notebook whose settings they are about.
    pub fn in_notebook(self, notebook: &std::path::Path) -> crate::Error {
        let errors = self
            .0
            .into_iter()
            .map(|e| SearchError {
                message: format!("{}: {}", notebook.display(), e.message),
                ..e
            })
            .collect();
        SearchErrors(errors).into()
    }

    pub fn messages(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.message.as_str()).collect()
    }
}

/// Several problems as one error that renders each with its own hint:
/// `error: A\n  hint: a\nerror: B\n  hint: b`.
impl From<SearchErrors> for crate::Error {
    fn from(e: SearchErrors) -> Self {
        let Some((last, first)) = e.0.split_last() else {
            return crate::Error::bad_input("invalid search settings");
        };
        let mut message = String::new();
        for e in first {
            message.push_str(&format!("{}\n  hint: {}\nerror: ", e.message, e.hint));
        }
        message.push_str(&last.message);
        crate::Error::bad_input(message).with_hint(&last.hint)
    }
}

/// `katib_metadata.objectives`: `[{objectiveMetricName, type}, ...]`, kale's record of
/// several objectives (Katib's `objective` holds the first).
pub fn notebook_objectives(
    katib: Option<&Value>,
    errors: &mut Vec<String>,
) -> Vec<(String, Option<Direction>)> {
    let Some(list) = katib.and_then(|k| k.get("objectives")) else {
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        errors.push("the notebook's `katib_metadata.objectives` is not a list".into());
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let name = o.get("objectiveMetricName").and_then(Value::as_str);
        let direction = o
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Direction>().ok());
        match (name, direction) {
            (Some(name), Some(d)) => out.push((name.to_string(), Some(d))),
            _ => errors.push(format!(
                "the notebook's `katib_metadata.objectives[{i}]` needs `objectiveMetricName` and `type` (`maximize` or `minimize`), found {o}"
            )),
        }
    }
    out
}

/// `katib_metadata.constraints`: `["METRIC<=VALUE", ...]`, as `--constraint` takes them.
pub fn notebook_constraints(katib: Option<&Value>, errors: &mut Vec<String>) -> Vec<String> {
    let Some(list) = katib.and_then(|k| k.get("constraints")) else {
        return Vec::new();
    };
    match list.as_array() {
        Some(items) => items
            .iter()
            .filter_map(|c| match c.as_str() {
                Some(text) => Some(text.to_string()),
                None => {
                    errors.push(format!(
                        "the notebook's `katib_metadata.constraints` holds {c}; each is a string like \"accuracy>=0.9\""
                    ));
                    None
                }
            })
            .collect(),
        None => {
            errors.push("the notebook's `katib_metadata.constraints` is not a list".into());
            Vec::new()
        }
    }
}

/// The problems found while resolving, in the order found.
#[derive(Default)]
struct Problems(Vec<SearchError>);

impl Problems {
    fn push(&mut self, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(SearchError {
            message: message.into(),
            hint: hint.into(),
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a setting came from: a flag the user typed, or the notebook's
/// `katib_metadata` (which Kale's Katib dialog writes), so that a message about it says
/// which, and a hint suggests a fix in the same place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    Flags,
    SpaceFile,
    Notebook,
}

const FROM_NOTEBOOK: &str = "the notebook's katib_metadata";

/// For a malformed objective or constraint saved in the notebook.
const NOTEBOOK_SETTINGS_HINT: &str = "fix it in the notebook's katib_metadata (kale's JupyterLab panel writes it), or pass --objective/--constraint flags, which take its place";

pub fn resolve(p: &Pipeline, args: &SearchArgs) -> Result<ResolvedSearch, SearchErrors> {
    let mut r = Resolver {
        p,
        args,
        katib: p.metadata.katib_metadata.as_ref().map(|k| &k.0),
        metrics: p.metrics.iter().map(|m| m.name.as_str()).collect(),
        errors: Problems::default(),
    };
    let asked = r.objectives();
    let multi = asked.flags.len() > 1;
    let objective = asked.names.first().cloned().unwrap_or_default();
    let (direction, direction_source) = r.direction(&asked, multi);
    let objectives: Vec<Objective> = asked
        .names
        .iter()
        .zip(&asked.flags)
        .enumerate()
        .map(|(i, (name, (_, d)))| Objective {
            name: name.clone(),
            direction: if i == 0 {
                direction
            } else {
                d.unwrap_or(Direction::Maximize)
            },
        })
        .collect();
    if multi {
        r.refuse_single_objective_flags();
    }
    let goal = if multi { None } else { r.goal() };
    let constraints = r.constraints();
    let (space, space_source) = r.space();
    let algorithm = r.algorithm(multi);
    let early_stopping = r.early_stopping();
    let (max_trials, max_failed, parallel) = r.budget();
    let Algorithm {
        name: algorithm,
        origin: algorithm_origin,
        settings,
    } = algorithm;
    let (algorithm, algorithm_reason) = match &space {
        Some(space) if algorithm == AlgorithmName::Auto.as_str() => r
            .settle_auto(space, objectives.len(), &settings, max_trials, parallel)
            .unwrap_or((algorithm, None)),
        _ => (algorithm, None),
    };

    // Every path that leaves no space has said why; this only guards the invariant.
    let Some(space) = space.filter(|_| r.errors.is_empty()) else {
        if r.errors.is_empty() {
            r.errors.push("no search space", no_space_hint(p));
        }
        return Err(SearchErrors(r.errors.0));
    };
    Ok(ResolvedSearch {
        additional_metrics: r
            .metrics
            .iter()
            .filter(|m| **m != objective)
            .map(|m| m.to_string())
            .collect(),
        objective,
        objectives,
        constraints,
        direction,
        direction_source,
        goal,
        algorithm,
        algorithm_reason,
        algorithm_from_notebook: algorithm_origin == Origin::Notebook,
        settings,
        space,
        space_source,
        max_trials,
        parallel,
        max_failed,
        early_stopping,
    })
}

/// [`resolve`]'s state: what it reads (the pipeline, the flags, the notebook's
/// katib_metadata, the metrics) and every problem found so far, so that one pass
/// reports them all.
struct Resolver<'a> {
    p: &'a Pipeline,
    args: &'a SearchArgs,
    katib: Option<&'a Value>,
    metrics: Vec<&'a str>,
    errors: Problems,
}

/// The objectives asked for, before their directions are settled.
struct AskedObjectives {
    /// Each objective as given, with the direction given beside it, if any.
    flags: Vec<(String, Option<Direction>)>,
    /// The same objectives as the pipeline's metric names.
    names: Vec<String>,
    /// The directions came with the objectives the notebook saved.
    directions_from_notebook: bool,
}

/// The search algorithm as asked for (`auto` not yet settled), and its settings.
struct Algorithm {
    name: String,
    origin: Origin,
    settings: Vec<AlgorithmSetting>,
}

impl Resolver<'_> {
    /// `--objective` flags, else the objectives the notebook saved (several beside
    /// Katib's one, or Katib's `objectiveMetricName`), each checked against the metrics.
    fn objectives(&mut self) -> AskedObjectives {
        let args = self.args;
        // MiniKF saves `"objectiveMetricName": ""` until one is chosen: that names no
        // objective.
        let from_notebook = self
            .katib
            .and_then(|k| k.pointer("/objective/objectiveMetricName"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string());
        let mut flags: Vec<(String, Option<Direction>)> = Vec::new();
        for text in &args.objectives {
            match parse_objective_flag(text) {
                Ok(o) => flags.push(o),
                Err((message, hint)) => self.errors.push(message, hint),
            }
        }
        let origin = if args.objectives.is_empty() {
            Origin::Notebook
        } else {
            Origin::Flags
        };
        // Several objectives saved in the notebook (kale's panel writes them beside
        // Katib's one `objective`); flags win, as for every other setting.
        let mut directions_from_notebook = false;
        if flags.is_empty() && args.objectives.is_empty() {
            let mut saved_errors = Vec::new();
            let saved = notebook_objectives(self.katib, &mut saved_errors);
            for e in saved_errors {
                self.errors.push(e, NOTEBOOK_SETTINGS_HINT);
            }
            if saved.len() > 1 {
                flags = saved;
                directions_from_notebook = true;
            } else if let Some(o) = from_notebook {
                flags.push((o, None));
            }
        }
        let mut names: Vec<String> = Vec::new();
        for (o, _) in &flags {
            let name = self.check_metric(o, "objective", origin);
            if names.contains(&name) {
                self.errors.push(
                    format!("objective `{name}` is given twice"),
                    "give each --objective once",
                );
            }
            names.push(name);
        }
        // An --objective that did not parse has been reported; it is not also missing.
        if flags.is_empty() && args.objectives.is_empty() {
            self.no_objective();
        }
        AskedObjectives {
            flags,
            names,
            directions_from_notebook,
        }
    }

    fn no_objective(&mut self) {
        let metrics = &self.metrics;
        if metrics.is_empty() {
            self.errors.push(
                "no objective: the notebook has no `pipeline-metrics` cell",
                "add a cell tagged `pipeline-metrics` that prints the metric to tune (`print(accuracy)`), then pass --objective accuracy",
            );
        } else {
            self.errors.push(
                format!(
                    "no objective: the notebook's metrics are {}",
                    quoted(metrics)
                ),
                format!(
                    "pass --objective with one of them, e.g. `--objective {}`",
                    metrics[0]
                ),
            );
        }
    }

    /// The pipeline metric `o` names (`what`: an objective, a constraint metric), or
    /// `o` itself once the problem is recorded.
    fn check_metric(&mut self, o: &str, what: &str, origin: Origin) -> String {
        let metrics = &self.metrics;
        // Kale's Katib dialog stores sanitised names (`test-accuracy`).
        let candidate = if metrics.contains(&o) {
            o.to_string()
        } else {
            o.replace('-', "_")
        };
        if metrics.contains(&candidate.as_str()) {
            return candidate;
        }
        let from = if origin == Origin::Notebook {
            format!(" (from {FROM_NOTEBOOK})")
        } else {
            String::new()
        };
        // What a `pipeline-metrics` line would print: a Python name, as the dialog's
        // `-` stands for `_`.
        let printable = if is_identifier(&candidate) {
            format!("`print({candidate})`")
        } else {
            "a `print(variable)` line".to_string()
        };
        let (message, hint) = if metrics.is_empty() {
            (
                format!(
                    "{what} `{o}`{from} is not a pipeline metric: the notebook has no `pipeline-metrics` cell"
                ),
                format!(
                    "add a cell tagged `pipeline-metrics` with {printable}, after the step that computes it"
                ),
            )
        } else {
            (
                format!(
                    "{what} `{o}`{from} is not a pipeline metric; the metrics are {}",
                    quoted(metrics)
                ),
                match origin {
                    Origin::Notebook => format!(
                        "set `objectiveMetricName` in {FROM_NOTEBOOK} (Kale's Katib dialog) to one of them, or pass --objective {}",
                        metrics[0]
                    ),
                    _ => format!(
                        "use one of them, or add {printable} to the `pipeline-metrics` cell"
                    ),
                },
            )
        };
        self.errors.push(message, hint);
        o.to_string()
    }

    /// The first objective's direction and where it came from: its `:DIRECTION`,
    /// `--goal`, the notebook's, else maximize.
    fn direction(&mut self, asked: &AskedObjectives, multi: bool) -> (Direction, &'static str) {
        let args = self.args;
        match (asked.flags.first().and_then(|f| f.1), args.goal) {
            (_, Some(_)) if multi => (Direction::Maximize, "--objective"),
            (Some(d), None) if asked.directions_from_notebook => {
                (d, "the notebook's katib_metadata")
            }
            (Some(d), None) => (d, "--objective"),
            (from_flag, Some(goal)) => {
                if let Some(f) = from_flag
                    && f != goal
                {
                    self.errors.push(
                        format!(
                            "--objective `{}` and --goal `{goal}` disagree on the direction",
                            args.objectives
                                .first()
                                .map(String::as_str)
                                .unwrap_or_default()
                        ),
                        "give the direction once: drop --goal, or the `:DIRECTION` of --objective",
                    );
                }
                (goal, "--goal")
            }
            (None, None) if multi => (Direction::Maximize, "the default"),
            (None, None) => match self
                .katib
                .and_then(|k| k.pointer("/objective/type"))
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<Direction>().ok())
            {
                Some(d) => (d, "the notebook's katib_metadata"),
                None => (Direction::Maximize, "the default"),
            },
        }
    }

    /// Optuna neither prunes nor stops at a goal in multi-objective studies: no single
    /// value says one trial is further along than another.
    fn refuse_single_objective_flags(&mut self) {
        let args = self.args;
        for (given, flag) in [
            (args.goal.is_some(), "--goal"),
            (args.target_value.is_some(), "--target-value"),
            (args.early_stopping.is_some(), "--early-stopping"),
        ] {
            if given {
                self.errors.push(
                    format!(
                        "{flag} applies to one objective; with several there is no goal or early stopping (no single value ranks the trials)"
                    ),
                    format!(
                        "drop {flag}, and give each direction as `--objective NAME:maximize|minimize`"
                    ),
                );
            }
        }
    }

    /// `--target-value`, else the notebook's `objective.goal`.
    fn goal(&self) -> Option<f64> {
        self.args.target_value.or_else(|| {
            self.katib
                .and_then(|k| k.pointer("/objective/goal"))
                .and_then(|g| {
                    g.as_f64()
                        .or_else(|| g.as_str().and_then(|s| s.parse().ok()))
                })
        })
    }

    /// `--constraint` flags, else the notebook's, their metrics checked.
    fn constraints(&mut self) -> Vec<Constraint> {
        let args = self.args;
        let mut constraints = Vec::new();
        let (texts, origin) = if args.constraints.is_empty() {
            let mut saved_errors = Vec::new();
            let saved = notebook_constraints(self.katib, &mut saved_errors);
            for e in saved_errors {
                self.errors.push(e, NOTEBOOK_SETTINGS_HINT);
            }
            (saved, Origin::Notebook)
        } else {
            (args.constraints.clone(), Origin::Flags)
        };
        for text in &texts {
            match parse_constraint_flag(text) {
                Ok(mut c) => {
                    c.metric = self.check_metric(&c.metric, "constraint metric", origin);
                    constraints.push(c);
                }
                Err(e) => self.errors.push(
                    if origin == Origin::Notebook {
                        format!("{e} (from {FROM_NOTEBOOK})")
                    } else {
                        e
                    },
                    if origin == Origin::Notebook {
                        "write it as `METRIC<=VALUE` or `METRIC>=VALUE` in the notebook's katib_metadata `constraints`, or pass --constraint flags, which take their place"
                    } else {
                        "write `METRIC<=VALUE` or `METRIC>=VALUE`, e.g. `--constraint 'model_kb<=50'`"
                    },
                ),
            }
        }
        constraints
    }

    /// The search space and where it came from (`--param` flags, a `--space` file, the
    /// notebook), checked against the pipeline's parameters; `None` once the problem
    /// is recorded.
    fn space(&mut self) -> (Option<SearchSpace>, String) {
        let (specs, source, origin) = self.parameter_specs();
        for spec in &specs {
            if let Err((message, hint)) = check_against_parameter(self.p, spec, origin) {
                self.errors.push(message, hint);
            }
        }
        if specs.is_empty() {
            return (None, source);
        }
        match SearchSpace::new(specs) {
            Ok(s) => (Some(s), source),
            Err(e) => {
                let (what, hint) = match origin {
                    Origin::Notebook => (
                        format!("{FROM_NOTEBOOK}: invalid search space"),
                        "fix it in Kale's Katib dialog, or pass --param NAME=SPEC flags instead"
                            .to_string(),
                    ),
                    Origin::SpaceFile => (
                        format!("{source}: invalid search space"),
                        "fix the file, or pass --param NAME=SPEC flags instead".to_string(),
                    ),
                    Origin::Flags => (
                        "invalid search space".to_string(),
                        PARAM_EXAMPLES.to_string(),
                    ),
                };
                self.errors.push(format!("{what}: {e}"), hint);
                (None, source)
            }
        }
    }

    /// The parameters to search as given. MiniKF saves `"parameters": []` until
    /// parameters are chosen: that is no search space, as is a --space file with an
    /// empty list.
    fn parameter_specs(&mut self) -> (Vec<ParameterSpec>, String, Origin) {
        let (args, p) = (self.args, self.p);
        if !args.params.is_empty() {
            let mut specs = Vec::new();
            for text in &args.params {
                match parse_param_flag(text) {
                    Ok(s) => specs.push(s),
                    Err(e) => self.errors.push(e, PARAM_EXAMPLES),
                }
            }
            (specs, "--param flags".into(), Origin::Flags)
        } else if let Some(file) = &args.space_file {
            let shown = file.display().to_string();
            match read_space_file(file) {
                Ok(s) if s.is_empty() => {
                    self.errors.push(
                        format!("no search space: {shown} lists no parameters"),
                        no_space_hint(p),
                    );
                    (s, shown, Origin::SpaceFile)
                }
                Ok(s) => (s, shown, Origin::SpaceFile),
                Err(e) => {
                    self.errors.push(e, SPACE_FILE_SHAPE);
                    (Vec::new(), String::new(), Origin::SpaceFile)
                }
            }
        } else if let Some(params) = self.katib.and_then(|k| k.get("parameters")) {
            match serde_json::from_value::<Vec<ParameterSpec>>(params.clone()) {
                Ok(s) if s.is_empty() => {
                    self.errors.push(
                        format!(
                            "no search space: {FROM_NOTEBOOK} lists no parameters (MiniKF saves an empty list until parameters are chosen in Kale's Katib dialog)"
                        ),
                        no_space_hint(p),
                    );
                    (s, String::new(), Origin::Notebook)
                }
                Ok(s) => (s, FROM_NOTEBOOK.into(), Origin::Notebook),
                Err(e) => {
                    self.errors.push(
                        format!(
                            "{FROM_NOTEBOOK}: its `parameters` are not a valid Katib search space: {e}"
                        ),
                        "fix them in Kale's Katib dialog, or pass --param NAME=SPEC flags, which take the place of the notebook's parameters",
                    );
                    (Vec::new(), String::new(), Origin::Notebook)
                }
            }
        } else {
            self.errors.push("no search space", no_space_hint(p));
            (Vec::new(), String::new(), Origin::Flags)
        }
    }

    /// `--algorithm` (else the notebook's, for one objective, else `auto`) with its
    /// settings, checked against the algorithm unless it is `auto`.
    fn algorithm(&mut self, multi: bool) -> Algorithm {
        let args = self.args;
        let notebook_algorithm = self
            .katib
            .and_then(|k| k.pointer("/algorithm/algorithmName"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let (name, origin) = match (&args.algorithm, notebook_algorithm) {
            (Some(a), _) => (a.clone(), Origin::Flags),
            // The notebook's Katib algorithm is for its one objective.
            (None, Some(a)) if !multi => (a, Origin::Notebook),
            _ => (AlgorithmName::Auto.as_str().to_string(), Origin::Flags),
        };
        let settings = self.algorithm_settings(&name, multi);
        let a = Algorithm {
            name,
            origin,
            settings,
        };
        self.check_algorithm(&a, multi);
        a
    }

    /// The notebook's settings (when its algorithm is used), `--setting` flags over
    /// them, `--seed` as `random_state`.
    fn algorithm_settings(&mut self, algorithm: &str, multi: bool) -> Vec<AlgorithmSetting> {
        let args = self.args;
        let mut settings: Vec<AlgorithmSetting> = if args.algorithm.is_none() && !multi {
            self.katib
                .and_then(|k| k.pointer("/algorithm/algorithmSettings"))
                .and_then(|s| serde_json::from_value::<Vec<AlgorithmSetting>>(s.clone()).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for text in &args.settings {
            match text.split_once('=') {
                Some((k, v)) => {
                    settings.retain(|s| s.name != k.trim());
                    settings.push(AlgorithmSetting::new(k.trim(), v.trim()));
                }
                None => self.errors.push(
                    format!("--setting `{text}` is not of the form NAME=VALUE"),
                    "write e.g. `--setting random_state=7`",
                ),
            }
        }
        if let Some(seed) = args.seed {
            settings.retain(|s| s.name != "random_state");
            settings.push(AlgorithmSetting::new("random_state", seed));
        }
        // Settings Kale's dialog saves for scikit-optimize's BO have no meaning for
        // other algorithms; drop them instead of failing on notebooks saved that way.
        if algorithm != AlgorithmName::BayesianOptimization.as_str() {
            settings.retain(|s| {
                !matches!(
                    s.name.as_str(),
                    "acq_optimizer" | "acq_func" | "base_estimator" | "n_initial_points"
                )
            });
        }
        settings
    }

    /// `auto` is settled in [`Resolver::settle_auto`], once the budget is known; its
    /// settings are checked against the algorithm it picks.
    fn check_algorithm(&mut self, a: &Algorithm, multi: bool) {
        use AlgorithmName as A;
        let (algorithm, label) = (a.name.as_str(), algorithm_label(a));
        let name = algorithm.parse::<AlgorithmName>().ok();
        if multi && name != Some(A::Auto) {
            if !matches!(
                name,
                Some(A::Nsga2 | A::Motpe | A::Tpe | A::Random | A::Grid)
            ) {
                self.errors.push(
                    format!("{label} cannot search several objectives"),
                    format!("use {MULTI_OBJECTIVE_ALGORITHMS}, or pass one --objective"),
                );
            } else if let Err(e) =
                kale_search::sampler::multi_auto::multi_objective_sampler(algorithm, &a.settings)
            {
                self.config_error(&e, a);
            }
        } else if !multi && matches!(name, Some(A::Nsga2 | A::Motpe)) {
            self.errors.push(
                format!("{label} searches several objectives; this search has one"),
                format!(
                    "use {SINGLE_OBJECTIVE_ALGORITHMS} (`tpe` is MOTPE's one-objective form), or pass a second `--objective METRIC:DIRECTION`"
                ),
            );
        } else if name != Some(A::Auto)
            && let Err(e) = kale_search::katib::sampler_from_katib(algorithm, &a.settings)
        {
            self.config_error(&e, a);
        }
    }

    fn config_error(&mut self, e: &kale_search::katib::ConfigError, a: &Algorithm) {
        use kale_search::katib::ConfigError;
        let label = algorithm_label(a);
        let hint = match e {
            ConfigError::UnknownAlgorithm(..) => format!(
                "use one of {SINGLE_OBJECTIVE_ALGORITHMS}; with several --objective, {MULTI_OBJECTIVE_ALGORITHMS}"
            ),
            ConfigError::UnknownSetting { .. } => {
                "drop the setting, or use one of those the algorithm has".to_string()
            }
            ConfigError::BadValue { .. } => "give the setting a value of that kind".to_string(),
        };
        let hint = if a.origin == Origin::Notebook {
            format!(
                "{hint}; the notebook's choice is in its katib_metadata (Kale's Katib dialog), and --algorithm overrides it"
            )
        } else {
            hint
        };
        let message = match e {
            ConfigError::UnknownAlgorithm(..) => {
                format!("{label} is not an algorithm kale knows")
            }
            e => format!("{label}: {e}"),
        };
        self.errors.push(message, hint);
    }

    /// `--early-stopping` with its settings, checked.
    fn early_stopping(&mut self) -> Option<(String, Vec<AlgorithmSetting>)> {
        let args = self.args;
        let name = args.early_stopping.as_ref()?;
        let mut es = Vec::new();
        for text in &args.early_stopping_settings {
            match text.split_once('=') {
                Some((k, v)) => es.push(AlgorithmSetting::new(k.trim(), v.trim())),
                None => self.errors.push(
                    format!("--early-stopping-setting `{text}` is not of the form NAME=VALUE"),
                    "write e.g. `--early-stopping-setting start_step=4`",
                ),
            }
        }
        if let Err(e) = kale_search::katib::stopping_from_katib(name, &es) {
            self.errors.push(
                format!("--early-stopping `{name}`: {e}"),
                EARLY_STOPPING_HINT,
            );
        }
        Some((name.clone(), es))
    }

    /// Trials in all, failed trials allowed, trials at once: the flags, else the
    /// notebook's counts, else the defaults.
    fn budget(&mut self) -> (u64, u64, usize) {
        let args = self.args;
        let count = |key: &str| self.katib.and_then(|k| k.get(key)).and_then(Value::as_u64);
        let max_trials = args
            .max_trials
            .or_else(|| count("maxTrialCount"))
            .unwrap_or(DEFAULT_MAX_TRIALS);
        let max_failed = args
            .max_failed
            .or_else(|| count("maxFailedTrialCount"))
            .unwrap_or(DEFAULT_MAX_FAILED);
        let parallel = args
            .parallel
            .or_else(|| count("parallelTrialCount").map(|n| n as usize))
            .unwrap_or_else(default_parallel);
        let count_origin = |flag: bool| {
            if flag {
                "pass a number of 1 or more".to_string()
            } else {
                format!("{FROM_NOTEBOOK} sets it to 0; pass the flag to override it")
            }
        };
        if max_trials == 0 {
            self.errors.push(
                "--max-trials must be at least 1",
                count_origin(args.max_trials.is_some()),
            );
        }
        if parallel == 0 {
            self.errors.push(
                "--parallel must be at least 1",
                count_origin(args.parallel.is_some()),
            );
        }
        (max_trials, max_failed, parallel)
    }

    /// What `auto` picks for this space and budget, and why; `None` when the budget is
    /// unusable (already reported).
    fn settle_auto(
        &mut self,
        space: &SearchSpace,
        objectives: usize,
        settings: &[AlgorithmSetting],
        max_trials: u64,
        parallel: usize,
    ) -> Option<(String, Option<String>)> {
        let (algorithm, reason, checked) = if objectives > 1 {
            if max_trials == 0 {
                return None;
            }
            let choice =
                kale_search::sampler::multi_auto::choose_multi(space, objectives, Some(max_trials));
            let checked = kale_search::sampler::multi_auto::multi_objective_sampler(
                choice.algorithm,
                settings,
            )
            .map(|_| ());
            (choice.algorithm, choice.reason, checked)
        } else {
            if max_trials == 0 || parallel == 0 {
                return None;
            }
            let choice = kale_search::sampler::auto::choose(space, Some(max_trials), parallel);
            let checked =
                kale_search::katib::sampler_from_katib(choice.algorithm, settings).map(|_| ());
            (choice.algorithm, choice.reason, checked)
        };
        if let Err(e) = checked {
            self.errors.push(
                format!("{e} (`auto` chose {algorithm})"),
                "pass --algorithm to pick one yourself, or drop the setting",
            );
        }
        Some((algorithm.to_string(), Some(reason)))
    }
}

/// How an error names the algorithm: the flag, or where in the notebook it came from.
fn algorithm_label(a: &Algorithm) -> String {
    match a.origin {
        Origin::Notebook => format!("algorithm `{}` (from {FROM_NOTEBOOK})", a.name),
        _ => format!("--algorithm `{}`", a.name),
    }
}

/// The algorithms for one objective, as `--algorithm` takes them.
pub const SINGLE_OBJECTIVE_ALGORITHMS: &str =
    "auto (the default), random, grid, tpe, multivariate-tpe, bayesianoptimization";

const PARAM_EXAMPLES: &str = "write NAME=TYPE:..., e.g. `lr=double:1e-4..1e-1:log`, `depth=int:2..10`, `depth=int:2..10:step=2`, `kernel=categorical:rbf,linear` or `alpha=discrete:0.1,0.5,1` (`kale tune --help` lists them all)";

const SPACE_FILE_SHAPE: &str = "a --space file holds Katib's `parameters` list (YAML or JSON), e.g. `[{\"name\": \"lr\", \"parameterType\": \"double\", \"feasibleSpace\": {\"min\": \"0.001\", \"max\": \"0.1\"}}]`";

/// How to give a search space, with an example flag for the notebook's first
/// parameter of each type.
fn no_space_hint(p: &Pipeline) -> String {
    if p.parameters.is_empty() {
        return "the notebook has no pipeline parameters to tune: add a cell tagged `pipeline-parameters` that assigns them (`lr = 0.01`), then pass --param lr=double:0.001..0.1".into();
    }
    let examples: Vec<String> = p
        .parameters
        .iter()
        .take(2)
        .map(|param| {
            let spec = match &param.value {
                PipelineValue::Int(i) => format!("int:{}..{}", (*i).min(1), (*i).max(1) * 10),
                PipelineValue::Float(f) if *f > 0.0 => {
                    format!("double:{}..{}", fmt_number(f / 10.0), fmt_number(f * 10.0))
                }
                PipelineValue::Float(_) => "double:0..1".into(),
                PipelineValue::Str(s) => format!("categorical:{s},other"),
                PipelineValue::Bool(_) => "categorical:True,False".into(),
            };
            format!("--param {}={spec}", param.name)
        })
        .collect();
    format!(
        "pass --param NAME=SPEC for each parameter to tune (the pipeline parameters are {}), e.g. `{}`, or --space FILE",
        quoted(
            &p.parameters
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
        ),
        examples.join(" ")
    )
}

fn fmt_number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Local default for parallel trials: the number of cores. Katib's default is 3; on a
/// laptop more trials than cores only makes each slower, and the steps of one trial
/// already run in parallel where the DAG allows.
pub fn default_parallel() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `NAME=int:MIN..MAX[:step=S][:log|:normal|:lognormal]`, `NAME=double:...`,
/// `NAME=categorical:A,B,C`, `NAME=discrete:0.5,1.0`.
pub fn parse_param_flag(text: &str) -> Result<ParameterSpec, String> {
    let bad = |why: &str| format!("--param `{text}`: {why}");
    let (name, spec) = text.split_once('=').ok_or_else(|| bad("missing `=`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("missing parameter name"));
    }
    let (kind, rest) = spec
        .split_once(':')
        .ok_or_else(|| bad("missing the type"))?;
    let list = |rest: &str| -> Vec<String> {
        rest.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut feasible = FeasibleSpace::default();
    let parameter_type = match kind.trim() {
        "categorical" => {
            feasible.list = Some(list(rest));
            ParameterType::Categorical
        }
        "discrete" => {
            let values = list(rest);
            for v in &values {
                v.parse::<f64>()
                    .map_err(|_| bad(&format!("discrete value `{v}` is not a number")))?;
            }
            feasible.list = Some(values);
            ParameterType::Discrete
        }
        kind @ ("int" | "double" | "float") => {
            let mut parts = rest.split(':');
            let range = parts.next().unwrap_or("");
            let (lo, hi) = range
                .split_once("..")
                .ok_or_else(|| bad("the range must be MIN..MAX"))?;
            let lo: f64 = lo
                .trim()
                .parse()
                .map_err(|_| bad(&format!("`{lo}` is not a number")))?;
            let hi: f64 = hi
                .trim()
                .parse()
                .map_err(|_| bad(&format!("`{hi}` is not a number")))?;
            feasible.min = Some(lo);
            feasible.max = Some(hi);
            // An int's bounds are kept as the integers written (a double holds every
            // integer only up to 2^53); beyond 64 bits they are refused.
            let whole = |text: &str| -> Result<Option<i64>, String> {
                let text = text.trim();
                match text.parse::<i64>() {
                    // Below 2^53 the double is the integer.
                    Ok(i) if i.unsigned_abs() <= 1 << 53 => Ok(None),
                    Ok(i) => Ok(Some(i)),
                    Err(_)
                        if text
                            .parse::<f64>()
                            .is_ok_and(|v| v.fract() == 0.0 || !v.is_finite()) =>
                    {
                        Err(bad(&format!(
                            "`{text}` is beyond the 64-bit integers an int parameter takes (-9223372036854775808..9223372036854775807)"
                        )))
                    }
                    Err(_) => Ok(None),
                }
            };
            if kind == "int" {
                feasible.exact[0] = whole(range.split_once("..").map_or("", |r| r.0))?;
                feasible.exact[1] = whole(range.split_once("..").map_or("", |r| r.1))?;
            }
            for opt in parts {
                match opt.trim() {
                    "log" | "logUniform" | "loguniform" => {
                        feasible.distribution = Some(Distribution::LogUniform)
                    }
                    "uniform" => feasible.distribution = Some(Distribution::Uniform),
                    "normal" => feasible.distribution = Some(Distribution::Normal),
                    "lognormal" | "logNormal" => {
                        feasible.distribution = Some(Distribution::LogNormal)
                    }
                    o if o.starts_with("step=") => {
                        let s = &o[5..];
                        feasible.step = Some(
                            s.parse()
                                .map_err(|_| bad(&format!("step `{s}` is not a number")))?,
                        );
                        if kind == "int" {
                            feasible.exact[2] = whole(s)?;
                        }
                    }
                    o => return Err(bad(&format!("unknown option `{o}`"))),
                }
            }
            // A step makes the evenly spaced lattice MIN, MIN+STEP, ..., which a log
            // distribution cannot follow: refuse rather than silently drop `:log`.
            if feasible.step.is_some() && feasible.distribution.is_some_and(Distribution::is_log) {
                return Err(bad(
                    "`:log` and `:step` cannot be combined (a step makes an evenly spaced grid); drop `:step` for a log-uniform search, or list log-spaced values with `discrete:0.1,1,10,100`",
                ));
            }
            if kind == "int" {
                ParameterType::Int
            } else {
                ParameterType::Double
            }
        }
        other => return Err(bad(&format!("unknown type `{other}`"))),
    };
    let spec = ParameterSpec {
        name: name.to_string(),
        parameter_type,
        feasible_space: feasible,
    };
    spec.validate()
        .map_err(|e| format!("--param `{text}`: {e}"))?;
    Ok(spec)
}

/// A YAML or JSON file in Katib's `parameters` shape: a list of parameter specs, or an
/// object with a `parameters` key (a whole Katib spec or `katib_metadata` works too).
fn read_space_file(path: &std::path::Path) -> Result<Vec<ParameterSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the search-space file {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str::<Value>(&text))
        .map_err(|e| format!("{} is neither JSON nor YAML: {e}", path.display()))?;
    let list = match &value {
        Value::Array(_) => value.clone(),
        Value::Object(o) => o
            .get("parameters")
            .or_else(|| o.get("spec").and_then(|s| s.get("parameters")))
            .cloned()
            .ok_or_else(|| format!("{} has no `parameters` list", path.display()))?,
        _ => {
            return Err(format!(
                "{} must hold a list of Katib parameters",
                path.display()
            ));
        }
    };
    serde_json::from_value(list)
        .map_err(|e| format!("{}: not a valid Katib search space: {e}", path.display()))
}

/// A tunable name must be a pipeline parameter whose type can hold the space's values.
/// An error is its message and hint, both in the terms of where the space came from.
fn check_against_parameter(
    p: &Pipeline,
    spec: &ParameterSpec,
    origin: Origin,
) -> Result<(), (String, String)> {
    let from = match origin {
        Origin::Notebook => format!(" (from {FROM_NOTEBOOK})"),
        _ => String::new(),
    };
    let fix_elsewhere = match origin {
        Origin::Notebook => {
            "; or fix the notebook's Katib parameters in Kale's Katib dialog, or pass --param flags instead of them"
        }
        Origin::SpaceFile => "; or fix the --space file",
        Origin::Flags => "",
    };
    let Some(param) = p.parameter(&spec.name) else {
        let known: Vec<&str> = p.parameters.iter().map(|x| x.name.as_str()).collect();
        return Err(if known.is_empty() {
            (
                format!(
                    "`{}`{from} cannot be tuned: the notebook has no pipeline parameters",
                    spec.name
                ),
                format!(
                    "add a cell tagged `pipeline-parameters` that assigns it (`{} = ...`){fix_elsewhere}",
                    spec.name
                ),
            )
        } else {
            (
                format!(
                    "`{}`{from} is not a pipeline parameter, so it cannot be tuned; the parameters are {}",
                    spec.name,
                    quoted(&known)
                ),
                format!(
                    "tune one of them, or assign `{}` in the `pipeline-parameters` cell{fix_elsewhere}",
                    spec.name
                ),
            )
        });
    };
    let fits = match (&param.value, spec.parameter_type) {
        (PipelineValue::Int(_), ParameterType::Int) => true,
        (
            PipelineValue::Float(_),
            ParameterType::Int | ParameterType::Double | ParameterType::Discrete,
        ) => true,
        (PipelineValue::Int(_), ParameterType::Discrete) => spec
            .feasible_space
            .list
            .iter()
            .flatten()
            .all(|v| v.parse::<f64>().is_ok_and(|f| f.fract() == 0.0)),
        (_, ParameterType::Categorical) => spec
            .feasible_space
            .list
            .iter()
            .flatten()
            .all(|v| convert(&param.value, v).is_ok()),
        _ => false,
    };
    if fits {
        return Ok(());
    }
    let message = format!(
        "`{}`{from} is {} parameter (default {}), so it cannot take {} values",
        spec.name,
        match param.type_name() {
            "int" => "an int",
            "float" => "a float",
            "bool" => "a bool",
            _ => "a str",
        },
        param.value.to_python(),
        match spec.parameter_type {
            ParameterType::Int => "int",
            ParameterType::Double => "double",
            ParameterType::Categorical => "these categorical",
            ParameterType::Discrete => "these discrete",
        },
    );
    let (flag, katib) = match param.type_name() {
        "int" => ("int:MIN..MAX", "`\"parameterType\": \"int\"`"),
        "float" => ("double:MIN..MAX", "`\"parameterType\": \"double\"`"),
        _ => (
            "categorical:A,B,...",
            "`\"parameterType\": \"categorical\"` with values the parameter can hold",
        ),
    };
    let hint = match origin {
        Origin::Flags => format!(
            "use `--param {}={flag}`, or change the default in the `pipeline-parameters` cell",
            spec.name
        ),
        Origin::SpaceFile => format!("give it {katib} in the --space file"),
        Origin::Notebook => format!(
            "give it {katib} in Kale's Katib dialog, or pass `--param {}={flag}`",
            spec.name
        ),
    };
    Err((message, hint))
}

/// Converts a sampler's value to the pipeline parameter's declared type.
pub fn to_pipeline_value(
    like: &PipelineValue,
    v: &kale_search::ParamValue,
) -> Result<PipelineValue, String> {
    use kale_search::ParamValue as S;
    Ok(match (like, v) {
        (PipelineValue::Int(_), S::Int(i)) => PipelineValue::Int(*i),
        (PipelineValue::Int(_), S::Double(f)) if f.fract() == 0.0 => PipelineValue::Int(*f as i64),
        (PipelineValue::Float(_), S::Int(i)) => PipelineValue::Float(*i as f64),
        (PipelineValue::Float(_), S::Double(f)) => PipelineValue::Float(*f),
        (like, S::Categorical(s)) => convert(like, s).map_err(|e| format!("`{s}` is not {e}"))?,
        (like, other) => {
            convert(like, &other.to_string()).map_err(|e| format!("`{other}` is not {e}"))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objective_flags_take_an_optional_direction() {
        assert_eq!(parse_objective_flag("acc"), Ok(("acc".into(), None)));
        assert_eq!(
            parse_objective_flag("latency_ms:minimize"),
            Ok(("latency_ms".into(), Some(Direction::Minimize)))
        );
        assert_eq!(
            parse_objective_flag("acc:max"),
            Ok(("acc".into(), Some(Direction::Maximize)))
        );
        let (err, hint) = parse_objective_flag("acc:up").unwrap_err();
        assert!(err.contains("not `up`"), "{err}");
        assert_eq!(hint, "write `--objective acc:maximize` or `minimize`");
        let (_, hint) = parse_objective_flag("accuracy:maximise").unwrap_err();
        assert_eq!(hint, "write `--objective accuracy:maximize`");
        assert!(parse_objective_flag(":minimize").is_err());
    }

    #[test]
    fn constraint_flags_follow_optunas_sign_convention() {
        let c = parse_constraint_flag("model_kb <= 50").unwrap();
        assert_eq!(
            (c.metric.as_str(), c.bound, c.value),
            ("model_kb", Bound::AtMost, 50.0)
        );
        // c <= 0 is satisfied: metric - bound for <=, bound - metric for >=.
        assert_eq!(c.evaluate(Some(40.0)), -10.0);
        assert_eq!(c.evaluate(Some(60.0)), 10.0);
        assert!(c.evaluate(None).is_nan());
        assert!(c.evaluate(Some(f64::NAN)).is_nan());
        let c = parse_constraint_flag("recall>=0.9").unwrap();
        assert_eq!(c.bound, Bound::AtLeast);
        assert!((c.evaluate(Some(0.95)) + 0.05).abs() < 1e-12);
        assert_eq!(c.to_string(), "recall>=0.9");
        for bad in ["recall>0.9", "<=3", "kb<=big", "kb<=inf"] {
            assert!(parse_constraint_flag(bad).is_err(), "{bad}");
        }
    }
}
