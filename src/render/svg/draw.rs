//! The SVG pieces every plot is made of: the document, its title, legend marks,
//! the framed plot area with its ticks, and text cut to fit.

use std::fmt::Write as _;

use super::axis::Axis;

pub const FONT: &str = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
pub const BLUE: &str = "#1f77b4";
pub const RED: &str = "#d62728";
pub const ORANGE: &str = "#ff7f0e";
pub const GREY: &str = "#8c8c8c";
pub const LIGHT_GREY: &str = "#c7c7c7";
pub const GREEN: &str = "#2ca02c";
/// Series colours of plots that overlay experiments (Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Rough width of text at `size` px in a sans-serif font (average glyph ≈ 0.6 em).
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// `s` cut with an ellipsis to fit `width` px.
pub fn fit(s: &str, width: f64, size: f64) -> String {
    let max = (width / (size * 0.6)).floor().max(1.0) as usize;
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The document: `data-plot` names the kind (the dashboard and the tests find plots by it).
pub fn open(svg: &mut String, w: f64, h: f64, kind: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12" role="img" aria-label="{kind}" data-plot="{kind}">"#,
        kind = xml(kind)
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
}

pub fn title(svg: &mut String, text: &str, w: f64) {
    let _ = writeln!(
        svg,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">{}</text>"#,
        xml(&fit(text, w - 24.0, 15.0))
    );
}

/// Marks, in legends and on the plot.
pub enum Mark<'a> {
    Dot(&'a str),
    Ring(&'a str),
    Cross(&'a str),
    Line(&'a str),
    Triangle(&'a str),
    /// A short thick bar (the timeline's).
    Bar(&'a str),
}

pub fn mark(svg: &mut String, m: &Mark, x: f64, y: f64) {
    let _ = match m {
        Mark::Dot(c) => write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{c}" fill-opacity="0.8"/>"#
        ),
        Mark::Ring(c) => write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="white" stroke="{c}" stroke-width="1.5"/>"#
        ),
        Mark::Cross(c) => write!(
            svg,
            r#"<path d="M{:.1},{:.1}l7,7m0,-7l-7,7" stroke="{c}" stroke-width="1.6"/>"#,
            x - 3.5,
            y - 3.5
        ),
        Mark::Line(c) => write!(
            svg,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="2.5"/>"#,
            x - 8.0,
            x + 8.0
        ),
        Mark::Triangle(c) => write!(
            svg,
            r#"<path d="M{:.1},{:.1}l4,7h-8z" fill="{c}"/>"#,
            x,
            y - 3.5
        ),
        Mark::Bar(c) => write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="7" fill="{c}"/>"#,
            x - 7.0,
            y - 3.5
        ),
    };
}

/// Lays the legend out in rows under the title; returns the y below it.
pub fn legend(svg: &mut String, items: &[(Mark, String)], w: f64, y0: f64) -> f64 {
    let (mut x, mut y) = (20.0, y0);
    for (m, label) in items {
        let label = fit(label, w - 60.0, 12.0);
        let item = 22.0 + text_width(&label, 12.0) + 18.0;
        if x > 20.0 && x + item > w - 10.0 {
            x = 20.0;
            y += 18.0;
        }
        mark(svg, m, x, y - 4.0);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{y:.1}" class="legend">{}</text>"#,
            x + 12.0,
            xml(&label)
        );
        x += item;
    }
    y + 14.0
}

/// Horizontal grid lines and tick labels of a y axis.
pub fn y_ticks(svg: &mut String, axis: &Axis, left: f64, right: f64, py: &dyn Fn(f64) -> f64) {
    for (v, label) in &axis.ticks {
        let y = py(*v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e6e6e6"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 4.0,
            xml(label)
        );
    }
}

/// A message in place of the plot; closes the document.
pub fn empty(svg: &mut String, w: f64, h: f64, why: &str) -> String {
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text></svg>"##,
        w / 2.0,
        h / 2.0,
        xml(why)
    );
    std::mem::take(svg)
}

/// A colour from light (worst) to dark (best) for a rank fraction in [0, 1].
pub fn ramp(f: f64) -> String {
    let f = f.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(198.0, 8.0),
        lerp(219.0, 48.0),
        lerp(239.0, 107.0)
    )
}

/// The rectangle data are drawn in, with an axis along each side.
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
    pub x: Axis,
    pub y: Axis,
    /// Room between the box and the x tick labels (the history draws failed and
    /// running trials there).
    pub under: f64,
}

impl Frame {
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.frac(v) * (self.right - self.left)
    }

    pub fn py(&self, v: f64) -> f64 {
        self.bottom - self.y.frac(v) * (self.bottom - self.top)
    }

    /// Inside the frame (with a little slack for marks on its edge).
    pub fn holds(&self, x: f64, y: f64) -> bool {
        x >= self.left - 1.0
            && x <= self.right + 1.0
            && y >= self.top - 1.0
            && y <= self.bottom + 1.0
    }

    /// Grid, tick labels, the box, the axis labels; then the clip path `clip-ID`
    /// (one per plot kind: a page holds several plots, and ids are the page's) that
    /// data drawn in the frame use, and the area the dashboard's script zooms in (its
    /// data ranges in `data-x`/`data-y`).
    pub fn draw(&self, svg: &mut String, id: &str, x_label: &str, y_label: &str) {
        let (l, t, r, b) = (self.left, self.top, self.right, self.bottom);
        y_ticks(svg, &self.y, l, r, &|v| self.py(v));
        for (v, label) in &self.x.ticks {
            let x = self.px(*v);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{t:.1}" x2="{x:.1}" y2="{b:.1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                b + self.under + 16.0,
                xml(&fit(label, 90.0, 12.0))
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{l:.1}" y="{t:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            r - l,
            b - t
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="x-label">{}</text>"#,
            (l + r) / 2.0,
            b + self.under + 36.0,
            xml(&fit(x_label, r - l, 12.0))
        );
        let mid = (t + b) / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="16" y="{mid:.1}" transform="rotate(-90 16 {mid:.1})" text-anchor="middle" class="y-label">{}</text>"#,
            xml(&fit(y_label, b - t, 12.0))
        );
        let _ = writeln!(
            svg,
            r#"<defs><clipPath id="clip-{id}"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/></clipPath></defs><rect class="zoom-area" x="{l:.1}" y="{t:.1}" width="{:.1}" height="{:.1}" fill="transparent" data-x="{}" data-y="{}"/>"#,
            l - 6.0,
            t - 6.0,
            r - l + 12.0,
            b - t + 12.0,
            r - l,
            b - t,
            self.x.attr(),
            self.y.attr()
        );
    }
}

/// `trial 7 · succeeded · score=0.93 · x=1.5 y=b`: what hovering a trial's mark says.
pub fn trial_tip(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_fit() {
        let s = fit(&"x".repeat(200), 120.0, 12.0);
        assert!(text_width(&s, 12.0) <= 120.0);
        assert!(s.ends_with('…'));
        assert_eq!(fit("short", 120.0, 12.0), "short");
    }
}
