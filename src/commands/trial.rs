//! `kale trial`: what each Katib trial container runs.

use std::process::ExitCode;
use std::time::Duration;

use kale::kubeflow::kfp_client::KfpClient;
use kale::kubeflow::trial::{TrialError, TrialRequest};

use crate::cli::TrialArgs;

use super::EXIT_BAD_INPUT;

pub fn run(args: &TrialArgs) -> anyhow::Result<ExitCode> {
    let mut params = Vec::new();
    for text in &args.params {
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                params.push((k.trim().to_string(), v.to_string()))
            }
            _ => {
                eprintln!("error: -p `{text}` is not of the form NAME=VALUE");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    }
    if !(args.poll_interval.is_finite() && args.poll_interval > 0.0) {
        eprintln!("error: --poll-interval must be a positive number of seconds");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let req = TrialRequest {
        pipeline_id: args.pipeline_id.clone(),
        pipeline_name: args.pipeline.clone(),
        version_id: args.pipeline_version.clone(),
        experiment_id: args.kfp_experiment_id.clone(),
        namespace: args.namespace.clone(),
        run_name: args
            .run_name
            .clone()
            .unwrap_or_else(|| format!("kale-trial-{}", std::process::id())),
        params,
        metrics: args
            .metrics
            .iter()
            .filter(|m| !m.is_empty())
            .cloned()
            .collect(),
        poll: Duration::from_secs_f64(args.poll_interval),
        timeout: args.timeout.map(Duration::from_secs),
    };
    let client = KfpClient::from_env(args.kfp_endpoint.as_deref());
    let mut log = std::io::stderr();
    let mut out = std::io::stdout();
    match kale::kubeflow::trial::run(&client, &req, &mut log, &mut out) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // No `=` in this line: Katib's collector reads stderr too.
            eprintln!("error: {e}\n  hint: {}", e.hint());
            Ok(ExitCode::from(match e {
                TrialError::Input(_) => EXIT_BAD_INPUT,
                _ => 1,
            }))
        }
    }
}
