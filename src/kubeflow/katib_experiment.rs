//! The Katib `Experiment` (kubeflow.org/v1beta1) for tuning a pipeline on a cluster.
//!
//! Every trial is a `batch/v1` Job whose `main` container runs kale's trial driver
//! ([`TRIAL_DRIVER_SOURCE`], standard-library Python): one KFP run of the uploaded
//! pipeline version with the trial's parameters, whose metrics it prints as `name=value`
//! lines for Katib's default StdOut collector. The Job runs in the steps' image, so the
//! cluster needs no image of kale's.
//!
//! The driver travels in the template itself: an init container writes it into an
//! `emptyDir`, and `main` runs that file. `main`'s command stays a list of shell-safe
//! words because Katib's collector re-runs it as `sh -c "<words joined by spaces>"`
//! without quoting; Python source can only pass through the init container, which
//! Katib leaves alone. A plain Job keeps the cluster requirements to Katib and KFP
//! themselves: Katib fills in its success and failure conditions, and no katib-config
//! or RBAC change is needed (an Argo or KFP trial kind would need both).

use serde_json::{Map, Value, json};

use crate::pipeline::Pipeline;
use crate::tune::plan::{ResolvedSearch, SearchArgs};

/// What every trial runs; `kale trial` runs it too, so there is one implementation.
pub const TRIAL_DRIVER_SOURCE: &str = include_str!("trial_driver.py");
/// Where the init container writes the driver, inside the trial pod.
pub const TRIAL_DRIVER_DIR: &str = "/kale";
pub const TRIAL_DRIVER_PATH: &str = "/kale/kale_trial.py";
/// The init container's program: writes its first argument to the path in its second.
const WRITE_DRIVER: &str = "import sys; open(sys.argv[2], 'w').write(sys.argv[1])";

/// Trial parameter that carries the trial's name (reused as the KFP run name).
pub const TRIAL_NAME_PARAMETER: &str = "kaleTrialName";
/// Katib's webhook limit for Experiment names.
pub const MAX_NAME_LEN: usize = 40;

/// Where trials find the pipeline and the KFP API.
#[derive(Debug, Clone, Default)]
pub struct TrialTarget {
    /// Image of the trial Job (the steps' image unless the user names one); it needs
    /// `python3` (3.8+) and `sh`.
    pub image: String,
    /// KFP pipeline id; without it each trial looks the pipeline up by name.
    pub pipeline_id: Option<String>,
    /// KFP pipeline version id; without it each trial takes the newest version.
    pub pipeline_version: Option<String>,
    /// KFP experiment the runs go into.
    pub kfp_experiment_id: Option<String>,
    /// KFP endpoint as seen from the trial pod (default: the in-cluster service).
    pub kfp_endpoint: Option<String>,
    pub service_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KatibError {
    #[error(
        "experiment name `{0}` is not valid for Katib: it must be a DNS label (lowercase letters, digits and `-`, starting with a letter) of at most 40 characters"
    )]
    BadName(String),
    #[error("{0}")]
    BadCounts(String),
    #[error("parameter `{0}` is not a pipeline parameter")]
    NotAParameter(String),
    #[error(
        "value `{value}` of parameter `{name}` cannot be passed safely through Katib's StdOut metrics collector, which re-runs the trial command through `sh -c` without quoting"
    )]
    ShellUnsafe { name: String, value: String },
}

impl KatibError {
    fn hint(&self) -> &'static str {
        match self {
            KatibError::BadName(_) => "pass --experiment-name with a shorter lowercase name",
            KatibError::BadCounts(_) => {
                "Katib needs parallel trials and failed trials no larger than the total (--parallel, --max-failed, --max-trials)"
            }
            KatibError::NotAParameter(_) => {
                "search only the names the `pipeline-parameters` cell assigns"
            }
            KatibError::ShellUnsafe { .. } => {
                "use categorical values made of letters, digits and `._-+:/@,`"
            }
        }
    }
}

impl From<KatibError> for crate::Error {
    fn from(e: KatibError) -> Self {
        crate::Error::bad_input(&e).with_hint(e.hint())
    }
}

