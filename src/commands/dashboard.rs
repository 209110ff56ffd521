//! `kale dashboard`: serves the experiment store as a live, read-only web page.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::DashboardArgs;

use super::EXIT_BAD_INPUT;

/// The store a path names: a `.db` file as is, a notebook's or a directory's
/// `.kale/kale.db` otherwise.
pub fn store_for(path: &Path) -> PathBuf {
    if path.is_file() && path.extension().is_some_and(|e| e == "db") {
        path.to_path_buf()
    } else {
        kale::store::Store::path_for(path)
    }
}

pub fn run(args: &DashboardArgs) -> anyhow::Result<ExitCode> {
    let db = store_for(&args.path);
    if !db.exists() {
        eprintln!(
            "error: no experiment store at {}\n  hint: pass the notebook's directory (or its .kale/kale.db); `kale tune` creates the store",
            db.display()
        );
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let dash = match kale::dashboard::bind(&db, &args.host, args.port).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!(
                    "error: cannot serve on {}:{}: {e}\n  hint: pick another --port (0 takes any free one)",
                    args.host, args.port
                );
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        };
        if !dash.addr.ip().is_loopback() {
            eprintln!(
                "warning: serving on {} — anyone who can reach this address can read the experiments",
                dash.addr
            );
        }
        // The URL goes to stdout (scripts read it); the rest to stderr.
        println!("{}", dash.url());
        let _ = std::io::stdout().flush();
        eprintln!("kale dashboard for {} — Ctrl-C to stop", db.display());
        tokio::select! {
            r = dash.serve() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
