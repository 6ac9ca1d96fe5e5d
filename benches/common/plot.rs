//! The latency distributions `examples/compare.rs` measured, drawn as CDF
//! curves in an SVG: x is the latency of a call on a log scale (the old design
//! is hundreds to thousands of times slower than the floor), y the share of
//! calls that took at most that long, with the p50 and p99 of every curve
//! marked; the legend is under the chart, where it can hide no curve.
//!
//! Included by `examples/compare.rs` beside `common` (it reads
//! `common::samples`); its tests run with that example's under
//! `cargo test --all-targets`.

use crate::common::samples::{fmt_time, Res, Samples};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Readable at the README's width.
pub const SIZE: (u32, u32) = (900, 500);
const MARGIN: u32 = 12;
/// The width of the y axis' labels: the legend starts under the plot.
const Y_LABELS: u32 = 78;
/// The height of a legend row.
const LEGEND_ROW: u32 = 20;

/// The share of calls at each horizontal grid line; p50 and p99 are marked.
const Y_TICKS: [f64; 6] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.99];

/// How finely a curve is kept, as a share of each axis: about a pixel. A
/// 10,000-sample curve is a few hundred points, not 20,000.
const RESOLUTION: f64 = 1.0 / 1_000.0;

/// How a curve is drawn.
#[derive(Clone, Copy)]
pub enum Stroke {
    /// A wide pale band: a floor, for a thin line to be read against.
    Band,
    /// A thin solid line.
    Line,
    /// A thin dashed line.
    Dashed,
}

/// One measurement's samples and how to draw them.
pub struct Curve<'a> {
    pub name: String,
    pub samples: &'a Samples,
    pub color: RGBColor,
    pub stroke: Stroke,
}

impl<'a> Curve<'a> {
    pub fn new(
        name: impl Into<String>,
        samples: &'a Samples,
        color: RGBColor,
        stroke: Stroke,
    ) -> Self {
        let name = name.into();
        Curve {
            name,
            samples,
            color,
            stroke,
        }
    }

    /// The legend entry: the name, then the p50 and p99 the table prints.
    fn label(&self) -> String {
        let (p50, p99) = (fmt_time(self.samples.p50()), fmt_time(self.samples.p99()));
        format!("{}: p50 {p50}, p99 {p99}", self.name)
    }

    fn style(&self) -> ShapeStyle {
        match self.stroke {
            Stroke::Band => self.color.mix(0.3).stroke_width(8),
            Stroke::Line | Stroke::Dashed => self.color.stroke_width(2),
        }
    }
}

/// The chart: latency in µs on a log axis, the share of calls on a linear one.
type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

/// Writes the figure to `path`, making its directory if needed.
pub fn write_svg(path: &Path, title: &str, curves: &[Curve]) -> Res<()> {
    let svg = render_svg(title, curves)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, svg)?;
    Ok(())
}

/// The figure as SVG text.
pub fn render_svg(title: &str, curves: &[Curve]) -> Res<String> {
    if curves.iter().any(|c| c.samples.0.is_empty()) {
        return Err("a curve without samples".into());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root, title, curves)?;
        root.present()?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The chart above, its legend below it in two columns (in the curves'
/// order, row by row).
fn draw(root: &Area, title: &str, curves: &[Curve]) -> Res<()> {
    let rows = curves.len().div_ceil(2) as u32;
    let (chart, legend) = root.split_vertically(SIZE.1 - LEGEND_ROW * rows - 8);
    draw_chart(&chart, title, curves)?;
    draw_legend(&legend, curves)
}

fn draw_chart(area: &Area, title: &str, curves: &[Curve]) -> Res<()> {
    let (lo, hi) = x_range(curves);
    let x = (lo..hi).log_scale().with_key_points(x_ticks(lo, hi));
    // A little room above 1, so the slowest calls do not run along the frame.
    let y = (0.0..1.02).with_key_points(Y_TICKS.to_vec());
    let y = y.partial_axis(0.0..1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 19))
        .margin(MARGIN)
        .x_label_area_size(44)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("latency of one call (log scale)")
        .y_desc("share of calls at most this slow")
        .x_label_formatter(&|us| tick_label(*us))
        .y_label_formatter(&|share| share_label(*share))
        .bold_line_style(BLACK.mix(0.12))
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .draw()?;
    let step = (hi / lo).log10() * RESOLUTION;
    for curve in curves {
        draw_curve(&mut chart, curve, step)?;
    }
    for curve in curves {
        draw_percentiles(&mut chart, curve)?;
    }
    Ok(())
}

fn draw_curve<X, Y>(chart: &mut Chart<X, Y>, curve: &Curve, step: f64) -> Res<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let points = cdf(curve.samples, step, RESOLUTION);
    let style = curve.style();
    match curve.stroke {
        Stroke::Dashed => chart.draw_series(DashedLineSeries::new(points, 7, 4, style))?,
        Stroke::Band | Stroke::Line => chart.draw_series(LineSeries::new(points, style))?,
    };
    Ok(())
}

