//! One module per subcommand; each turns parsed arguments into library calls.

mod cache;
mod compile;
mod dashboard;
mod debug;
mod experiments;
mod inspect;
mod run;
mod runs;
mod submit;
mod trial;
mod tune;
mod validate;

use std::path::Path;

use kale::diagnostics::Diagnostics;
use kale::{Error, ErrorKind};

use crate::cli::{Cli, Command};

/// Runs one command; what it returns decides the exit status (in `main`).
pub fn run(cli: Cli) -> kale::Result<()> {
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
        kale::errln!("{}", d.render(notebook));
    }
}

/// The pipeline and problems of the notebook at `notebook`, or of the notebook JSON on
/// standard input that this path names (`--stdin`).
pub fn load_source(
    notebook: &Path,
    source: &crate::cli::SourceArgs,
) -> kale::Result<(
    Option<kale::pipeline::Pipeline>,
    kale::diagnostics::Diagnostics,
)> {
    if !source.stdin {
        return Ok(kale::pipeline::load(notebook));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
        Error::bad_input(format!(
            "{}: cannot read the notebook from standard input: {e}",
            notebook.display()
        ))
    })?;
    Ok(kale::pipeline::load_text(notebook, &text))
}

/// The `--events` stream, if asked for. `--json` and `--events -` would mix on stdout.
pub fn event_stream(
    path: Option<&Path>,
    json: bool,
) -> kale::Result<Option<std::sync::Arc<kale::events::EventStream>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    if json && path.as_os_str() == "-" {
        return Err(Error::bad_input(
            "--json and --events - both write to stdout; give --events a file",
        ));
    }
    let stream = kale::events::EventStream::to_path(path)
        .map_err(|e| Error::environment(format!("--events {}: {e}", path.display())))?;
    Ok(Some(std::sync::Arc::new(stream)))
}

/// Loads the pipeline, or prints the problems (each with its cell and line).
pub fn load_pipeline(notebook: &Path) -> kale::Result<kale::pipeline::Pipeline> {
    let (pipeline, diags) = kale::pipeline::load(notebook);
    match pipeline {
        Some(p) => {
            // Warnings matter less once the user runs; they still see them.
            print_diagnostics(notebook, &diags);
            Ok(p)
        }
        None => {
            print_diagnostics(notebook, &diags);
            Err(Error::reported(ErrorKind::BadInput))
        }
    }
}

/// A watch channel that turns true on the first Ctrl-C, SIGTERM (`docker stop`, CI,
/// `timeout`) or SIGHUP (a closed terminal), saying what happens now (`what`); the
/// command then ends as interrupted, with the signal's exit status (130, 143, 129).
/// A second signal exits at once.
pub fn interrupt_signal(what: &'static str) -> tokio::sync::watch::Receiver<bool> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let kinds = [
        (libc::SIGINT, "Ctrl-C"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ];
    let mut streams = Vec::new();
    for (number, name) in kinds {
        match signal(SignalKind::from_raw(number)) {
            Ok(s) => streams.push((number, name, s)),
            Err(e) => kale::errln!("warning: cannot handle {name}: {e}"),
        }
    }
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let received =
                futures::future::select_all(streams.iter_mut().map(|(number, name, s)| {
                    Box::pin(async move { s.recv().await.map(|_| (*number, *name)) })
                }))
                .await
                .0;
            // Once what it stops is over (the receiver dropped), a signal is someone
            // else's to handle (`tune --dashboard` serving on after the tune).
            let Some((number, name)) = received.filter(|_| !tx.is_closed()) else {
                return;
            };
            if !first {
                kale::error::note_interrupt(number);
                std::process::exit(i32::from(ErrorKind::Interrupted.exit_status()));
            }
            first = false;
            kale::error::note_interrupt(number);
            let again = if number == libc::SIGINT {
                "Ctrl-C again to force"
            } else {
                "a second signal forces it"
            };
            kale::errln!("\ninterrupted ({name}): {what} ({again})");
            let _ = tx.send(true);
        }
    });
    rx
}

/// Waits for Ctrl-C, SIGTERM or SIGHUP: the end of a wait nothing depends on (a
/// dashboard serving on after its tune), so none of them is an error.
pub async fn wait_for_ctrl_c() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams: Vec<_> = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .into_iter()
        .filter_map(|n| signal(SignalKind::from_raw(n)).ok())
        .collect();
    if streams.is_empty() {
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    futures::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv()))).await;
}

/// Serves the dashboard of the store at `store` from this process and prints the
/// address of experiment `name`'s page; a dashboard that cannot start is a warning.
pub async fn serve_dashboard(store: &Path, name: &str, port: u16) -> Option<String> {
    let path = format!("e/{}", name.replace('%', "%25").replace(' ', "%20"));
    match kale::dashboard::bind(store, "127.0.0.1", port).await {
        Ok(dash) => {
            let url = dash.url_with_token(&path);
            kale::errln!("dashboard: {url}");
            tokio::spawn(dash.serve());
            Some(url)
        }
        Err(e) => {
            kale::errln!("warning: no dashboard: {e}");
            None
        }
    }
}

pub fn runtime() -> kale::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
