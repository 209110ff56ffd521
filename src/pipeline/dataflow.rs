//! Which variables each step receives, and from whom: the notebook, run top to bottom in
//! one kernel, is what the pipeline must compute.
//!
//! The rule: a name a step reads comes from the **last step before it in the notebook
//! that bound it or changed it in place** (`xs.append(1)`, `df['a'] = 1`, `model.fit(X)`,
//! a call of a function that changes it). Among the step's own ancestors, a step that
//! only read the name counts too (reading may change it in ways the analysis cannot
//! see; the value then comes from the nearest such ancestor, as before). When that step
//! is not an ancestor, kale adds the edge itself (the notebook ordered the two) and
//! records why, which `kale inspect` shows.
//!
//! Names the `imports` and `functions` cells bind are re-created by every step, which
//! runs those cells first; they become inputs only when an earlier step rebinds or
//! changes them (`LIMIT = 20`, `seen.append(v)` in a function the step calls).
//!
//! Values that may share objects (`b = a`, `pair = (a, c)`, `for row in rows`) change
//! together: a step that changes one is taken to change the others (so it loads and
//! saves them together, keeping their sharing). Pipeline parameters and builtins are
//! immutable from a reader's point of view: only binding them counts.
//!
//! Process-wide state travels as one more variable, [`STATE_VARIABLE`]: the random
//! streams once the notebook seeds one (every step from there on may draw, so they run
//! in the notebook's order), and the environment, working directory and library
//! settings a step changes. Settings kale cannot carry are named in a warning.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::analysis::{
    self, BlockFacts, CellSource, DynamicKind, FunctionFacts, Location, StateKind, StateUse,
    UnsaveableKind,
};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::notebook::{Notebook, NotebookStructure};

use super::cell_source;
use super::dag::Dag;
use super::{Metric, Ordering, Parameter, Step};

/// The variable that carries process-wide state (random streams, environment, working
/// directory, library settings) from a step to the steps after it. The step runtime
/// saves and restores it instead of a namespace entry.
pub const STATE_VARIABLE: &str = "_kale_state";

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

/// A name a step needs from outside its own code, with where it is first needed.
struct Need {
    name: String,
    at: Location,
}

/// What one step does, its own cells only (the imports and functions cells it runs
/// first are every step's, and re-created by each).
struct StepFacts {
    /// Facts of the prelude and the step's cells analysed together.
    facts: BlockFacts,
    needs: Vec<Need>,
    /// Every name it reads, through the functions it calls too.
    reads: BTreeSet<String>,
    /// Names its own cells (or the functions they call, through `global`) bind.
    binds: BTreeMap<String, Location>,
    /// Names whose objects it may change in place, with where.
    changes: BTreeMap<String, Location>,
    /// `target` may hold objects of `sources` (bool: besides what it held).
    shares: Vec<(String, BTreeSet<String>, bool)>,
    state: Vec<StateUse>,
    unsaveable: BTreeMap<String, (UnsaveableKind, Location)>,
    /// Names whose values may share objects at the step's end have the same number.
    sharing_at_end: HashMap<String, usize>,
}

/// The files a step's own cells read and write (found statically).
struct StepFiles {
    reads: Vec<analysis::FileReadCall>,
    writes: Vec<analysis::FileWriteCall>,
}

/// Everything `resolve` decides per step, in notebook order of the steps.
struct Resolved {
    inputs: Vec<BTreeMap<String, String>>,
    outputs: Vec<BTreeSet<String>>,
    used_params: Vec<BTreeSet<String>>,
    orderings: Vec<Vec<(usize, String)>>,
    /// Steps whose written files each step reads.
    files_from: Vec<BTreeSet<usize>>,
}

pub(super) fn resolve(
    nb: &Notebook,
    s: &NotebookStructure,
    dag: &mut Dag,
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
    let prelude_cells: BTreeSet<usize> = s.imports.iter().chain(&s.functions).copied().collect();
    let prelude_facts = analysis::analyze_block(&prelude);
    let mut reporter = Reporter::default();

    let mut per_step: Vec<StepFacts> = Vec::with_capacity(s.steps.len());
    for decl in &s.steps {
        let own: Vec<CellSource> = decl.cells.iter().map(|&n| source_of(n)).collect();
        let facts = analysis::analyze_step(&prelude, &own);
        report_analysis_problems(nb, &facts, &mut reporter, diags);
        let notebook_dir = nb.path.parent().unwrap_or(std::path::Path::new("."));
        per_step.push(step_facts(facts, &prelude_cells, notebook_dir));
    }
    // Position of each step in the notebook's order (the DAG's order, which follows
    // the notebook wherever the `prev:` edges allow).
    let mut position = vec![0; s.steps.len()];
    for (p, &i) in dag.order().iter().enumerate() {
        position[i] = p;
    }
    let order: Vec<usize> = dag.order().to_vec();
    for &i in &order {
        apply_functions(&mut per_step, &prelude_facts, &position, i);
    }
    for &i in &order {
        apply_calls(&mut per_step, &prelude_facts, &prelude_cells, &position, i);
    }
    close_over_sharing(&mut per_step, &order, &prelude_cells, &prelude_facts);

    let ctx = Context {
        s,
        per_step: &per_step,
        position: &position,
        prelude_facts: &prelude_facts,
        param_names: parameters.iter().map(|p| p.name.as_str()).collect(),
        skipped_binds: s
            .skipped
            .iter()
            .chain(&s.unassigned)
            .map(|&n| (n, analysis::analyze_block(&[source_of(n)])))
            .collect(),
    };
    let mut resolved = ctx.providers(dag, &mut reporter, diags);
    ctx.state(dag, &mut resolved, &mut reporter, diags);
    let files: Vec<StepFiles> = s
        .steps
        .iter()
        .map(|decl| {
            let own: Vec<CellSource> = decl.cells.iter().map(|&n| source_of(n)).collect();
            StepFiles {
                reads: analysis::file_reads(&own),
                writes: analysis::file_writes(&own),
            }
        })
        .collect();
    ctx.files(dag, &mut resolved, &files, &mut reporter, diags);
    let metrics = ctx.metrics(dag, metric_names, &mut resolved, &mut reporter, diags);
    let steps = ctx.steps(dag, resolved, &metrics);
    (steps, metrics.into_iter().map(|(m, _)| m).collect())
}

