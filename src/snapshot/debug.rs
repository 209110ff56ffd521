//! A step of a run as a notebook again (`kale debug`): a first cell that loads the
//! step's inputs from the snapshot and sets the parameters it ran with, then the
//! imports, functions and the step's own cells as the run executed them (read back
//! from the generated program).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Object, ObjectLocation, Run, notebook_path, project_dir, restore, step_inputs};
use crate::codegen::{CELL_MARKER, LineMap};
use crate::exec::{Manifest, StepRecord, StepStatus, step_dir};
use crate::pipeline::{self, parse_python_string, python_literal, python_string};

/// One notebook cell as the run executed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramCell {
    pub cell: usize,
    pub source: String,
}

/// Recovers the cells a step program ran, in order, from its text (and its line map,
/// which resolves the one ambiguity: a cell line that looks like a cell marker).
pub fn program_cells(program: &str, line_map: Option<&LineMap>) -> Vec<ProgramCell> {
    let lines: Vec<&str> = program.split('\n').collect();
    let mut cells = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(cell) = lines[i]
            .strip_prefix(CELL_MARKER)
            .and_then(|n| n.trim().parse::<usize>().ok())
        else {
            i += 1;
            continue;
        };
        let body = i + 1;
        if let Some(call) = lines
            .get(body)
            .and_then(|l| l.strip_prefix("_kale.run_cell("))
        {
            if let Some((source, _)) = parse_python_string(call) {
                cells.push(ProgramCell { cell, source });
            }
            i = body + 1;
            continue;
        }
        let span = line_map.and_then(|m| {
            m.spans
                .iter()
                .find(|s| s.cell == cell && s.start as usize == body + 1)
        });
        let end = match span {
            Some(s) => (body + s.len as usize).min(lines.len()),
            None => (body..lines.len())
                .find(|&j| {
                    lines[j].starts_with(CELL_MARKER)
                        || lines[j].starts_with("_kale.shared_definitions_done(")
                        || lines[j].starts_with("_kale.finish(")
                })
                .unwrap_or(lines.len()),
        };
        cells.push(ProgramCell {
            cell,
            source: lines[body..end].join("\n"),
        });
        i = end;
    }
    cells
}

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("{0}")]
    Usage(String),
    #[error("the snapshot of run `{run}` is incomplete: {} of the inputs step `{step}` read {} been pruned", .missing.len(), if .missing.len() == 1 { "has" } else { "have" })]
    Pruned {
        run: String,
        step: String,
        missing: Vec<Object>,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Asking for a step the run does not have is the user's to fix; data pruned since
/// the run means the request was fine but cannot be served (like a failed run).
impl From<DebugError> for crate::Error {
    fn from(e: DebugError) -> Self {
        match &e {
            DebugError::Usage(_) => crate::Error::bad_input(&e),
            DebugError::Pruned { missing, .. } => {
                let mut message = e.to_string();
                for o in missing {
                    message.push_str(&format!(
                        "\n  gone: `{}` (saved by step `{}`, {}, {})",
                        o.name,
                        o.step,
                        o.bytes
                            .map(crate::format::human_bytes)
                            .unwrap_or_else(|| "size unknown".into()),
                        o.hash
                    ));
                }
                crate::Error::failed(message).with_hint(
                    "`kale cache prune` removed it; run the notebook again to recreate it, and `kale runs pin RUN` to keep a run's data through pruning",
                )
            }
            DebugError::Io(_) => crate::Error::environment(&e),
        }
    }
}

/// What [`debug_notebook`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct DebugNotebook {
    pub path: PathBuf,
    pub run_id: String,
    pub step: String,
    pub status: StepStatus,
    /// Things the user should know (the notebook changed since the run, ...).
    pub warnings: Vec<String>,
}

