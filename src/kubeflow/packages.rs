//! The third-party packages a stock Python step image lacks.
//!
//! A step whose image is a stock `python:` image has none of the notebook's libraries.
//! Kale installs the imported packages unpinned in every step (its issue #872), so a
//! pipeline compiled today runs other versions than the notebook did. kale pins each
//! package to the version installed in the local Python (the interpreter `kale run`
//! uses), found through the distribution that provides the imported module; the step
//! bootstrap installs only what its image does not already have at that version.
//! Modules the local Python does not have cannot be pinned: compile names them.
//!
//! Without starting that Python when it can: standard-library modules are known by
//! name, and the others are looked up in the distributions' metadata (`RECORD`,
//! `top_level.txt`) of the site directories the interpreter's layout implies (a venv,
//! a conda environment, a system or `/usr/local` install), as the cache snapshot does.
//! Only modules that lookup does not find (a path added by a `.pth` file or
//! `PYTHONPATH`, an interpreter behind a shim script) are asked of the interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::pipeline::Pipeline;

/// What the steps on a stock Python image install, and what could not be resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packages {
    /// `distribution==version`, sorted.
    pub pins: Vec<String>,
    /// Imported top-level modules that the local Python does not provide.
    pub unresolved: Vec<String>,
    /// The interpreter the versions come from.
    pub python: String,
    /// Why nothing could be resolved (the interpreter did not run), if so.
    pub error: Option<String>,
}

/// The third-party packages steps on a stock Python image install, pinned to the
/// versions in the Python `kale run` would use (`python`, else as `kale run` chooses);
/// it runs only when some step has such an image.
pub fn for_steps(p: &Pipeline, python: Option<&std::path::Path>) -> Packages {
    let stock = p
        .steps
        .iter()
        .any(|s| is_stock_python(&super::kfp::image_of(p, s)));
    let modules = if stock {
        imported_top_level(p)
    } else {
        Vec::new()
    };
    if modules.is_empty() {
        Packages::default()
    } else {
        resolve(&modules, &crate::exec::python::choose(python).command)
    }
}

/// `python`, `python:3.12`, `python:3.12-slim`, `docker.io/library/python:3.11`, ...:
/// images with Python and nothing else.
pub fn is_stock_python(image: &str) -> bool {
    let name = image.strip_prefix("docker.io/").unwrap_or(image);
    let name = name.strip_prefix("library/").unwrap_or(name);
    name.split(['@', ':']).next() == Some("python")
}

/// Top-level modules the `imports` and `functions` cells import (what every step
/// runs), less the modules that live beside the notebook.
pub fn imported_top_level(p: &Pipeline) -> Vec<String> {
    let sources = p
        .imports_cells
        .iter()
        .chain(&p.functions_cells)
        .filter_map(|c| p.sources.get(c).map(String::as_str));
    let dir = p.notebook.parent().unwrap_or(Path::new("."));
    let mut out: Vec<String> = Vec::new();
    for m in crate::analysis::imported_modules(sources) {
        let top = m.split('.').next().unwrap_or(&m).to_string();
        let local =
            dir.join(format!("{top}.py")).exists() || dir.join(&top).join("__init__.py").exists();
        if !local && !out.contains(&top) {
            out.push(top);
        }
    }
    out
}

const PROBE: &str = r#"
import importlib.util, json, sys, sysconfig
import importlib.metadata as md
stdlib = getattr(sys, "stdlib_module_names", None)
dists = md.packages_distributions() if hasattr(md, "packages_distributions") else {}
stdlib_dir = sysconfig.get_paths()["stdlib"]
out = {}
for m in json.loads(sys.argv[1]):
    if m in sys.builtin_module_names or (stdlib is not None and m in stdlib):
        continue
    if stdlib is None:
        spec = importlib.util.find_spec(m)
        origin = (spec and spec.origin) or ""
        if origin.startswith(stdlib_dir) and "-packages" not in origin:
            continue
    found = dists.get(m) or []
    out[m] = [found[0], md.version(found[0])] if found else None
print(json.dumps(out))
"#;

