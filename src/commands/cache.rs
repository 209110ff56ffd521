//! `kale cache stats|prune`.

use std::collections::HashSet;
use std::process::ExitCode;

use kale::exec::Manifest;
use kale::exec::cache::Cache;
use serde_json::json;

use crate::cli::{CacheCommand, StoreArgs};

use super::EXIT_BAD_INPUT;

fn kale_dir(args: &StoreArgs) -> std::path::PathBuf {
    if args.dir.is_file() {
        kale::exec::notebook_dir(&args.dir).join(".kale")
    } else {
        args.dir.join(".kale")
    }
}

pub fn run(cmd: &CacheCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CacheCommand::Stats(args) => {
            let root = kale_dir(args).join("cache");
            if !root.exists() {
                eprintln!(
                    "error: no step cache at {}\n  hint: `kale run` or `kale tune` fill it",
                    root.display()
                );
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
            let stats = Cache::open(&root)?.stats();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("cache       {}", root.display());
                println!("entries     {} step results", stats.entries);
                println!(
                    "objects     {} ({})",
                    stats.objects,
                    human_bytes(stats.bytes)
                );
                println!(
                    "saves       {:.1}s of step time when every entry is hit once",
                    stats.seconds_saved_per_hit
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Prune(args) => {
            let kale = kale_dir(&args.store);
            let root = kale.join("cache");
            if !root.exists() {
                eprintln!("error: no step cache at {}", root.display());
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
            let mut runs: Vec<(f64, std::path::PathBuf, Manifest)> = Vec::new();
            if let Ok(dir) = std::fs::read_dir(kale.join("runs")) {
                for e in dir.flatten() {
                    if let Ok(m) = Manifest::read(&e.path()) {
                        runs.push((m.started_at, e.path(), m));
                    }
                }
            }
            runs.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut keep = HashSet::new();
            let mut dropped_runs = 0;
            for (i, (_, path, m)) in runs.iter().enumerate() {
                let kept = i < args.keep_runs || m.pinned;
                if kept {
                    for s in &m.steps {
                        for o in &s.outputs {
                            keep.insert(o.hash.clone());
                        }
                        // `kale debug` loads a step's inputs; keep them even if the
                        // record of the step that saved them were incomplete.
                        for i in s.inputs.values() {
                            keep.insert(i.hash.clone());
                        }
                    }
                } else {
                    // The run's record stays; its data goes, and `kale debug` says so.
                    let mut any = false;
                    for s in &m.steps {
                        let outputs = kale::exec::step_dir(path, &s.name).join("outputs");
                        if outputs.exists() {
                            std::fs::remove_dir_all(&outputs)?;
                            any = true;
                        }
                    }
                    if any {
                        dropped_runs += 1;
                    }
                }
            }
            let (entries, objects, bytes) = Cache::open(&root)?.prune(&keep)?;
            if args.store.json {
                println!(
                    "{}",
                    json!({"entries_removed": entries, "objects_removed": objects, "bytes_freed": bytes, "runs_pruned": dropped_runs})
                );
            } else {
                println!(
                    "removed {entries} cache entries and {objects} objects ({}); data of {dropped_runs} older runs pruned; kept the newest {} runs and pinned ones",
                    human_bytes(bytes),
                    args.keep_runs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}
