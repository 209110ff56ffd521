//! Which variables each step receives, and from whom.
//!
//! The rule: a name a step reads comes from the **nearest ancestor in the DAG that
//! touched it** — bound it, or read it (reading may mutate: `model.fit(X)`,
//! `df['a'] = 1`). "Nearest" means a touching ancestor with no touching descendant
//! among the step's ancestors; if several remain (parallel branches), the one latest in
//! the notebook wins, as it would when running the notebook top to bottom, and a
//! warning says the choice was ambiguous.
//!
//! Pipeline parameters and builtins are immutable from a reader's point of view, so
//! only *binding* them counts as touching. Names bound by `imports` and `functions`
//! cells are never inputs: every step re-runs those cells.
//!
//! Functions carry their global reads with them: reading a function's name (calling
//! it, or passing it along) reads every global the function reads, transitively through
//! the functions it reads in turn. This is what makes a helper defined in a `functions`
//! cell pull `THRESHOLD` from the step that set it, and what records which parameters a
//! step uses through its helpers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::analysis::{self, BlockFacts, CellSource, DynamicKind, Location};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::notebook::{Notebook, NotebookStructure};

use super::cell_source;
use super::dag::Dag;
use super::{Metric, Parameter, Step};

/// A name a step needs from outside its own code, with where it is first needed.
struct Need {
    name: String,
    at: Location,
}

struct StepFacts {
    facts: BlockFacts,
    needs: Vec<Need>,
    touched_bind: BTreeSet<String>,
    touched_read: BTreeSet<String>,
}

/// "`a` and `b`", "`a`, `b` and `c`".
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// What to do about a cell that does not parse.
pub(crate) const SYNTAX_HINT: &str = "fix the line (the notebook's kernel rejects it too), or tag the cell `skip` to leave it out of the pipeline";

