//! `kale run`: the notebook's pipeline once on this machine, with a line per step (or
//! the `--events` stream beside it). The run is one library operation
//! ([`kale::run::LocalRun`]); this file turns the flags into its plan and prints what
//! it reports.

use std::sync::Arc;

use kale::events::{Both, Event};
use kale::exec;
use kale::render::live::TerminalReporter;
use kale::run::LocalRun;

use crate::cli::RunArgs;

pub fn run(args: &RunArgs) -> kale::Result<()> {
    let pipeline = super::load_pipeline(&args.notebook)?;
    let run = LocalRun::prepare(pipeline, &args.plan(), &|line| kale::errln!("{line}"))?;
    let p = run.pipeline();
    let names: Vec<String> = p.steps.iter().map(|s| s.name.clone()).collect();
    let terminal = Arc::new(TerminalReporter::new(p.steps.len(), !args.quiet, &names));
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let reporter: Arc<dyn exec::Reporter> = match &events {
        Some(stream) => {
            stream.emit(&Event::run_started(&args.notebook, p));
            Arc::new(Both(terminal.clone(), stream.clone()))
        }
        None => terminal.clone(),
    };
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let cancel = super::interrupt_signal("stopping running steps");
        run.run(reporter, cancel).await
    })?;
    terminal.finish();
    if let Some(stream) = &events {
        stream.emit(&Event::run_finished(&report));
    }
    let metrics = &report.outcome.manifest.metrics;
    let events_on_stdout = args.events.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if args.json {
        kale::outln!("{}", serde_json::to_string_pretty(&report.document())?)?;
    } else if !metrics.is_empty() && !events_on_stdout {
        // (With `--events -`, stdout carries the events only; `run_finished` has them.)
        kale::outln!("metrics")?;
        for (name, value) in metrics {
            kale::outln!("  {name:<20} {value}")?;
        }
    }
    for line in kale::render::summary::run(&report) {
        kale::errln!("{line}");
    }
    report.result()
}
