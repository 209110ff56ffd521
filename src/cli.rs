//! Command-line definitions. Help text lives next to each flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Turn an annotated Jupyter notebook into a pipeline and tune its parameters.
#[derive(Debug, Parser)]
#[command(name = "kale", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `kale --version`: the release, the commit it was built from (set by build.rs;
/// "unknown" outside a git checkout) and the step runtime version, which is part of
/// every cache key.
pub fn version_line() -> String {
    format!(
        "{} (commit {}, runtime {})",
        env!("CARGO_PKG_VERSION"),
        env!("KALE_GIT_COMMIT"),
        kale::codegen::runtime_version()
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a notebook's tags, metadata and data flow; list every problem found.
    Validate(ValidateArgs),
    /// Show the pipeline a notebook defines: steps, DAG, inputs/outputs, parameters, metrics.
    Inspect(InspectArgs),
    /// Run the pipeline on this machine: each step in its own Python process.
    Run(RunArgs),
    /// Write the pipeline as a Kubeflow Pipelines v2 pipeline or a Katib Experiment.
    Compile(CompileArgs),
    /// Upload the pipeline to Kubeflow Pipelines and start one run.
    Submit(SubmitArgs),
    /// Run one Katib trial: a KFP run with the trial's parameters; prints `metric=value` lines.
    Trial(TrialArgs),
    /// Tune the pipeline parameters against a metric, on this machine (or on Kubernetes with --katib).
    Tune(TuneArgs),
    /// List, show, compare and plot tuning experiments.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// Inspect or prune the step cache (`.kale/cache` beside the notebook).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List and show recorded runs and trials; pin a run so pruning keeps its data.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write a notebook that reopens one step of a run with exactly the data it had.
    Debug(DebugArgs),
    /// Serve a live web dashboard of the experiments (on 127.0.0.1 by default), read-only
    /// but for notes, which take the token in the address it prints.
    Dashboard(DashboardArgs),
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The notebook's directory, the notebook, or an experiment store (`kale.db`).
    #[arg(value_name = "NOTEBOOK_DIR|DB", default_value = ".")]
    pub path: PathBuf,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to listen on; anything but a loopback address shares the experiments
    /// with the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    /// Print the problems as JSON on stdout (with, when there is no error, the pipeline
    /// `kale inspect --json` shows); the exit status is the same.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    /// Print the pipeline as JSON (a stable contract for scripts).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Where the notebook's content comes from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Read the notebook's JSON from standard input instead of the file (an editor's
    /// unsaved notebook); the path still names it and places it beside its modules.
    #[arg(long)]
    pub stdin: bool,
}

#[derive(Debug, Args)]
pub struct PythonArgs {
    /// Python interpreter for the steps (default: $KALE_PYTHON, else the Python of the
    /// environment kale is installed in, else `python3` on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    /// Override a pipeline parameter, typed by its default (repeatable): `-p lr=0.5`.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Start from the parameters of an experiment's best trial (`EXP`) or of one trial
    /// (`EXP/TRIAL`); `-p` flags still override them.
    #[arg(long, value_name = "EXP[/TRIAL]")]
    pub params_from: Option<String>,
    /// Steps to run at once (default: the number of cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not stream step output; it still goes to the step's log files.
    #[arg(short, long)]
    pub quiet: bool,
    /// Run every step, ignoring (and not filling) the step cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Also write the progress as JSON lines (one event each) to FILE, or to stdout
    /// with `-` (see the README's "Progress events").
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,
    #[command(flatten)]
    pub python: PythonArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

/// How steps share this machine (their `limit:` tags ask for GPUs, CPUs, memory).
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// GPUs the steps may use (default: $CUDA_VISIBLE_DEVICES, else every GPU
    /// `nvidia-smi -L` lists): `--gpus 0,2`.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub gpus: Option<Vec<String>>,
    /// Steps without a `limit:nvidia.com/gpu` tag see no GPU.
    #[arg(long)]
    pub hide_gpus: bool,
    /// Run steps whose GPU limit is meant for the cluster here, without GPUs of their own.
    #[arg(long)]
    pub ignore_gpu_limits: bool,
    /// Cores the steps share (default: all of them). Steps without `limit:cpu` get an
    /// even share of them as their thread count (OMP_NUM_THREADS, ...).
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
}

impl RunArgs {
    /// What `kale run` is asked to do.
    pub fn plan(&self) -> kale::run::RunPlan {
        kale::run::RunPlan {
            notebook: self.notebook.clone(),
            params_from: self.params_from.clone(),
            params: self.params.clone(),
            python: self.python.python.clone(),
            machine: self.resources.settings(),
            jobs: self.jobs,
            no_cache: self.no_cache,
        }
    }
}

impl ResourceArgs {
    pub fn settings(&self) -> kale::machine::MachineSettings {
        kale::machine::MachineSettings {
            gpus: self.gpus.clone(),
            cpus: self.cpus,
            hide_gpus: self.hide_gpus,
            ignore_gpu_limits: self.ignore_gpu_limits,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileTarget {
    /// Kubeflow Pipelines v2 IR YAML (upload it to KFP, or let `kale submit` do it).
    Kfp,
    /// A Katib v1beta1 Experiment whose trials are KFP runs of the pipeline.
    Katib,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    /// What to produce.
    #[arg(long, value_enum, default_value = "kfp")]
    pub target: CompileTarget,
    /// Output file (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub katib: KatibArgs,
    #[command(flatten)]
    pub search: SearchFlags,
}

/// The search settings shared by `kale tune` and `kale compile --target katib`; they
/// map one to one onto `kale::tune::plan::SearchArgs`.
#[derive(Debug, Clone, Default, Args)]
pub struct SearchFlags {
    /// Metric to optimise: a name the `pipeline-metrics` cell prints, optionally with its
    /// direction (`accuracy:maximize`). Repeat for several objectives (a Pareto front):
    /// `--objective accuracy:maximize --objective latency_ms:minimize`.
    #[arg(long, value_name = "METRIC[:DIRECTION]", help_heading = "Search")]
    pub objective: Vec<String>,
    /// A metric bound a trial must meet to count as feasible (repeatable):
    /// `--constraint 'model_kb<=50'` or `--constraint 'recall>=0.9'`. A trial that breaks
    /// one, or does not report its metric, is marked infeasible and never the best.
    #[arg(
        long = "constraint",
        value_name = "METRIC<=VALUE",
        help_heading = "Search"
    )]
    pub constraints: Vec<String>,
    /// Katib has no multi-objective experiments: compile the first objective as the
    /// objective and the other objectives as additional metrics.
    #[arg(long, help_heading = "Katib")]
    pub katib_first_objective: bool,
    /// `maximize` or `minimize` (default: the notebook's katib_metadata, else maximize).
    #[arg(long, value_name = "DIRECTION", help_heading = "Search",
          value_parser = KaleValue(kale::tune::plan::goal_flag))]
    pub goal: Option<kale_search::Direction>,
    /// Stop once a trial's objective reaches this value.
    #[arg(
        long,
        value_name = "VALUE",
        allow_negative_numbers = true,
        help_heading = "Search"
    )]
    pub target_value: Option<f64>,
    /// Katib algorithm name: auto (default: grid, bayesianoptimization or tpe, chosen from
    /// the budget, the parameters and --parallel), random, grid, tpe, multivariate-tpe,
    /// bayesianoptimization; with several --objective: auto (grid, motpe or nsga2),
    /// nsga2, motpe, tpe, random, grid.
    #[arg(long, value_name = "NAME", help_heading = "Search",
          value_parser = KaleValue(kale::tune::plan::algorithm_flag))]
    pub algorithm: Option<kale_search::katib::AlgorithmName>,
    /// An algorithm setting (repeatable): `--setting random_state=7`.
    #[arg(long = "setting", value_name = "NAME=VALUE", help_heading = "Search")]
    pub algorithm_settings: Vec<String>,
    /// A parameter to search (repeatable): `--param lr=double:1e-4..1e-1:log`.
    #[arg(
        long = "param",
        value_name = "NAME=SPEC",
        help_heading = "Search",
        long_help = "A parameter to search (repeatable). NAME is a pipeline parameter; SPEC is one of:\n\
  int:MIN..MAX[:step=S][:DIST]      whole numbers, both ends included (step 1 unless given)\n\
  double:MIN..MAX[:step=S][:DIST]   real numbers; with step, the grid MIN, MIN+S, ... up to MAX\n\
  categorical:A,B,C                 one of the strings\n\
  discrete:V1,V2,...                one of the numbers\n\
DIST is how random and TPE draws spread: uniform (default), log (log-uniform, needs MIN > 0),\n\
normal or lognormal (centred, truncated to the range). `:log` and `:step` cannot be combined;\n\
list log-spaced values with discrete instead. Grid search needs a step (or a list) for every\n\
double.\n\
Examples:\n\
  --param lr=double:1e-4..1e-1:log\n\
  --param depth=int:2..10  --param depth=int:2..10:step=2\n\
  --param dropout=double:0..0.5:step=0.1\n\
  --param kernel=categorical:rbf,linear,poly\n\
  --param C=discrete:0.1,1,10,100"
    )]
    pub params: Vec<String>,
    /// A Katib `parameters` list (YAML or JSON) to use as the search space.
    #[arg(long = "space", value_name = "FILE", help_heading = "Search")]
    pub space_file: Option<PathBuf>,
    /// Trials in total.
    #[arg(long, value_name = "N", help_heading = "Search")]
    pub max_trials: Option<u64>,
    /// Trials at once.
    #[arg(long, value_name = "N", help_heading = "Search")]
    pub parallel: Option<usize>,
    /// Failed trials after which the experiment fails.
    #[arg(long, value_name = "N", help_heading = "Search")]
    pub max_failed: Option<u64>,
    /// Early-stopping algorithm: `medianstop` or `asha`.
    #[arg(long, value_name = "NAME", help_heading = "Search",
          value_parser = KaleValue(kale::tune::plan::early_stopping_flag))]
    pub early_stopping: Option<kale_search::katib::StoppingName>,
    /// An early-stopping setting (repeatable): `--early-stopping-setting start_step=4`.
    #[arg(
        long = "early-stopping-setting",
        value_name = "NAME=VALUE",
        help_heading = "Search"
    )]
    pub early_stopping_settings: Vec<String>,
    /// Seed for the algorithm (`random_state`).
    #[arg(long, value_name = "N", help_heading = "Search")]
    pub seed: Option<u64>,
}