pub(super) fn resolve(
    nb: &Notebook,
    s: &NotebookStructure,
    dag: &Dag,
    parameters: &[Parameter],
    metric_names: &[(String, usize, u32)],
    diags: &mut Diagnostics,
) -> (Vec<Step>, Vec<Metric>) {
    let source_of = |n: usize| cell_source(nb, n);
    let prelude: Vec<CellSource> = s
        .imports
        .iter()
        .chain(&s.functions)
        .map(|&n| source_of(n))
        .collect();
    let prelude_facts = analysis::analyze_block(&prelude);
    let prelude_names: BTreeSet<String> = prelude_facts
        .first_bind
        .keys()
        .chain(prelude_facts.functions.keys())
        .cloned()
        .collect();
    let param_names: BTreeSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();

    let mut reported: HashSet<(usize, u32, String)> = HashSet::new();
    let mut report = |diags: &mut Diagnostics, d: Diagnostic| {
        let key = (d.cell.unwrap_or(0), d.line.unwrap_or(0), d.message.clone());
        if reported.insert(key) {
            diags.push(d);
        }
    };

    let mut per_step: Vec<StepFacts> = Vec::with_capacity(s.steps.len());
    for decl in &s.steps {
        let mut cells = prelude.clone();
        cells.extend(decl.cells.iter().map(|&n| source_of(n)));
        let facts = analysis::analyze_block(&cells);
        for e in &facts.syntax_errors {
            report(
                diags,
                Diagnostic::error(format!("syntax error: {}", e.message))
                    .at(e.at.cell, e.at.line)
                    .quoting(source_of(e.at.cell).source, e.at.line, e.at.col)
                    .with_hint(SYNTAX_HINT),
            );
        }
        for d in &facts.dynamic {
            let what = match &d.kind {
                DynamicKind::WildcardImport { module } => format!("`from {module} import *`"),
                DynamicKind::Exec => "`exec`".into(),
                DynamicKind::Eval => "`eval`".into(),
                DynamicKind::Globals => "`globals()`".into(),
                DynamicKind::Locals => "`locals()`".into(),
                DynamicKind::Vars => "`vars()`".into(),
            };
            report(
                diags,
                Diagnostic::warning(format!(
                    "{what} hides which names this code reads or defines; kale's data-flow analysis cannot see through it"
                ))
                .at(d.at.cell, d.at.line),
            );
        }
        per_step.push(step_facts(facts));
    }

    // Function closure needs the definitions visible from each step: its own block first,
    // then the latest ancestor that defines the function.
    for i in 0..s.steps.len() {
        let mut extra_reads: Vec<Need> = Vec::new();
        let mut extra_writes: BTreeSet<String> = BTreeSet::new();
        let own = &per_step[i].facts;
        let mut seen: HashSet<String> = HashSet::new();
        let mut work: Vec<(String, u32, Location)> = own
            .first_read
            .iter()
            .map(|(n, occ)| (n.clone(), occ.seq, occ.at))
            .collect();
        while let Some((name, seq, at)) = work.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(function) = visible_function(&per_step, dag, i, &name) else {
                continue;
            };
            extra_writes.extend(function.global_writes.iter().cloned());
            for g in &function.global_reads {
                let bound_before = own.first_bind.get(g).is_some_and(|b| b.seq < seq);
                if !bound_before {
                    extra_reads.push(Need {
                        name: g.clone(),
                        at,
                    });
                }
                work.push((g.clone(), seq, at));
            }
        }
        let sf = &mut per_step[i];
        for need in extra_reads {
            sf.touched_read.insert(need.name.clone());
            if !sf.needs.iter().any(|n| n.name == need.name) {
                sf.needs.push(need);
            }
        }
        sf.touched_bind.extend(extra_writes);
    }

    let touches = |step: usize, name: &str| -> bool {
        let sf = &per_step[step];
        if param_names.contains(name) || analysis::is_builtin(name) {
            sf.touched_bind.contains(name)
        } else {
            sf.touched_bind.contains(name) || sf.touched_read.contains(name)
        }
    };
    // Among `candidates`, the ones no other candidate descends from; the latest in the
    // notebook is the provider.
    let nearest = |candidates: &[usize]| -> (usize, Vec<usize>) {
        let maximal: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&c| !candidates.iter().any(|&d| d != c && dag.is_ancestor(c, d)))
            .collect();
        let provider = *maximal.iter().max().expect("candidates is not empty");
        (provider, maximal)
    };

    let skipped_binds: Vec<(usize, BlockFacts)> = s
        .skipped
        .iter()
        .chain(&s.unassigned)
        .map(|&n| (n, analysis::analyze_block(&[source_of(n)])))
        .collect();

    let mut inputs: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); s.steps.len()];
    let mut outputs: Vec<BTreeSet<String>> = vec![BTreeSet::new(); s.steps.len()];
    let mut used_params: Vec<BTreeSet<String>> = vec![BTreeSet::new(); s.steps.len()];

    // The imports and functions cells run at the start of every step, before its inputs
    // are loaded: a name they read at their top level that they do not define is
    // undefined in every step. Reported once per cell, not once per step and name.
    let prelude_cells: BTreeSet<usize> = s.imports.iter().chain(&s.functions).copied().collect();
    let mut prelude_undefined: BTreeMap<usize, (u32, BTreeSet<String>)> = BTreeMap::new();
    for &i in dag.order() {
        let step_name = &s.steps[i].name;
        let dynamic = !per_step[i].facts.dynamic.is_empty();
        for need in &per_step[i].needs {
            let n = need.name.as_str();
            if prelude_names.contains(n) {
                continue;
            }
            if prelude_cells.contains(&need.at.cell) {
                if param_names.contains(n) {
                    used_params[i].insert(n.to_string());
                } else if !analysis::is_builtin(n) {
                    let entry = prelude_undefined
                        .entry(need.at.cell)
                        .or_insert((need.at.line, BTreeSet::new()));
                    entry.0 = entry.0.min(need.at.line);
                    entry.1.insert(n.to_string());
                }
                continue;
            }
            let candidates: Vec<usize> = dag.ancestors_of(i).filter(|&a| touches(a, n)).collect();
            if candidates.is_empty() {
                if param_names.contains(n) {
                    used_params[i].insert(n.to_string());
                    continue;
                }
                if analysis::is_builtin(n) {
                    continue;
                }
                let d = undefined_name(s, &per_step, &skipped_binds, i, n, need.at, dynamic);
                report(diags, d);
                continue;
            }
            let (provider, maximal) = nearest(&candidates);
            // Branches that only read the name (pass it to `fit()`) hold their common
            // ancestor's value: nothing to choose between unless one assigns it.
            let assigned = maximal
                .iter()
                .any(|&m| per_step[m].touched_bind.contains(n));
            if maximal.len() > 1 && assigned {
                let names = listing(maximal.iter().map(|&m| s.steps[m].name.as_str()));
                let all = if maximal.len() == 2 { "both" } else { "all" };
                report(
                    diags,
                    Diagnostic::warning(format!(
                        "step `{step_name}` reads `{n}`, which parallel steps {names} {all} touch; using the value from `{}` (the latest in the notebook)",
                        s.steps[provider].name
                    ))
                    .at(need.at.cell, need.at.line)
                    .with_hint(
                        "rename the variable in one branch, or chain the branches with `prev:` so the order is explicit",
                    ),
                );
            }
            if per_step[provider].facts.deleted.contains(n) {
                report(
                    diags,
                    Diagnostic::error(format!(
                        "step `{step_name}` reads `{n}`, but step `{}` deletes it with `del`",
                        s.steps[provider].name
                    ))
                    .at(need.at.cell, need.at.line),
                );
                continue;
            }
            inputs[i].insert(n.to_string(), s.steps[provider].name.clone());
            outputs[provider].insert(n.to_string());
        }
    }

    for (cell, (line, names)) in &prelude_undefined {
        let kind = if s.imports.contains(cell) {
            "imports"
        } else {
            "functions"
        };
        let names = listing(names.iter().map(String::as_str));
        report(
            diags,
            Diagnostic::error(format!(
                "the `{kind}` cell reads {names} at its top level without defining them: that cell runs at the start of every step, once, before the step's own cells and inputs, so every step would fail with NameError"
            ))
            .at(*cell, *line)
            .with_hint(format!(
                "keep imports, function and class definitions and constants in the `{kind}` cell; move the statements that use {names} (a loop, a call) into a step's cell"
            )),
        );
    }

    let mut step_metrics: Vec<Vec<String>> = vec![Vec::new(); s.steps.len()];
    let mut metrics = Vec::new();
    for (m, cell, line) in metric_names {
        let mut candidates: Vec<usize> = (0..s.steps.len()).filter(|&st| touches(st, m)).collect();
        if candidates.is_empty() && param_names.contains(m.as_str()) {
            // A parameter reported as a metric (Kale's own test notebook does this): the
            // steps that use it have its value; if none does, the last step gets it.
            candidates = (0..s.steps.len())
                .filter(|&st| used_params[st].contains(m))
                .collect();
            if candidates.is_empty() {
                let last = *dag.order().last().expect("the pipeline has steps");
                used_params[last].insert(m.clone());
                candidates.push(last);
            }
        }
        if candidates.is_empty() {
            report(
                diags,
                Diagnostic::error(format!("metric `{m}` is never set by any step"))
                    .at(*cell, *line)
                    .with_hint(format!(
                        "assign `{m}` in a step, or remove the `print({m})` line"
                    )),
            );
            continue;
        }
        let (provider, maximal) = nearest(&candidates);
        if maximal.len() > 1 {
            let names = listing(maximal.iter().map(|&x| s.steps[x].name.as_str()));
            report(
                diags,
                Diagnostic::warning(format!(
                    "metric `{m}` is set by parallel steps {names}; reporting the value from `{}` (the latest in the notebook)",
                    s.steps[provider].name
                ))
                .at(*cell, *line)
                .with_hint(
                    "report each branch's value under its own name, or chain the steps with `prev:` so one value is the last",
                ),
            );
        }
        outputs[provider].insert(m.clone());
        step_metrics[provider].push(m.clone());
        metrics.push(Metric {
            name: m.clone(),
            step: s.steps[provider].name.clone(),
            cell: *cell,
            line: *line,
        });
    }

    let steps = dag
        .order()
        .iter()
        .map(|&i| {
            let decl = &s.steps[i];
            Step {
                name: decl.name.clone(),
                cells: decl.cells.clone(),
                depends_on: decl.parents.iter().map(|(p, _)| p.clone()).collect(),
                inputs: std::mem::take(&mut inputs[i]),
                outputs: std::mem::take(&mut outputs[i]),
                parameters: std::mem::take(&mut used_params[i]),
                metrics: std::mem::take(&mut step_metrics[i]),
                config: decl.config.clone(),
                ipython_at: per_step[i]
                    .facts
                    .ipython
                    .first()
                    .map(|u| (u.at.cell, u.at.line)),
            }
        })
        .collect();
    (steps, metrics)
}

