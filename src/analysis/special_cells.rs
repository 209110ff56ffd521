//! The `pipeline-parameters` and `pipeline-metrics` cells, whose content is
//! restricted so kale can rewrite and read it without running it.

use ruff_python_ast::{self as ast, Expr, Mod, Number, Stmt, UnaryOp};
use ruff_python_parser::Mode;
use ruff_text_size::{Ranged, TextRange};

use super::source::{LineIndex, parse, with_big_stack};
use super::{CellSource, Location, SyntaxIssue};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum PipelineValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParamDecl {
    pub name: String,
    pub value: PipelineValue,
    /// Location of the name.
    pub at: Location,
}

const PARAM_RULE: &str = "pipeline parameters must be int, float, str or bool literals";

struct Cell<'a> {
    number: usize,
    src: &'a str,
    index: LineIndex<'a>,
    issues: Vec<SyntaxIssue>,
}

impl<'a> Cell<'a> {
    /// Parses the cell; IPython escapes are parsed (not syntax errors) so the
    /// caller can reject them with a precise message.
    fn parse(cell: &CellSource<'a>) -> (Self, Vec<Stmt>) {
        let mut this = Cell {
            number: cell.number,
            src: cell.source,
            index: LineIndex::new(cell.source),
            issues: Vec::new(),
        };
        let mut body = Vec::new();
        match parse(cell.source, Mode::Ipython) {
            Err(message) => this.issue(0, message.to_owned()),
            Ok(parsed) => {
                if let Some(e) = parsed.errors().first() {
                    this.issue(
                        e.location.start().to_usize(),
                        format!("syntax error: {}", super::syntax_message(e, cell.source)),
                    );
                }
                if let Mod::Module(m) = parsed.into_syntax() {
                    body = m.body.into_iter().collect();
                }
            }
        }
        (this, body)
    }

    fn at(&self, offset: usize) -> Location {
        self.index.location(self.number, offset)
    }

    fn issue(&mut self, offset: usize, message: String) {
        let at = self.at(offset);
        self.issues.push(SyntaxIssue { message, at });
    }

    /// Source of a node for messages: first line only, trimmed.
    fn snippet(&self, range: TextRange) -> String {
        let text = self
            .src
            .get(range.start().to_usize()..range.end().to_usize())
            .unwrap_or_default();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default().trim_end();
        if lines.next().is_some() {
            format!("{first} …")
        } else {
            first.to_owned()
        }
    }
}

/// Reads a `pipeline-parameters` cell: only `name = literal` statements
/// (an annotation, `name: float = 0.1`, is allowed and ignored). Every
/// problem is reported; a later assignment to a name replaces the earlier
/// value, keeping the first position.
pub fn parse_parameters(cell: &CellSource) -> (Vec<ParamDecl>, Vec<SyntaxIssue>) {
    with_big_stack(|| parameters(cell))
        .unwrap_or_else(|| (Vec::new(), vec![super::internal_error(Some(cell))]))
}

fn parameters(cell: &CellSource) -> (Vec<ParamDecl>, Vec<SyntaxIssue>) {
    let (mut c, body) = Cell::parse(cell);
    let mut decls: Vec<ParamDecl> = Vec::new();
    for stmt in &body {
        let start = stmt.start().to_usize();
        let snippet = c.snippet(stmt.range());
        let (target, value) = match stmt {
            Stmt::Assign(a) if a.targets.len() == 1 => (&a.targets[0], &*a.value),
            Stmt::Assign(_) => {
                c.issue(
                    start,
                    format!(
                        "`{snippet}` assigns several targets: write one `name = literal` per line"
                    ),
                );
                continue;
            }
            Stmt::AnnAssign(a) if a.value.is_some() => {
                (&*a.target, a.value.as_deref().unwrap_or(&*a.target))
            }
            _ => {
                c.issue(start, format!(
                    "`{snippet}` is not an assignment: the pipeline-parameters cell may only contain `name = literal` statements"
                ));
                continue;
            }
        };
        let Expr::Name(name) = target else {
            c.issue(
                start,
                format!("`{snippet}` does not assign a single name: {PARAM_RULE}"),
            );
            continue;
        };
        let value = match literal(value) {
            Ok(v) => v,
            Err(found) => {
                c.issue(
                    start,
                    format!("`{snippet}` is not a literal ({found}): {PARAM_RULE}"),
                );
                continue;
            }
        };
        let decl = ParamDecl {
            name: name.id.to_string(),
            value,
            at: c.at(name.start().to_usize()),
        };
        match decls.iter_mut().find(|d| d.name == decl.name) {
            Some(d) => *d = decl,
            None => decls.push(decl),
        }
    }
    (decls, c.issues)
}

