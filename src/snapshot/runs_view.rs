//! `kale runs list|show|pin|unpin` as operations on a project's recorded runs, each
//! returning what the command prints (text, and the `--json` document).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Run;
use crate::render::table;

/// The run a `RUN` argument names (an id or unique prefix, `last`, `EXP/TRIAL`, or a
/// run's folder), among the runs of the project at `dir`; and the folder of those runs.
pub fn find(dir: &Path, spec: &str) -> crate::Result<(PathBuf, Run)> {
    let runs_dir = super::runs_dir(dir);
    let run = super::resolve(&runs_dir, spec)?;
    Ok((runs_dir, run))
}

/// `kale runs list`: the newest `limit` runs (of one notebook, when given).
pub struct RunList {
    pub runs_dir: PathBuf,
    pub runs: Vec<Run>,
}

impl RunList {
    /// The runs recorded beside `notebook` when given, else under `dir`.
    pub fn of(dir: &Path, notebook: Option<&Path>, limit: usize) -> RunList {
        let runs_dir = super::runs_dir(notebook.unwrap_or(dir));
        let runs = super::of_notebook(super::list_runs(&runs_dir), notebook);
        RunList {
            runs: runs.into_iter().take(limit).collect(),
            runs_dir,
        }
    }

    /// The `--json` document: one object per run.
    pub fn document(&self) -> Value {
        Value::Array(self.runs.iter().map(list_row).collect())
    }

    /// The table; `None` when there are no runs.
    pub fn table(&self) -> Option<String> {
        (!self.runs.is_empty()).then(|| table::runs(&self.runs))
    }
}

fn list_row(r: &Run) -> Value {
    let m = &r.manifest;
    json!({
        "run": m.run_id,
        "notebook": m.notebook.file_name().map(|n| n.to_string_lossy().into_owned()),
        "status": m.status.as_str(),
        "failed_step": r.failing_step().map(|s| s.name.clone()),
        "started_at": m.started_at,
        "seconds": m.finished_at.map(|f| f - m.started_at),
        "experiment": m.experiment,
        "trial": m.trial,
        "pinned": m.pinned,
        "run_dir": r.dir,
    })
}

/// `kale runs show`: one run, its steps and where their outputs are.
pub struct RunShown {
    run: Run,
    doc: Value,
}

impl RunShown {
    pub fn of(dir: &Path, spec: &str) -> crate::Result<RunShown> {
        let (runs_dir, run) = find(dir, spec)?;
        let doc = super::summary(&runs_dir, &run);
        Ok(RunShown { run, doc })
    }

    /// The `--json` document.
    pub fn document(&self) -> &Value {
        &self.doc
    }

    pub fn text(&self) -> String {
        table::run(&self.run, &self.doc)
    }
}

/// `kale runs pin|unpin`: whether `kale cache prune` keeps the run's data whatever its
/// age; the run's id.
pub fn pin(dir: &Path, spec: &str, pinned: bool) -> crate::Result<String> {
    let (_, mut run) = find(dir, spec)?;
    run.manifest.pinned = pinned;
    run.manifest.write(&run.dir)?;
    Ok(run.manifest.run_id)
}
