//! Problems found in a notebook, anchored to the cell and line a user sees in Jupyter.
//!
//! Every layer (notebook loading, tag parsing, analysis, data flow) reports into a
//! [`Diagnostics`] list instead of stopping at the first problem, so `kale validate`
//! can show everything at once. Rendering is kept here so text and JSON stay in step.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem. `cell` is the 1-based position among *all* cells, as Jupyter numbers them;
/// `line` is 1-based inside that cell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The cell's line the problem is on, quoted under the message with a caret at
    /// `column` (1-based, in characters): syntax errors point at where Python stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            cell: None,
            line: None,
            hint: None,
            code: None,
            column: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn in_cell(mut self, cell: usize) -> Self {
        self.cell = Some(cell);
        self
    }

    pub fn at(mut self, cell: usize, line: u32) -> Self {
        self.cell = Some(cell);
        self.line = Some(line);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Quotes line `line` (1-based) of `cell_source` with a caret at `column`.
    pub fn quoting(mut self, cell_source: &str, line: u32, column: u32) -> Self {
        let text = cell_source
            .split('\n')
            .flat_map(|l| l.split('\r'))
            .nth(line.saturating_sub(1) as usize);
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            self.code = Some(text.trim_end().to_string());
            self.column = Some(column.max(1));
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path: cell 7, line 3: message` — the location prefix a user can jump to.
    pub fn render(&self, notebook: &Path) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = write!(out, "{label}: {}", notebook.display());
        match (self.cell, self.line) {
            (Some(cell), Some(line)) => {
                let _ = write!(out, ": cell {cell}, line {line}");
            }
            (Some(cell), None) => {
                let _ = write!(out, ": cell {cell}");
            }
            _ => {}
        }
        let _ = write!(out, ": {}", self.message);
        if let (Some(code), Some(column)) = (&self.code, self.column) {
            // The caret's indent copies the line's own whitespace, so tabs line up.
            let indent: String = code
                .chars()
                .take(column as usize - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(out, "\n    {code}\n    {indent}^");
        }
        if let Some(hint) = &self.hint {
            let _ = write!(out, "\n  hint: {hint}");
        }
        out
    }

    /// The one-line form used inside JSON `warnings` lists.
    pub fn short(&self) -> String {
        let mut out = String::new();
        match (self.cell, self.line) {
            (Some(cell), Some(line)) => {
                let _ = write!(out, "cell {cell}, line {line}: ");
            }
            (Some(cell), None) => {
                let _ = write!(out, "cell {cell}: ");
            }
            _ => {}
        }
        out.push_str(&self.message);
        if let Some(hint) = &self.hint {
            let _ = write!(out, " (hint: {hint})");
        }
        out
    }
}

/// An ordered collection of problems; order is the order they were found, which follows
/// the notebook from top to bottom within each pass.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Errors first (in the order found), then warnings, so a user reading top-down sees
    /// what blocks them before what merely deserves a look.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.errors().collect();
        all.extend(self.warnings());
        all
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}
