//! What an evaluation shows a reader: the Markdown report's header and best-of-N columns, and
//! charts in which a score of zero is visible.

use std::collections::BTreeMap;

use r1_bench::charts::{self, BENCH_CHART, MCQA_CHART};
use r1_bench::question::Category;
use r1_bench::report::{Results, Source, markdown};

fn results(source: Source, samples: usize, metrics: BTreeMap<String, f64>) -> Results {
    Results { model: "m".into(), source, step: None, group: "g".into(), seed: None, samples, metrics, blind: None }
}

fn model() -> Source {
    Source::Model { model_dir: "runs/a/checkpoint-200/model".into(), temperature: 1.0 }
}

/// Every metric the charts draw, all / In / Out, set to `value`.
fn chart_metrics(value: f64) -> BTreeMap<String, f64> {
    let mc = ["waypoint", "current_state", "movement"].map(|t| (format!("mcqa.{t}"), "accuracy"));
    let bench = Category::ALL.map(|c| (format!("bench.{c}"), "score"));
    mc.into_iter()
        .chain(bench)
        .flat_map(|(prefix, metric)| ["", ".in", ".out"].map(|split| (format!("{prefix}{split}.{metric}"), value)))
        .collect()
}

/// The horizontal runs of columns holding a coloured pixel (the bars; text, axes and grid are
/// grey), as the number of runs.
fn coloured_column_runs(png: &std::path::Path) -> usize {
    let image = image::open(png).unwrap().to_rgb8();
    let coloured = |x: u32| {
        (0..image.height()).any(|y| {
            let [r, g, b] = image.get_pixel(x, y).0;
            r.max(g).max(b) - r.min(g).min(b) > 40
        })
    };
    (0..image.width()).filter(|&x| coloured(x) && (x == 0 || !coloured(x - 1))).count()
}

#[test]
fn zero_scores_are_drawn_not_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (zero, missing) = (tmp.path().join("zero"), tmp.path().join("missing"));
    for dir in [&zero, &missing] {
        std::fs::create_dir_all(dir).unwrap();
    }
    charts::write(&zero, &results(model(), 1, chart_metrics(0.0))).unwrap();
    charts::write(&missing, &results(model(), 1, BTreeMap::new())).unwrap();
    for (name, bars) in [(MCQA_CHART, 9), (BENCH_CHART, 3 * Category::ALL.len())] {
        // Every zero bar shows, each in its own place.
        assert_eq!(coloured_column_runs(&zero.join(name)), bars, "{name}");
        assert_eq!(coloured_column_runs(&missing.join(name)), 0, "{name}");
        // Zeros and missing values are labelled differently ("0.00" against "n/a").
        assert_ne!(std::fs::read(zero.join(name)).unwrap(), std::fs::read(missing.join(name)).unwrap(), "{name}");
    }
}

#[test]
fn answers_file_header_names_the_file_without_temperature() {
    let report = markdown(&results(Source::Answers { answers: "gpt4o.jsonl".into() }, 1, BTreeMap::new()));
    assert!(report.contains("Answers file: `gpt4o.jsonl`; 1 completion(s) per question."), "{report}");
    assert!(!report.contains("Model folder") && !report.contains("temperature"), "{report}");

    let report = markdown(&Results { step: Some(200), ..results(model(), 1, BTreeMap::new()) });
    assert!(
        report.contains(
            "Model folder: `runs/a/checkpoint-200/model` (step 200); 1 completion(s) per question at temperature 1."
        ),
        "{report}"
    );
}

#[test]
fn answers_round_trip_through_results_json() {
    for source in [model(), Source::Answers { answers: "gpt4o.jsonl".into() }] {
        let r = results(source, 1, BTreeMap::new());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Results>(&json).unwrap(), r, "{json}");
    }
}

#[test]
fn several_samples_add_best_of_n_to_every_table() {
    let mut metrics = chart_metrics(0.25);
    for (prefix, best) in
        [("mcqa.waypoint", 0.5), ("bench.planning", 1.5), ("bench.overall", 2.25), ("open.waypoint", 0.75)]
    {
        metrics.insert(format!("{prefix}.best_of_n"), best);
    }
    metrics.insert("open.waypoint.reward".into(), 0.25);
    let report = markdown(&results(model(), 5, metrics.clone()));
    let row = |name: &str| {
        report.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("{report}"))
    };
    assert!(report.contains("| question | accuracy | n | In | Out | best of N |"), "{report}");
    assert!(report.contains("| category | rule-based | n | In | Out | best of N |"), "{report}");
    assert!(row("waypoint").ends_with("| 0.500 |"), "{report}");
    assert!(row("planning").ends_with("| 1.500 |"), "{report}");
    assert!(row("overall").ends_with("| 2.250 |"), "{report}");
    assert!(report.contains("reward 0.250 (best of N 0.750)"), "{report}");
    // Every table row has as many cells as its header.
    for line in report.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(line.matches('|').count(), 7, "{line}");
    }

    let single = markdown(&results(model(), 1, metrics));
    assert!(!single.contains("best of N"), "{single}");
}
