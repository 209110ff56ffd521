//! `kale submit` as one operation: the pipeline compiled for KFP, uploaded (a new
//! pipeline, or a new version of the one of the same name) and, unless only the upload
//! is asked for, started as a run with the given parameters.

use serde_json::Map;

use super::kfp;
use super::kfp_client::{KfpClient, PipelineVersionRef, typed_parameter};
use crate::Error;
use crate::pipeline::Pipeline;

/// What the user asked of `kale submit`.
#[derive(Clone, Debug, Default)]
pub struct SubmitPlan {
    /// `-p NAME=VALUE`.
    pub params: Vec<String>,
    /// The KFP API (default: as [`KfpClient::from_env`] finds it).
    pub endpoint: Option<String>,
    pub namespace: Option<String>,
    /// The KFP experiment (default: the notebook's).
    pub experiment: Option<String>,
    /// The run's name (default: the pipeline's name and the time).
    pub run_name: Option<String>,
    /// Upload only; start no run.
    pub upload_only: bool,
}

/// What the submission did.
pub enum Submitted {
    /// The pipeline version uploaded (`--upload-only`).
    Uploaded(PipelineVersionRef),
    /// The run started, by its id.
    Started(String),
}

/// Submits `pipeline` as `plan` asks; `say` hears what happens on the way (the pod's
/// image, the compiler's warnings and notes, the upload, the run's address).
pub fn submit(
    mut pipeline: Pipeline,
    plan: &SubmitPlan,
    say: &dyn Fn(&str),
) -> crate::Result<Submitted> {
    super::compile::default_to_own_pod_image(&mut pipeline, say);
    let compiled = super::compile::kfp(&pipeline, None, say)?;
    // Overrides are typed as the pipeline declares them: the KFP API rejects a number
    // sent as a string.
    let mut params = Map::new();
    for text in &plan.params {
        let Some((name, value)) = text.split_once('=') else {
            return Err(Error::bad_input(format!(
                "-p `{text}` is not of the form NAME=VALUE"
            )));
        };
        let Some(param) = pipeline.parameter(name.trim()) else {
            return Err(Error::bad_input(format!(
                "the pipeline has no parameter `{}`",
                name.trim()
            ))
            .with_hint(format!(
                "the parameters are {}",
                pipeline
                    .parameters
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let v = typed_parameter(&param.name, kfp::parameter_type(&param.value), value)
            .map_err(Error::bad_input)?;
        params.insert(param.name.clone(), v);
    }

    let name = kfp::pipeline_name(&pipeline);
    let stamp = timestamp();
    let client = KfpClient::from_env(plan.endpoint.as_deref());
    let ns = plan.namespace.as_deref();
    let version = client.upload(
        &name,
        &pipeline.description,
        &compiled.yaml,
        &format!("{name}-{stamp}"),
        ns,
    )?;
    say(&format!(
        "uploaded pipeline `{name}` (id {}), version {}",
        version.pipeline_id, version.version_id
    ));
    if plan.upload_only {
        return Ok(Submitted::Uploaded(version));
    }
    let experiment = plan
        .experiment
        .clone()
        .unwrap_or_else(|| pipeline.experiment.clone());
    let experiment_id = client.ensure_experiment(&experiment, ns)?;
    let run_name = plan
        .run_name
        .clone()
        .unwrap_or_else(|| format!("{name}-{stamp}"));
    let run_id = client.create_run(&run_name, &version, Some(&experiment_id), &params)?;
    say(&format!(
        "started run `{run_name}` in experiment `{experiment}`: {}/#/runs/details/{run_id}",
        client.endpoint()
    ));
    Ok(Submitted::Started(run_id))
}

/// UTC `YYYYMMDD-HHMMSS`, to name versions and runs uniquely and readably.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
