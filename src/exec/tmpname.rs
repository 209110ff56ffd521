//! Unique temporary names for write-then-rename: parallel trials of one tune run in
//! the same process, so the pid alone does not tell writers apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `<path>.tmp<pid>-<n>`, unique within this process and across processes.
pub fn beside(path: &Path) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path
        .file_name()
        .map(|f| f.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}-{n}", std::process::id()));
    path.with_file_name(name)
}
