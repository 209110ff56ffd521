//! `kale validate` as one operation: the notebook's problems and, for a pipeline that
//! builds, what `kale compile` would warn about the steps' images; as the summary line
//! a person reads or the JSON document editors (the JupyterLab panel) read.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::pipeline::Pipeline;
use crate::{Error, ErrorKind};

pub struct Validation {
    notebook: PathBuf,
    pipeline: Option<Pipeline>,
    diags: Diagnostics,
    /// Inside a pod: the steps' image is the pod's own, or why it could not be.
    pod_image: Option<String>,
    /// What `compile` would warn about the steps' images: a stock Python image and
    /// imports kale cannot pin (the notes about what gets installed are compile's).
    image_warnings: Vec<String>,
}

impl Validation {
    /// The notebook at `notebook`, loaded as `pipeline` (when it builds) with its
    /// problems `diags`.
    pub fn of(notebook: &Path, pipeline: Option<Pipeline>, diags: Diagnostics) -> Validation {
        let mut pipeline = pipeline;
        let (pod_image, image_warnings) = match &mut pipeline {
            Some(p) => {
                let pod_image = crate::kubeflow::pod::default_to_own_pod_image_now(p);
                let packages = crate::kubeflow::packages::for_steps(p, None);
                (
                    pod_image,
                    crate::kubeflow::kfp::image_messages(p, &packages).0,
                )
            }
            None => (None, Vec::new()),
        };
        Validation {
            notebook: notebook.to_path_buf(),
            pipeline,
            diags,
            pod_image,
            image_warnings,
        }
    }

    /// The notebook's own problems (not the images').
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diags
    }

    /// The line saying which image the steps default to inside a pod, if any.
    pub fn pod_image_line(&self) -> Option<&str> {
        self.pod_image.as_deref()
    }

    /// The `--json` document: the problems (the images' among them), and the
    /// pipeline when it builds, so one call serves both of an editor's views.
    pub fn document(&self) -> Value {
        let mut diags = self.diags.clone();
        let mut doc = json!({"notebook": self.notebook, "pipeline": null});
        if let Some(p) = &self.pipeline {
            for w in &self.image_warnings {
                diags.push(Diagnostic::warning(w.clone()));
            }
            doc["pipeline"] = crate::inspect::to_json(p, &diags);
        }
        let errors = diags.errors().count();
        doc["ok"] = json!(errors == 0);
        doc["errors"] = json!(errors);
        doc["warnings"] = json!(diags.warnings().count());
        doc["diagnostics"] = json!(diags.sorted());
        doc
    }

    /// After the notebook's problems: the images' warnings and the summary line.
    pub fn summary(&self) -> Vec<String> {
        let notebook = self.notebook.display();
        let Some(p) = &self.pipeline else {
            let errors = self.diags.errors().count();
            return vec![format!(
                "{notebook}: {errors} error{} found",
                plural(errors)
            )];
        };
        let mut lines: Vec<String> = self
            .image_warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        let warnings = self.diags.warnings().count() + self.image_warnings.len();
        lines.push(format!(
            "{notebook}: ok — {} step{}, {} parameter{}, {} metric{}{}",
            p.steps.len(),
            plural(p.steps.len()),
            p.parameters.len(),
            plural(p.parameters.len()),
            p.metrics.len(),
            plural(p.metrics.len()),
            if warnings > 0 {
                format!(", {warnings} warning{}", plural(warnings))
            } else {
                String::new()
            }
        ));
        lines
    }

    /// Bad input (already reported) when the notebook has errors: for the JSON
    /// document any error, for the text the pipeline not building.
    pub fn result(&self, json: bool) -> crate::Result<()> {
        let failed = if json {
            self.diags.errors().count() > 0
        } else {
            self.pipeline.is_none()
        };
        if failed {
            Err(Error::reported(ErrorKind::BadInput))
        } else {
            Ok(())
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
