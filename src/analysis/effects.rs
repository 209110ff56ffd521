//! What code does besides reading and binding names: the objects it changes in place
//! (`x.append(1)`, `x[0] = 1`, `model.fit(X)`), the names whose values may share objects
//! (`b = a`, `pair = (a, c)`), and the process-wide state it changes (environment,
//! working directory, library configuration, random streams).
//!
//! The notebook run top to bottom is what a pipeline must compute; these facts let
//! `pipeline::dataflow` tell which step last changed a value, order steps the notebook
//! ordered, and carry interpreter state from step to step.
//!
//! Everything here over-approximates where Python leaves it open: an unknown method
//! changes its receiver, an unknown callable changes its arguments. A false "changes"
//! costs a saved value or an ordering edge; a missed one would cost a wrong result.

use std::collections::BTreeSet;

use ruff_python_ast::{self as ast, Expr};

use super::Location;

/// Process-wide state a statement changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum StateKind {
    Environment,
    WorkingDirectory,
    /// `sys.path`, where later imports look.
    ImportPath,
    Sklearn,
    Pandas,
    Numpy,
    Warnings,
    Decimal,
    Matplotlib,
    /// A global random stream is seeded (Python's `random`, numpy's, torch's).
    RandomSeed,
    /// A library's global setting kale does not carry between steps.
    Unknown,
}

impl StateKind {
    /// Whether kale carries this state from a step to the next.
    pub fn carried(self) -> bool {
        self != StateKind::Unknown
    }

    pub fn describe(self) -> &'static str {
        match self {
            StateKind::Environment => "environment variables",
            StateKind::WorkingDirectory => "the working directory",
            StateKind::ImportPath => "`sys.path`",
            StateKind::Sklearn => "scikit-learn's configuration",
            StateKind::Pandas => "pandas options",
            StateKind::Numpy => "numpy's error and print options",
            StateKind::Warnings => "warning filters",
            StateKind::Decimal => "the decimal context",
            StateKind::Matplotlib => "matplotlib's rcParams",
            StateKind::RandomSeed => "a global random stream",
            StateKind::Unknown => "a library's global setting",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StateUse {
    pub kind: StateKind,
    /// The call or target as written, resolved through imports (`torch.set_num_threads`).
    pub what: String,
    pub at: Location,
}

/// `target` was bound to a value that may hold (or be) objects of `sources`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Share {
    pub target: String,
    pub sources: BTreeSet<String>,
    pub at: Location,
    /// The target keeps what it held and now also holds the sources' objects
    /// (`h.data = xs`, `d["k"] = xs`, `models.append(m)`), instead of being rebound.
    pub joins: bool,
}

/// A call of a plain name at module level (`f(a, b)`), kept so the data-flow analysis
/// can apply what `f` does to its arguments once it knows what `f` is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CallFact {
    pub callee: String,
    /// The root name of each positional argument (`a` for `a`, `a.b`, `a[0]`).
    pub args: Vec<Option<String>>,
    pub keywords: Vec<(String, String)>,
    /// The name the call's result is bound to (`g = f(a)`), if any.
    pub bound_to: Option<String>,
    pub at: Location,
}

/// A value that cannot cross a process boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum UnsaveableKind {
    Generator,
    OpenFile,
    Thread,
    Lock,
    Socket,
}