fn draw_legend(area: &Area, curves: &[Curve]) -> Res<()> {
    let left = (MARGIN + Y_LABELS) as i32;
    let column = (SIZE.0 as i32 - left) / 2;
    let font = ("sans-serif", 13).into_font();
    let text = font.color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, curve) in curves.iter().enumerate() {
        let x = left + column * (i % 2) as i32;
        let y = (LEGEND_ROW * (i / 2) as u32 + LEGEND_ROW / 2) as i32;
        draw_key(area, curve, (x, y))?;
        area.draw(&Text::new(curve.label(), (x + 36, y), &text))?;
    }
    Ok(())
}

/// A short stretch of the curve's stroke.
fn draw_key(area: &Area, curve: &Curve, (x, y): (i32, i32)) -> Res<()> {
    let style = curve.style();
    let segments = match curve.stroke {
        Stroke::Dashed => vec![(x, x + 7), (x + 11, x + 18), (x + 22, x + 28)],
        Stroke::Band | Stroke::Line => vec![(x, x + 28)],
    };
    for (from, to) in segments {
        area.draw(&PathElement::new([(from, y), (to, y)], style))?;
    }
    Ok(())
}

/// A dot where the curve crosses p50 and p99: filled on a line, hollow on a band.
fn draw_percentiles<X, Y>(chart: &mut Chart<X, Y>, curve: &Curve) -> Res<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let marks = [(0.5, curve.samples.p50()), (0.99, curve.samples.p99())];
    let style = match curve.stroke {
        Stroke::Band => curve.color.stroke_width(2),
        Stroke::Line | Stroke::Dashed => curve.color.filled(),
    };
    let dot = |(share, at): (f64, std::time::Duration)| {
        Circle::new((at.as_secs_f64() * 1e6, share), 4, style)
    };
    chart.draw_series(marks.into_iter().map(dot))?;
    Ok(())
}

/// The empirical CDF of `samples` as a staircase of (µs, share) points, a
/// point kept only when it is `x_step` (in log10 µs) or `y_step` from the last.
pub fn cdf(samples: &Samples, x_step: f64, y_step: f64) -> Vec<(f64, f64)> {
    let mut us: Vec<f64> = samples.0.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let n = us.len() as f64;
    let stairs = us
        .iter()
        .enumerate()
        .flat_map(|(i, &x)| [(x, i as f64 / n), (x, (i + 1) as f64 / n)]);
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (x, y) in stairs {
        let far = |&(px, py): &(f64, f64)| {
            (x.log10() - px.log10()).abs() >= x_step || (y - py).abs() >= y_step
        };
        if points.last().is_none_or(far) {
            points.push((x, y));
        }
    }
    if let (Some(&last), Some(&max)) = (points.last(), us.last()) {
        if last != (max, 1.0) {
            points.push((max, 1.0));
        }
    }
    points
}

/// From a 1-2-5 step at or below the fastest sample to one at or above the slowest.
fn x_range(curves: &[Curve]) -> (f64, f64) {
    let all = curves.iter().flat_map(|c| c.samples.0.iter());
    let us: Vec<f64> = all.map(|d| d.as_secs_f64() * 1e6).collect();
    let min = us.iter().copied().fold(f64::INFINITY, f64::min);
    let max = us.iter().copied().fold(0.0, f64::max);
    let steps = one_two_five(min, max);
    let lo = steps.iter().rev().find(|&&s| s <= min).copied();
    let hi = steps.iter().find(|&&s| s >= max).copied();
    (lo.unwrap_or(min), hi.unwrap_or(max))
}

/// The labelled latencies: 1-2-5 steps within the range, or 1-3 steps when it
/// spans more than four decades (the labels would crowd).
fn x_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let wide = (hi / lo).log10() > 4.0;
    let steps: &[f64] = if wide { &[1.0, 3.0] } else { &[1.0, 2.0, 5.0] };
    decades(lo, hi)
        .flat_map(|p| steps.iter().map(move |m| m * p))
        .filter(|&s| s >= lo * 0.999 && s <= hi * 1.001)
        .collect()
}

/// 1, 2 and 5 times each power of ten from a decade below `min` to one above `max`.
fn one_two_five(min: f64, max: f64) -> Vec<f64> {
    decades(min, max)
        .flat_map(|p| [p, 2.0 * p, 5.0 * p])
        .collect()
}

