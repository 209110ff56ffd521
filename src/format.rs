//! How every view writes numbers, values and sizes.

use serde_json::Value;

/// A number the way every view writes it: at most 6 significant digits, no
/// trailing zeros, exponent form only for very large or small magnitudes.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&mag) {
        let s = format!("{v:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        return format!("{m}e{e}");
    }
    let decimals = (5 - mag).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A stored parameter or metric value as text: numbers through [`num`], strings bare.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `12.3 MiB`: sizes as people read them.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_round_trip_to_six_digits() {
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(0.987654321), "0.987654");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(123456.0), "123456");
        assert_eq!(num(1234567.0), "1.23457e6");
        assert_eq!(num(0.00012), "1.2e-4");
        assert_eq!(num(-3.0), "-3");
        assert_eq!(num(0.0), "0");
    }
}
