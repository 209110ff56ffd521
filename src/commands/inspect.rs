use crate::cli::InspectArgs;

use kale::{Error, ErrorKind};

use super::print_diagnostics;

pub fn run(args: &InspectArgs) -> kale::Result<()> {
    let (pipeline, diags) = super::load_source(&args.notebook, &args.source)?;
    let Some(p) = pipeline else {
        print_diagnostics(&args.notebook, &diags);
        return Err(Error::reported(ErrorKind::BadInput));
    };
    if args.json {
        // Warnings travel inside the JSON document; stderr stays quiet for scripts.
        kale::outln!(
            "{}",
            serde_json::to_string_pretty(&kale::inspect::to_json(&p, &diags))?
        )?;
    } else {
        print_diagnostics(&args.notebook, &diags);
        kale::out!("{}", kale::inspect::to_text(&p))?;
    }
    Ok(())
}
