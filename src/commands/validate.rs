use std::process::ExitCode;

use crate::cli::NotebookArgs;

use super::{EXIT_BAD_INPUT, print_diagnostics};

pub fn run(args: &NotebookArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, diags) = kale::pipeline::load(&args.notebook);
    print_diagnostics(&args.notebook, &diags);
    match pipeline {
        Some(p) => {
            let warnings = diags.warnings().count();
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
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let errors = diags.errors().count();
            eprintln!(
                "{}: {errors} error{} found",
                args.notebook.display(),
                plural(errors)
            );
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
