//! What `kale tune` writes on stderr before its first trial (the header) and after its
//! last (the summary), locally and on Katib.

use crate::kubeflow::katib_tune::KatibReport;
use crate::run::RunReport;
use crate::store::{ExperimentStatus, TrialStatus};
use crate::tune::local::{LocalReport, Started};
use crate::tune::{objectives_text, params_text, trial_line};

/// `experiment NAME: maximize `acc` (direction from ...), tpe over lr, depth (space from
/// ...), 20 trials, 2 at once`, then the Python that runs the steps.
pub fn header(s: &Started) -> Vec<String> {
    let search = &s.search;
    let names: Vec<&str> = search
        .space
        .parameters()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let objectives = if search.is_multi() {
        format!(
            "{} objectives {}",
            search.objectives.len(),
            objectives_text(&search.objectives)
        )
    } else {
        format!(
            "{} `{}` (direction from {})",
            search.direction.as_str(),
            search.objective,
            search.direction_source,
        )
    };
    let constraints = if search.constraints.is_empty() {
        String::new()
    } else {
        format!(
            ", subject to {}",
            search
                .constraints
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    vec![
        format!(
            "experiment {}: {objectives}{constraints}, {} over {} (space from {}), {} trials, {} at once{}{}",
            s.experiment,
            match &search.algorithm_reason {
                Some(why) => format!("auto: {} ({why})", search.algorithm),
                None => search.algorithm.clone(),
            },
            names.join(", "),
            search.space_source,
            search.max_trials,
            search.parallel,
            s.limited
                .as_ref()
                .map(|why| format!(" (at most {why})"))
                .unwrap_or_default(),
            search
                .goal
                .map(|g| format!(", stop at {g}"))
                .unwrap_or_default()
        ),
        format!("  {}", s.python.header()),
    ]
}

/// How a local tune ended: counts, the best trial or the Pareto front, and what to do
/// next when something calls for it.
pub fn local(r: &LocalReport) -> Vec<String> {
    let (o, search, name) = (&r.outcome, &r.started.search, r.name());
    let mut out = vec![format!(
        "experiment {name} {}: {} — {} succeeded, {} failed{}, cache {} hits / {} misses, {:.1}s",
        o.status,
        o.reason,
        r.count(TrialStatus::Succeeded),
        r.count(TrialStatus::Failed),
        match r.count(TrialStatus::EarlyStopped) {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        o.cache_hits,
        o.cache_misses,
        o.experiment.wall_seconds
    )];
    let names: Vec<String> = search.objectives.iter().map(|o| o.name.clone()).collect();
    match &o.best {
        _ if search.is_multi() => {
            if o.front.is_empty() {
                out.push("no feasible trial succeeded".into());
            } else {
                out.push(format!(
                    "Pareto front: {} trial{} (feasible, non-dominated)",
                    o.front.len(),
                    if o.front.len() == 1 { "" } else { "s" }
                ));
                for t in &o.front {
                    out.push(format!("  {}", trial_line(t, &names)));
                }
                out.push(format!(
                    "  pick one with: kale run {} --params-from {name}/TRIAL",
                    r.started.notebook.display()
                ));
            }
        }
        Some(best) => out.push(format!(
            "best: trial {} {}={} with {}\n  run: {}",
            best.number,
            search.objective,
            crate::format::num(best.value.unwrap_or(f64::NAN)),
            params_text(&best.params),
            best.run_dir.as_deref().unwrap_or("-")
        )),
        None if !search.constraints.is_empty() && r.count(TrialStatus::Succeeded) > 0 => {
            out.push("no succeeded trial met the constraints".into())
        }
        None => out.push("no trial succeeded".into()),
    }
    if o.trials.iter().any(|t| {
        t.error
            .as_deref()
            .is_some_and(|e| e.contains(": ModuleNotFoundError: "))
    }) {
        out.push(r.started.python.module_not_found_hint());
    }
    // Early stopping compares intermediate values; without them it never acts.
    let finished = o
        .trials
        .iter()
        .filter(|t| matches!(t.status, TrialStatus::Succeeded | TrialStatus::EarlyStopped));
    if search.early_stopping.is_some()
        && finished.clone().count() > 0
        && finished.clone().all(|t| t.intermediate.is_empty())
    {
        out.push(format!(
            "warning: --early-stopping had nothing to compare: no step printed an intermediate `{obj}=VALUE` line\n  hint: print `{obj}=<value>` (e.g. `print(f\"{obj}={{{obj}}}\")`) after each epoch or step of the training loop",
            obj = search.objective
        ));
    }
    if o.status == ExperimentStatus::Interrupted {
        out.push(format!(
            "resume with: kale tune {} --name {name} --resume",
            r.started.notebook.display()
        ));
    }
    out
}

/// How the watch of a Katib Experiment ended: counts, Katib's best trial, and how to
/// watch it again after a detach.
pub fn katib(r: &KatibReport) -> Vec<String> {
    let (w, c) = (&r.watched, r.watched.counts());
    let exp = &w.experiment;
    let mut out = vec![format!(
        "experiment {} {}: {} — {} succeeded, {} failed{}{}{}",
        r.name,
        exp.phase,
        r.reason(),
        c.succeeded,
        c.failed,
        match c.early_stopped {
            0 => String::new(),
            n => format!(", {n} stopped early"),
        },
        match c.running {
            0 => String::new(),
            n => format!(", {n} running"),
        },
        w.seconds()
            .map(|s| format!(", {s:.1}s"))
            .unwrap_or_default(),
    )];
    out.push(match &exp.best {
        Some(best) => format!(
            "best: trial {} ({}) {}={} with {}",
            w.number_of(&best.trial)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            best.trial,
            exp.objective,
            best.value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            params_text(&best.params)
        ),
        None if w.detached => "no trial succeeded yet".into(),
        None => "no trial succeeded".into(),
    });
    if w.detached {
        out.push(format!("reattach with: {}", r.reattach));
    }
    out
}

/// How `kale run` ended: the failed step with its cell, line and log (and, for a
/// missing module, which Python ran the steps), then the run's one-line summary.
pub fn run(r: &RunReport) -> Vec<String> {
    let (o, m) = (&r.outcome, &r.outcome.manifest);
    let mut out = Vec::new();
    if let Some((step, err)) = &o.failure {
        out.push(step_failure(&r.notebook, step, err, &o.run_dir));
        if err.kind == "ModuleNotFoundError" {
            out.push(format!("  {}", r.python.module_not_found_hint()));
        }
    }
    out.push(format!(
        "run {} {} in {:.2}s — {}",
        m.run_id,
        m.status.as_str(),
        r.seconds(),
        o.run_dir.display()
    ));
    out
}

/// `error: step `train` failed at nb.ipynb: cell 4, line 2`, the line's code, the
/// error and where the step's log is.
pub fn step_failure(
    notebook: &std::path::Path,
    step: &str,
    err: &crate::exec::StepError,
    run_dir: &std::path::Path,
) -> String {
    let mut out = match (err.cell, err.line) {
        (Some(cell), Some(line)) => format!(
            "error: step `{step}` failed at {}: cell {cell}, line {line}",
            notebook.display()
        ),
        _ => format!("error: step `{step}` failed ({})", notebook.display()),
    };
    if let Some(code) = &err.code {
        out.push_str(&format!("\n    {code}"));
    }
    out.push_str(&format!("\n  {}: {}", err.kind, err.message));
    out.push_str(&format!(
        "\n  log: {}",
        crate::layout::step_dir(run_dir, step)
            .join("stderr.log")
            .display()
    ));
    out
}
