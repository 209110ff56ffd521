//! The third-party packages a stock Python step image lacks.
//!
//! A step whose image is a stock `python:` image has none of the notebook's libraries.
//! Kale installs the imported packages unpinned in every step (its issue #872), so a
//! pipeline compiled today runs other versions than the notebook did. kale pins each
//! package to the version installed in the local Python (the interpreter `kale run`
//! uses), found through the distribution that provides the imported module; the step
//! bootstrap installs only what its image does not already have at that version.
//! Modules the local Python does not have cannot be pinned: compile names them.

use std::path::Path;
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

/// Asks `python` which distribution and version provide each of `modules`.
pub fn resolve(modules: &[String], python: &str) -> Packages {
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
