//! LoRA adapters (`r1_model::lora`): the forward with `B = 0` is the base model's, gradients
//! reach the adapters alone, the base with adapters off is the base, merging equals the adapted
//! forward, adapters round-trip through PEFT's files, and PEFT applies r1's saved adapters to
//! the transformers model with the logits r1 computes.
//!
//! The PEFT fixture, `tests/fixtures/lora/`, is made in two steps: `cargo test --workspace
//! --release --test lora -- --ignored write_peft_fixture` writes r1's adapters for the
//! `gqa1_tied` checkpoint into `lora/adapter/`, then `scripts/check_lora_with_peft.py` loads
//! them with `PeftModel.from_pretrained` and writes PEFT's logits (`lora/peft_logits.safetensors`).

mod common;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{Arrays, fixture, masked_diff, max_abs_diff};
use r1_model::lora::{self, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraConfig};
use r1_model::{ImageInput, ModelError, Qwen2_5VlModel, checkpoint, load_model, save_model};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Merging reorders the sums of the adapted forward: relative to the largest logit.
const MERGE_TOL: f32 = 1e-5;
/// PEFT in PyTorch against r1 in burn, f32, as the parity fixtures.
const PEFT_TOL: f32 = 1e-4;

/// Every projection of both towers, rank 4, so that each kind of site is exercised.
fn everywhere() -> LoraConfig {
    let mut targets: Vec<String> = lora::TEXT_TARGETS.iter().map(|s| s.to_string()).collect();
    targets.extend(["qkv", "proj"].map(String::from));
    LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, target_modules: targets, vision: true }
}

/// The `gqa1_tied` checkpoint with its inputs.
struct Case {
    model: Qwen2_5VlModel,
    inputs: Arrays,
    device: Device,
}

impl Case {
    fn load(device: Device) -> Self {
        let dir = fixture("gqa1_tied");
        let (_, model) = load_model(&dir, &device).unwrap();
        Self { model, inputs: Arrays::read(&dir.join("inputs.safetensors")), device }
    }

    /// Logits `[B, T, V]` of `model` on the fixture's prompt and images.
    fn logits(&self, model: &Qwen2_5VlModel) -> Tensor<3> {
        let shape = self.inputs.shape("input_ids");
        let int2 = |name: &str| {
            Tensor::<2, Int>::from_data(TensorData::new(self.inputs.ints(name), [shape[0], shape[1]]), &self.device)
        };
        let grids = self.inputs.ints("grid_thw");
        let images = ImageInput {
            pixel_values: Tensor::from_data(
                TensorData::new(self.inputs.f32("pixel_values"), self.inputs.shape("pixel_values")),
                &self.device,
            ),
            grid_thw: grids.chunks(3).map(|g| [g[0] as usize, g[1] as usize, g[2] as usize]).collect(),
        };
        model.forward(int2("input_ids"), int2("attention_mask"), Some(&images), None).unwrap()
    }
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Gives every adapter a random `B` (attached adapters start at zero, which would hide any
/// mistake in how `B` is used).
fn randomise_b(model: &mut Qwen2_5VlModel, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for site in lora::sites(model) {
        if let Some(adapter) = site.layer.lora.as_mut() {
            let dims = adapter.lora_b.lazy_shape();
            let device = adapter.lora_b.lazy_device();
            let b: Vec<f32> = (0..dims.num_elements()).map(|_| 0.2 * (rng.random::<f32>() - 0.5)).collect();
            adapter.lora_b = Param::from_tensor(Tensor::from_data(TensorData::new(b, [dims[0], dims[1]]), &device));
        }
    }
}

fn adapted(case: &Case, config: &LoraConfig) -> Qwen2_5VlModel {
    let mut model = lora::attach(case.model.clone(), config, 7).unwrap();
    randomise_b(&mut model, 11);
    model
}

#[test]
fn zero_b_is_the_base_and_adapters_off_is_the_base() {
    let case = Case::load(Device::flex());
    let base = values(case.logits(&case.model));
    let attached = lora::attach(case.model.clone(), &everywhere(), 7).unwrap();
    assert_eq!(max_abs_diff(&values(case.logits(&attached)), &base), 0.0, "B = 0 adds exactly nothing");

    let mut trained = attached;
    randomise_b(&mut trained, 11);
    let adapted = values(case.logits(&trained));
    assert!(max_abs_diff(&adapted, &base) > 1e-2, "the adapters change the logits");
    let off = lora::without_adapters(&trained);
    assert!(!lora::has_adapters(&off) && lora::has_adapters(&trained), "the adapted model keeps its adapters");
    assert_eq!(max_abs_diff(&values(case.logits(&off)), &base), 0.0, "adapters off is the base, bit for bit");
}

#[test]
fn merging_equals_the_adapted_forward() {
    let case = Case::load(Device::flex());
    let model = adapted(&case, &everywhere());
    let expected = values(case.logits(&model));
    let merged = lora::merge(model);
    assert!(!lora::has_adapters(&merged));
    let diff = max_abs_diff(&values(case.logits(&merged)), &expected);
    let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    println!("merged vs adapted: max |difference| {diff:.2e}, largest |logit| {scale:.2}");
    assert!(diff <= MERGE_TOL * scale, "{diff} against logits up to {scale}");
}

/// Which parameters got a gradient, by module path.
#[derive(Default)]
struct Graded<'a> {
    grads: Option<&'a GradientsParams>,
    path: Vec<String>,
    found: BTreeMap<String, Option<f32>>,
}

impl ModuleVisitor for Graded<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = self.grads.and_then(|g| g.get::<D>(param.id)).map(|g| g.abs().max().into_scalar::<f32>());
        self.found.insert(self.path.join("."), grad);
    }
}

