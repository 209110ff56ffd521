//! The error every `kale` command ends with, and what each kind of error means for
//! the exit status.
//!
//! Library errors stay specific where they arise (`StoreError`, `ClusterError`, ...);
//! each converts into [`Error`] in its own module, which is where it is decided whether
//! the problem was the user's input, a failed run, or the world around kale, and what
//! to suggest. The binary turns the kind into the process's exit status in one place
//! (`main`), and renders every error the same way:
//!
//! ```text
//! error: <message>: <cause>: <cause>
//!   hint: <hint>
//! ```

use std::fmt;

/// What went wrong, as far as the exit status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (the notebook, a flag, a name that does not exist). Exit 2,
    /// the status clap gives usage errors.
    BadInput,
    /// The input was fine, but what it ran did not succeed: a step raised, a trial
    /// failed, an experiment ended failed, the data a command needs was pruned. Exit 1.
    Failed,
    /// Ctrl-C, SIGTERM or SIGHUP. Exit 128 + the signal's number (130, 143, 129), the
    /// status shells report for a process that signal ended (see [`note_interrupt`]).
    Interrupted,
    /// Something kale depends on failed: the cluster or an API server is unreachable
    /// or refuses, the disk is full, the store is locked by another process. Retrying
    /// later, or elsewhere, may succeed. Exit 3.
    Environment,
}

impl ErrorKind {
    pub fn exit_status(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Environment => 3,
            ErrorKind::Interrupted => {
                let signal = INTERRUPTED_BY.load(std::sync::atomic::Ordering::Relaxed);
                u8::try_from(128 + signal).unwrap_or(130)
            }
        }
    }
}

/// The signal that interrupted this process (SIGINT unless told otherwise).
static INTERRUPTED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(2);

/// Records the signal that stopped the command (SIGTERM from `docker stop` or CI,
/// SIGHUP from a closed terminal), so that it ends as that signal would have ended
/// it: exit 128 + its number.
pub fn note_interrupt(signal: i32) {
    INTERRUPTED_BY.store(signal, std::sync::atomic::Ordering::Relaxed);
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    /// `None` when whatever failed has already told the user (diagnostics printed
    /// with their cells, a failed step's located report): only the status remains.
    message: Option<String>,
    causes: Vec<String>,
    hints: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Error {
            kind,
            message: Some(message.to_string()),
            causes: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn bad_input(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    pub fn environment(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Environment, message)
    }

    /// The command already printed what happened; it ends with `kind`'s status.
    pub fn reported(kind: ErrorKind) -> Self {
        Error {
            kind,
            message: None,
            causes: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn with_hint(mut self, hint: impl fmt::Display) -> Self {
        self.hints.push(hint.to_string());
        self
    }

    pub fn caused_by(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn hints(&self) -> &[String] {
        &self.hints
    }

    /// What the user reads on stderr, or `None` when it was already said.
    pub fn render(&self) -> Option<String> {
        let message = self.message.as_ref()?;
        let mut out = format!("error: {message}");
        for cause in &self.causes {
            out.push_str(": ");
            out.push_str(cause);
        }
        for hint in &self.hints {
            out.push_str("\n  hint: ");
            out.push_str(hint);
        }
        Some(out)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => {
                f.write_str(m)?;
                for cause in &self.causes {
                    write!(f, ": {cause}")?;
                }
                Ok(())
            }
            None => write!(f, "{:?} (reported above)", self.kind),
        }
    }
}

impl std::error::Error for Error {}

/// Reading or writing files kale manages failed: the disk, permissions, a full
/// file system — not the user's notebook. (Errors from kale's own file handling name
/// the path: see [`at_path`].)
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let hint = match e.kind() {
            K::StorageFull | K::QuotaExceeded => Some("free space on that disk, then run again"),
            K::ReadOnlyFilesystem | K::PermissionDenied => Some(
                "kale keeps its records in `.kale/` beside the notebook: make that folder writable, or work on a copy of the notebook in a writable folder",
            ),
            _ => None,
        };
        let error = Error::environment(e);
        match hint {
            Some(h) => error.with_hint(h),
            None => error,
        }
    }
}

/// The same error, saying which path it was about (`std::fs` errors do not).
pub fn at_path(path: &std::path::Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::environment(format!("cannot encode JSON: {e}"))
    }
}

/// Errors from code that reports with `anyhow` context chains; the chain becomes the
/// causes.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        let mut chain = e.chain().map(|c| c.to_string());
        let mut error = Error::environment(chain.next().unwrap_or_default());
        error.causes.extend(chain);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_message_causes_and_hints_alike_for_every_error() {
        let e = Error::environment("cannot reach the API server")
            .caused_by("connection refused")
            .with_hint("check the cluster")
            .with_hint("or pass --context");
        assert_eq!(
            e.render().unwrap(),
            "error: cannot reach the API server: connection refused\n  hint: check the cluster\n  hint: or pass --context"
        );
        assert_eq!(e.kind().exit_status(), 3);
        assert_eq!(Error::reported(ErrorKind::Failed).render(), None);
    }

    #[test]
    fn each_kind_has_its_own_exit_status() {
        let statuses: Vec<u8> = [
            ErrorKind::Failed,
            ErrorKind::BadInput,
            ErrorKind::Environment,
            ErrorKind::Interrupted,
        ]
        .map(ErrorKind::exit_status)
        .to_vec();
        assert_eq!(statuses, [1, 2, 3, 130]);
    }

    #[test]
    fn an_anyhow_chain_becomes_the_causes() {
        let e: Error = anyhow::anyhow!("disk full")
            .context("cannot save output `model`")
            .into();
        assert_eq!(
            e.render().unwrap(),
            "error: cannot save output `model`: disk full"
        );
    }
}
