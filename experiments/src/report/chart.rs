//! The report's chart kinds, drawn with `plotters` into SVG strings: line charts (CDFs, series
//! over time or slot), stacked share bars (mixes per process) and a labelled heat map (the cut
//! matrix). Titles and notes are the page's; a chart is only its axes and marks. The same input
//! gives the same SVG bytes: nothing here depends on time, randomness or hash order.

use super::ReportError;
use plotters::prelude::*;

/// Width and height of every chart, in SVG user units.
const SIZE: (u32, u32) = (760, 340);

/// Series colours (Tableau 10), in order; later series reuse them.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

/// The colour of series `k`.
fn colour(k: usize) -> RGBColor {
    PALETTE[k % PALETTE.len()]
}

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// One named line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: its axis titles and lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The x axis title.
    pub x: String,
    /// The y axis title.
    pub y: String,
    /// The lines; a chart without points is never drawn (the page says why instead).
    pub series: Vec<Series>,
    /// Start the y axis at 0 rather than at the smallest value.
    pub y_from_zero: bool,
    /// The y axis's highest value, when the quantity has one (a share in %).
    pub y_max: Option<f64>,
}

impl LineChart {
    /// A chart of `series` with axis titles `x` and `y`, its y axis from 0.
    pub fn new(x: &str, y: &str, series: Vec<Series>) -> LineChart {
        LineChart { x: x.to_string(), y: y.to_string(), series, y_from_zero: true, y_max: None }
    }

    /// Whether it has any point to draw.
    pub fn has_points(&self) -> bool {
        self.series.iter().any(|s| !s.points.is_empty())
    }
}

/// A range around `lo..hi` that is never empty, with a little room above.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi <= lo {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    (lo, hi + (hi - lo) * 0.04)
}

/// The x and y ranges covering every point of `chart`.
fn bounds(chart: &LineChart) -> ((f64, f64), (f64, f64)) {
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if chart.y_from_zero {
        y0 = y0.min(0.0);
    }
    let x = if x1 > x0 { (x0, x1) } else { padded(x0, x1) };
    let y = match chart.y_max {
        // Room below the lowest value (at least 1) and a little above the ceiling.
        Some(top) => ((y0 - (top - y0).max(1.0)).max(0.0), top + (top - y0).max(1.0) * 0.05),
        None => padded(y0, y1),
    };
    (x, y)
}

/// A number as an axis label: short, without trailing zeros.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    let text = if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    trim_zeros(&text)
}

/// `1.50k` → `1.5k`, `2.0` → `2`.
fn trim_zeros(text: &str) -> String {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    if !num.contains('.') {
        return text.to_string();
    }
    let num = num.trim_end_matches('0').trim_end_matches('.');
    format!("{num}{unit}")
}

/// Draw `chart` as SVG: one line per series, with markers when a series has few points (a
/// single point still shows), and a legend when there is more than one series or a named one.
pub fn line_chart(chart: &LineChart) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let ((x0, x1), (y0, y1)) = bounds(chart);
        let mut c = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        c.configure_mesh()
            .x_desc(chart.x.as_str())
            .y_desc(chart.y.as_str())
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.12))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        for (k, s) in chart.series.iter().enumerate() {
            let style = colour(k).stroke_width(2);
            let line = c.draw_series(LineSeries::new(s.points.iter().copied(), style)).map_err(plot_err)?;
            line.label(s.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            if s.points.len() <= 60 {
                let dots = s.points.iter().map(|&p| Circle::new(p, 3, colour(k).filled()));
                c.draw_series(dots).map_err(plot_err)?;
            }
        }
        if chart.series.len() > 1 || chart.series.iter().any(|s| !s.name.is_empty()) {
            c.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 15))
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Horizontal bars, one per row, each split into the shares of named segments.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareBars {
    /// The segment names, in stacking order; every row's values follow this order.
    pub segments: Vec<String>,
    /// Each row: its label and one value per segment.
    pub rows: Vec<(String, Vec<u64>)>,
}

/// A label cut to `max` characters.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_string();
    }
    let mut s: String = label.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Draw `bars` as SVG: each row a bar from 0 to 100 % split by segment, with a legend.
pub fn share_bars(bars: &ShareBars) -> Result<String, ReportError> {
    let n = bars.rows.len().max(1) as u32;
    let legend_height = 30 + 20 * bars.segments.len() as u32;
    let height = (80 + 26 * n).max(legend_height).max(200);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (plot, legend) = root.split_horizontally(SIZE.0 - 170);
        let mut c = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..100f64, cells(n))
            .map_err(plot_err)?;
        let labels: Vec<String> = bars.rows.iter().map(|(l, _)| shorten(l, 34)).collect();
        // Row 0 at the top.
        let row_y = |i: usize| (n - 1 - i as u32) as f64;
        let row_label = |v: &f64| cell_index(*v, n).map_or(String::new(), |y| labels[(n - 1 - y) as usize].clone());
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(n as usize)
            .y_label_formatter(&row_label)
            .x_label_formatter(&|v| format!("{v:.0} %"))
            .light_line_style(BLACK.mix(0.05))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        for (k, _) in bars.segments.iter().enumerate() {
            let rects = bars.rows.iter().enumerate().filter_map(|(i, (_, values))| {
                let total: u64 = values.iter().sum();
                if total == 0 || values[k] == 0 {
                    return None;
                }
                let before: u64 = values[..k].iter().sum();
                let x0 = before as f64 * 100.0 / total as f64;
                let x1 = (before + values[k]) as f64 * 100.0 / total as f64;
                let y = row_y(i);
                let mut r = Rectangle::new([(x0, y + 0.5), (x1, y - 0.5)], colour(k).filled());
                r.set_margin(3, 3, 0, 0);
                Some(r)
            });
            c.draw_series(rects).map_err(plot_err)?;
        }
        for (k, name) in bars.segments.iter().enumerate() {
            let y = 20 + 20 * k as i32;
            legend.draw(&Rectangle::new([(6, y - 6), (18, y + 6)], colour(k).filled())).map_err(plot_err)?;
            let text = Text::new(shorten(name, 22), (24, y - 7), ("sans-serif", 15).into_font());
            legend.draw(&text).map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// A square matrix of counts with row and column labels, drawn as coloured cells that show
/// their values.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// The x axis title (columns).
    pub x: String,
    /// The y axis title (rows).
    pub y: String,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<u64>>,
    /// Each cell's text, in the same layout.
    pub text: Vec<Vec<String>>,
}

