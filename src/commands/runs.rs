//! `kale runs list|show|pin|unpin`.

use std::process::ExitCode;

use kale::exec::manifest::now;
use kale::snapshot::{self, Run};
use serde_json::{Value, json};

use crate::cli::RunsCommand;

use kale::report::human_bytes;

pub fn run(cmd: &RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List(args) => {
            let base = args.notebook.as_deref().unwrap_or(&args.store.dir);
            let runs_dir = snapshot::runs_dir(base);
            let runs =
                snapshot::of_notebook(snapshot::list_runs(&runs_dir), args.notebook.as_deref());
            let runs: Vec<Run> = runs.into_iter().take(args.limit).collect();
            if args.store.json {
                let rows: Vec<Value> = runs.iter().map(list_row).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if runs.is_empty() {
                eprintln!(
                    "no runs in {}\n  hint: `kale run NOTEBOOK` records one there",
                    runs_dir.display()
                );
            } else {
                print_list(&runs);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show(args) => {
            let (runs_dir, run) = match super::find_run(&args.run, &args.store) {
                Ok(found) => found,
                Err(code) => return Ok(code),
            };
            let doc = snapshot::summary(&runs_dir, &run);
            if args.store.json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_show(&run, &doc);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Pin(args) | RunsCommand::Unpin(args) => {
            let pin = matches!(cmd, RunsCommand::Pin(_));
            let (_, mut run) = match super::find_run(&args.run, &args.store) {
                Ok(found) => found,
                Err(code) => return Ok(code),
            };
            run.manifest.pinned = pin;
            run.manifest.write(&run.dir)?;
            if args.store.json {
                println!("{}", json!({"run": run.manifest.run_id, "pinned": pin}));
            } else if pin {
                println!(
                    "pinned {}: `kale cache prune` keeps its data",
                    run.manifest.run_id
                );
            } else {
                println!(
                    "unpinned {}: its data is pruned once it is older than the runs `kale cache prune` keeps",
                    run.manifest.run_id
                );
            }
            Ok(ExitCode::SUCCESS)
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

fn print_list(runs: &[Run]) {
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|r| {
            let m = &r.manifest;
            [
                m.run_id.clone(),
                m.notebook
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                m.status.as_str().to_string(),
                r.failing_step().map(|s| s.name.clone()).unwrap_or_default(),
                ago(m.started_at),
                [
                    r.trial_label().map(|t| format!("trial {t}")),
                    m.pinned.then(|| "pinned".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ]
        })
        .collect();
    let header = ["RUN", "NOTEBOOK", "STATUS", "FAILED STEP", "STARTED", ""];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
}

fn ago(t: f64) -> String {
    let s = (now() - t).max(0.0);
    if s < 60.0 {
        format!("{s:.0}s ago")
    } else if s < 3600.0 {
        format!("{:.0} min ago", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.0} h ago", s / 3600.0)
    } else {
        format!("{:.0} days ago", s / 86_400.0)
    }
}

fn short(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    &hex[..hex.len().min(12)]
}

fn object_line(o: &Value, arrow: &str) -> String {
    let bytes = o["bytes"]
        .as_u64()
        .map(human_bytes)
        .unwrap_or_else(|| "?".into());
    let place = match o["location"].as_str() {
        Some("store") => "  (in the store only)",
        Some("missing") => "  PRUNED",
        _ => "",
    };
    format!(
        "{:<16} {:<14} {bytes:>9}  {}{place}",
        o["name"].as_str().unwrap_or(""),
        arrow,
        short(o["hash"].as_str().unwrap_or(""))
    )
}

fn print_show(run: &Run, doc: &Value) {
    let m = &run.manifest;
    println!("run         {}", m.run_id);
    if let Some(t) = run.trial_label() {
        println!("trial       {t}");
    }
    println!("notebook    {}", m.notebook.display());
    let took = m
        .finished_at
        .map(|f| format!(", took {:.1}s", f - m.started_at))
        .unwrap_or_default();
    println!(
        "status      {}  (started {}{took})",
        m.status.as_str(),
        ago(m.started_at)
    );
    if !m.parameters.is_empty() {
        let params: Vec<String> = m
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("parameters  {}", params.join(" "));
    }
    if !m.metrics.is_empty() {
        let metrics: Vec<String> = m.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("metrics     {}", metrics.join(" "));
    }
    let missing = doc["data"]["missing"].as_array().map_or(0, Vec::len);
    println!(
        "data        {}{}",
        if missing == 0 {
            "complete".to_string()
        } else {
            format!("{missing} objects pruned")
        },
        if m.pinned { " (pinned)" } else { "" }
    );
    println!("dir         {}", run.dir.display());
    for (record, step) in m
        .steps
        .iter()
        .zip(doc["steps"].as_array().into_iter().flatten())
    {
        let seconds = record
            .seconds
            .map(|s| format!("{s:.2}s"))
            .unwrap_or_else(|| "-".into());
        let hit = if step["cache_hit"] == true {
            "  cache hit"
        } else {
            ""
        };
        println!(
            "\n{}  {}  {seconds}{hit}",
            record.name,
            record.status.as_str()
        );
        for o in step["inputs"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let from = format!("← {}", o["step"].as_str().unwrap_or(""));
            println!("  in   {}", object_line(o, &from));
        }
        for o in step["outputs"].as_array().into_iter().flatten() {
            println!("  out  {}", object_line(o, "→"));
        }
        if let Some(e) = &record.error {
            let at = match (e.cell, e.line) {
                (Some(c), Some(l)) => format!(" (cell {c}, line {l})"),
                _ => String::new(),
            };
            println!("  error {}: {}{at}", e.kind, e.message);
        }
    }
}
