//! Import benchmark: `load_episodes` (detection, unpickling, image listing, validation).
//!
//! Always measured: the committed RLBench and LeRobot fixtures. With `R1_BENCH_RLBENCH` set to
//! a folder written by `python3 tests/fixtures/gen_rlbench.py --bench DIR` (the issue's
//! RLBench-sized set: 5 tasks x 50 episodes x 150 steps, one 224x224 camera), that set too.
//!
//! Run: `cargo bench --workspace --bench import`.

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use r1_data::source::{LoadOptions, load_episodes};

fn load(path: &Path) -> usize {
    let loaded = load_episodes(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    loaded.episodes.len()
}

fn fixtures(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures");
    c.bench_function("load rlbench stock fixtures (4 episodes)", |b| b.iter(|| load(&root.join("rlbench/stock"))));
    c.bench_function("load lerobot v3.0 fixture (3 episodes)", |b| b.iter(|| load(&root.join("lerobot/v30"))));
}

fn rlbench_sized(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("R1_BENCH_RLBENCH").map(PathBuf::from) else {
        eprintln!("R1_BENCH_RLBENCH is not set: skipping the RLBench-sized import");
        return;
    };
    let mut group = c.benchmark_group("rlbench-sized");
    group.sample_size(10);
    group.bench_function("load 5x50x150", |b| b.iter(|| load(&dir)));
    group.finish();
}

criterion_group!(benches, fixtures, rlbench_sized);
criterion_main!(benches);