/// Writes the debug notebook for `step` (default: the failing step) of `run`.
pub fn debug_notebook(
    runs_dir: &Path,
    run: &Run,
    step: Option<&str>,
    output: Option<&Path>,
) -> Result<DebugNotebook, DebugError> {
    let m = &run.manifest;
    let record = chosen_step(run, step)?;
    let sdir = step_dir(&run.dir, &record.name);
    let program_path = sdir.join("program.py");
    let inputs = restored_inputs(runs_dir, run, record)?;

    let program = std::fs::read_to_string(&program_path)?;
    let line_map: Option<LineMap> = std::fs::read_to_string(sdir.join("linemap.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let cells = program_cells(&program, line_map.as_ref());

    let nb_path = notebook_path(runs_dir, m);
    let pipeline = pipeline::load(&nb_path).0;
    let mut warnings = Vec::new();
    let changed = match &pipeline {
        Some(p) => cells
            .iter()
            .any(|c| p.sources.get(&c.cell).map(|s| s.replace('\r', "")) != Some(c.source.clone())),
        None => true,
    };
    if changed {
        warnings.push(format!(
            "{} changed since run `{}` (or no longer loads); the debug notebook has the code the run executed",
            nb_path.display(),
            m.run_id
        ));
    }

    let project = project_dir(runs_dir);
    // The notebook imports its loader from the runtime `kale run` installs.
    let runtime_dir = crate::exec::install_runtime(runs_dir, None)?;
    let path = match output {
        Some(p) => p.to_path_buf(),
        None => default_path(&project, &nb_path, record, m),
    };
    let rel = |p: &Path| relative_to(&project, p);

    let mut nb = NotebookWriter::default();
    nb.markdown(&header(run, record, &nb_path));
    let loader = loader_cell(run, record, &inputs, &rel(&runtime_dir), &rel);
    let roles = (!changed).then_some(pipeline.as_ref()).flatten();
    step_cells(&mut nb, &cells, roles, record, &loader);
    if record.status.is_success() && !record.outputs.is_empty() {
        nb.markdown(&format!(
            "## Check\nSaves the step's outputs as the run did and compares their content hashes with the ones run `{}` recorded.",
            m.run_id
        ));
        nb.code(&check_cell(record), json!({"role": "check"}));
    }

    let kernelspec = original_metadata(&nb_path);
    let doc = nb.finish(
        kernelspec,
        json!({
            "run": m.run_id,
            "step": record.name,
            "notebook": nb_path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "generated_by": format!("kale {}", env!("CARGO_PKG_VERSION")),
        }),
    );
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(DebugNotebook {
        path,
        run_id: m.run_id.clone(),
        step: record.name.clone(),
        status: record.status,
        warnings,
    })
}

/// The step to reopen: the one named, else the one that failed; it must have
/// started (its program is in the run).
fn chosen_step<'r>(run: &'r Run, step: Option<&str>) -> Result<&'r StepRecord, DebugError> {
    let m = &run.manifest;
    let record = match step {
        Some(name) => m.step(name).ok_or_else(|| {
            DebugError::Usage(format!(
                "run `{}` has no step `{name}`; its steps: {}",
                m.run_id,
                step_names(m)
            ))
        })?,
        None => run.failing_step().ok_or_else(|| {
            DebugError::Usage(format!(
                "no step failed in run `{}`; name the step to debug (one of: {})",
                m.run_id,
                step_names(m)
            ))
        })?,
    };
    let program_path = step_dir(&run.dir, &record.name).join("program.py");
    if matches!(record.status, StepStatus::NotRun | StepStatus::Pending) || !program_path.exists() {
        let hint = run
            .failing_step()
            .map(|f| {
                format!(
                    "; `kale debug {} {}` opens the step that failed",
                    m.run_id, f.name
                )
            })
            .unwrap_or_default();
        return Err(DebugError::Usage(format!(
            "step `{}` did not start in run `{}`, so there is nothing to reopen{hint}",
            record.name, m.run_id
        )));
    }
    Ok(record)
}

/// The step's inputs, those the run's folder no longer holds restored from the
/// cache's objects; an input gone from both is the error.
fn restored_inputs(
    runs_dir: &Path,
    run: &Run,
    record: &StepRecord,
) -> Result<Vec<Object>, DebugError> {
    let m = &run.manifest;
    let inputs = step_inputs(runs_dir, run, record, true);
    let missing: Vec<Object> = inputs
        .iter()
        .filter(|o| o.location == ObjectLocation::Missing)
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(DebugError::Pruned {
            run: m.run_id.clone(),
            step: record.name.clone(),
            missing,
        });
    }
    for o in inputs
        .iter()
        .filter(|o| o.location == ObjectLocation::Store)
    {
        restore(runs_dir, o)?;
    }
    Ok(inputs)
}

