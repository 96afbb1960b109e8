//! LoRA: low-rank adapters on the model's projections, saved and loaded in PEFT's layout.
//!
//! An adapted projection computes `y = x W + b + (alpha / r) * dropout(x) A B` with `A [in, r]`
//! and `B [r, out]` (burn's `[in, out]` orientation; PEFT stores `lora_A.weight [r, in]` and
//! `lora_B.weight [out, r]`). `B` starts at zero, so attaching adapters leaves the model's outputs
//! unchanged; `A` starts as PEFT's does, Kaiming-uniform with `a = sqrt(5)`, i.e. uniform in
//! `±1 / sqrt(in)`. The adapter acts on the activations rather than forming `W + s A B`, so a
//! training step never materialises a weight-sized tensor or gradient for a frozen projection
//! (burn's own `apply_lora` reparameterises the weight, which does), and dropout on `x` can be
//! expressed at all.
//!
//! The frozen base stays shared: [`without_adapters`] is the same weights with the adapters
//! left out (what GRPO's reference model is under LoRA), and [`merge`] folds them into `W`.
//!
//! On disk an adapter folder is what `peft` writes for `Qwen2_5_VLForConditionalGeneration`:
//! `adapter_config.json` (`peft_type` LORA, `r`, `lora_alpha`, `lora_dropout`, `target_modules`
//! as a regular expression over module names, `base_model_name_or_path`) and
//! `adapter_model.safetensors` with keys such as
//! `base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight`.
//! `PeftModel.from_pretrained` loads it onto the transformers model
//! (`crates/r1-model/scripts/check_lora_with_peft.py` checks that it does, logits included).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;
use crate::weights::{to_f32, transpose, write_atomic};

/// PEFT's adapter configuration file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's adapter weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix PEFT gives every key: the `PeftModel`'s `base_model` (a `LoraModel`), then its
/// `model` (the transformers model).
const PEFT_PREFIX: &str = "base_model.model.";

/// Projections of a decoder layer, by the names PEFT's `target_modules` use.
pub const TEXT_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
/// Projections of a vision block: the fused `attn.qkv`, `attn.proj` and the MLP's three.
pub const VISION_TARGETS: [&str; 5] = ["qkv", "proj", "gate_proj", "up_proj", "down_proj"];

/// Where adapters go and how they are shaped (the `[lora]` section of a training config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of `A [in, r]` and `B [r, out]`.
    #[serde(default = "default_rank")]
    pub r: usize,
    /// The adapter's output is scaled by `alpha / r`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Dropout on the adapter's input while training (0 for none).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Projections adapted, by PEFT's names ([`TEXT_TARGETS`], and [`VISION_TARGETS`] with
    /// `vision`).
    #[serde(default = "default_targets")]
    pub target_modules: Vec<String>,
    /// Also adapt the vision tower's blocks (their projections named in `target_modules`).
    #[serde(default)]
    pub vision: bool,
}

fn default_rank() -> usize {
    16
}

fn default_alpha() -> f64 {
    32.0
}

fn default_dropout() -> f64 {
    0.05
}

fn default_targets() -> Vec<String> {
    TEXT_TARGETS.iter().map(|s| s.to_string()).collect()
}

impl Default for LoraConfig {
    /// Rank 16, alpha 32, dropout 0.05 on every projection of the decoder.
    fn default() -> Self {
        Self {
            r: default_rank(),
            alpha: default_alpha(),
            dropout: default_dropout(),
            target_modules: default_targets(),
            vision: false,
        }
    }
}

impl LoraConfig {
    /// Every problem with the settings, each naming the `[lora]` key concerned (empty: valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.r == 0 {
            problems.push("lora.r must be at least 1".to_string());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            problems.push(format!("lora.alpha = {} must be positive", self.alpha));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            problems.push(format!("lora.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.target_modules.is_empty() {
            problems.push("lora.target_modules is empty: name at least one projection".to_string());
        }
        let known: BTreeSet<&str> = TEXT_TARGETS.iter().chain(&VISION_TARGETS).copied().collect();
        let mut seen = BTreeSet::new();
        for name in &self.target_modules {
            if !known.contains(name.as_str()) {
                problems.push(format!(
                    "lora.target_modules: unknown projection {name:?} (decoder: {}; vision tower: {})",
                    TEXT_TARGETS.join(", "),
                    VISION_TARGETS.join(", ")
                ));
            } else if !seen.insert(name.as_str()) {
                problems.push(format!("lora.target_modules names {name:?} twice"));
            } else if !self.vision && !TEXT_TARGETS.contains(&name.as_str()) {
                problems.push(format!(
                    "lora.target_modules: {name:?} is a vision-tower projection; set lora.vision = true"
                ));
            }
        }
        if self.vision && !self.target_modules.iter().any(|t| VISION_TARGETS.contains(&t.as_str())) {
            problems.push(format!(
                "lora.vision = true but lora.target_modules names no vision-tower projection ({})",
                VISION_TARGETS.join(", ")
            ));
        }
        problems
    }

