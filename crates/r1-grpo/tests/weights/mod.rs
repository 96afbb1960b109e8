//! Helpers shared by the tests that watch the real model's weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Tensor};
use r1_grpo::config::TrainConfig;
use r1_grpo::qwen::QwenPolicy;

pub fn dataset_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

/// Every float parameter by module path (as f32) and its dtype, as [`weights`] and [`dtypes`]
/// collect them.
#[derive(Default)]
struct Weights {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
    dtypes: BTreeMap<String, DType>,
}

impl ModuleVisitor for Weights {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.dtypes.insert(self.path.join("."), value.dtype());
        self.values.insert(self.path.join("."), value.into_data().try_into_vec_as::<f32>().unwrap());
    }
}

fn visit(policy: &QwenPolicy) -> Weights {
    let mut w = Weights::default();
    policy.visit(&mut w);
    w
}

pub fn weights(policy: &QwenPolicy) -> BTreeMap<String, Vec<f32>> {
    visit(policy).values
}

/// A GRPO run of seconds on the model in `model`: 2 prompts x G 2 per rollout, replies of up to
/// 6 tokens, 2 optimiser steps per rollout, lr 1e-2, on the default dataset.
#[allow(dead_code)] // each test binary includes this module; not every one runs GRPO
pub fn short_grpo(model: PathBuf) -> TrainConfig {
    let mut c = TrainConfig::tiny();
    c.model.path = Some(model);
    c.data.root = dataset_root();
    c.rollout.group_size = 2;
    c.rollout.prompts_per_rollout = 2;
    c.rollout.max_response_tokens = 6;
    c.update.prompts_per_update = 1;
    c.update.micro_batch_size = 2;
    c.optim.lr = 1e-2;
    c
}

#[allow(dead_code)] // not every test binary reads dtypes
pub fn dtypes(policy: &QwenPolicy) -> BTreeMap<String, DType> {
    visit(policy).dtypes
}
