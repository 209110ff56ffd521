//! `kale cache stats|prune`.

use kale::exec::cache::Cache;
use kale::layout::Layout;
use serde_json::json;

use crate::cli::{CacheCommand, ExplainArgs, StoreArgs};

use kale::Error;

fn layout(args: &StoreArgs) -> Layout {
    Layout::for_dir_or_notebook(&args.dir)
}

pub fn run(cmd: &CacheCommand) -> kale::Result<()> {
    match cmd {
        CacheCommand::Explain(args) => explain(args),
        CacheCommand::Stats(args) => {
            let root = layout(args).cache();
            if !root.exists() {
                return Err(
                    Error::bad_input(format!("no step cache at {}", root.display()))
                        .with_hint("`kale run` or `kale tune` fill it"),
                );
            }
            let stats = Cache::open(&root)?.stats();
            if args.json {
                kale::outln!("{}", serde_json::to_string_pretty(&stats)?)?;
            } else {
                kale::outln!("cache       {}", root.display())?;
                kale::outln!("entries     {} step results", stats.entries)?;
                kale::outln!(
                    "objects     {} ({})",
                    stats.objects,
                    kale::format::human_bytes(stats.bytes)
                )?;
                kale::outln!(
                    "saves       {:.1}s of step time when every entry is hit once",
                    stats.seconds_saved_per_hit
                )?;
            }
            Ok(())
        }
        CacheCommand::Prune(args) => {
            let kale = layout(&args.store);
            let root = kale.cache();
            if !root.exists() {
                return Err(Error::bad_input(format!(
                    "no step cache at {}",
                    root.display()
                )));
            }
            let kale::snapshot::Pruned {
                entries,
                objects,
                bytes,
                runs: dropped_runs,
            } = kale::snapshot::prune(&kale, args.keep_runs)?;
            if args.store.json {
                kale::outln!(
                    "{}",
                    json!({"entries_removed": entries, "objects_removed": objects, "bytes_freed": bytes, "runs_pruned": dropped_runs})
                )?;
            } else {
                kale::outln!(
                    "removed {entries} cache entries and {objects} objects ({}); data of {dropped_runs} older runs pruned; kept the newest {} runs and pinned ones",
                    kale::format::human_bytes(bytes),
                    args.keep_runs
                )?;
            }
            Ok(())
        }
    }
}

fn explain(args: &ExplainArgs) -> kale::Result<()> {
    let run = kale::snapshot::resolve(&layout(&args.store).runs(), &args.run)?;
    let steps: Vec<&str> = match &args.step {
        Some(name) => match run.manifest.step(name) {
            Some(s) => vec![s.name.as_str()],
            None => {
                let names: Vec<_> = run.manifest.steps.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::bad_input(format!(
                    "run {} has no step `{name}`",
                    run.manifest.run_id
                ))
                .with_hint(format!("its steps are {}", names.join(", "))));
            }
        },
        None => run.manifest.steps.iter().map(|s| s.name.as_str()).collect(),
    };
    // Whether the snapshot still holds is judged against the interpreter a new run
    // would use; without one, only the snapshot is shown.
    let python = kale::exec::python::resolve(
        &kale::exec::python::choose(args.python.python.as_deref()).command,
    )
    .ok()
    .map(|i| i.identity());
    let base = kale::exec::notebook_dir(&run.manifest.notebook);
    let mut docs = Vec::new();
    for kale::snapshot::StepCache {
        step,
        snapshot,
        holds,
    } in kale::snapshot::cache_of(&run, &steps, python.as_ref())
    {
        if args.store.json {
            docs.push(json!({
                "step": step.name,
                "status": step.status.as_str(),
                "cache_note": step.cache_note,
                "key": snapshot.as_ref().map(|(k, _)| k),
                "snapshot": snapshot.as_ref().map(|(_, p)| p),
                "holds": holds.as_ref().map(|h| h.is_ok()),
                "stale_because": holds.as_ref().and_then(|h| h.as_ref().err()),
            }));
            continue;
        }
        kale::outln!("{}  {}", step.name, step.status.as_str())?;
        if let Some(note) = &step.cache_note {
            kale::outln!("  note      {note}")?;
        }
        let Some((key, p)) = snapshot else {
            kale::outln!(
                "  no snapshot (the step failed, was not cached, or ran under an older kale)\n"
            )?;
            continue;
        };
        kale::outln!("  key       {}", &key[..key.len().min(16)])?;
        kale::outln!(
            "  python    {} ({})",
            p.python.executable.display(),
            p.python.version
        )?;
        if !p.packages.is_empty() {
            let list: Vec<_> = p.packages.iter().map(|(n, v)| format!("{n} {v}")).collect();
            kale::outln!("  packages  {}", list.join(", "))?;
        }
        for r in &p.reads {
            let shown = kale::exec::provenance::display_path(&r.path, &base);
            match (&r.stat, &r.hash) {
                (Some(stat), Some(hash)) => kale::outln!(
                    "  read      {shown}  {}  {}",
                    kale::format::human_bytes(stat.size),
                    &hash[..hash.len().min(19)]
                )?,
                _ => kale::outln!("  looked    {shown}  (absent)")?,
            }
        }
        for w in &p.writes {
            kale::outln!(
                "  wrote     {}  {}  {}",
                kale::exec::provenance::display_path(&w.path, &base),
                kale::format::human_bytes(w.stat.size),
                &w.hash[..w.hash.len().min(19)]
            )?;
        }
        for why in &p.untracked {
            kale::outln!("  untracked {why}")?;
        }
        match holds {
            Some(Ok(())) => kale::outln!("  holds     yes: a new run would reuse it\n")?,
            Some(Err(why)) => kale::outln!("  holds     no: {why}\n")?,
            None => kale::outln!()?,
        }
    }
    if args.store.json {
        kale::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"run": run.manifest.run_id, "steps": docs}))?
        )?;
    }
    Ok(())
}
