//! The text tables and blocks of `kale experiments` and `kale runs`.

use crate::store::TrialStatus;
use std::fmt::Write as _;

use serde_json::Value;

use crate::exec::manifest::now;
use crate::format::human_bytes;
use crate::query::{self, pareto_front};
use crate::snapshot::Run;
use crate::store::{Experiment, TrialRow};
use crate::tune::{params_text, trial_line};
use kale_search::importance::ParamImportance;

/// Succeeded, failed, and all trials but the interrupted ones (which do not count
/// towards the budget).
pub fn counts(trials: &[TrialRow]) -> (usize, usize, usize) {
    (
        query::count(trials, TrialStatus::Succeeded),
        query::count(trials, TrialStatus::Failed),
        query::counted(trials),
    )
}

/// `kale experiments list`: one row per experiment with its best value.
pub fn experiments(rows: &[(Experiment, Vec<TrialRow>, Option<f64>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<11} {:<22} {:>8} {:>12}  {:<10} notebook",
        "EXPERIMENT", "STATUS", "OBJECTIVE", "TRIALS", "BEST", "ALGORITHM"
    );
    for (e, trials, best) in rows {
        let (ok, failed, total) = counts(trials);
        let multi = e.spec.objectives.len() > 1;
        let objective = if multi {
            e.spec
                .objectives
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!(
                "{} {}",
                if e.spec.direction == kale_search::Direction::Minimize {
                    "min"
                } else {
                    "max"
                },
                e.spec.objective
            )
        };
        // Several objectives have no best value: the size of the Pareto front instead.
        let best = if multi {
            format!("front {}", pareto_front(trials, &e.spec.objectives).len())
        } else {
            best.map(|b| format!("{b:.6}"))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "{:<24} {:<11} {:<22} {:>8} {:>12}  {:<10} {}",
            e.spec.name,
            e.status,
            objective,
            format!("{total} ({failed}✗)").replace(" (0✗)", ""),
            best,
            e.spec.algorithm,
            e.spec.notebook
        );
        let _ = ok;
    }
    out
}

/// `kale experiments show`: settings, space, best trial, importance, then every trial.
pub fn experiment(
    e: &Experiment,
    trials: &[TrialRow],
    best: Option<&TrialRow>,
    importance: &[(String, Result<Vec<ParamImportance>, String>)],
    notes: &std::collections::BTreeMap<Option<i64>, String>,
) -> String {
    let mut out = String::new();
    settings_block(&mut out, e);
    space_block(&mut out, e);
    let (ok, failed, total) = counts(trials);
    let _ = writeln!(
        out,
        "trials     {total} of {} ({ok} succeeded, {failed} failed), {} at once, {:.1}s",
        e.spec.max_trials,
        e.spec.parallel,
        e.wall_seconds_now()
    );
    let multi = e.spec.objectives.len() > 1;
    let names: Vec<String> = e.spec.objectives.iter().map(|o| o.name.clone()).collect();
    let front = if multi {
        pareto_front(trials, &e.spec.objectives)
    } else {
        Vec::new()
    };
    if multi {
        front_block(&mut out, &front, &names);
    }
    if let Some(b) = best.filter(|_| !multi) {
        let _ = writeln!(
            out,
            "best       trial {}: {}={} {}",
            b.number,
            e.spec.objective,
            crate::format::num(b.value.unwrap_or(f64::NAN)),
            params_text(&b.params)
        );
        if let Some(dir) = &b.run_dir {
            let _ = writeln!(out, "           {dir}");
        }
    }
    let several = importance.len() > 1;
    for (objective, result) in importance {
        let of = if several {
            format!(" of {objective}")
        } else {
            String::new()
        };
        importance_lines(&mut out, &of, result);
    }
    if let Some(note) = notes.get(&None) {
        let _ = writeln!(out, "note       {}", note.replace('\n', "\n           "));
    }
    for (trial, note) in notes.iter().filter_map(|(k, v)| Some((k.as_ref()?, v))) {
        let _ = writeln!(out, "note       trial {trial}: {}", note.replace('\n', " "));
    }
    let _ = writeln!(out);
    for t in trials {
        let mark = if multi {
            if front.iter().any(|f| f.number == t.number) {
                "◆"
            } else {
                " "
            }
        } else if Some(t.number) == best.map(|b| b.number) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(out, "{mark}{}", trial_line(t, &names));
    }
    out
}

