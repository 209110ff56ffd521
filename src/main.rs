use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod commands;

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes
    // away (`kale runs list | head -1`): Rust ignores SIGPIPE, which turns the next
    // write into a panic.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The runtime version is computed, not a literal, so clap gets the whole line at
    // run time; leaked once, as clap wants a `'static` string.
    let version: &'static str = cli::version_line().leak();
    let cli = match cli::Cli::from_arg_matches(&cli::Cli::command().version(version).get_matches())
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The one place an outcome becomes an exit status (the README's table lists them).
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(text) = err.render() {
                eprintln!("{text}");
            }
            ExitCode::from(err.kind().exit_status())
        }
    }
}
