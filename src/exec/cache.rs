//! The step cache: a content-addressed store under `.kale/cache/` beside the notebook.
//!
//! * `objects/<sha256>`: every saved output, stored once whatever the number of runs
//!   that produced or reuse it (run directories hold hard links to these files);
//! * `steps/<key>.json`: for one step execution key, the outputs and metrics it
//!   produced.
//!
//! A key covers everything that determines a step's outputs: its generated program
//! (imports, functions and its own cells, and the values of only the parameters it
//! uses), the content hashes of its inputs, and the runtime version. So in a tune, a
//! step upstream of every tuned parameter has the same key in every trial and runs once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::manifest::{InputRef, SavedObject, now, write_json_atomic};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub step: String,
    pub outputs: Vec<SavedObject>,
    pub metrics: BTreeMap<String, Value>,
    /// How long the step took when it ran: what a hit saves.
    pub seconds: f64,
    pub created_at: f64,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Entry),
    Miss,
    /// The entry existed but an object was missing or did not match its hash; the
    /// entry was removed and the step must run again.
    Corrupt(String),
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
        std::fs::create_dir_all(root.join("objects"))?;
        std::fs::create_dir_all(root.join("steps"))?;
        Ok(Cache {
            root: root.canonicalize()?,
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// `.kale/cache` beside the notebook.
    pub fn default_root(notebook: &Path) -> PathBuf {
        super::notebook_dir(notebook).join(".kale").join("cache")
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
        h.update(b"kale-step-key-1\0");
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
        self.root.join("steps").join(format!("{key}.json"))
    }

    pub fn object_path(&self, hash: &str) -> PathBuf {
        self.root
            .join("objects")
            .join(hash.strip_prefix("sha256:").unwrap_or(hash))
    }

    pub fn lookup(&self, key: &str) -> Lookup {
        let path = self.entry_path(key);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Lookup::Miss;
        };
        let entry: Entry = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Lookup::Corrupt(format!("unreadable cache entry: {e}"));
            }
        };
        for object in &entry.outputs {
            let file = self.object_path(&object.hash);
            match file_hash(&file) {
                Ok(h) if h == object.hash => {}
                Ok(_) => {
                    let _ = std::fs::remove_file(&file);
                    let _ = std::fs::remove_file(&path);
                    return Lookup::Corrupt(format!(
                        "cached `{}` of step `{}` does not match its hash",
                        object.name, entry.step
                    ));
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                    return Lookup::Corrupt(format!(
                        "cached `{}` of step `{}` is missing",
                        object.name, entry.step
                    ));
                }
            }
        }
        Lookup::Hit(entry)
    }

    /// Puts a hit's outputs where the step would have written them: hard links into
    /// `<step_dir>/outputs/`, plus `outputs.json` and `metrics.json`.
    pub fn materialize(&self, entry: &Entry, step_dir: &Path) -> std::io::Result<()> {
        let outputs = step_dir.join("outputs");
        std::fs::create_dir_all(&outputs)?;
        for object in &entry.outputs {
            let target = outputs.join(&object.file);
            let _ = std::fs::remove_file(&target);
            link_or_copy(&self.object_path(&object.hash), &target)?;
        }
        write_json_atomic(
            &step_dir.join("outputs.json"),
            &serde_json::to_value(&entry.outputs).unwrap(),
        )?;
        write_json_atomic(
            &step_dir.join("metrics.json"),
            &serde_json::to_value(&entry.metrics).unwrap(),
        )?;
        Ok(())
    }

    /// Records a successful execution. Each output file is checked against the hash
    /// the runtime recorded before it enters the store.
    pub fn store(
        &self,
        key: &str,
        step: &str,
        step_dir: &Path,
        outputs: &[SavedObject],
        metrics: &BTreeMap<String, Value>,
        seconds: f64,
    ) -> std::io::Result<()> {
        self.store_objects(step, step_dir, outputs)?;
        let entry = Entry {
            step: step.to_string(),
            outputs: outputs.to_vec(),
            metrics: metrics.clone(),
            seconds,
            created_at: now(),
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
            let source = step_dir.join("outputs").join(&object.file);
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
        if let Ok(dir) = std::fs::read_dir(self.root.join("steps")) {
            for e in dir.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path())
                    && let Ok(entry) = serde_json::from_str::<Entry>(&text)
                {
                    stats.entries += 1;
                    stats.seconds_saved_per_hit += entry.seconds;
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir(self.root.join("objects")) {
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
        for e in std::fs::read_dir(self.root.join("steps"))?.flatten() {
            let keep_entry = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| serde_json::from_str::<Entry>(&t).ok())
                .is_some_and(|entry| entry.outputs.iter().all(|o| keep.contains(&o.hash)));
            if !keep_entry {
                std::fs::remove_file(e.path())?;
                entries += 1;
            }
        }
        let mut objects = 0;
        let mut bytes = 0;
        for e in std::fs::read_dir(self.root.join("objects"))?.flatten() {
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
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
