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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a notebook's tags, metadata and data flow; list every problem found.
    Validate(NotebookArgs),
    /// Show the pipeline a notebook defines: steps, DAG, inputs/outputs, parameters, metrics.
    Inspect(InspectArgs),
    /// Run the pipeline on this machine: each step in its own Python process.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct NotebookArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Path to the `.ipynb` notebook.
    pub notebook: PathBuf,
    /// Print the pipeline as JSON (a stable contract for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PythonArgs {
    /// Python interpreter for the steps (default: $KALE_PYTHON, else `python3`).
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
    /// Steps to run at once (default: the number of cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not stream step output; it still goes to the step's log files.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub python: PythonArgs,
}
