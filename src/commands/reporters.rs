//! Terminal reporters: step lines, streamed output with a step prefix, a progress bar
//! when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kale::exec::{Reporter, StepStatus};

pub struct TerminalReporter {
    bar: ProgressBar,
    stream: bool,
    width: usize,
}

impl TerminalReporter {
    pub fn new(total_steps: usize, stream: bool, step_names: &[String]) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(total_steps as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:24}] {pos}/{len} steps  {elapsed}  {msg}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        let width = step_names.iter().map(|s| s.len()).max().unwrap_or(4);
        TerminalReporter { bar, stream, width }
    }

    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Reporter for TerminalReporter {
    fn step_started(&self, step: &str) {
        self.say(format!("▶ {step}"));
        self.bar.set_message(step.to_string());
    }

    fn step_output(&self, step: &str, line: &str, _is_stderr: bool) {
        if self.stream {
            self.say(format!("{step:>w$} │ {line}", w = self.width));
        }
    }

    fn step_cache_note(&self, step: &str, note: &str) {
        self.say(format!("↻ {step}: {note}"));
    }

    fn step_finished(&self, step: &str, status: StepStatus, seconds: f64) {
        let mark = match status {
            StepStatus::Succeeded => "✓",
            StepStatus::Cached => "✓",
            StepStatus::Failed => "✗",
            StepStatus::Interrupted => "■",
            _ => "·",
        };
        let note = if status == StepStatus::Cached {
            "  (cached)"
        } else {
            ""
        };
        self.say(format!(
            "{mark} {step}  {seconds:.2}s  {}{note}",
            status.as_str()
        ));
        self.bar.inc(1);
    }
}
