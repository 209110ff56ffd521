//! Talking to the Kubernetes cluster: create a Katib Experiment, read it and its Trials
//! back, and wait for changes.
//!
//! Configuration follows kubectl's conventions through kube-rs: `$KUBECONFIG` (or
//! `~/.kube/config`) and its current context, else the pod's service account when running
//! inside a cluster; `--context` picks another kubeconfig context and `--namespace`
//! overrides the context's namespace.
//!
//! Katib objects are read as [`DynamicObject`]s through an [`ApiResource`] rather than a
//! typed `CustomResource`: Katib publishes its CRDs without a structural schema kale could
//! generate types from, kale only reads a handful of status fields, and a loose JSON view
//! keeps working across Katib releases that add fields. The pure half of the module
//! ([`ExperimentView`], [`TrialView`]) turns those objects into what the live view and
//! the summary need, and is tested without a cluster.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config};
use serde_json::{Map, Value, json};

/// Label Katib puts on every Trial of an Experiment.
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";

fn katib_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "kubeflow.org".into(),
        version: "v1beta1".into(),
        api_version: "kubeflow.org/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no Kubernetes configuration: {kubeconfig}; and not running inside a cluster ({in_cluster})"
    )]
    NoConfig {
        kubeconfig: String,
        in_cluster: String,
    },
    #[error("cannot use the kubeconfig: {0}")]
    BadConfig(String),
    #[error("cannot reach the Kubernetes API server at {server}: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("the Kubernetes API server at {server} rejected kale's credentials: {message}")]
    Unauthorized { server: String, message: String },
    #[error(
        "Katib is not installed in this cluster (no kubeflow.org/v1beta1 experiments at {server})"
    )]
    NotInstalled { server: String },
    #[error(
        "forbidden: cannot {verb} {resource}.kubeflow.org in namespace `{namespace}`: {message}"
    )]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },
    #[error("experiment `{name}` already exists in namespace `{namespace}`")]
    AlreadyExists { name: String, namespace: String },
    #[error("no experiment `{name}` in namespace `{namespace}`")]
    NoSuchExperiment { name: String, namespace: String },
    #[error("cannot {verb} {resource} in namespace `{namespace}`: {message}")]
    Api {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },
}

impl ClusterError {
    fn hint(&self) -> String {
        match self {
            ClusterError::NoConfig { .. } => {
                "point $KUBECONFIG at a kubeconfig file (kubectl's ~/.kube/config is the default), or run kale in a pod with a service account".into()
            }
            ClusterError::BadConfig(_) => {
                "check the file and the context (`kubectl config get-contexts`); --context picks another context".into()
            }
            ClusterError::Unreachable { .. } => {
                "check that the cluster is up and that the kubeconfig's current context points at it (`kubectl config current-context`)".into()
            }
            ClusterError::Unauthorized { .. } => {
                "log in to the cluster again; the kubeconfig's token or certificate may have expired".into()
            }
            ClusterError::NotInstalled { .. } => {
                "install Katib 0.18 or newer (Kubeflow includes it), or pick the cluster that has it with --context".into()
            }
            ClusterError::Forbidden {
                verb,
                resource,
                namespace,
                ..
            } => format!(
                "ask an administrator for a Role granting `{verb}` on `{resource}` (apiGroup kubeflow.org) in `{namespace}`, or pass --namespace with your own profile namespace"
            ),
            ClusterError::AlreadyExists { name, .. } => format!(
                "pick another name with --name, or watch the existing one with `--name {name} --resume`"
            ),
            ClusterError::NoSuchExperiment { .. } => {
                "list the experiments with `kale experiments list --katib`; --namespace picks another namespace".into()
            }
            ClusterError::Api { .. } => "see the API server's message above".into(),
        }
    }
}