impl UnsaveableKind {
    pub fn describe(self) -> &'static str {
        match self {
            UnsaveableKind::Generator => "a generator",
            UnsaveableKind::OpenFile => "an open file",
            UnsaveableKind::Thread => "a thread",
            UnsaveableKind::Lock => "a lock",
            UnsaveableKind::Socket => "a network socket",
        }
    }

    pub fn fix(self) -> &'static str {
        match self {
            UnsaveableKind::Generator => {
                "make it a list where it is created (`list(...)`), or create the generator in the step that uses it"
            }
            UnsaveableKind::OpenFile => {
                "pass the file's path (or its contents) instead and open it in the step that uses it"
            }
            UnsaveableKind::Thread | UnsaveableKind::Lock | UnsaveableKind::Socket => {
                "create it in the step that uses it"
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsaveable {
    pub name: String,
    pub kind: UnsaveableKind,
    pub at: Location,
}

/// Methods that leave their receiver as it was (and return a new object or a plain
/// value). Anything else may change the receiver: `append`, `fit`, `update`, ...
const PURE_METHODS: &[&str] = &[
    "abs",
    "add_prefix",
    "add_suffix",
    "agg",
    "aggregate",
    "all",
    "any",
    "apply",
    "applymap",
    "argmax",
    "argmin",
    "argsort",
    "as_integer_ratio",
    "asfreq",
    "astype",
    "between",
    "bfill",
    "bit_length",
    "capitalize",
    "casefold",
    "center",
    "clip",
    "conjugate",
    "copy",
    "corr",
    "count",
    "cov",
    "cpu",
    "cummax",
    "cummin",
    "cumprod",
    "cumsum",
    "decision_function",
    "decode",
    "describe",
    "detach",
    "diff",
    "dim",
    "div",
    "dot",
    "drop",
    "drop_duplicates",
    "dropna",
    "duplicated",
    "encode",
    "endswith",
    "eq",
    "equals",
    "expandtabs",
    "explode",
    "ffill",
    "fillna",
    "filter",
    "find",
    "flatten",
    "format",
    "format_map",
    "ge",
    "get",
    "get_feature_names_out",
    "get_group",
    "get_params",
    "groupby",
    "gt",
    "head",
    "hex",
    "idxmax",
    "idxmin",
    "index",
    "info",
    "inverse_transform",
    "isalnum",
    "isalpha",
    "isdigit",
    "isin",
    "islower",
    "isna",
    "isnull",
    "isspace",
    "isupper",
    "item",
    "items",
    "iterrows",
    "itertuples",
    "join",
    "keys",
    "kurt",
    "le",
    "ljust",
    "lower",
    "lstrip",
    "lt",
    "map",
    "max",
    "mean",
    "median",
    "melt",
    "memory_usage",
    "merge",
    "min",
    "mode",
    "mul",
    "ne",
    "nlargest",
    "nonzero",
    "notna",
    "notnull",
    "nsmallest",
    "numpy",
    "nunique",
    "partition",
    "pct_change",
    "pipe",
    "pivot",
    "pivot_table",
    "predict",
    "predict_log_proba",
    "predict_proba",
    "prod",
    "quantile",
    "rank",
    "ravel",
    "rename",
    "replace",
    "resample",
    "reset_index",
    "reshape",
    "rfind",
    "rindex",
    "rjust",
    "rolling",
    "round",
    "rpartition",
    "rsplit",
    "rstrip",
    "sample",
    "score",
    "score_samples",
    "select_dtypes",
    "set_index",
    "shift",
    "size",
    "skew",
    "sort_index",
    "sort_values",
    "split",
    "splitlines",
    "squeeze",
    "staged_predict",
    "startswith",
    "std",
    "strip",
    "sub",
    "sum",
    "swapaxes",
    "swapcase",
    "tail",
    "title",
    "to_csv",
    "to_dict",
    "to_frame",
    "to_json",
    "to_list",
    "to_numpy",
    "to_parquet",
    "to_pickle",
    "tobytes",
    "tolist",
    "transform",
    "transpose",
    "unique",
    "unstack",
    "upper",
    "value_counts",
    "values",
    "var",
    "view",
    "where",
    "zfill",
];

/// Functions and methods known to change their first argument in place.
const ARG_CHANGING: &[&str] = &[
    "copyto",
    "delattr",
    "fill_diagonal",
    "heapify",
    "heappop",
    "heappush",
    "heappushpop",
    "heapreplace",
    "insort",
    "insort_left",
    "insort_right",
    "place",
    "put",
    "put_along_axis",
    "putmask",
    "setattr",
    "shuffle",
];

/// Builtins that change none of their arguments.
fn builtin_changes_args(name: &str) -> bool {
    matches!(name, "setattr" | "delattr" | "next" | "exec")
}

/// Methods of containers that keep a reference to their arguments in the receiver
/// (`models.append(m)`, `d.update(k=xs)`): after them the receiver holds those objects.
pub(crate) fn stores_arguments(name: &str) -> bool {
    matches!(
        name,
        "append"
            | "appendleft"
            | "extend"
            | "extendleft"
            | "insert"
            | "add"
            | "update"
            | "setdefault"
            | "put"
            | "put_nowait"
            | "__setitem__"
    )
}

/// Methods that change nothing but return an object sharing the receiver's memory or
/// elements: a numpy view (`a.reshape(2, 3)`, `a.ravel()`, `t.detach()`), a dict's entry or
/// view (`cfg.get("opt")`, `d.values()`), a frame's array (`df.to_numpy()`).
fn returns_shared(name: &str) -> bool {
    matches!(
        name,
        "detach"
            | "get"
            | "items"
            | "keys"
            | "numpy"
            | "pipe"
            | "ravel"
            | "reshape"
            | "squeeze"
            | "swapaxes"
            | "to_numpy"
            | "transpose"
            | "values"
            | "view"
    )
}

/// Library functions that return a view of (or the very object) their first argument.
fn returns_view_of_argument(name: &str) -> bool {
    matches!(
        name,
        "as_strided"
            | "as_tensor"
            | "asanyarray"
            | "asarray"
            | "ascontiguousarray"
            | "asfortranarray"
            | "atleast_1d"
            | "atleast_2d"
            | "atleast_3d"
            | "broadcast_to"
            | "expand_dims"
            | "from_numpy"
            | "frombuffer"
            | "moveaxis"
            | "ravel"
            | "reshape"
            | "squeeze"
            | "swapaxes"
            | "transpose"
    )
}

pub(crate) fn is_pure_method(name: &str) -> bool {
    PURE_METHODS.binary_search(&name).is_ok()
}

/// Whether a function or method of this name changes its first argument.
pub(crate) fn changes_first_argument(name: &str) -> bool {
    ARG_CHANGING.binary_search(&name).is_ok()
        || (name.ends_with('_') && !name.starts_with('_') && name.len() > 1)
}

pub(crate) fn builtin_changes(name: &str) -> bool {
    builtin_changes_args(name)
}

/// The name an attribute/subscript chain starts from: `a` for `a`, `a.b[0].c`, `*a`.
pub(crate) fn root_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(n) => Some(n.id.as_str()),
        Expr::Attribute(a) => root_name(&a.value),
        Expr::Subscript(s) => root_name(&s.value),
        Expr::Starred(s) => root_name(&s.value),
        _ => None,
    }
}

