//! A small client for the Kubeflow Pipelines REST API (v2beta1): upload a pipeline or a
//! new version of it, and start a run. (What a Katib trial does with the API, start a
//! run, follow it and read back its metrics, is the trial driver's, `trial_driver.py`.)
//!
//! Blocking on purpose: `kale submit` and the upload of `kale tune --katib` do one thing
//! at a time, and a blocking client keeps them free of an async runtime.
//!
//! Conventions shared with the KFP SDK: the endpoint comes from `--kfp-endpoint`, else
//! `KF_PIPELINES_ENDPOINT`, else the in-cluster service; the bearer token from
//! `KF_PIPELINES_TOKEN`, else the file `KF_PIPELINES_SA_TOKEN_PATH` names (default
//! `/var/run/secrets/kubeflow/pipelines/token`, which Kubeflow's PodDefault mounts).

use std::time::Duration;

use serde_json::{Map, Value, json};

/// The KFP API service as seen from a pod in the cluster.
pub const IN_CLUSTER_ENDPOINT: &str = "http://ml-pipeline.kubeflow.svc.cluster.local:8888";
const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubeflow/pipelines/token";

#[derive(Debug, thiserror::Error)]
pub enum KfpError {
    #[error("cannot reach the Kubeflow Pipelines API at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the Kubeflow Pipelines API refused {what} ({status}): {message}")]
    Forbidden {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },
    #[error("{what} failed ({status}): {message}")]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl KfpError {
    fn hint(&self) -> &'static str {
        match self {
            KfpError::Unreachable { .. } => {
                "pass --kfp-endpoint URL or set KF_PIPELINES_ENDPOINT; from outside the cluster, e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888` and use http://localhost:8888"
            }
            KfpError::Forbidden { .. } => {
                "set KF_PIPELINES_TOKEN (or KF_PIPELINES_SA_TOKEN_PATH) to a token allowed to use this namespace's pipelines"
            }
            KfpError::NotFound { .. } => "check the pipeline / version / run id",
            KfpError::Api { .. } | KfpError::Other(_) => {
                "the message above is the KFP API server's own"
            }
        }
    }
}

/// An id that names nothing is the user's to fix; the rest is the KFP API server.
impl From<KfpError> for crate::Error {
    fn from(e: KfpError) -> Self {
        let kind = match e {
            KfpError::NotFound { .. } => crate::ErrorKind::BadInput,
            _ => crate::ErrorKind::Environment,
        };
        crate::Error::new(kind, &e).with_hint(e.hint())
    }
}

/// An id pair that names one uploaded pipeline version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineVersionRef {
    pub pipeline_id: String,
    pub version_id: String,
}

