//! Text-level understanding of IPython escapes: which parts are Python.
//! All offsets are byte offsets into the string passed in.

use super::source::lines;

/// How the body of a `%%magic` cell relates to the kernel namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellMagicBody {
    /// Body is Python run in the user namespace. `line_is_code`: the text
    /// after the magic's options on the `%%` line runs too (timeit setup,
    /// prun statement).
    Python { line_is_code: bool },
    /// Not Python, or Python run in another process: the body is skipped.
    Foreign,
    /// Unknown magic: body analysed only if it parses as Python cleanly.
    Unknown,
}

pub(crate) fn classify_cell_magic(name: &str) -> CellMagicBody {
    match name {
        "time" | "capture" | "debug" | "memit" | "snakeviz" => CellMagicBody::Python {
            line_is_code: false,
        },
        "timeit" | "prun" => CellMagicBody::Python { line_is_code: true },
        "bash" | "sh" | "script" | "system" | "sx" | "writefile" | "file" | "html" | "HTML"
        | "javascript" | "js" | "latex" | "markdown" | "svg" | "sql" | "bigquery" | "perl"
        | "ruby" | "python" | "python2" | "python3" | "pypy" | "R" | "cython" | "powershell"
        | "cmd" => CellMagicBody::Foreign,
        _ => CellMagicBody::Unknown,
    }
}

/// A cell that starts with `%%name args`.
#[derive(Debug)]
pub(crate) struct CellMagic<'a> {
    pub(crate) name: &'a str,
    /// Offset of the first `%`.
    pub(crate) start: usize,
    /// Text after the name on the `%%` line and its offset.
    pub(crate) args: (&'a str, usize),
    /// Offset where the body (the next line) starts; `src.len()` if none.
    pub(crate) body_start: usize,
}

/// IPython strips leading blank lines and common indentation before looking
/// for `%%`, so we accept both.
pub(crate) fn split_cell_magic(src: &str) -> Option<CellMagic<'_>> {
    let all = lines(src);
    let (idx, &(ls, le)) = all
        .iter()
        .enumerate()
        .find(|(_, (s, e))| !src[*s..*e].trim().is_empty())?;
    let line = &src[ls..le];
    let indent = line.len() - line.trim_start().len();
    let rest = line.trim_start().strip_prefix("%%")?;
    let name_len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let args_start = ls + indent + 2 + name_len;
    let body_start = all.get(idx + 1).map_or(src.len(), |l| l.0);
    Some(CellMagic {
        name,
        start: ls + indent,
        args: (&src[args_start..le], args_start),
        body_start,
    })
}

/// Options of the magics whose argument is a Python statement, and whether
/// each option takes a value.
fn option_spec(magic: &str) -> Option<&'static [(char, bool)]> {
    Some(match magic {
        // `%time` has no short options; its `--no-raise-error` is handled
        // by the generic long-option rule. Anything else starting with `-`
        // is Python (`%time -x`).
        "time" => &[],
        "timeit" | "memit" => &[
            ('n', true),
            ('r', true),
            ('t', false),
            ('c', false),
            ('p', true),
            ('q', false),
            ('o', false),
            ('v', false),
            ('i', false),
        ],
        "prun" => &[
            ('l', true),
            ('r', false),
            ('s', true),
            ('T', true),
            ('D', true),
            ('q', false),
        ],
        _ => return None,
    })
}

/// For magics that run their argument as Python (`%time`, `%timeit`,
/// `%prun`, `%memit`): the statement text after the options and its offset
/// within `args`. `None` for other magics.
pub(crate) fn python_argument<'a>(magic: &str, args: &'a str) -> Option<(&'a str, usize)> {
    let spec = option_spec(magic)?;
    let mut pos = 0;
    loop {
        let ws = args[pos..].len() - args[pos..].trim_start().len();
        pos += ws;
        let rest = &args[pos..];
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_len];
        if word == "--" {
            pos += word_len;
            break;
        }
        if word.starts_with("--") && word.len() > 2 {
            pos += word_len;
            continue;
        }
        let Some(flags) = word.strip_prefix('-') else {
            break;
        };
        let mut chars = flags.chars();
        let Some(first) = chars.next() else { break };
        let Some(&(_, takes_value)) = spec.iter().find(|(c, _)| *c == first) else {
            break;
        };
        pos += word_len;
        if takes_value && chars.as_str().is_empty() {
            // `-n 3`: the value is the next word.
            let ws = args[pos..].len() - args[pos..].trim_start().len();
            let rest = &args[pos + ws..];
            pos += ws + rest.find(char::is_whitespace).unwrap_or(rest.len());
        }
    }
    Some((&args[pos..], pos))
}

