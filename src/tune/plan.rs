//! Where a tuning experiment's settings come from, and their validation against the
//! notebook: `--param` flags, else a `--space FILE`, else the notebook's
//! `kubeflow_notebook.katib_metadata` (so notebooks Kale's Katib dialog saved tune as
//! they are). Shared by `kale tune` and `kale compile --target katib`.

use std::path::PathBuf;

use kale_search::katib::AlgorithmSetting;
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

/// `NAME` or `NAME:maximize|minimize` (`max`/`min` too).
fn parse_objective_flag(text: &str) -> Result<(String, Option<Direction>), String> {
    let (name, direction) = match text.rsplit_once(':') {
        Some((name, d)) => {
            let d = match d.trim() {
                "maximize" | "max" => Direction::Maximize,
                "minimize" | "min" => Direction::Minimize,
                other => {
                    return Err(format!(
                        "--objective `{text}`: the direction must be `maximize` or `minimize`, not `{other}`; write e.g. `--objective accuracy:maximize`"
                    ));
                }
            };
            (name.trim(), Some(d))
        }
        None => (text.trim(), None),
    };
    if name.is_empty() {
        return Err(format!("--objective `{text}`: missing the metric name"));
    }
    Ok((name.to_string(), direction))
}

/// `METRIC<=VALUE` or `METRIC>=VALUE`.
pub fn parse_constraint_flag(text: &str) -> Result<Constraint, String> {
    let bad = |why: &str| {
        format!(
            "--constraint `{text}`: {why}; write `METRIC<=VALUE` or `METRIC>=VALUE`, e.g. `--constraint 'model_kb<=50'`"
        )
    };
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
    /// `maximize` or `minimize`.
    pub goal: Option<String>,
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

/// Everything wrong with the search settings, each problem on its own line.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchErrors(pub Vec<String>);

impl SearchErrors {
    /// The errors, each naming the notebook whose settings they are about.
    pub fn in_notebook(self, notebook: &std::path::Path) -> crate::Error {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {e}", notebook.display()))
            .collect();
        SearchErrors(lines).into()
    }
}

impl From<SearchErrors> for crate::Error {
    fn from(e: SearchErrors) -> Self {
        crate::Error::bad_input(e.0.join("\nerror: "))
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
        let direction = match o.get("type").and_then(Value::as_str) {
            Some("maximize") => Some(Direction::Maximize),
            Some("minimize") => Some(Direction::Minimize),
            _ => None,
        };
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

pub fn resolve(p: &Pipeline, args: &SearchArgs) -> Result<ResolvedSearch, SearchErrors> {
    let mut errors = Vec::new();
    let katib = p.metadata.katib_metadata.as_ref().map(|k| &k.0);
    let metrics: Vec<&str> = p.metrics.iter().map(|m| m.name.as_str()).collect();

    // Objectives.
    let from_notebook = katib
        .and_then(|k| k.pointer("/objective/objectiveMetricName"))
        .and_then(Value::as_str)
        .map(|s| s.to_string());
    let mut flags: Vec<(String, Option<Direction>)> = Vec::new();
    for text in &args.objectives {
        match parse_objective_flag(text) {
            Ok(o) => flags.push(o),
            Err(e) => errors.push(e),
        }
    }
    // Several objectives saved in the notebook (kale's panel writes them beside Katib's
    // one `objective`); flags win, as for every other setting.
    let mut directions_from_notebook = false;
    if flags.is_empty() && args.objectives.is_empty() {
        let saved = notebook_objectives(katib, &mut errors);
        if saved.len() > 1 {
            flags = saved;
            directions_from_notebook = true;
        } else if let Some(o) = from_notebook {
            flags.push((o, None));
        }
    }
    let multi = flags.len() > 1;
    let check_metric = |o: &str, what: &str, errors: &mut Vec<String>| -> String {
        // Kale's Katib dialog stores sanitised names (`test-accuracy`).
        let candidate = if metrics.contains(&o) {
            o.to_string()
        } else {
            o.replace('-', "_")
        };
        if metrics.contains(&candidate.as_str()) {
            return candidate;
        }
        errors.push(if metrics.is_empty() {
            format!("{what} `{o}` is not a pipeline metric: the notebook has no `pipeline-metrics` cell; add one with `print({o})`")
        } else {
            format!(
                "{what} `{o}` is not a pipeline metric; the metrics are {}",
                quoted(&metrics)
            )
        });
        o.to_string()
    };
    let mut names: Vec<String> = Vec::new();
    for (o, _) in &flags {
        let name = check_metric(o, "objective", &mut errors);
        if names.contains(&name) {
            errors.push(format!("objective `{name}` is given twice"));
        }
        names.push(name);
    }
    if flags.is_empty() {
        errors.push(if metrics.is_empty() {
            "no objective: pass --objective METRIC, and add a `pipeline-metrics` cell that prints it".into()
        } else {
            format!("no objective: pass --objective with one of {}", quoted(&metrics))
        });
    }
    let objective = names.first().cloned().unwrap_or_default();

    let (direction, direction_source) =
        match (flags.first().and_then(|f| f.1), args.goal.as_deref()) {
            (_, Some(_)) if multi => (Direction::Maximize, "--objective"),
            (Some(d), None) if directions_from_notebook => (d, "the notebook's katib_metadata"),
            (Some(d), None) => (d, "--objective"),
            (from_flag, Some(goal)) => {
                let g = match goal {
                    "maximize" | "max" => Some(Direction::Maximize),
                    "minimize" | "min" => Some(Direction::Minimize),
                    other => {
                        errors.push(format!(
                            "--goal must be `maximize` or `minimize`, not `{other}`"
                        ));
                        None
                    }
                };
                if let (Some(f), Some(g)) = (from_flag, g)
                    && f != g
                {
                    errors.push(format!(
                    "--objective `{}` and --goal `{goal}` disagree on the direction; give it once",
                    args.objectives.first().map(String::as_str).unwrap_or_default()
                ));
                }
                (g.unwrap_or(Direction::Maximize), "--goal")
            }
            (None, None) if multi => (Direction::Maximize, "the default"),
            (None, None) => match katib
                .and_then(|k| k.pointer("/objective/type"))
                .and_then(Value::as_str)
            {
                Some("minimize") => (Direction::Minimize, "the notebook's katib_metadata"),
                Some("maximize") => (Direction::Maximize, "the notebook's katib_metadata"),
                _ => (Direction::Maximize, "the default"),
            },
        };
    let objectives: Vec<Objective> = names
        .iter()
        .zip(&flags)
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
        // Optuna neither prunes nor stops at a goal in multi-objective studies: no
        // single value says one trial is further along than another.
        for (given, flag) in [
            (args.goal.is_some(), "--goal"),
            (args.target_value.is_some(), "--target-value"),
            (args.early_stopping.is_some(), "--early-stopping"),
        ] {
            if given {
                errors.push(format!(
                    "{flag} applies to one objective; with several, give each direction as `--objective NAME:maximize|minimize`, and there is no goal or early stopping (no single value ranks the trials)"
                ));
            }
        }
    }
    let goal = if multi {
        None
    } else {
        args.target_value.or_else(|| {
            katib
                .and_then(|k| k.pointer("/objective/goal"))
                .and_then(|g| {
                    g.as_f64()
                        .or_else(|| g.as_str().and_then(|s| s.parse().ok()))
                })
        })
    };

    let mut constraints = Vec::new();
    let constraint_texts = if args.constraints.is_empty() {
        notebook_constraints(katib, &mut errors)
    } else {
        args.constraints.clone()
    };
    for text in &constraint_texts {
        match parse_constraint_flag(text) {
            Ok(mut c) => {
                c.metric = check_metric(&c.metric, "constraint metric", &mut errors);
                constraints.push(c);
            }
            Err(e) => errors.push(e),
        }
    }

    // Search space.
    let (specs, space_source): (Vec<ParameterSpec>, String) = if !args.params.is_empty() {
        let mut specs = Vec::new();
        for text in &args.params {
            match parse_param_flag(text) {
                Ok(s) => specs.push(s),
                Err(e) => errors.push(e),
            }
        }
        (specs, "--param flags".into())
    } else if let Some(file) = &args.space_file {
        match read_space_file(file) {
            Ok(s) => (s, format!("{}", file.display())),
            Err(e) => {
                errors.push(e);
                (Vec::new(), String::new())
            }
        }
    } else if let Some(params) = katib.and_then(|k| k.get("parameters")) {
        match serde_json::from_value::<Vec<ParameterSpec>>(params.clone()) {
            Ok(s) => (s, "the notebook's katib_metadata".into()),
            Err(e) => {
                errors.push(format!("the notebook's `katib_metadata.parameters` is not a valid Katib search space: {e}"));
                (Vec::new(), String::new())
            }
        }
    } else {
        errors.push(format!(
            "no search space: pass --param NAME=SPEC for the parameters to tune (the pipeline parameters are {}), or --space FILE",
            if p.parameters.is_empty() {
                "none: add a `pipeline-parameters` cell".to_string()
            } else {
                quoted(&p.parameters.iter().map(|x| x.name.as_str()).collect::<Vec<_>>())
            }
        ));
        (Vec::new(), String::new())
    };
    for spec in &specs {
        if let Err(e) = check_against_parameter(p, spec) {
            errors.push(e);
        }
    }
    let space = if specs.is_empty() {
        None
    } else {
        match SearchSpace::new(specs) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(format!("invalid search space: {e}"));
                None
            }
        }
    };

    // Algorithm and its settings.
    let algorithm = args
        .algorithm
        .clone()
        .or_else(|| {
            // The notebook's Katib algorithm is for its one objective.
            if multi {
                return None;
            }
            katib
                .and_then(|k| k.pointer("/algorithm/algorithmName"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "auto".into());
    let mut settings: Vec<AlgorithmSetting> = if args.algorithm.is_none() && !multi {
        katib
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
            None => errors.push(format!("--setting `{text}` is not of the form NAME=VALUE")),
        }
    }
    if let Some(seed) = args.seed {
        settings.retain(|s| s.name != "random_state");
        settings.push(AlgorithmSetting::new("random_state", seed));
    }
    // Settings Kale's dialog saves for scikit-optimize's BO have no meaning for other
    // algorithms; drop them instead of failing on notebooks saved that way.
    if algorithm != "bayesianoptimization" {
        settings.retain(|s| {
            !matches!(
                s.name.as_str(),
                "acq_optimizer" | "acq_func" | "base_estimator" | "n_initial_points"
            )
        });
    }
    // `auto` is settled below, once the budget is known; its settings are
    // checked against the algorithm it picks.
    if multi && algorithm != "auto" {
        if !matches!(
            algorithm.as_str(),
            "nsga2" | "motpe" | "tpe" | "random" | "grid"
        ) {
            errors.push(format!(
                "--algorithm `{algorithm}` cannot search several objectives; use {MULTI_OBJECTIVE_ALGORITHMS}, or pass one --objective"
            ));
        } else if let Err(e) =
            kale_search::sampler::multi_auto::multi_objective_sampler(&algorithm, &settings)
        {
            errors.push(format!("{e}"));
        }
    } else if algorithm != "auto"
        && let Err(e) = kale_search::katib::sampler_from_katib(&algorithm, &settings)
    {
        errors.push(format!("{e}"));
    }

    let early_stopping = args.early_stopping.as_ref().map(|name| {
        let mut es = Vec::new();
        for text in &args.early_stopping_settings {
            match text.split_once('=') {
                Some((k, v)) => es.push(AlgorithmSetting::new(k.trim(), v.trim())),
                None => errors.push(format!(
                    "--early-stopping-setting `{text}` is not of the form NAME=VALUE"
                )),
            }
        }
        if let Err(e) = kale_search::katib::stopping_from_katib(name, &es) {
            errors.push(format!("{e}"));
        }
        (name.clone(), es)
    });

    let count = |key: &str| katib.and_then(|k| k.get(key)).and_then(Value::as_u64);
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
    if max_trials == 0 {
        errors.push("--max-trials must be at least 1".into());
    }
    if parallel == 0 {
        errors.push("--parallel must be at least 1".into());
    }

    let (algorithm, algorithm_reason) = match (&space, algorithm.as_str()) {
        (Some(space), "auto") if multi && max_trials > 0 => {
            let choice = kale_search::sampler::multi_auto::choose_multi(
                space,
                objectives.len(),
                Some(max_trials),
            );
            if let Err(e) = kale_search::sampler::multi_auto::multi_objective_sampler(
                choice.algorithm,
                &settings,
            ) {
                errors.push(format!(
                    "{e} (`auto` chose {}; pass --algorithm to pick one yourself)",
                    choice.algorithm
                ));
            }
            (choice.algorithm.to_string(), Some(choice.reason))
        }
        (Some(space), "auto") if max_trials > 0 && parallel > 0 => {
            let choice = kale_search::sampler::auto::choose(space, Some(max_trials), parallel);
            if let Err(e) = kale_search::katib::sampler_from_katib(choice.algorithm, &settings) {
                errors.push(format!(
                    "{e} (`auto` chose {}; pass --algorithm to pick one yourself)",
                    choice.algorithm
                ));
            }
            (choice.algorithm.to_string(), Some(choice.reason))
        }
        _ => (algorithm, None),
    };

    if !errors.is_empty() {
        return Err(SearchErrors(errors));
    }
    Ok(ResolvedSearch {
        additional_metrics: metrics
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
        settings,
        space: space.expect("no errors means a space"),
        space_source,
        max_trials,
        parallel,
        max_failed,
        early_stopping,
    })
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
    let bad = |why: &str| {
        format!(
            "--param `{text}`: {why}; write e.g. `lr=double:1e-4..1e-1:log`, `depth=int:2..10`, `depth=int:2..10:step=2`, `kernel=categorical:rbf,linear` or `alpha=discrete:0.1,0.5,1`"
        )
    };
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
fn check_against_parameter(p: &Pipeline, spec: &ParameterSpec) -> Result<(), String> {
    let Some(param) = p.parameter(&spec.name) else {
        let known: Vec<&str> = p.parameters.iter().map(|x| x.name.as_str()).collect();
        return Err(if known.is_empty() {
            format!(
                "`{}` cannot be tuned: the notebook has no pipeline parameters (add a `pipeline-parameters` cell)",
                spec.name
            )
        } else {
            format!(
                "`{}` is not a pipeline parameter, so it cannot be tuned; the parameters are {}",
                spec.name,
                quoted(&known)
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
        Ok(())
    } else {
        Err(format!(
            "`{}` is {} parameter (default {}), so it cannot take {} values{}",
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
            match param.type_name() {
                "int" => "; use `int:MIN..MAX`",
                "str" | "bool" => "; use `categorical:A,B,...`",
                _ => "",
            }
        ))
    }
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
        let err = parse_objective_flag("acc:up").unwrap_err();
        assert!(err.contains("not `up`"), "{err}");
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
