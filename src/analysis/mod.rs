//! Static analysis of notebook Python: which global names a block of cells
//! reads, binds and deletes, what its top-level functions depend on, and the
//! two special cells (`pipeline-parameters`, `pipeline-metrics`).
//!
//! The analysis is deliberately flow-insensitive inside a block (a binding
//! inside an `if` counts) but keeps evaluation order through `seq`, so the
//! caller can tell `x = x + 1` (needs `x` from an earlier step) from
//! `x = 1; y = x` (self-sufficient).
//!
//! It never fails: syntax errors are collected as [`SyntaxIssue`]s and the
//! parser's error recovery still lets us see most of the names.

mod builtins;
mod effects;
mod file_reads;
mod file_writes;
mod imports;
mod ipython;
mod scope;
mod source;
mod special_cells;
mod walker;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use builtins::is_builtin;
pub use effects::{CallFact, Share, StateKind, StateUse, Unsaveable, UnsaveableKind};
pub use file_reads::{FileReadCall, file_reads};
pub use file_writes::{FileWriteCall, file_writes, may_meet};
pub use imports::imported_modules;
pub use special_cells::{ParamDecl, PipelineValue, parse_metrics, parse_parameters};

/// One notebook cell's code.
#[derive(Clone, Copy, Debug)]
pub struct CellSource<'a> {
    /// Notebook cell number, 1-based; only used in locations.
    pub number: usize,
    pub source: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Location {
    pub cell: usize,
    /// 1-based line within the cell.
    pub line: u32,
    /// 1-based column, counted in Unicode scalar values (not bytes).
    pub col: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Occurrence {
    /// Evaluation order across the whole block: comparable between
    /// `first_read` and `first_bind`.
    pub seq: u32,
    pub at: Location,
}

/// Facts about a block of cells executed in order in one module namespace.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BlockFacts {
    /// First module-level read of each global name, in evaluation order.
    /// Builtins are included: only the caller knows whether an earlier block
    /// shadowed them.
    pub first_read: BTreeMap<String, Occurrence>,
    /// First module-level binding of each global name.
    pub first_bind: BTreeMap<String, Occurrence>,
    /// Last module-level binding of each global name.
    pub last_bind: BTreeMap<String, Occurrence>,
    /// `first_read` and `first_bind` within the block's own cells (see [`analyze_step`]).
    pub own_first_read: BTreeMap<String, Occurrence>,
    pub own_first_bind: BTreeMap<String, Occurrence>,
    /// Names deleted at module level (including `except ... as e` names,
    /// which Python deletes at the end of the handler) and not rebound
    /// afterwards.
    pub deleted: BTreeSet<String>,
    /// Top-level `def`s, `name = lambda ...`, and top-level classes (whose
    /// facts are the union of their methods'); last definition wins.
    pub functions: BTreeMap<String, FunctionFacts>,
    pub classes: BTreeSet<String>,
    pub dynamic: Vec<DynamicUse>,
    pub ipython: Vec<IpythonUse>,
    pub syntax_errors: Vec<SyntaxIssue>,
    /// Module-level names whose object may be changed in place (`x.append(1)`,
    /// `x[0] = 1`, `x += [1]`, `model.fit(X)`), every occurrence. Calls of the
    /// block's own or other steps' functions are in `calls`, for the caller to apply.
    pub mutated: BTreeMap<String, Vec<Occurrence>>,
    /// Module-level bindings whose value may hold objects of other names (`b = a`).
    pub shares: Vec<Share>,
    /// Module-level calls of plain names, with the names passed to them.
    pub calls: Vec<CallFact>,
    /// Names bound by imports (anywhere in the block) → the module or object imported
    /// (`np` → `numpy`, `set_config` → `sklearn.set_config`).
    pub imports: BTreeMap<String, String>,
    /// Module-level changes of process-wide state (`os.environ[...] = ...`, `np.random.seed(0)`).
    pub state: Vec<StateUse>,
    /// Module-level names bound to values that cannot leave the process (`g = (x for x in y)`).
    pub unsaveable: Vec<Unsaveable>,
    /// Calls of methods of a module's attributes (`helper.calls.append(1)`), which change
    /// that module's state when the attribute is data, with the module's imported name.
    pub module_calls: Vec<(String, StateUse)>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FunctionFacts {
    /// Free names of the body (nested scopes included) that resolve to the
    /// module. Builtins are left out unless the block binds them at module
    /// level. Calls to other globals show up here as plain reads.
    pub global_reads: BTreeSet<String>,
    /// Names declared `global` and assigned or deleted in the body.
    pub global_writes: BTreeSet<String>,
    /// Globals the body may change in place (`seen.append(v)`, `CACHE[k] = v`).
    pub global_mutates: BTreeSet<String>,
    /// Positional parameter names, in order (`self` included for methods).
    pub params: Vec<String>,
    /// Parameters the body may change in place.
    pub mutated_params: BTreeSet<String>,
    /// Process-wide state the body changes when called.
    pub state: Vec<StateUse>,
    /// The body yields: calling it makes a generator.
    pub is_generator: bool,
    /// Calls of plain names in the body, with what each argument may be (the
    /// definition's parameters, globals): resolved by the step that calls it.
    pub calls: Vec<InnerCall>,
    pub defined_at: Location,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DynamicUse {
    pub kind: DynamicKind,
    pub at: Location,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DynamicKind {
    /// `from module import *`; `module` keeps relative-import dots.
    WildcardImport {
        module: String,
    },
    Exec,
    Eval,
    Globals,
    Locals,
    /// `vars()` without arguments (`vars(obj)` does not touch the namespace).
    Vars,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IpythonUse {
    pub kind: IpythonKind,
    /// Magic name for magics (`"time"`), the command word for shell escapes
    /// (`"pip"`), the callee for autocalls, `""` for help.
    pub name: String,
    /// The escape's source text. For a cell magic, the whole cell from `%%`.
    pub text: String,
    pub at: Location,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum IpythonKind {
    LineMagic,
    CellMagic,
    /// `!cmd`
    Shell,
    /// `!!cmd`
    ShellCapture,
    /// `x?`, `?x`, `x??`, `??x`
    Help,
    /// IPython autocall escapes `/f a`, `,f a b`, `;f a b` (calls `f`).
    AutoCall,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SyntaxIssue {
    pub message: String,
    pub at: Location,
}

impl FunctionFacts {
    pub(crate) fn new(defined_at: Location, params: Vec<String>) -> Self {
        FunctionFacts {
            global_reads: BTreeSet::new(),
            global_writes: BTreeSet::new(),
            global_mutates: BTreeSet::new(),
            params,
            mutated_params: BTreeSet::new(),
            state: Vec::new(),
            is_generator: false,
            calls: Vec::new(),
            defined_at,
        }
    }
}

/// A call of a plain name inside a definition (`helper(rows, CACHE)`): what each argument
/// may be, as parameter or global names of the definition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InnerCall {
    pub callee: String,
    pub args: Vec<Vec<String>>,
    pub keywords: Vec<(String, Vec<String>)>,
}

/// The parser's message for a syntax error, in Python's terms: a malformed number
/// (`0x`, `1e`) comes out of the lexer as Rust's own error value, which means nothing
/// to a notebook's author.
pub(crate) fn syntax_message(e: &ruff_python_parser::ParseError, src: &str) -> String {
    let message = e.error.to_string();
    if message.contains("ParseIntError")
        || message.contains("ParseFloatError")
        || message.contains("{ kind:")
    {
        let token = src
            .get(e.location.start().to_usize()..e.location.end().to_usize())
            .unwrap_or_default()
            .trim();
        return if token.is_empty() {
            "invalid number literal".into()
        } else {
            format!("invalid number literal `{token}`")
        };
    }
    message
}

/// Analyses cells executed in order in one module namespace.
pub fn analyze_block(cells: &[CellSource]) -> BlockFacts {
    analyze_with_own(cells, 0)
}

/// Analyses a step: the shared cells every step runs first (`prelude`), then its own;
/// `own_first_read`/`own_first_bind` cover the latter.
pub fn analyze_step(prelude: &[CellSource], own: &[CellSource]) -> BlockFacts {
    let mut cells = prelude.to_vec();
    cells.extend_from_slice(own);
    analyze_with_own(&cells, prelude.len())
}

fn analyze_with_own(cells: &[CellSource], own_from: usize) -> BlockFacts {
    source::with_big_stack(|| walker::analyze(cells, own_from)).unwrap_or_else(|| BlockFacts {
        syntax_errors: vec![internal_error(cells.first())],
        ..BlockFacts::default()
    })
}

fn internal_error(cell: Option<&CellSource>) -> SyntaxIssue {
    SyntaxIssue {
        message: "internal error while analysing this code".to_owned(),
        at: Location {
            cell: cell.map_or(0, |c| c.number),
            line: 1,
            col: 1,
        },
    }
}
