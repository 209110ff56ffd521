//! `kale compile`: the pipeline as KFP v2 IR YAML, or as a Katib Experiment.

use crate::cli::{CompileArgs, CompileTarget};

use super::load_pipeline;

pub fn run(args: &CompileArgs) -> kale::Result<()> {
    let mut pipeline = load_pipeline(&args.notebook)?;
    super::default_to_own_pod_image(&mut pipeline);
    let text = match args.target {
        CompileTarget::Kfp => {
            let compiled = super::kfp_compile(&pipeline, None)?;
            warn_file_reads(&args.notebook, &pipeline);
            compiled.yaml
        }
        CompileTarget::Katib => {
            if args.katib.pipeline_id.is_none() {
                kale::errln!(
                    "note: each trial runs the newest version of the KFP pipeline named `{}`; upload it first (`kale submit`), or pass --pipeline-id/--pipeline-version",
                    kale::kubeflow::kfp::pipeline_name(&pipeline)
                );
            }
            kale::kubeflow::katib_experiment::plan(
                &pipeline,
                args.katib.experiment_name.as_deref(),
                &args.search.plan(),
                args.katib.trial_target(),
            )?
            .yaml
        }
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(())
}

/// KFP caches a step on its spec and inputs: a file it reads can change under a
/// cached result. Locally kale's snapshots see that; on the cluster, say so.
fn warn_file_reads(notebook: &std::path::Path, pipeline: &kale::pipeline::Pipeline) {
    // Files an earlier step hands over travel as an input artifact, which KFP's cache
    // key covers.
    let handed = kale::kubeflow::kfp::handed_files(pipeline);
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
        let mut reads = kale::analysis::file_reads(&cells);
        reads.retain(|r| !r.path.as_deref().is_some_and(is_not_data));
        // Files an earlier step hands over travel as an input artifact, which KFP's
        // cache key covers.
        reads.retain(|r| {
            !handed.iter().any(|(_, to, paths)| {
                *to == step.name
                    && paths
                        .iter()
                        .any(|p| kale::analysis::may_meet(Some(p), r.path.as_deref()))
            })
        });
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
        kale::errln!(
            "warning: {}: cell {}, line {}: step `{}` reads files ({}): KFP's cache cannot see their contents, so a cached run of this step would reuse results computed from older files\n  hint: tag the step `cache:disabled` to run it every time on the cluster",
            notebook.display(),
            first.at.cell,
            first.at.line,
            step.name,
            named.join(", ")
        );
    }
}

/// Paths whose contents a cached result does not depend on, or that are not files:
/// a URL (`https://`, `s3://`, `gs://`: fetched, not read from the pod's disk) and a
/// secret Kubernetes mounts into the pod (`/var/run/secrets/...`, `/etc/secrets/...`:
/// credentials, not data).
fn is_not_data(path: &str) -> bool {
    let url = path.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let secret = path.starts_with('/')
        && path.split('/').any(|part| {
            let part = part.to_ascii_lowercase();
            part == "secret"
                || part == "secrets"
                || part.ends_with("-secret")
                || part.ends_with("-secrets")
        });
    url || secret
}

fn write_output(path: Option<&std::path::Path>, text: &str) -> kale::Result<()> {
    match path {
        Some(p) if p != std::path::Path::new("-") => {
            std::fs::write(p, text).map_err(|e| {
                kale::Error::bad_input(format!("cannot write {}", p.display())).caused_by(e)
            })?;
            kale::errln!("wrote {}", p.display());
        }
        _ => kale::output::stdout_bytes(text.as_bytes())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_and_mounted_secrets_are_not_data_files() {
        for not_data in [
            "https://example.com/train.csv",
            "s3://bucket/data.parquet",
            "gs://b/x.npy",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/etc/secrets/api-key",
            "/mnt/db-secret/password",
        ] {
            assert!(super::is_not_data(not_data), "{not_data}");
        }
        for data in [
            "data/train.csv",
            "/data/train.csv",
            "secrets.csv",
            "./secret/notes.txt",
        ] {
            assert!(!super::is_not_data(data), "{data}");
        }
    }
}
