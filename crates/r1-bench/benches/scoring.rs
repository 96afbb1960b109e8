//! Criterion bench of the Robot-R1 Bench rule-based scorer over the whole simulator bench.
//! Run with `cargo bench --workspace --bench scoring`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_bench::{make, rubric};

fn episodes() -> Vec<r1_data::Episode> {
    let cfg =
        r1_sim::SimConfig { tasks: Vec::new(), episodes_per_task: make::FRAMES_PER_TASK, seed: 1, image_size: 64 };
    r1_sim::simulate(&cfg, |_, _| {}).expect("the simulator runs")
}

fn bench_scoring(c: &mut Criterion) {
    let episodes = episodes();
    let bench = make::build(&episodes, r1_sim::is_held_out).expect("the bench builds");
    // A wrong-but-plausible answer per question: another question's reference.
    let answers: Vec<&str> = bench.questions.iter().map(|q| q.reference.as_str()).rev().collect();
    let mut g = c.benchmark_group("bench");
    g.throughput(Throughput::Elements(bench.questions.len() as u64));
    g.bench_function(format!("rubric ({} questions)", bench.questions.len()), |b| {
        b.iter(|| bench.questions.iter().zip(&answers).map(|(q, a)| u32::from(rubric::score(a, &q.truth))).sum::<u32>())
    });
    g.finish();
}

criterion_group!(benches, bench_scoring);
criterion_main!(benches);
