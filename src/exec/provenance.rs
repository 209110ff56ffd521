//! What a step read and wrote when it ran, and whether that still holds.
//!
//! The step runtime records, through an audit hook, every file the step opened (with
//! its stat at that moment), every file it wrote, the packages and local modules it
//! imported, and what no snapshot can cover (network connections, devices, pipes):
//! `reads.json` in the step directory. [`Provenance::record`] turns that into the
//! snapshot a cache entry keeps: interpreter and package versions, a content hash of
//! each file read, a copy of each file written. [`Provenance::check`] decides
//! whether a cached result is still what a rerun would give, cheaply: a file whose
//! size, mtime and inode are unchanged is not read again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::distributions;

/// Bumped when the meaning of a snapshot changes; entries with another format are
/// misses, never errors.
pub const PROVENANCE_FORMAT: u32 = 1;

/// What identifies a file's content without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

impl FileStat {
    pub fn of(path: &Path) -> std::io::Result<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileStat {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ino: m.ino(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonIdentity {
    pub executable: PathBuf,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRead {
    pub path: PathBuf,
    /// `None`: the step looked for the file and it did not exist.
    pub stat: Option<FileStat>,
    /// `blake3:<hex>` of the content.
    pub hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    pub path: PathBuf,
    pub stat: FileStat,
    /// `sha256:<hex>`: the copy in the object store.
    pub hash: String,
}

/// The snapshot of everything a step depended on beyond its program and inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub format: u32,
    pub python: PythonIdentity,
    /// Site directories the packages came from: where their versions are looked up.
    pub site_dirs: Vec<PathBuf>,
    /// Distribution → version, for every third-party package the step imported.
    pub packages: BTreeMap<String, String>,
    pub reads: Vec<FileRead>,
    /// Directories the step listed (`os.listdir`, `glob`, `os.walk`): a file added or
    /// removed there would change what it computed, though it read no changed file.
    #[serde(default)]
    pub listings: Vec<DirListing>,
    pub writes: Vec<FileWrite>,
    /// Why the snapshot cannot vouch for the step (it used the network, a device...).
    pub untracked: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    pub path: PathBuf,
    /// `blake3:<hex>` of the sorted names in it; None: it did not exist.
    pub names: Option<String>,
}

impl DirListing {
    fn of(path: &Path) -> DirListing {
        let names = std::fs::read_dir(path).ok().map(|entries| {
            let mut names: Vec<Vec<u8>> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().into_encoded_bytes())
                .collect();
            names.sort();
            let mut hasher = blake3::Hasher::new();
            for n in &names {
                hasher.update(n);
                hasher.update(b"\0");
            }
            format!("blake3:{}", hasher.finalize().to_hex())
        });
        DirListing {
            path: path.to_path_buf(),
            names,
        }
    }
}

/// `reads.json`, as the runtime writes it.
#[derive(Debug, Deserialize)]
struct RuntimeRecord {
    python: RuntimePython,
    #[serde(default)]
    packages: BTreeMap<PathBuf, Vec<String>>,
    #[serde(default)]
    reads: Vec<RuntimeRead>,
    #[serde(default)]
    writes: Vec<PathBuf>,
    #[serde(default)]
    read_then_written: Vec<PathBuf>,
    #[serde(default)]
    listed: Vec<PathBuf>,
    #[serde(default)]
    untracked: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RuntimePython {
    executable: PathBuf,
    version: String,
}

#[derive(Debug, Deserialize)]
struct RuntimeRead {
    path: PathBuf,
    #[serde(default)]
    absent: bool,
    size: Option<u64>,
    mtime_ns: Option<i64>,
    ino: Option<u64>,
}

/// Why a step's result could not be kept for reuse.
#[derive(Debug)]
pub enum RecordError {
    /// A file the step read changed while it ran: the snapshot would not say what it saw.
    Unstable(String),
    Io(std::io::Error),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Unstable(why) => f.write_str(why),
            RecordError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Where the snapshot's paths are shown relative to (the notebook's directory).
pub fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

impl Provenance {
    /// Builds the snapshot from the runtime's `reads.json` in `step_dir`. Each file the
    /// step wrote is handed to `keep` (which copies it into the object store and
    /// returns its hash).
    pub fn record(
        step_dir: &Path,
        base: &Path,
        keep: &mut dyn FnMut(&Path) -> std::io::Result<String>,
    ) -> Result<Provenance, RecordError> {
        let text = std::fs::read_to_string(step_dir.join("reads.json")).map_err(RecordError::Io)?;
        let raw: RuntimeRecord =
            serde_json::from_str(&text).map_err(|e| RecordError::Io(std::io::Error::other(e)))?;
        let mut untracked = raw.untracked;
        for path in &raw.read_then_written {
            untracked.push(format!(
                "it read {} and then wrote it",
                display_path(path, base)
            ));
        }

        let mut packages = BTreeMap::new();
        let mut reads = Vec::new();
        for (site, entries) in &raw.packages {
            let index = distributions::site_index(site);
            for entry in entries {
                match index.owner(entry) {
                    Some(d) => {
                        packages.insert(d.name.clone(), d.version.clone());
                    }
                    // Copied in by hand, no distribution to version it: its files are
                    // what identifies it.
                    None => {
                        let path = site.join(entry);
                        let file = if path.is_dir() {
                            path.join("__init__.py")
                        } else {
                            path
                        };
                        if let Ok(stat) = FileStat::of(&file) {
                            let hash = content_hash(&file, stat).map_err(RecordError::Io)?;
                            reads.push(FileRead {
                                path: file,
                                stat: Some(stat),
                                hash: Some(hash),
                            });
                        }
                    }
                }
            }
        }

        for read in raw.reads {
            if read.absent {
                if read.path.exists() {
                    return Err(RecordError::Unstable(format!(
                        "{} appeared while the step ran",
                        display_path(&read.path, base)
                    )));
                }
                reads.push(FileRead {
                    path: read.path,
                    stat: None,
                    hash: None,
                });
                continue;
            }
            let seen = FileStat {
                size: read.size.unwrap_or(0),
                mtime_ns: read.mtime_ns.unwrap_or(0),
                ino: read.ino.unwrap_or(0),
            };
            let now = FileStat::of(&read.path).ok();
            if now != Some(seen) {
                return Err(RecordError::Unstable(format!(
                    "{} changed while the step ran",
                    display_path(&read.path, base)
                )));
            }
            let hash = content_hash(&read.path, seen).map_err(RecordError::Io)?;
            reads.push(FileRead {
                path: read.path,
                stat: Some(seen),
                hash: Some(hash),
            });
        }

        let mut writes = Vec::new();
        let mut seen_writes = std::collections::HashSet::new();
        for path in raw.writes {
            if !seen_writes.insert(path.clone()) {
                continue;
            }
            // Temporary files are gone by now; only what the step left behind counts.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let hash = keep(&path).map_err(RecordError::Io)?;
            let stat = FileStat::of(&path).map_err(RecordError::Io)?;
            writes.push(FileWrite { path, stat, hash });
        }

        let mut listings: Vec<DirListing> = Vec::new();
        for dir in &raw.listed {
            if !listings.iter().any(|l| &l.path == dir) {
                listings.push(DirListing::of(dir));
            }
        }
        let site_dirs = raw.packages.keys().cloned().collect();
        Ok(Provenance {
            format: PROVENANCE_FORMAT,
            python: PythonIdentity {
                executable: raw.python.executable,
                version: raw.python.version,
            },
            site_dirs,
            packages,
            reads,
            listings,
            writes,
            untracked,
        })
    }

    /// `Ok` when a rerun under `python` would see what the step saw, else why not (one
    /// line, e.g. `data.txt changed`, `scikit-learn 1.8.0 → 1.9.1`). A read file whose
    /// stat changed but whose content did not is still a hit; its new stat is
    /// recorded, so the next check is a stat again (the returned flag says so).
    pub fn check(&mut self, python: &PythonIdentity, base: &Path) -> Result<bool, String> {
        if self.format != PROVENANCE_FORMAT {
            return Err("the entry was written by another version of kale".into());
        }
        if self.python != *python {
            let same_path = self.python.executable == python.executable;
            return Err(if same_path {
                format!("Python {} → {}", self.python.version, python.version)
            } else {
                format!(
                    "Python {} ({}) → {} ({})",
                    self.python.executable.display(),
                    self.python.version,
                    python.executable.display(),
                    python.version
                )
            });
        }
        let indexes: Vec<_> = self
            .site_dirs
            .iter()
            .map(|d| distributions::site_index(d))
            .collect();
        for (name, version) in &self.packages {
            let now = indexes.iter().find_map(|i| i.version_of(name));
            match now {
                Some(v) if v == version => {}
                Some(v) => return Err(format!("{name} {version} → {v}")),
                None => return Err(format!("{name} {version} → not installed")),
            }
        }
        let mut refreshed = false;
        for read in &mut self.reads {
            let shown = display_path(&read.path, base);
            let now = FileStat::of(&read.path).ok();
            match (read.stat, now) {
                (None, None) => {}
                (None, Some(_)) => return Err(format!("{shown} appeared")),
                (Some(_), None) => return Err(format!("{shown} was removed")),
                (Some(was), Some(is)) if was == is => {}
                (Some(_), Some(is)) => {
                    let hash = content_hash(&read.path, is)
                        .map_err(|e| format!("{shown} could not be read: {e}"))?;
                    if Some(&hash) != read.hash.as_ref() {
                        return Err(format!("{shown} changed"));
                    }
                    read.stat = Some(is);
                    refreshed = true;
                }
            }
        }
        for listing in &self.listings {
            if DirListing::of(&listing.path).names != listing.names {
                let shown = display_path(&listing.path, base);
                return Err(match listing.names {
                    None => format!("{shown} appeared"),
                    Some(_) => format!("the files in {shown} changed"),
                });
            }
        }
        Ok(refreshed)
    }

    /// The first reason the snapshot cannot vouch for the step, if any.
    pub fn untrusted(&self) -> Option<&str> {
        self.untracked.first().map(String::as_str)
    }
}

type HashMemo = Mutex<HashMap<PathBuf, (FileStat, String)>>;

/// `blake3:<hex>` of a file, remembered by stat for the life of the process: a tune
/// reads the same data files in every trial.
pub fn content_hash(path: &Path, stat: FileStat) -> std::io::Result<String> {
    static MEMO: OnceLock<HashMemo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some((seen, hash)) = memo.lock().unwrap().get(path)
        && *seen == stat
    {
        return Ok(hash.clone());
    }
    let mut hasher = blake3::Hasher::new();
    super::cache::read_chunks(path, |chunk| {
        hasher.update(chunk);
    })?;
    let hash = format!("blake3:{}", hasher.finalize().to_hex());
    memo.lock()
        .unwrap()
        .insert(path.to_path_buf(), (stat, hash.clone()));
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> PythonIdentity {
        PythonIdentity {
            executable: "/venv/bin/python".into(),
            version: "3.11.7".into(),
        }
    }

    fn snapshot_of(dir: &Path, reads_json: serde_json::Value) -> Provenance {
        std::fs::write(dir.join("reads.json"), reads_json.to_string()).unwrap();
        Provenance::record(dir, dir, &mut |_| Ok("sha256:x".into())).unwrap()
    }

    fn read_entry(path: &Path) -> serde_json::Value {
        let s = FileStat::of(path).unwrap();
        serde_json::json!({"path": path, "size": s.size, "mtime_ns": s.mtime_ns, "ino": s.ino})
    }

    #[test]
    fn content_decides_not_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.txt");
        std::fs::write(&data, "10\n").unwrap();
        let mut p = snapshot_of(
            dir.path(),
            serde_json::json!({"python": python(), "reads": [read_entry(&data)]}),
        );
        assert_eq!(p.check(&python(), dir.path()), Ok(false));

        // Same bytes, new mtime: still a hit, and the new stat is kept.
        let f = std::fs::File::options().write(true).open(&data).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(9))
            .unwrap();
        assert_eq!(p.check(&python(), dir.path()), Ok(true));
        assert_eq!(p.check(&python(), dir.path()), Ok(false));

        std::fs::write(&data, "20\n").unwrap();
        assert_eq!(
            p.check(&python(), dir.path()),
            Err("data.txt changed".into())
        );
        std::fs::remove_file(&data).unwrap();
        assert_eq!(
            p.check(&python(), dir.path()),
            Err("data.txt was removed".into())
        );
    }

    #[test]
    fn a_listed_directory_must_list_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoints");
        std::fs::create_dir(&ckpt).unwrap();
        std::fs::write(ckpt.join("epoch_0.npy"), "0").unwrap();
        let mut p = snapshot_of(
            dir.path(),
            serde_json::json!({"python": python(), "listed": [ckpt, dir.path().join("gone")]}),
        );
        assert_eq!(p.check(&python(), dir.path()), Ok(false));
        // Same names, other content: not the listing's business (reads cover content).
        std::fs::write(ckpt.join("epoch_0.npy"), "00").unwrap();
        assert_eq!(p.check(&python(), dir.path()), Ok(false));
        std::fs::write(ckpt.join("epoch_1.npy"), "1").unwrap();
        assert_eq!(
            p.check(&python(), dir.path()),
            Err("the files in checkpoints changed".into())
        );
        std::fs::remove_file(ckpt.join("epoch_1.npy")).unwrap();
        std::fs::create_dir(dir.path().join("gone")).unwrap();
        assert_eq!(p.check(&python(), dir.path()), Err("gone appeared".into()));
    }

