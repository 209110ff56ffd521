//! The run manifest: `.kale/runs/<run-id>/manifest.json`, rewritten atomically after
//! every state change so a crash or Ctrl-C leaves a consistent record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    /// Outputs reused from the step cache; the step did not run.
    Cached,
    Failed,
    /// Not started because an upstream step failed or the run was interrupted.
    NotRun,
    Interrupted,
}

impl StepStatus {
    pub fn is_success(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Cached)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Cached => "cached",
            StepStatus::Failed => "failed",
            StepStatus::NotRun => "not_run",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// One saved variable, as the runtime recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedObject {
    pub name: String,
    pub file: String,
    pub backend: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub bytes: u64,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRef {
    pub from: String,
    pub file: PathBuf,
    pub hash: String,
}

/// Where a failing step's error happened, mapped back to the notebook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub cell: Option<usize>,
    pub line: Option<u32>,
    /// The offending source line, when known.
    pub code: Option<String>,
    pub variable: Option<String>,
}

impl StepError {
    /// The disk refused the step's output (full, over quota, read-only): the
    /// machine's problem, not the notebook's (exit 3, not 1).
    pub fn is_disk_error(&self) -> bool {
        self.kind == "KaleDiskError"
            || ["[Errno 28]", "[Errno 30]", "[Errno 122]"]
                .iter()
                .any(|errno| self.message.contains(errno))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    pub seconds: Option<f64>,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// Content key of the execution (code, parameter values, input hashes, runtime).
    pub key: Option<String>,
    pub parameters: BTreeMap<String, Value>,
    pub inputs: BTreeMap<String, InputRef>,
    pub outputs: Vec<SavedObject>,
    pub metrics: BTreeMap<String, Value>,
    pub error: Option<StepError>,
    pub exit_code: Option<i32>,
    /// Why the step ran although it had run before (`data.txt changed`), or why its
    /// result was not kept for reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_note: Option<String>,
    /// How long checking the cache entry took (its snapshot and objects), for a step
    /// that was looked up: what a hit costs before its outputs are linked in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_check_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub notebook: PathBuf,
    pub notebook_hash: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub python: PathBuf,
    pub runtime_version: String,
    pub parameters: BTreeMap<String, Value>,
    pub metrics: BTreeMap<String, Value>,
    /// The tuning experiment and trial number this run belongs to, if any.
    #[serde(default)]
    pub experiment: Option<String>,
    #[serde(default)]
    pub trial: Option<u64>,
    /// Pinned runs keep their data when the cache is pruned.
    #[serde(default)]
    pub pinned: bool,
    pub steps: Vec<StepRecord>,
}

impl Manifest {
    pub fn step_mut(&mut self, name: &str) -> &mut StepRecord {
        self.steps
            .iter_mut()
            .find(|s| s.name == name)
            .expect("every pipeline step has a record")
    }

    pub fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        write_json_atomic(
            &crate::layout::manifest(run_dir),
            &serde_json::to_value(self).unwrap(),
        )
    }

    pub fn read(run_dir: &Path) -> std::io::Result<Manifest> {
        let text = std::fs::read_to_string(crate::layout::manifest(run_dir))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

pub fn write_json_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    let tmp = super::tmpname::beside(path);
    let written = std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| crate::error::at_path(path, e))
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
