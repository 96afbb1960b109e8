//! Time to simulate and render the whole suite: 10 tasks x 50 episodes at 224x224 on every
//! core (the target is under two minutes on 2 cores). Prints one table; pass a
//! number to change the episodes per task (`cargo bench --workspace --bench generate -- 5`).

use std::time::Instant;

use r1_sim::{SimConfig, simulate};

fn main() {
    let per_task = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
    let cfg = SimConfig { episodes_per_task: per_task, ..SimConfig::default() };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    let episodes = simulate(&cfg, |_, _| {}).expect("the default suite simulates");
    let seconds = start.elapsed().as_secs_f64();
    let frames: usize = episodes.iter().map(|e| e.steps.len()).sum();
    let bytes: usize = episodes
        .iter()
        .flat_map(|e| &e.steps)
        .flat_map(|s| s.images.values())
        .map(|i| match i {
            r1_data::ImageRef::Encoded(b) => b.len(),
            r1_data::ImageRef::Path(_) | r1_data::ImageRef::Video(_) => 0,
        })
        .sum();
    println!("| episodes | frames | threads | seconds | frames/s | mean PNG bytes |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {frames} | {threads} | {seconds:.1} | {:.0} | {} |",
        episodes.len(),
        frames as f64 / seconds,
        bytes / frames.max(1)
    );
}
