//! Criterion benches of the hot paths that have no bench in their own crate: bench scoring
//! (r1-bench), image preprocessing (r1-model) and the GRPO loss (r1-grpo). Reward scoring,
//! rendering, keypoints and QA building are benched in r1-reward, r1-sim and r1-data. Run with
//! `cargo bench -p r1-bench --bench hot_paths`.

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_bench::{make, rubric};
use r1_grpo::loss::{LossInputs, Normaliser, grpo_loss};
use r1_model::processor::ImageProcessor;

fn episodes() -> Vec<r1_data::Episode> {
    let cfg = r1_sim::SimConfig { tasks: Vec::new(), episodes_per_task: make::FRAMES_PER_TASK, seed: 1, image_size: 64 };
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

fn image(c: &mut Criterion) {
    let processor = ImageProcessor::default();
    let frame = image::RgbImage::from_fn(224, 224, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    let mut g = c.benchmark_group("image");
    g.throughput(Throughput::Elements(1));
    g.bench_function("qwen2.5-vl preprocess 224x224", |b| b.iter(|| processor.process(&frame).expect("valid image").grid_thw));
    g.finish();
}

fn loss(c: &mut Criterion) {
    let device = Device::flex();
    let config = r1_grpo::config::TrainConfig::paper().algorithm.loss;
    let (b, t) = (16, 256);
    let logp = || Tensor::<2>::random([b, t], Distribution::Uniform(-3.0, 0.0), &device);
    let (new, old, reference) = (logp(), logp(), logp());
    let advantages = Tensor::<1>::random([b], Distribution::Normal(0.0, 1.0), &device);
    let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; b * t], [b, t]), &device);
    let norm = Normaliser::of(&mask, t);
    let mut g = c.benchmark_group("grpo_loss");
    g.throughput(Throughput::Elements((b * t) as u64));
    g.bench_function(format!("forward [{b}x{t}] flex"), |bench| {
        bench.iter(|| {
            let inputs = LossInputs {
                logp: new.clone(),
                old_logp: old.clone(),
                ref_logp: Some(reference.clone()),
                advantages: advantages.clone(),
                mask: mask.clone(),
            };
            grpo_loss(inputs, &config, norm).loss.into_scalar::<f32>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_scoring, image, loss);
criterion_main!(benches);
