//! Which installed distribution (and version) owns a top-level entry of a site
//! directory: `sklearn` → `scikit-learn 1.8.0`.
//!
//! The step runtime reports the top-level entries of the packages a step imported
//! (`sklearn`, `threadpoolctl.py`); the distributions' `RECORD` files (and
//! `top_level.txt` for old eggs) say who installed them. An index is built once per
//! site directory and rebuilt when the directory's mtime changes, which every
//! `pip install` or uninstall does (it adds or removes a `*.dist-info` folder), so a
//! tune that runs while the user upgrades a package sees the new version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// A distribution as installed: its display name and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    pub name: String,
    pub version: String,
}

/// The distributions of one site directory, by top-level entry and by name.
#[derive(Debug, Default)]
pub struct SiteIndex {
    by_entry: HashMap<String, Distribution>,
    by_name: HashMap<String, Distribution>,
    /// By importable name: an entry without its suffixes (`six.py`, `_cffi_backend.cpython-311-x86_64-linux-gnu.so`).
    by_module: HashMap<String, Distribution>,
}

impl SiteIndex {
    /// The distribution that installed `entry` (`sklearn`, `threadpoolctl.py`).
    pub fn owner(&self, entry: &str) -> Option<&Distribution> {
        self.by_entry.get(entry).or_else(|| {
            // Entries recorded without their suffix in top_level.txt.
            let stem = entry
                .strip_suffix(".py")
                .or_else(|| entry.split_once('.').map(|(s, _)| s))?;
            self.by_entry.get(stem)
        })
    }

    /// The distribution that installed the top-level module `import name` finds:
    /// a package directory, a `.py` file or an extension module.
    pub fn owner_of_module(&self, name: &str) -> Option<&Distribution> {
        self.by_entry.get(name).or_else(|| self.by_module.get(name))
    }

    /// The installed version of a distribution, by (any spelling of) its name.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        self.by_name
            .get(&normalize(name))
            .map(|d| d.version.as_str())
    }

    fn build(dir: &Path) -> SiteIndex {
        let mut index = SiteIndex::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return index;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let (stem, egg) = if let Some(stem) = file_name.strip_suffix(".dist-info") {
                (stem, false)
            } else if let Some(stem) = file_name.strip_suffix(".egg-info") {
                (stem, true)
            } else {
                continue;
            };
            let Some(dist) = parse_stem(stem, egg) else {
                continue;
            };
            let meta = entry.path();
            let mut owned: Vec<String> = Vec::new();
            if let Ok(record) = std::fs::read_to_string(meta.join("RECORD")) {
                owned.extend(record.lines().filter_map(top_level_of_record_line));
            }
            if let Ok(top) = std::fs::read_to_string(meta.join("top_level.txt")) {
                owned.extend(
                    top.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            for top in owned {
                if let Some(module) = top.split('.').next()
                    && module != top
                    && (top.ends_with(".py") || top.ends_with(".so") || top.ends_with(".pyd"))
                {
                    index
                        .by_module
                        .entry(module.to_string())
                        .or_insert_with(|| dist.clone());
                }
                index.by_entry.entry(top).or_insert_with(|| dist.clone());
            }
            index.by_name.insert(normalize(&dist.name), dist);
        }
        index
    }
}

/// `scikit_learn-1.8.0` → scikit-learn 1.8.0; eggs: `foo-1.0-py3.11` → foo 1.0.
fn parse_stem(stem: &str, egg: bool) -> Option<Distribution> {
    let (name, version) = if egg {
        let mut parts = stem.splitn(3, '-');
        (parts.next()?, parts.next()?)
    } else {
        stem.rsplit_once('-')?
    };
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some(Distribution {
        name: name.replace('_', "-"),
        version: version.to_string(),
    })
}

/// The first path component of a RECORD line (`sklearn/svm/_base.py,sha256=...,123`),
/// when it names an importable top-level entry.
fn top_level_of_record_line(line: &str) -> Option<String> {
    let path = line.split(',').next()?.trim().trim_matches('"');
    let first = path.split('/').next()?;
    let skip = first.is_empty()
        || first == ".."
        || first == "__pycache__"
        || first.ends_with(".dist-info")
        || first.ends_with(".egg-info")
        || first.ends_with(".data")
        || first.ends_with(".pth");
    (!skip).then(|| first.to_string())
}

/// PEP 503 normalisation: case-insensitive, runs of `-_.` are one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

type Indexes = Mutex<HashMap<PathBuf, (Option<SystemTime>, Arc<SiteIndex>)>>;

/// The index of a site directory, rebuilt only when the directory changed.
pub fn site_index(dir: &Path) -> Arc<SiteIndex> {
    static INDEXES: OnceLock<Indexes> = OnceLock::new();
    let mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let indexes = INDEXES.get_or_init(Default::default);
    if let Some((seen, index)) = indexes.lock().unwrap().get(dir)
        && *seen == mtime
    {
        return index.clone();
    }
    let index = Arc::new(SiteIndex::build(dir));
    indexes
        .lock()
        .unwrap()
        .insert(dir.to_path_buf(), (mtime, index.clone()));
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_from_folder_names() {
        assert_eq!(
            parse_stem("scikit_learn-1.8.0", false),
            Some(Distribution {
                name: "scikit-learn".into(),
                version: "1.8.0".into()
            })
        );
        assert_eq!(
            parse_stem("foo-1.0-py3.11", true).map(|d| d.version),
            Some("1.0".into())
        );
        assert_eq!(normalize("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }

    #[test]
    fn owners_come_from_record_and_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("fake_pkg-2.1.dist-info");
        std::fs::create_dir(&info).unwrap();
        std::fs::write(
            info.join("RECORD"),
            "fakepkg/__init__.py,sha256=x,10\nfakemod.py,,\nfake_pkg-2.1.dist-info/RECORD,,\n../../bin/tool,,\n",
        )
        .unwrap();
        let index = site_index(dir.path());
        assert_eq!(index.owner("fakepkg").unwrap().name, "fake-pkg");
        assert_eq!(index.owner("fakemod.py").unwrap().version, "2.1");
        assert!(index.owner("fake_pkg-2.1.dist-info").is_none());
        assert!(index.owner("..").is_none());
        assert_eq!(index.version_of("Fake.Pkg"), Some("2.1"));

        // An upgrade replaces the folder; the index follows.
        std::fs::rename(&info, dir.path().join("fake_pkg-2.2.dist-info")).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::open(dir.path()).unwrap();
        f.set_modified(later).unwrap();
        assert_eq!(site_index(dir.path()).version_of("fake-pkg"), Some("2.2"));
    }
}
