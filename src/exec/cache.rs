//! The step cache: a content-addressed store under `.kale/cache/` beside the notebook.
//!
//! * `objects/<sha256>`: every saved output, stored once whatever the number of runs
//!   that produced or reuse it (run directories hold hard links to these files);
//! * `steps/<key>.json`: for one step execution key, the outputs and metrics it
//!   produced.
//!
//! A key covers what is known before a step runs: its generated program (imports,
//! functions and its own cells, and the values of only the parameters it uses), the
//! content hashes of its inputs, and the runtime version. So in a tune, a step
//! upstream of every tuned parameter has the same key in every trial and runs once.
//!
//! What a step depends on beyond that is only known once it has run: the files it
//! read, the interpreter and package versions, the files it wrote. Each entry keeps
//! that snapshot ([`Provenance`]), and a lookup is a hit only when the snapshot
//! still holds. Checking costs a stat per file: objects and read files are hashed
//! again only when their size, mtime or inode changed.

use crate::layout;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::manifest::{InputRef, SavedObject, now, write_json_atomic};
use super::provenance::{FileStat, Provenance, PythonIdentity, display_path};

/// Bumped whenever the key or the entry changes meaning: older entries are misses.
const ENTRY_FORMAT: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    pub step: String,
    pub outputs: Vec<SavedObject>,
    pub metrics: BTreeMap<String, Value>,
    /// How long the step took when it ran: what a hit saves.
    pub seconds: f64,
    pub created_at: f64,
    /// Stat of each object file (by hash) when it entered the store: a hit compares
    /// stats instead of hashing the data again.
    pub object_stats: BTreeMap<String, FileStat>,
    pub provenance: Provenance,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// The step ran before, but what it depended on changed (or the snapshot cannot
    /// vouch for it): why, in one line.
    Stale(String),
    /// The entry existed but an object was missing or did not match its hash; the
    /// entry was removed and the step must run again.
    Corrupt(String),
}

/// A step that succeeded, as the cache keeps it.
pub struct StepResult<'a> {
    pub step: &'a str,
    pub outputs: &'a [SavedObject],
    pub metrics: &'a BTreeMap<String, Value>,
    /// How long it ran: what a hit saves.
    pub seconds: f64,
    pub provenance: Provenance,
}

/// What a hit is checked against.
pub struct HitCheck<'a> {
    pub python: &'a PythonIdentity,
    /// Paths are shown relative to it (the notebook's directory).
    pub base: &'a Path,
    /// The step is tagged `cache:enabled`: reuse it even when the snapshot cannot
    /// vouch for it (network, devices).
    pub trust_untracked: bool,
}

pub struct Cache {
    root: PathBuf,
    /// Keys being computed in this process: a second trial needing the same step
    /// waits for the first instead of running it again.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub objects: usize,
    pub bytes: u64,
    /// Run time the cached entries saved each time they are hit.
    pub seconds_saved_per_hit: f64,
}

