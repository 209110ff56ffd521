//! Step programs: one Python program per step, generated from the pipeline, plus the
//! embedded runtime module they import.
//!
//! A program does not contain any path. It asks the runtime for its step directory
//! (environment variable `KALE_STEP_DIR`, whose `context.json` says where each input
//! lives), so the same text runs locally and in a Kubeflow container, and its hash can
//! key the step cache.
//!
//! Layout: runtime start, parameters (only those the step uses), the `imports` cells,
//! the `functions` cells, the inputs, the step's own cells, then saving of outputs
//! and metrics. (Kale loads inputs first; here they come after the definitions, so
//! objects of classes a functions cell defines travel by reference without dill.) Plain-Python steps have their cells inline; steps with IPython
//! syntax hand each cell to IPython (`_kale.run_cell`), which transforms magics the way
//! Jupyter does. Either way, [`LineMap`] maps a traceback back to the notebook.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::analysis::PipelineValue;
use crate::pipeline::{Pipeline, Step, python_string};

/// The runtime module the programs import, embedded in the binary.
pub const RUNTIME_SOURCE: &str = include_str!("../runtime/kale_runtime.py");
/// File name the runtime must have so `import kale_runtime` finds it.
pub const RUNTIME_FILE: &str = "kale_runtime.py";

/// Version of the program layout and runtime together; part of every cache key, so a
/// kale upgrade that changes either never reuses stale outputs.
pub fn runtime_version() -> String {
    let h = crate::notebook::fingerprint(RUNTIME_SOURCE.bytes().chain(LAYOUT_VERSION.bytes()));
    format!("{}-{h:016x}", env!("CARGO_PKG_VERSION"))
}

const LAYOUT_VERSION: &str = "layout-2";

/// The line before each cell's code in a step program: `kale debug` finds the cells
/// again by it.
pub const CELL_MARKER: &str = "# --- cell ";

/// A span of generated lines that came from one notebook cell.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// First generated line (1-based).
    pub start: u32,
    pub len: u32,
    pub cell: usize,
}

/// Generated line → (cell, line in cell).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineMap {
    pub spans: Vec<Span>,
}

impl LineMap {
    pub fn locate(&self, line: u32) -> Option<(usize, u32)> {
        self.spans
            .iter()
            .find(|s| line >= s.start && line < s.start + s.len)
            .map(|s| (s.cell, line - s.start + 1))
    }
}

#[derive(Clone, Debug)]
pub struct StepProgram {
    pub source: String,
    pub line_map: LineMap,
    pub ipython: bool,
    /// Byte range of `source` holding the `imports` and `functions` cells: the same
    /// text in every step of one kind (plain Python or IPython), so a compiled
    /// pipeline ships it once (`kubeflow::kfp`). Whole lines; empty when the
    /// notebook has neither kind of cell.
    pub shared: std::ops::Range<usize>,
}

/// Builds the program for `step`, with `values` giving the value of every pipeline
/// parameter (defaults already replaced by overrides).
pub fn step_program(
    pipeline: &Pipeline,
    step: &Step,
    values: &BTreeMap<String, PipelineValue>,
) -> StepProgram {
    let mut w = Writer::default();
    let ipython = step.ipython_at.is_some();
    w.line(&format!(
        "# kale step program: step `{}` of pipeline `{}`. Generated; do not edit.",
        step.name, pipeline.name
    ));
    // Jupyter puts the working directory first on sys.path; a script gets its own
    // directory instead, which would hide the notebook's local modules.
    w.line("import sys as _kale_sys; _kale_sys.path[0] = ''");
    w.line("import kale_runtime as _kale");
    w.line(&format!("_kale.start({})", python_string(&step.name)));
    if ipython {
        w.line("_kale.enable_ipython()");
    }
    for name in &step.parameters {
        if let Some(v) = values.get(name) {
            w.line(&format!("{name} = {}", v.to_python()));
        }
    }
    let cell_source = |cell: &usize| pipeline.sources.get(cell).map(String::as_str).unwrap_or("");
    let emit = |w: &mut Writer, cell: usize| {
        w.line(&format!("{CELL_MARKER}{cell}"));
        if ipython {
            w.line(&format!(
                "_kale.run_cell({}, {cell})",
                python_string(cell_source(&cell))
            ));
        } else {
            w.cell(cell, cell_source(&cell));
        }
    };
    let shared_start = w.out.len();
    for &cell in pipeline
        .imports_cells
        .iter()
        .chain(&pipeline.functions_cells)
    {
        emit(&mut w, cell);
    }
    let shared = shared_start..w.out.len();
    // Inputs are loaded once the imports and functions cells have run: an object
    // whose class a functions cell defines is pickled by reference and found again.
    w.line("_kale.shared_definitions_done()");
    if !step.inputs.is_empty() {
        let names: Vec<String> = step.inputs.keys().map(|n| python_string(n)).collect();
        w.line(&format!(
            "globals().update(_kale.inputs([{}]))",
            names.join(", ")
        ));
    }
    for &cell in &step.cells {
        emit(&mut w, cell);
    }
    let outputs: Vec<String> = step.outputs.iter().map(|n| python_string(n)).collect();
    let metrics: Vec<String> = step.metrics.iter().map(|n| python_string(n)).collect();
    // Outputs that may share objects (`b = a`): the runtime saves those that do together.
    let groups = if step.share_groups.is_empty() {
        String::new()
    } else {
        let groups: Vec<String> = step
            .share_groups
            .iter()
            .map(|g| {
                format!(
                    "[{}]",
                    g.iter()
                        .map(|n| python_string(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        format!(", groups=[{}]", groups.join(", "))
    };
    w.line(&format!(
        "_kale.finish(outputs=[{}], metrics=[{}]{groups})",
        outputs.join(", "),
        metrics.join(", ")
    ));
    StepProgram {
        source: w.out,
        line_map: LineMap { spans: w.spans },
        ipython,
        shared,
    }
}

#[derive(Default)]
struct Writer {
    out: String,
    next_line: u32,
    spans: Vec<Span>,
}

impl Writer {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        self.next_line += 1;
    }

    fn cell(&mut self, cell: usize, source: &str) {
        let start = self.next_line + 1;
        let mut len = 0;
        for line in source.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let _ = writeln!(self.out, "{line}");
            len += 1;
        }
        self.next_line += len;
        self.spans.push(Span { start, len, cell });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_map_finds_cells() {
        let map = LineMap {
            spans: vec![
                Span {
                    start: 5,
                    len: 3,
                    cell: 2,
                },
                Span {
                    start: 9,
                    len: 1,
                    cell: 7,
                },
            ],
        };
        assert_eq!(map.locate(5), Some((2, 1)));
        assert_eq!(map.locate(7), Some((2, 3)));
        assert_eq!(map.locate(8), None);
        assert_eq!(map.locate(9), Some((7, 1)));
    }

    #[test]
    fn writer_keeps_cells_verbatim() {
        let mut w = Writer::default();
        w.line("a");
        w.cell(3, "x = 1\r\ny = 2");
        w.line("b");
        assert_eq!(w.out, "a\nx = 1\ny = 2\nb\n");
        assert_eq!(
            w.spans,
            vec![Span {
                start: 2,
                len: 2,
                cell: 3
            }]
        );
    }
}
