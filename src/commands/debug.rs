//! `kale debug RUN [STEP]`.

use kale::snapshot;
use serde_json::json;

use crate::cli::DebugArgs;

pub fn run(args: &DebugArgs) -> kale::Result<()> {
    let (runs_dir, run) = snapshot::runs_view::find(&args.store.dir, &args.run)?;
    let written = snapshot::debug::debug_notebook(
        &runs_dir,
        &run,
        args.step.as_deref(),
        args.output.as_deref(),
    )?;
    for w in &written.warnings {
        kale::errln!("warning: {w}");
    }
    if args.store.json {
        kale::outln!("{}", serde_json::to_string_pretty(&json!(written))?)?;
    } else {
        kale::errln!(
            "debug notebook for step `{}` ({}) of run {}:",
            written.step,
            written.status.as_str(),
            written.run_id
        );
        kale::outln!("{}", written.path.display())?;
        kale::errln!(
            "next: jupyter lab {}",
            shell_quote(&written.path.display().to_string())
        );
    }
    Ok(())
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
