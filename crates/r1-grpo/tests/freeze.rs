//! `freeze_vision` on the real model: an AdamW step with the vision tower frozen moves decoder
//! weights and leaves every vision-tower weight bit for bit where it was. (It used to name a
//! path the optimiser never saw, so the tower trained anyway.)

use burn::optim::GradientsParams;
use burn::tensor::Device;
use r1_data::dataset::{Split, read_split};
use r1_grpo::VISION_PREFIX;
use r1_grpo::optim::{AdamW, AdamWConfig};
use r1_grpo::policy::{Policy, ScoreRow};
use r1_grpo::qwen::QwenPolicy;

mod weights;
use weights::{dataset_root, weights};

#[test]
fn frozen_vision_tower_does_not_move() {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let texts = r1_data::qa::dataset_texts(&samples[..40]);
    r1_model::tiny::create_tiny(&dir, &texts, 0, &Device::flex()).unwrap();
    let policy = QwenPolicy::load(&dir, &dataset_root(), &Device::flex().autodiff()).unwrap();
    let before = weights(&policy);
    assert!(before.keys().any(|p| p.starts_with(&format!("{VISION_PREFIX}."))), "no parameter under {VISION_PREFIX}");

    let sample = &samples[0];
    let reply = policy.encode_reply("<think>up</think> <answer>[[A]]</answer>").unwrap();
    let loss = policy.logprobs(&[sample], &[ScoreRow { prompt: 0, ids: &reply }], 1.0).unwrap().sum();
    let grads = GradientsParams::from_grads(loss.backward(), &policy);
    let frozen = AdamWConfig { frozen_prefixes: vec![VISION_PREFIX.into()], ..AdamWConfig::default() };
    let (policy, report) = AdamW::new(frozen).step(1e-2, policy, grads).unwrap();
    assert!(report.applied);

    let after = weights(&policy);
    let (mut vision, mut moved) = (0, 0);
    for (path, old) in &before {
        let changed = &after[path] != old;
        if path.starts_with(&format!("{VISION_PREFIX}.")) {
            vision += 1;
            assert!(!changed, "frozen {path} moved");
        } else if changed {
            moved += 1;
        }
    }
    assert!(vision > 10, "only {vision} vision parameters");
    assert!(moved > 10, "only {moved} decoder parameters moved");
}
