//! `kale experiments list|show|compare|plot`, read from the experiment store.

use std::fmt::Write as _;

use std::process::ExitCode;

use kale::store::{Experiment, Store, TrialRow};
use kale::tune::{best_trial, params_text, trial_line};
use kale_search::Direction;
use serde_json::json;

use crate::cli::{CompareArgs, ExperimentsCommand, PlotArgs, StoreArgs};

use super::EXIT_BAD_INPUT;

pub fn run(cmd: &ExperimentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExperimentsCommand::List(a) if a.katib => super::katib::list(a),
        ExperimentsCommand::List(a) => list(&a.store),
        ExperimentsCommand::Show(a) => show(&a.experiment, &a.store),
        ExperimentsCommand::Compare(a) => compare(a),
        ExperimentsCommand::Plot(a) => plot(a),
        ExperimentsCommand::Delete(a) => delete(&a.experiment, &a.store),
        ExperimentsCommand::Rename(a) => rename(&a.experiment, &a.new_name, &a.store),
    }
}

fn open(args: &StoreArgs) -> Result<Store, ExitCode> {
    let path = Store::path_for(&args.dir);
    if !path.exists() {
        eprintln!(
            "error: no experiment store at {}\n  hint: run `kale tune` first, or pass --dir with the notebook's directory",
            path.display()
        );
        return Err(ExitCode::from(EXIT_BAD_INPUT));
    }
    Store::open(&path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn direction(e: &Experiment) -> Direction {
    if e.spec.direction == "minimize" {
        Direction::Minimize
    } else {
        Direction::Maximize
    }
}

fn load(store: &Store, name: &str) -> Result<(Experiment, Vec<TrialRow>), ExitCode> {
    let e = store.experiment(name).map_err(|err| {
        let known: Vec<String> = store
            .experiments()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("`{}`", e.spec.name))
            .collect();
        eprintln!(
            "error: {err}{}",
            if known.is_empty() {
                String::new()
            } else {
                format!("; the experiments are {}", known.join(", "))
            }
        );
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    let trials = store.trials(e.id).map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    Ok((e, trials))
}

fn counts(trials: &[TrialRow]) -> (usize, usize, usize) {
    let ok = trials.iter().filter(|t| t.status == "succeeded").count();
    let failed = trials.iter().filter(|t| t.status == "failed").count();
    let total = trials.iter().filter(|t| t.status != "interrupted").count();
    (ok, failed, total)
}

fn list(args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let experiments = store.experiments()?;
    let mut rows = Vec::new();
    for e in &experiments {
        let trials = store.trials(e.id)?;
        let best = best_trial(&trials, direction(e)).and_then(|b| b.value);
        rows.push((e, trials, best));
    }
    if args.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(e, t, best)| {
                let (ok, failed, total) = counts(t);
                json!({"name": e.spec.name, "notebook": e.spec.notebook, "status": e.status, "reason": e.reason,
                       "objective": e.spec.objective, "direction": e.spec.direction, "algorithm": e.spec.algorithm,
                       "trials": total, "succeeded": ok, "failed": failed, "best": best})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no experiments yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<11} {:<22} {:>8} {:>12}  {:<10} notebook",
        "EXPERIMENT", "STATUS", "OBJECTIVE", "TRIALS", "BEST", "ALGORITHM"
    );
    for (e, trials, best) in rows {
        let (ok, failed, total) = counts(&trials);
        println!(
            "{:<24} {:<11} {:<22} {:>8} {:>12}  {:<10} {}",
            e.spec.name,
            e.status,
            format!(
                "{} {}",
                if e.spec.direction == "minimize" {
                    "min"
                } else {
                    "max"
                },
                e.spec.objective
            ),
            format!("{total} ({failed}✗)").replace(" (0✗)", ""),
            best.map(|b| format!("{b:.6}"))
                .unwrap_or_else(|| "-".into()),
            e.spec.algorithm,
            e.spec.notebook
        );
        let _ = ok;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(name: &str, args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let (e, trials) = match load(&store, name) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    let best = best_trial(&trials, direction(&e));
    let importance = kale::report::importance(&e, &trials);
    if args.json {
        let doc = json!({"experiment": e, "best": best.map(|b| b.number), "trials": trials,
            "importance": match &importance { Ok(i) => json!(i), Err(why) => json!({"unavailable": why}) }});
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (ok, failed, total) = counts(&trials);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {}  ({}{})",
        e.spec.name,
        e.status,
        e.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "notebook   {}", e.spec.notebook);
    let _ = writeln!(
        out,
        "objective  {} {}{}",
        e.spec.direction,
        e.spec.objective,
        e.spec
            .goal
            .map(|g| format!(" (goal {g})"))
            .unwrap_or_default()
    );
    let settings: Vec<String> = e
        .spec
        .settings
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{}={}",
                        s["name"].as_str().unwrap_or("?"),
                        kale::report::value_text(&s["value"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "algorithm  {}{}",
        e.spec.algorithm,
        if settings.is_empty() {
            String::new()
        } else {
            format!(" ({})", settings.join(", "))
        }
    );
    let rows = kale::report::space_rows(&e);
    if rows.is_empty() {
        let _ = writeln!(out, "space      {}", e.spec.space);
    } else {
        let w = |f: &dyn Fn(&kale::report::SpaceRow) -> String, min: usize| {
            rows.iter()
                .map(|r| f(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(min)
        };
        let (wn, wt, wv, ws) = (
            w(&|r| r.name.clone(), 9),
            w(&|r| r.kind.clone(), 4),
            w(&|r| r.values.clone(), 6),
            w(&|r| r.step.clone().unwrap_or_else(|| "-".into()), 4),
        );
        let _ = writeln!(
            out,
            "space      {:<wn$}  {:<wt$}  {:<wv$}  {:<ws$}  distribution",
            "parameter", "type", "values", "step"
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "           {:<wn$}  {:<wt$}  {:<wv$}  {:<ws$}  {}",
                r.name,
                r.kind,
                r.values,
                r.step.as_deref().unwrap_or("-"),
                r.distribution
            );
        }
    }
    let _ = writeln!(
        out,
        "trials     {total} of {} ({ok} succeeded, {failed} failed), {} at once, {:.1}s",
        e.spec.max_trials, e.spec.parallel, e.wall_seconds
    );
    if let Some(b) = best {
        let _ = writeln!(
            out,
            "best       trial {}: {}={} {}",
            b.number,
            e.spec.objective,
            kale::report::num(b.value.unwrap_or(f64::NAN)),
            params_text(&b.params)
        );
        if let Some(dir) = &b.run_dir {
            let _ = writeln!(out, "           {dir}");
        }
    }
    match &importance {
        Ok(imp) => {
            let _ = writeln!(out, "importance (fANOVA)");
            let width = imp
                .iter()
                .map(|p| p.name.chars().count())
                .max()
                .unwrap_or(0);
            for p in imp {
                let bar = "█".repeat((p.importance * 30.0).round() as usize);
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:>5.1}%  {bar}",
                    p.name,
                    100.0 * p.importance
                );
            }
        }
        Err(why) => {
            let _ = writeln!(out, "importance -  ({why})");
        }
    }
    let _ = writeln!(out);
    for t in &trials {
        let mark = if Some(t.number) == best.map(|b| b.number) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(out, "{mark}{}", trial_line(t, &e.spec.objective));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn compare(a: &CompareArgs) -> anyhow::Result<ExitCode> {
    let (names, args) = (&a.experiments, &a.store);
    if let Some(file) = &a.plot
        && let Err(why) = kale::plot::format_of(file)
    {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let mut columns = Vec::new();
    for name in names {
        match load(&store, name) {
            Ok(x) => columns.push(x),
            Err(c) => return Ok(c),
        }
    }
    let bests: Vec<_> = columns
        .iter()
        .map(|(e, t)| best_trial(t, direction(e)))
        .collect();
    let rows: Vec<(&str, Vec<String>)> = vec![
        (
            "algorithm",
            columns
                .iter()
                .map(|(e, _)| e.spec.algorithm.clone())
                .collect(),
        ),
        (
            "objective",
            columns
                .iter()
                .map(|(e, _)| format!("{} {}", e.spec.direction, e.spec.objective))
                .collect(),
        ),
        (
            "status",
            columns.iter().map(|(e, _)| e.status.clone()).collect(),
        ),
        (
            "trials",
            columns
                .iter()
                .map(|(_, t)| {
                    let (ok, f, total) = counts(t);
                    format!("{total} ({ok} ok, {f} failed)")
                })
                .collect(),
        ),
        (
            "best value",
            bests
                .iter()
                .map(|b| {
                    b.and_then(|b| b.value)
                        .map_or("-".into(), |v| format!("{v:.6}"))
                })
                .collect(),
        ),
        (
            "best trial",
            bests
                .iter()
                .map(|b| b.map_or("-".into(), |b| b.number.to_string()))
                .collect(),
        ),
        (
            "best params",
            bests
                .iter()
                .map(|b| b.map_or("-".into(), |b| params_text(&b.params)))
                .collect(),
        ),
        (
            "wall time",
            columns
                .iter()
                .map(|(e, _)| format!("{:.1}s", e.wall_seconds))
                .collect(),
        ),
        (
            "cache hit rate",
            columns
                .iter()
                .map(|(_, t)| {
                    let hits: i64 = t.iter().map(|x| x.cache_hits).sum();
                    let all: i64 = t.iter().map(|x| x.cache_hits + x.cache_misses).sum();
                    if all == 0 {
                        "-".into()
                    } else {
                        format!("{:.0}% ({hits}/{all})", 100.0 * hits as f64 / all as f64)
                    }
                })
                .collect(),
        ),
    ];
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].chars().count())
                .chain([columns[i].0.spec.name.len()])
                .max()
                .unwrap_or(8)
        })
        .collect();
    let mut out = format!("{:<15}", "");
    for (i, (e, _)) in columns.iter().enumerate() {
        let _ = write!(out, "  {:<w$}", e.spec.name, w = widths[i]);
    }
    out.push('\n');
    for (label, values) in rows {
        let _ = write!(out, "{label:<15}");
        for (i, v) in values.iter().enumerate() {
            let _ = write!(out, "  {v:<w$}", w = widths[i]);
        }
        out.push('\n');
    }
    print!("{out}");
    if let Some(file) = &a.plot {
        let series: Vec<kale::plot::Series> = columns
            .iter()
            .map(|(e, t)| kale::plot::Series {
                name: &e.spec.name,
                direction: direction(e),
                trials: t,
            })
            .collect();
        let svg = kale::plot::history(
            &names.join(" vs "),
            &columns[0].0.spec.objective,
            &series,
            kale::plot::Options { log_y: a.log_y },
        );
        kale::plot::write(file, &svg).map_err(|why| anyhow::anyhow!(why))?;
        eprintln!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn plot(a: &PlotArgs) -> anyhow::Result<ExitCode> {
    let Some(kind) = kale::plot::Kind::parse(&a.kind) else {
        eprintln!("error: unknown plot kind `{}`", a.kind);
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    if let Err(why) = kale::plot::format_of(&a.output) {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let store = match open(&a.store) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let (e, trials) = match load(&store, &a.experiment) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    let svg = kale::plot::render(kind, &e, &trials, kale::plot::Options { log_y: a.log_y });
    kale::plot::write(&a.output, &svg).map_err(|why| anyhow::anyhow!(why))?;
    eprintln!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}

fn delete(name: &str, args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    if let Err(c) = load(&store, name) {
        return Ok(c);
    }
    match store.delete_experiment(name) {
        Ok(e) => {
            eprintln!(
                "deleted experiment {} ({} on {})",
                e.spec.name, e.status, e.spec.notebook
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

fn rename(from: &str, to: &str, args: &StoreArgs) -> anyhow::Result<ExitCode> {
    if to.trim().is_empty() || to.contains('/') {
        eprintln!("error: `{to}` cannot name an experiment (empty, or contains `/`)");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    if let Err(c) = load(&store, from) {
        return Ok(c);
    }
    match store.rename_experiment(from, to) {
        Ok(()) => {
            eprintln!("renamed experiment {from} to {to}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}
