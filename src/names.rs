//! The one rule for names that become paths and cluster objects.
//!
//! An experiment's name becomes run directories (`.kale/runs/<experiment>-t3-…`), a
//! Katib Experiment and its trials' pods; a pipeline's name becomes the default
//! experiment name and the KFP pipeline. All of them must be a Kubernetes DNS label as
//! Katib defines it (RFC 1035): lowercase letters, digits and `-`, starting with a
//! letter, ending with a letter or digit, at most 63 characters. Such a name can
//! never leave the folder it is joined to, and the cluster accepts it unchanged.
//!
//! Step names keep Kale's own rule (`[_a-z][_a-z0-9]*`, checked where the `step:` tag
//! is parsed): the same alphabet with `_` for `-`, which KFP's task names turn back
//! into `-`; they are held to the same length.

/// Longest name: a DNS label's limit.
pub const MAX_LEN: usize = 63;

/// Why `name` does not follow the rule, or `None` when it does.
pub fn problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_LEN {
        return Some(format!(
            "it is {} characters long (at most {MAX_LEN})",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "it contains {} (only lowercase letters, digits and `-`)",
            describe(c)
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("it does not start with a lowercase letter".into());
    }
    if name.ends_with('-') {
        return Some("it ends with `-`".into());
    }
    None
}

/// Checks a name given for `what` (`experiment`, `pipeline`, ...): the error says
/// why it is refused and what would be accepted.
pub fn check(what: &str, name: &str) -> crate::Result<()> {
    match problem(name) {
        None => Ok(()),
        Some(why) => {
            let mut error = crate::Error::bad_input(format!(
                "`{}` cannot name {what}: {why}",
                shown(name)
            ))
            .with_hint(format!(
                "names are Kubernetes DNS labels, as Katib and KFP need: lowercase letters, digits and `-`, starting with a letter, at most {MAX_LEN} characters"
            ));
            if let Some(s) = suggestion(name) {
                error = error.with_hint(format!("e.g. `{s}`"));
            }
            Err(error)
        }
    }
}

/// The nearest name that follows the rule: lowercase, every run of other characters
/// one `-`, a leading letter, cut to [`MAX_LEN`]; `None` when nothing usable is left
/// (no letter or digit at all).
pub fn suggestion(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() > MAX_LEN + 8 {
            break;
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if out.is_empty() {
        return None;
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "p-");
    }
    out.truncate(MAX_LEN);
    let out = out.trim_end_matches('-').to_string();
    debug_assert!(problem(&out).is_none(), "{out}");
    Some(out)
}

/// A name as an error message shows it: control characters escaped, long ones cut.
pub fn shown(name: &str) -> String {
    let escaped: String = name.chars().flat_map(char::escape_default).collect();
    if escaped.chars().count() > 80 {
        let cut: String = escaped.chars().take(60).collect();
        format!("{cut}… ({} characters)", name.chars().count())
    } else {
        escaped
    }
}

fn describe(c: char) -> String {
    match c {
        '/' => "`/`".into(),
        '\n' => "a newline".into(),
        c if c.is_control() => format!("the control character {:?}", c),
        c if c.is_ascii_uppercase() => format!("the uppercase letter `{c}`"),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_labels_pass() {
        for ok in ["a", "digits-3", "x1", &"a".repeat(63)] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "../../x",
            "a/b",
            "..",
            "-a",
            "a-",
            "1a",
            "A",
            "a_b",
            "a b",
            "a\nb",
            "é",
            &"a".repeat(64),
        ] {
            assert!(problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn suggestions_follow_the_rule() {
        assert_eq!(suggestion("My_Pipeline").as_deref(), Some("my-pipeline"));
        assert_eq!(
            suggestion("../../../elsewhere/x").as_deref(),
            Some("elsewhere-x")
        );
        assert_eq!(suggestion("2024 run").as_deref(), Some("p-2024-run"));
        assert_eq!(suggestion("///"), None);
        assert_eq!(suggestion(&"x".repeat(10_000)).unwrap().len(), MAX_LEN);
    }

    #[test]
    fn errors_show_hostile_names_harmlessly() {
        let e = check("an experiment", &format!("a\n{}", "b".repeat(500)))
            .unwrap_err()
            .render()
            .unwrap();
        assert!(e.contains("a\\nbbb"), "{e}");
        assert!(e.contains("502 characters"), "{e}");
        assert!(e.contains("hint: names are Kubernetes DNS labels"), "{e}");
    }
}