/// A flag's value parsed by kale's own function, whose refusal clap prints as kale
/// prints its errors (the message and its hint) rather than as clap's "invalid value".
#[derive(Clone)]
struct KaleValue<T>(fn(&str) -> Result<T, (String, String)>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for KaleValue<T> {
    type Value = T;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        (self.0)(&value.to_string_lossy()).map_err(|(message, hint)| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("{message}\n  hint: {hint}\n"),
            )
        })
    }
}

impl SearchFlags {
    /// The search plan local tuning and Katib share, built once from the flags.
    pub fn plan(&self) -> kale::tune::plan::SearchArgs {
        kale::tune::plan::SearchArgs {
            objectives: self.objective.clone(),
            constraints: self.constraints.clone(),
            katib_first_objective: self.katib_first_objective,
            goal: self.goal,
            target_value: self.target_value,
            algorithm: self.algorithm.map(|a| a.as_str().to_string()),
            settings: self.algorithm_settings.clone(),
            params: self.params.clone(),
            space_file: self.space_file.clone(),
            max_trials: self.max_trials,
            parallel: self.parallel,
            max_failed: self.max_failed,
            early_stopping: self.early_stopping.map(|s| s.as_str().to_string()),
            early_stopping_settings: self.early_stopping_settings.clone(),
            seed: self.seed,
        }
    }
}

