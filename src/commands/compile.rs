//! `kale compile`: the pipeline as KFP v2 IR YAML, or as a Katib Experiment; one
//! operation of [`kale::kubeflow::compile`] each, written to a file or stdout.

use kale::kubeflow::compile;

use crate::cli::{CompileArgs, CompileTarget};

use super::load_pipeline;

pub fn run(args: &CompileArgs) -> kale::Result<()> {
    let pipeline = load_pipeline(&args.notebook)?;
    let say = |line: &str| kale::errln!("{line}");
    let text = match args.target {
        CompileTarget::Kfp => compile::kfp_yaml(&args.notebook, pipeline, &say)?,
        CompileTarget::Katib => compile::katib_yaml(
            pipeline,
            args.katib.experiment_name.as_deref(),
            &args.search.plan(),
            args.katib.trial_target(),
            &say,
        )?,
    };
    write_output(args.output.as_deref(), &text)
}

fn write_output(path: Option<&std::path::Path>, text: &str) -> kale::Result<()> {
    match path {
        Some(p) if p != std::path::Path::new("-") => {
            std::fs::write(p, text).map_err(|e| {
                kale::Error::bad_input(format!("cannot write {}", p.display())).caused_by(e)
            })?;
            kale::errln!("wrote {}", p.display());
        }
        _ => kale::output::stdout_bytes(text.as_bytes())?,
    }
    Ok(())
}
