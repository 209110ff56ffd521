//! A plot on a page: its section, its tools (pickers, reset, download) and the
//! drawing. Pickers are inputs of the page's `view` form, so they work as a plain GET
//! form without the script; with it, a change redraws at once.

use std::fmt::Write as _;

use super::enc;
use crate::render::svg::{Kind, xml};

pub struct Section<'a> {
    pub id: &'a str,
    pub heading: String,
    /// The experiment the plot is of (empty on the compare page).
    pub exp: &'a str,
    pub kind: Kind,
    pub controls: String,
    pub svg: String,
    pub zoomed: bool,
}

pub fn section(s: Section) -> String {
    let src = if s.exp.is_empty() {
        format!("/plot-compare/{}.svg", s.kind.name())
    } else {
        format!("/plot/{}/{}.svg", enc(s.exp), s.kind.name())
    };
    let zoom = if s.kind.zooms() {
        format!(
            r#"<span class="hint">drag to zoom · shift-drag to pan · wheel zooms · double-click resets</span> <button type="button" class="reset" data-reset="{}"{}>reset zoom</button> "#,
            s.kind.name(),
            if s.zoomed { "" } else { " hidden" }
        )
    } else {
        String::new()
    };
    format!(
        r#"<section id="{}" class="plot-section"><h2>{}</h2><div class="tools">{}{zoom}<a class="download" href="{src}" download>SVG</a></div><div class="plot" data-kind="{}" data-exp="{}" data-src="{src}">{}</div></section>
"#,
        s.id,
        xml(&s.heading),
        s.controls,
        s.kind.name(),
        xml(s.exp),
        s.svg
    )
}

/// The page's form the pickers and the filter belong to (`form="view"`).
pub fn view_form() -> &'static str {
    r#"<form id="view" method="get" action=""><noscript><button type="submit">Apply</button></noscript></form>"#
}

/// A `<select>` of the view form.
pub fn select(key: &str, label: &str, options: &[String], picked: Option<&str>) -> String {
    let mut s = format!(
        r#"<label class="picker">{} <select form="view" name="{}" data-picker="{}">"#,
        xml(label),
        xml(key),
        xml(key)
    );
    for o in options {
        let _ = write!(
            s,
            r#"<option value="{}"{}>{}</option>"#,
            xml(o),
            if Some(o.as_str()) == picked {
                " selected"
            } else {
                ""
            },
            xml(o)
        );
    }
    s.push_str("</select></label> ");
    s
}

/// Checkboxes of the view form, one per parameter; none ticked shows them all.
pub fn checkboxes(key: &str, label: &str, options: &[String], picked: &[String]) -> String {
    let mut s = format!(
        r#"<span class="picker" data-picker="{}">{} "#,
        xml(key),
        xml(label)
    );
    for o in options {
        let _ = write!(
            s,
            r#"<label><input type="checkbox" form="view" name="{}" value="{}"{}> {}</label> "#,
            xml(key),
            xml(o),
            if picked.contains(o) { " checked" } else { "" },
            xml(o)
        );
    }
    s.push_str("</span> ");
    s
}