/// Where the Katib trials find Kubeflow Pipelines and the pipeline they run.
#[derive(Debug, Clone, Default, Args)]
pub struct KatibArgs {
    /// Experiment name (default: the notebook's experiment name); a DNS label of at most 40 characters.
    #[arg(long, value_name = "NAME", help_heading = "Katib")]
    pub experiment_name: Option<String>,
    /// Image of the trial Job (default: the steps' image); it needs `python3` and `sh`.
    #[arg(
        long,
        value_name = "IMAGE",
        env = "KALE_TRIAL_IMAGE",
        help_heading = "Katib"
    )]
    pub trial_image: Option<String>,
    /// KFP pipeline id the trials run (default: `tune --katib` uploads the pipeline first;
    /// `compile` leaves each trial to resolve it by name).
    #[arg(long, value_name = "ID", help_heading = "Katib")]
    pub pipeline_id: Option<String>,
    /// KFP pipeline version id the trials run (default: the newest version at trial start).
    #[arg(long, value_name = "ID", help_heading = "Katib")]
    pub pipeline_version: Option<String>,
    /// KFP API endpoint as seen from inside the cluster (the trial pods).
    #[arg(
        long,
        value_name = "URL",
        env = "KALE_TRIAL_KFP_ENDPOINT",
        help_heading = "Katib"
    )]
    pub trial_kfp_endpoint: Option<String>,
    /// Service account of the trial pods (needs access to the KFP API).
    #[arg(long, value_name = "NAME", help_heading = "Katib")]
    pub service_account: Option<String>,
}

