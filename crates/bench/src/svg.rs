//! Two small SVG charts, written directly: a line chart over categories and a bar chart of
//! ratios. (Plotting crates need a font stack to measure labels; SVG lets the viewer do it.)

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#7f7f7f", "#9467bd"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A tick step giving about five gridlines up to `max`.
fn step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        escape(title)
    );
}

fn y_axis(out: &mut String, max: f64) -> f64 {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = step(max);
    let top = (max / step).ceil().max(1.0) * step;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = TOP + plot_h * (1.0 - v / top);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            if step < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        );
        v += step;
    }
    top
}

/// Lines of `series` (name, a value per label) over the category `labels`.
pub fn line_chart(
    title: &str,
    x_title: &str,
    labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let top = y_axis(&mut out, max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / labels.len().max(1) as f64;
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(i),
            HEIGHT - BOTTOM + 18.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        escape(x_title)
    );
    for (n, (name, values)) in series.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| format!("{:.1},{:.1}", x(i), TOP + plot_h * (1.0 - v / top)))
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2.5" points="{}"/>"#,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                out,
                r#"<circle cx="{px}" cy="{py}" r="3.5" fill="{color}"/>"#
            );
        }
        let ly = TOP + 10.0 + n as f64 * 20.0;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            WIDTH - RIGHT + 16.0,
            ly - 2.0,
            WIDTH - RIGHT + 36.0,
            ly + 4.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Horizontal bars of ratios, with a line at 1.
pub fn ratio_bars(title: &str, bars: &[(String, f64)]) -> String {
    let row = 18.0;
    let height = TOP + BOTTOM + row * bars.len() as f64;
    let label_w = 170.0;
    let plot_w = WIDTH - label_w - 60.0;
    let max = bars.iter().map(|b| b.1).fold(1.0f64, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    for (i, (name, ratio)) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = plot_w * ratio / max;
        let color = if *ratio >= 1.0 { COLORS[2] } else { COLORS[1] };
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{:.1}">{ratio:.2}x</text>"#,
            label_w - 6.0,
            y + 12.0,
            escape(name),
            y + 2.0,
            row - 4.0,
            label_w + w + 4.0,
            y + 12.0
        );
    }
    let one = label_w + plot_w / max;
    let _ = write!(
        out,
        r#"<line x1="{one:.1}" y1="{}" x2="{one:.1}" y2="{:.1}" stroke="black" stroke-dasharray="4 3"/></svg>"#,
        TOP - 4.0,
        TOP + row * bars.len() as f64
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(step(100.0), 20.0);
        assert_eq!(step(7.0), 2.0);
        assert_eq!(step(26_000.0), 10_000.0);
    }

    #[test]
    fn a_chart_is_one_svg_with_a_line_per_series() {
        let svg = line_chart(
            "t <&>",
            "connections",
            &["1".into(), "8".into()],
            &[
                ("a".into(), vec![Some(1.0), Some(2.0)]),
                ("b".into(), vec![None, Some(3.0)]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;&amp;&gt;"));
    }
}