/// `np.random.seed` as `["np", "random", "seed"]`; None unless the expression is names
/// joined by dots.
pub(crate) fn dotted(expr: &Expr) -> Option<Vec<&str>> {
    match expr {
        Expr::Name(n) => Some(vec![n.id.as_str()]),
        Expr::Attribute(a) => {
            let mut d = dotted(&a.value)?;
            d.push(a.attr.id.as_str());
            Some(d)
        }
        _ => None,
    }
}

/// The names whose objects a value computed by `expr` may hold or be. Calls of plain
/// names are left to the caller (`calls`), which knows whether the callee is the
/// user's function (it may return its argument) or a library's.
pub(crate) fn share_sources<'e>(
    expr: &'e Expr,
    out: &mut BTreeSet<String>,
    calls: &mut Vec<&'e ast::ExprCall>,
) {
    match expr {
        Expr::Name(n) => {
            out.insert(n.id.to_string());
        }
        Expr::Attribute(a) => share_sources(&a.value, out, calls),
        Expr::Subscript(s) => share_sources(&s.value, out, calls),
        Expr::Starred(s) => share_sources(&s.value, out, calls),
        Expr::Tuple(t) => t.elts.iter().for_each(|e| share_sources(e, out, calls)),
        Expr::List(l) => l.elts.iter().for_each(|e| share_sources(e, out, calls)),
        Expr::Set(s) => s.elts.iter().for_each(|e| share_sources(e, out, calls)),
        Expr::Dict(d) => d
            .items
            .iter()
            .for_each(|item| share_sources(&item.value, out, calls)),
        Expr::If(i) => {
            share_sources(&i.body, out, calls);
            share_sources(&i.orelse, out, calls);
        }
        Expr::BoolOp(b) => b.values.iter().for_each(|e| share_sources(e, out, calls)),
        Expr::Named(n) => share_sources(&n.value, out, calls),
        Expr::ListComp(c) => c
            .generators
            .iter()
            .for_each(|g| share_sources(&g.iter, out, calls)),
        Expr::SetComp(c) => c
            .generators
            .iter()
            .for_each(|g| share_sources(&g.iter, out, calls)),
        Expr::DictComp(c) => c
            .generators
            .iter()
            .for_each(|g| share_sources(&g.iter, out, calls)),
        Expr::Call(call) => match &*call.func {
            // `model.fit(X)` returns the model itself; `df.copy()` a new frame.
            Expr::Attribute(a) => {
                let method = a.attr.id.as_str();
                if !is_pure_method(method) || returns_shared(method) {
                    share_sources(&a.value, out, calls)
                }
                // `np.asarray(a)`, `torch.from_numpy(a)`, `np.reshape(a, ...)`: a view of `a`.
                if returns_view_of_argument(method)
                    && let Some(first) = call.arguments.args.first()
                {
                    share_sources(first, out, calls)
                }
            }
            Expr::Name(_) => calls.push(call),
            _ => {}
        },
        _ => {}
    }
}

