//! Run snapshots: finding a run, and the objects it recorded.
//!
//! A run's snapshot is its `manifest.json` plus the content hashes it records for every
//! step's inputs and outputs. The bytes live in the run's `steps/<step>/outputs/` (hard
//! links) and, for steps the cache stored, once in `.kale/cache/objects/<sha256>`; either
//! copy will do, since the hash says which bytes are meant. `kale cache prune` may take
//! both away, so every reader here says which objects are gone instead of failing later
//! inside Python.
//!
//! [`debug::debug_notebook`] turns one step of a run back into a notebook: a first cell that
//! loads the step's inputs from the snapshot and sets the parameters it ran with, then
//! the imports, functions and the step's own cells, as the run executed them.

pub mod cache_view;
pub mod debug;
pub mod runs_view;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::exec::cache::file_hash;
use crate::exec::{Manifest, StepRecord, StepStatus};
use crate::layout::{self, Layout, step_dir};

/// `.kale/runs` for a notebook path or for the directory that holds notebooks.
pub fn runs_dir(base: &Path) -> PathBuf {
    Layout::for_dir_or_notebook(base).runs()
}

/// The directory the notebook (and so its `.kale/`) lives in, from a runs directory.
pub fn project_dir(runs_dir: &Path) -> PathBuf {
    runs_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn objects_dir(runs_dir: &Path) -> PathBuf {
    layout::cache_objects(&Layout::beside_runs(runs_dir).cache())
}

/// The notebook a run came from. The manifest records the path as typed, which may be
/// relative to wherever `kale run` was started, so the file name is resolved against
/// the project directory instead.
pub fn notebook_path(runs_dir: &Path, manifest: &Manifest) -> PathBuf {
    match manifest.notebook.file_name() {
        Some(name) => project_dir(runs_dir).join(name),
        None => manifest.notebook.clone(),
    }
}

#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Run {
    /// `EXP/TRIAL` for a tuning trial, which is how users name it.
    pub fn trial_label(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.manifest.experiment.as_ref()?,
            self.manifest.trial?
        ))
    }

    /// The first failed step, else the first interrupted one.
    pub fn failing_step(&self) -> Option<&StepRecord> {
        let steps = &self.manifest.steps;
        steps
            .iter()
            .find(|s| s.status == StepStatus::Failed)
            .or_else(|| steps.iter().find(|s| s.status == StepStatus::Interrupted))
    }
}

/// Every readable run under `runs_dir`, newest first.
pub fn list_runs(runs_dir: &Path) -> Vec<Run> {
    let mut runs: Vec<Run> = std::fs::read_dir(runs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let manifest = Manifest::read(&e.path()).ok()?;
            Some(Run {
                dir: e.path(),
                manifest,
            })
        })
        .collect();
    runs.sort_by(|a, b| {
        b.manifest
            .started_at
            .total_cmp(&a.manifest.started_at)
            .then_with(|| b.manifest.run_id.cmp(&a.manifest.run_id))
    });
    runs
}