/// `<notebook>.kale-debug-<step>-<run>.ipynb` beside the notebook.
fn default_path(project: &Path, nb_path: &Path, record: &StepRecord, m: &Manifest) -> PathBuf {
    let stem = nb_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook".into());
    let name = format!("{stem}.kale-debug-{}-{}.ipynb", record.name, m.run_id);
    // `./x.ipynb` reads worse than `x.ipynb` in the printed command.
    if project == Path::new(".") {
        PathBuf::from(name)
    } else {
        project.join(name)
    }
}

/// The code the step ran, cell by cell under headings by role (imports, functions,
/// the step; plain code when the notebook changed since the run), with the cell
/// loading the inputs once the imports and functions are defined.
fn step_cells(
    nb: &mut NotebookWriter,
    cells: &[ProgramCell],
    pipeline: Option<&pipeline::Pipeline>,
    record: &StepRecord,
    loader: &str,
) {
    let role_of = |cell: usize| match pipeline {
        Some(p) if p.imports_cells.contains(&cell) => "imports",
        Some(p) if p.functions_cells.contains(&cell) => "functions",
        Some(_) => "step",
        None => "code",
    };
    let mut loaded = false;
    let mut last_role = "";
    for c in cells {
        let role = role_of(c.cell);
        // As in the step program: the inputs are loaded once the imports and
        // functions cells have defined what their objects refer to.
        if !loaded && !matches!(role, "imports" | "functions") {
            nb.markdown("## Inputs and parameters");
            nb.code(loader, json!({"role": "snapshot"}));
            loaded = true;
        }
        if role != last_role {
            nb.markdown(&match role {
                "imports" => "## Imports".to_string(),
                "functions" => "## Functions".to_string(),
                "step" => format!("## Step `{}`", record.name),
                _ => format!("## Code step `{}` ran", record.name),
            });
            last_role = role;
        }
        nb.code(&c.source, json!({"role": role, "cell": c.cell}));
    }
    if !loaded {
        nb.code(loader, json!({"role": "snapshot"}));
    }
}

