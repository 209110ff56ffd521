//! `kale tune`: tuning on this machine with the live view, or on the cluster as a Katib
//! Experiment (`--katib`) with the same view. Each is one library operation
//! ([`kale::tune::local`], [`kale::kubeflow::katib_tune`]); this file turns the flags
//! into its plan and prints what it reports.

use std::sync::Arc;

use kale::events::{Both, Event, EventStream};
use kale::kubeflow::katib_tune::KatibTune;
use kale::render::live::LiveView;
use kale::store::ExperimentStatus;
use kale::tune::TuneReporter;
use kale::tune::local::LocalTune;

use crate::cli::TuneArgs;

pub fn run(args: &TuneArgs) -> kale::Result<()> {
    if args.katib {
        return on_katib(args);
    }
    let pipeline = super::load_pipeline(&args.notebook)?;
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let view = Arc::new(LiveView::new());
    let rt = super::runtime()?;
    let ran = LocalTune::prepare(pipeline, &args.local_plan(), reporter(&view, &events)).and_then(
        |tune| {
            rt.block_on(async {
                let cancel = super::interrupt_signal("stopping running steps");
                // The dashboard serves from this process while the tune runs, and after
                // it until Ctrl-C (below), so a page someone is reading does not go away.
                let dashboard = if args.dashboard {
                    super::serve_dashboard(tune.store_path(), tune.name(), args.dashboard_port)
                        .await
                } else {
                    None
                };
                Ok((tune.run(cancel).await?, dashboard))
            })
        },
    );
    view.finish();
    let (report, dashboard) = ran?;
    if args.json {
        kale::outln!("{}", serde_json::to_string_pretty(&report.document())?)?;
    }
    for line in kale::render::summary::local(&report) {
        kale::errln!("{line}");
    }
    if let Some(url) = dashboard
        && report.outcome.status != ExperimentStatus::Interrupted
    {
        kale::errln!("dashboard: still serving {url} — Ctrl-C to stop");
        rt.block_on(super::wait_for_ctrl_c());
    }
    report.result()
}

/// The live view, and the `--events` stream beside it when there is one.
fn reporter(view: &Arc<LiveView>, events: &Option<Arc<EventStream>>) -> Arc<dyn TuneReporter> {
    match events {
        Some(stream) => Arc::new(Both(view.clone(), stream.clone())),
        None => view.clone(),
    }
}

/// `kale tune --katib`: the Experiment runs on the cluster; kale names it, uploads the
/// pipeline version its trials run, creates it and watches it.
fn on_katib(args: &TuneArgs) -> kale::Result<()> {
    let pipeline = super::load_pipeline(&args.notebook)?;
    let events = super::event_stream(args.events.as_deref(), args.json)?;
    let view = Arc::new(LiveView::new());
    let rt = super::runtime()?;
    let watched = rt.block_on(async {
        let plan = args.katib_plan();
        let tune = KatibTune::prepare(pipeline, &plan, reporter(&view, &events)).await?;
        let detach =
            super::interrupt_signal("detaching; the experiment keeps running on the cluster");
        tune.watch(detach).await
    });
    view.finish();
    let report = watched?;
    if let Some(stream) = &events {
        stream.emit(&Event::katib_finished(&report));
    }
    if args.json {
        kale::outln!("{}", serde_json::to_string_pretty(&report.document())?)?;
    }
    for line in kale::render::summary::katib(&report) {
        kale::errln!("{line}");
    }
    report.result()
}
