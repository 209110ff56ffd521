//! `kale validate`: the notebook's problems, located, and a summary line or the JSON
//! document editors read; one operation ([`kale::validate::Validation`]).

use kale::validate::Validation;

use crate::cli::ValidateArgs;

use super::print_diagnostics;

pub fn run(args: &ValidateArgs) -> kale::Result<()> {
    let (pipeline, diags) = super::load_source(&args.notebook, &args.source)?;
    let validation = Validation::of(&args.notebook, pipeline, diags);
    if args.json {
        if let Some(line) = validation.pod_image_line() {
            kale::errln!("{line}");
        }
        kale::outln!("{}", serde_json::to_string_pretty(&validation.document())?)?;
    } else {
        print_diagnostics(&args.notebook, validation.diagnostics());
        if let Some(line) = validation.pod_image_line() {
            kale::errln!("{line}");
        }
        for line in validation.summary() {
            kale::errln!("{line}");
        }
    }
    validation.result(args.json)
}