/// The Experiment `kale compile --target katib` writes and `kale tune --katib`
/// creates: the search plan resolved against the notebook, named `name` (default: the
/// notebook's experiment name), trials in `target.image` (default: the steps' image,
/// which has the Python the trial driver needs).
pub fn plan(
    p: &Pipeline,
    name: Option<&str>,
    search: &SearchArgs,
    mut target: TrialTarget,
) -> crate::Result<Experiment> {
    let mut search = search.clone();
    // What kale's panel saves beside Katib's fields (several objectives, constraints)
    // counts as if given by flags: Katib cannot run it either.
    let katib = p.metadata.katib_metadata.as_ref().map(|k| &k.0);
    let mut problems = Vec::new();
    if search.objectives.is_empty() {
        let saved = crate::tune::plan::notebook_objectives(katib, &mut problems);
        if saved.len() > 1 {
            search.objectives = saved
                .iter()
                .map(|(name, d)| match d {
                    Some(d) => format!("{name}:{}", d.as_str()),
                    None => name.clone(),
                })
                .collect();
        }
    }
    let mut constraint_source = "--constraint";
    if search.constraints.is_empty() {
        search.constraints = crate::tune::plan::notebook_constraints(katib, &mut problems);
        constraint_source = "the notebook's katib_metadata constraint";
    }
    if !problems.is_empty() {
        return Err(crate::Error::bad_input(problems.join("\nerror: ")));
    }
    // Katib has neither several objectives nor constraints (only additional metrics,
    // recorded, never optimised): refuse rather than compile a different experiment.
    if !search.constraints.is_empty() {
        return Err(crate::Error::bad_input(format!(
            "Katib has no constraints: {} cannot be compiled to a Katib Experiment",
            search
                .constraints
                .iter()
                .map(|c| format!("{constraint_source} `{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("tune locally (`kale tune` without --katib) to use constraints"));
    }
    if search.objectives.len() > 1 {
        if !search.katib_first_objective {
            return Err(crate::Error::bad_input(format!(
                "Katib has no multi-objective experiments: it optimises one objective, and {} objectives were given",
                search.objectives.len()
            ))
            .with_hint("tune locally (`kale tune` without --katib) for a Pareto front")
            .with_hint("or pass --katib-first-objective to optimise the first objective and record the others as additional metrics"));
        }
        let others: Vec<String> = search.objectives.split_off(1);
        let metrics: Vec<&str> = p.metrics.iter().map(|m| m.name.as_str()).collect();
        for o in &others {
            let name = o.rsplit_once(':').map_or(o.as_str(), |(n, _)| n);
            if !metrics.contains(&name) {
                return Err(crate::Error::bad_input(format!(
                    "objective `{name}` is not a pipeline metric; the metrics are {}",
                    metrics
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_hint(
                    "use one of them, or add `print(variable)` to the `pipeline-metrics` cell",
                ));
            }
        }
    }
    // Katib runs trials on the cluster: its own default parallelism, not this
    // machine's cores.
    let notebook_sets_parallel = p
        .metadata
        .katib_metadata
        .as_ref()
        .and_then(|k| k.0.get("parallelTrialCount"))
        .is_some();
    if search.parallel.is_none() && !notebook_sets_parallel {
        search.parallel = Some(3);
    }
    let resolved = crate::tune::plan::resolve(p, &search)?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| default_name(&p.experiment));
    if target.image.is_empty() {
        target.image = crate::kubeflow::kfp::pipeline_image(p);
    }
    Ok(experiment(p, &name, &resolved, &target)?)
}

/// An Experiment ready to apply.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub value: Value,
    pub yaml: String,
}

/// A Katib-valid name derived from `base` (the notebook's experiment name).
pub fn default_name(base: &str) -> String {
    let mut name = crate::pipeline::sanitize_name(base);
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("kale-{name}");
    }
    name.truncate(MAX_NAME_LEN);
    name.trim_end_matches('-').to_string()
}

pub fn check_name(name: &str) -> Result<(), KatibError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KatibError::BadName(name.to_string()))
    }
}

fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+:/@,=".contains(c))
}

