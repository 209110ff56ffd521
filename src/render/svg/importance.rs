//! Parameter importance (fANOVA) as horizontal bars, most important first.

use std::fmt::Write as _;

use kale_search::importance::ParamImportance;

use super::Options;
use super::draw::{BLUE, empty, fit, open, title, xml};

pub fn importance(
    name: &str,
    objective: &str,
    imp: Result<&[ParamImportance], &String>,
    opts: &Options,
) -> String {
    let n = imp.map_or(0, |i| i.len());
    let (w, h) = (opts.width_or(820.0), (80.0 + 30.0 * n as f64).max(160.0));
    let mut svg = String::new();
    open(&mut svg, w, h, "importance");
    title(
        &mut svg,
        &format!("{name} — parameter importance for {objective} (fANOVA)"),
        w,
    );
    let imp = match imp {
        Ok(i) if !i.is_empty() => i,
        Ok(_) => return empty(&mut svg, w, h, "no parameters"),
        Err(why) => return empty(&mut svg, w, h, why),
    };
    let longest = imp
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4) as f64;
    let left = (longest * 7.5 + 24.0).clamp(80.0, 260.0);
    let width = w - left - 70.0;
    for (i, p) in imp.iter().enumerate() {
        let y = 50.0 + 30.0 * i as f64;
        let bw = (p.importance * width).max(0.5);
        let _ = writeln!(
            svg,
            r#"<g class="bar" data-param="{}"><title>{} {:.1}%</title><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left:.1}" y="{y:.1}" width="{bw:.1}" height="20" fill="{BLUE}"/><text x="{:.1}" y="{:.1}">{:.1}%</text></g>"#,
            xml(&p.name),
            xml(&p.name),
            100.0 * p.importance,
            left - 8.0,
            y + 14.0,
            xml(&fit(&p.name, left - 16.0, 12.0)),
            left + bw + 6.0,
            y + 14.0,
            100.0 * p.importance
        );
    }
    svg.push_str("</svg>\n");
    svg
}
