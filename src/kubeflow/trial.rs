//! What one Katib trial does: start a KFP run of the uploaded pipeline version with the
//! trial's parameters, wait for it, and report its metrics as `name=value` lines.
//!
//! Katib's StdOut collector reads every line of the trial container's output (stdout
//! and stderr alike) that mentions a metric name, so progress lines never contain `=`.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::kfp_client::{
    KfpClient, KfpError, PipelineVersionRef, declared_parameter_types, is_terminal, typed_parameter,
};

#[derive(Debug, Clone, Default)]
pub struct TrialRequest {
    pub pipeline_id: Option<String>,
    /// Display name to look the pipeline up by when there is no id.
    pub pipeline_name: Option<String>,
    pub version_id: Option<String>,
    pub experiment_id: Option<String>,
    pub namespace: Option<String>,
    pub run_name: String,
    /// `name` → value as text, as Katib substitutes it.
    pub params: Vec<(String, String)>,
    /// Metrics to print, in order; empty means every metric the run reported.
    pub metrics: Vec<String>,
    pub poll: Duration,
    pub timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(transparent)]
    Kfp(#[from] KfpError),
    #[error("{0}")]
    Input(String),
    #[error("run {run_id} ended {state}{detail}")]
    RunFailed {
        run_id: String,
        state: String,
        detail: String,
    },
    #[error("run {run_id} did not finish within {seconds} s")]
    Timeout { run_id: String, seconds: u64 },
    #[error("run {run_id} succeeded but reported no value for {missing}")]
    MissingMetrics { run_id: String, missing: String },
}

impl TrialError {
    pub fn hint(&self) -> &'static str {
        match self {
            TrialError::Kfp(e) => e.hint(),
            TrialError::Input(_) => "pass -p NAME=VALUE for parameters the pipeline declares",
            TrialError::RunFailed { .. } => {
                "open the run in the KFP UI to see which step failed and its logs"
            }
            TrialError::Timeout { .. } => {
                "raise --timeout, or check why the run is stuck in the KFP UI"
            }
            TrialError::MissingMetrics { .. } => {
                "the `pipeline-metrics` cell must print every metric; was the pipeline compiled by kale?"
            }
        }
    }
}

/// Resolves the pipeline version the request names.
pub fn resolve_version(
    client: &KfpClient,
    req: &TrialRequest,
) -> Result<PipelineVersionRef, TrialError> {
    let pipeline_id = match (&req.pipeline_id, &req.pipeline_name) {
        (Some(id), _) => id.clone(),
        (None, Some(name)) => client
            .find_pipeline(name, req.namespace.as_deref())?
            .ok_or_else(|| {
                TrialError::Kfp(KfpError::NotFound {
                    what: format!("pipeline `{name}`"),
                    message: "no pipeline has this name; upload it with `kale submit`".into(),
                })
            })?,
        (None, None) => {
            return Err(TrialError::Input(
                "name the pipeline with --pipeline-id or --pipeline".into(),
            ));
        }
    };
    let version_id = match &req.version_id {
        Some(v) => v.clone(),
        None => client.latest_version(&pipeline_id)?,
    };
    Ok(PipelineVersionRef {
        pipeline_id,
        version_id,
    })
}

/// Runs the trial; `log` gets progress lines, `out` the `name=value` lines.
pub fn run(
    client: &KfpClient,
    req: &TrialRequest,
    log: &mut dyn Write,
    out: &mut dyn Write,
) -> Result<Map<String, Value>, TrialError> {
    let version = resolve_version(client, req)?;
    let declared = declared_parameter_types(&client.get_version(&version)?);
    let mut params = Map::new();
    for (name, text) in &req.params {
        let Some(kind) = declared.get(name).and_then(Value::as_str) else {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            return Err(TrialError::Input(format!(
                "the pipeline has no parameter `{name}` (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        params.insert(
            name.clone(),
            typed_parameter(name, kind, text).map_err(TrialError::Input)?,
        );
    }
    let run_id = client.create_run(
        &req.run_name,
        &version,
        req.experiment_id.as_deref(),
        &params,
    )?;
    let _ = writeln!(
        log,
        "kale trial: started KFP run {run_id} ({}) of pipeline version {}",
        req.run_name, version.version_id
    );
    let started = Instant::now();
    let mut last_state = String::new();
    let run = loop {
        let run = client.get_run(&run_id)?;
        let state = run["state"].as_str().unwrap_or("PENDING").to_string();
        if state != last_state {
            let _ = writeln!(log, "kale trial: run {run_id} is {state}");
            last_state = state.clone();
        }
        if is_terminal(&state) {
            if state != "SUCCEEDED" {
                let detail = run["error"]["message"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                return Err(TrialError::RunFailed {
                    run_id,
                    state,
                    detail,
                });
            }
            break run;
        }
        if let Some(t) = req.timeout
            && started.elapsed() > t
        {
            return Err(TrialError::Timeout {
                run_id,
                seconds: t.as_secs(),
            });
        }
        std::thread::sleep(req.poll);
    };
    let metrics = client.run_metrics(&run)?;
    let names: Vec<String> = if req.metrics.is_empty() {
        metrics.keys().cloned().collect()
    } else {
        req.metrics.clone()
    };
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !metrics.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
    for name in &names {
        if let Some(v) = metrics.get(name) {
            let _ = writeln!(out, "{name}={}", metric_text(v));
        }
    }
    let _ = out.flush();
    if !missing.is_empty() {
        return Err(TrialError::MissingMetrics {
            run_id,
            missing: missing.join(", "),
        });
    }
    Ok(metrics)
}

/// Katib's collector accepts `[+-]?\d*(\.\d+)?([Ee][+-]?\d+)?`: plain numbers only.
fn metric_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
