//! `kale submit`: upload the compiled pipeline to Kubeflow Pipelines and start one run.

use kale::kubeflow::kfp;
use kale::kubeflow::kfp_client::{KfpClient, typed_parameter};
use serde_json::Map;

use crate::cli::SubmitArgs;

use kale::Error;

use super::load_pipeline;

pub fn run(args: &SubmitArgs) -> kale::Result<()> {
    let mut pipeline = load_pipeline(&args.notebook)?;
    super::default_to_own_pod_image(&mut pipeline);
    let compiled = kale::kubeflow::compile::kfp(&pipeline, None, &|line| kale::errln!("{line}"))?;
    // Overrides are typed as the pipeline declares them: the KFP API rejects a number
    // sent as a string.
    let mut params = Map::new();
    for text in &args.params {
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
    let client = KfpClient::from_env(args.kfp.kfp_endpoint.as_deref());
    let ns = args.kfp.namespace.as_deref();
    let version = client.upload(
        &name,
        &pipeline.description,
        &compiled.yaml,
        &format!("{name}-{stamp}"),
        ns,
    )?;
    kale::errln!(
        "uploaded pipeline `{name}` (id {}), version {}",
        version.pipeline_id,
        version.version_id
    );
    if args.upload_only {
        kale::outln!("{} {}", version.pipeline_id, version.version_id)?;
        return Ok(());
    }
    let experiment = args
        .experiment
        .clone()
        .unwrap_or_else(|| pipeline.experiment.clone());
    let experiment_id = client.ensure_experiment(&experiment, ns)?;
    let run_name = args
        .run_name
        .clone()
        .unwrap_or_else(|| format!("{name}-{stamp}"));
    let run_id = client.create_run(&run_name, &version, Some(&experiment_id), &params)?;
    kale::errln!(
        "started run `{run_name}` in experiment `{experiment}`: {}/#/runs/details/{run_id}",
        client.endpoint()
    );
    kale::outln!("{run_id}")?;
    Ok(())
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