pub struct KfpClient {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl KfpClient {
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        KfpClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// Endpoint and token by the SDK's conventions (see the module docs).
    pub fn from_env(endpoint: Option<&str>) -> Self {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("KF_PIPELINES_ENDPOINT").ok())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| IN_CLUSTER_ENDPOINT.to_string());
        let token = std::env::var("KF_PIPELINES_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                let path = std::env::var("KF_PIPELINES_SA_TOKEN_PATH")
                    .unwrap_or_else(|_| DEFAULT_TOKEN_PATH.to_string());
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
            });
        Self::new(&endpoint, token)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    fn finish(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, KfpError> {
        let mut resp = result.map_err(|e| KfpError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(json!({}));
            }
            return serde_json::from_str(&text).map_err(|e| {
                KfpError::Other(format!(
                    "{what}: the KFP API answered with something that is not JSON ({e}); is {} really the KFP API?",
                    self.endpoint
                ))
            });
        }
        // grpc-gateway errors: {"error"|"message": ..., "code": N}
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        let what = what.to_string();
        Err(match status {
            401 | 403 => KfpError::Forbidden {
                what,
                status,
                message,
            },
            404 => KfpError::NotFound { what, message },
            _ => KfpError::Api {
                what,
                status,
                message,
            },
        })
    }

    fn get(&self, what: &str, path: &str, query: &[(&str, &str)]) -> Result<Value, KfpError> {
        let mut req = self.agent.get(self.url(path));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(what, req.call())
    }

    fn post_json(&self, what: &str, path: &str, body: &Value) -> Result<Value, KfpError> {
        let mut req = self.agent.post(self.url(path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(what, req.send_json(body))
    }

    fn post_file(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
        file_name: &str,
        content: &str,
    ) -> Result<Value, KfpError> {
        // The upload endpoints take a multipart form with the file in `uploadfile`.
        let boundary = format!("kale-{:016x}", rand::random::<u64>());
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"{file_name}\"\r\nContent-Type: application/x-yaml\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content.as_bytes());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut req = self.agent.post(self.url(path)).header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        );
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(what, req.send(&body[..]))
    }

    /// The id of the pipeline with this display name, if one exists.
    pub fn find_pipeline(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Option<String>, KfpError> {
        self.find_by_display_name("pipelines", "pipeline_id", name, namespace)
    }

    /// The id of the first `kind` (`pipelines`, `experiments`) whose display name
    /// is `name`: the server filters, we read the `id_field` of what it lists.
    fn find_by_display_name(
        &self,
        kind: &str,
        id_field: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Option<String>, KfpError> {
        let filter = json!({"predicates": [{
            "key": "display_name", "operation": "EQUALS", "string_value": name,
        }]})
        .to_string();
        let mut query = vec![("filter", filter.as_str()), ("page_size", "1")];
        if let Some(ns) = namespace {
            query.push(("namespace", ns));
        }
        let v = self.get(
            &format!("listing {kind}"),
            &format!("/apis/v2beta1/{kind}"),
            &query,
        )?;
        Ok(v[kind]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p[id_field].as_str())
            .map(str::to_string))
    }

    /// The newest version of a pipeline.
    pub fn latest_version(&self, pipeline_id: &str) -> Result<String, KfpError> {
        let v = self.get(
            "listing pipeline versions",
            &format!("/apis/v2beta1/pipelines/{pipeline_id}/versions"),
            &[("page_size", "1"), ("sort_by", "created_at desc")],
        )?;
        v["pipeline_versions"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p["pipeline_version_id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| KfpError::NotFound {
                what: format!("a version of pipeline {pipeline_id}"),
                message: "the pipeline has no versions".into(),
            })
    }

    /// Uploads `yaml` as a new pipeline, or as a new version of the pipeline of the same
    /// name when there is one.
    pub fn upload(
        &self,
        name: &str,
        description: &str,
        yaml: &str,
        version_name: &str,
        namespace: Option<&str>,
    ) -> Result<PipelineVersionRef, KfpError> {
        let file = format!("{name}.yaml");
        match self.find_pipeline(name, namespace)? {
            Some(pipeline_id) => {
                let v = self.post_file(
                    &format!("uploading a new version of pipeline `{name}`"),
                    "/apis/v2beta1/pipelines/upload_version",
                    &[
                        ("name", version_name),
                        ("display_name", version_name),
                        ("pipelineid", &pipeline_id),
                        ("description", description),
                    ],
                    &file,
                    yaml,
                )?;
                let version_id = v["pipeline_version_id"]
                    .as_str()
                    .ok_or_else(|| {
                        KfpError::Other(format!("upload_version answered without an id: {v}"))
                    })?
                    .to_string();
                Ok(PipelineVersionRef {
                    pipeline_id,
                    version_id,
                })
            }
            None => {
                let mut query = vec![
                    ("name", name),
                    ("display_name", name),
                    ("description", description),
                ];
                if let Some(ns) = namespace {
                    query.push(("namespace", ns));
                }
                let v = self.post_file(
                    &format!("uploading pipeline `{name}`"),
                    "/apis/v2beta1/pipelines/upload",
                    &query,
                    &file,
                    yaml,
                )?;
                let pipeline_id = v["pipeline_id"]
                    .as_str()
                    .ok_or_else(|| KfpError::Other(format!("upload answered without an id: {v}")))?
                    .to_string();
                let version_id = self.latest_version(&pipeline_id)?;
                Ok(PipelineVersionRef {
                    pipeline_id,
                    version_id,
                })
            }
        }
    }

    /// The id of the KFP experiment with this name, created if missing.
    pub fn ensure_experiment(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<String, KfpError> {
        if let Some(id) =
            self.find_by_display_name("experiments", "experiment_id", name, namespace)?
        {
            return Ok(id);
        }
        let mut body = json!({"display_name": name});
        if let Some(ns) = namespace {
            body["namespace"] = json!(ns);
        }
        let created = self.post_json(
            &format!("creating experiment `{name}`"),
            "/apis/v2beta1/experiments",
            &body,
        )?;
        created["experiment_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| KfpError::Other(format!("experiment created without an id: {created}")))
    }

    /// Starts a run; returns its id. `parameters` must already have the JSON types the
    /// pipeline declares (the server rejects a number sent as a string).
    pub fn create_run(
        &self,
        display_name: &str,
        version: &PipelineVersionRef,
        experiment_id: Option<&str>,
        parameters: &Map<String, Value>,
    ) -> Result<String, KfpError> {
        let mut body = json!({
            "display_name": display_name,
            "pipeline_version_reference": {
                "pipeline_id": version.pipeline_id,
                "pipeline_version_id": version.version_id,
            },
            "runtime_config": {"parameters": parameters},
        });
        if let Some(x) = experiment_id {
            body["experiment_id"] = json!(x);
        }
        let run = self.post_json("creating a run", "/apis/v2beta1/runs", &body)?;
        run["run_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| KfpError::Other(format!("run created without an id: {run}")))
    }
}

/// Converts a parameter given as text (`kale submit -p`) to the JSON type the pipeline
/// declares for it.
pub fn typed_parameter(name: &str, declared: &str, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("parameter `{name}` must be {what}, got `{text}`");
    match declared {
        "NUMBER_INTEGER" => text
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(|i| json!(i))
            .ok_or_else(|| bad("an integer")),
        "NUMBER_DOUBLE" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number")),
        "BOOLEAN" => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(json!(true)),
            "false" | "0" => Ok(json!(false)),
            _ => Err(bad("true or false")),
        },
        "STRING" => Ok(json!(text)),
        other => Err(format!(
            "parameter `{name}` has type {other}, which kale cannot pass"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katib_strings_become_the_declared_json_types() {
        assert_eq!(
            typed_parameter("n", "NUMBER_INTEGER", "3").unwrap(),
            json!(3)
        );
        assert_eq!(
            typed_parameter("n", "NUMBER_INTEGER", "3.0").unwrap(),
            json!(3)
        );
        assert!(typed_parameter("n", "NUMBER_INTEGER", "3.5").is_err());
        assert_eq!(
            typed_parameter("lr", "NUMBER_DOUBLE", "1e-3").unwrap(),
            json!(0.001)
        );
        assert!(typed_parameter("lr", "NUMBER_DOUBLE", "nan").is_err());
        assert_eq!(
            typed_parameter("b", "BOOLEAN", "True").unwrap(),
            json!(true)
        );
        assert_eq!(typed_parameter("s", "STRING", "3").unwrap(), json!("3"));
    }
}