/// The literal's value, or a description of what was found instead.
fn literal(expr: &Expr) -> Result<PipelineValue, String> {
    match expr {
        Expr::BooleanLiteral(b) => Ok(PipelineValue::Bool(b.value)),
        Expr::NumberLiteral(n) => number(&n.value, false),
        Expr::UnaryOp(u) if matches!(u.op, UnaryOp::USub | UnaryOp::UAdd) => match &*u.operand {
            Expr::NumberLiteral(n) => number(&n.value, u.op == UnaryOp::USub),
            _ => Err("an expression".to_owned()),
        },
        // Implicit concatenation (`"a" "b"`) is still a constant.
        Expr::StringLiteral(s) => Ok(PipelineValue::Str(s.value.to_str().to_owned())),
        Expr::FString(f) => {
            let mut out = String::new();
            for part in f.value.iter() {
                match part {
                    ast::FStringPart::Literal(l) => out.push_str(&l.value),
                    ast::FStringPart::FString(f) => {
                        for el in f.elements.iter() {
                            match el {
                                ast::InterpolatedStringElement::Literal(l) => {
                                    out.push_str(&l.value)
                                }
                                ast::InterpolatedStringElement::Interpolation(_) => {
                                    return Err("an f-string with placeholders".to_owned());
                                }
                            }
                        }
                    }
                }
            }
            Ok(PipelineValue::Str(out))
        }
        other => Err(describe(other).to_owned()),
    }
}

fn number(n: &Number, negative: bool) -> Result<PipelineValue, String> {
    match n {
        Number::Float(f) => Ok(PipelineValue::Float(if negative { -f } else { *f })),
        Number::Int(i) => {
            let value = i.as_u64().and_then(|u| {
                if negative {
                    0i64.checked_sub_unsigned(u)
                } else {
                    i64::try_from(u).ok()
                }
            });
            value
                .map(PipelineValue::Int)
                .ok_or_else(|| "an integer that does not fit in 64 bits".to_owned())
        }
        Number::Complex { .. } => Err("a complex number".to_owned()),
    }
}

fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::NoneLiteral(_) => "None",
        Expr::List(_) | Expr::ListComp(_) => "a list",
        Expr::Dict(_) | Expr::DictComp(_) => "a dict",
        Expr::Set(_) | Expr::SetComp(_) => "a set",
        Expr::Tuple(_) => "a tuple",
        Expr::Call(_) => "a call",
        Expr::Name(_) => "a variable",
        Expr::Attribute(_) => "an attribute",
        Expr::BytesLiteral(_) => "a bytes literal",
        Expr::TString(_) => "a template string",
        Expr::Lambda(_) => "a lambda",
        Expr::IpyEscapeCommand(_) => "an IPython escape",
        Expr::EllipsisLiteral(_) => "`...`",
        _ => "an expression",
    }
}

/// Reads a `pipeline-metrics` cell: each statement is `print(var)` or `var`.
/// Returns the metric names in order, without duplicates.
pub fn parse_metrics(cell: &CellSource) -> (Vec<(String, Location)>, Vec<SyntaxIssue>) {
    with_big_stack(|| metrics(cell))
        .unwrap_or_else(|| (Vec::new(), vec![super::internal_error(Some(cell))]))
}

fn metrics(cell: &CellSource) -> (Vec<(String, Location)>, Vec<SyntaxIssue>) {
    let (mut c, body) = Cell::parse(cell);
    let mut metrics: Vec<(String, Location)> = Vec::new();
    for stmt in &body {
        let name = match stmt {
            Stmt::Expr(e) => match &*e.value {
                Expr::Name(n) => Some(n),
                Expr::Call(call) => match (
                    &*call.func,
                    &*call.arguments.args,
                    call.arguments.keywords.is_empty(),
                ) {
                    (Expr::Name(f), [Expr::Name(n)], true) if f.id.as_str() == "print" => Some(n),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match name {
            Some(n) => {
                if !metrics.iter().any(|(m, _)| m == n.id.as_str()) {
                    metrics.push((n.id.to_string(), c.at(n.start().to_usize())));
                }
            }
            None => {
                let snippet = c.snippet(stmt.range());
                c.issue(stmt.start().to_usize(), format!(
                    "`{snippet}` is not a metric: the pipeline-metrics cell may only contain `print(variable)` or `variable` lines"
                ));
            }
        }
    }
    (metrics, c.issues)
}
