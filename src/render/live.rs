//! Progress on a terminal: the step lines and bar of `kale run`, the redrawn status
//! block of `kale tune` (local or on Katib). Without a terminal, plain lines.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Reporter, StepStatus};
use crate::tune::local::Started;
use crate::tune::{LiveState, TuneReporter};

/// `kale run`'s reporter: a line per step start and end, the steps' output with a
/// step prefix, a progress bar when stderr is a terminal.
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
            crate::errln!("{line}");
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

/// A redrawn status block on a terminal; one line per finished trial otherwise.
/// Local tuning and `kale tune --katib` (the cluster's experiment) both report to it.
pub struct LiveView {
    bar: Option<ProgressBar>,
}

impl Default for LiveView {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveView {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{msg}").unwrap());
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        });
        LiveView { bar }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn render(s: &LiveState) -> String {
    let done = s.succeeded + s.failed + s.early_stopped;
    // At the pace so far: elapsed time per finished trial times the trials left.
    let eta = if done > 0 && done < s.max_trials {
        let left = s.max_trials - done;
        format!(", ETA {:.0}s", s.elapsed / done as f64 * left as f64)
    } else {
        String::new()
    };
    let mut out = format!(
        "{}  {} {}  trials {done}/{} done ({} ok, {} failed{}), {} running  {:.0}s{eta}\n",
        s.experiment,
        s.direction,
        s.objective,
        s.max_trials,
        s.succeeded,
        s.failed,
        if s.early_stopped > 0 {
            format!(", {} stopped early", s.early_stopped)
        } else {
            String::new()
        },
        s.running.len(),
        s.elapsed
    );
    match (&s.front, &s.best) {
        (Some(front), _) if front.is_empty() => out.push_str("front  -\n"),
        (Some(front), _) => {
            out.push_str(&format!(
                "front  {} trial{} (feasible, non-dominated)\n",
                front.len(),
                if front.len() == 1 { "" } else { "s" }
            ));
            // The front can grow long; the first ones by trial number are enough to
            // watch it move, `kale experiments show` lists it whole.
            for line in front.iter().take(5) {
                out.push_str(&format!("  ◆ {line}\n"));
            }
            if front.len() > 5 {
                out.push_str(&format!("    … {} more\n", front.len() - 5));
            }
        }
        (None, Some((n, v, params))) => out.push_str(&format!(
            "best   trial {n}: {}={v:.6}  {params}\n",
            s.objective
        )),
        (None, None) => out.push_str("best   -\n"),
    }
    // Katib trials (and --no-cache) have no step cache to report.
    if s.cache_hits + s.cache_misses > 0 {
        out.push_str(&format!(
            "cache  {} hits, {} misses\n",
            s.cache_hits, s.cache_misses
        ));
    }
    for (n, label, secs) in &s.running {
        out.push_str(&format!("  ▶ trial {n:>3}  {label}  {secs:.1}s\n"));
    }
    for line in s.recent.iter().take(5) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

impl LiveView {
    /// A line above the status block (on stderr without a terminal).
    fn say_line(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => crate::errln!("{line}"),
        }
    }
}

impl TuneReporter for LiveView {
    fn warning(&self, line: &str) {
        self.say_line(&format!("warning: {line}"));
    }

    fn say(&self, line: &str) {
        self.say_line(line);
    }

    fn started(&self, s: &Started) {
        for line in super::summary::header(s) {
            self.say_line(&line);
        }
    }

    fn update(&self, state: &LiveState) {
        if let Some(bar) = &self.bar {
            bar.set_message(render(state));
        }
    }

    fn notice(&self, line: &str, state: &LiveState) {
        self.trial_finished(&format!("↻ {line}"), state);
    }

    fn trial_finished(&self, line: &str, state: &LiveState) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.set_message(render(state));
            }
            None => crate::errln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_block_shows_progress_best_running_and_cache() {
        let s = LiveState {
            experiment: "e".into(),
            objective: "acc".into(),
            direction: "maximize".into(),
            max_trials: 10,
            succeeded: 3,
            failed: 1,
            running: vec![(4, "lr=0.1".into(), 2.0)],
            best: Some((2, 0.9, "lr=0.01".into())),
            cache_hits: 6,
            cache_misses: 4,
            ..Default::default()
        };
        let text = render(&s);
        assert!(
            text.contains("trials 4/10 done (3 ok, 1 failed), 1 running"),
            "{text}"
        );
        assert!(
            text.contains("best   trial 2: acc=0.900000  lr=0.01"),
            "{text}"
        );
        assert!(text.contains("cache  6 hits, 4 misses"), "{text}");
        assert!(text.contains("▶ trial   4  lr=0.1"), "{text}");
    }

    #[test]
    fn several_objectives_show_the_front_instead_of_a_best_trial() {
        let s = LiveState {
            experiment: "e".into(),
            objective: "acc (maximize), ms (minimize)".into(),
            direction: "Pareto front of".into(),
            max_trials: 10,
            succeeded: 3,
            front: Some(vec![
                "trial   1  acc=0.9 ms=3".into(),
                "trial   2  acc=0.95 ms=8".into(),
            ]),
            best: Some((2, 0.95, "lr=0.01".into())),
            ..Default::default()
        };
        let text = render(&s);
        assert!(
            text.contains("front  2 trials (feasible, non-dominated)"),
            "{text}"
        );
        assert!(text.contains("◆ trial   2  acc=0.95 ms=8"), "{text}");
        assert!(!text.contains("best"), "{text}");
    }
}
