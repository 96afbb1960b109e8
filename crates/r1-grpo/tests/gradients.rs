//! Gradients of a GRPO-style loss on the real model (two completions after a prompt with an
//! image, through the vision tower and the decoder) under the memory settings, against the
//! plain f32 autodiff device, parameter by parameter: `model.gradient_checkpointing` gives the
//! same gradients, `model.dtype = "bf16"` close ones, in f32, for the f32 master weights; under
//! LoRA the frozen base is then stored in bf16.
//!
//! (Not with the LoRA resume test: dropout draws from burn's one random generator, which the
//! tests of one binary share.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, Tensor};
use r1_data::dataset::{Split, read_split};
use r1_grpo::config::TrainConfig;
use r1_grpo::grpo::GrpoTrainer;
use r1_grpo::policy::{Policy, ScoreRow};
use r1_grpo::qwen::{QwenPolicy, loader};
use r1_grpo::run::RunDir;
use r1_model::Precision;
use r1_model::lora::LoraConfig;
use r1_model::weights::gradients_by_path;

mod weights;
use weights::{dataset_root, dtypes, short_grpo, weights};

/// Log-probs `[2, T]` of two completions after the first training prompt.
fn two_completions(policy: &QwenPolicy) -> Tensor<2> {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let a = policy.encode_reply("<think>up and left</think> <answer>[[A]]</answer>").unwrap();
    let b = policy.encode_reply("<think>down</think> <answer>[[C]]</answer>").unwrap();
    let rows = [ScoreRow { prompt: 0, ids: &a }, ScoreRow { prompt: 0, ids: &b }];
    policy.logprobs(&[&samples[0]], &rows, 1.0).unwrap()
}

/// The gradients of every parameter, and the log-probs of [`two_completions`].
fn gradients(dir: &Path, config: &TrainConfig) -> (BTreeMap<String, Vec<f32>>, Vec<f32>) {
    let policy: QwenPolicy = loader(config, config.training_device(None).unwrap())(dir).unwrap();
    let logp = two_completions(&policy);
    let values = logp.clone().into_data().try_into_vec_as::<f32>().unwrap();
    // Different weights per row, as advantages give them.
    let loss = (logp.clone().narrow(0, 0, 1).sum() * 0.7 - logp.narrow(0, 1, 1).sum() * 1.3).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &policy);
    let by_path = gradients_by_path(&policy, &grads)
        .into_iter()
        .map(|(path, (dtype, g))| {
            assert_eq!((dtype, g.dtype()), (DType::F32, DType::F32), "{path}");
            (path, g.try_into_vec_as::<f32>().unwrap())
        })
        .collect();
    (by_path, values)
}

/// The tiny preset, reading the default dataset from this crate's folder.
fn tiny_config() -> TrainConfig {
    let mut config = TrainConfig::tiny();
    config.data.root = dataset_root();
    config
}

/// A tiny model, written under `tmp`.
fn tiny_model(tmp: &Path) -> PathBuf {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let dir = tmp.join("tiny");
    r1_model::tiny::create_tiny(&dir, &r1_data::qa::dataset_texts(&samples[..40]), 0, &Device::flex()).unwrap();
    dir
}

/// Largest |difference| per parameter, over the parameter's largest |gradient|.
fn relative_differences(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> Vec<(String, f32)> {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.keys().any(|p| p.starts_with("model.visual.")), "the vision tower got no gradient");
    a.iter()
        .map(|(path, g)| {
            let scale = g.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
            let diff = g.iter().zip(&b[path]).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            (path.clone(), diff / scale)
        })
        .collect()
}

#[test]
fn checkpointed_gradients_equal_the_plain_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model(tmp.path());
    let mut config = tiny_config();
    let (plain, _) = gradients(&dir, &config);
    config.model.gradient_checkpointing = true;
    assert!(config.training_device(None).unwrap().gradient_checkpointing_strategy().is_some());
    let (checkpointed, _) = gradients(&dir, &config);
    for (path, diff) in relative_differences(&plain, &checkpointed) {
        // Recomputation repeats the same f32 operations in the same order: equal up to rounding.
        assert!(diff <= 1e-5, "{path}: max |difference| {diff} of the largest gradient");
    }
}