/// Python's standard-library top-level modules (`sys.stdlib_module_names` of 3.11,
/// plus those 3.12 and 3.13 added or removed): never installed by a step.
const STDLIB: &[&str] = &[
    "__future__",
    "_abc",
    "_aix_support",
    "_android_support",
    "_apple_support",
    "_ast",
    "_asyncio",
    "_bisect",
    "_blake2",
    "_bootlocale",
    "_bootsubprocess",
    "_bz2",
    "_codecs",
    "_codecs_cn",
    "_codecs_hk",
    "_codecs_iso2022",
    "_codecs_jp",
    "_codecs_kr",
    "_codecs_tw",
    "_collections",
    "_collections_abc",
    "_colorize",
    "_compat_pickle",
    "_compression",
    "_contextvars",
    "_crypt",
    "_csv",
    "_ctypes",
    "_curses",
    "_curses_panel",
    "_datetime",
    "_dbm",
    "_decimal",
    "_dummy_thread",
    "_elementtree",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "_functools",
    "_gdbm",
    "_hashlib",
    "_heapq",
    "_imp",
    "_interpchannels",
    "_interpqueues",
    "_interpreters",
    "_io",
    "_ios_support",
    "_json",
    "_locale",
    "_lsprof",
    "_lzma",
    "_markupbase",
    "_md5",
    "_msi",
    "_multibytecodec",
    "_multiprocessing",
    "_opcode",
    "_opcode_metadata",
    "_operator",
    "_osx_support",
    "_overlapped",
    "_pickle",
    "_posixshmem",
    "_posixsubprocess",
    "_py_abc",
    "_pydecimal",
    "_pyio",
    "_pyrepl",
    "_queue",
    "_random",
    "_scproxy",
    "_sha1",
    "_sha256",
    "_sha3",
    "_sha512",
    "_signal",
    "_sitebuiltins",
    "_socket",
    "_sqlite3",
    "_sre",
    "_ssl",
    "_stat",
    "_statistics",
    "_string",
    "_strptime",
    "_struct",
    "_suggestions",
    "_symtable",
    "_sysconfig",
    "_thread",
    "_threading_local",
    "_tkinter",
    "_tokenize",
    "_tracemalloc",
    "_typing",
    "_uuid",
    "_warnings",
    "_weakref",
    "_weakrefset",
    "_winapi",
    "_zoneinfo",
    "abc",
    "aifc",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asynchat",
    "asyncio",
    "asyncore",
    "atexit",
    "audioop",
    "base64",
    "bdb",
    "binascii",
    "binhex",
    "bisect",
    "builtins",
    "bz2",
    "cProfile",
    "calendar",
    "cgi",
    "cgitb",
    "chunk",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "crypt",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dis",
    "distutils",
    "doctest",
    "dummy_threading",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "formatter",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "idlelib",
    "imaplib",
    "imghdr",
    "imp",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "lib2to3",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "macpath",
    "mailbox",
    "mailcap",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msilib",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nis",
    "nntplib",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "ossaudiodev",
    "parser",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pipes",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "smtpd",
    "smtplib",
    "sndhdr",
    "socket",
    "socketserver",
    "spwd",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sunau",
    "symbol",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "telnetlib",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "uu",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xdrlib",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];

pub fn is_stdlib(module: &str) -> bool {
    STDLIB.binary_search(&module).is_ok()
}

/// Which distribution and version provide each of `modules` in `python`: from the
/// site directories its layout implies, asking the interpreter only about what they
/// do not show.
pub fn resolve(modules: &[String], python: &str) -> Packages {
    let modules: Vec<String> = modules.iter().filter(|m| !is_stdlib(m)).cloned().collect();
    let mut packages = Packages {
        python: python.to_string(),
        ..Packages::default()
    };
    if modules.is_empty() {
        return packages;
    }
    let mut missing = modules.clone();
    let mut layout_is_complete = false;
    if let Some(dirs) = site_dirs(python) {
        layout_is_complete = !dirs.iter().any(|d| extends_the_path(d));
        let indexes: Vec<_> = dirs
            .iter()
            .map(|d| crate::exec::distributions::site_index(d))
            .collect();
        missing.clear();
        for m in &modules {
            match indexes.iter().find_map(|index| index.owner_of_module(m)) {
                Some(d) => {
                    let pin = format!("{}=={}", d.name, d.version);
                    if !packages.pins.contains(&pin) {
                        packages.pins.push(pin);
                    }
                }
                None => missing.push(m.clone()),
            }
        }
    }
    if !missing.is_empty() && layout_is_complete {
        // Nothing adds to the search path beyond these directories: what they do not
        // hold, the interpreter does not have either.
        packages.unresolved = missing;
    } else if !missing.is_empty() {
        let probed = probe(&missing, python);
        for pin in probed.pins {
            if !packages.pins.contains(&pin) {
                packages.pins.push(pin);
            }
        }
        packages.unresolved = probed.unresolved;
        packages.error = probed.error;
    }
    packages.pins.sort();
    packages
}

/// The site directories `python` imports third-party packages from, in its search
/// order, read from its installation's layout without running it; `None` when the
/// layout does not say (a shim script, `PYTHONPATH` set, no site directory found).
pub fn site_dirs(python: &str) -> Option<Vec<PathBuf>> {
    if std::env::var_os("PYTHONPATH").is_some_and(|p| !p.is_empty()) {
        return None;
    }
    let exe = if python.contains('/') {
        PathBuf::from(python)
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(python))
            .find(|p| p.is_file())?
    };
    let bin = exe.parent()?;
    let prefix = bin.parent()?;
    // A venv (or virtualenv, uv): its own site-packages, and the base interpreter's
    // when it includes the system site packages. The venv's `python3` is a link to
    // the base interpreter; what the venv sees is decided by pyvenv.cfg.
    if let Ok(cfg) = std::fs::read_to_string(prefix.join("pyvenv.cfg")) {
        let setting = |key: &str| {
            cfg.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let version = setting("version_info")
            .or_else(|| setting("version"))
            .and_then(|v| minor_version(&v));
        let mut dirs = lib_site_dirs(prefix, version.as_deref(), "site-packages");
        if dirs.is_empty() {
            return None;
        }
        if setting("include-system-site-packages").as_deref() == Some("true") {
            let base = std::fs::canonicalize(&exe).ok()?;
            dirs.extend(system_site_dirs(&base, version.as_deref())?);
        }
        return Some(dirs);
    }
    // pyenv's shim picks a version the way pyenv does; the first version it names
    // decides the interpreter (`system` and unknown versions are left to the probe).
    if let Some(real) = pyenv_interpreter(&exe) {
        return site_dirs(&real.display().to_string());
    }
    // Anything else must be the interpreter itself, not a script in front of one
    // (wrappers): a script's interpreter is not known here.
    let real = std::fs::canonicalize(&exe).ok()?;
    let mut head = [0u8; 2];
    use std::io::Read as _;
    std::fs::File::open(&real)
        .ok()?
        .read_exact(&mut head)
        .ok()?;
    if &head == b"#!" {
        return None;
    }
    let name = real.file_name()?.to_string_lossy().to_string();
    let version = name.strip_prefix("python").and_then(minor_version);
    system_site_dirs(&real, version.as_deref())
}

/// The interpreter a pyenv shim (`$PYENV_ROOT/shims/python3`) runs: `$PYENV_VERSION`,
/// else the nearest `.python-version` from the working directory up, else
/// `$PYENV_ROOT/version`; its first version, if pyenv installed it.
fn pyenv_interpreter(exe: &Path) -> Option<PathBuf> {
    pyenv_interpreter_in(
        exe,
        std::env::var("PYENV_VERSION").ok(),
        &std::env::current_dir().ok()?,
    )
}

fn pyenv_interpreter_in(exe: &Path, env_version: Option<String>, cwd: &Path) -> Option<PathBuf> {
    let shims = exe.parent()?;
    if shims.file_name()? != "shims" {
        return None;
    }
    let root = shims.parent()?;
    if !root.join("versions").is_dir() {
        return None;
    }
    let from_file = |path: &Path| {
        std::fs::read_to_string(path).ok().and_then(|text| {
            text.split_whitespace()
                .find(|w| !w.starts_with('#'))
                .map(str::to_string)
        })
    };
    let version = match env_version {
        Some(v) if !v.trim().is_empty() => v.split(':').next()?.trim().to_string(),
        _ => cwd
            .ancestors()
            .find_map(|d| from_file(&d.join(".python-version")))
            .or_else(|| from_file(&root.join("version")))?,
    };
    let real = root
        .join("versions")
        .join(&version)
        .join("bin")
        .join(exe.file_name()?);
    real.is_file().then_some(real)
}

/// Whether a `.pth` file in `dir` adds directories to the search path (an editable
/// install, a `conda develop`): modules there are not in the distributions' records.
/// A line naming a directory does; a line of code (`import ...`) does when it is an
/// editable install's import finder or touches `sys.path`, not when it only runs
/// something at start-up (a certificate hook, distutils' precedence shim).
fn extends_the_path(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".pth") {
            return false;
        }
        // setuptools' and distutils-precedence's own hooks change no path a notebook
        // imports from.
        if name == "distutils-precedence.pth" {
            return false;
        }
        let editable = name.starts_with("__editable__");
        std::fs::read_to_string(e.path()).map_or(true, |text| {
            text.lines().map(str::trim).any(|l| {
                if l.is_empty() || l.starts_with('#') {
                    false
                } else if l.starts_with("import ") || l.starts_with("import\t") {
                    editable || l.contains("sys.path") || l.contains("finder")
                } else {
                    true
                }
            })
        })
    })
}

