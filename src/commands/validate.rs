use crate::cli::NotebookArgs;

use kale::{Error, ErrorKind};

use super::print_diagnostics;

pub fn run(args: &NotebookArgs) -> kale::Result<()> {
    let (pipeline, diags) = kale::pipeline::load(&args.notebook);
    print_diagnostics(&args.notebook, &diags);
    match pipeline {
        Some(mut p) => {
            super::default_to_own_pod_image(&mut p);
            // What `compile` would warn about the steps' images: a stock Python image
            // and imports kale cannot pin (the notes about what gets installed are
            // compile's to print).
            let (image_warnings, _) =
                kale::kubeflow::kfp::image_messages(&p, &super::step_packages(&p, None));
            for w in &image_warnings {
                eprintln!("warning: {w}");
            }
            let warnings = diags.warnings().count() + image_warnings.len();
            eprintln!(
                "{}: ok — {} step{}, {} parameter{}, {} metric{}{}",
                args.notebook.display(),
                p.steps.len(),
                plural(p.steps.len()),
                p.parameters.len(),
                plural(p.parameters.len()),
                p.metrics.len(),
                plural(p.metrics.len()),
                if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        None => {
            let errors = diags.errors().count();
            eprintln!(
                "{}: {errors} error{} found",
                args.notebook.display(),
                plural(errors)
            );
            Err(Error::reported(ErrorKind::BadInput))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
