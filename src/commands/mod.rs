//! One module per subcommand; each turns parsed arguments into library calls.

mod cache;
mod compile;
mod dashboard;
mod debug;
mod experiments;
mod inspect;
mod katib;
mod reporters;
mod run;
mod runs;
mod submit;
mod trial;
mod tune;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use kale::diagnostics::Diagnostics;

use crate::cli::{Cli, Command};

/// Exit status for bad input (notebook problems, usage errors), as clap uses for usage.
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Experiments(cmd) => experiments::run(&cmd),
        Command::Cache(cmd) => cache::run(&cmd),
        Command::Compile(args) => compile::run(&args),
        Command::Submit(args) => submit::run(&args),
        Command::Trial(args) => trial::run(&args),
        Command::Runs(cmd) => runs::run(&cmd),
        Command::Debug(args) => debug::run(&args),
        Command::Dashboard(args) => dashboard::run(&args),
    }
}

/// Prints every diagnostic to stderr, errors first.
pub fn print_diagnostics(notebook: &Path, diags: &Diagnostics) {
    for d in diags.sorted() {
        eprintln!("{}", d.render(notebook));
    }
}

/// Exit status when a step fails at run time.
pub const EXIT_STEP_FAILED: u8 = 1;
/// Exit status after Ctrl-C, as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Loads the pipeline, or prints the problems and returns the bad-input exit code.
pub fn load_pipeline(notebook: &Path) -> Result<kale::pipeline::Pipeline, ExitCode> {
    let (pipeline, diags) = kale::pipeline::load(notebook);
    match pipeline {
        Some(p) => {
            // Warnings matter less once the user runs; they still see them.
            print_diagnostics(notebook, &diags);
            Ok(p)
        }
        None => {
            print_diagnostics(notebook, &diags);
            Err(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

/// Resolves the Python interpreter or explains why there is none.
pub fn interpreter(flag: Option<&Path>) -> Result<kale::exec::Interpreter, ExitCode> {
    let command = kale::exec::python::choose(flag);
    kale::exec::python::resolve(&command).map_err(|e| {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

/// A watch channel that turns true on the first Ctrl-C.
pub fn ctrl_c_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping running steps (Ctrl-C again to force)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        }
    });
    rx
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
