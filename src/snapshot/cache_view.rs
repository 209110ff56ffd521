//! `kale cache stats|prune|explain` as operations on a project's step cache and run
//! snapshots, each returning what the command prints (text, and the `--json`
//! document).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Pruned, StepCache};
use crate::Error;
use crate::exec::cache::{Cache, CacheStats};
use crate::format::human_bytes;
use crate::layout::Layout;

/// `kale cache stats`: the size of the step cache of `dir` (a directory or a notebook).
pub struct Stats {
    pub root: PathBuf,
    pub stats: CacheStats,
}

impl Stats {
    pub fn of(dir: &Path) -> crate::Result<Stats> {
        let root = Layout::for_dir_or_notebook(dir).cache();
        if !root.exists() {
            return Err(
                Error::bad_input(format!("no step cache at {}", root.display()))
                    .with_hint("`kale run` or `kale tune` fill it"),
            );
        }
        let stats = Cache::open(&root)?.stats();
        Ok(Stats { root, stats })
    }

    pub fn text(&self) -> String {
        let s = &self.stats;
        format!(
            "cache       {}\nentries     {} step results\nobjects     {} ({})\nsaves       {:.1}s of step time when every entry is hit once\n",
            self.root.display(),
            s.entries,
            s.objects,
            human_bytes(s.bytes),
            s.seconds_saved_per_hit
        )
    }
}

/// `kale cache prune`: keeps the data of the newest `keep_runs` runs and of pinned
/// ones (see [`super::prune`]).
pub fn prune(dir: &Path, keep_runs: usize) -> crate::Result<Pruned> {
    let layout = Layout::for_dir_or_notebook(dir);
    let root = layout.cache();
    if !root.exists() {
        return Err(Error::bad_input(format!(
            "no step cache at {}",
            root.display()
        )));
    }
    Ok(super::prune(&layout, keep_runs)?)
}

impl Pruned {
    pub fn document(&self) -> Value {
        json!({"entries_removed": self.entries, "objects_removed": self.objects, "bytes_freed": self.bytes, "runs_pruned": self.runs})
    }

    pub fn text(&self, keep_runs: usize) -> String {
        format!(
            "removed {} cache entries and {} objects ({}); data of {} older runs pruned; kept the newest {keep_runs} runs and pinned ones",
            self.entries,
            self.objects,
            human_bytes(self.bytes),
            self.runs
        )
    }
}

/// `kale cache explain`: the snapshot each step of a run was cached with, and whether
/// it still holds.
pub struct Explanation {
    pub run_id: String,
    /// The notebook's folder, which the paths are shown relative to.
    base: PathBuf,
    pub steps: Vec<StepCache>,
}

impl Explanation {
    /// Run `run` (an id, a prefix, `last` or `EXP/TRIAL`) of the project at `dir`:
    /// its step `step`, or every step. Whether a snapshot still holds is judged
    /// against the interpreter a new run would use (`python`, or the default); without
    /// one, only the snapshot is shown.
    pub fn of(
        dir: &Path,
        run: &str,
        step: Option<&str>,
        python: Option<&Path>,
    ) -> crate::Result<Explanation> {
        let run = super::resolve(&Layout::for_dir_or_notebook(dir).runs(), run)?;
        let steps: Vec<&str> = match step {
            Some(name) => match run.manifest.step(name) {
                Some(s) => vec![s.name.as_str()],
                None => {
                    let names: Vec<_> =
                        run.manifest.steps.iter().map(|s| s.name.as_str()).collect();
                    return Err(Error::bad_input(format!(
                        "run {} has no step `{name}`",
                        run.manifest.run_id
                    ))
                    .with_hint(format!("its steps are {}", names.join(", "))));
                }
            },
            None => run.manifest.steps.iter().map(|s| s.name.as_str()).collect(),
        };
        let python = crate::exec::python::resolve(&crate::exec::python::choose(python).command)
            .ok()
            .map(|i| i.identity());
        Ok(Explanation {
            run_id: run.manifest.run_id.clone(),
            base: crate::exec::notebook_dir(&run.manifest.notebook),
            steps: super::cache_of(&run, &steps, python.as_ref()),
        })
    }

    pub fn document(&self) -> Value {
        let docs: Vec<Value> = self
            .steps
            .iter()
            .map(
                |StepCache {
                     step,
                     snapshot,
                     holds,
                 }| {
                    json!({
                        "step": step.name,
                        "status": step.status.as_str(),
                        "cache_note": step.cache_note,
                        "key": snapshot.as_ref().map(|(k, _)| k),
                        "snapshot": snapshot.as_ref().map(|(_, p)| p),
                        "holds": holds.as_ref().map(|h| h.is_ok()),
                        "stale_because": holds.as_ref().and_then(|h| h.as_ref().err()),
                    })
                },
            )
            .collect();
        json!({"run": self.run_id, "steps": docs})
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            self.step_text(&mut out, s);
        }
        out
    }

    fn step_text(&self, out: &mut String, s: &StepCache) {
        let StepCache {
            step,
            snapshot,
            holds,
        } = s;
        let _ = writeln!(out, "{}  {}", step.name, step.status.as_str());
        if let Some(note) = &step.cache_note {
            let _ = writeln!(out, "  note      {note}");
        }
        let Some((key, p)) = snapshot else {
            let _ = writeln!(
                out,
                "  no snapshot (the step failed, was not cached, or ran under an older kale)\n"
            );
            return;
        };
        let _ = writeln!(out, "  key       {}", &key[..key.len().min(16)]);
        let _ = writeln!(
            out,
            "  python    {} ({})",
            p.python.executable.display(),
            p.python.version
        );
        if !p.packages.is_empty() {
            let list: Vec<_> = p.packages.iter().map(|(n, v)| format!("{n} {v}")).collect();
            let _ = writeln!(out, "  packages  {}", list.join(", "));
        }
        let shown = |path: &Path| crate::exec::provenance::display_path(path, &self.base);
        for r in &p.reads {
            let _ = match (&r.stat, &r.hash) {
                (Some(stat), Some(hash)) => writeln!(
                    out,
                    "  read      {}  {}  {}",
                    shown(&r.path),
                    human_bytes(stat.size),
                    &hash[..hash.len().min(19)]
                ),
                _ => writeln!(out, "  looked    {}  (absent)", shown(&r.path)),
            };
        }
        for w in &p.writes {
            let _ = writeln!(
                out,
                "  wrote     {}  {}  {}",
                shown(&w.path),
                human_bytes(w.stat.size),
                &w.hash[..w.hash.len().min(19)]
            );
        }
        for why in &p.untracked {
            let _ = writeln!(out, "  untracked {why}");
        }
        let _ = match holds {
            Some(Ok(())) => writeln!(out, "  holds     yes: a new run would reuse it\n"),
            Some(Err(why)) => writeln!(out, "  holds     no: {why}\n"),
            None => writeln!(out),
        };
    }
}