    /// Whether the projection `kind` of the decoder (`vision` false) or of the vision tower gets
    /// an adapter.
    pub fn targets(&self, kind: &str, vision: bool) -> bool {
        (!vision || self.vision) && self.target_modules.iter().any(|t| t == kind)
    }
}

/// The low-rank update of one projection.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `A [in, r]`.
    pub lora_a: Param<Tensor<2>>,
    /// `B [r, out]`, zero when attached.
    pub lora_b: Param<Tensor<2>>,
    /// The output is scaled by `alpha / r`.
    pub alpha: f64,
    /// On the adapter's input, only on an autodiff device (training).
    pub dropout: Dropout,
}

impl LoraAdapter {
    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape()[1]
    }

    fn scale(&self) -> f64 {
        self.alpha / self.rank() as f64
    }

    /// `x [.., in]` -> `(alpha / r) dropout(x) A B`, `[.., out]`.
    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let down = linear(self.dropout.forward(x), self.lora_a.val(), None);
        linear(down, self.lora_b.val(), None) * self.scale()
    }

    /// `scale A B`, `[in, out]`: the adapter as a weight update.
    fn delta(&self) -> Tensor<2> {
        self.lora_a.val().matmul(self.lora_b.val()) * self.scale()
    }
}

/// A linear layer that may carry a LoRA adapter. The base fields are named as in burn's
/// `Linear`, so module paths (checkpoint keys, optimiser state) are those of a plain layer.
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// `W [in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `b [out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The adapter, when attached.
    pub lora: Option<LoraAdapter>,
}

impl From<Linear> for LoraLinear {
    fn from(layer: Linear) -> Self {
        Self { weight: layer.weight, bias: layer.bias, lora: None }
    }
}

impl LoraLinear {
    /// `x [.., in]` -> `x W + b (+ the adapter's update)`, `[.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let base = linear(x.clone(), self.weight.val(), self.bias.as_ref().map(Param::val));
        match &self.lora {
            Some(adapter) => base + adapter.forward(x),
            None => base,
        }
    }
}

/// One adaptable projection of the model.
pub struct Site<'a> {
    /// Its module name in transformers' `Qwen2_5_VLForConditionalGeneration` (transformers 5:
    /// `model.language_model.layers.0.self_attn.q_proj`, `model.visual.blocks.0.attn.qkv`).
    pub name: String,
    /// Its PEFT target name (`q_proj`, `qkv`, ...).
    pub kind: &'static str,
    /// In the vision tower.
    pub vision: bool,
    pub layer: &'a mut LoraLinear,
}

impl Site<'_> {
    /// The name in the original release's layout (`model.layers.*`, `visual.*`), which older
    /// transformers versions and their PEFT adapters use.
    fn original_name(&self) -> String {
        if let Some(rest) = self.name.strip_prefix("model.language_model.") {
            format!("model.{rest}")
        } else {
            self.name.strip_prefix("model.").unwrap_or(&self.name).to_string()
        }
    }
}

/// Every adaptable projection, decoder layers first: the one list that attaching, merging,
/// saving and loading adapters walk.
pub fn sites(model: &mut Qwen2_5VlModel) -> Vec<Site<'_>> {
    let mut out = Vec::new();
    for (i, layer) in model.model.layers.iter_mut().enumerate() {
        let prefix = format!("model.language_model.layers.{i}");
        let a = &mut layer.self_attn;
        for (kind, proj) in
            [("q_proj", &mut a.q_proj), ("k_proj", &mut a.k_proj), ("v_proj", &mut a.v_proj), ("o_proj", &mut a.o_proj)]
        {
            out.push(Site { name: format!("{prefix}.self_attn.{kind}"), kind, vision: false, layer: proj });
        }
        let m = &mut layer.mlp;
        for (kind, proj) in
            [("gate_proj", &mut m.gate_proj), ("up_proj", &mut m.up_proj), ("down_proj", &mut m.down_proj)]
        {
            out.push(Site { name: format!("{prefix}.mlp.{kind}"), kind, vision: false, layer: proj });
        }
    }
    for (i, block) in model.visual.blocks.iter_mut().enumerate() {
        let prefix = format!("model.visual.blocks.{i}");
        for (kind, proj) in [("qkv", &mut block.attn.qkv), ("proj", &mut block.attn.proj)] {
            out.push(Site { name: format!("{prefix}.attn.{kind}"), kind, vision: true, layer: proj });
        }
        let m = &mut block.mlp;
        for (kind, proj) in
            [("gate_proj", &mut m.gate_proj), ("up_proj", &mut m.up_proj), ("down_proj", &mut m.down_proj)]
        {
            out.push(Site { name: format!("{prefix}.mlp.{kind}"), kind, vision: true, layer: proj });
        }
    }
    out
}

