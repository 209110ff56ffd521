//! Offsets → cell locations, and parsing that can't abort the analysis.

use ruff_python_ast::{Mod, PythonVersion};
use ruff_python_parser::{Mode, ParseOptions, Parsed, parse_unchecked};

use super::Location;

/// Line starts of one cell; `\n`, `\r\n` and lone `\r` all end a line, as
/// they do for Python's tokenizer.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let bytes = src.as_bytes();
        let mut starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => starts.push(i + 1),
                _ => {}
            }
        }
        Self { src, starts }
    }

    pub(crate) fn location(&self, cell: usize, offset: usize) -> Location {
        let offset = offset.min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        // Offsets from the parser are char boundaries, but stay total anyway.
        let col = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Location {
            cell,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
        }
    }
}

/// Newest grammar we accept: the kernel version is unknown, so version-gated
/// syntax (PEP 701 f-strings, `type` aliases) must not be flagged.
fn options(mode: Mode) -> ParseOptions {
    ParseOptions::from(mode).with_target_version(PythonVersion::PY313)
}

/// Parses without ever unwinding into the caller: a parser bug must cost us
/// one cell's facts, not the whole command. `Err` carries the message to
/// report instead of the parser's errors.
pub(crate) fn parse(src: &str, mode: Mode) -> Result<Parsed<Mod>, &'static str> {
    if too_deep(src) {
        return Err("code is nested too deeply to analyse (more than 1000 levels)");
    }
    let src = src.to_owned();
    std::panic::catch_unwind(move || parse_unchecked(&src, options(mode)))
        .map_err(|_| "internal parser error")
}

/// The parser recurses per nesting level. CPython itself rejects more than
/// 200 nested brackets, so refusing 1000 loses no valid program while keeping
/// the recursion within `with_big_stack`'s budget.
fn too_deep(src: &str) -> bool {
    const LIMIT: usize = 1000;
    let (mut depth, mut unary_run) = (0usize, 0usize);
    for b in src.bytes() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        match b {
            b'-' | b'+' | b'~' => unary_run += 1,
            b' ' | b'\t' => {}
            _ => unary_run = 0,
        }
        if depth > LIMIT || unary_run > LIMIT {
            return true;
        }
    }
    false
}

/// Runs `f` on a thread with a large stack: the parser and the walk recurse
/// once per nesting level, and pathological input (thousands of nested
/// brackets) must not overflow the caller's stack. The memory is only
/// reserved, not committed. Falls back to the current thread if no thread can
/// be spawned; `None` if `f` panicked.
pub(crate) fn with_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    const STACK: usize = 1 << 30;
    // Shared so that the closure is still ours if spawning fails.
    let f = std::sync::Mutex::new(Some(f));
    let run = || f.lock().ok().and_then(|mut g| g.take()).map(|f| f());
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, run)
        {
            Ok(handle) => handle.join().ok().flatten(),
            Err(_) => run(),
        }
    })
}

/// Byte ranges of the lines of `src`, without their terminators.
pub(crate) fn lines(src: &str) -> Vec<(usize, usize)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push((start, i));
                start = i + 1;
            }
            b'\r' => {
                out.push((start, i));
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}
