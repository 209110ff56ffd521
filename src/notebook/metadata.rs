//! The notebook-level `kubeflow_notebook` metadata Kale's JupyterLab extension writes.
//!
//! Kale 2.x rejects unknown keys; kale only warns, so notebooks saved by any Kale version
//! (v0.x wrote `docker_image`, `autosnapshot`, ...) load unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Diagnostics};

#[derive(Clone, Debug, Default, Serialize)]
pub struct NotebookMetadata {
    pub pipeline_name: Option<String>,
    pub experiment_name: Option<String>,
    pub pipeline_description: Option<String>,
    /// `base_image`, or the v0.x name `docker_image`.
    pub base_image: Option<String>,
    pub enable_caching: Option<bool>,
    pub volumes: Vec<Volume>,
    /// Tags applied to every step (`label:...`, `limit:...`, ...); a step's own tags win.
    pub steps_defaults: Vec<String>,
    pub katib_metadata: Option<KatibMetadata>,
}

/// Katib settings saved by Kale's Katib dialog. Kept as JSON: the search crate owns the
/// meaning of `parameters`, and the tune command reads the rest.
#[derive(Clone, Debug, Serialize)]
pub struct KatibMetadata(pub Value);

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Volume {
    pub name: String,
    pub mount_point: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub size: Option<Value>,
    #[serde(default)]
    pub size_type: Option<String>,
    #[serde(default)]
    pub storage_class_name: Option<String>,
    #[serde(default)]
    pub expose_as_env_var: bool,
}

/// Keys Kale (any version) writes that kale reads elsewhere or has no use for locally.
const ACCEPTED_KEYS: &[&str] = &[
    "katib_run",
    "abs_working_dir",
    "marshal_path",
    "marshal_volume",
    "kfp_host",
    "storage_class_name",
    "volume_access_mode",
    "timeout",
    "security_context",
    "output_path",
    "experiment",
    "snapshot_volumes",
    "autosnapshot",
    "notebook_path",
];

pub(crate) fn read(metadata: &Value, diags: &mut Diagnostics) -> NotebookMetadata {
    let mut out = NotebookMetadata::default();
    let Some(raw) = metadata.get("kubeflow_notebook") else {
        return out;
    };
    let Value::Object(map) = raw else {
        diags.push(Diagnostic::error(
            "notebook metadata `kubeflow_notebook` must be an object",
        ));
        return out;
    };
    out.pipeline_name = string_field(map, "pipeline_name", diags);
    out.experiment_name = string_field(map, "experiment_name", diags);
    out.pipeline_description = string_field(map, "pipeline_description", diags);
    let base = string_field(map, "base_image", diags).filter(|s| !s.is_empty());
    let docker = string_field(map, "docker_image", diags).filter(|s| !s.is_empty());
    out.base_image = base.or(docker);
    if let Some(v) = map.get("enable_caching") {
        match v {
            Value::Bool(b) => out.enable_caching = Some(*b),
            Value::Null => {}
            other => diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.enable_caching` must be true or false, found {other}"
            ))),
        }
    }
    if let Some(v) = map.get("volumes") {
        match v {
            Value::Array(list) => {
                for (i, item) in list.iter().enumerate() {
                    match serde_json::from_value::<Volume>(item.clone()) {
                        Ok(vol) => out.volumes.push(vol),
                        Err(e) => diags.push(Diagnostic::error(format!(
                            "`kubeflow_notebook.volumes[{i}]` is not a valid volume: {e}"
                        ))),
                    }
                }
            }
            Value::Null => {}
            other => diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.volumes` must be a list, found {other}"
            ))),
        }
    }
    if let Some(v) = map.get("steps_defaults") {
        match v {
            Value::Array(list) => {
                for item in list {
                    match item {
                        Value::String(s) => out.steps_defaults.push(s.clone()),
                        other => diags.push(Diagnostic::error(format!(
                            "`kubeflow_notebook.steps_defaults` must hold tag strings, found {other}"
                        ))),
                    }
                }
            }
            // Kale's own default for this field is an empty object.
            Value::Object(m) if m.is_empty() => {}
            Value::Null => {}
            other => diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.steps_defaults` must be a list of tags, found {other}"
            ))),
        }
    }
    if let Some(v) = map.get("katib_metadata") {
        match v {
            Value::Object(_) => out.katib_metadata = Some(KatibMetadata(v.clone())),
            Value::Null => {}
            other => diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.katib_metadata` must be an object, found {other}"
            ))),
        }
    }
    for key in map.keys() {
        let known = matches!(
            key.as_str(),
            "pipeline_name"
                | "experiment_name"
                | "pipeline_description"
                | "base_image"
                | "docker_image"
                | "enable_caching"
                | "volumes"
                | "steps_defaults"
                | "katib_metadata"
        ) || ACCEPTED_KEYS.contains(&key.as_str());
        if !known {
            diags.push(Diagnostic::warning(format!(
                "unknown key `kubeflow_notebook.{key}` in the notebook metadata is ignored"
            )));
        }
    }
    out
}

fn string_field(map: &Map<String, Value>, key: &str, diags: &mut Diagnostics) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.{key}` must be a string, found {other}"
            )));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_known_fields_and_aliases() {
        let mut d = Diagnostics::default();
        let md = read(
            &json!({"kubeflow_notebook": {
                "pipeline_name": "p", "experiment_name": "e", "docker_image": "img:1",
                "volumes": [{"name": "data", "mount_point": "/data", "type": "pvc"}],
                "steps_defaults": ["label:a:b"], "katib_metadata": {"maxTrialCount": 3},
                "autosnapshot": true
            }}),
            &mut d,
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(md.pipeline_name.as_deref(), Some("p"));
        assert_eq!(md.base_image.as_deref(), Some("img:1"));
        assert_eq!(md.volumes.len(), 1);
        assert_eq!(md.steps_defaults, vec!["label:a:b"]);
        assert!(md.katib_metadata.is_some());
    }

    #[test]
    fn unknown_keys_warn_and_wrong_types_error() {
        let mut d = Diagnostics::default();
        read(
            &json!({"kubeflow_notebook": {"pipeline_name": 3, "brand_new_key": 1, "steps_defaults": {}}}),
            &mut d,
        );
        assert_eq!(d.errors().count(), 1);
        assert_eq!(d.warnings().count(), 1);
        assert!(
            d.warnings()
                .next()
                .unwrap()
                .message
                .contains("brand_new_key")
        );
    }
}