/// Whether any projection carries an adapter.
pub fn has_adapters(model: &Qwen2_5VlModel) -> bool {
    sites(&mut model.clone()).iter().any(|s| s.layer.lora.is_some())
}

fn dropout(p: f64) -> Dropout {
    DropoutConfig::new(p).init()
}

/// A fresh adapter for a `[d_in, d_out]` weight: `A` uniform in `±1 / sqrt(d_in)` (PEFT's
/// Kaiming-uniform with `a = sqrt(5)`), `B` zero.
fn new_adapter(d_in: usize, d_out: usize, config: &LoraConfig, rng: &mut StdRng, device: &Device) -> LoraAdapter {
    let bound = 1.0 / (d_in as f32).sqrt();
    let a: Vec<f32> = (0..d_in * config.r).map(|_| (2.0 * rng.random::<f32>() - 1.0) * bound).collect();
    LoraAdapter {
        lora_a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [d_in, config.r]), device)),
        lora_b: Param::from_tensor(Tensor::zeros([config.r, d_out], device)),
        alpha: config.alpha,
        dropout: dropout(config.dropout),
    }
}

/// Attaches fresh adapters to the projections `config` targets (replacing any there), drawing
/// `A` from a generator seeded with `seed`, and freezes everything else: only the adapters
/// require gradients afterwards. Fails on invalid settings.
pub fn attach(model: Qwen2_5VlModel, config: &LoraConfig, seed: u64) -> Result<Qwen2_5VlModel, ModelError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ModelError::Lora { path: PathBuf::from("<config>"), message: problems.join("; ") });
    }
    let mut model = model;
    let mut rng = StdRng::seed_from_u64(seed);
    for site in sites(&mut model) {
        if config.targets(site.kind, site.vision) {
            let shape = site.layer.weight.lazy_shape();
            let device = site.layer.weight.lazy_device();
            let (d_in, d_out) = (shape[0], shape[1]);
            site.layer.lora = Some(new_adapter(d_in, d_out, config, &mut rng, &device));
        }
    }
    Ok(train_adapters_only(model))
}

/// Freezes every parameter but the adapters' `A` and `B`, so that autodiff computes (and keeps)
/// gradients for those alone.
pub fn train_adapters_only(model: Qwen2_5VlModel) -> Qwen2_5VlModel {
    let mut model = model.set_require_grad(false);
    for site in sites(&mut model) {
        if let Some(adapter) = site.layer.lora.take() {
            site.layer.lora = Some(LoraAdapter {
                lora_a: adapter.lora_a.set_require_grad(true),
                lora_b: adapter.lora_b.set_require_grad(true),
                ..adapter
            });
        }
    }
    model
}

/// The same weights with the adapters left out: the base model, sharing its tensors.
pub fn without_adapters(model: &Qwen2_5VlModel) -> Qwen2_5VlModel {
    let mut base = model.clone();
    for site in sites(&mut base) {
        site.layer.lora = None;
    }
    base
}

/// Folds every adapter into its weight, `W <- W + (alpha / r) A B`, and drops it: a plain model
/// whose forward equals the adapted one's (up to rounding).
pub fn merge(model: Qwen2_5VlModel) -> Qwen2_5VlModel {
    let mut model = model;
    for site in sites(&mut model) {
        if let Some(adapter) = site.layer.lora.take() {
            let delta = adapter.delta().detach();
            // A clone of a parameter shares its tensor; `map` keeps its id and training state.
            site.layer.weight = site.layer.weight.clone().map(|w| w.detach() + delta);
        }
    }
    model
}

/// What `adapter_config.json` says that r1 needs.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// `base_model_name_or_path`: the model the adapters were trained on.
    pub base_model: Option<PathBuf>,
}