/// Draw `map` as SVG: darker cells hold more.
pub fn heat_map(map: &HeatMap) -> Result<String, ReportError> {
    let rows = map.cells.len() as u32;
    let cols = map.cells.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let max = map.cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    let side = (60 + 48 * rows.max(cols)).clamp(220, 640);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (side + 90, side)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut c = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(cells(cols.max(1)), cells(rows.max(1)))
            .map_err(plot_err)?;
        // Row 0 at the top, as a matrix is read.
        let row_label = |v: &f64| cell_index(*v, rows).map_or(String::new(), |y| (rows - 1 - y).to_string());
        let col_label = |v: &f64| cell_index(*v, cols).map_or(String::new(), |x| x.to_string());
        c.configure_mesh()
            .disable_mesh()
            .x_labels(cols as usize)
            .y_labels(rows as usize)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .x_desc(map.x.as_str())
            .y_desc(map.y.as_str())
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        for (r, row) in map.cells.iter().enumerate() {
            let y = (rows - 1 - r as u32) as f64;
            for (k, &v) in row.iter().enumerate() {
                let x = k as f64;
                let shade = 0.08 + 0.92 * v as f64 / max as f64;
                let mut cell = Rectangle::new([(x - 0.5, y + 0.5), (x + 0.5, y - 0.5)], colour(0).mix(shade).filled());
                cell.set_margin(1, 1, 1, 1);
                c.draw_series(std::iter::once(cell)).map_err(plot_err)?;
                let ink = if shade > 0.55 { WHITE } else { BLACK };
                let label = map.text.get(r).and_then(|t| t.get(k)).cloned().unwrap_or_default();
                let style = ("sans-serif", 16).into_font().color(&ink).pos(text_centre());
                c.draw_series(std::iter::once(Text::new(label, (x, y), style))).map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// An axis of `n` cells centred on 0, 1, …, n − 1.
fn cells(n: u32) -> std::ops::Range<f64> {
    -0.5..(n.max(1) as f64 - 0.5)
}

/// The cell an axis label at `v` names: a whole number below `n`, else none (a label between
/// cells stays blank).
fn cell_index(v: f64, n: u32) -> Option<u32> {
    let r = v.round();
    ((v - r).abs() < 1e-6 && r >= 0.0 && r < f64::from(n)).then_some(r as u32)
}

/// Text anchored at its centre.
fn text_centre() -> plotters::style::text_anchor::Pos {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Pos::new(HPos::Center, VPos::Center)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(12_500.0), "12.5k");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(3_000_000.0), "3M");
    }

    #[test]
    fn only_whole_cell_positions_are_labelled() {
        assert_eq!(cell_index(0.0, 2), Some(0));
        assert_eq!(cell_index(1.0, 2), Some(1));
        assert_eq!(cell_index(2.0, 2), None);
        assert_eq!(cell_index(0.5, 2), None);
        assert_eq!(cells(3), -0.5..2.5);
    }

    #[test]
    fn a_line_chart_draws_its_lines_and_is_the_same_every_time() {
        let chart = LineChart::new(
            "x",
            "y",
            vec![
                Series { name: "a".into(), points: vec![(0.0, 0.0), (1.0, 2.0)] },
                Series { name: "b".into(), points: vec![(0.5, 1.0)] },
            ],
        );
        let svg = line_chart(&chart).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("<circle"), "a one-point series shows a marker");
        assert_eq!(svg, line_chart(&chart).unwrap());
    }

    #[test]
    fn share_bars_and_heat_maps_draw_cells() {
        let bars = ShareBars {
            segments: vec!["read".into(), "write".into()],
            rows: vec![("h · a".into(), vec![3, 1]), ("h · b".into(), vec![0, 2])],
        };
        let svg = share_bars(&bars).unwrap();
        assert!(svg.matches("<rect").count() >= 3 + 2, "{svg}");
        let map = HeatMap {
            x: "to".into(),
            y: "from".into(),
            cells: vec![vec![0, 5], vec![7, 0]],
            text: vec![vec!["0".into(), "5".into()], vec!["7".into(), "0".into()]],
        };
        let svg = heat_map(&map).unwrap();
        assert!(svg.contains("\n7\n</text>") && svg.matches("<rect").count() >= 4, "{svg}");
    }
}
