//! The notebook side: reading `.ipynb` files, the Kale tag language, the
//! `kubeflow_notebook` metadata, and grouping cells into the blocks a pipeline is made of.
//!
//! Nothing here looks inside the Python code; that is [`crate::analysis`]'s job.

mod metadata;
mod structure;
mod tags;

pub use metadata::{KatibMetadata, NotebookMetadata, Volume};
pub use structure::{Block, BlockKind, NotebookStructure, StepConfig, StepDecl, structure};
pub use tags::{RESERVED_STEP_NAMES, Tag, parse_tag};

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics};

/// A code or markdown cell, with the 1-based number Jupyter shows for it.
#[derive(Clone, Debug)]
pub struct Cell {
    pub number: usize,
    pub kind: CellKind,
    pub source: String,
    /// Tags exactly as stored; non-string tags were already reported and dropped.
    pub tags: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Code,
    Markdown,
    Raw,
}

/// A notebook as kale needs it: the cells and the raw notebook-level metadata.
#[derive(Clone, Debug)]
pub struct Notebook {
    pub path: PathBuf,
    pub cells: Vec<Cell>,
    pub metadata: Value,
    /// Hash of the file bytes, so experiments can tell when the notebook changed.
    pub content: String,
}

impl Notebook {
    pub fn code_cells(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| c.kind == CellKind::Code)
    }

    pub fn cell(&self, number: usize) -> Option<&Cell> {
        number.checked_sub(1).and_then(|i| self.cells.get(i))
    }
}

/// Reads and parses a notebook file. A file that cannot be used at all yields `Err` with
/// the reasons; problems inside individual cells (such as a non-string tag) are pushed to
/// `diags` and the rest of the notebook still loads.
pub fn load(path: &Path, diags: &mut Diagnostics) -> Result<Notebook, Diagnostic> {
    let bytes = read_capped(path).map_err(|e| {
        let d = Diagnostic::error(format!("cannot read the notebook: {e}"));
        if e.kind() == std::io::ErrorKind::NotFound {
            d.with_hint("check the path; kale takes the path of an `.ipynb` file")
        } else {
            d.with_hint("kale takes the path of an `.ipynb` file Jupyter saved")
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Diagnostic::error("the file is not UTF-8 text, so it is not a Jupyter notebook")
    })?;
    parse(path, &text, diags)
}

/// The largest notebook kale reads (outputs included: plots and tables saved in a
/// notebook make it large, but not this large).
pub const MAX_NOTEBOOK_BYTES: u64 = 256 << 20;

/// Reads a notebook file: only a regular file (a FIFO would block for ever, a device
/// like `/dev/zero` never ends), and at most [`MAX_NOTEBOOK_BYTES`].
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {what}, not a regular file", path.display()),
        )
    };
    let kind = |meta: &std::fs::Metadata| {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_dir() {
            Some("a directory")
        } else if t.is_fifo() {
            Some("a named pipe (FIFO)")
        } else if t.is_char_device() || t.is_block_device() {
            Some("a device")
        } else if t.is_socket() {
            Some("a socket")
        } else {
            None
        }
    };
    // stat first: opening a FIFO blocks until a writer comes.
    if let Some(what) = kind(&std::fs::metadata(path)?) {
        return Err(not_regular(what));
    }
    // O_NONBLOCK, and the type checked again on what was opened, in case the path
    // changed in between.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(what) = kind(&meta) {
        return Err(not_regular(what));
    }
    if meta.len() > MAX_NOTEBOOK_BYTES {
        return Err(too_large(path));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_NOTEBOOK_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_NOTEBOOK_BYTES {
        return Err(too_large(path));
    }
    Ok(bytes)
}

fn too_large(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{} is larger than {} MiB, more than a notebook holds",
            path.display(),
            MAX_NOTEBOOK_BYTES >> 20
        ),
    )
}

/// Parses notebook JSON text (nbformat 4).
pub fn parse(path: &Path, text: &str, diags: &mut Diagnostics) -> Result<Notebook, Diagnostic> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Diagnostic::error(format!(
            "the file is not valid JSON (line {}, column {}: {}), so it is not a Jupyter notebook",
            e.line(),
            e.column(),
            e
        ))
        .with_hint("a notebook is the `.ipynb` JSON file Jupyter saves; was it truncated or edited by hand?")
    })?;
    let Value::Object(top) = &value else {
        return Err(Diagnostic::error(
            "the file is JSON but not a Jupyter notebook: expected an object with a `cells` list",
        ));
    };
    if top.get("worksheets").is_some() && top.get("cells").is_none() {
        return Err(Diagnostic::error(
            "this is an nbformat 3 notebook; kale reads nbformat 4",
        )
        .with_hint("open and save it in Jupyter, or run `jupyter nbconvert --to notebook --nbformat 4`"));
    }
    let Some(cells_value) = top.get("cells") else {
        return Err(Diagnostic::error(
            "the file is JSON but not a Jupyter notebook: it has no `cells` list",
        ));
    };
    let Value::Array(raw_cells) = cells_value else {
        return Err(Diagnostic::error("the notebook's `cells` is not a list"));
    };
    let cells = raw_cells
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| parse_cell(index + 1, raw, diags))
        .collect();
    let metadata = top.get("metadata").cloned().unwrap_or(Value::Null);
    Ok(Notebook {
        path: path.to_path_buf(),
        cells,
        metadata,
        content: content_hash(text.as_bytes()),
    })
}

