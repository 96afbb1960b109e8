//! GRPO with LoRA on the real model: only the adapters move, the reference is the base with the
//! adapters off, checkpoints hold PEFT adapter folders, a resumed run (dropout included) writes
//! the metrics of an uninterrupted one, and the memory plan counts the adapters the model gets.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use r1_data::dataset::{Split, read_split};
use r1_grpo::config::TrainConfig;
use r1_grpo::grpo::GrpoTrainer;
use r1_grpo::qwen::{QwenPolicy, model_shape};
use r1_grpo::run::RunDir;
use r1_model::checkpoint::run::MODEL_DIR;
use r1_model::lora::{self, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraConfig};

mod weights;
use weights::{dataset_root, short_grpo, weights};

mod untimed;
use untimed::untimed;

/// 2 prompts x G 2 per rollout, 2 optimiser steps each (old log-probs from the sampler), KL to
/// the reference, LoRA of rank 4 with dropout on every decoder projection and on the vision
/// blocks' projections of those names and `qkv`, `proj`.
fn config(model: PathBuf) -> TrainConfig {
    let mut c = short_grpo(model);
    c.run.save_every = 1;
    c.run.keep_last = 5;
    let mut targets: Vec<String> = lora::TEXT_TARGETS.iter().map(|s| s.to_string()).collect();
    targets.extend(["qkv", "proj"].map(String::from));
    c.lora = Some(LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, target_modules: targets, vision: true });
    c
}

#[test]
fn lora_run_trains_only_the_adapters_and_resumes_exactly() {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let samples: Vec<_> = samples.into_iter().take(40).collect();
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = tmp.path().join("tiny");
    r1_model::tiny::create_tiny(&base_dir, &r1_data::qa::dataset_texts(&samples), 0, &Device::flex()).unwrap();
    let device = Device::flex().autodiff();
    let load = |dir: &Path| QwenPolicy::load(dir, &dataset_root(), &device);
    let base = weights(&load(&base_dir).unwrap());

    let whole = tmp.path().join("whole");
    let mut t = GrpoTrainer::start(config(base_dir.clone()), &whole, samples.clone(), &load).unwrap();
    let planned = r1_grpo::plan::lora_parameters(t.config.lora.as_ref().unwrap(), &model_shape(&base_dir).unwrap());
    assert_eq!(planned, lora::adapter_parameters(&t.policy().model), "the plan counts the adapters attached");
    t.train(2, |_| {}).unwrap();

    // The base is bit for bit the loaded model; every adapter's B has left zero.
    let after = weights(t.policy());
    let (mut adapters, mut moved) = (0, 0);
    for (path, values) in &after {
        match base.get(path) {
            Some(old) => assert_eq!(values, old, "frozen {path} moved"),
            None => {
                assert!(path.contains(".lora."), "{path} is neither base nor adapter");
                adapters += 1;
                moved += usize::from(path.ends_with("lora_b") && values.iter().any(|&v| v != 0.0));
            }
        }
    }
    assert_eq!(after.len() - adapters, base.len());
    assert_eq!(moved, adapters / 2, "every B trained");
    // 4 decoder layers x 7 and 2 vision blocks x 5 (qkv, proj and, named for the decoder, the MLP
    // projections the vision blocks share the names of), A and B each.
    assert_eq!(adapters, 2 * (4 * 7 + 2 * 5));

    // Checkpoints are PEFT adapter folders over the base, with no copy of its weights.
    let checkpoint = RunDir { root: whole.clone() }.latest_checkpoint().unwrap().unwrap().1.join(MODEL_DIR);
    for file in [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, "config.json", "tokenizer.json"] {
        assert!(checkpoint.join(file).is_file(), "{file}");
    }
    assert!(!checkpoint.join("model.safetensors").exists());
    let reloaded = weights(&load(&checkpoint).unwrap());
    assert_eq!(reloaded, after, "the checkpoint loads back to the trained policy");

    // KL to the base: zero at the first update (B = 0), positive once the adapters moved.
    let lines = RunDir { root: whole.clone() }.read_metrics().unwrap();
    assert_eq!(lines.len(), 4);
    let kl: Vec<f64> = lines.iter().map(|l| l.policy.as_ref().unwrap().kl).collect();
    assert_eq!(kl[0], 0.0);
    assert!(kl[1..].iter().any(|&kl| kl > 0.0), "{lines:?}");

    let split = tmp.path().join("split");
    let mut t = GrpoTrainer::start(config(base_dir.clone()), &split, samples.clone(), &load).unwrap();
    t.train(1, |_| {}).unwrap();
    drop(t);
    let mut t = GrpoTrainer::resume(&split, samples, &load).unwrap();
    t.train(2, |_| {}).unwrap();
    let resumed = RunDir { root: split }.read_metrics().unwrap();
    assert_eq!(untimed(&resumed), untimed(&lines));
    assert_eq!(weights(t.policy()), after);
}
