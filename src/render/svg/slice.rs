//! Slice plots: one panel per parameter, its value against the objective, a dot per
//! succeeded trial (darker for later trials), infeasible trials as grey crosses.

use std::fmt::Write as _;

use super::axis::{Axis, Scale, param_scales, value_axis};
use super::draw::{
    GREY, Mark, empty, fit, legend, mark, open, ramp, title, trial_tip, xml, y_ticks,
};
use super::{Options, Target, succeeded};
use crate::format::{num, value_text};
use crate::store::{Experiment, TrialRow};

const PANEL_W: f64 = 290.0;
const PANEL_H: f64 = 240.0;

pub fn slice(e: &Experiment, trials: &[TrialRow], target: &Target, opts: &Options) -> String {
    let ok = succeeded(trials, target);
    let scales = param_scales(e, &ok, &opts.params);
    let width = opts
        .width_or(PANEL_W * scales.len().clamp(1, 3) as f64)
        .max(600.0);
    let cols = ((width / PANEL_W).floor() as usize).clamp(1, scales.len().max(1));
    let pw = width / cols as f64;
    let rows = scales.len().div_ceil(cols).max(1);
    let (w, h) = (width, 70.0 + PANEL_H * rows as f64);
    let mut svg = String::new();
    open(&mut svg, w, h, "slice");
    title(
        &mut svg,
        &format!("{} — slice plots of {}", e.spec.name, target.name),
        w,
    );
    let infeasible = ok.iter().filter(|t| !t.is_feasible()).count();
    let (light, dark) = (ramp(0.0), ramp(1.0));
    let mut items = vec![
        (Mark::Dot(&light), "early trial".to_string()),
        (Mark::Dot(&dark), "late trial".to_string()),
    ];
    if infeasible > 0 {
        items.push((Mark::Cross(GREY), format!("infeasible ({infeasible})")));
    }
    legend(&mut svg, &items, w, 44.0);
    if ok.is_empty() {
        return empty(&mut svg, w, h, "no succeeded trials yet");
    }
    let values: Vec<f64> = ok.iter().filter_map(|t| target.value(t)).collect();
    let obj = value_axis(&values, opts.log_y, 5);
    let last = ok.iter().map(|t| t.number).max().unwrap_or(1).max(1) as f64;
    for (i, (name, scale)) in scales.iter().enumerate() {
        let panel = Panel {
            left: pw * (i % cols) as f64 + 74.0,
            right: pw * (i % cols + 1) as f64 - 14.0,
            top: 62.0 + PANEL_H * (i / cols) as f64 + 8.0,
            bottom: 62.0 + PANEL_H * (i / cols + 1) as f64 - 48.0,
        };
        panel.frame(&mut svg, name, scale, &obj, target, opts.log_y && obj.log);
        for t in &ok {
            panel.dot(&mut svg, t, name, scale, &obj, target, last);
        }
    }
    svg.push_str("</svg>\n");
    svg
}

struct Panel {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Panel {
    fn py(&self, obj: &Axis, v: f64) -> f64 {
        self.top + (1.0 - obj.frac(v)) * (self.bottom - self.top)
    }

    fn px(&self, f: f64) -> f64 {
        self.left + 8.0 + f * (self.right - self.left - 16.0)
    }

    /// Box, ticks, and both axis labels: the parameter under it, the objective beside it.
    fn frame(
        &self,
        svg: &mut String,
        name: &str,
        scale: &Scale,
        obj: &Axis,
        target: &Target,
        log: bool,
    ) {
        y_ticks(svg, obj, self.left, self.right, &|v| self.py(obj, v));
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            self.left,
            self.top,
            self.right - self.left,
            self.bottom - self.top
        );
        for (f, label) in scale.ticks() {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                self.px(f),
                self.bottom + 15.0,
                xml(&fit(&label, 60.0, 11.0))
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" class="x-label">{}{}</text>"#,
            (self.left + self.right) / 2.0,
            self.bottom + 34.0,
            xml(&fit(name, self.right - self.left, 12.0)),
            if scale.is_log() { " (log)" } else { "" }
        );
        let (x, mid) = (self.left - 58.0, (self.top + self.bottom) / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{mid:.1}" transform="rotate(-90 {x:.1} {mid:.1})" text-anchor="middle" class="y-label">{}{}</text>"#,
            xml(&fit(&target.name, self.bottom - self.top, 12.0)),
            if log { " (log)" } else { "" }
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn dot(
        &self,
        svg: &mut String,
        t: &TrialRow,
        name: &str,
        scale: &Scale,
        obj: &Axis,
        target: &Target,
        last: f64,
    ) {
        let (Some(f), Some(v)) = (
            t.params.get(name).and_then(|p| scale.frac(p)),
            target.value(t),
        ) else {
            return;
        };
        let tip = trial_tip(&[
            format!("trial {}", t.number),
            format!("{name}={}", value_text(&t.params[name])),
            format!("{}={}", target.name, num(v)),
            if t.is_feasible() {
                String::new()
            } else {
                "infeasible".into()
            },
        ]);
        let _ = write!(
            svg,
            r#"<g class="trial" data-trial="{}"><title>{}</title>"#,
            t.number,
            xml(&tip)
        );
        let (x, y) = (self.px(f), self.py(obj, v));
        if t.is_feasible() {
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{}" fill-opacity="0.85"/>"#,
                ramp(t.number as f64 / last)
            );
        } else {
            mark(svg, &Mark::Cross(GREY), x, y);
        }
        svg.push_str("</g>\n");
    }
}
