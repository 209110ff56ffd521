//! The pipeline model: steps in a DAG, with the pipeline parameters and metrics, and for
//! every step the variables it receives from upstream and hands on downstream.
//!
//! [`build`] is where the notebook side meets the analysis: it takes the grouped cells
//! ([`crate::notebook::structure`]), the per-block facts ([`crate::analysis`]) and
//! resolves every name a step reads to the step that provides it (see [`dataflow`]).

mod dag;
mod dataflow;
mod overrides;
mod params;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::analysis::{self, CellSource, PipelineValue};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::notebook::{self, Notebook, NotebookMetadata, NotebookStructure, StepConfig};

pub use dag::Dag;
pub use dataflow::STATE_VARIABLE;
pub use overrides::{convert, parse_override};
pub use params::{parse_python_string, python_float, python_literal, python_string};

#[derive(Clone, Debug, Serialize)]
pub struct Parameter {
    pub name: String,
    pub value: PipelineValue,
    pub cell: usize,
    pub line: u32,
}

impl Parameter {
    pub fn type_name(&self) -> &'static str {
        self.value.type_name()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub name: String,
    /// The step whose namespace holds the metric's final value.
    pub step: String,
    pub cell: usize,
    pub line: u32,
}

/// An edge kale added because the notebook ordered two steps that no `prev:` tag did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ordering {
    pub after: String,
    /// Why, for `kale inspect`: "reads `xs`, which `grow` changes earlier in the notebook (cell 5, line 2)".
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub cells: Vec<usize>,
    /// Direct parents: the `prev:` edges, in the order declared, then the edges kale
    /// added (`ordered_after`).
    pub depends_on: Vec<String>,
    /// The edges kale added to keep the notebook's order, with why.
    pub ordered_after: Vec<Ordering>,
    /// Variable → the step it is loaded from.
    pub inputs: BTreeMap<String, String>,
    /// Variables saved after the step for descendants (and the metrics it reports).
    pub outputs: BTreeSet<String>,
    /// Groups of outputs that may share objects (`b = a`): saved together when they do.
    pub share_groups: Vec<Vec<String>>,
    /// Pipeline parameters the step reads, directly or through the functions it calls.
    pub parameters: BTreeSet<String>,
    /// Metrics whose values this step reports.
    pub metrics: Vec<String>,
    pub config: StepConfig,
    /// Where the step (or the imports/functions cells it runs) first uses IPython
    /// syntax (`%magic`, `!shell`): such a step must run under IPython.
    pub ipython_at: Option<(usize, u32)>,
    /// The step changes a library's global setting kale does not carry: its process
    /// must not run another step (see the README's execution model).
    pub unknown_state: bool,
    /// Steps whose written files this step reads (on Kubeflow they travel as artifacts).
    pub files_from: Vec<String>,
}

/// A validated pipeline. Steps are in a topological order that follows the notebook
/// where the DAG allows.
#[derive(Clone, Debug, Serialize)]
pub struct Pipeline {
    pub name: String,
    pub experiment: String,
    pub description: String,
    pub notebook: PathBuf,
    pub metadata: NotebookMetadata,
    pub imports_cells: Vec<usize>,
    pub functions_cells: Vec<usize>,
    /// Source of every code cell a step runs (imports, functions and step cells), by
    /// cell number, so later layers need not go back to the notebook.
    #[serde(skip)]
    pub sources: BTreeMap<usize, String>,
    pub parameters: Vec<Parameter>,
    pub metrics: Vec<Metric>,
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub dag: Dag,
}