/// `3.11.7` → `3.11`.
fn minor_version(v: &str) -> Option<String> {
    let mut parts = v.trim().split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    (major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok())
        .then(|| format!("{major}.{minor}"))
}

/// `PREFIX/lib/pythonX.Y/KIND` (every `python3.*` when the version is unknown).
fn lib_site_dirs(prefix: &Path, version: Option<&str>, kind: &str) -> Vec<PathBuf> {
    let lib = prefix.join("lib");
    let mut dirs: Vec<PathBuf> = match version {
        Some(v) => vec![lib.join(format!("python{v}")).join(kind)],
        None => std::fs::read_dir(&lib)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("python3."))
                    .map(|e| e.path().join(kind))
                    .collect()
            })
            .unwrap_or_default(),
    };
    dirs.retain(|d| d.is_dir());
    dirs.sort();
    dirs
}

/// The site directories of an interpreter outside a venv (the real binary): the
/// user's site directory first, then the prefix's `site-packages`, then Debian's
/// `dist-packages`. `None` when there is no site directory, or when the version
/// needed to find the user's is unknown.
fn system_site_dirs(real: &Path, version: Option<&str>) -> Option<Vec<PathBuf>> {
    let prefix = real.parent()?.parent()?;
    let mut dirs = Vec::new();
    if let Some(v) = version
        && let Some(home) = std::env::var_os("HOME")
        && std::env::var_os("PYTHONNOUSERSITE").is_none()
    {
        let user = PathBuf::from(home)
            .join(".local/lib")
            .join(format!("python{v}"))
            .join("site-packages");
        if user.is_dir() {
            dirs.push(user);
        }
    } else if version.is_none() && user_site_may_exist() {
        return None;
    }
    dirs.extend(lib_site_dirs(prefix, version, "site-packages"));
    if prefix == Path::new("/usr") {
        if let Some(v) = version {
            let local = PathBuf::from(format!("/usr/local/lib/python{v}/dist-packages"));
            if local.is_dir() {
                dirs.push(local);
            }
        }
        let debian = PathBuf::from("/usr/lib/python3/dist-packages");
        if debian.is_dir() {
            dirs.push(debian);
        }
    }
    (!dirs.is_empty()).then_some(dirs)
}

