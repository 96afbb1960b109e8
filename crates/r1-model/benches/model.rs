//! Hot paths of the model on flex: Qwen2.5-VL image preprocessing of a 224x224 frame, a prefill
//! forward of a dataset-sized prompt with its image, one decoding step with the KV cache, and
//! teacher-forced scoring of a 32-token reply; the tiny preset's architecture, built from a small
//! corpus in a temporary folder.

use std::hint::black_box;
use std::path::Path;

use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_data::Message;
use r1_model::checkpoint::{self, Prompt};
use r1_model::generate::SamplingConfig;
use r1_model::processor::ImageProcessor;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    // A prompt the length of the default dataset's (about 400 tokens with the image).
    let text = "Which option is the position of the gripper at the next waypoint? ".repeat(24);
    let texts = vec![text.clone(), "<think>I compare the gripper with the goal.</think> <answer>[[B]]</answer>".into()];
    r1_model::tiny::create_tiny(&dir, &texts, 0, &device).unwrap();
    let (assets, model) = checkpoint::load(&dir, &device).unwrap();
    let image = tmp.path().join("front.png");
    image::RgbImage::from_fn(224, 224, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8])).save(&image).unwrap();
    let prompt: Prompt =
        assets.encode_prompt(&[Message::user_with_image(image.to_str().unwrap(), text)], Path::new("/")).unwrap();
    let reply: Vec<u32> =
        assets.encode_reply(&"<think>I compare the gripper with the goal.</think>".repeat(3)).unwrap();
    let reply = &reply[..reply.len().min(32)];

    let mut group = c.benchmark_group("tiny");
    group.sample_size(10);
    group.bench_function(format!("prefill {} tokens, batch 1", prompt.ids.len()), |b| {
        let mut rng = StdRng::seed_from_u64(0);
        b.iter(|| black_box(assets.sample(&model, &[&prompt], 1, &SamplingConfig::greedy(1), &mut rng).unwrap()))
    });
    // Two tokens minus one token is one decoding step; criterion reports both.
    group.bench_function("prefill + 1 decoding step, batch 16 (one prompt, group 16)", |b| {
        let mut rng = StdRng::seed_from_u64(0);
        let config = SamplingConfig { max_new_tokens: 2, temperature: 1.0, top_p: 1.0, top_k: 0 };
        b.iter(|| black_box(assets.sample(&model, &[&prompt], 16, &config, &mut rng).unwrap()))
    });
    group.bench_function("prefill only, batch 16 (one prompt, group 16)", |b| {
        let mut rng = StdRng::seed_from_u64(0);
        let config = SamplingConfig { max_new_tokens: 1, temperature: 1.0, top_p: 1.0, top_k: 0 };
        b.iter(|| black_box(assets.sample(&model, &[&prompt], 16, &config, &mut rng).unwrap()))
    });
    group.bench_function(format!("score {} reply tokens, batch 4", reply.len()), |b| {
        let prompts = [&prompt; 4];
        let replies = [reply; 4];
        b.iter(|| black_box(assets.score(&model, &prompts, &replies, 1.0).unwrap().into_data()))
    });
    group.finish();
}

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

criterion_group!(benches, bench, image);
criterion_main!(benches);