impl Pipeline {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// Loads, groups and analyses a notebook. Returns the pipeline when there is no error;
/// the diagnostics (warnings, and errors if any) come back either way.
pub fn build(nb: &Notebook) -> (Option<Pipeline>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let structure = notebook::structure(nb, &mut diags);
    let pipeline = build_from_structure(nb, &structure, &mut diags);
    if diags.has_errors() {
        (None, diags)
    } else {
        (pipeline, diags)
    }
}

/// Reads the file and builds the pipeline; a file that is not a notebook yields one error.
pub fn load(path: &std::path::Path) -> (Option<Pipeline>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let nb = notebook::load(path, &mut diags);
    finish_load(nb, diags)
}

/// Builds the pipeline of a notebook's JSON text that is not (or not yet) the file at
/// `path`: an editor's unsaved notebook. `path` still names it in messages and places
/// it (its directory holds the modules its cells import).
pub fn load_text(path: &std::path::Path, text: &str) -> (Option<Pipeline>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let nb = notebook::parse(path, text, &mut diags);
    finish_load(nb, diags)
}

fn finish_load(
    nb: Result<Notebook, Diagnostic>,
    mut diags: Diagnostics,
) -> (Option<Pipeline>, Diagnostics) {
    match nb {
        Ok(nb) => {
            let (p, more) = build(&nb);
            diags.extend(more);
            if diags.has_errors() {
                (None, diags)
            } else {
                (p, diags)
            }
        }
        Err(e) => {
            diags.push(e);
            (None, diags)
        }
    }
}

fn build_from_structure(
    nb: &Notebook,
    s: &NotebookStructure,
    diags: &mut Diagnostics,
) -> Option<Pipeline> {
    let source_of = |n: usize| cell_source(nb, n);

    let mut parameters: Vec<Parameter> = Vec::new();
    for &n in &s.parameters {
        let (decls, issues) = analysis::parse_parameters(&source_of(n));
        let cell = source_of(n);
        for issue in issues {
            diags.push(special_cell_issue(
                issue,
                cell.source,
                "the `pipeline-parameters` cell holds only `name = value` lines, each value an int, float, str or bool literal",
            ));
        }
        for d in decls {
            parameters.retain(|p| p.name != d.name);
            parameters.push(Parameter {
                name: d.name,
                value: d.value,
                cell: d.at.cell,
                line: d.at.line,
            });
        }
    }

    let mut metric_names: Vec<(String, usize, u32)> = Vec::new();
    for &n in &s.metrics {
        let (names, issues) = analysis::parse_metrics(&source_of(n));
        let cell = source_of(n);
        for issue in issues {
            diags.push(special_cell_issue(
                issue,
                cell.source,
                "the `pipeline-metrics` cell holds only `print(variable)` lines, one per metric",
            ));
        }
        for (name, at) in names {
            if !metric_names.iter().any(|(m, _, _)| *m == name) {
                metric_names.push((name, at.cell, at.line));
            }
        }
    }

    if s.steps.is_empty() {
        diags.push(
            Diagnostic::error("the notebook has no pipeline steps")
                .with_hint("tag the cells that make up each step with `step:NAME` (Kale's `block:NAME` works too)"),
        );
        return None;
    }

    let mut dag = match dag::Dag::new(s) {
        Ok(dag) => dag,
        Err(cycle) => {
            diags.push(cycle);
            return None;
        }
    };

    let (steps, metrics) = dataflow::resolve(nb, s, &mut dag, &parameters, &metric_names, diags);

    let stem = nb
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "pipeline".into());
    let from_stem = || crate::names::suggestion(&stem).unwrap_or_else(|| "pipeline".into());
    let name = match s.metadata.pipeline_name.as_deref() {
        None | Some("") => from_stem(),
        Some(given) => match crate::names::problem(given) {
            None => given.to_string(),
            // The name becomes the experiments' names and their run directories, and
            // the KFP pipeline's: one that is not a DNS label is normalised as Kale
            // normalises names for KFP, and the user is told.
            Some(why) => {
                let used = crate::names::suggestion(given).unwrap_or_else(from_stem);
                diags.push(
                    Diagnostic::warning(format!(
                        "`kubeflow_notebook.pipeline_name` `{}` is not a DNS label ({why}); kale names the pipeline `{used}`",
                        crate::names::shown(given)
                    ))
                    .with_hint(format!(
                        "set `pipeline_name` to `{used}` (lowercase letters, digits and `-`, starting with a letter, at most {} characters) to silence this",
                        crate::names::MAX_LEN
                    )),
                );
                used
            }
        },
    };
    let experiment = s
        .metadata
        .experiment_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| name.clone());
    Some(Pipeline {
        name,
        experiment,
        description: s.metadata.pipeline_description.clone().unwrap_or_default(),
        notebook: nb.path.clone(),
        metadata: s.metadata.clone(),
        imports_cells: s.imports.clone(),
        functions_cells: s.functions.clone(),
        sources: s
            .imports
            .iter()
            .chain(&s.functions)
            .chain(s.steps.iter().flat_map(|st| st.cells.iter()))
            .map(|&n| (n, nb.cell(n).map(|c| c.source.clone()).unwrap_or_default()))
            .collect(),
        parameters,
        metrics,
        steps,
        dag,
    })
}

/// A cell's source in the shape the analysis takes; a missing cell reads as empty.
/// A problem in a `pipeline-parameters` or `pipeline-metrics` cell: a syntax error is
/// quoted with a caret; the cell's rule is the hint for the rest (their messages
/// quote the statement already).
fn special_cell_issue(issue: analysis::SyntaxIssue, source: &str, rule: &str) -> Diagnostic {
    let d = Diagnostic::error(&issue.message).at(issue.at.cell, issue.at.line);
    if issue.message.starts_with("syntax error:") {
        d.quoting(source, issue.at.line, issue.at.col)
            .with_hint(dataflow::SYNTAX_HINT)
    } else {
        d.with_hint(rule)
    }
}

pub(crate) fn cell_source(nb: &Notebook, n: usize) -> CellSource<'_> {
    CellSource {
        number: n,
        source: nb.cell(n).map(|c| c.source.as_str()).unwrap_or(""),
    }
}

/// A KFP-friendly name (`[a-z0-9-]`) from a file stem.
pub fn sanitize_name(stem: &str) -> String {
    let mut out = String::new();
    for c in stem.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "pipeline".into()
    } else {
        trimmed.to_string()
    }
}