#[test]
fn gradients_reach_only_the_adapters() {
    let case = Case::load(Device::flex().autodiff());
    let config = LoraConfig { dropout: 0.1, ..everywhere() };
    let model = adapted(&case, &config);
    let loss = case.logits(&model).square().mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut graded = Graded { grads: Some(&grads), ..Graded::default() };
    model.visit(&mut graded);
    let (mut adapters, mut base) = (0, 0);
    for (path, grad) in &graded.found {
        if path.contains(".lora.") {
            adapters += 1;
            let grad = grad.unwrap_or_else(|| panic!("{path} has no gradient"));
            assert!(grad > 0.0, "{path}: zero gradient");
        } else {
            base += 1;
            assert!(grad.is_none(), "frozen {path} has a gradient");
        }
    }
    // 2 decoder layers x 7 projections and 2 vision blocks x 5 (qkv, proj and the MLP's three),
    // each with A and B.
    assert_eq!(adapters, 2 * (2 * 7 + 2 * 5));
    assert!(base > 40, "{base}");
}

#[test]
fn adapters_round_trip_through_peft_files() {
    let case = Case::load(Device::flex());
    let model = adapted(&case, &everywhere());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    lora::save_adapters(&model, &fixture("gqa1_tied"), &dir).unwrap();
    let loaded = lora::load_adapters(case.model.clone(), &dir).unwrap();
    assert_eq!(values(case.logits(&loaded)), values(case.logits(&model)), "bit for bit");
    let again = tmp.path().join("again");
    lora::save_adapters(&loaded, &fixture("gqa1_tied"), &again).unwrap();
    for file in [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE] {
        assert_eq!(std::fs::read(dir.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap(), "{file}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(ADAPTER_CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!((config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some(4), Some(8.0)));
    assert!(config["base_model_name_or_path"].as_str().unwrap().ends_with("gqa1_tied"));

    // A full checkpoint would silently lose the adapters: refused.
    let err = save_model(
        &model,
        &r1_model::Qwen2_5VlConfig::from_file(&fixture("gqa1_tied").join("config.json")).unwrap(),
        tmp.path(),
    );
    assert!(matches!(err, Err(ModelError::Lora { .. })), "{err:?}");
}

/// Adapter files r1 cannot use are refused with the reason, never half-applied.
#[test]
fn bad_adapter_folders_are_refused() {
    let case = Case::load(Device::flex());
    let model = adapted(&case, &everywhere());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    lora::save_adapters(&model, &fixture("gqa1_tied"), &dir).unwrap();
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    for (key, value, needle) in [
        ("use_dora", serde_json::json!(true), "use_dora"),
        ("r", serde_json::json!(5), "shape"),
        ("peft_type", serde_json::json!("IA3"), "LORA"),
        ("lora_dropout", serde_json::json!(1.5), "lora_dropout"),
    ] {
        let mut changed = original.clone();
        changed[key] = value;
        std::fs::write(&config_path, serde_json::to_vec(&changed).unwrap()).unwrap();
        let err = lora::load_adapters(case.model.clone(), &dir).unwrap_err().to_string();
        assert!(err.contains(needle), "{key}: {err}");
    }
    // Adapters for a layer the model does not have.
    std::fs::write(&config_path, serde_json::to_vec(&original).unwrap()).unwrap();
    let (_, other) = load_model(&fixture("gqa2_untied_windows"), &case.device).unwrap();
    assert!(lora::load_adapters(other, &dir).is_err());
}

/// A checkpoint folder holding adapters (what a LoRA run writes) loads with its base, and the
/// merged checkpoint (what `cargo xtask merge` writes) is an ordinary one with the same outputs.
#[test]
fn adapter_checkpoints_load_with_their_base_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = tmp.path().join("tiny");
    let texts: Vec<String> =
        (0..50).map(|i| format!("<think>step {i}</think> <answer>[[A]]</answer> move up")).collect();
    let device = Device::flex();
    r1_model::tiny::create_tiny(&base_dir, &texts, 3, &device).unwrap();
    let (assets, base) = checkpoint::load(&base_dir, &device).unwrap();
    let mut model = lora::attach(base, &LoraConfig::default(), 1).unwrap();
    randomise_b(&mut model, 2);

    let adapter_dir = tmp.path().join("checkpoint-1/model");
    checkpoint::save_adapted(&model, &assets, &base_dir, &adapter_dir).unwrap();
    assert!(adapter_dir.join(ADAPTER_WEIGHTS_FILE).is_file() && !adapter_dir.join("model.safetensors").exists());
    assert_eq!(checkpoint::base_dir(&adapter_dir).unwrap(), base_dir.canonicalize().unwrap());
    let (_, loaded) = checkpoint::load(&adapter_dir, &device).unwrap();

    let ids: Vec<i64> = assets.tokenizer.encode("move up", false).unwrap().into_iter().map(i64::from).collect();
    let t = ids.len();
    let forward = |m: &Qwen2_5VlModel| {
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, t]), &device);
        let mask = Tensor::<2, Int>::ones([1, t], &device);
        values(m.forward(input, mask, None, None).unwrap())
    };
    let expected = forward(&model);
    assert_eq!(forward(&loaded), expected);

    let merged_dir = tmp.path().join("merged");
    checkpoint::save(&lora::merge(loaded), &assets, &merged_dir).unwrap();
    let (_, merged) = checkpoint::load(&merged_dir, &device).unwrap();
    assert!(!lora::has_adapters(&merged));
    assert!(max_abs_diff(&forward(&merged), &expected) <= MERGE_TOL);
}

