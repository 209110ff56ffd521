//! `kale dashboard`: serves the experiment store as a live web page, read-only but for
//! notes on experiments and trials.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::DashboardArgs;

use kale::Error;

/// The store a path names: a `.db` file as is, a notebook's or a directory's
/// `.kale/kale.db` otherwise.
pub fn store_for(path: &Path) -> PathBuf {
    if path.is_file() && path.extension().is_some_and(|e| e == "db") {
        path.to_path_buf()
    } else {
        kale::store::Store::path_for(path)
    }
}

pub fn run(args: &DashboardArgs) -> kale::Result<()> {
    let db = store_for(&args.path);
    if !db.exists() {
        return Err(
            Error::bad_input(format!("no experiment store at {}", db.display())).with_hint(
                "pass the notebook's directory (or its .kale/kale.db); `kale tune` creates the store",
            ),
        );
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let dash = match kale::dashboard::bind(&db, &args.host, args.port).await {
            Ok(d) => d,
            Err(e) => {
                return Err(Error::bad_input(format!(
                    "cannot serve on {}:{}: {e}",
                    args.host, args.port
                ))
                .with_hint("pick another --port (0 takes any free one)"));
            }
        };
        if !dash.addr.ip().is_loopback() {
            kale::errln!(
                "warning: serving on {} — anyone who can reach this address can read the experiments",
                dash.addr
            );
        }
        // The URL goes to stdout (scripts read it); the rest to stderr. It carries the
        // token that writing notes takes, after `#` (browsers never send that part).
        kale::outln!("{}", dash.url_with_token(""))?;
        let _ = std::io::stdout().flush();
        kale::errln!(
            "kale dashboard for {} — read-only but for notes, which take the token in that address; Ctrl-C to stop",
            db.display()
        );
        tokio::select! {
            r = dash.serve() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
