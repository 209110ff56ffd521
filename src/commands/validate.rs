use crate::cli::ValidateArgs;

use kale::diagnostics::Diagnostic;
use kale::{Error, ErrorKind};
use serde_json::json;

use super::print_diagnostics;

pub fn run(args: &ValidateArgs) -> kale::Result<()> {
    let (pipeline, mut diags) = super::load_source(&args.notebook, &args.source)?;
    if args.json {
        // Located problems for editors (the JupyterLab panel): the same checks as the
        // text form, and the pipeline when it builds, so one call serves both views.
        let mut doc = json!({"notebook": args.notebook, "pipeline": null});
        if let Some(mut p) = pipeline {
            super::default_to_own_pod_image(&mut p);
            for w in image_warnings(&p) {
                diags.push(Diagnostic::warning(w));
            }
            doc["pipeline"] = kale::inspect::to_json(&p, &diags);
        }
        let errors = diags.errors().count();
        doc["ok"] = json!(errors == 0);
        doc["errors"] = json!(errors);
        doc["warnings"] = json!(diags.warnings().count());
        doc["diagnostics"] = json!(diags.sorted());
        kale::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return if errors == 0 {
            Ok(())
        } else {
            Err(Error::reported(ErrorKind::BadInput))
        };
    }
    print_diagnostics(&args.notebook, &diags);
    match pipeline {
        Some(mut p) => {
            super::default_to_own_pod_image(&mut p);
            let image_warnings = image_warnings(&p);
            for w in &image_warnings {
                kale::errln!("warning: {w}");
            }
            let warnings = diags.warnings().count() + image_warnings.len();
            kale::errln!(
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
            kale::errln!(
                "{}: {errors} error{} found",
                args.notebook.display(),
                plural(errors)
            );
            Err(Error::reported(ErrorKind::BadInput))
        }
    }
}

/// What `compile` would warn about the steps' images: a stock Python image and imports
/// kale cannot pin (the notes about what gets installed are compile's to print).
fn image_warnings(p: &kale::pipeline::Pipeline) -> Vec<String> {
    kale::kubeflow::kfp::image_messages(p, &kale::kubeflow::packages::for_steps(p, None)).0
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
