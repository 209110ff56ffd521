//! The pod kale runs in, when it runs in one (a Kubeflow notebook server): its image is
//! the natural default for steps and trials, since it has every library the notebook
//! just ran with.

use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client, Config};
use serde_json::Value;

use super::cluster::chain;
use crate::pipeline::Pipeline;

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

/// Inside a pod (a Kubeflow notebook server), steps and trials default to the pod's own
/// image, which has the libraries the notebook ran with: used when the notebook sets no
/// `base_image` (a step's `image:` tag still wins). Outside a pod, nothing changes.
/// Returns the line to show: a note when the image was taken, a warning when it could
/// not be read.
pub async fn default_to_own_pod_image(p: &mut Pipeline) -> Option<String> {
    if p.metadata
        .base_image
        .as_deref()
        .is_some_and(|s| !s.is_empty())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
    {
        return None;
    }
    let found = tokio::time::timeout(std::time::Duration::from_secs(10), own_pod_image())
        .await
        .unwrap_or_else(|_| Err("the API server did not answer within 10 s".into()));
    match found {
        Ok(Some(image)) => {
            let note = format!(
                "note: steps and trials run this notebook pod's image `{image}` (set `base_image` to choose another)"
            );
            p.metadata.base_image = Some(image);
            Some(note)
        }
        Ok(None) => None,
        Err(e) => Some(format!(
            "warning: kale runs in a pod but cannot read its image ({e}); steps run `{}` unless the notebook sets `base_image`",
            super::kfp::DEFAULT_IMAGE
        )),
    }
}

/// [`default_to_own_pod_image`] for callers outside an async runtime.
pub fn default_to_own_pod_image_now(p: &mut Pipeline) -> Option<String> {
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(default_to_own_pod_image(p)),
        Err(e) => Some(format!(
            "warning: kale runs in a pod but cannot read its image ({e}); steps run `{}` unless the notebook sets `base_image`",
            super::kfp::DEFAULT_IMAGE
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
