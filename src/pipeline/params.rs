//! Python literals, the one place kale writes (and reads back) them: pipeline-parameter
//! values as JSON for `inspect` and as Python source for the generated step programs,
//! manifest values for debug notebooks, strings in generated programs.

use serde_json::Value;

use crate::analysis::PipelineValue;

impl PipelineValue {
    /// `int`, `float`, `str` or `bool`, the names the `inspect --json` contract uses.
    pub fn type_name(&self) -> &'static str {
        match self {
            PipelineValue::Int(_) => "int",
            PipelineValue::Float(_) => "float",
            PipelineValue::Str(_) => "str",
            PipelineValue::Bool(_) => "bool",
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            PipelineValue::Int(i) => Value::from(*i),
            PipelineValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(python_float(*f))),
            PipelineValue::Str(s) => Value::String(s.clone()),
            PipelineValue::Bool(b) => Value::Bool(*b),
        }
    }

    /// A Python literal that evaluates to exactly this value.
    pub fn to_python(&self) -> String {
        match self {
            PipelineValue::Int(i) => i.to_string(),
            PipelineValue::Float(f) => python_float(*f),
            PipelineValue::Str(s) => python_string(s),
            PipelineValue::Bool(true) => "True".into(),
            PipelineValue::Bool(false) => "False".into(),
        }
    }
}

/// Rust's shortest round-trip formatting is valid Python for finite floats; the
/// non-finite ones need `float(...)`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        "float('nan')".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "float('inf')".into()
        } else {
            "float('-inf')".into()
        }
    } else {
        let s = format!("{f:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// A double-quoted Python string literal; quotes, backslashes, newlines and other
/// control characters are escaped so any value round-trips.
pub fn python_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Line and paragraph separators are fine inside a Python string literal,
            // but escaping them keeps generated programs readable in every editor.
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Python literal for a parameter value as the manifest records it.
pub fn python_literal(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => PipelineValue::Bool(*b).to_python(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => python_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        // Non-finite floats are recorded as their Python spelling.
        Value::String(s)
            if ["float('nan')", "float('inf')", "float('-inf')"].contains(&s.as_str()) =>
        {
            s.clone()
        }
        Value::String(s) => python_string(s),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_string(k), python_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Parses a literal as [`python_string`] writes it; returns it and the rest of the text.
pub fn parse_python_string(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &rest[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'x' | 'u' => {
                        let width = if e == 'x' { 2 } else { 4 };
                        let hex: String = (0..width)
                            .filter_map(|_| chars.next())
                            .map(|p| p.1)
                            .collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_render_as_python() {
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(-3.0), "-3.0");
        assert_eq!(python_float(1e-5), "1e-5");
        assert_eq!(python_float(f64::INFINITY), "float('inf')");
    }

    #[test]
    fn strings_escape_everything_that_could_break_out() {
        assert_eq!(python_string(r#"a"b'c\d"#), r#""a\"b'c\\d""#);
        assert_eq!(python_string("x\ny\u{1}"), r#""x\ny\x01""#);
        assert_eq!(python_string("naïve"), "\"naïve\"");
    }

    #[test]
    fn python_strings_round_trip() {
        for s in [
            "",
            "a\"b\\c\nd\te\r",
            "\u{1}\u{7f}x",
            "é\u{2028}z",
            "%time x = !ls",
        ] {
            let lit = python_string(s);
            let call = format!("{lit}, 4)");
            let (back, rest) = parse_python_string(&call).unwrap();
            assert_eq!(back, s);
            assert_eq!(rest, ", 4)");
        }
    }

    #[test]
    fn parameter_literals() {
        assert_eq!(python_literal(&json!(3)), "3");
        assert_eq!(python_literal(&json!(1.0)), "1.0");
        assert_eq!(python_literal(&json!(true)), "True");
        assert_eq!(python_literal(&json!("float('-inf')")), "float('-inf')");
        assert_eq!(python_literal(&json!("nan")), "\"nan\"");
        assert_eq!(python_literal(&json!("a\"b")), "\"a\\\"b\"");
    }
}