    #[test]
    fn a_file_looked_for_and_absent_must_stay_absent() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("override.cfg");
        let mut p = snapshot_of(
            dir.path(),
            serde_json::json!({"python": python(), "reads": [{"path": cfg, "absent": true}]}),
        );
        assert_eq!(p.check(&python(), dir.path()), Ok(false));
        std::fs::write(&cfg, "x").unwrap();
        assert_eq!(
            p.check(&python(), dir.path()),
            Err("override.cfg appeared".into())
        );
    }

    #[test]
    fn a_file_that_changed_during_the_run_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.txt");
        std::fs::write(&data, "1").unwrap();
        let entry = read_entry(&data);
        std::fs::write(&data, "22").unwrap();
        std::fs::write(
            dir.path().join("reads.json"),
            serde_json::json!({"python": python(), "reads": [entry]}).to_string(),
        )
        .unwrap();
        let err =
            Provenance::record(dir.path(), dir.path(), &mut |_| Ok(String::new())).unwrap_err();
        assert_eq!(err.to_string(), "data.txt changed while the step ran");
    }

    #[test]
    fn another_interpreter_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = snapshot_of(dir.path(), serde_json::json!({"python": python()}));
        let other = PythonIdentity {
            executable: "/other/bin/python".into(),
            version: "3.12.1".into(),
        };
        let why = p.check(&other, dir.path()).unwrap_err();
        assert!(
            why.contains("/venv/bin/python") && why.contains("3.12.1"),
            "{why}"
        );
        let upgraded = PythonIdentity {
            version: "3.11.9".into(),
            ..python()
        };
        assert_eq!(
            p.check(&upgraded, dir.path()),
            Err("Python 3.11.7 → 3.11.9".into())
        );
    }

    #[test]
    fn read_then_written_cannot_be_vouched_for() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.txt");
        let p = snapshot_of(
            dir.path(),
            serde_json::json!({"python": python(), "read_then_written": [log],
                               "untracked": []}),
        );
        assert_eq!(p.untrusted(), Some("it read log.txt and then wrote it"));
    }
}