impl KatibArgs {
    /// What the trials run; an empty image means the steps' image.
    pub fn trial_target(&self) -> kale::kubeflow::katib_experiment::TrialTarget {
        kale::kubeflow::katib_experiment::TrialTarget {
            image: self.trial_image.clone().unwrap_or_default(),
            pipeline_id: self.pipeline_id.clone(),
            pipeline_version: self.pipeline_version.clone(),
            kfp_experiment_id: None,
            kfp_endpoint: self.trial_kfp_endpoint.clone(),
            service_account: self.service_account.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    #[command(flatten)]
    pub search: SearchFlags,
    /// Experiment name (default: `<pipeline>-<n>`, the first free one).
    #[arg(long, value_name = "EXP")]
    pub name: Option<String>,
    /// Continue the experiment `--name` where it stopped; finished trials are kept.
    #[arg(long, requires = "name")]
    pub resume: bool,
    /// Stop a trial that runs longer than this many seconds and count it as failed.
    #[arg(long, value_name = "SECONDS")]
    pub trial_timeout: Option<f64>,
    /// Run every step of every trial, ignoring the step cache (for comparisons).
    #[arg(long)]
    pub no_cache: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the progress as JSON lines (one event each) to FILE, or to stdout
    /// with `-` (see the README's "Progress events").
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,
    /// Serve the live dashboard (`kale dashboard`) while the tune runs, print its address,
    /// and keep serving after the tune until Ctrl-C.
    #[arg(long, conflicts_with = "katib")]
    pub dashboard: bool,
    /// Port of --dashboard (default: any free one).
    #[arg(long, value_name = "N", requires = "dashboard", default_value_t = 0)]
    pub dashboard_port: u16,
    #[command(flatten)]
    pub python: PythonArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Run the experiment on Kubernetes with Katib (uploads the pipeline to KFP first),
    /// watching it here; with --resume, watch an existing one again.
    #[arg(long, help_heading = "Kubernetes")]
    pub katib: bool,
    /// Kubernetes namespace (default: the kubeconfig context's, else the pod's own).
    #[arg(
        short = 'n',
        long,
        value_name = "NS",
        requires = "katib",
        help_heading = "Kubernetes"
    )]
    pub namespace: Option<String>,
    /// kubeconfig context to use (default: the current context).
    #[arg(
        long,
        value_name = "NAME",
        requires = "katib",
        help_heading = "Kubernetes"
    )]
    pub context: Option<String>,
    /// KFP API endpoint the pipeline is uploaded to (default: $KF_PIPELINES_ENDPOINT,
    /// else the in-cluster service).
    #[arg(
        long,
        value_name = "URL",
        requires = "katib",
        help_heading = "Kubernetes"
    )]
    pub kfp_endpoint: Option<String>,
    #[command(flatten)]
    pub katib_target: KatibArgs,
}