/// The experiment's name and state, notebook, objectives, constraints and algorithm.
fn settings_block(out: &mut String, e: &Experiment) {
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
    if e.spec.objectives.len() > 1 {
        let _ = writeln!(
            out,
            "objectives {}",
            crate::tune::objectives_text(&e.spec.objectives)
        );
    } else {
        let _ = writeln!(
            out,
            "objective  {} {}{}",
            e.spec.direction.as_str(),
            e.spec.objective,
            e.spec
                .goal
                .map(|g| format!(" (goal {g})"))
                .unwrap_or_default()
        );
    }
    if !e.spec.constraints.is_empty() {
        let _ = writeln!(
            out,
            "constraints {}",
            e.spec
                .constraints
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
                        crate::format::value_text(&s["value"])
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
}

/// The search space as a table (the stored JSON when it no longer parses).
fn space_block(out: &mut String, e: &Experiment) {
    let rows = crate::query::space_rows(e);
    if rows.is_empty() {
        let _ = writeln!(out, "space      {}", e.spec.space);
        return;
    }
    let w = |f: &dyn Fn(&crate::query::SpaceRow) -> String, min: usize| {
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

/// The Pareto front of a multi-objective experiment, one line per trial.
fn front_block(out: &mut String, front: &[&TrialRow], names: &[String]) {
    let _ = writeln!(
        out,
        "front      {} trial{} (feasible, non-dominated; marked ◆ below)",
        front.len(),
        if front.len() == 1 { "" } else { "s" }
    );
    for t in front {
        let values: Vec<String> = names
            .iter()
            .zip(&t.values)
            .map(|(n, v)| format!("{n}={}", crate::format::num(*v)))
            .collect();
        let _ = writeln!(
            out,
            "           trial {}: {}  {}",
            t.number,
            values.join(" "),
            params_text(&t.params)
        );
    }
}

fn hit_rate(trials: &[TrialRow]) -> String {
    let hits: i64 = trials.iter().map(|x| x.cache_hits).sum();
    let all: i64 = trials.iter().map(|x| x.cache_hits + x.cache_misses).sum();
    if all == 0 {
        "-".into()
    } else {
        format!("{:.0}% ({hits}/{all})", 100.0 * hits as f64 / all as f64)
    }
}

/// fANOVA importance as bars, or why there is none.
fn importance_lines(out: &mut String, of: &str, result: &Result<Vec<ParamImportance>, String>) {
    match result {
        Ok(imp) => {
            let _ = writeln!(out, "importance{of} (fANOVA)");
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
            let _ = writeln!(out, "importance{of} -  ({why})");
        }
    }
}

/// `kale experiments compare`: one column per experiment.
/// With several objectives, `objective` names the one the best-trial rows are about
/// (each experiment's first when `None` or when it has none by that name); the front's
/// size and every objective are listed too.
pub fn comparison(columns: &[(Experiment, Vec<TrialRow>)], objective: Option<&str>) -> String {
    use super::svg::Target;
    let targets: Vec<Target> = columns
        .iter()
        .map(|(e, _)| Target::of(e, objective))
        .collect();
    let bests: Vec<Option<(&TrialRow, f64)>> = columns
        .iter()
        .zip(&targets)
        .map(|((_, t), target)| target.best(t))
        .collect();
    let any_multi = columns.iter().any(|(e, _)| e.spec.objectives.len() > 1);
    let each = |f: &dyn Fn(usize) -> String| -> Vec<String> { (0..columns.len()).map(f).collect() };
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("algorithm", each(&|i| columns[i].0.spec.algorithm.clone())),
        (
            "objective",
            each(&|i| format!("{} {}", targets[i].direction.as_str(), targets[i].name)),
        ),
    ];
    if any_multi {
        rows.push((
            "objectives",
            each(&|i| crate::tune::objectives_text(&columns[i].0.spec.objectives)),
        ));
        rows.push((
            "front",
            each(&|i| {
                let (e, t) = &columns[i];
                if e.spec.objectives.len() > 1 {
                    format!("{} trials", pareto_front(t, &e.spec.objectives).len())
                } else {
                    "-".into()
                }
            }),
        ));
    }
    rows.extend([
        ("status", each(&|i| columns[i].0.status.to_string())),
        (
            "trials",
            each(&|i| {
                let (ok, f, total) = counts(&columns[i].1);
                format!("{total} ({ok} ok, {f} failed)")
            }),
        ),
        (
            "best value",
            each(&|i| bests[i].map_or("-".into(), |(_, v)| format!("{v:.6}"))),
        ),
        (
            "best trial",
            each(&|i| bests[i].map_or("-".into(), |(b, _)| b.number.to_string())),
        ),
        (
            "best params",
            each(&|i| bests[i].map_or("-".into(), |(b, _)| params_text(&b.params))),
        ),
        (
            "wall time",
            each(&|i| format!("{:.1}s", columns[i].0.wall_seconds_now())),
        ),
        ("cache hit rate", each(&|i| hit_rate(&columns[i].1))),
    ]);
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
    out
}

/// `kale experiments list --katib`.
pub fn katib_experiments(views: &[crate::kubeflow::katib_view::ExperimentView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<11} {:<22} {:>10} {:>8} {:>12}  ALGORITHM",
        "EXPERIMENT", "STATUS", "OBJECTIVE", "TRIALS", "RUNNING", "BEST"
    );
    for e in views {
        let _ = writeln!(
            out,
            "{:<32} {:<11} {:<22} {:>10} {:>8} {:>12}  {}",
            e.name,
            e.phase,
            format!(
                "{} {}",
                if e.direction == kale_search::Direction::Minimize {
                    "min"
                } else {
                    "max"
                },
                e.objective
            ),
            format!("{}/{} ({}✗)", e.trials, e.max_trials, e.failed).replace(" (0✗)", ""),
            e.running,
            e.best
                .as_ref()
                .and_then(|b| b.value)
                .map(|b| format!("{b:.6}"))
                .unwrap_or_else(|| "-".into()),
            e.algorithm
        );
    }
    out
}

/// `kale runs list`.
pub fn runs(runs: &[Run]) -> String {
    let mut out = String::new();
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
    let mut line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

pub fn ago(t: f64) -> String {
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

/// `kale runs show`: the run, then each step's inputs, outputs and error.
pub fn run(run: &Run, doc: &Value) -> String {
    let mut out = String::new();
    let m = &run.manifest;
    let _ = writeln!(out, "run         {}", m.run_id);
    if let Some(t) = run.trial_label() {
        let _ = writeln!(out, "trial       {t}");
    }
    let _ = writeln!(out, "notebook    {}", m.notebook.display());
    let took = m
        .finished_at
        .map(|f| format!(", took {:.1}s", f - m.started_at))
        .unwrap_or_default();
    let _ = writeln!(
        out,
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
        let _ = writeln!(out, "parameters  {}", params.join(" "));
    }
    if !m.metrics.is_empty() {
        let metrics: Vec<String> = m.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "metrics     {}", metrics.join(" "));
    }
    let missing = doc["data"]["missing"].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "data        {}{}",
        if missing == 0 {
            "complete".to_string()
        } else {
            format!("{missing} objects pruned")
        },
        if m.pinned { " (pinned)" } else { "" }
    );
    let _ = writeln!(out, "dir         {}", run.dir.display());
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
        let _ = writeln!(
            out,
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
            let _ = writeln!(out, "  in   {}", object_line(o, &from));
        }
        for o in step["outputs"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  out  {}", object_line(o, "→"));
        }
        if let Some(e) = &record.error {
            let at = match (e.cell, e.line) {
                (Some(c), Some(l)) => format!(" (cell {c}, line {l})"),
                _ => String::new(),
            };
            let _ = writeln!(out, "  error {}: {}{at}", e.kind, e.message);
        }
    }
    out
}
