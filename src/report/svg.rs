//! Bar charts as inline SVG a stakeholder can read without a script: a title, labelled axes with
//! units, gridlines with tick values, a legend, each bar's value written above it, and a dashed
//! marker per category for a threshold or a baseline. Every bar is a `<rect class="bar">` with
//! `data-category`, `data-series` and `data-value` (and a `<title>` tooltip), so the figures can be
//! read back from the page.

use super::num;
use std::fmt::Write;

/// Colours of the series, in order (Tableau 10: distinguishable, print in grey).
const PALETTE: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948"];
/// The colour of a flagged category's bars (drift, degraded).
const FLAGGED: &str = "#e15759";

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 64.0;

/// One series: a value per category (None: no figure, drawn as "n/a").
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    /// With the unit, e.g. "latency (ms)".
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    /// A marker per category (e.g. each feature's drift threshold), or empty.
    pub markers: Vec<Option<f64>>,
    /// What the markers are, for the legend ("threshold", "baseline").
    pub marker_label: String,
    /// Categories drawn in the alert colour (e.g. drifted features), or empty.
    pub flagged: Vec<bool>,
    /// What a flagged bar means, for the legend ("drift").
    pub flagged_label: String,
    /// Counts: axis ticks at whole numbers only.
    pub whole_numbers: bool,
}

