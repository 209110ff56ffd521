//! `kale compile`: the pipeline as KFP v2 IR YAML, or as a Katib Experiment.

use std::io::Write as _;
use std::process::ExitCode;

use crate::cli::{CompileArgs, CompileTarget, KatibArgs, SearchFlags};

use super::{EXIT_BAD_INPUT, load_pipeline};

pub fn run(args: &CompileArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match load_pipeline(&args.notebook) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let text = match args.target {
        CompileTarget::Kfp => match super::kfp_compile(&pipeline, None) {
            Ok(c) => {
                warn_file_reads(&args.notebook, &pipeline);
                c.yaml
            }
            Err(e) => {
                eprintln!("error: {e}\n  hint: {}", e.hint());
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        },
        CompileTarget::Katib => match katib_experiment(&pipeline, &args.katib, &args.search) {
            Ok(exp) => exp.yaml,
            Err(code) => return Ok(code),
        },
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// KFP caches a step on its spec and inputs: a file it reads can change under a
/// cached result. Locally kale's snapshots see that; on the cluster, say so.
fn warn_file_reads(notebook: &std::path::Path, pipeline: &kale::pipeline::Pipeline) {
    for step in &pipeline.steps {
        if step.config.cache == Some(false) {
            continue;
        }
        let cells: Vec<_> = step
            .cells
            .iter()
            .map(|&number| kale::analysis::CellSource {
                number,
                source: pipeline
                    .sources
                    .get(&number)
                    .map(String::as_str)
                    .unwrap_or(""),
            })
            .collect();
        let reads = kale::analysis::file_reads(&cells);
        let Some(first) = reads.first() else {
            continue;
        };
        let mut named: Vec<String> = Vec::new();
        for r in &reads {
            let name = match &r.path {
                Some(p) => p.clone(),
                None => format!("{}(...)", r.call),
            };
            if !named.contains(&name) {
                named.push(name);
            }
        }
        eprintln!(
            "warning: {}: cell {}, line {}: step `{}` reads files ({}): KFP's cache cannot see their contents, so a cached run of this step would reuse results computed from older files\n  hint: tag the step `cache:disabled` to run it every time on the cluster",
            notebook.display(),
            first.at.cell,
            first.at.line,
            step.name,
            named.join(", ")
        );
    }
}

pub fn write_output(path: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) if p != std::path::Path::new("-") => {
            std::fs::write(p, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        _ => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// The default trial image: kale publishes none, so the name says which kale to build.
pub fn default_trial_image() -> String {
    format!("kale:{}", env!("CARGO_PKG_VERSION"))
}

pub fn search_args(f: &SearchFlags) -> kale::tune::space::SearchArgs {
    kale::tune::space::SearchArgs {
        objective: f.objective.clone(),
        goal: f.goal.clone(),
        target_value: f.target_value,
        algorithm: f.algorithm.clone(),
        settings: f.algorithm_settings.clone(),
        params: f.params.clone(),
        space_file: f.space_file.clone(),
        max_trials: f.max_trials,
        parallel: f.parallel,
        max_failed: f.max_failed,
        early_stopping: f.early_stopping.clone(),
        early_stopping_settings: f.early_stopping_settings.clone(),
        seed: f.seed,
    }
}

/// Resolves the search settings and builds the Experiment, printing any problem.
pub fn katib_experiment(
    pipeline: &kale::pipeline::Pipeline,
    katib: &KatibArgs,
    search: &SearchFlags,
) -> Result<kale::kubeflow::katib::Experiment, ExitCode> {
    let mut search_args = search_args(search);
    // Katib runs trials on the cluster: its own default parallelism, not this machine's cores.
    if search_args.parallel.is_none()
        && pipeline
            .metadata
            .katib_metadata
            .as_ref()
            .and_then(|k| k.0.get("parallelTrialCount"))
            .is_none()
    {
        search_args.parallel = Some(3);
    }
    let resolved = kale::tune::space::resolve(pipeline, &search_args).map_err(|errors| {
        for e in errors {
            eprintln!("error: {e}");
        }
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    let name = katib
        .experiment_name
        .clone()
        .unwrap_or_else(|| kale::kubeflow::katib::default_name(&pipeline.experiment));
    let image = katib.trial_image.clone().unwrap_or_else(|| {
        let image = default_trial_image();
        eprintln!(
            "warning: trials run image `{image}`; build an image holding the kale binary and pass --trial-image (or set KALE_TRIAL_IMAGE)"
        );
        image
    });
    if katib.pipeline_id.is_none() {
        eprintln!(
            "note: each trial runs the newest version of the KFP pipeline named `{}`; upload it first (`kale submit`), or pass --pipeline-id/--pipeline-version",
            kale::kubeflow::kfp::pipeline_name(pipeline)
        );
    }
    let target = kale::kubeflow::katib::TrialTarget {
        image,
        pipeline_id: katib.pipeline_id.clone(),
        pipeline_version: katib.pipeline_version.clone(),
        kfp_experiment_id: None,
        kfp_endpoint: katib.trial_kfp_endpoint.clone(),
        service_account: katib.service_account.clone(),
    };
    kale::kubeflow::katib::experiment(pipeline, &name, &resolved, &target).map_err(|e| {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}