/// A name that does not exist or is taken is the user's to fix; the rest is the
/// cluster, the network or the credentials around kale.
impl From<ClusterError> for crate::Error {
    fn from(e: ClusterError) -> Self {
        let kind = match e {
            ClusterError::AlreadyExists { .. } | ClusterError::NoSuchExperiment { .. } => {
                crate::ErrorKind::BadInput
            }
            _ => crate::ErrorKind::Environment,
        };
        crate::Error::new(kind, &e).with_hint(e.hint())
    }
}

/// The error and every cause under it, so "connection refused" is not hidden behind
/// "client error (Connect)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// A connection to one namespace's Katib objects.
#[derive(Clone)]
pub struct KatibClient {
    pub namespace: String,
    /// The API server URL, for messages.
    pub server: String,
    experiments: Api<DynamicObject>,
    trials: Api<DynamicObject>,
}

impl KatibClient {
    pub async fn connect(
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<KatibClient, ClusterError> {
        let config = match context {
            // An explicit context only makes sense with a kubeconfig: no in-cluster fallback.
            Some(c) => Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(c.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::BadConfig(chain(&e)))?,
            None => Config::infer().await.map_err(|e| {
                use std::error::Error as _;
                let detail = e.source().map(chain).unwrap_or_default();
                ClusterError::NoConfig {
                    kubeconfig: format!("{} ({detail})", kubeconfig_problem()),
                    in_cluster: match std::env::var("KUBERNETES_SERVICE_HOST") {
                        Ok(_) => e.to_string(),
                        Err(_) => "KUBERNETES_SERVICE_HOST is not set".into(),
                    },
                }
            })?,
        };
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = Client::try_from(config).map_err(|e| ClusterError::BadConfig(chain(&e)))?;
        Ok(KatibClient {
            experiments: Api::namespaced_with(
                client.clone(),
                &namespace,
                &katib_resource("Experiment", "experiments"),
            ),
            trials: Api::namespaced_with(client, &namespace, &katib_resource("Trial", "trials")),
            namespace,
            server,
        })
    }

    fn classify(&self, e: kube::Error, verb: &'static str, resource: &'static str) -> ClusterError {
        match e {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                match status.code {
                    401 => ClusterError::Unauthorized {
                        server: self.server.clone(),
                        message,
                    },
                    403 => ClusterError::Forbidden {
                        verb,
                        resource,
                        namespace: self.namespace.clone(),
                        message,
                    },
                    _ => ClusterError::Api {
                        verb,
                        resource,
                        namespace: self.namespace.clone(),
                        message: format!("{} ({})", message, status.code),
                    },
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => ClusterError::Unreachable {
                server: self.server.clone(),
                detail: chain(&e),
            },
            other => ClusterError::Api {
                verb,
                resource,
                namespace: self.namespace.clone(),
                message: chain(&other),
            },
        }
    }

    /// Fails with [`ClusterError::NotInstalled`] when the Experiment resource does not
    /// exist: a 404 on the collection means the CRD is missing (a missing namespace
    /// still lists as empty).
    pub async fn check_installed(&self) -> Result<(), ClusterError> {
        match self.experiments.list(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(ClusterError::NotInstalled {
                server: self.server.clone(),
            }),
            Err(e) => Err(self.classify(e, "list", "experiments")),
        }
    }

    pub async fn experiment(&self, name: &str) -> Result<Option<Value>, ClusterError> {
        // By status code, not `get_opt`: that also wants the reason `NotFound`, which
        // not every server (or proxy in front of one) sends with its 404.
        match self.experiments.get(name).await {
            Ok(o) => Ok(Some(to_value(o))),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(self.classify(e, "get", "experiments")),
        }
    }

    pub async fn create_experiment(&self, experiment: &Value) -> Result<(), ClusterError> {
        let name = experiment["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut obj: DynamicObject =
            serde_json::from_value(experiment.clone()).map_err(|e| ClusterError::Api {
                verb: "create",
                resource: "experiments",
                namespace: self.namespace.clone(),
                message: e.to_string(),
            })?;
        // The URL already names the namespace; kubectl sends it in the body as well, and
        // some servers (the test emulator among them) match watch events on the body's.
        obj.metadata.namespace = Some(self.namespace.clone());
        match self.experiments.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(ClusterError::AlreadyExists {
                name,
                namespace: self.namespace.clone(),
            }),
            Err(e) => Err(self.classify(e, "create", "experiments")),
        }
    }

    pub async fn experiments(&self) -> Result<Vec<Value>, ClusterError> {
        match self.experiments.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items.into_iter().map(to_value).collect()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(ClusterError::NotInstalled {
                server: self.server.clone(),
            }),
            Err(e) => Err(self.classify(e, "list", "experiments")),
        }
    }

    /// The Trials of one Experiment.
    pub async fn trials(&self, experiment: &str) -> Result<Vec<Value>, ClusterError> {
        let lp = ListParams::default().labels(&format!("{EXPERIMENT_LABEL}={experiment}"));
        let list = self
            .trials
            .list(&lp)
            .await
            .map_err(|e| self.classify(e, "list", "trials"))?;
        // The selector already filters; checking again costs nothing and keeps other
        // experiments' trials out even where a server ignores labelSelector.
        Ok(list
            .items
            .into_iter()
            .map(to_value)
            .filter(|t| t["metadata"]["labels"][EXPERIMENT_LABEL] == experiment)
            .collect())
    }

    /// A stream that yields once per change to the Experiment or any of its Trials.
    /// Watch events only say *that* something changed: the caller re-reads the objects,
    /// so no event bookkeeping (resource versions, relists after 410 Gone) is needed here,
    /// and a watch that ends or cannot be opened (say RBAC allows `list` but not `watch`)
    /// degrades to polling every `poll`.
    pub fn changes(&self, experiment: &str, poll: Duration) -> impl Stream<Item = ()> + use<> {
        let exp = watch_stream(
            self.experiments.clone(),
            WatchParams::default()
                .fields(&format!("metadata.name={experiment}"))
                .timeout(290),
            poll,
        );
        let trials = watch_stream(
            self.trials.clone(),
            WatchParams::default()
                .labels(&format!("{EXPERIMENT_LABEL}={experiment}"))
                .timeout(290),
            poll,
        );
        let ticks = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(poll).await;
            Some(((), ()))
        });
        futures::stream::select(futures::stream::select(exp, trials), ticks)
    }
}

