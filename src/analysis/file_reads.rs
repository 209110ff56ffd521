//! Calls that read a file (`open(...)`, `pd.read_csv(...)`, `np.load(...)`), found
//! statically. Locally the step cache sees, at run time, every file a step reads;
//! a KFP cache cannot, so `kale compile --target kfp` names these reads.

use ruff_python_ast::visitor::{Visitor, walk_expr};
use ruff_python_ast::{Expr, ExprCall, Mod};
use ruff_python_parser::Mode;
use ruff_text_size::Ranged;

use super::source::{LineIndex, parse};
use super::{CellSource, Location};

/// One call that reads a file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileReadCall {
    pub at: Location,
    /// The function called, as written (`pd.read_csv`).
    pub call: String,
    /// The path when it is a string literal.
    pub path: Option<String>,
}

/// Functions (by their last name) that read the file named by their first argument.
const READERS: &[&str] = &[
    "open",
    "read_csv",
    "read_table",
    "read_parquet",
    "read_feather",
    "read_json",
    "read_excel",
    "read_pickle",
    "read_hdf",
    "read_orc",
    "read_sas",
    "read_spss",
    "read_stata",
    "read_fwf",
    "read_xml",
    "load",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "imread",
    "load_img",
    "read_text",
    "read_bytes",
    "load_workbook",
];

/// Every file-reading call in these cells, in order.
pub fn file_reads(cells: &[CellSource]) -> Vec<FileReadCall> {
    // A cell naming no reader cannot call one.
    let may_name = |source: &str| READERS.iter().any(|name| source.contains(name));
    calls_in_cells(cells, may_name, read_path)
        .into_iter()
        .map(|(at, call, path)| FileReadCall { at, call, path })
        .collect()
}

/// `Some(path)` when the call reads a file (`path` None when not a literal).
fn read_path(call: &ExprCall, _name: &str, last: &str) -> Option<Option<String>> {
    // `Path("x").read_text()`: the path is the receiver, not an argument.
    let path_arg = match (&*call.func, last) {
        (Expr::Attribute(a), "read_text" | "read_bytes") => match &*a.value {
            Expr::Call(path) => path.arguments.args.first().and_then(literal),
            other => literal(other),
        },
        _ => call.arguments.args.first().and_then(literal).or_else(|| {
            call.arguments
                .keywords
                .iter()
                .find(|k| {
                    k.arg.as_ref().is_some_and(|a| {
                        matches!(
                            a.as_str(),
                            "file" | "fname" | "filepath_or_buffer" | "path" | "io"
                        )
                    })
                })
                .and_then(|k| literal(&k.value))
        }),
    };
    (READERS.contains(&last) && !writes(&call.arguments, last) && reads_path(&call.func, last))
        .then_some(path_arg)
}

/// Every call in these cells that `found` recognises (its location, the callee as
/// written, the path `found` gives), in order. `may_name` skips the cells whose text
/// cannot hold such a call: parsing is most of the cost.
pub(super) fn calls_in_cells(
    cells: &[CellSource],
    may_name: impl Fn(&str) -> bool,
    found: impl Fn(&ExprCall, &str, &str) -> Option<Option<String>>,
) -> Vec<(Location, String, Option<String>)> {
    let mut out = Vec::new();
    for cell in cells {
        if !may_name(cell.source) {
            continue;
        }
        let Ok(parsed) = parse(cell.source, Mode::Ipython) else {
            continue;
        };
        let Mod::Module(module) = parsed.syntax() else {
            continue;
        };
        let mut finder = Finder {
            index: LineIndex::new(cell.source),
            cell: cell.number,
            recognise: &found,
            found: Vec::new(),
        };
        for stmt in &module.body {
            finder.visit_stmt(stmt);
        }
        out.extend(finder.found);
    }
    out
}

type Recognise<'f> = &'f dyn Fn(&ExprCall, &str, &str) -> Option<Option<String>>;

struct Finder<'s, 'f> {
    index: LineIndex<'s>,
    cell: usize,
    recognise: Recognise<'f>,
    found: Vec<(Location, String, Option<String>)>,
}

impl<'a> Visitor<'a> for Finder<'_, '_> {
    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr
            && let Some(name) = dotted(&call.func)
        {
            let last = name.rsplit('.').next().unwrap_or(&name);
            if let Some(path) = (self.recognise)(call, &name, last) {
                let at = self
                    .index
                    .location(self.cell, usize::from(call.range().start()));
                self.found.push((at, name.clone(), path));
            }
        }
        walk_expr(self, expr);
    }
}

/// `json.load(f)` and `pickle.load(f)` read an open file, already seen as `open`.
fn reads_path(func: &Expr, last: &str) -> bool {
    if last != "load" {
        return true;
    }
    match func {
        Expr::Attribute(a) => !matches!(
            dotted(&a.value).as_deref(),
            Some("json" | "pickle" | "yaml" | "marshal" | "dill" | "cloudpickle")
        ),
        _ => false,
    }
}

/// `open(p, "w")` writes.
fn writes(arguments: &ruff_python_ast::Arguments, last: &str) -> bool {
    if last != "open" {
        return false;
    }
    let mode = arguments.args.get(1).and_then(literal).or_else(|| {
        arguments
            .keywords
            .iter()
            .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "mode"))
            .and_then(|k| literal(&k.value))
    });
    mode.is_some_and(|m| m.contains(['w', 'a', 'x']) && !m.contains('+'))
}

pub(super) fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::StringLiteral(s) => Some(s.value.to_str().to_string()),
        _ => None,
    }
}

pub(super) fn dotted(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Name(n) => Some(n.id.to_string()),
        Expr::Attribute(a) => Some(format!(
            "{}.{}",
            dotted(&a.value).unwrap_or_default(),
            a.attr.as_str()
        ))
        .map(|s| s.trim_start_matches('.').to_string()),
        Expr::Call(c) => dotted(&c.func).map(|f| format!("{f}()")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(src: &str) -> Vec<(u32, String, Option<String>)> {
        file_reads(&[CellSource {
            number: 4,
            source: src,
        }])
        .into_iter()
        .map(|r| (r.at.line, r.call, r.path))
        .collect()
    }

    #[test]
    fn finds_reads_with_their_paths() {
        let src = "import pandas as pd\ndf = pd.read_csv('data/train.csv')\nx = np.load(path)\n\
                   with open('cfg.txt') as f:\n    cfg = f.read()\ntext = Path('notes.md').read_text()\n";
        assert_eq!(
            reads(src),
            [
                (2, "pd.read_csv".into(), Some("data/train.csv".into())),
                (3, "np.load".into(), None),
                (4, "open".into(), Some("cfg.txt".into())),
                (6, "Path().read_text".into(), Some("notes.md".into())),
            ]
        );
    }

    #[test]
    fn writes_and_file_object_loads_are_not_reads() {
        let src = "open('out.txt', 'w').write('x')\nopen('log', mode='a')\nm = pickle.load(fh)\n\
                   d = json.load(fh)\nmodel.load_state_dict(sd)\n";
        assert!(reads(src).is_empty(), "{:?}", reads(src));
    }
}
