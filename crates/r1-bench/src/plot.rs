//! Line charts of a series over steps (a run's reward, loss, length, ...), drawn with plotters
//! and the DejaVu Sans font shipped in `assets/` (so text renders on machines without fonts).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{BenchError, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font as plotters' "sans-serif", once per process: every r1 chart
/// (line charts and the evaluation's bar charts) draws its text with it.
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(BenchError::invalid("assets/DejaVuSans.ttf", "the bundled font does not load")) }
}

/// Draws one line chart to `path` (atomically: drawn to a temporary PNG, then renamed).
pub fn line_chart(path: &Path, title: &str, y_label: &str, points: &[(f64, f64)]) -> Result<()> {
    register_font()?;
    let draw = |tmp: &Path| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(tmp, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let (x0, x1) = bounds(points.iter().map(|p| p.0));
        let (y0, y1) = bounds(points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        // Steps are whole numbers: no fractional tick labels.
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 14))
            .draw()?;
        let faint = BLUE.mix(0.35);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), faint.stroke_width(1)))?
            .label("per step")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, faint.filled())))?;
        // Single steps of a small group are noisy; the trend is what a reader looks for. A
        // window of one would only redraw the points.
        let window = smoothing_window(points.len());
        if window > 1 {
            chart
                .draw_series(LineSeries::new(rolling_mean(points, window), RED.stroke_width(3)))?
                .label(format!("mean of the last {window}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(legend_corner(points, (y0 + y1) / 2.0))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
        Ok(())
    };
    r1_data::fsutil::write_file_atomic(path, |tmp| {
        draw(tmp).map_err(|e| std::io::Error::other(format!("cannot draw the plot: {e}")))
    })
    .map_err(|e| BenchError::io(path, e))
}

/// Where the legend hides no data: the last quarter of the curve ends on the right, so the
/// legend goes in the right-hand corner away from it (below a curve that ends high).
fn legend_corner(points: &[(f64, f64)], middle: f64) -> SeriesLabelPosition {
    let tail = &points[points.len() - points.len().div_ceil(4)..];
    let tail_mean = tail.iter().map(|p| p.1).sum::<f64>() / tail.len().max(1) as f64;
    if tail_mean > middle { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight }
}

/// The smoothing window for `n` points: a tenth of them, at least 1.
fn smoothing_window(n: usize) -> usize {
    (n / 10).max(1)
}

/// Trailing mean of the `window` points up to and including each point (fewer at the start).
fn rolling_mean(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// A non-empty range covering the values, padded by 5 %.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3 * (1.0 + lo.abs()));
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The rolling mean keeps the steps, stays within the values' range, and equals the
        /// plain mean of the last `window` values.
        #[test]
        fn rolling_mean_is_a_trailing_mean(ys in proptest::collection::vec(-5.0f64..5.0, 1..40), window in 1usize..8) {
            let points: Vec<(f64, f64)> = ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect();
            let smooth = rolling_mean(&points, window);
            prop_assert_eq!(smooth.len(), points.len());
            for (i, &(x, m)) in smooth.iter().enumerate() {
                prop_assert_eq!(x, i as f64);
                let tail = &ys[i + 1 - (i + 1).min(window)..=i];
                let expected = tail.iter().sum::<f64>() / tail.len() as f64;
                prop_assert!((m - expected).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn line_chart_is_a_valid_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let points: Vec<(f64, f64)> = (1..=30).map(|s| (s as f64, 1.0 / s as f64)).collect();
        line_chart(&path, "loss", "loss", &points).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (800, 500));
        // Drawn to a temporary file, then renamed: nothing else is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