/// The trial container's command: the driver and its arguments (those of `kale trial`),
/// one shell-safe word each (Katib's collector joins them with spaces under `sh -c`).
pub fn trial_command(
    p: &Pipeline,
    search: &ResolvedSearch,
    target: &TrialTarget,
) -> Result<Vec<String>, KatibError> {
    let mut cmd: Vec<String> = vec!["python3".into(), "-u".into(), TRIAL_DRIVER_PATH.into()];
    if let Some(e) = &target.kfp_endpoint {
        cmd.push(format!("--kfp-endpoint={e}"));
    }
    match &target.pipeline_id {
        Some(id) => cmd.push(format!("--pipeline-id={id}")),
        None => cmd.push(format!(
            "--pipeline={}",
            crate::kubeflow::kfp::pipeline_name(p)
        )),
    }
    if let Some(v) = &target.pipeline_version {
        cmd.push(format!("--pipeline-version={v}"));
    }
    if let Some(x) = &target.kfp_experiment_id {
        cmd.push(format!("--kfp-experiment-id={x}"));
    }
    cmd.push(format!(
        "--run-name=${{trialParameters.{TRIAL_NAME_PARAMETER}}}"
    ));
    for spec in search.space.parameters() {
        cmd.push(format!(
            "--param={}=${{trialParameters.{}}}",
            spec.name, spec.name
        ));
    }
    let mut metrics = vec![search.objective.clone()];
    metrics.extend(search.additional_metrics.iter().cloned());
    cmd.push(format!("--metrics={}", metrics.join(",")));
    for word in &cmd {
        // Ids and URLs come from the user; the placeholders are ours.
        if !word.contains("${") && !shell_safe(word) {
            return Err(KatibError::ShellUnsafe {
                name: word.split('=').next().unwrap_or(word).to_string(),
                value: word.clone(),
            });
        }
    }
    Ok(cmd)
}

/// Builds the Experiment. Pure: no I/O.
pub fn experiment(
    p: &Pipeline,
    name: &str,
    search: &ResolvedSearch,
    target: &TrialTarget,
) -> Result<Experiment, KatibError> {
    check_name(name)?;
    check_search(p, search)?;
    let mut spec = Map::new();
    spec.insert("objective".into(), objective(search));
    spec.insert("algorithm".into(), algorithm(search));
    if let Some((name, settings)) = &search.early_stopping {
        let mut es = Map::new();
        es.insert("algorithmName".into(), json!(name));
        if !settings.is_empty() {
            es.insert("algorithmSettings".into(), json!(settings));
        }
        spec.insert("earlyStopping".into(), Value::Object(es));
    }
    spec.insert("parallelTrialCount".into(), json!(search.parallel));
    spec.insert("maxTrialCount".into(), json!(search.max_trials));
    spec.insert("maxFailedTrialCount".into(), json!(search.max_failed));
    spec.insert("parameters".into(), search.space.to_katib_json());
    spec.insert(
        "metricsCollectorSpec".into(),
        json!({"collector": {"kind": "StdOut"}}),
    );
    spec.insert(
        "trialTemplate".into(),
        json!({
            // Keeps the trial pods, so their logs stay readable after the trial ends.
            "retain": true,
            "primaryContainerName": "main",
            "trialParameters": trial_parameters(p, search),
            "trialSpec": trial_job(p, search, target)?,
        }),
    );

    let value = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/created-by": "kale"},
        },
        "spec": spec,
    });
    let yaml = format!(
        "# Katib Experiment generated by kale {} from {}; do not edit.\n{}",
        env!("CARGO_PKG_VERSION"),
        p.notebook
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        crate::kubeflow::kfp::to_yaml(&value)
    );
    Ok(Experiment {
        name: name.to_string(),
        value,
        yaml,
    })
}

/// What Katib would reject, or the trial command could not carry: counts over the
/// budget, a searched name that is no pipeline parameter, a value unsafe in a shell.
fn check_search(p: &Pipeline, search: &ResolvedSearch) -> Result<(), KatibError> {
    if search.parallel as u64 > search.max_trials {
        return Err(KatibError::BadCounts(format!(
            "parallel trials ({}) exceed the total number of trials ({})",
            search.parallel, search.max_trials
        )));
    }
    if search.max_failed > search.max_trials {
        return Err(KatibError::BadCounts(format!(
            "failed trials allowed ({}) exceed the total number of trials ({})",
            search.max_failed, search.max_trials
        )));
    }
    for spec in search.space.parameters() {
        if p.parameter(&spec.name).is_none() {
            return Err(KatibError::NotAParameter(spec.name.clone()));
        }
        for v in spec.feasible_space.list.iter().flatten() {
            if !shell_safe(v) {
                return Err(KatibError::ShellUnsafe {
                    name: spec.name.clone(),
                    value: v.clone(),
                });
            }
        }
    }
    Ok(())
}

