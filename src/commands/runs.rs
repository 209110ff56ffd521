//! `kale runs list|show|pin|unpin`: each subcommand is one operation of
//! [`kale::snapshot::runs_view`]; this file prints what it returns.

use kale::snapshot::runs_view::{self, RunList, RunShown};
use serde_json::json;

use crate::cli::RunsCommand;

pub fn run(cmd: &RunsCommand) -> kale::Result<()> {
    match cmd {
        RunsCommand::List(args) => {
            let list = RunList::of(&args.store.dir, args.notebook.as_deref(), args.limit);
            if args.store.json {
                kale::outln!("{}", serde_json::to_string_pretty(&list.document())?)?;
            } else if let Some(table) = list.table() {
                kale::out!("{table}")?;
            } else {
                kale::errln!(
                    "no runs in {}\n  hint: `kale run NOTEBOOK` records one there",
                    list.runs_dir.display()
                );
            }
        }
        RunsCommand::Show(args) => {
            let shown = RunShown::of(&args.store.dir, &args.run)?;
            if args.store.json {
                kale::outln!("{}", serde_json::to_string_pretty(shown.document())?)?;
            } else {
                kale::out!("{}", shown.text())?;
            }
        }
        RunsCommand::Pin(args) | RunsCommand::Unpin(args) => {
            let pin = matches!(cmd, RunsCommand::Pin(_));
            let run_id = runs_view::pin(&args.store.dir, &args.run, pin)?;
            if args.store.json {
                kale::outln!("{}", json!({"run": run_id, "pinned": pin}))?;
            } else if pin {
                kale::outln!("pinned {run_id}: `kale cache prune` keeps its data")?;
            } else {
                kale::outln!(
                    "unpinned {run_id}: its data is pruned once it is older than the runs `kale cache prune` keeps"
                )?;
            }
        }
    }
    Ok(())
}