fn step_names(m: &Manifest) -> String {
    m.steps
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Paths in the notebook are relative to its directory, the kernel's working
/// directory, so the project can move with its `.kale/`.
fn relative_to(base: &Path, p: &Path) -> String {
    let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    let full = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    full.strip_prefix(&base)
        .map(Path::to_path_buf)
        .unwrap_or(full)
        .display()
        .to_string()
}

fn header(run: &Run, record: &StepRecord, nb_path: &Path) -> String {
    let m = &run.manifest;
    let of = match run.trial_label() {
        Some(t) => format!("trial `{t}` (run `{}`)", m.run_id),
        None => format!("run `{}`", m.run_id),
    };
    let mut s = format!(
        "# Debug: step `{}` of {of}\nGenerated by `kale debug` from `{}`; edits here do not change it. Run the cells in order: after the imports and functions, a cell loads the inputs the step read and sets the parameters it ran with, from the run's snapshot.\n\nIn the run the step **{}**",
        record.name,
        nb_path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        record.status.as_str()
    );
    if let Some(e) = &record.error {
        s.push_str(&format!(": `{}: {}`", e.kind, e.message));
        if let (Some(cell), Some(line)) = (e.cell, e.line) {
            s.push_str(&format!(" (notebook cell {cell}, line {line}"));
            if let Some(code) = &e.code {
                s.push_str(&format!(": `{code}`"));
            }
            s.push(')');
        }
    }
    s.push('.');
    s
}

fn loader_cell(
    run: &Run,
    record: &StepRecord,
    inputs: &[Object],
    runtime_dir: &str,
    rel: &dyn Fn(&Path) -> String,
) -> String {
    let mut s = format!(
        "# kale debug: the inputs and parameters of step `{}` in run `{}`\n",
        record.name, run.manifest.run_id
    );
    s.push_str("import sys as _kale_sys\n");
    s.push_str(&format!(
        "if {rt} not in _kale_sys.path:\n    _kale_sys.path.insert(0, {rt})\n",
        rt = python_string(runtime_dir)
    ));
    s.push_str("import kale_runtime as _kale\n");
    if !inputs.is_empty() {
        s.push_str("globals().update(_kale.load_inputs({\n");
        for o in inputs {
            s.push_str(&format!(
                "    {}: {},  # from step `{}`, {}\n",
                python_string(&o.name),
                python_string(&rel(&o.file)),
                o.step,
                o.hash
            ));
        }
        s.push_str("}))\n");
    }
    for (name, value) in &record.parameters {
        s.push_str(&format!("{name} = {}\n", python_literal(value)));
    }
    s.trim_end().to_string()
}

fn check_cell(record: &StepRecord) -> String {
    let mut s = String::from("import tempfile as _kale_tempfile\n_kale_expected = {\n");
    // The process state is not a variable; values saved with those they share objects
    // with are compared as the run saved them only in the run.
    for o in record
        .outputs
        .iter()
        .filter(|o| o.name != crate::pipeline::STATE_VARIABLE && !o.file.ends_with(".group.pkl"))
    {
        s.push_str(&format!(
            "    {}: {},\n",
            python_string(&o.name),
            python_string(&o.hash)
        ));
    }
    // One literal per line: a `\` line continuation would eat the indentation.
    for line in [
        "}",
        "with _kale_tempfile.TemporaryDirectory() as _kale_tmp:",
        "    for _kale_name, _kale_hash in _kale_expected.items():",
        "        _kale_now = _kale.save(_kale_name, globals()[_kale_name], _kale_tmp)[\"hash\"]",
        "        print(_kale_name, _kale_now, \"same as the run\" if _kale_now == _kale_hash else \"DIFFERS from the run's \" + _kale_hash)",
    ] {
        s.push_str(line);
        s.push('\n');
    }
    s.trim_end().to_string()
}

/// The kernel the original notebook uses, so Jupyter opens the debug one alike.
fn original_metadata(nb_path: &Path) -> Value {
    let meta = std::fs::read_to_string(nb_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("metadata").cloned())
        .unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    for key in ["kernelspec", "language_info"] {
        if let Some(v) = meta.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out.entry("kernelspec").or_insert_with(
        || json!({"name": "python3", "display_name": "Python 3", "language": "python"}),
    );
    Value::Object(out)
}

#[derive(Default)]
struct NotebookWriter {
    cells: Vec<Value>,
}

impl NotebookWriter {
    fn id(&self) -> String {
        format!("kale-debug-{}", self.cells.len())
    }

    fn markdown(&mut self, text: &str) {
        let id = self.id();
        self.cells.push(json!({
            "cell_type": "markdown", "id": id, "metadata": {}, "source": lines(text),
        }));
    }

    fn code(&mut self, text: &str, kale: Value) {
        let id = self.id();
        self.cells.push(json!({
            "cell_type": "code", "id": id, "execution_count": null,
            "metadata": {"kale_debug": kale}, "outputs": [], "source": lines(text),
        }));
    }

    fn finish(self, mut metadata: Value, kale: Value) -> Value {
        metadata["kale_debug"] = kale;
        json!({"cells": self.cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})
    }
}

/// nbformat's list-of-lines form, each line but the last keeping its newline.
fn lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::Span;

    #[test]
    fn cells_come_back_from_plain_and_ipython_programs() {
        let plain = "import kale_runtime as _kale\n_kale.start(\"s\")\n# --- cell 1\nimport math\n# --- cell 4\n# --- cell 9\nx = 1\n\n_kale.finish(outputs=[], metrics=[])\n";
        let map = LineMap {
            spans: vec![
                Span {
                    start: 4,
                    len: 1,
                    cell: 1,
                },
                Span {
                    start: 6,
                    len: 3,
                    cell: 4,
                },
            ],
        };
        // With the line map, cell 4's line that looks like a marker stays in cell 4.
        assert_eq!(
            program_cells(plain, Some(&map)),
            vec![
                ProgramCell {
                    cell: 1,
                    source: "import math".into()
                },
                ProgramCell {
                    cell: 4,
                    source: "# --- cell 9\nx = 1\n".into()
                },
            ]
        );
        let ipy = format!(
            "_kale.enable_ipython()\n# --- cell 2\n_kale.run_cell({}, 2)\n_kale.finish(outputs=[], metrics=[])\n",
            python_string("%time y = 2\nprint(y)")
        );
        assert_eq!(
            program_cells(&ipy, None),
            vec![ProgramCell {
                cell: 2,
                source: "%time y = 2\nprint(y)".into()
            }]
        );
    }
}
