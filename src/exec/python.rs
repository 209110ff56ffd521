//! Finding the Python interpreter steps run with.
//!
//! Resolved once per command to the real binary (`sys.executable`): `python3` is often a
//! shim script (pyenv, conda) that costs tens of milliseconds on every step start.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug)]
pub struct Interpreter {
    pub executable: PathBuf,
    pub version: (u32, u32),
    /// `3.11.7`: part of every cache entry's snapshot.
    pub full_version: String,
    pub has_ipython: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("cannot start Python `{command}` ({source}); it is needed to run the steps")]
    NotFound {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not run as a Python interpreter: {detail}")]
    NotPython { command: String, detail: String },
    #[error("`{command}` is Python {major}.{minor}; kale needs Python 3.8 or newer")]
    TooOld {
        command: String,
        major: u32,
        minor: u32,
    },
}

impl PythonError {
    pub fn hint(&self) -> &'static str {
        "pass --python PATH or set KALE_PYTHON to the interpreter of the environment that has the notebook's libraries"
    }
}

/// `--python` wins, then `KALE_PYTHON`, then `python3` on PATH.
pub fn choose(flag: Option<&Path>) -> String {
    if let Some(p) = flag {
        return p.display().to_string();
    }
    match std::env::var("KALE_PYTHON") {
        Ok(v) if !v.is_empty() => v,
        _ => "python3".into(),
    }
}

const PROBE: &str = "import sys, importlib.util\nprint(sys.executable)\nprint('%d.%d.%d' % sys.version_info[:3])\nprint(importlib.util.find_spec('IPython') is not None)";

pub fn resolve(command: &str) -> Result<Interpreter, PythonError> {
    let out = Command::new(command)
        .arg("-c")
        .arg(PROBE)
        .output()
        .map_err(|source| PythonError::NotFound {
            command: command.into(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let (Some(exe), Some(version), Some(ipython)) = (lines.next(), lines.next(), lines.next())
    else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(PythonError::NotPython {
            command: command.into(),
            detail: stderr.lines().last().unwrap_or("no output").to_string(),
        });
    };
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().ok());
    let (major, minor) = match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    };
    if (major, minor) < (3, 8) {
        return Err(PythonError::TooOld {
            command: command.into(),
            major,
            minor,
        });
    }
    // An empty sys.executable happens in embedded interpreters; fall back to the command.
    let executable = if exe.is_empty() {
        PathBuf::from(command)
    } else {
        PathBuf::from(exe)
    };
    Ok(Interpreter {
        executable,
        version: (major, minor),
        full_version: version.to_string(),
        has_ipython: ipython == "True",
    })
}

impl Interpreter {
    /// What a cache entry's snapshot records of the interpreter (as the step sees
    /// itself: `sys.executable`, which is what [`resolve`] returned).
    pub fn identity(&self) -> super::provenance::PythonIdentity {
        super::provenance::PythonIdentity {
            executable: self.executable.clone(),
            version: self.full_version.clone(),
        }
    }
}

/// `PYTHONPATH` for step processes: the runtime directory, then the user's own.
pub fn python_path(runtime_dir: &Path) -> std::ffi::OsString {
    match std::env::var_os("PYTHONPATH") {
        Some(existing) if !existing.is_empty() => {
            let mut p = runtime_dir.as_os_str().to_owned();
            p.push(":");
            p.push(existing);
            p
        }
        _ => runtime_dir.as_os_str().to_owned(),
    }
}