/// Yields `()` per watch event; reopens the watch when the server ends it and waits
/// `retry` after a failed attempt.
fn watch_stream(
    api: Api<DynamicObject>,
    wp: WatchParams,
    retry: Duration,
) -> impl Stream<Item = ()> {
    futures::stream::unfold(
        (
            api,
            wp,
            None::<futures::stream::BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>>,
        ),
        move |(api, wp, mut stream)| async move {
            loop {
                match stream.as_mut() {
                    None => match api.watch(&wp, "0").await {
                        Ok(s) => stream = Some(s.boxed()),
                        Err(_) => tokio::time::sleep(retry).await,
                    },
                    Some(s) => match s.next().await {
                        Some(Ok(_)) => return Some(((), (api, wp, stream))),
                        Some(Err(_)) | None => {
                            stream = None;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                }
            }
        },
    )
}

fn kubeconfig_problem() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => format!(
            "cannot read KUBECONFIG={}",
            std::path::PathBuf::from(v).display()
        ),
        None => {
            let default = std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(".kube/config"))
                .filter(|p| p.exists());
            match default {
                Some(p) => format!("cannot read {}", p.display()),
                None => "KUBECONFIG is not set and there is no ~/.kube/config".into(),
            }
        }
    }
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------
// Reading Katib's status fields (pure).

fn condition_true<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

fn count(status: &Value, field: &str) -> u64 {
    status[field].as_u64().unwrap_or(0)
}

