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
    fn hint(&self) -> &'static str {
        "pass --python PATH or set KALE_PYTHON to the interpreter of the environment that has the notebook's libraries"
    }
}

/// Which Python runs the steps is the user's choice (`--python`, `KALE_PYTHON`).
impl From<PythonError> for crate::Error {
    fn from(e: PythonError) -> Self {
        crate::Error::bad_input(&e).with_hint(e.hint())
    }
}

/// Where the interpreter came from, so kale can say why it runs the steps with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    /// The Python environment (venv, conda) the kale binary is installed in.
    InstallEnv,
    Path,
}

impl Source {
    /// Stable name for `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "--python",
            Source::Env => "KALE_PYTHON",
            Source::InstallEnv => "install-env",
            Source::Path => "PATH",
        }
    }

    /// How a header line explains the choice.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Flag => "from --python",
            Source::Env => "from KALE_PYTHON",
            Source::InstallEnv => "the environment kale is installed in",
            Source::Path => "`python3` on PATH",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub command: String,
    pub source: Source,
}

/// `--python` wins, then `KALE_PYTHON`, then the interpreter of the Python environment
/// kale is installed in (`pip install` into a venv), then `python3` on PATH.
pub fn choose(flag: Option<&Path>) -> Choice {
    let install_env = std::env::current_exe()
        .ok()
        .and_then(|exe| install_env_python(&exe));
    choose_from(flag, std::env::var("KALE_PYTHON").ok(), install_env)
}

fn choose_from(flag: Option<&Path>, env: Option<String>, install_env: Option<PathBuf>) -> Choice {
    let (command, source) = if let Some(p) = flag {
        (p.display().to_string(), Source::Flag)
    } else if let Some(v) = env.filter(|v| !v.is_empty()) {
        (v, Source::Env)
    } else if let Some(p) = install_env {
        (p.display().to_string(), Source::InstallEnv)
    } else {
        ("python3".into(), Source::Path)
    };
    Choice { command, source }
}

/// The interpreter beside `exe` when `exe` lives in the scripts directory of a Python
/// environment: `<env>/bin/kale` next to `<env>/bin/python3`, with `<env>/pyvenv.cfg`
/// (venv, virtualenv, uv) or `<env>/conda-meta` (conda) marking `<env>` as one. The
/// marker keeps a binary copied into `/usr/bin` or built in `target/` from picking up
/// whatever Python happens to sit beside it. `current_exe` is already free of
/// symlinks on Linux, so a `~/.local/bin/kale` link into a venv finds the venv.
pub fn install_env_python(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    let env = bin.parent()?;
    if !env.join("pyvenv.cfg").is_file() && !env.join("conda-meta").is_dir() {
        return None;
    }
    // `symlink_metadata`, not `exists`: a venv whose base Python was removed has a
    // dangling `python3` link, and running it gives a clearer error than silently
    // falling back to another interpreter without the environment's packages.
    ["python3", "python"]
        .iter()
        .map(|name| bin.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| p.symlink_metadata().is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn flag_then_env_then_install_env_then_path() {
        let venv = Some(PathBuf::from("/v/bin/python3"));
        let flag = Path::new("/f/python");
        let c = choose_from(Some(flag), Some("/e/python".into()), venv.clone());
        assert_eq!((c.command.as_str(), c.source), ("/f/python", Source::Flag));
        let c = choose_from(None, Some("/e/python".into()), venv.clone());
        assert_eq!((c.command.as_str(), c.source), ("/e/python", Source::Env));
        // An empty KALE_PYTHON is unset, as before.
        let c = choose_from(None, Some(String::new()), venv.clone());
        assert_eq!(
            (c.command.as_str(), c.source),
            ("/v/bin/python3", Source::InstallEnv)
        );
        let c = choose_from(None, None, None);
        assert_eq!((c.command.as_str(), c.source), ("python3", Source::Path));
    }

    #[test]
    fn install_env_needs_an_environment_marker_and_an_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("venv");
        let exe = env.join("bin").join("kale");
        touch(&exe);
        touch(&env.join("bin").join("python3"));
        // A python3 beside the binary without pyvenv.cfg/conda-meta: not an environment.
        assert_eq!(install_env_python(&exe), None);
        touch(&env.join("pyvenv.cfg"));
        assert_eq!(
            install_env_python(&exe),
            Some(env.join("bin").join("python3"))
        );

        let conda = dir.path().join("conda");
        let exe = conda.join("bin").join("kale");
        touch(&exe);
        std::fs::create_dir_all(conda.join("conda-meta")).unwrap();
        // A marker without an interpreter beside the binary finds nothing.
        assert_eq!(install_env_python(&exe), None);
        touch(&conda.join("bin").join("python"));
        assert_eq!(
            install_env_python(&exe),
            Some(conda.join("bin").join("python"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_interpreter_link_is_still_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin").join("kale");
        touch(&exe);
        touch(&dir.path().join("pyvenv.cfg"));
        let link = dir.path().join("bin").join("python3");
        std::os::unix::fs::symlink("/nonexistent/python3.99", &link).unwrap();
        assert_eq!(install_env_python(&exe), Some(link));
    }
}
