//! `kale experiments list|show|compare|plot|delete|rename`: each subcommand is one
//! operation of [`kale::experiments`]; this file prints what it returns.

use kale::experiments::{
    self, CompareRequest, Comparison, KatibListing, Listing, PlotRequest, Shown,
};

use crate::cli::{CompareArgs, ExperimentsCommand, ExperimentsListArgs, PlotArgs, StoreArgs};

pub fn run(cmd: &ExperimentsCommand) -> kale::Result<()> {
    match cmd {
        ExperimentsCommand::List(a) if a.katib => list_katib(a),
        ExperimentsCommand::List(a) => list(&a.store),
        ExperimentsCommand::Show(a) => show(&a.experiment, &a.store),
        ExperimentsCommand::Compare(a) => compare(a),
        ExperimentsCommand::Plot(a) => plot(a),
        ExperimentsCommand::Delete(a) => {
            let e = experiments::delete(&a.store.dir, &a.experiment)?;
            kale::errln!(
                "deleted experiment {} ({} on {})",
                e.spec.name,
                e.status,
                e.spec.notebook
            );
            Ok(())
        }
        ExperimentsCommand::Rename(a) => {
            experiments::rename(&a.store.dir, &a.experiment, &a.new_name)?;
            kale::errln!("renamed experiment {} to {}", a.experiment, a.new_name);
            Ok(())
        }
    }
}

fn list(args: &StoreArgs) -> kale::Result<()> {
    let listing = Listing::of(&args.dir)?;
    if args.json {
        kale::outln!("{}", serde_json::to_string_pretty(&listing.document())?)?;
    } else if listing.is_empty() {
        kale::outln!("no experiments yet")?;
    } else {
        kale::out!("{}", listing.table())?;
        for note in listing.notes() {
            kale::errln!("{note}");
        }
    }
    Ok(())
}

fn show(name: &str, args: &StoreArgs) -> kale::Result<()> {
    let shown = Shown::of(&args.dir, name)?;
    if args.json {
        kale::outln!("{}", serde_json::to_string(&shown.document())?)?;
    } else {
        kale::out!("{}", shown.text())?;
    }
    Ok(())
}

fn compare(a: &CompareArgs) -> kale::Result<()> {
    let comparison = Comparison::of(CompareRequest {
        dir: a.store.dir.clone(),
        experiments: a.experiments.clone(),
        plot: a.plot.clone(),
        log_y: a.log_y,
        objective: a.objective.clone(),
    })?;
    kale::out!("{}", comparison.table())?;
    if let Some(file) = comparison.write_plot()? {
        kale::errln!("wrote {}", file.display());
    }
    Ok(())
}

fn plot(a: &PlotArgs) -> kale::Result<()> {
    experiments::plot(&PlotRequest {
        dir: a.store.dir.clone(),
        experiments: a.experiments.clone(),
        output: a.output.clone(),
        kind: a.kind,
        params: a.params.clone(),
        objective: a.objective.clone(),
        log_y: a.log_y,
    })?;
    kale::errln!("wrote {}", a.output.display());
    Ok(())
}

/// `kale experiments list --katib`: the cluster's Experiments in the namespace.
fn list_katib(args: &ExperimentsListArgs) -> kale::Result<()> {
    let rt = super::runtime()?;
    let listing = rt.block_on(KatibListing::of(
        args.context.as_deref(),
        args.namespace.as_deref(),
    ))?;
    if args.store.json {
        kale::outln!("{}", serde_json::to_string_pretty(&listing.document())?)?;
    } else {
        kale::out!("{}", listing.text())?;
    }
    Ok(())
}
