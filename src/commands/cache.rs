//! `kale cache stats|prune|explain`: each subcommand is one operation of
//! [`kale::snapshot::cache_view`]; this file prints what it returns.

use kale::snapshot::cache_view::{self, Explanation, Stats};

use crate::cli::CacheCommand;

pub fn run(cmd: &CacheCommand) -> kale::Result<()> {
    match cmd {
        CacheCommand::Stats(args) => {
            let stats = Stats::of(&args.dir)?;
            if args.json {
                kale::outln!("{}", serde_json::to_string_pretty(&stats.stats)?)?;
            } else {
                kale::out!("{}", stats.text())?;
            }
        }
        CacheCommand::Prune(args) => {
            let pruned = cache_view::prune(&args.store.dir, args.keep_runs)?;
            if args.store.json {
                kale::outln!("{}", pruned.document())?;
            } else {
                kale::outln!("{}", pruned.text(args.keep_runs))?;
            }
        }
        CacheCommand::Explain(args) => {
            let explained = Explanation::of(
                &args.store.dir,
                &args.run,
                args.step.as_deref(),
                args.python.python.as_deref(),
            )?;
            if args.store.json {
                kale::outln!("{}", serde_json::to_string_pretty(&explained.document())?)?;
            } else {
                kale::out!("{}", explained.text())?;
            }
        }
    }
    Ok(())
}