/// Reports each diagnostic once (the prelude's problems show up in every step's block).
#[derive(Default)]
struct Reporter {
    reported: HashSet<(usize, u32, String)>,
}

impl Reporter {
    fn report(&mut self, diags: &mut Diagnostics, d: Diagnostic) {
        let key = (d.cell.unwrap_or(0), d.line.unwrap_or(0), d.message.clone());
        if self.reported.insert(key) {
            diags.push(d);
        }
    }
}

fn report_analysis_problems(
    nb: &Notebook,
    facts: &BlockFacts,
    reporter: &mut Reporter,
    diags: &mut Diagnostics,
) {
    for e in &facts.syntax_errors {
        reporter.report(
            diags,
            Diagnostic::error(format!("syntax error: {}", e.message))
                .at(e.at.cell, e.at.line)
                .quoting(cell_source(nb, e.at.cell).source, e.at.line, e.at.col)
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
        reporter.report(
            diags,
            Diagnostic::warning(format!(
                "{what} hides which names this code reads or defines; kale's data-flow analysis cannot see through it"
            ))
            .at(d.at.cell, d.at.line),
        );
    }
}

fn step_facts(
    facts: BlockFacts,
    prelude_cells: &BTreeSet<usize>,
    notebook_dir: &std::path::Path,
) -> StepFacts {
    let own = |at: &Location| !prelude_cells.contains(&at.cell);
    let mut needs = Vec::new();
    // Only the step's own bindings make a name its own: one the shared cells bind may
    // have been rebound or changed by an earlier step (see `Context::provider`).
    for (name, occ) in &facts.own_first_read {
        let bound_before = facts
            .own_first_bind
            .get(name)
            .is_some_and(|b| b.seq < occ.seq);
        if !bound_before {
            needs.push(Need {
                name: name.clone(),
                at: occ.at,
            });
        }
    }
    needs.sort_by_key(|n| n.at);
    let binds = facts
        .last_bind
        .iter()
        .filter(|(_, o)| own(&o.at))
        .map(|(n, o)| {
            // Where the step's own cells first bind it.
            let first = facts
                .first_bind
                .get(n)
                .filter(|f| own(&f.at))
                .map_or(o.at, |f| f.at);
            (n.clone(), first)
        })
        .collect();
    let changes = facts
        .mutated
        .iter()
        .filter_map(|(n, occs)| occs.iter().find(|o| own(&o.at)).map(|o| (n.clone(), o.at)))
        .collect();
    let shares = facts
        .shares
        .iter()
        .filter(|sh| own(&sh.at))
        .map(|sh| (sh.target.clone(), sh.sources.clone(), sh.joins))
        .collect();
    let state = facts.state.iter().filter(|u| own(&u.at)).cloned().collect();
    // `helper.calls.append(x)` changes a module beside the notebook, which every step
    // imports anew: like a library setting kale does not carry.
    let local_module = |module: &str| {
        let root = module.split('.').next().unwrap_or_default();
        !root.is_empty()
            && (notebook_dir.join(format!("{root}.py")).is_file()
                || notebook_dir.join(root).join("__init__.py").is_file())
    };
    let mut state: Vec<StateUse> = state;
    for (module, u) in &facts.module_calls {
        if own(&u.at) && local_module(module) {
            state.push(u.clone());
        }
    }
    let unsaveable = facts
        .unsaveable
        .iter()
        .filter(|u| own(&u.at))
        .map(|u| (u.name.clone(), (u.kind, u.at)))
        .collect();
    let reads = facts.own_first_read.keys().cloned().collect();
    StepFacts {
        facts,
        needs,
        reads,
        binds,
        changes,
        shares,
        state,
        unsaveable,
        sharing_at_end: HashMap::new(),
    }
}

/// The definition of `name` a call in step `step` runs: the step's own, else the last
/// earlier step's (in the notebook's order), else the functions cell's.
fn visible_function<'a>(
    per_step: &'a [StepFacts],
    prelude: &'a BlockFacts,
    position: &[usize],
    step: usize,
    name: &str,
) -> Option<&'a FunctionFacts> {
    let own = per_step[step].facts.functions.get(name).filter(|f| {
        !prelude
            .functions
            .get(name)
            .is_some_and(|p| p.defined_at == f.defined_at)
    });
    if own.is_some() {
        return own;
    }
    (0..per_step.len())
        .filter(|&t| position[t] < position[step] && per_step[t].binds.contains_key(name))
        .max_by_key(|&t| position[t])
        .and_then(|t| per_step[t].facts.functions.get(name))
        .or_else(|| prelude.functions.get(name))
}

