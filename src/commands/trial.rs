//! `kale trial`: what each Katib trial container runs, from this machine.
//!
//! The trial logic lives in one place, the standard-library Python driver the Katib
//! Experiment ships to the cluster ([`kale::kubeflow::katib_experiment::TRIAL_DRIVER_SOURCE`]);
//! this command hands its arguments to that same driver, run by the Python `kale run`
//! would use (`KALE_PYTHON`, ...), so what `kale trial` does is what a trial does.

use std::os::unix::process::CommandExt;
use std::process::Command;

use kale::kubeflow::katib_experiment::TRIAL_DRIVER_SOURCE;

use crate::cli::TrialArgs;

use kale::Error;

/// The driver's arguments for what clap parsed (the driver parses them again: it is
/// also run directly by the trial pods).
fn driver_args(args: &TrialArgs) -> Vec<String> {
    let mut out = Vec::new();
    let mut opt = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            out.push(format!("{flag}={v}"));
        }
    };
    opt("--kfp-endpoint", &args.kfp_endpoint);
    opt("--pipeline-id", &args.pipeline_id);
    opt("--pipeline", &args.pipeline);
    opt("--pipeline-version", &args.pipeline_version);
    opt("--kfp-experiment-id", &args.kfp_experiment_id);
    opt("--namespace", &args.namespace);
    opt("--run-name", &args.run_name);
    opt("--timeout", &args.timeout.map(|t| t.to_string()));
    out.extend(args.params.iter().map(|p| format!("--param={p}")));
    let metrics: Vec<&str> = args
        .metrics
        .iter()
        .map(String::as_str)
        .filter(|m| !m.is_empty())
        .collect();
    if !metrics.is_empty() {
        out.push(format!("--metrics={}", metrics.join(",")));
    }
    out.push(format!("--poll-interval={}", args.poll_interval));
    out
}

pub fn run(args: &TrialArgs) -> kale::Result<()> {
    if !(args.poll_interval.is_finite() && args.poll_interval > 0.0) {
        return Err(Error::bad_input(
            "--poll-interval must be a positive number of seconds",
        ));
    }
    let python = kale::exec::python::choose(None).command;
    // exec: the driver's exit status and signals are the command's own.
    let err = Command::new(&python)
        .arg("-u")
        .arg("-c")
        .arg(TRIAL_DRIVER_SOURCE)
        .args(driver_args(args))
        .exec();
    // No `=` in these lines: Katib's collector reads stderr too.
    Err(Error::environment(format!(
        "cannot start Python `{python}` to run the trial driver ({err})"
    ))
    .with_hint("set KALE_PYTHON to a Python 3.8+ interpreter"))
}
