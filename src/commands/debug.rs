//! `kale debug RUN [STEP]`.

use std::process::ExitCode;

use kale::snapshot::{self, DebugError};
use serde_json::json;

use crate::cli::DebugArgs;

use super::EXIT_BAD_INPUT;
use super::find_run as find;
use kale::report::human_bytes;

/// Exit status when the run's data was pruned: the request was fine, the data is gone.
const EXIT_PRUNED: u8 = 1;

pub fn run(args: &DebugArgs) -> anyhow::Result<ExitCode> {
    let (runs_dir, run) = match find(&args.run, &args.store) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    match snapshot::debug_notebook(
        &runs_dir,
        &run,
        args.step.as_deref(),
        args.output.as_deref(),
    ) {
        Ok(written) => {
            for w in &written.warnings {
                eprintln!("warning: {w}");
            }
            if args.store.json {
                println!("{}", serde_json::to_string_pretty(&json!(written))?);
            } else {
                eprintln!(
                    "debug notebook for step `{}` ({}) of run {}:",
                    written.step,
                    written.status.as_str(),
                    written.run_id
                );
                println!("{}", written.path.display());
                eprintln!(
                    "next: jupyter lab {}",
                    shell_quote(&written.path.display().to_string())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(DebugError::Usage(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
        Err(e @ DebugError::Pruned { .. }) => {
            eprintln!("error: {e}");
            if let DebugError::Pruned { missing, .. } = &e {
                for o in missing {
                    eprintln!(
                        "  gone: `{}` (saved by step `{}`, {}, {})",
                        o.name,
                        o.step,
                        o.bytes
                            .map(human_bytes)
                            .unwrap_or_else(|| "size unknown".into()),
                        o.hash
                    );
                }
            }
            eprintln!(
                "  hint: `kale cache prune` removed it; run the notebook again to recreate it, and `kale runs pin RUN` to keep a run's data through pruning"
            );
            Ok(ExitCode::from(EXIT_PRUNED))
        }
        Err(DebugError::Io(e)) => Err(e.into()),
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
