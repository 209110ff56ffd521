//! The modules a block of cells imports at top level, so the local executor's
//! fork server can import them once instead of once per step.

use ruff_python_ast::{Mod, Stmt};
use ruff_python_parser::Mode;

use super::source::parse;

/// Absolute module names imported by `import` / `from ... import` statements of
/// these sources, outside functions and classes (inside `if`, `try` and `with`
/// too: guarded imports are the common way to import optional packages).
/// Relative imports are left out; unparsable code contributes what the parser
/// recovered. In first-seen order, without repeats.
pub fn imported_modules<'a>(sources: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for src in sources {
        let Ok(parsed) = parse(src, Mode::Ipython) else {
            continue;
        };
        if let Mod::Module(m) = parsed.syntax() {
            collect(&m.body, &mut out);
        }
    }
    out
}

fn add(out: &mut Vec<String>, name: &str) {
    if !name.is_empty() && !out.iter().any(|m| m == name) {
        out.push(name.to_string());
    }
}

fn collect(body: &[Stmt], out: &mut Vec<String>) {
    for stmt in body {
        match stmt {
            Stmt::Import(i) => i.names.iter().for_each(|a| add(out, a.name.as_str())),
            Stmt::ImportFrom(i) if i.level == 0 => {
                if let Some(m) = &i.module {
                    add(out, m.as_str());
                }
            }
            Stmt::If(s) => {
                collect(&s.body, out);
                for clause in &s.elif_else_clauses {
                    collect(&clause.body, out);
                }
            }
            Stmt::Try(t) => {
                collect(&t.body, out);
                for h in &t.handlers {
                    let ruff_python_ast::ExceptHandler::ExceptHandler(h) = h;
                    collect(&h.body, out);
                }
                collect(&t.orelse, out);
                collect(&t.finalbody, out);
            }
            Stmt::With(w) => collect(&w.body, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::imported_modules;

    #[test]
    fn top_level_and_guarded_imports_in_order() {
        let cells = [
            "import numpy as np, os.path\nfrom sklearn.svm import SVC\n%matplotlib inline\n",
            "try:\n    import xgboost\nexcept ImportError:\n    import lightgbm\n\
             from . import local\ndef f():\n    import inside_function\nimport numpy\n",
        ];
        assert_eq!(
            imported_modules(cells),
            ["numpy", "os.path", "sklearn.svm", "xgboost", "lightgbm"]
        );
    }

    #[test]
    fn broken_code_gives_what_the_parser_recovered() {
        assert_eq!(imported_modules(["import pandas\nx = (\n"]), ["pandas"]);
    }
}
