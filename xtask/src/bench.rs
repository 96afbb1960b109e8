//! `cargo xtask bench`: end-to-end throughput figures, printed as a Markdown table. The
//! per-function figures are criterion benches (`cargo bench -p r1-bench`, and the benches of
//! r1-reward and r1-sim).

use std::time::Instant;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Episodes per task for the rendering figure (10 tasks, 224x224).
    #[arg(long, value_name = "N", default_value_t = 2)]
    episodes_per_task: usize,
    /// Repetitions of each figure; the table reports the median.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeats: usize,
}

/// One row of the table.
struct Row {
    figure: String,
    value: f64,
    unit: &'static str,
    setup: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Rendered frames per second of the whole simulator pipeline (scene, expert, rasteriser, PNG
/// encoding) on every core.
fn rendering(args: &Args) -> anyhow::Result<Row> {
    let cfg = r1_sim::SimConfig { tasks: Vec::new(), episodes_per_task: args.episodes_per_task, seed: 0, image_size: 224 };
    let mut rates = Vec::new();
    let mut frames = 0;
    for _ in 0..args.repeats {
        let start = Instant::now();
        let episodes = r1_sim::simulate(&cfg, |_, _| {}).context("simulating")?;
        let seconds = start.elapsed().as_secs_f64();
        frames = episodes.iter().map(|e| e.steps.len()).sum::<usize>();
        rates.push(frames as f64 / seconds);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(Row {
        figure: "rendering (simulate + rasterise + PNG)".into(),
        value: median(rates),
        unit: "frames/s",
        setup: format!("10 tasks x {} episodes, {frames} frames at 224x224, {cores} threads", args.episodes_per_task),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeats >= 1 && args.episodes_per_task >= 1, "--repeats and --episodes-per-task must be at least 1");
    let rows = vec![rendering(&args)?];
    println!("| figure | median | unit | setup |\n|---|---|---|---|");
    for r in rows {
        println!("| {} | {:.1} | {} | {} |", r.figure, r.value, r.unit, r.setup);
    }
    Ok(())
}