impl BarChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> BarChart {
        BarChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            categories: Vec::new(),
            series: Vec::new(),
            markers: Vec::new(),
            marker_label: String::new(),
            flagged: Vec::new(),
            flagged_label: String::new(),
            whole_numbers: false,
        }
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let n = self.categories.len().max(1);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let values = self.series.iter().flat_map(|x| x.values.iter()).chain(&self.markers).flatten().copied();
        let (lo, hi) = values.filter(|v| v.is_finite()).fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let step = nice_step((hi - lo).max(f64::MIN_POSITIVE) / 5.0);
        let step = if self.whole_numbers { step.max(1.0) } else { step };
        let (y0, y1) = ((lo / step).floor() * step, ((hi / step).ceil() * step).max(step));
        let y = |v: f64| TOP + plot_h * (1.0 - (v - y0) / (y1 - y0));
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11"><title>{}</title>"#,
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<text class="chart-title" x="{}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            esc(&self.title)
        );
        // Gridlines and tick values.
        let mut t = y0;
        while t <= y1 + step / 2.0 {
            let ty = y(t);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                ty + 4.0,
                num((t / step).round() * step)
            );
            t += step;
        }
        // Axes and their labels.
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#333"/><line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            TOP + plot_h,
            WIDTH - RIGHT,
            y(0.0f64.clamp(y0, y1)),
            y(0.0f64.clamp(y0, y1)),
        );
        let _ = write!(
            s,
            r#"<text class="axis-label" x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 10.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text class="axis-label" x="16" y="{}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            esc(&self.y_label)
        );
        // Bars, grouped by category.
        let group_w = plot_w / n as f64;
        let k = self.series.len().max(1);
        let bar_w = (group_w * 0.8 / k as f64).min(48.0);
        let base = y(0.0f64.clamp(y0, y1));
        for (c, category) in self.categories.iter().enumerate() {
            let gx = LEFT + group_w * c as f64 + (group_w - bar_w * k as f64) / 2.0;
            let flagged = self.flagged.get(c).copied().unwrap_or(false);
            for (i, series) in self.series.iter().enumerate() {
                let x = gx + bar_w * i as f64;
                match series.values.get(c).copied().flatten().filter(|v| v.is_finite()) {
                    Some(v) => {
                        let (top, h) = if v >= 0.0 { (y(v), base - y(v)) } else { (base, y(v) - base) };
                        let colour = if flagged { FLAGGED } else { PALETTE[i % PALETTE.len()] };
                        let _ = write!(
                            s,
                            r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}" data-category="{}" data-series="{}" data-value="{}"><title>{} · {}: {}</title></rect>"#,
                            (bar_w - 2.0).max(1.0),
                            h.max(0.5),
                            esc(category),
                            esc(&series.name),
                            v,
                            esc(category),
                            esc(&series.name),
                            num(v)
                        );
                        let _ = write!(
                            s,
                            r#"<text class="value" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{}</text>"#,
                            x + bar_w / 2.0 - 1.0,
                            top - 3.0,
                            num(v)
                        );
                    }
                    None => {
                        let _ = write!(
                            s,
                            r##"<text class="na" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9" fill="#888">n/a</text>"##,
                            x + bar_w / 2.0 - 1.0,
                            base - 3.0
                        );
                    }
                }
            }
            if let Some(m) = self.markers.get(c).copied().flatten().filter(|v| v.is_finite()) {
                let my = y(m);
                let _ = write!(
                    s,
                    r##"<line class="marker" x1="{:.1}" x2="{:.1}" y1="{my:.1}" y2="{my:.1}" stroke="#222" stroke-width="2" stroke-dasharray="4 3" data-category="{}" data-value="{m}"><title>{} · {}: {}</title></line>"##,
                    gx - 4.0,
                    gx + bar_w * k as f64 + 2.0,
                    esc(category),
                    esc(category),
                    esc(&self.marker_label),
                    num(m)
                );
            }
            let _ = write!(
                s,
                r#"<text class="category" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                LEFT + group_w * (c as f64 + 0.5),
                TOP + plot_h + 16.0,
                esc(&short(category, (group_w / 6.5) as usize))
            );
        }
        // Legend: (colour, or None for the marker's dashed line; label).
        let mut legend: Vec<(Option<&str>, &str)> =
            self.series.iter().enumerate().map(|(i, x)| (Some(PALETTE[i % PALETTE.len()]), x.name.as_str())).collect();
        if self.flagged.iter().any(|f| *f) && !self.flagged_label.is_empty() {
            legend.push((Some(FLAGGED), &self.flagged_label));
        }
        if self.markers.iter().any(Option::is_some) && !self.marker_label.is_empty() {
            legend.push((None, &self.marker_label));
        }
        let (mut lx, ly) = (LEFT, 36.0);
        for (colour, label) in legend {
            let _ = match colour {
                Some(c) => write!(s, r#"<rect x="{lx:.1}" y="{:.1}" width="11" height="11" fill="{c}"/>"#, ly - 6.0),
                None => write!(
                    s,
                    r##"<line x1="{lx:.1}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="#222" stroke-width="2" stroke-dasharray="4 3"/>"##,
                    lx + 12.0
                ),
            };
            let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>", lx + 16.0, ly + 4.0, esc(label));
            lx += 16.0 + 7.0 * label.chars().count() as f64 + 14.0;
        }
        s.push_str("</svg>");
        s
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

/// At most `max` characters (at least 4), with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    let max = max.max(4);
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Escapes text for XML and HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        let mut c = BarChart::new("Latency <per> version", "version", "latency (ms)");
        c.categories = vec!["v1".into(), "v2".into()];
        c.series = vec![
            Series { name: "p50".into(), values: vec![Some(1.5), Some(2.0)] },
            Series { name: "p99".into(), values: vec![Some(12.25), None] },
        ];
        c
    }

    #[test]
    fn bars_carry_their_values_and_text_is_escaped() {
        let svg = chart().render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3);
        assert!(svg.contains(r#"data-category="v1" data-series="p99" data-value="12.25""#), "{svg}");
        assert!(svg.contains("Latency &lt;per&gt; version") && !svg.contains("<per>"));
        assert!(svg.contains(">latency (ms)</text>") && svg.contains(">version</text>"));
        assert!(svg.contains(">n/a<"), "a missing value is shown as such");
        // Legend entries for both series.
        assert!(svg.contains(">p50</text>") && svg.contains(">p99</text>"));
    }

    #[test]
    fn markers_and_flags_are_drawn_and_explained() {
        let mut c = chart();
        c.markers = vec![Some(10.0), None];
        c.marker_label = "threshold".into();
        c.flagged = vec![false, true];
        c.flagged_label = "drift".into();
        let svg = c.render();
        assert_eq!(svg.matches("<line class=\"marker\"").count(), 1);
        assert!(svg.contains(r#"data-category="v1" data-value="10""#));
        assert!(svg.contains(FLAGGED) && svg.contains(">drift</text>") && svg.contains(">threshold</text>"));
    }

    #[test]
    fn axis_steps_are_round_and_cover_the_data() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(40.0), 50.0);
        // Negative values (a gap below its baseline) and an empty chart render.
        let mut c = BarChart::new("gap", "metric", "gap");
        c.categories = vec!["accuracy".into()];
        c.series = vec![Series { name: "gap".into(), values: vec![Some(-0.07)] }];
        assert!(c.render().contains(r#"data-value="-0.07""#));
        assert!(BarChart::new("empty", "x", "y").render().ends_with("</svg>"));
        assert_eq!(short("a_long_feature_name", 8), "a_long_…");
        // Counts get whole-number ticks.
        let mut c = BarChart::new("counts", "score", "entries");
        c.categories = vec!["1".into(), "2".into()];
        c.series = vec![Series { name: "entries".into(), values: vec![Some(1.0), Some(2.0)] }];
        assert!(c.render().contains(">0.5</text>"));
        c.whole_numbers = true;
        let svg = c.render();
        assert!(!svg.contains(">0.5</text>") && svg.contains(">1</text>") && svg.contains(">2</text>"), "{svg}");
    }
}
