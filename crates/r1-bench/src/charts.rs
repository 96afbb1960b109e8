//! PNG charts of one evaluation: multiple-choice accuracy and bench scores, each for all
//! questions, "In" (trained tasks) and "Out" (held-out tasks).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{BenchError, Result};
use crate::question::Category;
use crate::report::Results;

pub const MCQA_CHART: &str = "mcqa.png";
pub const BENCH_CHART: &str = "bench.png";

const SIZE: (u32, u32) = (900, 420);
/// Bar colours for all / In / Out.
const COLOURS: [RGBColor; 3] = [RGBColor(70, 110, 170), RGBColor(90, 170, 110), RGBColor(210, 130, 60)];
/// Pixels between neighbouring bars, on each side of a bar.
const BAR_MARGIN: u32 = 6;
/// Height in pixels of the strip drawn at the foot of every bar that has a value.
const BASELINE_STRIP: i32 = 3;

/// One bar: its label and value (missing metrics are drawn as absent, not as 0).
struct Bar {
    label: String,
    value: Option<f64>,
    colour: RGBColor,
}

/// Bars for `<prefix>.<name>.<metric>` over `names`, each as all / In / Out.
fn bars(r: &Results, prefix: &str, names: &[&str], metric: &str) -> Vec<Bar> {
    names
        .iter()
        .flat_map(|name| {
            [("", ""), ("In", ".in"), ("Out", ".out")].into_iter().enumerate().map(move |(i, (suffix, key))| Bar {
                label: if suffix.is_empty() { name.to_string() } else { suffix.to_string() },
                value: r.metrics.get(&format!("{prefix}.{name}{key}.{metric}")).copied(),
                colour: COLOURS[i],
            })
        })
        .collect()
}

/// Draws a bar chart into an RGB buffer of [`SIZE`]. Every bar carries its value above it
/// ("n/a" where the metric is missing), and a strip of [`BASELINE_STRIP`] pixels in its colour
/// at the axis, so a score of 0 reads as a bar of height 0 rather than as missing data.
fn draw(title: &str, y_desc: &str, y_max: f64, bars: &[Bar]) -> std::result::Result<Vec<u8>, String> {
    let mut buffer = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            // Headroom above the scale for the labels of full-height bars.
            .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..y_max * 1.08)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.label.clone()),
                _ => String::new(),
            })
            .y_label_formatter(&|v| if *v <= y_max { format!("{v:.1}") } else { String::new() })
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .margin(BAR_MARGIN)
                    .style_func(|x, _| match x {
                        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                            bars.get(*i).map_or(BLACK, |b| b.colour).filled()
                        }
                        SegmentValue::Last => BLACK.filled(),
                    })
                    .data(bars.iter().enumerate().filter_map(|(i, b)| b.value.map(|v| (i, v)))),
            )
            .map_err(|e| e.to_string())?;
        // The strip spans the bar: one segment's width in pixels less the margins.
        let segment = chart.backend_coord(&(SegmentValue::Exact(1), 0.0)).0
            - chart.backend_coord(&(SegmentValue::Exact(0), 0.0)).0;
        let (left, right) = (BAR_MARGIN as i32, segment - BAR_MARGIN as i32);
        chart
            .draw_series(bars.iter().enumerate().filter(|(_, b)| b.value.is_some()).map(|(i, b)| {
                EmptyElement::at((SegmentValue::Exact(i), 0.0))
                    + Rectangle::new([(left, -BASELINE_STRIP), (right, 0)], b.colour.filled())
            }))
            .map_err(|e| e.to_string())?;
        let text = ("sans-serif", 14).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let (label, height) = b.value.map_or(("n/a".to_string(), 0.0), |v| (format!("{v:.2}"), v));
                EmptyElement::at((SegmentValue::CenterOf(i), height))
                    + Text::new(label, (0, -BASELINE_STRIP - 3), text.clone())
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buffer)
}

fn save(dir: &Path, name: &str, rgb: Vec<u8>) -> Result<()> {
    let path = dir.join(name);
    let image = image::RgbImage::from_raw(SIZE.0, SIZE.1, rgb).expect("the buffer has the chart's size");
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| BenchError::Plot { path: path.clone(), message: e.to_string() })?;
    crate::error::write_atomic(&path, &png)
}

/// Writes [`MCQA_CHART`] and [`BENCH_CHART`] into `dir`, each atomically.
pub fn write(dir: &Path, r: &Results) -> Result<()> {
    // The line charts' font, so that evaluation charts and training plots look alike.
    crate::plot::register_font()?;
    let plot_err = |name: &'static str| move |message: String| BenchError::Plot { path: dir.join(name), message };
    let mcqa = bars(r, "mcqa", &["waypoint", "current_state", "movement"], "accuracy");
    let png =
        draw("Multiple choice accuracy (all / In / Out)", "accuracy", 1.0, &mcqa).map_err(plot_err(MCQA_CHART))?;
    save(dir, MCQA_CHART, png)?;
    let names: Vec<String> = Category::ALL.iter().map(Category::to_string).collect();
    let bench = bars(r, "bench", &names.iter().map(String::as_str).collect::<Vec<_>>(), "score");
    let png = draw("Robot-R1 Bench, rule-based score (all / In / Out)", "score (0-3)", 3.0, &bench)
        .map_err(plot_err(BENCH_CHART))?;
    save(dir, BENCH_CHART, png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn draws_both_charts() {
        let r = Results {
            model: "m".into(),
            source: crate::report::Source::Model { model_dir: "m".into(), temperature: 0.0 },
            step: None,
            group: "g".into(),
            seed: None,
            samples: 1,
            metrics: BTreeMap::from([
                ("mcqa.waypoint.accuracy".into(), 0.5),
                ("mcqa.waypoint.in.accuracy".into(), 0.75),
                ("bench.movement.score".into(), 1.25),
            ]),
            blind: None,
        };
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &r).unwrap();
        for name in [MCQA_CHART, BENCH_CHART] {
            let image = image::open(tmp.path().join(name)).unwrap().to_rgb8();
            assert_eq!(image.dimensions(), SIZE);
            // Some pixels carry the "all" bar colour: the bars were drawn.
            assert!(image.pixels().any(|p| p.0 == [COLOURS[0].0, COLOURS[0].1, COLOURS[0].2]), "{name}");
        }
    }
}
