//! `kale submit`: upload the compiled pipeline to Kubeflow Pipelines and start one run.

use std::process::ExitCode;

use kale::kubeflow::kfp;
use kale::kubeflow::kfp_client::{KfpClient, typed_parameter};
use serde_json::Map;

use crate::cli::SubmitArgs;

use super::{EXIT_BAD_INPUT, load_pipeline};

pub fn run(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match load_pipeline(&args.notebook) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let compiled = match super::kfp_compile(&pipeline, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n  hint: {}", e.hint());
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    // Overrides are typed as the pipeline declares them: the KFP API rejects a number
    // sent as a string.
    let mut params = Map::new();
    for text in &args.params {
        let Some((name, value)) = text.split_once('=') else {
            eprintln!("error: -p `{text}` is not of the form NAME=VALUE");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        };
        let Some(param) = pipeline.parameter(name.trim()) else {
            eprintln!(
                "error: the pipeline has no parameter `{}`\n  hint: the parameters are {}",
                name.trim(),
                pipeline
                    .parameters
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        };
        match typed_parameter(&param.name, kfp::parameter_type(&param.value), value) {
            Ok(v) => {
                params.insert(param.name.clone(), v);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    }

    let name = kfp::pipeline_name(&pipeline);
    let stamp = timestamp();
    let client = KfpClient::from_env(args.kfp.kfp_endpoint.as_deref());
    let ns = args.kfp.namespace.as_deref();
    let fail = |e: kale::kubeflow::kfp_client::KfpError| {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        Ok(ExitCode::from(1))
    };
    let version = match client.upload(
        &name,
        &pipeline.description,
        &compiled.yaml,
        &format!("{name}-{stamp}"),
        ns,
    ) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    eprintln!(
        "uploaded pipeline `{name}` (id {}), version {}",
        version.pipeline_id, version.version_id
    );
    if args.upload_only {
        println!("{} {}", version.pipeline_id, version.version_id);
        return Ok(ExitCode::SUCCESS);
    }
    let experiment = args
        .experiment
        .clone()
        .unwrap_or_else(|| pipeline.experiment.clone());
    let experiment_id = match client.ensure_experiment(&experiment, ns) {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    let run_name = args
        .run_name
        .clone()
        .unwrap_or_else(|| format!("{name}-{stamp}"));
    let run_id = match client.create_run(&run_name, &version, Some(&experiment_id), &params) {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    eprintln!(
        "started run `{run_name}` in experiment `{experiment}`: {}/#/runs/details/{run_id}",
        client.endpoint()
    );
    println!("{run_id}");
    Ok(ExitCode::SUCCESS)
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