/// A piece of a shell command that IPython expands from the namespace.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Interpolation<'a> {
    /// `$name` (only the leading name of `$name.attr` is a variable).
    Name(&'a str, usize),
    /// `{expr}`: the expression text (conversion and format spec removed).
    Expr(&'a str, usize),
}

/// Finds `$name` and `{expr}` in a shell escape. Mirrors IPython's
/// `var_expand`: `$$` and `{{` are escapes, `$` inside single quotes is
/// left alone. Braces are collected regardless of quotes; if their content
/// isn't Python (e.g. awk programs) IPython leaves the command unexpanded,
/// and the caller drops expressions that don't parse.
pub(crate) fn shell_interpolations(cmd: &str) -> Vec<Interpolation<'_>> {
    let bytes = cmd.as_bytes();
    let mut out = Vec::new();
    let mut in_single = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_single = !in_single,
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if !in_single => {
                let rest = &cmd[i + 1..];
                let starts_ok = rest
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_');
                if starts_ok {
                    let len = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    out.push(Interpolation::Name(&rest[..len], i + 1));
                    i += len;
                }
            }
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 1,
            b'{' => {
                if let Some(close) = matching_brace(cmd, i) {
                    let inner = strip_format_spec(&cmd[i + 1..close]);
                    out.push(Interpolation::Expr(inner, i + 1));
                    i = close;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `x!r:>10` → `x`: cut at a top-level `!` conversion or `:` spec.
fn strip_format_spec(inner: &str) -> &str {
    let bytes = inner.as_bytes();
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'!' if depth == 0 && bytes.get(i + 1) != Some(&b'=') => return &inner[..i],
            b':' if depth == 0 => return &inner[..i],
            _ => {}
        }
    }
    inner
}

/// First whitespace-separated word and the text after it (with its offset).
pub(crate) fn first_word(s: &str) -> (&str, &str, usize) {
    let lead = s.len() - s.trim_start().len();
    let rest = &s[lead..];
    let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (&rest[..len], &rest[len..], lead + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_magic_options() {
        assert_eq!(
            python_argument("timeit", "-n 3 -r3 f(x)"),
            Some(("f(x)", 9))
        );
        assert_eq!(
            python_argument("timeit", " -q -o f(x)").map(|a| a.0),
            Some("f(x)")
        );
        assert_eq!(
            python_argument("time", " -x + 1").map(|a| a.0),
            Some("-x + 1")
        );
        assert_eq!(
            python_argument("time", " --no-raise-error g()").map(|a| a.0),
            Some("g()")
        );
        assert_eq!(
            python_argument("prun", " -s cumulative -q run()").map(|a| a.0),
            Some("run()")
        );
        assert_eq!(python_argument("matplotlib", " inline"), None);
    }

    #[test]
    fn finds_shell_interpolations() {
        let got = shell_interpolations("echo {y} $z $$HOME '$q' {{lit}} {a!r} {b:>3} $1");
        assert_eq!(
            got,
            vec![
                Interpolation::Expr("y", 6),
                Interpolation::Name("z", 10),
                Interpolation::Expr("a", 33),
                Interpolation::Expr("b", 39),
            ]
        );
    }

    #[test]
    fn splits_cell_magic() {
        let m = split_cell_magic("\n  %%timeit -n 2 setup()\r\nbody()\n").unwrap();
        assert_eq!(m.name, "timeit");
        assert_eq!(m.args, (" -n 2 setup()", 11));
        assert_eq!(m.body_start, 26);
        assert!(split_cell_magic("x = 1\n%%time\n").is_none());
        assert!(split_cell_magic("").is_none());
        let m = split_cell_magic("%%bash").unwrap();
        assert_eq!((m.name, m.body_start), ("bash", 6));
    }
}
