//! Criterion bench of the GRPO loss's forward on flex (clipped ratio, KL to the reference,
//! token-level normalisation) over a [16 x 256] batch of per-token log-probs.
//! Run with `cargo bench --workspace --bench loss`.

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_grpo::config::TrainConfig;
use r1_grpo::loss::{LossInputs, Normaliser, grpo_loss};

fn loss(c: &mut Criterion) {
    let device = Device::flex();
    let config = TrainConfig::paper().algorithm.loss;
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

criterion_group!(benches, loss);
criterion_main!(benches);
