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
/// one cell's facts, not the whole command.
pub(crate) fn parse(src: &str, mode: Mode) -> Option<Parsed<Mod>> {
    let src = src.to_owned();
    std::panic::catch_unwind(move || parse_unchecked(&src, options(mode))).ok()
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
