//! Helpers shared by the tests that watch the real model's weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use r1_grpo::qwen::QwenPolicy;

pub fn dataset_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

/// Every float parameter by module path, as [`weights`] collects them.
#[derive(Default)]
struct Weights {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Weights {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_into_vec_as::<f32>().unwrap();
        self.values.insert(self.path.join("."), values);
    }
}

pub fn weights(policy: &QwenPolicy) -> BTreeMap<String, Vec<f32>> {
    let mut w = Weights::default();
    policy.visit(&mut w);
    w.values
}