/// What calling `f` (as step `i` sees it) changes in place: its parameters (by name)
/// and globals, through the functions it calls in turn. A callee the step cannot name
/// (a value holding a function) may change whatever it is passed.
fn effects_of(
    per_step: &[StepFacts],
    prelude: &BlockFacts,
    position: &[usize],
    i: usize,
    f: &FunctionFacts,
    visiting: &mut Vec<Location>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut params = f.mutated_params.clone();
    let mut globals = f.global_mutates.clone();
    if visiting.contains(&f.defined_at) {
        return (params, globals);
    }
    visiting.push(f.defined_at);
    let is_class = |n: &str| per_step[i].facts.classes.contains(n) || prelude.classes.contains(n);
    let mark = |root: &String, params: &mut BTreeSet<String>, globals: &mut BTreeSet<String>| {
        if f.params.contains(root) {
            params.insert(root.clone());
        } else {
            globals.insert(root.clone());
        }
    };
    for call in &f.calls {
        if is_class(&call.callee) {
            continue;
        }
        match visible_function(per_step, prelude, position, i, &call.callee) {
            Some(g) => {
                let (gp, gg) = effects_of(per_step, prelude, position, i, g, visiting);
                globals.extend(gg);
                for (k, p) in g.params.iter().enumerate() {
                    if !gp.contains(p) {
                        continue;
                    }
                    let positional = call.args.get(k).into_iter().flatten();
                    let keyword = call
                        .keywords
                        .iter()
                        .filter(|(kw, _)| kw == p)
                        .flat_map(|(_, roots)| roots);
                    for root in positional.chain(keyword) {
                        mark(root, &mut params, &mut globals);
                    }
                }
            }
            None => {
                for root in call
                    .args
                    .iter()
                    .flatten()
                    .chain(call.keywords.iter().flat_map(|(_, r)| r))
                {
                    mark(root, &mut params, &mut globals);
                }
            }
        }
    }
    visiting.pop();
    (params, globals)
}

/// What the functions a step calls (or reads: a function passed along may be called)
/// read, rebind, change and set, transitively, become the step's own.
fn apply_functions(per_step: &mut [StepFacts], prelude: &BlockFacts, position: &[usize], i: usize) {
    let mut extra_reads: Vec<Need> = Vec::new();
    let mut extra_binds: BTreeMap<String, Location> = BTreeMap::new();
    let mut extra_changes: BTreeMap<String, Location> = BTreeMap::new();
    let mut extra_state: Vec<StateUse> = Vec::new();
    {
        let own = &per_step[i].facts;
        let mut seen: HashSet<String> = HashSet::new();
        let mut work: Vec<(String, u32, Location)> = own
            .own_first_read
            .iter()
            .map(|(n, occ)| (n.clone(), occ.seq, occ.at))
            .collect();
        while let Some((name, seq, at)) = work.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(function) = visible_function(per_step, prelude, position, i, &name) else {
                continue;
            };
            for g in &function.global_writes {
                extra_binds.entry(g.clone()).or_insert(at);
            }
            let (_, changed) =
                effects_of(per_step, prelude, position, i, function, &mut Vec::new());
            for g in changed {
                extra_changes.entry(g).or_insert(at);
            }
            extra_state.extend(function.state.iter().cloned());
            for g in &function.global_reads {
                let bound_before = own.own_first_bind.get(g).is_some_and(|b| b.seq < seq);
                if !bound_before {
                    extra_reads.push(Need {
                        name: g.clone(),
                        at,
                    });
                }
                work.push((g.clone(), seq, at));
            }
        }
    }
    let sf = &mut per_step[i];
    for need in extra_reads {
        sf.reads.insert(need.name.clone());
        if !sf.needs.iter().any(|n| n.name == need.name) {
            sf.needs.push(need);
        }
    }
    for (n, at) in extra_binds {
        sf.binds.entry(n).or_insert(at);
    }
    for (n, at) in extra_changes {
        sf.changes.entry(n).or_insert(at);
    }
    for u in extra_state {
        if !sf.state.contains(&u) {
            sf.state.push(u);
        }
    }
}

/// Calls of plain names in a step's own cells: the user's functions change the
/// arguments their bodies change, may return them, and make generators; a callable the
/// analysis cannot name (a value holding a function) may do anything to its arguments.
fn apply_calls(
    per_step: &mut [StepFacts],
    prelude: &BlockFacts,
    prelude_cells: &BTreeSet<usize>,
    position: &[usize],
    i: usize,
) {
    let mut changes: Vec<(String, Location)> = Vec::new();
    let mut unsaveable: Vec<(String, (UnsaveableKind, Location))> = Vec::new();
    for call in &per_step[i].facts.calls {
        if prelude_cells.contains(&call.at.cell) {
            // The prelude's own calls run in every step alike.
            continue;
        }
        let passed: BTreeSet<String> = call
            .args
            .iter()
            .flatten()
            .chain(call.keywords.iter().map(|(_, v)| v))
            .cloned()
            .collect();
        let function = visible_function(per_step, prelude, position, i, &call.callee);
        let is_class = per_step[i].facts.classes.contains(&call.callee)
            || prelude.classes.contains(&call.callee);
        match function {
            Some(f) if !is_class => {
                let (mutated_params, _) =
                    effects_of(per_step, prelude, position, i, f, &mut Vec::new());
                for (k, p) in f.params.iter().enumerate() {
                    if !mutated_params.contains(p) {
                        continue;
                    }
                    let positional = call.args.get(k).cloned().flatten();
                    let keyword = call
                        .keywords
                        .iter()
                        .find(|(kw, _)| kw == p)
                        .map(|(_, v)| v.clone());
                    for arg in positional.into_iter().chain(keyword) {
                        changes.push((arg, call.at));
                    }
                }
                if let Some(target) = &call.bound_to
                    && f.is_generator
                {
                    unsaveable.push((target.clone(), (UnsaveableKind::Generator, call.at)));
                }
            }
            Some(_) => {}
            None => {
                let known = per_step[i].facts.imports.contains_key(&call.callee)
                    || analysis::is_builtin(&call.callee);
                if !known {
                    for arg in &passed {
                        changes.push((arg.clone(), call.at));
                    }
                }
            }
        }
    }
    let sf = &mut per_step[i];
    for (n, at) in changes {
        sf.changes.entry(n).or_insert(at);
    }
    sf.unsaveable.extend(unsaveable);
}

