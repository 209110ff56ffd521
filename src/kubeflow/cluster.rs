//! The Kubernetes client for Katib: create an Experiment, read it and its Trials back,
//! and wait for changes. What kale makes of the objects it reads is in
//! [`super::katib_view`].
//!
//! Configuration follows kubectl's conventions through kube-rs: `$KUBECONFIG` (or
//! `~/.kube/config`) and its current context, else the pod's service account when running
//! inside a cluster; `--context` picks another kubeconfig context and `--namespace`
//! overrides the context's namespace.
//!
//! Katib objects are read as [`DynamicObject`]s through an [`ApiResource`] rather than a
//! typed `CustomResource`: Katib publishes its CRDs without a structural schema kale could
//! generate types from, kale only reads a handful of status fields, and a loose JSON view
//! keeps working across Katib releases that add fields.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config};
use serde_json::Value;

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
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
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
