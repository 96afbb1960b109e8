//! Criterion benches of hot paths that have no bench in their own crate: image preprocessing
//! (r1-model) and the GRPO loss (r1-grpo). Reward scoring, rendering, keypoints and QA
//! building are benched in r1-reward, r1-sim and r1-data; the bench scorer in `scoring.rs`.
//! Run with `cargo bench -p r1-bench --bench hot_paths`.

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_grpo::loss::{LossInputs, Normaliser, grpo_loss};
use r1_model::processor::ImageProcessor;

fn image(c: &mut Criterion) {
    let processor = ImageProcessor::default();
    let frame = image::RgbImage::from_fn(224, 224, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut g = c.benchmark_group("image");
    g.throughput(Throughput::Elements(1));
    g.bench_function("qwen2.5-vl preprocess 224x224", |b| {
        b.iter(|| processor.process(&frame).expect("valid image").grid_thw)
    });
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

criterion_group!(benches, image, loss);
criterion_main!(benches);