/// bf16 forward passes (mixed precision): every gradient reaches its f32 weight in f32 (the
/// visitor checks the dtypes), and stays close to the f32 one. bf16 keeps 8 significant bits,
/// so the bound is a few percent of each parameter's largest gradient; the log-probs are
/// compared against the f32 ones in nats.
#[test]
fn bf16_gradients_are_f32_and_close_to_the_f32_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model(tmp.path());
    let mut config = tiny_config();
    let (plain, plain_logp) = gradients(&dir, &config);
    config.model.dtype = Precision::Bf16;
    let (bf16, bf16_logp) = gradients(&dir, &config);
    let worst = relative_differences(&plain, &bf16)
        .into_iter()
        .fold((String::new(), 0f32), |w, d| if d.1 > w.1 { d } else { w });
    let logp_diff = plain_logp.iter().zip(&bf16_logp).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("bf16: largest gradient difference {:.3} ({}), log-probs {logp_diff:.3e}", worst.1, worst.0);
    assert!(worst.1 > 0.0, "bf16 gave the f32 gradients exactly: the forward did not run in bf16");
    assert!(worst.1 < 0.05, "{}: bf16 gradient off by {} of the largest", worst.0, worst.1);
    assert!(logp_diff < 0.02, "bf16 log-probs off by {logp_diff} nats");
}

/// LoRA with bf16 forward passes: the frozen base is stored in bf16 (the loaded weights
/// rounded, and never moved), the adapters keep f32 weights that train, and the run's losses
/// and KL stay finite.
#[test]
fn bf16_lora_stores_the_base_in_bf16_and_trains_f32_adapters() {
    let samples: Vec<_> = read_split(&dataset_root(), Split::Train).unwrap().into_iter().take(40).collect();
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = tiny_model(tmp.path());
    let mut c = short_grpo(base_dir.clone());
    c.model.dtype = Precision::Bf16;
    c.lora = Some(LoraConfig { r: 4, alpha: 8.0, ..LoraConfig::default() });
    let load = loader(&c, c.training_device(None).unwrap());
    let loaded = weights(&load(&base_dir).unwrap());

    let run = tmp.path().join("run");
    let mut t = GrpoTrainer::start(c, &run, samples, &load).unwrap();
    t.train(2, |_| {}).unwrap();
    let (after, dtypes) = (weights(t.policy()), dtypes(t.policy()));
    let bf16 = |x: f32| half::bf16::from_f32(x).to_f32();
    for (path, values) in &after {
        match loaded.get(path) {
            Some(old) => {
                assert_eq!(dtypes[path], DType::BF16, "{path}");
                assert!(values.iter().zip(old).all(|(&v, &o)| v == bf16(o)), "{path} is not the loaded weight in bf16");
            }
            None => assert_eq!(dtypes[path], DType::F32, "adapter {path}"),
        }
    }
    assert!(after.iter().any(|(p, v)| p.ends_with("lora_b") && v.iter().any(|&x| x != 0.0)), "no adapter trained");
    for line in (RunDir { root: run }).read_metrics().unwrap() {
        let policy = line.policy.as_ref().unwrap();
        assert!(policy.kl.is_finite() && line.update.loss.is_finite(), "{line:?}");
    }
}

/// GRPO's reference under bf16 is stored in bf16 (half the copy) and scores exactly as the
/// policy's own bf16 forward does.
#[test]
fn bf16_reference_is_stored_in_bf16_and_scores_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_model(tmp.path());
    let mut config = tiny_config();
    config.model.dtype = Precision::Bf16;
    let policy = loader(&config, config.training_device(None).unwrap())(&dir).unwrap();
    let reference = policy.clone().into_reference();
    assert!(dtypes(&reference).values().all(|&d| d == DType::BF16));
    let host = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().unwrap();
    assert_eq!(host(two_completions(&reference)), host(two_completions(&policy.valid())));
}
