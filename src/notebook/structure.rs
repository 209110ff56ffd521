//! Cells → blocks: which cells are imports, functions, parameters, metrics, and which
//! belong to which step, following Kale's rules (`kale.md` §1b):
//!
//! * an untagged cell continues the block of the previous tagged (non-`skip`) cell;
//! * a `step:` name seen again later appends to that step;
//! * `skip` drops a cell without changing what the next untagged cell continues;
//! * a cell with a special tag (`imports`, `skip`, ...) ignores its other tags.
//!
//! Differences from Kale, on purpose: `prev:` and config tags on a later cell of an
//! existing step are merged instead of silently dropped; reserved step names and
//! annotation values containing `:` are handled; problems are collected, not thrown.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::Notebook;
use super::metadata::{self, NotebookMetadata};
use super::tags::{Tag, parse_tag};
use crate::diagnostics::{Diagnostic, Diagnostics};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Imports,
    Functions,
    Parameters,
    Metrics,
    /// Index into [`NotebookStructure::steps`].
    Step(usize),
}

/// A contiguous or appended group of cells of one kind.
#[derive(Clone, Debug)]
pub struct Block {
    pub kind: BlockKind,
    pub cells: Vec<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepConfig {
    pub limits: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub image: Option<String>,
    pub cache: Option<bool>,
    pub report: Option<bool>,
    pub secrets: Vec<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub name: String,
    pub key: String,
    pub env: String,
}

#[derive(Clone, Debug)]
pub struct StepDecl {
    pub name: String,
    /// Cell numbers (1-based among all cells), in notebook order.
    pub cells: Vec<usize>,
    /// `prev:` parents with the cell that declared each edge.
    pub parents: Vec<(String, usize)>,
    pub config: StepConfig,
}

impl StepDecl {
    pub fn first_cell(&self) -> usize {
        self.cells[0]
    }
}

#[derive(Clone, Debug, Default)]
pub struct NotebookStructure {
    pub metadata: NotebookMetadata,
    pub imports: Vec<usize>,
    pub functions: Vec<usize>,
    pub parameters: Vec<usize>,
    pub metrics: Vec<usize>,
    pub steps: Vec<StepDecl>,
    pub skipped: Vec<usize>,
    /// Untagged code cells before the first tagged cell: not part of the pipeline.
    pub unassigned: Vec<usize>,
}

impl NotebookStructure {
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

enum Current {
    Imports,
    Functions,
    Parameters,
    Metrics,
    Step(usize),
}

/// Groups the notebook's code cells. Every tag problem is pushed to `diags`.
pub fn structure(nb: &Notebook, diags: &mut Diagnostics) -> NotebookStructure {
    let mut out = NotebookStructure {
        metadata: metadata::read(&nb.metadata, diags),
        ..Default::default()
    };
    let first_definition = first_definitions(nb);
    let mut current: Option<Current> = None;
    for cell in nb.code_cells() {
        let n = cell.number;
        let (parsed, refused_step_name) = cell_tags(cell, diags);
        if let Some(special) = parsed.iter().find(|t| t.is_special()).cloned() {
            special_cell(&mut out, &mut current, cell, special, diags);
            continue;
        }
        let names = step_names(&parsed, n, diags);
        let Some(name) = names.first() else {
            // No step name: config tags have nothing to attach to.
            unnamed_cell(&mut out, &current, n, &parsed, refused_step_name, diags);
            continue;
        };
        let index = step_cell(&mut out, name, n, diags);
        current = Some(Current::Step(index));
        for tag in parsed {
            match tag {
                Tag::Prev(parents) => {
                    for parent in parents {
                        add_parent(&mut out, index, name, parent, n, &first_definition, diags);
                    }
                }
                other => apply_config(&mut out.steps[index].config, other, n, name, diags),
            }
        }
    }
    apply_steps_defaults(&mut out, diags);
    warn_unassigned(nb, &out, diags);
    out
}

/// Where each step name first appears, to explain a `prev:` that points forward.
fn first_definitions(nb: &Notebook) -> HashMap<String, usize> {
    let mut first_definition: HashMap<String, usize> = HashMap::new();
    for cell in nb.code_cells() {
        for tag in &cell.tags {
            if let Ok(Tag::Step { name, .. }) = parse_tag(tag)
                && !name.is_empty()
            {
                first_definition.entry(name).or_insert(cell.number);
            }
        }
    }
    first_definition
}

/// The cell's tags that parse (the others reported), and whether one of those
/// refused was a step name: the cell's other tags are then not reported again as
/// attached to no step.
fn cell_tags(cell: &super::Cell, diags: &mut Diagnostics) -> (Vec<Tag>, bool) {
    let mut parsed = Vec::new();
    let mut refused_step_name = false;
    for raw in &cell.tags {
        match parse_tag(raw) {
            Ok(tag) => parsed.push(tag),
            Err(problem) => {
                refused_step_name |=
                    problem.is_error && (raw.starts_with("step:") || raw.starts_with("block:"));
                let mut d = if problem.is_error {
                    Diagnostic::error(problem.message)
                } else {
                    Diagnostic::warning(problem.message)
                }
                .in_cell(cell.number);
                if let Some(h) = problem.hint {
                    d = d.with_hint(h);
                }
                diags.push(d);
            }
        }
    }
    (parsed, refused_step_name)
}

/// A `skip`, `imports`, `functions`, `pipeline-parameters` or `pipeline-metrics`
/// cell (its other tags ignored, with a warning).
fn special_cell(
    out: &mut NotebookStructure,
    current: &mut Option<Current>,
    cell: &super::Cell,
    special: Tag,
    diags: &mut Diagnostics,
) {
    let n = cell.number;
    let ignored: Vec<String> = cell
        .tags
        .iter()
        .filter(|t| parse_tag(t).map(|p| p != special).unwrap_or(false))
        .map(|t| format!("`{t}`"))
        .collect();
    if !ignored.is_empty() && special != Tag::Skip {
        diags.push(
            Diagnostic::warning(format!(
                "this cell is tagged `{}`, so its other tags ({}) are ignored",
                special_name(&special),
                ignored.join(", ")
            ))
            .in_cell(n),
        );
    }
    match special {
        Tag::Skip => out.skipped.push(n),
        Tag::Imports => {
            out.imports.push(n);
            *current = Some(Current::Imports);
        }
        Tag::Functions => {
            out.functions.push(n);
            *current = Some(Current::Functions);
        }
        Tag::PipelineParameters => {
            out.parameters.push(n);
            *current = Some(Current::Parameters);
        }
        Tag::PipelineMetrics => {
            out.metrics.push(n);
            *current = Some(Current::Metrics);
        }
        _ => unreachable!("is_special covers exactly these"),
    }
}

/// The step names the cell's tags give (one is allowed), with `notebook:` refused.
fn step_names(parsed: &[Tag], n: usize, diags: &mut Diagnostics) -> Vec<String> {
    let mut names: Vec<String> = parsed
        .iter()
        .filter_map(|t| match t {
            Tag::Step { name, .. } if !name.is_empty() => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.dedup();
    if names.len() > 1 {
        diags.push(
            Diagnostic::error(format!(
                "a cell can belong to one step only, but this one names {}",
                names
                    .iter()
                    .map(|s| format!("`step:{s}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
            .in_cell(n)
            .with_hint("split the cell, or keep one `step:` tag"),
        );
    }
    for tag in parsed {
        if let Tag::Notebook(name) = tag {
            diags.push(
                Diagnostic::error(format!(
                    "`notebook:{name}` (Kale 2.3 multi-notebook composition) is not supported by kale"
                ))
                .in_cell(n)
                .with_hint("merge the referenced notebook's cells into this one, or run each notebook on its own"),
            );
        }
    }
    names
}

/// A cell that names no step continues what the cell above it started (an empty
/// `block:` is Kale's way to continue a step); config tags on it have nothing to
/// attach to.
fn unnamed_cell(
    out: &mut NotebookStructure,
    current: &Option<Current>,
    n: usize,
    parsed: &[Tag],
    refused_step_name: bool,
    diags: &mut Diagnostics,
) {
    let orphan: Vec<String> = parsed
        .iter()
        .filter(|t| !matches!(t, Tag::Step { .. } | Tag::Notebook(_)))
        .map(tag_display)
        .collect();
    let empty_name = parsed.iter().find_map(|t| match t {
        Tag::Step { legacy, .. } => Some(if *legacy { "block:" } else { "step:" }),
        _ => None,
    });
    if !orphan.is_empty() && !refused_step_name {
        diags.push(match empty_name {
            Some(tag) => Diagnostic::error(format!(
                "{} on a cell whose `{tag}` tag has no step name",
                orphan.join(", ")
            ))
            .in_cell(n)
            .with_hint(format!(
                "write the step's name after the colon (`{tag}NAME`); an empty name only continues the previous cell's step"
            )),
            None => Diagnostic::error(format!(
                "{} on a cell that declares no step name",
                orphan.join(", ")
            ))
            .in_cell(n)
            .with_hint("add a `step:NAME` tag to this cell"),
        });
    }
    // Kale writes an empty `block:` to continue the step above; continuing anything
    // else is rarely what was meant.
    if let Some(tag) = empty_name
        && let Some(what) = continued(current)
    {
        diags.push(
            Diagnostic::warning(format!("tag `{tag}` names no step, so this cell {what}"))
                .in_cell(n)
                .with_hint(format!(
                    "write the step's name after the colon (`{tag}NAME`), or tag the cell `skip` to leave it out"
                )),
        );
    }
    match current {
        Some(Current::Imports) => out.imports.push(n),
        Some(Current::Functions) => out.functions.push(n),
        Some(Current::Parameters) => out.parameters.push(n),
        Some(Current::Metrics) => out.metrics.push(n),
        Some(Current::Step(i)) => out.steps[*i].cells.push(n),
        None => out.unassigned.push(n),
    }
}

/// What a cell with an empty step name continues, when that is not a step.
fn continued(current: &Option<Current>) -> Option<&'static str> {
    match current {
        Some(Current::Step(_)) => None,
        Some(Current::Imports) => {
            Some("continues the `imports` cell above it and runs at the start of every step")
        }
        Some(Current::Functions) => {
            Some("continues the `functions` cell above it and runs at the start of every step")
        }
        Some(Current::Parameters) => Some(
            "continues the `pipeline-parameters` cell above it, whose lines must all be `name = value`",
        ),
        Some(Current::Metrics) => Some(
            "continues the `pipeline-metrics` cell above it, whose lines must all be `print(metric)`",
        ),
        None => Some(
            "belongs to no step: it comes before the first tagged cell, so it is not part of the pipeline",
        ),
    }
}

/// Cell `n` of step `name`: the step is declared by its first cell; a step after
/// the metrics cell is an error. Returns the step's index.
fn step_cell(out: &mut NotebookStructure, name: &str, n: usize, diags: &mut Diagnostics) -> usize {
    if !out.metrics.is_empty() {
        diags.push(
            Diagnostic::error(format!(
                "step `{name}` comes after the `pipeline-metrics` cell (cell {})",
                out.metrics[0]
            ))
            .in_cell(n)
            .with_hint("the `pipeline-metrics` cell must be the last tagged cell of the notebook; move it to the end"),
        );
    }
    match out.step_index(name) {
        Some(i) => {
            out.steps[i].cells.push(n);
            i
        }
        None => {
            out.steps.push(StepDecl {
                name: name.to_string(),
                cells: vec![n],
                parents: Vec::new(),
                config: StepConfig::default(),
            });
            out.steps.len() - 1
        }
    }
}

/// `kubeflow_notebook.steps_defaults`: config tags every step gets unless it sets
/// its own.
fn apply_steps_defaults(out: &mut NotebookStructure, diags: &mut Diagnostics) {
    let mut default_config = StepConfig::default();
    for raw in out.metadata.steps_defaults.clone() {
        match parse_tag(&raw) {
            Ok(tag @ (Tag::Limit { .. }
            | Tag::Label { .. }
            | Tag::Annotation { .. }
            | Tag::Image(_)
            | Tag::Cache(_)
            | Tag::Report(_)
            | Tag::Secret { .. })) => apply_default(&mut default_config, tag),
            Ok(_) => diags.push(Diagnostic::error(format!(
                "`kubeflow_notebook.steps_defaults` may only hold limit, label, annotation, image, cache, report and secret tags, found `{raw}`"
            ))),
            Err(p) => diags.push(Diagnostic::error(format!(
                "in `kubeflow_notebook.steps_defaults`: {}",
                p.message
            ))),
        }
    }
    for step in &mut out.steps {
        merge_defaults(&mut step.config, &default_config);
    }
}

/// Untagged cells before the first tagged one are not part of the pipeline: say so
/// (naming papermill's `parameters` cell, whose values a user usually means to tune).
fn warn_unassigned(nb: &Notebook, out: &NotebookStructure, diags: &mut Diagnostics) {
    if out.unassigned.is_empty() || out.steps.is_empty() {
        return;
    }
    let cells = out
        .unassigned
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // Papermill's `parameters` cell is where a notebook's parameters already are.
    let papermill = out.unassigned.iter().copied().find(|&c| {
        nb.cell(c)
            .is_some_and(|cell| cell.tags.iter().any(|t| t == "parameters"))
    });
    let hint = match papermill {
        Some(c) => format!(
            "cell {c} is papermill's `parameters` cell: tag it `pipeline-parameters` too so kale tunes and passes its values; tag the others `imports`, `skip` or `step:NAME`"
        ),
        None => "tag them `imports`, `skip` or `step:NAME` to make the intent explicit".into(),
    };
    diags.push(
        Diagnostic::warning(format!(
            "untagged code cell(s) {cells} come before the first tagged cell and are not part of the pipeline"
        ))
        .in_cell(out.unassigned[0])
        .with_hint(hint),
    );
}

fn add_parent(
    out: &mut NotebookStructure,
    index: usize,
    name: &str,
    parent: String,
    n: usize,
    first_definition: &HashMap<String, usize>,
    diags: &mut Diagnostics,
) {
    if parent == name {
        diags.push(
            Diagnostic::error(format!("step `{name}` lists itself as `prev:{parent}`")).in_cell(n),
        );
    } else if out.step_index(&parent).is_none() {
        let d = Diagnostic::error(format!(
            "`prev:{parent}` names a step that is not defined above this cell"
        ))
        .in_cell(n);
        let d = match first_definition.get(&parent) {
            Some(later) => d.with_hint(format!(
                "step `{parent}` is defined later, in cell {later}; a parent must come before its children in the notebook"
            )),
            None => d.with_hint(format!("no cell is tagged `step:{parent}`; check the spelling")),
        };
        diags.push(d);
    } else if !out.steps[index].parents.iter().any(|(p, _)| *p == parent) {
        out.steps[index].parents.push((parent, n));
    }
}

fn special_name(tag: &Tag) -> &'static str {
    match tag {
        Tag::Imports => "imports",
        Tag::Functions => "functions",
        Tag::PipelineParameters => "pipeline-parameters",
        Tag::PipelineMetrics => "pipeline-metrics",
        Tag::Skip => "skip",
        _ => "",
    }
}

fn tag_display(tag: &Tag) -> String {
    match tag {
        Tag::Prev(p) => format!("`prev:{}`", p.join(":")),
        Tag::Limit { resource, value } => format!("`limit:{resource}:{value}`"),
        Tag::Annotation { key, value } => format!("`annotation:{key}:{value}`"),
        Tag::Label { key, value } => format!("`label:{key}:{value}`"),
        Tag::Image(i) => format!("`image:{i}`"),
        Tag::Cache(b) => format!("`cache:{}`", if *b { "enabled" } else { "disabled" }),
        Tag::Report(b) => format!("`report:{}`", if *b { "enabled" } else { "disabled" }),
        Tag::Secret { name, key, env } => format!("`secret:{name}:{key}:{env}`"),
        other => format!("`{other:?}`"),
    }
}

fn apply_config(
    config: &mut StepConfig,
    tag: Tag,
    cell: usize,
    step: &str,
    diags: &mut Diagnostics,
) {
    let mut conflict = |what: String, old: &str, new: &str| {
        if old != new {
            diags.push(
                Diagnostic::warning(format!(
                    "step `{step}` sets {what} to `{new}` here but `{old}` earlier; the later value is used"
                ))
                .in_cell(cell),
            );
        }
    };
    match tag {
        Tag::Limit { resource, value } => {
            if let Some(old) = config.limits.get(&resource) {
                conflict(format!("limit `{resource}`"), old, &value);
            }
            config.limits.insert(resource, value);
        }
        Tag::Label { key, value } => {
            if let Some(old) = config.labels.get(&key) {
                conflict(format!("label `{key}`"), old, &value);
            }
            config.labels.insert(key, value);
        }
        Tag::Annotation { key, value } => {
            if let Some(old) = config.annotations.get(&key) {
                conflict(format!("annotation `{key}`"), old, &value);
            }
            config.annotations.insert(key, value);
        }
        Tag::Image(image) => {
            if let Some(old) = &config.image {
                conflict("the image".into(), old, &image);
            }
            config.image = Some(image);
        }
        Tag::Cache(b) => config.cache = Some(b),
        Tag::Report(b) => config.report = Some(b),
        Tag::Secret { name, key, env } => {
            let secret = Secret { name, key, env };
            if !config.secrets.contains(&secret) {
                config.secrets.push(secret);
            }
        }
        Tag::Step { .. } | Tag::Prev(_) | Tag::Notebook(_) => {}
        Tag::Imports
        | Tag::Functions
        | Tag::PipelineParameters
        | Tag::PipelineMetrics
        | Tag::Skip => {}
    }
}

fn apply_default(config: &mut StepConfig, tag: Tag) {
    let mut sink = Diagnostics::default();
    apply_config(config, tag, 0, "", &mut sink);
}

fn merge_defaults(config: &mut StepConfig, defaults: &StepConfig) {
    for (k, v) in &defaults.limits {
        config.limits.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &defaults.labels {
        config.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &defaults.annotations {
        config
            .annotations
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    if config.image.is_none() {
        config.image.clone_from(&defaults.image);
    }
    if config.cache.is_none() {
        config.cache = defaults.cache;
    }
    if config.report.is_none() {
        config.report = defaults.report;
    }
    for s in &defaults.secrets {
        if !config.secrets.iter().any(|x| x.env == s.env) {
            config.secrets.push(s.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::parse;
    use std::path::Path;

    /// Builds a notebook from (tags, source) pairs; a `None` tag list makes a markdown cell.
    pub(crate) fn notebook(cells: &[(Option<&[&str]>, &str)]) -> Notebook {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(tags, src)| match tags {
                Some(tags) => serde_json::json!({"cell_type": "code", "source": src, "metadata": {"tags": tags}}),
                None => serde_json::json!({"cell_type": "markdown", "source": src, "metadata": {}}),
            })
            .collect();
        let text = serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4}).to_string();
        parse(Path::new("t.ipynb"), &text, &mut Diagnostics::default()).unwrap()
    }

    #[test]
    fn untagged_cells_continue_the_previous_block_and_skip_is_transparent() {
        let nb = notebook(&[
            (Some(&["imports"]), "import os"),
            (Some(&[]), "import sys"),
            (None, "# markdown"),
            (Some(&["step:a"]), "x = 1"),
            (Some(&["skip"]), "print('debug')"),
            (Some(&[]), "y = 2"),
            (Some(&["step:b", "prev:a"]), "z = x + y"),
            (Some(&["step:a"]), "w = 3"),
        ]);
        let mut d = Diagnostics::default();
        let s = structure(&nb, &mut d);
        assert!(!d.has_errors(), "{d:?}");
        assert_eq!(s.imports, vec![1, 2]);
        assert_eq!(s.skipped, vec![5]);
        assert_eq!(s.steps[0].name, "a");
        assert_eq!(s.steps[0].cells, vec![4, 6, 8]);
        assert_eq!(s.steps[1].parents, vec![("a".to_string(), 7)]);
    }

    #[test]
    fn special_tag_wins_and_warns() {
        let nb = notebook(&[(Some(&["imports", "step:x"]), "import os")]);
        let mut d = Diagnostics::default();
        let s = structure(&nb, &mut d);
        assert_eq!(s.imports, vec![1]);
        assert!(s.steps.is_empty());
        assert_eq!(d.warnings().count(), 1);
    }

    #[test]
    fn errors_are_located() {
        let nb = notebook(&[
            (Some(&["step:a", "step:b"]), "x = 1"),
            (Some(&["prev:a"]), "y = 1"),
            (Some(&["step:c", "prev:d"]), "z = 1"),
            (Some(&["step:d"]), "w = 1"),
            (Some(&["pipeline-metrics"]), "print(x)"),
            (Some(&["step:e"]), "v = 1"),
            (Some(&["bogus"]), ""),
        ]);
        let mut d = Diagnostics::default();
        structure(&nb, &mut d);
        let cells: Vec<Option<usize>> = d.errors().map(|e| e.cell).collect();
        assert_eq!(
            cells,
            vec![Some(1), Some(2), Some(3), Some(6), Some(7)],
            "{d:#?}"
        );
        let forward = d.errors().find(|e| e.cell == Some(3)).unwrap();
        assert!(
            forward
                .hint
                .as_ref()
                .unwrap()
                .contains("defined later, in cell 4")
        );
    }

    #[test]
    fn config_tags_and_defaults() {
        let mut nb = notebook(&[
            (
                Some(&[
                    "step:train",
                    "limit:nvidia.com/gpu:1",
                    "label:team:ml:core",
                    "image:python:3.12",
                ]),
                "x = 1",
            ),
            (Some(&["step:eval", "prev:train"]), "y = x"),
        ]);
        nb.metadata = serde_json::json!({"kubeflow_notebook": {"steps_defaults": ["label:team:default", "limit:memory:1Gi"]}});
        let mut d = Diagnostics::default();
        let s = structure(&nb, &mut d);
        assert!(!d.has_errors(), "{d:?}");
        let train = &s.steps[0].config;
        assert_eq!(train.limits.get("nvidia.com/gpu").unwrap(), "1");
        assert_eq!(train.limits.get("memory").unwrap(), "1Gi");
        assert_eq!(train.labels.get("team").unwrap(), "ml:core");
        assert_eq!(train.image.as_deref(), Some("python:3.12"));
        assert_eq!(s.steps[1].config.labels.get("team").unwrap(), "default");
    }
}