/// Without the version the user's site directory cannot be named: only trust the
/// layout when there can be none.
fn user_site_may_exist() -> bool {
    std::env::var_os("HOME").is_some_and(|h| PathBuf::from(h).join(".local/lib").is_dir())
}

/// Asks `python` which distribution and version provide each of `modules`.
fn probe(modules: &[String], python: &str) -> Packages {
    let mut packages = Packages {
        python: python.to_string(),
        ..Packages::default()
    };
    if modules.is_empty() {
        return packages;
    }
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .arg(serde_json::to_string(modules).unwrap())
        .output();
    let doc: Option<Value> = match &out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        _ => None,
    };
    let Some(Value::Object(found)) = doc else {
        packages.error = Some(match out {
            Ok(o) => String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
                .to_string(),
            Err(e) => e.to_string(),
        });
        packages.unresolved = modules.to_vec();
        return packages;
    };
    for (module, dist) in found {
        match dist.as_array().map(|a| (a[0].as_str(), a[1].as_str())) {
            Some((Some(name), Some(version))) => {
                let pin = format!("{name}=={version}");
                if !packages.pins.contains(&pin) {
                    packages.pins.push(pin);
                }
            }
            _ => packages.unresolved.push(module),
        }
    }
    packages.pins.sort();
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_library_is_known_by_name() {
        assert!(
            STDLIB.windows(2).all(|w| w[0] < w[1]),
            "sorted, for binary search"
        );
        for m in [
            "os",
            "json",
            "math",
            "collections",
            "tomllib",
            "zoneinfo",
            "__future__",
        ] {
            assert!(is_stdlib(m), "{m}");
        }
        for m in ["numpy", "sklearn", "torch", "yaml", "requests"] {
            assert!(!is_stdlib(m), "{m}");
        }
    }

    #[test]
    fn a_venv_is_read_from_its_layout_without_running_it() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        let site = venv.join("lib/python3.12/site-packages");
        std::fs::create_dir_all(site.join("fake_dist-2.5.dist-info")).unwrap();
        std::fs::write(
            site.join("fake_dist-2.5.dist-info/RECORD"),
            "fakepkg/__init__.py,,\nfake_single.py,,\n",
        )
        .unwrap();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        // An interpreter that would say so if it ran.
        let python = venv.join("bin/python3");
        std::fs::write(&python, "#!/bin/sh\nexit 7\n").unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.4\n",
        )
        .unwrap();
        let python = python.display().to_string();
        assert_eq!(site_dirs(&python), Some(vec![site.clone()]));
        let modules = ["os".to_string(), "fakepkg".into(), "fake_single".into()];
        let p = resolve(&modules, &python);
        assert_eq!(p.pins, ["fake-dist==2.5"]);
        assert!(p.unresolved.is_empty() && p.error.is_none(), "{p:?}");
        // Nothing extends the path: what the site directory lacks, the interpreter
        // lacks, and it is not asked.
        let p = resolve(&["fakepkg".to_string(), "elsewhere".into()], &python);
        assert_eq!(p.pins, ["fake-dist==2.5"]);
        assert_eq!(p.unresolved, ["elsewhere"]);
        assert!(p.error.is_none(), "{p:?}");
        // An editable install's path: the interpreter is asked (and here fails).
        std::fs::write(site.join("__editable__.mine-0.1.pth"), "/src/mine\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::open(&site)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let p = resolve(&["fakepkg".to_string(), "elsewhere".into()], &python);
        assert_eq!(p.pins, ["fake-dist==2.5"]);
        assert_eq!(p.unresolved, ["elsewhere"]);
        assert!(p.error.is_some());
        // A start-up hook that changes no path does not count.
        std::fs::remove_file(site.join("__editable__.mine-0.1.pth")).unwrap();
        std::fs::write(
            site.join("certs.pth"),
            "import os; os.environ.setdefault('X', '1')\n",
        )
        .unwrap();
        assert!(!extends_the_path(&site));
    }

    #[test]
    fn a_pyenv_shim_leads_to_the_version_pyenv_would_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pyenv");
        std::fs::create_dir_all(root.join("shims")).unwrap();
        let shim = root.join("shims/python3");
        std::fs::write(&shim, "#!/usr/bin/env bash\nexec pyenv exec python3\n").unwrap();
        for v in ["3.11.7", "3.12.1"] {
            let bin = root.join("versions").join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("python3"), "\x7fELF").unwrap();
        }
        std::fs::write(root.join("version"), "3.11.7\n").unwrap();
        let project = dir.path().join("project/sub");
        std::fs::create_dir_all(&project).unwrap();
        let at = |v: &str| root.join("versions").join(v).join("bin/python3");
        assert_eq!(
            pyenv_interpreter_in(&shim, None, &project),
            Some(at("3.11.7"))
        );
        std::fs::write(dir.path().join("project/.python-version"), "3.12.1\n").unwrap();
        assert_eq!(
            pyenv_interpreter_in(&shim, None, &project),
            Some(at("3.12.1"))
        );
        assert_eq!(
            pyenv_interpreter_in(&shim, Some("3.11.7:3.12.1".into()), &project),
            Some(at("3.11.7"))
        );
        // `system`, or a version pyenv does not have: not known here.
        assert_eq!(
            pyenv_interpreter_in(&shim, Some("system".into()), &project),
            None
        );
        assert_eq!(pyenv_interpreter_in(&at("3.11.7"), None, &project), None);
    }

    #[test]
    fn stock_python_images() {
        for yes in [
            "python",
            "python:3.12",
            "python:3.11-slim",
            "docker.io/library/python:3.10",
            "library/python:3",
            "python@sha256:abc",
        ] {
            assert!(is_stock_python(yes), "{yes}");
        }
        for no in [
            "jupyter/scipy-notebook",
            "ghcr.io/me/python:3.12",
            "pytorch/pytorch:2.3",
            "python-ml:1",
        ] {
            assert!(!is_stock_python(no), "{no}");
        }
    }
}
