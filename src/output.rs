//! Writing to standard output and standard error without panicking.
//!
//! `println!` panics when the write fails, and both streams fail in ordinary use: a
//! reader that went away (`kale runs list | head -1`, `kale tune ... 2>&1 | head -1`:
//! a broken pipe), a full disk (`> /dev/full`), a closed terminal (SIGHUP). kale keeps
//! SIGPIPE ignored, so such a write returns an error, and every command writes through
//! [`outln!`](crate::outln) / [`errln!`](crate::errln):
//!
//! * standard output closed by its reader: nothing more is written, quietly, and the
//!   command carries on (a tune still records its trials) and ends with its own status;
//! * standard output failing otherwise (a full disk): the command ends with an
//!   environment error (exit 3) naming the stream;
//! * standard error failing: the message is dropped (there is nowhere to say it); a
//!   failure other than a closed reader is remembered, and a command that would
//!   otherwise succeed ends with exit 3 (see [`finish`]).

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write to standard error that failed other than by a closed reader.
static STDERR_FAILED: Mutex<Option<String>> = Mutex::new(None);
/// The first write to standard output that failed other than by a closed reader
/// (also one whose error the writer could not pass on, like a JSON-lines stream).
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

fn is_closed_reader(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// The error a failed write to standard output becomes; remembered for [`finish`].
fn stdout_error(e: io::Error) -> crate::Error {
    if let Ok(mut failed) = STDOUT_FAILED.lock() {
        failed.get_or_insert_with(|| e.to_string());
    }
    crate::Error::environment("cannot write to standard output")
        .caused_by(e)
        .with_hint("the disk or device it goes to is full or failing: redirect it elsewhere")
}

/// Writes to standard output; `Ok` also when its reader has gone (nothing more is
/// written then).
pub fn stdout(args: std::fmt::Arguments) -> crate::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_fmt(args) {
        Ok(()) => Ok(()),
        Err(e) if is_closed_reader(&e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(stdout_error(e)),
    }
}

/// Writes raw bytes to standard output, as [`stdout`] does text.
pub fn stdout_bytes(bytes: &[u8]) -> crate::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    match io::stdout().lock().write_all(bytes) {
        Ok(()) => Ok(()),
        Err(e) if is_closed_reader(&e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(stdout_error(e)),
    }
}

/// Writes to standard error; never fails (see the module docs).
pub fn stderr(args: std::fmt::Arguments) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut err = io::stderr().lock();
    if let Err(e) = err.write_fmt(args) {
        note_stderr_failure(e);
    }
}

/// Records a failed write to standard error (also from the progress display).
pub fn note_stderr_failure(e: io::Error) {
    STDERR_CLOSED.store(true, Ordering::Relaxed);
    if !is_closed_reader(&e)
        && let Ok(mut failed) = STDERR_FAILED.lock()
    {
        failed.get_or_insert_with(|| e.to_string());
    }
}

/// Whether standard output's reader has gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// At the end of a command: flushes standard output, and turns a failed write to
/// standard error (other than a closed reader) into an environment error, so that a
/// command whose messages were lost to a full disk does not report success.
pub fn finish() -> crate::Result<()> {
    if let Some(e) = STDOUT_FAILED.lock().ok().and_then(|f| f.clone()) {
        return Err(crate::Error::environment("cannot write to standard output")
            .caused_by(e)
            .with_hint("the disk or device it goes to is full or failing: redirect it elsewhere"));
    }
    if !STDOUT_CLOSED.load(Ordering::Relaxed)
        && let Err(e) = io::stdout().lock().flush()
        && !is_closed_reader(&e)
    {
        return Err(stdout_error(e));
    }
    if let Some(e) = STDERR_FAILED.lock().ok().and_then(|f| f.clone()) {
        return Err(crate::Error::environment("cannot write to standard error")
            .caused_by(e)
            .with_hint("the disk or device it goes to is full or failing: redirect it elsewhere"));
    }
    Ok(())
}

/// Standard output as an `io::Write` for writers of their own (the `--events -`
/// stream): a closed reader and a failure are handled as for [`stdout`].
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stdout_bytes(buf)
            .map(|()| buf.len())
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn flush(&mut self) -> io::Result<()> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if is_closed_reader(&e) => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(io::Error::other(stdout_error(e).to_string())),
            Ok(()) => Ok(()),
        }
    }
}

/// `println!` to standard output, returning `kale::Result<()>` (see the module docs).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to standard output, returning `kale::Result<()>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (see the module docs).
#[macro_export]
macro_rules! errln {
    () => {
        $crate::output::stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