/// The state a call of `path` (resolved through imports) changes, if any.
pub(crate) fn state_of_call(path: &[&str]) -> Option<StateKind> {
    let joined = path.join(".");
    let p = joined.as_str();
    let last = *path.last()?;
    let kind = match p {
        "os.chdir" | "os.fchdir" => StateKind::WorkingDirectory,
        "sys.path.append" | "sys.path.insert" | "sys.path.extend" | "sys.path.remove"
        | "sys.path.pop" | "sys.path.clear" => StateKind::ImportPath,
        "os.putenv"
        | "os.unsetenv"
        | "os.environ.update"
        | "os.environ.setdefault"
        | "os.environ.pop"
        | "os.environ.popitem"
        | "os.environ.clear" => StateKind::Environment,
        "sklearn.set_config" | "sklearn._config.set_config" => StateKind::Sklearn,
        "pandas.set_option" | "pandas.reset_option" | "pandas.options.display.__setattr__" => {
            StateKind::Pandas
        }
        "numpy.seterr" | "numpy.set_printoptions" | "numpy.seterrcall" | "numpy.setbufsize" => {
            StateKind::Numpy
        }
        "warnings.filterwarnings" | "warnings.simplefilter" | "warnings.resetwarnings" => {
            StateKind::Warnings
        }
        "decimal.setcontext" => StateKind::Decimal,
        "matplotlib.rc"
        | "matplotlib.pyplot.rc"
        | "matplotlib.rcdefaults"
        | "matplotlib.pyplot.rcdefaults"
        | "matplotlib.style.use"
        | "matplotlib.pyplot.style.use"
        | "matplotlib.rcParams.update"
        | "matplotlib.pyplot.rcParams.update" => StateKind::Matplotlib,
        "random.seed"
        | "random.setstate"
        | "numpy.random.seed"
        | "numpy.random.set_state"
        | "torch.manual_seed"
        | "torch.random.manual_seed"
        | "torch.set_rng_state"
        | "torch.random.set_rng_state" => StateKind::RandomSeed,
        _ => {
            let root = path[0];
            let framework = matches!(root, "tensorflow" | "keras" | "jax" | "tf_keras");
            if path.len() < 2 {
                return None;
            }
            if last.contains("seed") && !framework {
                StateKind::RandomSeed
            } else if last.starts_with("set_")
                || last.starts_with("use_")
                || last == "seed"
                || last == "basicConfig"
                || last.starts_with("enable_")
                || last.starts_with("disable_")
                || last == "setLevel"
                || last == "setlocale"
                || is_interpreter_setter(p)
                || (framework && last.contains("seed"))
            {
                StateKind::Unknown
            } else {
                return None;
            }
        }
    };
    Some(kind)
}

/// Process-wide settings of the interpreter and the standard library whose names follow
/// no `set_` pattern; kale does not carry them, so a step calling one is warned about.
fn is_interpreter_setter(path: &str) -> bool {
    matches!(
        path,
        "sys.setrecursionlimit"
            | "sys.setswitchinterval"
            | "sys.setprofile"
            | "sys.settrace"
            | "sys.set_int_max_str_digits"
            | "socket.setdefaulttimeout"
            | "gc.disable"
            | "gc.enable"
            | "gc.freeze"
            | "os.umask"
            | "os.nice"
            | "logging.disable"
            | "logging.captureWarnings"
            | "threading.stack_size"
            | "faulthandler.enable"
    )
}

/// The state an assignment to `path` (`os.environ[...]`, `pd.options.x.y`) changes.
/// `subscripted`: the target is `path[...]`.
pub(crate) fn state_of_target(path: &[&str], subscripted: bool) -> Option<StateKind> {
    let joined = path.join(".");
    let p = joined.as_str();
    if subscripted {
        return match p {
            "os.environ" => Some(StateKind::Environment),
            "sys.path" => Some(StateKind::ImportPath),
            "matplotlib.rcParams" | "matplotlib.pyplot.rcParams" => Some(StateKind::Matplotlib),
            _ => None,
        };
    }
    if p.starts_with("pandas.options.") {
        return Some(StateKind::Pandas);
    }
    if path.len() >= 2 {
        // An attribute of a module: `torch.backends.cudnn.deterministic = True`.
        return Some(StateKind::Unknown);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(PURE_METHODS.windows(2).all(|w| w[0] < w[1]), "PURE_METHODS");
        assert!(ARG_CHANGING.windows(2).all(|w| w[0] < w[1]), "ARG_CHANGING");
    }

    #[test]
    fn calls_that_change_state() {
        assert_eq!(
            state_of_call(&["os", "chdir"]),
            Some(StateKind::WorkingDirectory)
        );
        assert_eq!(
            state_of_call(&["numpy", "random", "seed"]),
            Some(StateKind::RandomSeed)
        );
        assert_eq!(
            state_of_call(&["torch", "set_num_threads"]),
            Some(StateKind::Unknown)
        );
        assert_eq!(
            state_of_call(&["tensorflow", "random", "set_seed"]),
            Some(StateKind::Unknown)
        );
        assert_eq!(
            state_of_call(&["sys", "setrecursionlimit"]),
            Some(StateKind::Unknown)
        );
        assert_eq!(state_of_call(&["sys", "getrecursionlimit"]), None);
        assert_eq!(state_of_call(&["numpy", "mean"]), None);
        assert_eq!(
            state_of_target(&["os", "environ"], true),
            Some(StateKind::Environment)
        );
        assert_eq!(
            state_of_target(&["pandas", "options", "display", "max_rows"], false),
            Some(StateKind::Pandas)
        );
    }
}