/// PEFT applied r1's adapters (`lora/adapter/`, written by r1) to transformers' model and
/// computed these logits; r1 computes the same from the same files.
#[test]
fn peft_logits_match() {
    let case = Case::load(Device::flex());
    let dir = fixture("lora");
    let model = lora::load_adapters(case.model.clone(), &dir.join("adapter")).unwrap();
    let peft = Arrays::read(&dir.join("peft_logits.safetensors"));
    // Left-padding rows hold whatever each implementation leaves there: compared where a token is.
    let vocab = *peft.shape("logits").last().unwrap();
    let mask = case.inputs.ints("attention_mask");
    let diff = masked_diff(&values(case.logits(&model)), &peft.f32("logits"), &mask, vocab);
    let base_diff = masked_diff(&values(case.logits(&case.model)), &peft.f32("logits"), &mask, vocab);
    println!("r1 vs PEFT logits: max |difference| {diff:.2e} (the base model is {base_diff:.2e} away)");
    assert!(diff <= PEFT_TOL, "{diff}");
    assert!(base_diff > 100.0 * PEFT_TOL, "the adapters must matter for the comparison to mean anything");
    let merged = values(case.logits(&lora::merge(model)));
    let merged_diff = masked_diff(&merged, &peft.f32("merged_logits"), &mask, vocab);
    println!("r1 merged vs PEFT merge_and_unload: max |difference| {merged_diff:.2e}");
    assert!(merged_diff <= PEFT_TOL, "{merged_diff}");
}

/// Writes r1's adapters for the PEFT fixture (run by hand, then the Python script).
#[test]
#[ignore]
fn write_peft_fixture() {
    let case = Case::load(Device::flex());
    let model = adapted(&case, &everywhere());
    let dir = fixture("lora").join("adapter");
    lora::save_adapters(&model, &fixture("gqa1_tied"), &dir).unwrap();
    // A path relative to the repository root rather than this machine's absolute one.
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["base_model_name_or_path"] = "crates/r1-model/tests/fixtures/gqa1_tied".into();
    let text = serde_json::to_string_pretty(&config).unwrap();
    std::fs::write(&path, format!("{text}\n")).unwrap();
}