fn step_facts(facts: BlockFacts) -> StepFacts {
    let mut needs = Vec::new();
    for (name, occ) in &facts.first_read {
        let bound_before = facts.first_bind.get(name).is_some_and(|b| b.seq < occ.seq);
        if !bound_before {
            needs.push(Need {
                name: name.clone(),
                at: occ.at,
            });
        }
    }
    // Report in the order a reader meets them.
    needs.sort_by_key(|n| n.at);
    let touched_bind = facts.first_bind.keys().cloned().collect();
    let touched_read = facts.first_read.keys().cloned().collect();
    StepFacts {
        facts,
        needs,
        touched_bind,
        touched_read,
    }
}

fn visible_function<'a>(
    per_step: &'a [StepFacts],
    dag: &Dag,
    step: usize,
    name: &str,
) -> Option<&'a analysis::FunctionFacts> {
    if let Some(f) = per_step[step].facts.functions.get(name) {
        return Some(f);
    }
    dag.ancestors_of(step)
        .filter(|&a| per_step[a].facts.functions.contains_key(name))
        .max()
        .and_then(|a| per_step[a].facts.functions.get(name))
}

fn undefined_name(
    s: &NotebookStructure,
    per_step: &[StepFacts],
    skipped: &[(usize, BlockFacts)],
    step: usize,
    name: &str,
    at: Location,
    dynamic: bool,
) -> Diagnostic {
    let step_name = &s.steps[step].name;
    let elsewhere = (0..s.steps.len())
        .filter(|&t| t != step && per_step[t].touched_bind.contains(name))
        .min_by_key(|&t| (t > step, t));
    let d = if let Some(t) = elsewhere {
        let other = &s.steps[t];
        let def_cell = per_step[t]
            .facts
            .first_bind
            .get(name)
            .map(|o| o.at.cell)
            .unwrap_or(other.first_cell());
        if t < step {
            Diagnostic::error(format!(
                "step `{step_name}` reads `{name}`, which step `{}` defines (cell {def_cell}), but `{}` is not an ancestor of `{step_name}`",
                other.name, other.name
            ))
            .with_hint(format!(
                "add the tag `prev:{}` to cell {}, the first cell of step `{step_name}`",
                other.name,
                s.steps[step].first_cell()
            ))
        } else {
            Diagnostic::error(format!(
                "step `{step_name}` reads `{name}` before it is defined: step `{}` defines it later, in cell {def_cell}",
                other.name
            ))
            .with_hint("move the definition above, into this step or one of its ancestors")
        }
    } else if let Some((cell, _)) = skipped
        .iter()
        .find(|(_, f)| f.first_bind.contains_key(name))
    {
        let why = if s.skipped.contains(cell) {
            "which is tagged `skip`"
        } else {
            "which is untagged and comes before the first tagged cell, so it is not part of the pipeline"
        };
        Diagnostic::error(format!(
            "step `{step_name}` reads `{name}`, which is only defined in cell {cell}, {why}"
        ))
        .with_hint(format!(
            "move the definition into a step (or the `imports`/`functions` cells), or change cell {cell}'s tags"
        ))
    } else {
        Diagnostic::error(format!(
            "step `{step_name}` reads `{name}`, but nothing before it defines `{name}`; the step would fail with NameError"
        ))
        .with_hint("define it in this step or an ancestor step, or in an `imports`/`functions` cell")
    };
    let d = d.at(at.cell, at.line);
    if dynamic {
        Diagnostic {
            severity: crate::diagnostics::Severity::Warning,
            message: format!(
                "{} (it may come from a wildcard import or dynamic code, which kale cannot see)",
                d.message
            ),
            ..d
        }
    } else {
        d
    }
}
