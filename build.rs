//! Records the git commit kale is built from, for `kale --version`.
//!
//! Order: `KALE_GIT_COMMIT` from the environment (a packager building from a source
//! tarball knows the commit), else `git rev-parse` when the source is a git checkout,
//! else "unknown": a wheel or tarball build without `.git` must still build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KALE_GIT_COMMIT");
    let commit = match std::env::var("KALE_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git_commit().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=KALE_GIT_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .current_dir(manifest_dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn git_commit() -> Option<String> {
    // kale's sources unpacked inside some other repository are not a kale checkout.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves. `logs/HEAD` (the reflog) gets a line on every commit,
    // checkout and reset; HEAD and the branch's ref file cover a repository without
    // reflogs. Worktrees keep HEAD and its reflog in their own git dir, refs in the
    // common one. Only existing paths: cargo reruns a build script on every build
    // while a path it watches is missing.
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(|d| absolute(&d))
        .unwrap_or_else(|| git_dir.clone());
    let mut watch = vec![git_dir.join("HEAD"), git_dir.join("logs").join("HEAD")];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(common.join(reference));
    }
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}

/// `--git-common-dir` may print a path relative to the directory git ran in.
fn absolute(dir: &str) -> PathBuf {
    let p = Path::new(dir);
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(m) if p.is_relative() => PathBuf::from(m).join(p),
        _ => p.to_path_buf(),
    }
}
