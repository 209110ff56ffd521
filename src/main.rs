use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod commands;

fn main() -> ExitCode {
    // The runtime version is computed, not a literal, so clap gets the whole line at
    // run time; leaked once, as clap wants a `'static` string.
    let version: &'static str = cli::version_line().leak();
    let cli = match cli::Cli::from_arg_matches(&cli::Cli::command().version(version).get_matches())
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