impl TuneArgs {
    /// What a tune on the cluster is asked to do.
    pub fn katib_plan(&self) -> kale::kubeflow::katib_tune::KatibPlan {
        kale::kubeflow::katib_tune::KatibPlan {
            notebook: self.notebook.clone(),
            search: self.search.plan(),
            name: self
                .name
                .clone()
                .or_else(|| self.katib_target.experiment_name.clone()),
            resume: self.resume,
            target: self.katib_target.trial_target(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            kfp_endpoint: self.kfp_endpoint.clone(),
            python: self.python.python.clone(),
            local_flags: self.trial_timeout.is_some()
                || self.no_cache
                || self.python.python.is_some(),
        }
    }

    /// What a local tune is asked to do.
    pub fn local_plan(&self) -> kale::tune::local::LocalPlan {
        kale::tune::local::LocalPlan {
            notebook: self.notebook.clone(),
            search: self.search.plan(),
            name: self.name.clone(),
            resume: self.resume,
            python: self.python.python.clone(),
            machine: self.resources.settings(),
            trial_timeout: self.trial_timeout.map(std::time::Duration::from_secs_f64),
            no_cache: self.no_cache,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// Experiments of the notebooks in a directory (default: the current one), or the
    /// Katib Experiments on the cluster with --katib.
    List(ExperimentsListArgs),
    /// One experiment's settings and trials.
    Show(ShowArgs),
    /// Several experiments side by side.
    Compare(CompareArgs),
    /// Plot an experiment (history, importance, parallel coordinates, slices) as SVG or PNG.
    Plot(PlotArgs),
    /// Remove an experiment and its trials from the store (run directories stay until
    /// `kale cache prune`).
    Delete(ShowArgs),
    /// Give an experiment a new name.
    Rename(RenameArgs),
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub experiment: String,
    pub new_name: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory holding the notebook (its `.kale/kale.db`), or a notebook path.
    #[arg(long = "dir", short = 'C', value_name = "PATH", default_value = ".")]
    pub dir: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExperimentsListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// List the Katib Experiments on the Kubernetes cluster instead.
    #[arg(long)]
    pub katib: bool,
    /// Kubernetes namespace (default: the kubeconfig context's, else the pod's own).
    #[arg(short = 'n', long, value_name = "NS", requires = "katib")]
    pub namespace: Option<String>,
    /// kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME", requires = "katib")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub experiment: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[arg(required = true, num_args = 2..)]
    pub experiments: Vec<String>,
    /// Also write the experiments' histories overlaid in one plot (`.svg` or `.png`).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Objective axis of the plot in log scale.
    #[arg(long)]
    pub log_y: bool,
    /// With several objectives: the one the best-trial rows and the plot show (an
    /// experiment without it shows its first).
    #[arg(long, value_name = "NAME")]
    pub objective: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The experiment; `history` and `edf` overlay several.
    #[arg(required = true, num_args = 1.., value_name = "EXP")]
    pub experiments: Vec<String>,
    /// Output file: `.svg`, or `.png` for a rendered image.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// history: objective by trial and best so far; importance: fANOVA parameter
    /// importance; parallel: parallel coordinates; slice: objective against each parameter;
    /// contour: objective over the two most important parameters (or --params A,B);
    /// pareto: two objectives of a multi-objective experiment against each other, the front
    /// highlighted; edf: the empirical distribution of the objective; timeline: when each
    /// trial ran and how it ended; intermediate: every trial's intermediate values.
    #[arg(long, value_name = "KIND", default_value = "history")]
    pub kind: kale::render::svg::Kind,
    /// Parameters to show: slice and parallel (any of them), contour (two: x,y).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub params: Vec<String>,
    /// The objective shown, of an experiment with several (history, importance, parallel,
    /// slice, contour, edf); give two for pareto's x and y axes.
    #[arg(long, value_name = "NAME")]
    pub objective: Vec<String>,
    /// Objective axis in log scale (when every value is positive).
    #[arg(long)]
    pub log_y: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, objects and size of the step cache.
    Stats(StoreArgs),
    /// Remove cached data no recent or pinned run uses.
    Prune(PruneArgs),
    /// The snapshot a run's step was cached with (interpreter, packages, files read
    /// and written) and whether it still holds.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Run id (or unique prefix), `last`, or `EXP/TRIAL`.
    pub run: String,
    /// Step name (default: every step of the run).
    pub step: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub python: PythonArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the data of the newest N runs (trials count as runs).
    #[arg(long, default_value_t = 20)]
    pub keep_runs: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs and trials: id, notebook, status, failing step, when.
    List(RunsListArgs),
    /// One run's steps: status, timings, cache hits, inputs and outputs with sizes and hashes.
    Show(RunRefArgs),
    /// Keep a run's data when `kale cache prune` runs.
    Pin(RunRefArgs),
    /// Let `kale cache prune` remove a pinned run's data again.
    Unpin(RunRefArgs),
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// Only the runs of this notebook (its directory's runs otherwise).
    pub notebook: Option<PathBuf>,
    /// Show at most N runs, newest first.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RunRefArgs {
    /// Run id (or a unique prefix), `EXPERIMENT/TRIAL`, `last`, or a run directory.
    pub run: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct DebugArgs {
    /// Run id (or a unique prefix), `EXPERIMENT/TRIAL`, `last`, or a run directory.
    pub run: String,
    /// Step to reopen (default: the step that failed).
    pub step: Option<String>,
    /// Where to write the notebook (default: beside the original, named `*.kale-debug-*.ipynb`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How to reach the Kubeflow Pipelines API.
#[derive(Debug, Clone, Default, Args)]
pub struct KfpArgs {
    /// KFP API endpoint (default: $KF_PIPELINES_ENDPOINT, else the in-cluster service).
    /// The token comes from $KF_PIPELINES_TOKEN or the file $KF_PIPELINES_SA_TOKEN_PATH.
    #[arg(long, value_name = "URL")]
    pub kfp_endpoint: Option<String>,
    /// Namespace of the user's pipelines and runs (multi-user Kubeflow).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    #[command(flatten)]
    pub kfp: KfpArgs,
    /// Override a pipeline parameter for this run (repeatable): `-p lr=0.5`.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// KFP experiment for the run (default: the notebook's experiment name).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Run name (default: pipeline name and time).
    #[arg(long, value_name = "NAME")]
    pub run_name: Option<String>,
    /// Upload only; do not start a run.
    #[arg(long)]
    pub upload_only: bool,
}

#[derive(Debug, Args)]
pub struct TrialArgs {
    #[arg(long, value_name = "URL")]
    /// KFP API endpoint (default: $KF_PIPELINES_ENDPOINT, else the in-cluster service).
    pub kfp_endpoint: Option<String>,
    /// Pipeline id (or name it with --pipeline).
    #[arg(long, value_name = "ID", required_unless_present = "pipeline")]
    pub pipeline_id: Option<String>,
    /// Pipeline display name, looked up when there is no --pipeline-id.
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Pipeline version id (default: the pipeline's newest version).
    #[arg(long, value_name = "ID")]
    pub pipeline_version: Option<String>,
    /// KFP experiment id for the run.
    #[arg(long, value_name = "ID")]
    pub kfp_experiment_id: Option<String>,
    /// Namespace used to look the pipeline up by name.
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Run name (Katib passes the trial name).
    #[arg(long, value_name = "NAME")]
    pub run_name: Option<String>,
    /// A parameter value, converted to the type the pipeline declares (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Metrics to print, comma-separated (default: all the run reported).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Longest wait between checks of the run's state, in seconds (checks start at 0.5 s).
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    pub poll_interval: f64,
    /// Give up (and fail the trial) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}
