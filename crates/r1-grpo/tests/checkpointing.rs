//! `model.gradient_checkpointing` on the real model: the gradients of a GRPO-style loss (two
//! completions after a prompt with an image, through the vision tower and the decoder) equal
//! those of the plain autodiff device, parameter by parameter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use r1_data::dataset::{Split, read_split};
use r1_grpo::config::TrainConfig;
use r1_grpo::policy::{Policy, ScoreRow};
use r1_grpo::qwen::QwenPolicy;

fn dataset_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

/// The gradient of every parameter that has one, by module path.
struct Grads<'a> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Grads<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.values.insert(self.path.join("."), g.into_data().try_into_vec_as::<f32>().unwrap());
        }
    }
}

fn gradients(dir: &Path, device: &Device) -> BTreeMap<String, Vec<f32>> {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let policy = QwenPolicy::load(dir, &dataset_root(), device).unwrap();
    let a = policy.encode_reply("<think>up and left</think> <answer>[[A]]</answer>").unwrap();
    let b = policy.encode_reply("<think>down</think> <answer>[[C]]</answer>").unwrap();
    let rows = [ScoreRow { prompt: 0, ids: &a }, ScoreRow { prompt: 0, ids: &b }];
    let logp = policy.logprobs(&[&samples[0]], &rows, 1.0).unwrap();
    // Different weights per row, as advantages give them.
    let loss = (logp.clone().narrow(0, 0, 1).sum() * 0.7 - logp.narrow(0, 1, 1).sum() * 1.3).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &policy);
    let mut visitor = Grads { grads: &grads, path: Vec::new(), values: BTreeMap::new() };
    policy.visit(&mut visitor);
    visitor.values
}

#[test]
fn checkpointed_gradients_equal_the_plain_ones() {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    r1_model::tiny::create_tiny(&dir, &r1_data::qa::dataset_texts(&samples[..40]), 0, &Device::flex()).unwrap();

    let mut config = TrainConfig::tiny();
    let plain = gradients(&dir, &config.training_device(None).unwrap());
    config.model.gradient_checkpointing = true;
    let device = config.training_device(None).unwrap();
    assert!(device.gradient_checkpointing_strategy().is_some());
    let checkpointed = gradients(&dir, &device);

    assert_eq!(plain.keys().collect::<Vec<_>>(), checkpointed.keys().collect::<Vec<_>>());
    assert!(plain.keys().any(|p| p.starts_with("model.visual.")), "the vision tower got no gradient");
    for (path, g) in &plain {
        let c = &checkpointed[path];
        let scale = g.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
        let diff = g.iter().zip(c).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        // Recomputation repeats the same f32 operations in the same order: equal up to rounding.
        assert!(diff <= 1e-5 * scale, "{path}: max |difference| {diff} against max |gradient| {scale}");
    }
}
