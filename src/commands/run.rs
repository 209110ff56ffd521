use std::collections::BTreeMap;
use std::sync::Arc;

use kale::exec::{self, RunOptions, RunStatus};
use kale::{Error, ErrorKind};
use serde_json::json;

use crate::cli::RunArgs;

use kale::events::{Both, Event, Failure, FinishedStep, PlannedStep};
use kale::render::live::TerminalReporter;

pub fn run(args: &RunArgs) -> kale::Result<()> {
    let pipeline = super::load_pipeline(&args.notebook)?;
    let mut overrides = BTreeMap::new();
    let mut texts = Vec::new();
    if let Some(spec) = &args.params_from {
        let t = kale::tune::params_from(&args.notebook, spec)?;
        kale::errln!("parameters from {spec}: {}", t.join(" "));
        texts = t;
    }
    // Explicit -p flags come last, so they win over --params-from.
    texts.extend(args.params.iter().cloned());
    for text in &texts {
        let (name, value) = kale::pipeline::parse_override(&pipeline, text)
            .map_err(|(message, hint)| Error::bad_input(message).with_hint(hint))?;
        overrides.insert(name, value);
    }
    let python = kale::machine::StepPython::find(args.python.python.as_deref())?;
    let interpreter = python.interpreter.clone();
    if let Some(step) = pipeline.steps.iter().find(|s| s.ipython_at.is_some())
        && !interpreter.has_ipython
    {
        let (cell, line) = step.ipython_at.unwrap();
        return Err(Error::bad_input(format!(
            "{}: cell {cell}, line {line}: step `{}` uses IPython syntax, but IPython is not installed in {}",
            args.notebook.display(),
            step.name,
            interpreter.executable.display(),
        ))
        .with_hint(format!(
            "`{} -m pip install ipython`, or rewrite the line as plain Python",
            interpreter.executable.display()
        )));
    }
    // Printed even with --quiet (which silences step output): which Python runs the
    // steps is the first thing to check when one fails on a missing module.
    kale::errln!(
        "run {}: {} steps, {}",
        args.notebook.display(),
        pipeline.steps.len(),
        python.header()
    );
    let python_doc = python.to_json();
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let resources = args
        .resources
        .settings()
        .pool(&args.notebook, &pipeline, 1, jobs)?;
    let opts = RunOptions {
        values: exec::parameter_values(&pipeline, &overrides),
        interpreter,
        jobs,
        runs_dir: exec::default_runs_dir(&args.notebook),
        run_id: None,
        cache: Some(Arc::new(exec::cache::Cache::open(
            &exec::cache::Cache::default_root(&args.notebook),
        )?)),
        reuse: !args.no_cache,
        experiment: None,
        fork_server: exec::fork_server::ForkServerSlot::for_pipeline(&pipeline),
        resources: Some(resources),
    };
    let names: Vec<String> = pipeline.steps.iter().map(|s| s.name.clone()).collect();
    let terminal = Arc::new(TerminalReporter::new(
        pipeline.steps.len(),
        !args.quiet,
        &names,
    ));
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let events_on_stdout = args.events.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let reporter: Arc<dyn exec::Reporter> = match &events {
        Some(stream) => {
            stream.emit(&Event::RunStarted {
                notebook: args.notebook.clone(),
                steps: pipeline
                    .steps
                    .iter()
                    .map(|s| PlannedStep {
                        name: s.name.clone(),
                        depends_on: s.depends_on.clone(),
                        cells: s.cells.clone(),
                    })
                    .collect(),
            });
            Arc::new(Both(terminal.clone(), stream.clone()))
        }
        None => terminal.clone(),
    };
    let rt = super::runtime()?;
    let outcome = rt.block_on(async {
        let cancel = super::interrupt_signal("stopping running steps");
        exec::run(&pipeline, &opts, reporter, cancel).await
    })?;
    terminal.finish();
    let m = &outcome.manifest;
    let seconds = m.finished_at.unwrap_or(m.started_at) - m.started_at;
    if let Some(stream) = &events {
        stream.emit(&Event::RunFinished {
            run_id: m.run_id.clone(),
            status: m.status,
            seconds,
            metrics: m.metrics.clone(),
            steps: m
                .steps
                .iter()
                .map(|s| FinishedStep {
                    name: s.name.clone(),
                    status: s.status,
                    seconds: s.seconds,
                    cache_note: s.cache_note.clone(),
                })
                .collect(),
            error: outcome
                .failure
                .as_ref()
                .map(|(step, err)| Failure::new(step, err)),
            run_dir: outcome.run_dir.clone(),
        });
    }
    if args.json {
        let mut doc = json!({
            "run_id": m.run_id,
            "status": m.status.as_str(),
            "metrics": m.metrics,
            "steps": m.steps.iter().map(|s| {
                let mut step = json!({"name": s.name, "status": s.status.as_str(), "seconds": s.seconds});
                if let Some(note) = &s.cache_note {
                    step["cache_note"] = json!(note);
                }
                step
            }).collect::<Vec<_>>(),
            "run_dir": outcome.run_dir,
            "python": python_doc,
        });
        if let Some((step, err)) = &outcome.failure {
            doc["error"] = json!({"step": step, "type": err.kind, "message": err.message, "cell": err.cell, "line": err.line});
        }
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if !m.metrics.is_empty() && !events_on_stdout {
        // (With `--events -`, stdout carries the events only; `run_finished` has them.)
        kale::outln!("metrics")?;
        for (name, value) in &m.metrics {
            kale::outln!("  {name:<20} {value}")?;
        }
    }
    if let Some((step, err)) = &outcome.failure {
        kale::errln!(
            "{}",
            describe_failure(&args.notebook, step, err, &outcome.run_dir)
        );
        if err.kind == "ModuleNotFoundError" {
            kale::errln!("  {}", python.module_not_found_hint());
        }
    }
    kale::errln!(
        "run {} {} in {seconds:.2}s — {}",
        m.run_id,
        m.status.as_str(),
        outcome.run_dir.display()
    );
    if let Some((step, err)) = &outcome.failure
        && err.is_disk_error()
    {
        return Err(Error::environment(format!(
            "step `{step}` failed: the disk refused a write"
        ))
        .caused_by(&err.message)
        .with_hint(
            "free space on that disk (or make it writable), then run again; steps that finished are cached",
        ));
    }
    // The failure, if any, was described above with its step, cell and line.
    match m.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Interrupted => Err(Error::reported(ErrorKind::Interrupted)),
        _ => Err(Error::reported(ErrorKind::Failed)),
    }
}

pub fn describe_failure(
    notebook: &std::path::Path,
    step: &str,
    err: &kale::exec::StepError,
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
        kale::layout::step_dir(run_dir, step)
            .join("stderr.log")
            .display()
    ));
    out
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
