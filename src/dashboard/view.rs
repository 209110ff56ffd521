//! What a page shows of an experiment, read from its query: the objective, the
//! parameters picked for slice, parallel and contour plots, each plot's zoom, the
//! log scale, and the width to draw at. The plot endpoint reads the same query, so
//! the page's script asks for a plot with the page's own query string.

use std::collections::BTreeMap;

use crate::render::svg::{Kind, Options};

/// A plot's x and y ranges, when zoomed.
type Ranges = (Option<(f64, f64)>, Option<(f64, f64)>);

#[derive(Clone, Debug, Default)]
pub struct View {
    pub objective: Option<String>,
    /// The Pareto plot's objectives on x and y (the first two by default).
    pub px: Option<String>,
    pub py: Option<String>,
    pub log: bool,
    pub width: Option<f64>,
    pub slice: Vec<String>,
    pub parallel: Vec<String>,
    /// The contour's x and y parameters.
    pub cx: Option<String>,
    pub cy: Option<String>,
    /// Per plot kind: its x and y ranges (`history.x=LO,HI`).
    zoom: BTreeMap<String, Ranges>,
}

fn range(v: &str) -> Option<(f64, f64)> {
    let (lo, hi) = v.split_once(',')?;
    let (lo, hi) = (
        lo.trim().parse::<f64>().ok()?,
        hi.trim().parse::<f64>().ok()?,
    );
    (lo.is_finite() && hi.is_finite() && hi > lo).then_some((lo, hi))
}

fn names(query: &[(String, String)], key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in query
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
    {
        let v = v.trim();
        if !v.is_empty() && !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}

impl View {
    /// From the query, with the width the page's script keeps in the `kale_w` cookie
    /// (a `w=` in the query wins).
    pub fn from_query(query: &[(String, String)], cookie_width: Option<f64>) -> View {
        let one = |k: &str| {
            query
                .iter()
                .rev()
                .find(|(key, v)| key == k && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        };
        let mut zoom: BTreeMap<String, Ranges> = BTreeMap::new();
        for (k, v) in query {
            if let Some((kind, axis)) = k.rsplit_once('.') {
                let entry = zoom.entry(kind.to_string()).or_default();
                match axis {
                    "x" => entry.0 = range(v),
                    "y" => entry.1 = range(v),
                    _ => {}
                }
            }
        }
        View {
            objective: one("objective"),
            px: one("px"),
            py: one("py"),
            log: query.iter().any(|(k, v)| k == "log" && v != "0"),
            width: one("w").and_then(|w| w.parse().ok()).or(cookie_width),
            slice: names(query, "slice"),
            parallel: names(query, "parallel"),
            cx: one("cx"),
            cy: one("cy"),
            zoom,
        }
    }

    /// The drawing options of one plot of the page.
    pub fn options(&self, kind: Kind) -> Options {
        let (x_range, y_range) = self.zoom.get(kind.name()).copied().unwrap_or_default();
        let params = match kind {
            Kind::Slice => self.slice.clone(),
            Kind::Parallel => self.parallel.clone(),
            Kind::Contour => self.cx.iter().chain(&self.cy).cloned().collect(),
            _ => Vec::new(),
        };
        let (objective, objective2) = match kind {
            Kind::Pareto => (self.px.clone(), self.py.clone()),
            _ => (self.objective.clone(), None),
        };
        Options {
            log_y: self.log,
            width: self.width,
            objective,
            objective2,
            params,
            x_range,
            y_range,
        }
    }

    /// Whether a plot is zoomed in.
    pub fn zoomed(&self, kind: Kind) -> bool {
        self.zoom
            .get(kind.name())
            .is_some_and(|(x, y)| x.is_some() || y.is_some())
    }
}

/// The page width the script stored (`kale_w=1360`), from a `Cookie` header.
pub fn cookie_width(cookie: Option<&str>) -> Option<f64> {
    cookie?
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("kale_w="))
        .find_map(|w| w.parse::<f64>().ok())
        .filter(|w| w.is_finite() && *w > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_plot_gets_its_own_zoom_and_picks() {
        let v = View::from_query(
            &q(&[
                ("history.x", "2,9"),
                ("history.y", "0.5,0.9"),
                ("pareto.x", "1,0"),
                ("slice", "lr,depth"),
                ("slice", "lr"),
                ("cx", "lr"),
                ("cy", "depth"),
                ("objective", "latency"),
            ]),
            Some(1300.0),
        );
        let h = v.options(Kind::History);
        assert_eq!((h.x_range, h.y_range), (Some((2.0, 9.0)), Some((0.5, 0.9))));
        assert_eq!(h.objective.as_deref(), Some("latency"));
        assert_eq!(h.width, Some(1300.0));
        // A reversed range is no range.
        assert_eq!(v.options(Kind::Pareto).x_range, None);
        assert_eq!(v.options(Kind::Slice).params, ["lr", "depth"]);
        assert_eq!(v.options(Kind::Contour).params, ["lr", "depth"]);
        assert!(v.zoomed(Kind::History) && !v.zoomed(Kind::Timeline));
    }

    #[test]
    fn the_width_comes_from_the_cookie_the_script_sets() {
        assert_eq!(cookie_width(Some("a=1; kale_w=1234")), Some(1234.0));
        assert_eq!(cookie_width(Some("kale_w=x")), None);
        assert_eq!(cookie_width(None), None);
    }
}
