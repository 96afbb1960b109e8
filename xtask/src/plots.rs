//! The plots of a training run's `plots/` folder: r1-grpo's metric lines drawn as r1-bench's
//! line charts (xtask connects the two; neither crate depends on the other).

use std::path::{Path, PathBuf};

use r1_grpo::metrics::{self, Metric, StepMetrics};

/// The plots drawn at the end of a run (those with data: an SFT run has only a loss and the
/// memory): file stem, figure (its key is the title), y-axis label.
const PLOTS: [(&str, Metric, &str); 5] = [
    ("loss", metrics::LOSS, "loss"),
    ("reward", metrics::REWARD, "mean reward"),
    ("length", metrics::MEAN_LENGTH, "mean completion length (tokens)"),
    ("kl", metrics::KL, "KL to the reference"),
    ("memory", metrics::HOST_RSS, "resident host memory (MiB)"),
];

/// Draws every plot of [`PLOTS`] from metric lines into `dir`; returns the files written.
pub fn plot_metrics(lines: &[StepMetrics], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    r1_data::fsutil::create_dir(dir)?;
    let mut written = Vec::new();
    for (stem, metric, label) in PLOTS {
        let points = metric.series(lines);
        if points.is_empty() {
            continue;
        }
        let path = dir.join(format!("{stem}.png"));
        r1_bench::plot::line_chart(&path, metric.key, label, &points)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sft_run_plots_its_loss_only() {
        let dir = tempfile::tempdir().unwrap();
        // SFT lines as metrics.jsonl holds them: a loss and nothing of GRPO's; a loss that is
        // not a number (written as null) is left out.
        let lines: Vec<StepMetrics> = (1..=5u64)
            .map(|step| {
                let loss = if step == 3 { "null".to_string() } else { (1.0 / step as f64).to_string() };
                let line = format!(
                    r#"{{"step": {step}, "loss": {loss}, "grad_norm": 1.0, "learning_rate": 0.001, "skipped_nonfinite": 0, "timing/update": 1.0, "tokens_per_second/training": 10.0}}"#
                );
                serde_json::from_str(&line).unwrap()
            })
            .collect();
        assert_eq!(metrics::LOSS.series(&lines).len(), 4);
        let written = plot_metrics(&lines, dir.path()).unwrap();
        // No GRPO figures nor memory in the lines: the loss only.
        assert_eq!(written, [dir.path().join("loss.png")]);
        let img = image::open(&written[0]).unwrap();
        assert_eq!((img.width(), img.height()), (800, 500));
    }
}