/// A metric's value as Katib ranks it: `min`, `max` or `latest` observation, per the
/// Experiment's metric strategy (the webhook fills the strategies in; without them Katib
/// takes max when maximizing and min when minimizing).
fn observed(metrics: &Value, name: &str, strategy: &str) -> Option<f64> {
    let m = metrics.as_array()?.iter().find(|m| m["name"] == name)?;
    let text = m[strategy].as_str().or_else(|| m["latest"].as_str())?;
    // Katib stores "unavailable" when the collector saw no value.
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The parts of an Experiment the live view, the summary and `experiments list` show.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentView {
    pub name: String,
    pub objective: String,
    /// `maximize` or `minimize`.
    pub direction: String,
    pub algorithm: String,
    pub max_trials: u64,
    pub parallel: u64,
    /// created, running, restarting, succeeded, failed
    pub phase: String,
    /// Katib's reason for the latest condition, in kale's words where kale has them.
    pub reason: String,
    pub trials: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub early_stopped: u64,
    pub best: Option<BestTrial>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// metric name → strategy (`min`, `max`, `latest`).
    strategies: Map<String, Value>,
    /// parameter name → Katib type (`int`, `double`, `categorical`, `discrete`).
    parameter_types: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BestTrial {
    pub trial: String,
    pub params: Value,
    pub metrics: Map<String, Value>,
    pub value: Option<f64>,
}

impl ExperimentView {
    pub fn from_object(obj: &Value) -> ExperimentView {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let objective = spec["objective"]["objectiveMetricName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let direction = spec["objective"]["type"]
            .as_str()
            .unwrap_or("maximize")
            .to_string();
        let mut strategies = Map::new();
        for s in spec["objective"]["metricStrategies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(v)) = (s["name"].as_str(), s["value"].as_str()) {
                strategies.insert(n.into(), json!(v));
            }
        }
        let mut parameter_types = Map::new();
        for p in spec["parameters"].as_array().into_iter().flatten() {
            if let (Some(n), Some(t)) = (p["name"].as_str(), p["parameterType"].as_str()) {
                parameter_types.insert(n.into(), json!(t));
            }
        }
        let phase = if condition_true(obj, "Succeeded").is_some() {
            "succeeded"
        } else if condition_true(obj, "Failed").is_some() {
            "failed"
        } else if condition_true(obj, "Restarting").is_some() {
            "restarting"
        } else if condition_true(obj, "Running").is_some() {
            "running"
        } else {
            "created"
        };
        let reason = ["Succeeded", "Failed", "Restarting", "Running", "Created"]
            .iter()
            .find_map(|k| condition_true(obj, k))
            .map(|c| {
                let reason = c["reason"].as_str().unwrap_or_default();
                match reason {
                    "ExperimentGoalReached" => "goal reached".to_string(),
                    "ExperimentMaxTrialsReached" => "max trials reached".to_string(),
                    "ExperimentSuggestionEndReached" => "search space exhausted".to_string(),
                    _ => c["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .unwrap_or(reason)
                        .to_string(),
                }
            })
            .unwrap_or_else(|| "waiting for Katib".into());
        let mut view = ExperimentView {
            name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
            algorithm: spec["algorithm"]["algorithmName"]
                .as_str()
                .unwrap_or_default()
                .into(),
            max_trials: spec["maxTrialCount"].as_u64().unwrap_or(0),
            parallel: spec["parallelTrialCount"].as_u64().unwrap_or(0),
            phase: phase.into(),
            reason,
            trials: count(status, "trials"),
            succeeded: count(status, "trialsSucceeded"),
            failed: count(status, "trialsFailed") + count(status, "trialMetricsUnavailable"),
            running: count(status, "trialsRunning"),
            early_stopped: count(status, "trialsEarlyStopped"),
            best: None,
            started: timestamp(&status["startTime"])
                .or_else(|| timestamp(&obj["metadata"]["creationTimestamp"])),
            finished: timestamp(&status["completionTime"]),
            objective,
            direction,
            strategies,
            parameter_types,
        };
        let optimal = &status["currentOptimalTrial"];
        let best_name = optimal["bestTrialName"].as_str().unwrap_or_default();
        if !best_name.is_empty() || optimal["parameterAssignments"].is_array() {
            let metrics = view.metrics(&optimal["observation"]["metrics"]);
            let value = metrics.get(&view.objective).and_then(Value::as_f64);
            // Katib reports an empty optimal trial until one has an observation.
            if value.is_some() || !best_name.is_empty() {
                view.best = Some(BestTrial {
                    trial: best_name.to_string(),
                    params: view.params(&optimal["parameterAssignments"]),
                    metrics,
                    value,
                });
            }
        }
        view
    }

    pub fn is_finished(&self) -> bool {
        self.phase == "succeeded" || self.phase == "failed"
    }

    fn strategy(&self, metric: &str) -> &str {
        self.strategies
            .get(metric)
            .and_then(Value::as_str)
            .unwrap_or(if self.direction == "minimize" {
                "min"
            } else {
                "max"
            })
    }

    /// Observed metrics as numbers, each by its strategy.
    pub fn metrics(&self, observation: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        for m in observation.as_array().into_iter().flatten() {
            let Some(name) = m["name"].as_str() else {
                continue;
            };
            if let Some(v) = observed(observation, name, self.strategy(name)) {
                out.insert(name.into(), json!(v));
            }
        }
        out
    }

    /// Katib's string assignments, with numeric parameters as numbers like local tuning
    /// reports them.
    pub fn params(&self, assignments: &Value) -> Value {
        let mut out = Map::new();
        for a in assignments.as_array().into_iter().flatten() {
            let (Some(name), Some(text)) = (a["name"].as_str(), a["value"].as_str()) else {
                continue;
            };
            let kind = self
                .parameter_types
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("");
            let v = match kind {
                "int" => text.parse::<i64>().map(|i| json!(i)).ok(),
                "double" | "discrete" => text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| json!(f)),
                _ => None,
            };
            out.insert(name.into(), v.unwrap_or_else(|| json!(text)));
        }
        Value::Object(out)
    }
}

/// One Trial as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialView {
    pub name: String,
    /// pending, running, succeeded, failed, early_stopped (kale's local names; Katib's
    /// Killed and MetricsUnavailable count as failed).
    pub status: String,
    pub params: Value,
    pub metrics: Map<String, Value>,
    pub value: Option<f64>,
    pub created: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// Why a trial failed, from its condition.
    pub message: Option<String>,
}

impl TrialView {
    pub fn from_object(obj: &Value, exp: &ExperimentView) -> TrialView {
        let status = if condition_true(obj, "Succeeded").is_some() {
            "succeeded"
        } else if condition_true(obj, "EarlyStopped").is_some() {
            "early_stopped"
        } else if ["Failed", "Killed", "MetricsUnavailable"]
            .iter()
            .any(|k| condition_true(obj, k).is_some())
        {
            "failed"
        } else if condition_true(obj, "Running").is_some() {
            "running"
        } else {
            "pending"
        };
        let message = ["Failed", "MetricsUnavailable", "Killed"]
            .iter()
            .find_map(|k| condition_true(obj, k))
            .and_then(|c| c["message"].as_str().or(c["reason"].as_str()))
            .map(str::to_string);
        let metrics = exp.metrics(&obj["status"]["observation"]["metrics"]);
        TrialView {
            name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
            status: status.into(),
            params: exp.params(&obj["spec"]["parameterAssignments"]),
            value: metrics.get(&exp.objective).and_then(Value::as_f64),
            metrics,
            created: timestamp(&obj["metadata"]["creationTimestamp"]),
            started: timestamp(&obj["status"]["startTime"]),
            finished: timestamp(&obj["status"]["completionTime"]),
            message,
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self.status.as_str(), "pending" | "running")
    }

    /// Seconds the trial ran (until now when it still runs).
    pub fn seconds(&self, now: Timestamp) -> Option<f64> {
        let start = self.started.or(self.created)?;
        let end = if self.is_finished() {
            self.finished.unwrap_or(now)
        } else {
            now
        };
        Some((end.as_millisecond() - start.as_millisecond()).max(0) as f64 / 1000.0)
    }
}

/// Trials in creation order, which numbers them 1, 2, … the way local trials are
/// numbered (Katib names them `<experiment>-<random>`).
pub fn ordered_trials(objects: &[Value], exp: &ExperimentView) -> Vec<TrialView> {
    let mut trials: Vec<TrialView> = objects
        .iter()
        .map(|o| TrialView::from_object(o, exp))
        .collect();
    trials.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    trials
}

/// When kale runs in a Kubernetes pod (`KUBERNETES_SERVICE_HOST` set, as in a Kubeflow
/// notebook server), the image of its notebook container: the pod is the one named
/// `$HOSTNAME` in the configured namespace (in a pod, the service account's). `Ok(None)`
/// outside a pod. Steps and trials default to it: it has every library the user just
/// ran the notebook with.
pub async fn own_pod_image() -> Result<Option<String>, String> {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        return Ok(None);
    }
    let Some(pod_name) = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let config = Config::infer().await.map_err(|e| chain(&e))?;
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| chain(&e))?;
    let pods: Api<DynamicObject> = Api::namespaced_with(
        client,
        &namespace,
        &ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
        },
    );
    let pod = pods
        .get(&pod_name)
        .await
        .map_err(|e| format!("reading pod {namespace}/{pod_name}: {}", chain(&e)))?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    notebook_image(&pod.data, labels.get("notebook-name").map(String::as_str))
        .map(Some)
        .ok_or_else(|| format!("pod {namespace}/{pod_name} has no container with an image"))
}

