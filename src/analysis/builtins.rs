//! Names available in a notebook namespace without being defined by the user.

/// `dir(builtins)` of CPython 3.11–3.13 (union), sorted for binary search.
const PYTHON_BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "False",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "None",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "PythonFinalizationError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "True",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "__build_class__",
    "__debug__",
    "__doc__",
    "__import__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

/// What IPython adds to a kernel's user namespace (or to builtins).
/// `__file__` is deliberately absent: a notebook kernel does not define it,
/// so reading it is a real (failing) dependency.
const IPYTHON_NAMES: &[&str] = &[
    "In",
    "Out",
    "_",
    "__",
    "___",
    "__builtin__",
    "__builtins__",
    "_dh",
    "_exit_code",
    "_i",
    "_ih",
    "_ii",
    "_iii",
    "_oh",
    "display",
    "get_ipython",
];

/// True for Python builtins and the names IPython provides in a notebook
/// (including output history `_3` and input history `_i3`).
pub fn is_builtin(name: &str) -> bool {
    PYTHON_BUILTINS.binary_search(&name).is_ok()
        || IPYTHON_NAMES.binary_search(&name).is_ok()
        || is_history_name(name)
}

fn is_history_name(name: &str) -> bool {
    let digits = name
        .strip_prefix("_i")
        .or_else(|| name.strip_prefix('_'))
        .unwrap_or("");
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(PYTHON_BUILTINS.windows(2).all(|w| w[0] < w[1]));
        assert!(IPYTHON_NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn builtins_and_ipython_names() {
        for n in [
            "print",
            "len",
            "ValueError",
            "display",
            "get_ipython",
            "In",
            "_3",
            "_i12",
            "__name__",
        ] {
            assert!(is_builtin(n), "{n}");
        }
        for n in ["df", "__file__", "_x", "_i", "model", "np", "_i1a"] {
            if n == "_i" {
                assert!(is_builtin(n));
            } else {
                assert!(!is_builtin(n), "{n}");
            }
        }
    }
}