/// Names that may share objects change together: a step that changes one changes every
/// name whose value may share objects with it at that point of the notebook, provided
/// the name exists by then. Sharing is tracked on values, not names: rebinding a name
/// ends what it shared (`x = vgg(inputs)` in one step and `x = resnet(inputs)` in the
/// next do not tie the two models together). Also records, per step, which names'
/// values may share objects at its end (for `Context::share_groups`).
fn close_over_sharing(
    per_step: &mut [StepFacts],
    order: &[usize],
    prelude_cells: &BTreeSet<usize>,
    prelude: &BlockFacts,
) {
    // Names that are functions (not classes) are not values that hold anything.
    let mut functions: BTreeSet<String> = prelude.functions.keys().cloned().collect();
    let mut classes: BTreeSet<String> = prelude.classes.clone();
    for sf in per_step.iter() {
        functions.extend(sf.facts.functions.keys().cloned());
        classes.extend(sf.facts.classes.iter().cloned());
    }
    let not_value = |n: &str| functions.contains(n) && !classes.contains(n);
    let mut sharing = Sharing::default();
    for sh in prelude
        .shares
        .iter()
        .filter(|sh| prelude_cells.contains(&sh.at.cell))
    {
        let sources: Vec<&String> = sh.sources.iter().filter(|s| !not_value(s)).collect();
        if sh.joins {
            sharing.join(&sh.target, sources);
        } else {
            sharing.bind(&sh.target, sources);
        }
    }
    for &i in order {
        let start = sharing.clone();
        let own_shares = per_step[i].shares.clone();
        let targets: BTreeSet<&String> = own_shares
            .iter()
            .filter(|(_, _, joins)| !joins)
            .map(|(t, _, _)| t)
            .collect();
        let bound_here: BTreeSet<String> = per_step[i].binds.keys().cloned().collect();
        // Names bound otherwise (`def`, `class`, `import`) first: what the assignments
        // make from them (`acc = Acc()`) shares with them. `x += y` rebinds `x` to the
        // same object when it is mutable: it keeps sharing.
        let kept: BTreeSet<&String> = per_step[i].changes.keys().collect();
        for name in bound_here
            .iter()
            .filter(|n| !targets.contains(n) && !kept.contains(n))
        {
            sharing.bind(name, Vec::new());
        }
        for (target, sources, joins) in &own_shares {
            let sources = sources.iter().filter(|s| !not_value(s)).collect();
            if *joins {
                sharing.join(target, sources);
            } else {
                sharing.bind(target, sources);
            }
        }
        let changed: Vec<(String, Location)> = per_step[i]
            .changes
            .iter()
            .map(|(n, at)| (n.clone(), *at))
            .collect();
        for (name, at) in changed {
            let mut affected = sharing.sharing_with(&name);
            if !bound_here.contains(&name) {
                affected.extend(start.clone().sharing_with(&name));
            }
            for other in affected {
                if other == name || per_step[i].changes.contains_key(&other) || not_value(&other) {
                    continue;
                }
                if !start.current.contains_key(&other) && !bound_here.contains(&other) {
                    continue;
                }
                per_step[i].changes.insert(other.clone(), at);
                if !bound_here.contains(&other) {
                    per_step[i].reads.insert(other.clone());
                    if !per_step[i].needs.iter().any(|n| n.name == other) {
                        per_step[i].needs.push(Need { name: other, at });
                    }
                }
            }
        }
        per_step[i].sharing_at_end = sharing.roots();
    }
}

/// Which values may share objects: every binding of a name is a value of its own,
/// joined with the values of the names it was computed from (`b = a`).
#[derive(Clone, Default)]
struct Sharing {
    parent: Vec<usize>,
    /// The value each name holds now.
    current: HashMap<String, usize>,
}

impl Sharing {
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn bind(&mut self, name: &str, sources: Vec<&String>) {
        let node = self.parent.len();
        self.parent.push(node);
        for src in sources {
            if let Some(&s) = self.current.get(src.as_str()) {
                let (a, b) = (self.find(node), self.find(s));
                if a != b {
                    self.parent[a] = b;
                }
            }
        }
        self.current.insert(name.to_owned(), node);
    }

    /// `name`'s value now also holds the objects of `sources` (it keeps what it held).
    fn join(&mut self, name: &str, sources: Vec<&String>) {
        let Some(&node) = self.current.get(name) else {
            return self.bind(name, sources);
        };
        for src in sources {
            if let Some(&s) = self.current.get(src.as_str()) {
                let (a, b) = (self.find(node), self.find(s));
                if a != b {
                    self.parent[a] = b;
                }
            }
        }
    }

    /// The names whose values may share objects with `name`'s (itself included).
    fn sharing_with(&mut self, name: &str) -> Vec<String> {
        let Some(&node) = self.current.get(name) else {
            return Vec::new();
        };
        let root = self.find(node);
        let names: Vec<(String, usize)> =
            self.current.iter().map(|(n, &v)| (n.clone(), v)).collect();
        names
            .into_iter()
            .filter(|(_, v)| self.find(*v) == root)
            .map(|(n, _)| n)
            .collect()
    }

    /// Each name's value, by the set it belongs to.
    fn roots(&mut self) -> HashMap<String, usize> {
        let names: Vec<(String, usize)> =
            self.current.iter().map(|(n, &v)| (n.clone(), v)).collect();
        names.into_iter().map(|(n, v)| (n, self.find(v))).collect()
    }
}

