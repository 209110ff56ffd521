//! `kale runs list|show|pin|unpin`.

use kale::snapshot::{self, Run};
use serde_json::{Value, json};

use crate::cli::RunsCommand;

use kale::render::table;

pub fn run(cmd: &RunsCommand) -> kale::Result<()> {
    match cmd {
        RunsCommand::List(args) => {
            let base = args.notebook.as_deref().unwrap_or(&args.store.dir);
            let runs_dir = snapshot::runs_dir(base);
            let runs =
                snapshot::of_notebook(snapshot::list_runs(&runs_dir), args.notebook.as_deref());
            let runs: Vec<Run> = runs.into_iter().take(args.limit).collect();
            if args.store.json {
                let rows: Vec<Value> = runs.iter().map(list_row).collect();
                kale::outln!("{}", serde_json::to_string_pretty(&rows)?)?;
            } else if runs.is_empty() {
                kale::errln!(
                    "no runs in {}\n  hint: `kale run NOTEBOOK` records one there",
                    runs_dir.display()
                );
            } else {
                kale::out!("{}", table::runs(&runs))?;
            }
            Ok(())
        }
        RunsCommand::Show(args) => {
            let (runs_dir, run) = super::find_run(&args.run, &args.store)?;
            let doc = snapshot::summary(&runs_dir, &run);
            if args.store.json {
                kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                kale::out!("{}", table::run(&run, &doc))?;
            }
            Ok(())
        }
        RunsCommand::Pin(args) | RunsCommand::Unpin(args) => {
            let pin = matches!(cmd, RunsCommand::Pin(_));
            let (_, mut run) = super::find_run(&args.run, &args.store)?;
            run.manifest.pinned = pin;
            run.manifest.write(&run.dir)?;
            if args.store.json {
                kale::outln!("{}", json!({"run": run.manifest.run_id, "pinned": pin}))?;
            } else if pin {
                kale::outln!(
                    "pinned {}: `kale cache prune` keeps its data",
                    run.manifest.run_id
                )?;
            } else {
                kale::outln!(
                    "unpinned {}: its data is pruned once it is older than the runs `kale cache prune` keeps",
                    run.manifest.run_id
                )?;
            }
            Ok(())
        }
    }
}

fn list_row(r: &Run) -> Value {
    let m = &r.manifest;
    json!({
        "run": m.run_id,
        "notebook": m.notebook.file_name().map(|n| n.to_string_lossy().into_owned()),
        "status": m.status.as_str(),
        "failed_step": r.failing_step().map(|s| s.name.clone()),
        "started_at": m.started_at,
        "seconds": m.finished_at.map(|f| f - m.started_at),
        "experiment": m.experiment,
        "trial": m.trial,
        "pinned": m.pinned,
        "run_dir": r.dir,
    })
}