/// Whether `dir` holds a PEFT adapter (its `adapter_config.json`).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG_FILE).is_file()
}

/// The `target_modules` regular expression (PEFT matches it against whole module names) that
/// selects exactly the adapted projections: decoder layers are `...layers.<i>.*`, vision blocks
/// `...blocks.<i>.*`, so the expression holds in either key layout.
fn target_pattern(text: &BTreeSet<&str>, vision: &BTreeSet<&str>) -> String {
    let group = |parts: &[(&str, &[&str])], set: &BTreeSet<&str>| {
        let alternatives: Vec<String> = parts
            .iter()
            .filter_map(|(parent, kinds)| {
                let chosen: Vec<&str> = kinds.iter().copied().filter(|k| set.contains(k)).collect();
                (!chosen.is_empty()).then(|| format!("{parent}\\.({})", chosen.join("|")))
            })
            .collect();
        alternatives.join("|")
    };
    let mlp: &[&str] = &["gate_proj", "up_proj", "down_proj"];
    let mut patterns = Vec::new();
    if !text.is_empty() {
        let attn: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj"];
        patterns.push(format!("(.*\\.)?layers\\.\\d+\\.({})", group(&[("self_attn", attn), ("mlp", mlp)], text)));
    }
    if !vision.is_empty() {
        let attn: &[&str] = &["qkv", "proj"];
        patterns.push(format!("(.*\\.)?blocks\\.\\d+\\.({})", group(&[("attn", attn), ("mlp", mlp)], vision)));
    }
    patterns.join("|")
}

/// Writes the model's adapters as a PEFT adapter folder into `dir` (created if needed), each file
/// atomically, in f32. `base` is recorded as `base_model_name_or_path` (made absolute, so the
/// folder loads from anywhere). Fails when the model has no adapter, or adapters of different
/// ranks or alphas (PEFT's file holds one of each).
pub fn save_adapters(model: &Qwen2_5VlModel, base: &Path, dir: &Path) -> Result<(), ModelError> {
    let bad = |message: String| ModelError::Lora { path: dir.to_path_buf(), message };
    let mut model = model.clone();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let (mut text, mut vision) = (BTreeSet::new(), BTreeSet::new());
    let mut shape: Option<(usize, f64, f64)> = None;
    for site in sites(&mut model) {
        let Some(adapter) = &site.layer.lora else { continue };
        let this = (adapter.rank(), adapter.alpha, adapter.dropout.prob);
        match shape {
            None => shape = Some(this),
            Some(first) if first != this => {
                return Err(bad(format!(
                    "{} has rank {}, alpha {}, dropout {} but another adapter {first:?}: PEFT's file holds one of each",
                    site.name, this.0, this.1, this.2
                )));
            }
            Some(_) => {}
        }
        (if site.vision { &mut vision } else { &mut text }).insert(site.kind);
        for (suffix, param) in [("lora_A", &adapter.lora_a), ("lora_B", &adapter.lora_b)] {
            let value = param.val();
            let [rows, cols] = value.dims();
            let values = value.into_data().try_into_vec_as::<f32>().map_err(|e| bad(format!("{e:?}")))?;
            // burn keeps [in, r] and [r, out]; PyTorch's Linear weights are [out, in].
            let values = transpose(&values, rows, cols);
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("{PEFT_PREFIX}{}.{suffix}.weight", site.name), vec![cols, rows], bytes));
        }
    }
    let Some((r, alpha, dropout)) = shape else {
        return Err(bad("the model carries no adapter to save".into()));
    };
    let views = tensors
        .iter()
        .map(|(key, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (key.clone(), v))
                .map_err(|e| bad(format!("tensor {key}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
    let weights = safetensors::serialize(views, metadata).map_err(|e| bad(format!("cannot serialise: {e}")))?;
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let config = json!({
        "peft_type": "LORA",
        "task_type": null,
        "base_model_name_or_path": base.to_string_lossy(),
        "revision": null,
        "inference_mode": true,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "target_modules": target_pattern(&text, &vision),
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "modules_to_save": null,
    });
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    write_atomic(&dir.join(ADAPTER_WEIGHTS_FILE), &weights)?;
    let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
    write_atomic(&dir.join(ADAPTER_CONFIG_FILE), format!("{text}\n").as_bytes())
}

/// Reads `dir/adapter_config.json`, refusing the variants r1 does not implement.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig, ModelError> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.clone(), source })?;
    let bad = |message: String| ModelError::Lora { path: path.clone(), message };
    let field = |name: &str| value.get(name).filter(|v| !v.is_null());
    match field("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => return Err(bad(format!("peft_type is {other:?}; r1 reads LORA adapters only"))),
    }
    for flag in ["use_dora", "use_rslora", "fan_in_fan_out"] {
        if field(flag).and_then(Value::as_bool) == Some(true) {
            return Err(bad(format!("{flag} = true is not supported")));
        }
    }
    if field("bias").and_then(Value::as_str).is_some_and(|b| b != "none") {
        return Err(bad("only bias = \"none\" is supported".into()));
    }
    if field("modules_to_save").and_then(Value::as_array).is_some_and(|m| !m.is_empty()) {
        return Err(bad("modules_to_save is not supported".into()));
    }
    let r = field("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| bad("r must be a positive integer".into()))?;
    let alpha = field("lora_alpha")
        .and_then(Value::as_f64)
        .filter(|a| a.is_finite() && *a > 0.0)
        .ok_or_else(|| bad("lora_alpha must be a positive number".into()))?;
    let dropout = match field("lora_dropout") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|d| (0.0..1.0).contains(d))
            .ok_or_else(|| bad("lora_dropout must be a number in [0, 1)".into()))?,
    };
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            return Err(bad(format!("{pattern} (per-module ranks or alphas) is not supported")));
        }
    }
    let base_model = field("base_model_name_or_path").and_then(Value::as_str).map(PathBuf::from);
    Ok(AdapterConfig { r: r as usize, alpha, dropout, base_model })
}