impl Cache {
    pub fn open(root: &Path) -> std::io::Result<Cache> {
        for dir in [layout::cache_objects(root), layout::cache_entries(root)] {
            std::fs::create_dir_all(&dir).map_err(|e| crate::error::at_path(&dir, e))?;
        }
        Ok(Cache {
            root: root
                .canonicalize()
                .map_err(|e| crate::error::at_path(root, e))?,
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// `.kale/cache` beside the notebook.
    pub fn default_root(notebook: &Path) -> PathBuf {
        crate::layout::Layout::for_notebook(notebook).cache()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn key(
        program: &str,
        runtime_version: &str,
        inputs: &BTreeMap<String, InputRef>,
    ) -> String {
        let mut h = Sha256::new();
        h.update(format!("kale-step-key-{ENTRY_FORMAT}\0").as_bytes());
        h.update(runtime_version.as_bytes());
        h.update(b"\0");
        h.update(program.as_bytes());
        h.update(b"\0");
        for (name, input) in inputs {
            h.update(name.as_bytes());
            h.update(b"=");
            h.update(input.hash.as_bytes());
            h.update(b"\0");
        }
        hex(&h.finalize())
    }

    /// Serialises work on one key within this process.
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.inflight.lock().unwrap();
            map.entry(key.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        layout::cache_entries(&self.root).join(format!("{key}.json"))
    }

    pub fn object_path(&self, hash: &str) -> PathBuf {
        layout::cache_objects(&self.root).join(hash.strip_prefix("sha256:").unwrap_or(hash))
    }

    pub fn lookup(&self, key: &str, check: &HitCheck) -> Lookup {
        let path = self.entry_path(key);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Lookup::Miss;
        };
        #[derive(Deserialize)]
        struct Format {
            #[serde(default)]
            format: u32,
        }
        match serde_json::from_str::<Format>(&text) {
            Ok(f) if f.format == ENTRY_FORMAT => {}
            Ok(_) => return Lookup::Miss,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Lookup::Corrupt(format!("unreadable cache entry: {e}"));
            }
        }
        let mut entry: Entry = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Lookup::Corrupt(format!("unreadable cache entry: {e}"));
            }
        };
        if !check.trust_untracked
            && let Some(why) = entry.provenance.untrusted()
        {
            return Lookup::Stale(format!(
                "not reused: {why} (tag the step `cache:enabled` to reuse it anyway)"
            ));
        }
        let refreshed = match entry.provenance.check(check.python, check.base) {
            Ok(refreshed) => refreshed,
            Err(why) => return Lookup::Stale(why),
        };
        let objects = entry
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.hash.clone()))
            .chain(
                entry
                    .provenance
                    .writes
                    .iter()
                    .map(|w| (display_path(&w.path, check.base), w.hash.clone())),
            );
        for (name, hash) in objects {
            if let Err(why) = self.verify_object(&hash, entry.object_stats.get(&hash)) {
                let _ = std::fs::remove_file(&path);
                return Lookup::Corrupt(format!("cached `{name}` of step `{}` {why}", entry.step));
            }
        }
        if refreshed {
            // Best effort: a failed rewrite only costs a hash on the next hit.
            let _ = write_json_atomic(&path, &serde_json::to_value(&entry).unwrap());
        }
        Lookup::Hit(Box::new(entry))
    }

    /// An object is intact when its stat is the one recorded when it was stored, or
    /// (after a copy or a restore from backup) when its content still has its hash.
    fn verify_object(&self, hash: &str, stored: Option<&FileStat>) -> Result<(), &'static str> {
        let file = self.object_path(hash);
        let now = FileStat::of(&file).map_err(|_| "is missing")?;
        if stored == Some(&now) {
            return Ok(());
        }
        match file_hash(&file) {
            Ok(h) if h == hash => Ok(()),
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
                Err("does not match its hash")
            }
            Err(_) => Err("is missing"),
        }
    }

    /// Puts a hit's outputs where the step would have written them: hard links into
    /// `<step_dir>/outputs/`, plus `outputs.json` and `metrics.json`.
    pub fn materialize(&self, entry: &Entry, step_dir: &Path) -> std::io::Result<()> {
        let outputs = layout::outputs_dir(step_dir);
        std::fs::create_dir_all(&outputs)?;
        for object in &entry.outputs {
            let target = outputs.join(&object.file);
            let _ = std::fs::remove_file(&target);
            link_or_copy(&self.object_path(&object.hash), &target)?;
        }
        // What outputs.json and metrics.json say of a step that ran, the run's
        // manifest says of a reused one: in a tune that is two files less per
        // reused step and trial.
        self.restore_writes(entry)
    }

    /// Puts back the files the step wrote when they are missing or changed, so a
    /// step downstream reads what the notebook would have written. A copy, not a
    /// link: the user's file must not be the store's object.
    fn restore_writes(&self, entry: &Entry) -> std::io::Result<()> {
        for write in &entry.provenance.writes {
            if FileStat::of(&write.path).ok() == Some(write.stat) {
                continue;
            }
            if file_hash(&write.path).ok().as_deref() == Some(write.hash.as_str()) {
                continue;
            }
            if let Some(parent) = write.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = super::tmpname::beside(&write.path);
            std::fs::copy(self.object_path(&write.hash), &tmp)?;
            std::fs::rename(&tmp, &write.path)?;
        }
        Ok(())
    }

    /// Copies a file the step wrote into the object store; returns its hash.
    pub fn keep_copy(&self, path: &Path) -> std::io::Result<String> {
        let hash = file_hash(path)?;
        let target = self.object_path(&hash);
        if !target.exists() {
            let tmp = super::tmpname::beside(&target);
            std::fs::copy(path, &tmp)?;
            std::fs::rename(&tmp, &target)?;
        }
        Ok(hash)
    }

    /// Records a successful execution. Each output file is checked against the hash
    /// the runtime recorded before it enters the store.
    pub fn store(&self, key: &str, step_dir: &Path, result: StepResult) -> std::io::Result<()> {
        let StepResult {
            step,
            outputs,
            metrics,
            seconds,
            provenance,
        } = result;
        self.store_objects(step, step_dir, outputs)?;
        let mut object_stats = BTreeMap::new();
        let hashes = outputs
            .iter()
            .map(|o| &o.hash)
            .chain(provenance.writes.iter().map(|w| &w.hash));
        for hash in hashes {
            object_stats.insert(hash.clone(), FileStat::of(&self.object_path(hash))?);
        }
        let entry = Entry {
            format: ENTRY_FORMAT,
            step: step.to_string(),
            outputs: outputs.to_vec(),
            metrics: metrics.clone(),
            seconds,
            created_at: now(),
            object_stats,
            provenance,
        };
        write_json_atomic(
            &self.entry_path(key),
            &serde_json::to_value(&entry).unwrap(),
        )
    }

    /// Puts a step's output files into the object store (no entry: the step is not to
    /// be reused, but its data still belongs to the run's snapshot).
    pub fn store_objects(
        &self,
        step: &str,
        step_dir: &Path,
        outputs: &[SavedObject],
    ) -> std::io::Result<()> {
        for object in outputs {
            let source = layout::outputs_dir(step_dir).join(&object.file);
            let target = self.object_path(&object.hash);
            if target.exists() {
                continue;
            }
            let actual = file_hash(&source)?;
            if actual != object.hash {
                return Err(std::io::Error::other(format!(
                    "output `{}` of step `{step}` changed after it was saved",
                    object.name
                )));
            }
            let tmp = super::tmpname::beside(&target);
            link_or_copy(&source, &tmp)?;
            std::fs::rename(&tmp, &target)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        if let Ok(dir) = std::fs::read_dir(layout::cache_entries(&self.root)) {
            for e in dir.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path())
                    && let Ok(entry) = serde_json::from_str::<Entry>(&text)
                {
                    stats.entries += 1;
                    stats.seconds_saved_per_hit += entry.seconds;
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir(layout::cache_objects(&self.root)) {
            for e in dir.flatten() {
                if let Ok(m) = e.metadata() {
                    stats.objects += 1;
                    stats.bytes += m.len();
                }
            }
        }
        stats
    }

    /// Removes every entry whose objects are not all in `keep`, then every object not
    /// in `keep`. Returns (entries removed, objects removed, bytes freed).
    pub fn prune(
        &self,
        keep: &std::collections::HashSet<String>,
    ) -> std::io::Result<(usize, usize, u64)> {
        let mut entries = 0;
        for e in std::fs::read_dir(layout::cache_entries(&self.root))?.flatten() {
            let keep_entry = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| serde_json::from_str::<Entry>(&t).ok())
                .is_some_and(|entry| {
                    entry.outputs.iter().all(|o| keep.contains(&o.hash))
                        && entry
                            .provenance
                            .writes
                            .iter()
                            .all(|w| keep.contains(&w.hash))
                });
            if !keep_entry {
                std::fs::remove_file(e.path())?;
                entries += 1;
            }
        }
        let mut objects = 0;
        let mut bytes = 0;
        for e in std::fs::read_dir(layout::cache_objects(&self.root))?.flatten() {
            let name = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep.contains(&name) {
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(e.path())?;
                objects += 1;
            }
        }
        Ok((entries, objects, bytes))
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("root", &self.root).finish()
    }
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// `sha256:<hex>` of a file, the format the runtime records.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    read_chunks(path, |chunk| h.update(chunk))?;
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

/// Feeds a file to `consume` in 1 MiB chunks (for hashing without holding it whole).
pub(crate) fn read_chunks(path: &Path, mut consume: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        consume(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
