//! Where kale keeps what it records: one `.kale/` folder beside the notebook.
//!
//! ```text
//! <notebook's folder>/.kale/
//! ├── kale.db                  experiment store (SQLite, WAL)
//! ├── fork-server.log          start-up problems of the fork server
//! ├── runs/<run-id>/           one run or trial: manifest.json, steps/<step>/...
//! ├── cache/objects/<sha256>   every saved output and written file, stored once
//! ├── cache/steps/<key>.json   cache entries, each with its snapshot
//! └── runtime/<version>/       kale_runtime.py and the fork server, per runtime version
//! ```
//!
//! Every path under `.kale/` is worked out here and nowhere else, and a name that
//! becomes part of one (a run id, which holds an experiment's name) must be one plain
//! path component: nothing built here can leave `.kale/`.

use std::path::{Component, Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The `.kale/` of a notebook: in the notebook's folder.
    pub fn for_notebook(notebook: &Path) -> Layout {
        let dir = match notebook.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Layout {
            root: dir.join(".kale"),
        }
    }

    /// From what a user passes to `--dir`: a notebook, or the folder holding notebooks.
    pub fn for_dir_or_notebook(path: &Path) -> Layout {
        if path.is_file() || path.extension().is_some_and(|e| e == "ipynb") {
            Self::for_notebook(path)
        } else {
            Layout {
                root: path.join(".kale"),
            }
        }
    }

    /// The `.kale/` that holds a runs directory (runs may be placed elsewhere; what
    /// belongs beside them follows them).
    pub fn beside_runs(runs_dir: &Path) -> Layout {
        Layout {
            root: runs_dir.parent().unwrap_or(runs_dir).to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("kale.db")
    }

    pub fn runtime(&self, version: &str) -> PathBuf {
        self.root.join("runtime").join(version)
    }

    pub fn fork_server_log(&self) -> PathBuf {
        self.root.join("fork-server.log")
    }

    /// The `.kale/` a store at `.kale/kale.db` belongs to.
    pub fn of_store(database: &Path) -> Layout {
        Layout {
            root: match database.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        }
    }

    /// `runs/<id>`: refused unless `id` is one plain path component.
    pub fn run(&self, id: &str) -> std::io::Result<PathBuf> {
        child(&self.runs(), id)
    }
}

/// A run's `manifest.json` (`runs/<run-id>/manifest.json`).
pub fn manifest(run_dir: &Path) -> PathBuf {
    run_dir.join("manifest.json")
}

/// The folder of a run's steps (`runs/<run-id>/steps`).
pub fn run_steps(run_dir: &Path) -> PathBuf {
    run_dir.join("steps")
}

/// A step's folder in a run (`runs/<run-id>/steps/<step>`): its program, logs, records.
pub fn step_dir(run_dir: &Path, step: &str) -> PathBuf {
    run_steps(run_dir).join(step)
}

/// The files a step saved its outputs to (`runs/<run-id>/steps/<step>/outputs`).
pub fn step_outputs(run_dir: &Path, step: &str) -> PathBuf {
    outputs_dir(&step_dir(run_dir, step))
}

/// The outputs folder of the step whose folder is `step_dir`.
pub fn outputs_dir(step_dir: &Path) -> PathBuf {
    step_dir.join("outputs")
}

/// The step cache's objects, one file per content hash (`cache/objects`), of the
/// cache at `cache_root`.
pub fn cache_objects(cache_root: &Path) -> PathBuf {
    cache_root.join("objects")
}

/// The step cache's entries, one `<key>.json` each (`cache/steps`).
pub fn cache_entries(cache_root: &Path) -> PathBuf {
    cache_root.join("steps")
}

/// `dir/name`, where `name` must be one plain path component: not empty, not `.` or
/// `..`, no `/`, no NUL or other control character, at most 255 bytes (what a file
/// system takes). Anything else would reach outside `dir` or fail obscurely later.
pub fn child(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let mut components = Path::new(name).components();
    let plain = matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name.len() <= 255;
    if plain {
        Ok(dir.join(name))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "`{}` cannot be a file name under {}: it must be one plain path component",
                crate::names::shown(name),
                dir.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_lives_beside_the_notebook() {
        let l = Layout::for_notebook(Path::new("work/nb.ipynb"));
        assert_eq!(l.runs(), Path::new("work/.kale/runs"));
        assert_eq!(l.database(), Path::new("work/.kale/kale.db"));
        assert_eq!(
            Layout::for_notebook(Path::new("nb.ipynb")).cache(),
            Path::new("./.kale/cache")
        );
        assert_eq!(Layout::beside_runs(&l.runs()), l);
        assert_eq!(
            Layout::for_dir_or_notebook(Path::new("some/dir")).fork_server_log(),
            Path::new("some/dir/.kale/fork-server.log")
        );
        assert_eq!(Layout::of_store(&l.database()), l);
    }

    #[test]
    fn nothing_built_here_leaves_kale() {
        let l = Layout::for_notebook(Path::new("work/nb.ipynb"));
        assert_eq!(
            l.run("digits-1-t3-ab12").unwrap(),
            Path::new("work/.kale/runs/digits-1-t3-ab12")
        );
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            "a\nb",
            "a\0b",
            long.as_str(),
        ] {
            let e = l.run(bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