/// `spec.objective`.
fn objective(search: &ResolvedSearch) -> Value {
    let mut objective = Map::new();
    objective.insert("type".into(), json!(search.direction.as_str()));
    if let Some(g) = search.goal {
        objective.insert("goal".into(), json!(g));
    }
    objective.insert("objectiveMetricName".into(), json!(search.objective));
    if !search.additional_metrics.is_empty() {
        objective.insert(
            "additionalMetricNames".into(),
            json!(search.additional_metrics),
        );
    }
    Value::Object(objective)
}

/// `spec.algorithm`.
fn algorithm(search: &ResolvedSearch) -> Value {
    let mut algorithm = Map::new();
    algorithm.insert("algorithmName".into(), json!(search.algorithm));
    if !search.settings.is_empty() {
        algorithm.insert("algorithmSettings".into(), json!(search.settings));
    }
    Value::Object(algorithm)
}

/// `trialTemplate.trialParameters`: the trial's name, then each searched parameter.
fn trial_parameters(p: &Pipeline, search: &ResolvedSearch) -> Vec<Value> {
    let mut trial_parameters = vec![json!({
        "name": TRIAL_NAME_PARAMETER,
        "description": "Katib trial name, reused as the KFP run name",
        "reference": "${trialSpec.Name}",
    })];
    for spec in search.space.parameters() {
        let kind = p
            .parameter(&spec.name)
            .map(|x| crate::kubeflow::kfp::parameter_type(&x.value))
            .unwrap_or("STRING");
        trial_parameters.push(json!({
            "name": spec.name,
            "description": format!("pipeline parameter {} ({kind})", spec.name),
            "reference": spec.name,
        }));
    }
    trial_parameters
}

/// `trialTemplate.trialSpec`: the Job whose init container writes the trial driver
/// and whose `main` container runs it.
fn trial_job(
    p: &Pipeline,
    search: &ResolvedSearch,
    target: &TrialTarget,
) -> Result<Value, KatibError> {
    let mut pod_spec = Map::new();
    pod_spec.insert("restartPolicy".into(), json!("Never"));
    if let Some(sa) = &target.service_account {
        pod_spec.insert("serviceAccountName".into(), json!(sa));
    }
    let mount = json!([{"name": "kale-trial", "mountPath": TRIAL_DRIVER_DIR}]);
    pod_spec.insert(
        "initContainers".into(),
        json!([{
            "name": "kale-trial-driver",
            "image": target.image,
            "command": [
                "python3",
                "-c",
                WRITE_DRIVER,
                crate::kubeflow::kfp::without_comment_lines(TRIAL_DRIVER_SOURCE),
                TRIAL_DRIVER_PATH,
            ],
            "volumeMounts": mount,
        }]),
    );
    pod_spec.insert(
        "containers".into(),
        json!([{
            "name": "main",
            "image": target.image,
            "command": trial_command(p, search, target)?,
            "volumeMounts": mount,
        }]),
    );
    pod_spec.insert(
        "volumes".into(),
        json!([{"name": "kale-trial", "emptyDir": {}}]),
    );
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    // Istio's sidecar never exits, so the Job would never complete.
                    "annotations": {"sidecar.istio.io/inject": "false"},
                    // Kubeflow's PodDefault for this label mounts the KFP API token.
                    "labels": {"access-ml-pipeline": "true"},
                },
                "spec": pod_spec,
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(default_name("Digits HPO"), "digits-hpo");
        assert_eq!(default_name("9lives"), "kale-9lives");
        assert_eq!(default_name(&"a".repeat(60)).len(), 40);
        assert!(check_name("digits").is_ok());
        for bad in ["", "Digits", "1x", "x-", "x_y", &"a".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_driver_reads_the_metrics_artifact_kfp_writes() {
        assert!(TRIAL_DRIVER_SOURCE.contains(&format!(
            "\nMETRICS_ARTIFACT = \"{}\"\n",
            crate::kubeflow::kfp::METRICS_ARTIFACT
        )));
        assert!(TRIAL_DRIVER_PATH.starts_with(TRIAL_DRIVER_DIR));
    }

    #[test]
    fn shell_safety() {
        assert!(shell_safe("relu"));
        assert!(shell_safe("http://ml-pipeline.kubeflow:8888"));
        assert!(!shell_safe("a b"));
        assert!(!shell_safe("x;rm"));
        assert!(!shell_safe("$(x)"));
    }
}