/// Finds a run by id, unique id prefix, `EXP/TRIAL`, `last`, or run directory path.
pub fn resolve(runs_dir: &Path, spec: &str) -> crate::Result<Run> {
    use crate::Error;
    let as_path = Path::new(spec);
    if layout::manifest(as_path).is_file() {
        let manifest =
            Manifest::read(as_path).map_err(|e| Error::environment(format!("{spec}: {e}")))?;
        return Ok(Run {
            dir: as_path.to_path_buf(),
            manifest,
        });
    }
    let runs = list_runs(runs_dir);
    if runs.is_empty() {
        return Err(Error::bad_input(format!("no runs in {}", runs_dir.display())).with_hint(
            "`kale run NOTEBOOK` or `kale tune NOTEBOOK` records runs there; pass `-C DIR` for another notebook directory",
        ));
    }
    let not_found = |what: String| {
        Error::bad_input(format!("{what} in {}", runs_dir.display()))
            .with_hint("`kale runs list` shows the recorded runs")
    };
    if spec == "last" || spec == "latest" {
        return Ok(runs.into_iter().next().unwrap());
    }
    if let Some((experiment, trial)) = spec.split_once('/') {
        let number: u64 = trial.trim_start_matches(['t', 'T']).parse().map_err(|_| {
            Error::bad_input(format!(
                "`{spec}`: expected EXPERIMENT/TRIAL, with a trial number"
            ))
        })?;
        // The store knows the experiment by its current name (after a rename) and
        // which run each trial was; the manifests are the fallback without a store.
        let from_store = trial_run_id(runs_dir, experiment, number);
        return runs
            .into_iter()
            .find(|r| match &from_store {
                Some(id) => {
                    &r.manifest.run_id == id || r.dir.file_name().is_some_and(|n| n == id.as_str())
                }
                None => {
                    r.manifest.experiment.as_deref() == Some(experiment)
                        && r.manifest.trial == Some(number)
                }
            })
            .ok_or_else(|| not_found(format!("no trial {number} of experiment `{experiment}`")));
    }
    if let Some(i) = runs.iter().position(|r| r.manifest.run_id == spec) {
        return Ok(runs.into_iter().nth(i).unwrap());
    }
    let mut matches: Vec<Run> = runs
        .into_iter()
        .filter(|r| r.manifest.run_id.starts_with(spec))
        .collect();
    match matches.len() {
        1 => Ok(matches.pop().unwrap()),
        0 => Err(not_found(format!("no run `{spec}`"))),
        n => Err(Error::bad_input(format!(
            "`{spec}` matches {n} runs ({}); give more of the id",
            matches
                .iter()
                .take(4)
                .map(|r| r.manifest.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The run id of trial `number` of `experiment`, from the experiment store beside
/// `runs_dir`; `None` when there is no store or it does not know that trial.
fn trial_run_id(runs_dir: &Path, experiment: &str, number: u64) -> Option<String> {
    let db = Layout::beside_runs(runs_dir).database();
    if !db.is_file() {
        return None;
    }
    let store = crate::store::Store::open_read_only(&db).ok()?;
    let e = store.experiment(experiment).ok()?;
    let trial = store.trial(e.id, i64::try_from(number).ok()?).ok()?;
    let run_dir = trial.run_dir?;
    Some(
        Path::new(&run_dir)
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    )
}

/// After `kale experiments rename`: the runs of the experiment's trials carry the new
/// name in their manifests (`kale runs list`, `kale debug NEW/3`). Returns how many
/// runs were rewritten.
pub fn rename_experiment_runs(runs_dir: &Path, from: &str, to: &str) -> std::io::Result<usize> {
    let mut renamed = 0;
    for mut run in list_runs(runs_dir) {
        if run.manifest.experiment.as_deref() == Some(from) {
            run.manifest.experiment = Some(to.to_string());
            run.manifest.write(&run.dir)?;
            renamed += 1;
        }
    }
    Ok(renamed)
}

/// Where an object of a snapshot can be read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectLocation {
    /// The run's own output file.
    Run,
    /// Only the content-addressed store still has it.
    Store,
    /// Pruned (or damaged): no copy with this hash is left.
    Missing,
}

/// One object (a step input or output) of a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Object {
    pub name: String,
    /// The step that saved it.
    pub step: String,
    /// Where the run keeps it: `steps/<step>/outputs/<file>` of the run directory.
    pub file: PathBuf,
    pub hash: String,
    pub bytes: Option<u64>,
    pub location: ObjectLocation,
}

/// Finds `hash` in the run's file or in the store. `verify` reads the bytes to check
/// the hash; without it only existence is checked, which is what listings can afford.
pub fn locate(runs_dir: &Path, run_file: &Path, hash: &str, verify: bool) -> ObjectLocation {
    let ok = |p: &Path| {
        if verify {
            file_hash(p).is_ok_and(|h| h == hash)
        } else {
            p.is_file()
        }
    };
    if ok(run_file) {
        return ObjectLocation::Run;
    }
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    if ok(&objects_dir(runs_dir).join(hex)) {
        return ObjectLocation::Store;
    }
    ObjectLocation::Missing
}

/// The inputs of `step` as objects of the snapshot.
pub fn step_inputs(runs_dir: &Path, run: &Run, step: &StepRecord, verify: bool) -> Vec<Object> {
    step.inputs
        .iter()
        .map(|(name, input)| {
            // Rebuilt from the run directory rather than taken from the manifest, which
            // holds an absolute path that a moved project no longer has.
            let file_name = input
                .file
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_default();
            let file = layout::step_outputs(&run.dir, &input.from).join(file_name);
            let bytes = run.manifest.step(&input.from).and_then(|p| {
                p.outputs
                    .iter()
                    .find(|o| o.hash == input.hash)
                    .map(|o| o.bytes)
            });
            Object {
                name: name.clone(),
                step: input.from.clone(),
                location: locate(runs_dir, &file, &input.hash, verify),
                file,
                hash: input.hash.clone(),
                bytes,
            }
        })
        .collect()
}

/// The outputs `step` saved, as objects of the snapshot.
pub fn step_outputs(runs_dir: &Path, run: &Run, step: &StepRecord, verify: bool) -> Vec<Object> {
    step.outputs
        .iter()
        .map(|o| {
            let file = layout::step_outputs(&run.dir, &step.name).join(&o.file);
            Object {
                name: o.name.clone(),
                step: step.name.clone(),
                location: locate(runs_dir, &file, &o.hash, verify),
                file,
                hash: o.hash.clone(),
                bytes: Some(o.bytes),
            }
        })
        .collect()
}

/// Every object of the run that no copy is left of.
pub fn missing_objects(runs_dir: &Path, run: &Run) -> Vec<Object> {
    run.manifest
        .steps
        .iter()
        .flat_map(|s| step_outputs(runs_dir, run, s, false))
        .filter(|o| o.location == ObjectLocation::Missing)
        .collect()
}

/// Puts a store object back where the run keeps it, so the debug notebook can load it
/// by its file name (the name carries the format).
pub(crate) fn restore(runs_dir: &Path, object: &Object) -> std::io::Result<()> {
    let hex = object.hash.strip_prefix("sha256:").unwrap_or(&object.hash);
    let source = objects_dir(runs_dir).join(hex);
    if let Some(parent) = object.file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(&object.file);
    if std::fs::hard_link(&source, &object.file).is_err() {
        std::fs::copy(&source, &object.file)?;
    }
    Ok(())
}

/// Sizes and hashes of a run, per step, for `kale runs show`.
pub fn summary(runs_dir: &Path, run: &Run) -> Value {
    let mut doc = serde_json::to_value(&run.manifest).unwrap();
    doc["run_dir"] = json!(run.dir);
    doc["trial_label"] = json!(run.trial_label());
    let mut missing = Vec::new();
    if let Some(steps) = doc["steps"].as_array_mut() {
        for (value, record) in steps.iter_mut().zip(&run.manifest.steps) {
            let ins: BTreeMap<String, Value> = step_inputs(runs_dir, run, record, false)
                .into_iter()
                .map(|o| (o.name.clone(), serde_json::to_value(&o).unwrap()))
                .collect();
            let outs = step_outputs(runs_dir, run, record, false);
            missing.extend(
                outs.iter()
                    .filter(|o| o.location == ObjectLocation::Missing)
                    .map(|o| json!({"step": o.step, "name": o.name, "hash": o.hash})),
            );
            value["inputs"] = json!(ins);
            value["outputs"] = json!(outs);
            value["cache_hit"] = json!(record.status == StepStatus::Cached);
        }
    }
    doc["data"] = json!({"complete": missing.is_empty(), "missing": missing});
    doc
}

/// Keeps only the notebook's runs when a notebook is named (one runs directory can
/// hold the runs of every notebook in that directory).
pub fn of_notebook(runs: Vec<Run>, notebook: Option<&Path>) -> Vec<Run> {
    let Some(name) = notebook.and_then(Path::file_name) else {
        return runs;
    };
    runs.into_iter()
        .filter(|r| r.manifest.notebook.file_name() == Some(name))
        .collect()
}

/// What [`prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Cache entries and stored objects removed, and the bytes they held.
    pub entries: usize,
    pub objects: usize,
    pub bytes: u64,
    /// Runs whose saved outputs were removed (their records stay).
    pub runs: usize,
}

/// Keeps the data of the newest `keep_runs` runs and of pinned ones: every object
/// their steps saved, read or wrote (which a cache hit restores); the older runs lose
/// their outputs (`kale debug` then says what is gone) and the cache what only they
/// used.
pub fn prune(layout: &Layout, keep_runs: usize) -> std::io::Result<Pruned> {
    let mut runs: Vec<(f64, PathBuf, Manifest)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(layout.runs()) {
        for e in dir.flatten() {
            if let Ok(m) = Manifest::read(&e.path()) {
                runs.push((m.started_at, e.path(), m));
            }
        }
    }
    runs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut keep = std::collections::HashSet::new();
    let mut pruned_runs = 0;
    for (i, (_, path, m)) in runs.iter().enumerate() {
        if i < keep_runs || m.pinned {
            for s in &m.steps {
                keep.extend(s.outputs.iter().map(|o| o.hash.clone()));
                // `kale debug` loads a step's inputs; keep them even if the record
                // of the step that saved them were incomplete.
                keep.extend(s.inputs.values().map(|i| i.hash.clone()));
                if let Some((_, snapshot)) = crate::exec::read_snapshot(&step_dir(path, &s.name)) {
                    keep.extend(snapshot.writes.into_iter().map(|w| w.hash));
                }
            }
        } else {
            let mut any = false;
            for s in &m.steps {
                let outputs = layout::step_outputs(path, &s.name);
                if outputs.exists() {
                    std::fs::remove_dir_all(&outputs)?;
                    any = true;
                }
            }
            pruned_runs += usize::from(any);
        }
    }
    let (entries, objects, bytes) =
        crate::exec::cache::Cache::open(&layout.cache())?.prune(&keep)?;
    Ok(Pruned {
        entries,
        objects,
        bytes,
        runs: pruned_runs,
    })
}

/// A step's cache entry as `kale cache explain` shows it.
pub struct StepCache {
    pub step: StepRecord,
    /// The entry's key and snapshot, when the step was stored.
    pub snapshot: Option<(String, crate::exec::provenance::Provenance)>,
    /// Whether a new run under `python` would reuse it, and if not why; `None`
    /// without a snapshot or an interpreter to judge against.
    pub holds: Option<Result<(), String>>,
}

/// The cache entries of `steps` of `run`, judged against the interpreter a new run
/// would use.
pub fn cache_of(
    run: &Run,
    steps: &[&str],
    python: Option<&crate::exec::provenance::PythonIdentity>,
) -> Vec<StepCache> {
    let base = crate::exec::notebook_dir(&run.manifest.notebook);
    // The `cache:` tags as the notebook says now (a run does not record tags); the
    // notebook is read once, and only if some step's snapshot needs it.
    let notebook_pipeline = std::cell::OnceCell::new();
    let cache_tag = |step: &str| {
        notebook_pipeline
            .get_or_init(|| crate::pipeline::load(&run.manifest.notebook).0)
            .as_ref()?
            .steps
            .iter()
            .find(|s| s.name == step)?
            .config
            .cache
    };
    steps
        .iter()
        .filter_map(|name| run.manifest.step(name))
        .map(|step| {
            let snapshot = crate::exec::read_snapshot(&step_dir(&run.dir, &step.name));
            let holds = match (&snapshot, python) {
                (Some((_, p)), Some(py)) => Some(match p.untrusted() {
                    Some(why) if cache_tag(&step.name) != Some(true) => {
                        Err(format!("not reused: {why}"))
                    }
                    _ => p.clone().check(py, &base).map(|_| ()),
                }),
                _ => None,
            };
            StepCache {
                step: step.clone(),
                snapshot,
                holds,
            }
        })
        .collect()
}
