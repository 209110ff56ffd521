//! Rendering pipeline-parameter values: as JSON for `inspect`, as Python source for the
//! generated step programs.

use serde_json::Value;

use crate::analysis::ParamValue;

impl ParamValue {
    /// `int`, `float`, `str` or `bool`, the names the `inspect --json` contract uses.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Int(_) => "int",
            ParamValue::Float(_) => "float",
            ParamValue::Str(_) => "str",
            ParamValue::Bool(_) => "bool",
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(python_float(*f))),
            ParamValue::Str(s) => Value::String(s.clone()),
            ParamValue::Bool(b) => Value::Bool(*b),
        }
    }

    /// A Python literal that evaluates to exactly this value.
    pub fn to_python(&self) -> String {
        match self {
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => python_float(*f),
            ParamValue::Str(s) => python_string(s),
            ParamValue::Bool(true) => "True".into(),
            ParamValue::Bool(false) => "False".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
