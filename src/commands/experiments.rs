//! `kale experiments list|show|compare|plot`, read from the experiment store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kale::store::{Experiment, Store, TrialRow};
use kale::tune::{best_trial, params_text, trial_line};
use kale_search::Direction;
use serde_json::json;

use crate::cli::{ExperimentsCommand, StoreArgs};

use super::EXIT_BAD_INPUT;

pub fn run(cmd: &ExperimentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExperimentsCommand::List(a) if a.katib => super::katib::list(a),
        ExperimentsCommand::List(a) => list(&a.store),
        ExperimentsCommand::Show(a) => show(&a.experiment, &a.store),
        ExperimentsCommand::Compare(a) => compare(&a.experiments, &a.store),
        ExperimentsCommand::Plot(a) => plot(&a.experiment, &a.output, &a.store),
    }
}

/// `.kale/kale.db` for a directory or a notebook path.
pub fn store_path(dir: &Path) -> PathBuf {
    if dir.is_file() {
        Store::default_path(dir)
    } else {
        dir.join(".kale").join("kale.db")
    }
}

fn open(args: &StoreArgs) -> Result<Store, ExitCode> {
    let path = store_path(&args.dir);
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
    if args.json {
        let doc = json!({"experiment": e, "best": best.map(|b| b.number), "trials": trials});
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
    let _ = writeln!(out, "algorithm  {} {}", e.spec.algorithm, e.spec.settings);
    let _ = writeln!(out, "space      {}", e.spec.space);
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
            b.value.unwrap_or(f64::NAN),
            params_text(&b.params)
        );
        if let Some(dir) = &b.run_dir {
            let _ = writeln!(out, "           {dir}");
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

fn compare(names: &[String], args: &StoreArgs) -> anyhow::Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

fn plot(name: &str, output: &Path, args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let store = match open(args) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let (e, trials) = match load(&store, name) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    let svg = history_svg(&e, &trials);
    std::fs::write(output, svg)
        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", output.display()))?;
    eprintln!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// Each succeeded trial's objective as a dot and the best so far as a step line.
pub fn history_svg(e: &Experiment, trials: &[TrialRow]) -> String {
    let (w, h) = (760.0_f64, 420.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0);
    let points: Vec<(f64, f64)> = trials
        .iter()
        .filter(|t| t.status == "succeeded")
        .filter_map(|t| Some((t.number as f64, t.value?)))
        .collect();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="22" font-size="15" font-weight="bold">{} — {} {} by trial</text>"#,
        xml(&e.spec.name),
        e.spec.direction,
        xml(&e.spec.objective)
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no succeeded trials yet</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    let max_x = trials.iter().map(|t| t.number).max().unwrap_or(0).max(1) as f64;
    let (mut lo, mut hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    if (hi - lo).abs() < 1e-12 {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let px = |x: f64| left + (x / max_x) * (w - left - right);
    let py = |y: f64| top + (1.0 - (y - lo) / (hi - lo)) * (h - top - bottom);
    // Axes and grid.
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    for i in 0..=5 {
        let v = lo + (hi - lo) * i as f64 / 5.0;
        let y = py(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##,
            w - right
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
    let step = (max_x / 10.0).ceil().max(1.0);
    let mut x = 0.0;
    while x <= max_x {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            h - bottom + 18.0,
            x as i64
        );
        x += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">trial</text>"#,
        (left + w - right) / 2.0,
        h - 10.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        xml(&e.spec.objective)
    );
    // Best so far.
    let dir = direction(e);
    let mut best: Option<f64> = None;
    let mut path = String::new();
    for (x, y) in &points {
        let next = match best {
            Some(b) if !dir.better(*y, b) => b,
            _ => *y,
        };
        if let Some(b) = best {
            let _ = write!(path, " L{:.1},{:.1}", px(*x), py(b));
        }
        let _ = write!(
            path,
            "{}{:.1},{:.1}",
            if path.is_empty() { "M" } else { " L" },
            px(*x),
            py(next)
        );
        best = Some(next);
    }
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#d62728" stroke-width="2"/>"##
    );
    for (x, y) in &points {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#1f77b4" fill-opacity="0.75"/>"##,
            px(*x),
            py(*y)
        );
    }
    let failed = trials.iter().filter(|t| t.status == "failed").count();
    let _ = writeln!(
        svg,
        r##"<circle cx="{}" cy="30" r="4" fill="#1f77b4"/><text x="{}" y="34">trial objective</text>"##,
        w - 260.0,
        w - 250.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="30" x2="{}" y2="30" stroke="#d62728" stroke-width="2"/><text x="{}" y="34">best so far{}</text>"##,
        w - 150.0,
        w - 130.0,
        w - 125.0,
        if failed > 0 {
            format!(" ({failed} failed not shown)")
        } else {
            String::new()
        }
    );
    svg.push_str("</svg>\n");
    svg
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