/// Cell `number` of the notebook, or `None` (reported) when it is not a cell kale can
/// read; a bad source line or tag is reported and left out.
fn parse_cell(number: usize, raw: &Value, diags: &mut Diagnostics) -> Option<Cell> {
    let Value::Object(obj) = raw else {
        diags.push(
            Diagnostic::error("this cell is not a JSON object; it is ignored").in_cell(number),
        );
        return None;
    };
    let kind = match obj.get("cell_type").and_then(Value::as_str) {
        Some("code") => CellKind::Code,
        Some("markdown") => CellKind::Markdown,
        Some("raw") => CellKind::Raw,
        other => {
            diags.push(
                Diagnostic::error(format!(
                    "unknown cell type {}; expected `code`, `markdown` or `raw`",
                    other
                        .map(|s| format!("`{s}`"))
                        .unwrap_or_else(|| "(missing)".into())
                ))
                .in_cell(number),
            );
            return None;
        }
    };
    let source = match obj.get("source") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut s = String::new();
            for part in parts {
                match part {
                    Value::String(p) => s.push_str(p),
                    _ => {
                        diags.push(
                            Diagnostic::error("the cell's source contains a non-string line")
                                .in_cell(number),
                        );
                    }
                }
            }
            s
        }
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            diags.push(
                Diagnostic::error("the cell's `source` is neither a string nor a list of strings")
                    .in_cell(number),
            );
            String::new()
        }
    };
    let mut tags = Vec::new();
    if let Some(raw_tags) = obj.get("metadata").and_then(|m| m.get("tags")) {
        match raw_tags {
            Value::Array(list) => {
                for tag in list {
                    match tag {
                        Value::String(t) => tags.push(t.clone()),
                        other => diags.push(
                            Diagnostic::error(format!("tags must be strings, found {other}"))
                                .in_cell(number),
                        ),
                    }
                }
            }
            Value::Null => {}
            other => diags.push(
                Diagnostic::error(format!(
                    "`metadata.tags` must be a list of strings, found {other}"
                ))
                .in_cell(number),
            ),
        }
    }
    Some(Cell {
        number,
        kind,
        source,
        tags,
    })
}

fn content_hash(bytes: &[u8]) -> String {
    format!("{:016x}", fingerprint(bytes.iter().copied()))
}

/// FNV-1a: enough to notice that a notebook or the runtime changed between runs;
/// cryptographic content addressing of data lives in the executor's cache.
pub(crate) fn fingerprint(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Result<Notebook, Diagnostic>, Diagnostics) {
        let mut d = Diagnostics::default();
        let r = parse(Path::new("nb.ipynb"), text, &mut d);
        (r, d)
    }

    #[test]
    fn source_as_list_or_string() {
        let (nb, d) = parse_str(
            r#"{"cells":[{"cell_type":"code","source":["a = 1\n","b = 2"],"metadata":{"tags":["step:x"]}},
                        {"cell_type":"markdown","source":"heading","metadata":{}}],"metadata":{},"nbformat":4}"#,
        );
        let nb = nb.unwrap();
        assert!(d.is_empty());
        assert_eq!(nb.cells[0].source, "a = 1\nb = 2");
        assert_eq!(nb.cells[0].tags, vec!["step:x"]);
        assert_eq!(nb.cells[1].number, 2);
        assert_eq!(nb.cells[1].kind, CellKind::Markdown);
    }

    #[test]
    fn malformed_json_names_the_position() {
        let (nb, _) = parse_str("{\"cells\": [");
        let err = nb.unwrap_err();
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        assert!(err.message.contains("line 1"), "{}", err.message);
    }

    #[test]
    fn json_but_not_a_notebook() {
        let (nb, _) = parse_str("[1, 2]");
        assert!(nb.unwrap_err().message.contains("not a Jupyter notebook"));
        let (nb, _) = parse_str("{\"foo\": 1}");
        assert!(nb.unwrap_err().message.contains("no `cells`"));
        let (nb, _) = parse_str("{\"worksheets\": []}");
        assert!(nb.unwrap_err().message.contains("nbformat 3"));
    }

    #[test]
    fn non_string_tags_are_reported_with_the_cell() {
        let (nb, d) = parse_str(
            r#"{"cells":[{"cell_type":"markdown","source":""},{"cell_type":"code","source":"x","metadata":{"tags":["step:a", 3]}}]}"#,
        );
        let nb = nb.unwrap();
        assert_eq!(nb.cells[1].tags, vec!["step:a"]);
        let errs: Vec<_> = d.errors().collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].cell, Some(2));
    }

    #[test]
    fn missing_file_has_a_hint() {
        let mut d = Diagnostics::default();
        let err = load(Path::new("/nonexistent/nb.ipynb"), &mut d).unwrap_err();
        assert!(err.message.contains("cannot read"));
        assert!(err.hint.is_some());
    }
}
