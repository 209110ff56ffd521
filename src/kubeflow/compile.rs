//! `kale compile` as one operation: the pipeline as KFP v2 IR YAML ([`kfp_yaml`]) or
//! as a Katib Experiment ([`katib_yaml`]), telling the caller the compiler's warnings
//! and notes on the way.

use std::path::Path;

use super::katib_experiment::TrialTarget;
use super::kfp::Compiled;
use crate::pipeline::Pipeline;
use crate::tune::plan::SearchArgs;

/// Compiles for KFP with the packages the steps import (found with `python`, or the
/// default Python); `say` hears the compiler's warnings and notes.
pub fn kfp(p: &Pipeline, python: Option<&Path>, say: &dyn Fn(&str)) -> crate::Result<Compiled> {
    let packages = super::packages::for_steps(p, python);
    let compiled = super::kfp::compile_with(p, &packages)?;
    for w in &compiled.warnings {
        say(&format!("warning: {w}"));
    }
    for n in &compiled.notes {
        say(&format!("note: {n}"));
    }
    Ok(compiled)
}

/// Inside a pod, steps and trials default to the pod's own image (see
/// [`super::pod::default_to_own_pod_image`]); `say` hears so, or why it could not.
pub fn default_to_own_pod_image(p: &mut Pipeline, say: &dyn Fn(&str)) {
    if let Some(line) = super::pod::default_to_own_pod_image_now(p) {
        say(&line);
    }
}

/// `kale compile NOTEBOOK`: the KFP pipeline of the notebook at `notebook`; `say`
/// also hears which steps read files KFP's cache cannot see.
pub fn kfp_yaml(
    notebook: &Path,
    mut pipeline: Pipeline,
    say: &dyn Fn(&str),
) -> crate::Result<String> {
    default_to_own_pod_image(&mut pipeline, say);
    let compiled = kfp(&pipeline, None, say)?;
    file_read_warnings(notebook, &pipeline, say);
    Ok(compiled.yaml)
}

/// `kale compile --target katib`: the Katib Experiment whose trials run the pipeline's
/// KFP version.
pub fn katib_yaml(
    mut pipeline: Pipeline,
    name: Option<&str>,
    search: &SearchArgs,
    target: TrialTarget,
    say: &dyn Fn(&str),
) -> crate::Result<String> {
    default_to_own_pod_image(&mut pipeline, say);
    if target.pipeline_id.is_none() {
        say(&format!(
            "note: each trial runs the newest version of the KFP pipeline named `{}`; upload it first (`kale submit`), or pass --pipeline-id/--pipeline-version",
            super::kfp::pipeline_name(&pipeline)
        ));
    }
    Ok(super::katib_experiment::plan(&pipeline, name, search, target)?.yaml)
}

/// KFP caches a step on its spec and inputs: a file it reads can change under a
/// cached result. Locally kale's snapshots see that; on the cluster, say so.
fn file_read_warnings(notebook: &Path, pipeline: &Pipeline, say: &dyn Fn(&str)) {
    // Files an earlier step hands over travel as an input artifact, which KFP's cache
    // key covers.
    let handed = super::kfp::handed_files(pipeline);
    for step in &pipeline.steps {
        if step.config.cache == Some(false) {
            continue;
        }
        let cells: Vec<_> = step
            .cells
            .iter()
            .map(|&number| crate::analysis::CellSource {
                number,
                source: pipeline
                    .sources
                    .get(&number)
                    .map(String::as_str)
                    .unwrap_or(""),
            })
            .collect();
        let mut reads = crate::analysis::file_reads(&cells);
        reads.retain(|r| !r.path.as_deref().is_some_and(is_not_data));
        // Files an earlier step hands over travel as an input artifact, which KFP's
        // cache key covers.
        reads.retain(|r| {
            !handed.iter().any(|(_, to, paths)| {
                *to == step.name
                    && paths
                        .iter()
                        .any(|p| crate::analysis::may_meet(Some(p), r.path.as_deref()))
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
        say(&format!(
            "warning: {}: cell {}, line {}: step `{}` reads files ({}): KFP's cache cannot see their contents, so a cached run of this step would reuse results computed from older files\n  hint: tag the step `cache:disabled` to run it every time on the cluster",
            notebook.display(),
            first.at.cell,
            first.at.line,
            step.name,
            named.join(", ")
        ));
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