struct Context<'a> {
    s: &'a NotebookStructure,
    per_step: &'a [StepFacts],
    position: &'a [usize],
    prelude_facts: &'a BlockFacts,
    param_names: BTreeSet<&'a str>,
    skipped_binds: Vec<(usize, BlockFacts)>,
}

impl Context<'_> {
    fn is_prelude_name(&self, n: &str) -> bool {
        self.prelude_facts.first_bind.contains_key(n)
            || self.prelude_facts.functions.contains_key(n)
    }

    /// Whether step `t` binds or changes `n` (only binding counts for parameters and
    /// builtins, which no reader can change).
    fn writes(&self, t: usize, n: &str) -> bool {
        let sf = &self.per_step[t];
        let immutable = self.param_names.contains(n) || analysis::is_builtin(n);
        sf.binds.contains_key(n) || (!immutable && sf.changes.contains_key(n))
    }

    /// The step that provides `n` to step `i`: the last one before it in the notebook
    /// that binds or changes it (or, among its ancestors, reads it).
    fn provider(&self, dag: &Dag, i: usize, n: &str) -> Option<usize> {
        let prelude = self.is_prelude_name(n);
        let immutable = self.param_names.contains(n) || analysis::is_builtin(n);
        (0..self.per_step.len())
            .filter(|&t| t != i && self.position[t] < self.position[i])
            .filter(|&t| {
                self.writes(t, n)
                    || (!prelude
                        && !immutable
                        && dag.is_ancestor(t, i)
                        && self.per_step[t].reads.contains(n))
            })
            .max_by_key(|&t| self.position[t])
    }

    fn why(&self, t: usize, n: &str) -> String {
        let sf = &self.per_step[t];
        match (sf.binds.get(n), sf.changes.get(n)) {
            (_, Some(at)) | (Some(at), None) => {
                let verb = if sf.changes.contains_key(n) {
                    "changes"
                } else {
                    "binds"
                };
                format!(
                    "reads `{n}`, which `{}` {verb} earlier in the notebook (cell {}, line {})",
                    self.s.steps[t].name, at.cell, at.line
                )
            }
            (None, None) => format!("reads `{n}` after `{}` does", self.s.steps[t].name),
        }
    }

    fn providers(
        &self,
        dag: &mut Dag,
        reporter: &mut Reporter,
        diags: &mut Diagnostics,
    ) -> Resolved {
        let n = self.s.steps.len();
        let mut r = Resolved {
            inputs: vec![BTreeMap::new(); n],
            outputs: vec![BTreeSet::new(); n],
            used_params: vec![BTreeSet::new(); n],
            orderings: vec![Vec::new(); n],
            files_from: vec![BTreeSet::new(); n],
        };
        // The shared cells run at the start of every step and read the parameters'
        // values as the notebook set them (`BASE = n * 10`): every step assigns those.
        let prelude_params: Vec<String> = self
            .prelude_facts
            .first_read
            .iter()
            .filter(|(name, occ)| {
                self.param_names.contains(name.as_str())
                    && !self
                        .prelude_facts
                        .first_bind
                        .get(*name)
                        .is_some_and(|b| b.seq < occ.seq)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for used in &mut r.used_params {
            used.extend(prelude_params.iter().cloned());
        }
        self.prelude_undefined(reporter, diags);
        let order: Vec<usize> = dag.order().to_vec();
        for &i in &order {
            let step_name = &self.s.steps[i].name;
            let dynamic = !self.per_step[i].facts.dynamic.is_empty();
            let mut needs: Vec<&Need> = self.per_step[i].needs.iter().collect();
            needs.sort_by_key(|n| n.at);
            for need in needs {
                let name = need.name.as_str();
                let Some(provider) = self.provider(dag, i, name) else {
                    if self.is_prelude_name(name) {
                        continue;
                    }
                    if self.param_names.contains(name) {
                        r.used_params[i].insert(name.to_string());
                        continue;
                    }
                    if analysis::is_builtin(name) {
                        continue;
                    }
                    let d = undefined_name(
                        self.s,
                        self.per_step,
                        &self.skipped_binds,
                        i,
                        name,
                        need.at,
                        dynamic,
                    );
                    reporter.report(diags, d);
                    continue;
                };
                if self.per_step[provider].facts.deleted.contains(name) {
                    reporter.report(
                        diags,
                        Diagnostic::error(format!(
                            "step `{step_name}` reads `{name}`, but step `{}` deletes it with `del`",
                            self.s.steps[provider].name
                        ))
                        .at(need.at.cell, need.at.line),
                    );
                    continue;
                }
                if let Some((kind, at)) = self.per_step[provider].unsaveable.get(name) {
                    reporter.report(
                        diags,
                        Diagnostic::error(format!(
                            "step `{step_name}` reads `{name}`, {} that step `{}` creates (cell {}, line {}); it cannot be handed from one step's process to another's",
                            kind.describe(),
                            self.s.steps[provider].name,
                            at.cell,
                            at.line
                        ))
                        .at(need.at.cell, need.at.line)
                        .with_hint(kind.fix()),
                    );
                    continue;
                }
                self.warn_parallel_writers(dag, i, name, need.at, reporter, diags);
                if !dag.is_ancestor(provider, i) && !self.has_source_above(dag, i, name) {
                    // Nothing the step's `prev:` tags lead to defines the name: as in
                    // Kale, the DAG is the user's to state (kale orders steps itself only
                    // to keep a value that the DAG provides as the notebook changed it).
                    reporter.report(diags, self.missing_prev(provider, i, name, need.at));
                    continue;
                }
                if !self.order_after(dag, &mut r, provider, i, || self.why(provider, name)) {
                    reporter.report(diags, self.cycle(provider, i, name, need.at));
                    continue;
                }
                r.inputs[i].insert(name.to_string(), self.s.steps[provider].name.clone());
                r.outputs[provider].insert(name.to_string());
            }
        }
        r
    }

    /// Makes `i` run after `provider`, recording why when no `prev:` edge said so.
    /// False when the notebook's order contradicts the `prev:` edges.
    fn order_after(
        &self,
        dag: &mut Dag,
        r: &mut Resolved,
        provider: usize,
        i: usize,
        why: impl FnOnce() -> String,
    ) -> bool {
        if dag.is_ancestor(provider, i) {
            return true;
        }
        if !dag.add_edge(provider, i) {
            return false;
        }
        r.orderings[i].push((provider, why()));
        true
    }

    /// The shared cells run at the start of every step, before its inputs are loaded: a
    /// name they read at their top level that they do not define (and that is not a
    /// parameter) is undefined in every step. Once per cell.
    fn prelude_undefined(&self, reporter: &mut Reporter, diags: &mut Diagnostics) {
        let facts = self.prelude_facts;
        let mut by_cell: BTreeMap<usize, (u32, BTreeSet<&str>)> = BTreeMap::new();
        for (name, occ) in &facts.first_read {
            let bound_before = facts.first_bind.get(name).is_some_and(|b| b.seq < occ.seq);
            if bound_before
                || self.param_names.contains(name.as_str())
                || analysis::is_builtin(name)
                || !facts.dynamic.is_empty()
            {
                continue;
            }
            let entry = by_cell
                .entry(occ.at.cell)
                .or_insert((occ.at.line, BTreeSet::new()));
            entry.0 = entry.0.min(occ.at.line);
            entry.1.insert(name.as_str());
        }
        for (cell, (line, names)) in by_cell {
            let kind = if self.s.imports.contains(&cell) {
                "imports"
            } else {
                "functions"
            };
            let names = listing(names.into_iter());
            reporter.report(
                diags,
                Diagnostic::error(format!(
                    "the `{kind}` cell reads {names} at its top level without defining them: that cell runs at the start of every step, once, before the step's own cells and inputs, so every step would fail with NameError"
                ))
                .at(cell, line)
                .with_hint(format!(
                    "keep imports, function and class definitions and constants in the `{kind}` cell; move the statements that use {names} (a loop, a call) into a step's cell"
                )),
            );
        }
    }

    /// Parallel branches (steps among `i`'s ancestors neither of which runs after the
    /// other) that both assign a name `i` reads: `i` gets the later one's, as the
    /// notebook would, but the DAG says they are independent, which is worth a word.
    fn warn_parallel_writers(
        &self,
        dag: &Dag,
        i: usize,
        name: &str,
        at: Location,
        reporter: &mut Reporter,
        diags: &mut Diagnostics,
    ) {
        let writers: Vec<usize> = dag
            .ancestors_of(i)
            .filter(|&a| self.writes(a, name))
            .collect();
        let parallel = maximal_steps(dag, &writers);
        if parallel.len() < 2
            || !parallel
                .iter()
                .any(|&t| self.per_step[t].binds.contains_key(name))
        {
            return;
        }
        let last = parallel
            .iter()
            .copied()
            .max_by_key(|&t| self.position[t])
            .unwrap_or(i);
        let all = if parallel.len() == 2 { "both" } else { "all" };
        reporter.report(
            diags,
            Diagnostic::warning(format!(
                "step `{}` reads `{name}`, which parallel steps {} {all} touch; using the value from `{}` (the latest in the notebook)",
                self.s.steps[i].name,
                listing(parallel.iter().map(|&t| self.s.steps[t].name.as_str())),
                self.s.steps[last].name
            ))
            .at(at.cell, at.line)
            .with_hint(
                "rename the variable in one branch, or chain the branches with `prev:` so the order is explicit",
            ),
        );
    }

    /// Whether the name reaches step `i` without kale's help: the shared cells or a
    /// pipeline parameter define it, or an ancestor binds or changes it.
    fn has_source_above(&self, dag: &Dag, i: usize, name: &str) -> bool {
        self.is_prelude_name(name)
            || self.param_names.contains(name)
            || analysis::is_builtin(name)
            || dag.ancestors_of(i).any(|a| self.writes(a, name))
    }

    fn missing_prev(&self, provider: usize, i: usize, name: &str, at: Location) -> Diagnostic {
        let (step, other) = (&self.s.steps[i], &self.s.steps[provider]);
        let def_cell = self.per_step[provider]
            .binds
            .get(name)
            .or_else(|| self.per_step[provider].changes.get(name))
            .map(|o| o.cell)
            .unwrap_or(other.first_cell());
        Diagnostic::error(format!(
            "step `{}` reads `{name}`, which step `{}` defines (cell {def_cell}), but `{}` is not an ancestor of `{}`",
            step.name, other.name, other.name, step.name
        ))
        .at(at.cell, at.line)
        .with_hint(format!(
            "add the tag `prev:{}` to cell {}, the first cell of step `{}`",
            other.name,
            step.first_cell(),
            step.name
        ))
    }

    fn cycle(&self, provider: usize, i: usize, name: &str, at: Location) -> Diagnostic {
        Diagnostic::error(format!(
            "step `{}` reads `{name}`, which step `{}` changes earlier in the notebook, but `{}` runs after `{}` (a `prev:` tag orders them the other way)",
            self.s.steps[i].name,
            self.s.steps[provider].name,
            self.s.steps[provider].name,
            self.s.steps[i].name
        ))
        .at(at.cell, at.line)
        .with_hint("move the cells so that the notebook's order and the `prev:` tags agree")
    }

    /// Process-wide state: who changes it, who receives it.
    fn state(
        &self,
        dag: &mut Dag,
        r: &mut Resolved,
        reporter: &mut Reporter,
        diags: &mut Diagnostics,
    ) {
        let n = self.s.steps.len();
        // Where a global random stream is first seeded: the prelude (every step), or a step.
        let prelude_seed = self
            .prelude_facts
            .state
            .iter()
            .find(|u| u.kind == StateKind::RandomSeed);
        let seeded_at: Option<(usize, Location)> = match prelude_seed {
            Some(u) => Some((0, u.at)),
            None => (0..n)
                .filter_map(|t| {
                    self.per_step[t]
                        .state
                        .iter()
                        .find(|u| u.kind == StateKind::RandomSeed)
                        .map(|u| (self.position[t], u.at))
                })
                .min_by_key(|(p, _)| *p),
        };
        for t in 0..n {
            for u in self.per_step[t].state.iter().filter(|u| !u.kind.carried()) {
                reporter.report(
                    diags,
                    Diagnostic::warning(format!(
                        "step `{}` changes global state that kale does not carry to later steps (`{}`): they start without it, unlike the notebook's later cells",
                        self.s.steps[t].name, u.what
                    ))
                    .at(u.at.cell, u.at.line)
                    .with_hint("move it to the imports or functions cell, which every step runs first, or keep what later steps need in a variable"),
                );
            }
        }
        let changes_state = |t: usize| -> Option<String> {
            let carried: Vec<&StateUse> = self.per_step[t]
                .state
                .iter()
                .filter(|u| u.kind.carried() && u.kind != StateKind::RandomSeed)
                .collect();
            if let Some(u) = carried.first() {
                return Some(format!(
                    "runs after `{}`, which changes {} (cell {}, line {}) earlier in the notebook",
                    self.s.steps[t].name,
                    u.kind.describe(),
                    u.at.cell,
                    u.at.line
                ));
            }
            let (p, at) = seeded_at?;
            (self.position[t] >= p).then(|| {
                format!(
                    "continues the random stream seeded at cell {}, line {} from `{}`, as the notebook does",
                    at.cell, at.line, self.s.steps[t].name
                )
            })
        };
        let order: Vec<usize> = dag.order().to_vec();
        for &i in &order {
            let provider = (0..n)
                .filter(|&t| t != i && self.position[t] < self.position[i])
                .filter(|&t| changes_state(t).is_some())
                .max_by_key(|&t| self.position[t]);
            let Some(provider) = provider else { continue };
            let why = changes_state(provider).unwrap_or_default();
            if !self.order_after(dag, r, provider, i, || why) {
                continue;
            }
            r.inputs[i].insert(STATE_VARIABLE.into(), self.s.steps[provider].name.clone());
            r.outputs[provider].insert(STATE_VARIABLE.into());
        }
    }

    /// Files: a step that reads what an earlier step writes runs after it and, on
    /// Kubeflow, receives that step's files; a step that writes what an earlier one reads
    /// or writes runs after it too (the notebook ran them in that order).
    fn files(
        &self,
        dag: &mut Dag,
        r: &mut Resolved,
        files: &[StepFiles],
        reporter: &mut Reporter,
        diags: &mut Diagnostics,
    ) {
        let order: Vec<usize> = dag.order().to_vec();
        for &i in &order {
            let earlier: Vec<usize> = (0..files.len())
                .filter(|&t| t != i && self.position[t] < self.position[i])
                .collect();
            for t in earlier {
                let read_after_write = files[t].writes.iter().find_map(|w| {
                    files[i]
                        .reads
                        .iter()
                        .find(|rd| analysis::may_meet(w.path.as_deref(), rd.path.as_deref()))
                        .map(|rd| (w, rd))
                });
                let why = if let Some((w, rd)) = read_after_write {
                    r.files_from[i].insert(t);
                    let what = rd.path.clone().or_else(|| w.path.clone());
                    Some(match what {
                        Some(p) => format!(
                            "reads `{p}` (cell {}, line {}), which `{}` writes earlier in the notebook (cell {}, line {})",
                            rd.at.cell, rd.at.line, self.s.steps[t].name, w.at.cell, w.at.line
                        ),
                        None => format!(
                            "reads a file (`{}`, cell {}, line {}) that `{}` may write earlier in the notebook (`{}`, cell {}, line {})",
                            rd.call,
                            rd.at.cell,
                            rd.at.line,
                            self.s.steps[t].name,
                            w.call,
                            w.at.cell,
                            w.at.line
                        ),
                    })
                } else {
                    let earlier_paths = files[t]
                        .reads
                        .iter()
                        .map(|x| (x.path.as_deref(), x.at))
                        .chain(files[t].writes.iter().map(|x| (x.path.as_deref(), x.at)));
                    let mut found = None;
                    for (p, at) in earlier_paths {
                        if let Some(w) = files[i]
                            .writes
                            .iter()
                            .find(|w| analysis::may_meet(w.path.as_deref(), p))
                        {
                            found = Some(format!(
                                "writes `{}` (cell {}, line {}), which `{}` uses earlier in the notebook (cell {}, line {})",
                                w.path.as_deref().or(p).unwrap_or("a file"),
                                w.at.cell,
                                w.at.line,
                                self.s.steps[t].name,
                                at.cell,
                                at.line
                            ));
                            break;
                        }
                    }
                    found
                };
                let Some(why) = why else { continue };
                if !self.order_after(dag, r, t, i, || why) {
                    reporter.report(
                        diags,
                        Diagnostic::warning(format!(
                            "steps `{}` and `{}` use the same file, and a `prev:` tag runs them in the other order than the notebook",
                            self.s.steps[t].name, self.s.steps[i].name
                        ))
                        .in_cell(self.s.steps[i].first_cell()),
                    );
                }
            }
        }
    }

    fn metrics(
        &self,
        dag: &mut Dag,
        metric_names: &[(String, usize, u32)],
        r: &mut Resolved,
        reporter: &mut Reporter,
        diags: &mut Diagnostics,
    ) -> Vec<(Metric, usize)> {
        let n = self.s.steps.len();
        let mut metrics = Vec::new();
        for (m, cell, line) in metric_names {
            // The value at the end of the notebook: the last step that binds or changes it.
            let mut candidates: Vec<usize> = (0..n).filter(|&t| self.writes(t, m)).collect();
            if candidates.is_empty() {
                candidates = (0..n)
                    .filter(|&t| self.per_step[t].reads.contains(m))
                    .collect();
            }
            if candidates.is_empty() && self.param_names.contains(m.as_str()) {
                // A parameter reported as a metric (Kale's own test notebook does this): the
                // steps that use it have its value; if none does, the last step gets it.
                candidates = (0..n).filter(|&st| r.used_params[st].contains(m)).collect();
                if candidates.is_empty() {
                    let last = *dag.order().last().expect("the pipeline has steps");
                    r.used_params[last].insert(m.clone());
                    candidates.push(last);
                }
            }
            let parallel = maximal_steps(dag, &candidates);
            if parallel.len() > 1 {
                let names = listing(parallel.iter().map(|&x| self.s.steps[x].name.as_str()));
                let last = parallel.iter().copied().max_by_key(|&t| self.position[t]);
                reporter.report(
                    diags,
                    Diagnostic::warning(format!(
                        "metric `{m}` is set by parallel steps {names}; reporting the value from `{}` (the latest in the notebook)",
                        last.map(|t| self.s.steps[t].name.as_str()).unwrap_or_default()
                    ))
                    .at(*cell, *line)
                    .with_hint(
                        "report each branch's value under its own name, or chain the steps with `prev:` so one value is the last",
                    ),
                );
            }
            let Some(provider) = candidates.into_iter().max_by_key(|&t| self.position[t]) else {
                reporter.report(
                    diags,
                    Diagnostic::error(format!("metric `{m}` is never set by any step"))
                        .at(*cell, *line)
                        .with_hint(format!(
                            "assign `{m}` in a step, or remove the `print({m})` line"
                        )),
                );
                continue;
            };
            r.outputs[provider].insert(m.clone());
            metrics.push((
                Metric {
                    name: m.clone(),
                    step: self.s.steps[provider].name.clone(),
                    cell: *cell,
                    line: *line,
                },
                provider,
            ));
        }
        metrics
    }

    fn steps(&self, dag: &Dag, mut r: Resolved, metrics: &[(Metric, usize)]) -> Vec<Step> {
        dag.order()
            .iter()
            .map(|&i| {
                let decl = &self.s.steps[i];
                let mut depends_on: Vec<String> =
                    decl.parents.iter().map(|(p, _)| p.clone()).collect();
                let ordered_after: Vec<Ordering> = std::mem::take(&mut r.orderings[i])
                    .into_iter()
                    .map(|(p, reason)| Ordering {
                        after: self.s.steps[p].name.clone(),
                        reason,
                    })
                    .collect();
                for o in &ordered_after {
                    if !depends_on.contains(&o.after) {
                        depends_on.push(o.after.clone());
                    }
                }
                let outputs = std::mem::take(&mut r.outputs[i]);
                let files_from: Vec<String> = r.files_from[i]
                    .iter()
                    .map(|&t| self.s.steps[t].name.clone())
                    .collect();
                Step {
                    name: decl.name.clone(),
                    cells: decl.cells.clone(),
                    depends_on,
                    ordered_after,
                    inputs: std::mem::take(&mut r.inputs[i]),
                    share_groups: self.share_groups(i, &outputs),
                    outputs,
                    parameters: std::mem::take(&mut r.used_params[i]),
                    metrics: metrics
                        .iter()
                        .filter(|(_, p)| *p == i)
                        .map(|(m, _)| m.name.clone())
                        .collect(),
                    config: decl.config.clone(),
                    ipython_at: self.per_step[i]
                        .facts
                        .ipython
                        .first()
                        .map(|u| (u.at.cell, u.at.line)),
                    unknown_state: self.per_step[i].state.iter().any(|u| !u.kind.carried()),
                    files_from,
                }
            })
            .collect()
    }

    /// Groups of a step's outputs that may share objects (the runtime checks and saves
    /// each group that really does together, so their sharing survives).
    fn share_groups(&self, i: usize, outputs: &BTreeSet<String>) -> Vec<Vec<String>> {
        let roots = &self.per_step[i].sharing_at_end;
        let mut by_root: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for o in outputs {
            if o == STATE_VARIABLE {
                continue;
            }
            if let Some(&r) = roots.get(o) {
                by_root.entry(r).or_default().push(o.clone());
            }
        }
        by_root.into_values().filter(|g| g.len() > 1).collect()
    }
}

/// Among `steps`, the ones no other of them runs after (in the DAG).
fn maximal_steps(dag: &Dag, steps: &[usize]) -> Vec<usize> {
    steps
        .iter()
        .copied()
        .filter(|&c| !steps.iter().any(|&d| d != c && dag.is_ancestor(c, d)))
        .collect()
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
        .filter(|&t| t != step && per_step[t].binds.contains_key(name))
        .min_by_key(|&t| (t > step, t));
    let d = if let Some(t) = elsewhere {
        let other = &s.steps[t];
        let def_cell = per_step[t]
            .binds
            .get(name)
            .map(|o| o.cell)
            .unwrap_or(other.first_cell());
        Diagnostic::error(format!(
            "step `{step_name}` reads `{name}` before it is defined: step `{}` defines it later, in cell {def_cell}",
            other.name
        ))
        .with_hint("move the definition above, into this step or one of its ancestors")
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