/// The powers of ten from a decade below `min` to one above `max`.
fn decades(min: f64, max: f64) -> impl Iterator<Item = f64> {
    let first = min.log10().floor() as i32 - 1;
    let last = max.log10().ceil() as i32 + 1;
    (first..=last).map(|e| 10f64.powi(e))
}

/// `20 µs`, `500 µs`, `3 ms`, `1 s`.
fn tick_label(us: f64) -> String {
    let round = |v: f64| (v * 1_000.0).round() / 1_000.0;
    match us {
        us if us >= 1e6 => format!("{} s", round(us / 1e6)),
        us if us >= 1e3 => format!("{} ms", round(us / 1e3)),
        us => format!("{} µs", round(us)),
    }
}

fn share_label(share: f64) -> String {
    match share {
        s if (s - 0.5).abs() < 1e-9 => "p50  0.5".into(),
        s if (s - 0.99).abs() < 1e-9 => "p99  0.99".into(),
        s => format!("{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `n` samples spread log-uniformly over `from..to` µs (a seeded walk).
    fn samples(n: usize, from: f64, to: f64, seed: u64) -> Samples {
        let mut rng = crate::common::Rng::new(seed);
        let us = |u: f64| from * (to / from).powf(u);
        let sample = |_| Duration::from_secs_f64(us(rng.unit()) / 1e6);
        Samples((0..n).map(sample).collect())
    }

    #[test]
    fn the_cdf_climbs_from_the_fastest_sample_to_one_in_few_points() {
        let s = samples(10_000, 15.0, 900.0, 1);
        let points = cdf(&s, (900.0f64 / 15.0).log10() * RESOLUTION, RESOLUTION);
        assert!(points.len() < 3_000, "{} points", points.len());
        let climbs = |w: &[(f64, f64)]| w[0].0 <= w[1].0 && w[0].1 <= w[1].1;
        assert!(points.windows(2).all(climbs));
        let min = s.0.iter().min().unwrap().as_secs_f64() * 1e6;
        let max = s.0.iter().max().unwrap().as_secs_f64() * 1e6;
        assert_eq!(points[0], (min, 0.0));
        assert_eq!(*points.last().unwrap(), (max, 1.0));
        // Steps that far apart on the chart are all drawn.
        let few = cdf(&samples(100, 3_000.0, 90_000.0, 2), 1e-9, 1e-3);
        assert_eq!(few.len(), 200);
    }

    #[test]
    fn ticks_step_1_2_5_and_label_their_unit() {
        assert_eq!(x_range_of(12.0, 95_000.0), (10.0, 100_000.0));
        assert_eq!(
            x_ticks(10.0, 1_000.0),
            [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3]
        );
        let wide = x_ticks(10.0, 200_000.0);
        assert_eq!(wide[..4], [10.0, 30.0, 100.0, 300.0]);
        assert_eq!(*wide.last().unwrap(), 100_000.0);
        let labels: Vec<_> = [20.0, 500.0, 3_000.0, 1e6].map(tick_label).into();
        assert_eq!(labels, ["20 µs", "500 µs", "3 ms", "1 s"]);
    }

    fn x_range_of(min: f64, max: f64) -> (f64, f64) {
        let at = |us: f64| Duration::from_secs_f64(us / 1e6);
        let s = Samples(vec![at(min), at(max)]);
        x_range(&[curve("x", &s, Stroke::Line)])
    }

    fn curve<'a>(name: &str, samples: &'a Samples, stroke: Stroke) -> Curve<'a> {
        Curve::new(name, samples, RGBColor(0, 114, 178), stroke)
    }

    #[test]
    fn the_svg_names_every_curve_and_is_one_closed_document() {
        let (floor, ours, old) = (
            samples(10_000, 15.0, 400.0, 3),
            samples(10_000, 16.0, 450.0, 4),
            samples(100, 30_000.0, 120_000.0, 5),
        );
        let curves = [
            curve("floor: GET of 5,200 B", &floor, Stroke::Band),
            curve("iftb-cache get_bars(.., 100)", &ours, Stroke::Line),
            curve("old design <SCAN & MGET>", &old, Stroke::Dashed),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-dir/compare.svg");
        write_svg(&path, "redis 7.0, two cores", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        // Every label is a <text> element (no font files), escaped.
        let escape = |t: String| t.replace('&', "&amp;").replace('<', "&lt;");
        let labels = curves
            .iter()
            .map(|c| escape(c.label()).replace('>', "&gt;"));
        for text in labels.chain(["redis 7.0, two cores".into(), "100 ms".into()]) {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "no {text:?} in the SVG"
            );
        }
        assert!(svg.contains("p99  0.99") && svg.contains("latency of one call"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(svg.len() < 400_000, "{} bytes", svg.len());
        let empty = Samples::default();
        assert!(render_svg("t", &[curve("none", &empty, Stroke::Line)]).is_err());
    }
}