/// The notebook container's image: Kubeflow's notebook controller names the container
/// after the notebook (the pod's `notebook-name` label); else the first container.
pub fn notebook_image(pod: &Value, notebook_name: Option<&str>) -> Option<String> {
    let containers = pod["spec"]["containers"].as_array()?;
    containers
        .iter()
        .find(|c| notebook_name.is_some() && c["name"].as_str() == notebook_name)
        .or_else(|| containers.first())
        .and_then(|c| c["image"].as_str())
        .filter(|i| !i.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notebook_container_is_the_one_named_after_the_notebook() {
        let pod = json!({"spec": {"containers": [
            {"name": "istio-proxy", "image": "istio/proxyv2:1.24"},
            {"name": "my-nb", "image": "ghcr.io/team/ds:2"},
        ]}});
        assert_eq!(
            notebook_image(&pod, Some("my-nb")).as_deref(),
            Some("ghcr.io/team/ds:2")
        );
        assert_eq!(
            notebook_image(&pod, None).as_deref(),
            Some("istio/proxyv2:1.24")
        );
        assert_eq!(notebook_image(&json!({"spec": {}}), None), None);
    }

    fn experiment() -> Value {
        json!({
            "metadata": {"name": "digits", "creationTimestamp": "2026-11-22T10:00:00Z"},
            "spec": {
                "objective": {"type": "maximize", "objectiveMetricName": "acc",
                              "metricStrategies": [{"name": "acc", "value": "max"}, {"name": "loss", "value": "min"}]},
                "algorithm": {"algorithmName": "random"},
                "maxTrialCount": 4, "parallelTrialCount": 2,
                "parameters": [
                    {"name": "lr", "parameterType": "double"},
                    {"name": "depth", "parameterType": "int"},
                    {"name": "act", "parameterType": "categorical"},
                ],
            },
            "status": {
                "startTime": "2026-11-22T10:00:01Z",
                "completionTime": "2026-11-22T10:05:00Z",
                "conditions": [
                    {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                    {"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                    {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                     "message": "Experiment has succeeded because max trial count has reached"},
                ],
                "trials": 4, "trialsSucceeded": 3, "trialsFailed": 1, "trialMetricsUnavailable": 0,
                "currentOptimalTrial": {
                    "bestTrialName": "digits-abcd1234",
                    "parameterAssignments": [{"name": "lr", "value": "0.01"}, {"name": "depth", "value": "3"}, {"name": "act", "value": "relu"}],
                    "observation": {"metrics": [
                        {"name": "acc", "latest": "0.9", "min": "0.8", "max": "0.95"},
                        {"name": "loss", "latest": "0.3", "min": "0.2", "max": "0.4"},
                    ]},
                },
            },
        })
    }

    #[test]
    fn experiment_status_counts_best_and_reason() {
        let v = ExperimentView::from_object(&experiment());
        assert_eq!(v.phase, "succeeded");
        assert!(v.is_finished());
        assert_eq!(v.reason, "max trials reached");
        assert_eq!((v.trials, v.succeeded, v.failed), (4, 3, 1));
        let best = v.best.unwrap();
        assert_eq!(best.trial, "digits-abcd1234");
        assert_eq!(best.params, json!({"lr": 0.01, "depth": 3, "act": "relu"}));
        // each metric by its own strategy
        assert_eq!(
            best.metrics,
            *json!({"acc": 0.95, "loss": 0.2}).as_object().unwrap()
        );
        assert_eq!(best.value, Some(0.95));
    }

    #[test]
    fn a_new_experiment_waits_and_failure_keeps_katibs_message() {
        let v = ExperimentView::from_object(&json!({"metadata": {"name": "x"}, "spec": {}}));
        assert_eq!(
            (v.phase.as_str(), v.reason.as_str()),
            ("created", "waiting for Katib")
        );
        assert!(v.best.is_none() && !v.is_finished());
        let v = ExperimentView::from_object(&json!({"metadata": {"name": "x"}, "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "ExperimentFailed",
                            "message": "Experiment has failed because max failed count has reached"}],
            "currentOptimalTrial": {"bestTrialName": "", "observation": {"metrics": null}}}}));
        assert_eq!(v.phase, "failed");
        assert_eq!(
            v.reason,
            "Experiment has failed because max failed count has reached"
        );
        assert!(v.best.is_none());
    }

    #[test]
    fn trial_states_metrics_and_order() {
        let exp = ExperimentView::from_object(&experiment());
        let t = |name: &str, created: &str, conds: Value, metrics: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "spec": {"parameterAssignments": [{"name": "lr", "value": "0.1"}]},
                   "status": {"conditions": conds, "observation": {"metrics": metrics},
                              "startTime": created}})
        };
        let objs = vec![
            t(
                "digits-b",
                "2026-11-22T10:00:02Z",
                json!([{"type": "Running", "status": "True"}]),
                Value::Null,
            ),
            t(
                "digits-a",
                "2026-11-22T10:00:01Z",
                json!([{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]),
                json!([{"name": "acc", "latest": "0.7", "min": "0.7", "max": "0.7"}]),
            ),
            t(
                "digits-c",
                "2026-11-22T10:00:03Z",
                json!([{"type": "MetricsUnavailable", "status": "True", "message": "Metrics are not available"}]),
                json!([{"name": "acc", "latest": "unavailable", "min": "unavailable", "max": "unavailable"}]),
            ),
        ];
        let trials = ordered_trials(&objs, &exp);
        let names: Vec<_> = trials.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["digits-a", "digits-b", "digits-c"]);
        assert_eq!(trials[0].status, "succeeded");
        assert_eq!(trials[0].value, Some(0.7));
        assert_eq!(trials[0].params, json!({"lr": 0.1}));
        assert_eq!(trials[1].status, "running");
        assert_eq!(trials[2].status, "failed");
        assert_eq!(trials[2].value, None);
        assert_eq!(
            trials[2].message.as_deref(),
            Some("Metrics are not available")
        );
        let now: Timestamp = "2026-11-22T10:00:12Z".parse().unwrap();
        assert_eq!(trials[1].seconds(now), Some(10.0));
    }
}