/// Attaches the adapters of the PEFT folder `dir` to `model` (replacing any), on the model's
/// device, and freezes everything else. Every tensor of the file must belong to a projection of
/// the model, with both factors at the configured rank.
pub fn load_adapters(model: Qwen2_5VlModel, dir: &Path) -> Result<Qwen2_5VlModel, ModelError> {
    let config = read_adapter_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bad = |message: String| ModelError::Lora { path: path.clone(), message };
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut pending: BTreeSet<String> = file.names().into_iter().map(str::to_string).collect();
    let mut model = model;
    for site in sites(&mut model) {
        site.layer.lora = None;
        let keys: Vec<[String; 2]> = [site.name.clone(), site.original_name()]
            .map(|name| ["lora_A", "lora_B"].map(|s| format!("{PEFT_PREFIX}{name}.{s}.weight")))
            .into_iter()
            .filter(|[a, b]| pending.contains(a) || pending.contains(b))
            .collect();
        let [key_a, key_b] = match keys.as_slice() {
            [] => continue,
            [one] => one.clone(),
            _ => return Err(bad(format!("{} appears under both key layouts", site.name))),
        };
        let shape = site.layer.weight.lazy_shape();
        let (d_in, d_out) = (shape[0], shape[1]);
        let device = site.layer.weight.lazy_device();
        // PyTorch's [r, in] and [out, r], read back into burn's [in, r] and [r, out].
        let mut factor = |key: &str, disk: [usize; 2]| -> Result<Tensor<2>, ModelError> {
            let view = file.tensor(key).map_err(|_| bad(format!("{key} is missing (its other factor is there)")))?;
            if view.shape() != disk {
                return Err(ModelError::ShapeMismatch {
                    path: path.clone(),
                    name: key.to_string(),
                    expected: disk.to_vec(),
                    found: view.shape().to_vec(),
                });
            }
            pending.remove(key);
            let values = transpose(&to_f32(&view, key, &path)?, disk[0], disk[1]);
            Ok(Tensor::from_data(TensorData::new(values, [disk[1], disk[0]]), &device))
        };
        let a = factor(&key_a, [config.r, d_in])?;
        let b = factor(&key_b, [d_out, config.r])?;
        site.layer.lora = Some(LoraAdapter {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(b),
            alpha: config.alpha,
            dropout: dropout(config.dropout),
        });
    }
    if !pending.is_empty() {
        let names: Vec<String> = pending.into_iter().collect();
        return Err(bad(format!("tensors that match no projection of the model: {}", names.join(", "))));
    }
    if !has_adapters(&model) {
        return Err(bad("holds no adapter".into()));
    }
    Ok(train_adapters_only(model))
}

/// Parameters of the model's adapters (`A` and `B` of every adapted projection).
pub fn adapter_parameters(model: &Qwen2_5VlModel) -> u64 {
    sites(&mut model.clone())
        .iter()
        .filter_map(|s| s.layer.lora.as_ref())
        .map(|a| (a.lora_a.lazy_shape().num_elements() + a.lora_b.lazy_shape().num_elements()) as u64)
        .sum()
}
