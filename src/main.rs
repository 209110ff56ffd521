use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod commands;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): a reader of our output that goes away
    // (`kale runs list | head -1`, `kale tune ... 2>&1 | head -1`) turns the next write
    // into an error that `kale::output` handles quietly, instead of a signal that would
    // end a tune without recording it.
    // The runtime version is computed, not a literal, so clap gets the whole line at
    // run time; leaked once, as clap wants a `'static` string.
    let version: &'static str = cli::version_line().leak();
    let cli = match cli::Cli::from_arg_matches(&cli::Cli::command().version(version).get_matches())
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The one place an outcome becomes an exit status (the README's table lists them).
    match commands::run(cli).and_then(|()| kale::output::finish()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(text) = err.render() {
                kale::errln!("{text}");
            }
            ExitCode::from(err.kind().exit_status())
        }
    }
}
