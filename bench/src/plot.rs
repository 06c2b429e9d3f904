//! PNG plot of latency percentile distributions (one line per run).
//!
//! The x axis is the percentile on the usual HdrHistogram scale
//! (`-log10(1 - p)`: 90 %, 99 %, 99.9 % equally spaced), the y axis the
//! latency from due time in milliseconds on a log scale. Text is drawn with
//! plotters' pure-Rust `ab_glyph` renderer using a TrueType font found on
//! the machine (`HTS_BENCH_FONT`, else DejaVu/Liberation Sans); without one
//! the plot is drawn without text and the legend goes to stdout only.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::RunReport;

/// Font files tried in order after `HTS_BENCH_FONT`.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a TrueType font for plotters once; whether one is available.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let env = std::env::var("HTS_BENCH_FONT").ok();
        let candidates = env.iter().map(String::as_str).chain(FONT_CANDIDATES);
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // The font must live as long as plotters' registry: leak it once.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// x coordinate of percentile `p` (in percent).
fn x_of(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-7).log10()
}

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let s = format!("{p:.5}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Draws every run's latency distribution (from due time) into a PNG at `path`.
/// Returns whether text (titles, axes, legend) could be drawn.
pub fn write_png(path: &Path, title: &str, runs: &[RunReport]) -> anyhow::Result<bool> {
    let with_text = font_available();
    draw(path, title, runs, with_text)?;
    Ok(with_text)
}

fn draw(path: &Path, title: &str, runs: &[RunReport], with_text: bool) -> anyhow::Result<()> {
    let points: Vec<(&RunReport, Vec<(f64, f64)>)> = runs
        .iter()
        .filter(|r| !r.distribution.is_empty())
        .map(|r| {
            let line = r
                .distribution
                .iter()
                .map(|d| (x_of(d.percentile), d.from_due_us.max(1) as f64 / 1000.0))
                .collect();
            (r, line)
        })
        .collect();
    let ys = points.iter().flat_map(|(_, l)| l.iter().map(|p| p.1));
    let (y_min, y_max) = ys.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y_min, y_max) = if y_max > 0.0 {
        (y_min / 1.5, y_max * 1.5)
    } else {
        (0.001, 1.0)
    };
    let x_max = points
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.0))
        .fold(2.0f64, f64::max);

    let root = BitMapBackend::new(path, (1100, 700)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if with_text {
        builder
            .caption(title, ("sans-serif", 24))
            .x_label_area_size(45)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    if with_text {
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency from due time, ms (log)")
            .x_labels(8)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y}"))
            .draw()
            .map_err(err)?;
    }
    for (i, (run, line)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series = chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
            .map_err(err)?;
        if with_text {
            series.label(run.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if with_text && !points.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(0.0), "0%");
    }

    #[test]
    fn draws_without_fonts_and_without_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.png");
        draw(&path, "t", &[], false).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }
}
