//! `config.json` of a Qwen2.5-VL checkpoint, in both layouts users have:
//!
//! - the original release: text fields at the top level, `rope_scaling: {"type": "mrope",
//!   "mrope_section": [..]}`, `vision_config.in_chans`;
//! - the transformers-5 export: text fields under `text_config`, `rope_parameters: {"rope_type":
//!   .., "mrope_section": [..], "rope_theta": ..}`, `vision_config.in_channels`.
//!
//! Both are parsed into one normalised [`Qwen2_5VlConfig`], validated once so the model code can
//! rely on divisibility (heads, sections, windows) without re-checking.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ModelError;

/// The architecture name transformers writes in `architectures`.
pub const ARCHITECTURE: &str = "Qwen2_5_VLForConditionalGeneration";
/// The `model_type` of Qwen2.5-VL configs.
pub const MODEL_TYPE: &str = "qwen2_5_vl";

/// The language model's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Rows of the token embedding (may exceed the tokenizer's size).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); divides `num_attention_heads`.
    pub num_key_value_heads: usize,
    /// Epsilon of every RMSNorm of the decoder.
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    pub rope_theta: f64,
    /// Split of the `head_dim / 2` rotary frequency slots into the (t, h, w) position rows.
    pub mrope_section: [usize; 3],
    /// Longest sequence the checkpoint was trained for (informational).
    pub max_position_embeddings: usize,
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The vision tower's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Vision blocks.
    pub depth: usize,
    /// Width of the vision residual stream.
    pub hidden_size: usize,
    /// Width of the vision MLP.
    pub intermediate_size: usize,
    /// Vision attention heads.
    pub num_heads: usize,
    /// Image channels (3).
    pub in_channels: usize,
    /// Width of the merger's output, equal to the text hidden size.
    pub out_hidden_size: usize,
    /// Side of a square patch in pixels (14).
    pub patch_size: usize,
    /// Side of the square of patches merged into one token (2).
    pub spatial_merge_size: usize,
    /// Frames per temporal patch (2; a still image is repeated).
    pub temporal_patch_size: usize,
    /// Side of an attention window in pixels (112).
    pub window_size: usize,
    /// Blocks that attend over a whole frame instead of a window.
    pub fullatt_block_indexes: Vec<usize>,
    /// Temporal position step per second of video (kept for round trips).
    pub tokens_per_second: f64,
}

impl VisionConfig {
    /// Width of one vision attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Values in one flattened patch: `in_channels * temporal_patch_size * patch_size²`.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Side of an attention window in merged tokens (`window_size / patch / merge`, 4).
    pub fn window_merged(&self) -> usize {
        self.window_size / self.patch_size / self.spatial_merge_size
    }
}

/// A validated Qwen2.5-VL configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2_5VlConfig {
    /// Decoder hyper-parameters.
    pub text: TextConfig,
    /// Vision tower hyper-parameters.
    pub vision: VisionConfig,
    /// Whether `lm_head` shares the token embedding.
    pub tie_word_embeddings: bool,
    /// `<|image_pad|>`.
    pub image_token_id: u32,
    /// `<|video_pad|>`.
    pub video_token_id: u32,
    /// `<|vision_start|>`.
    pub vision_start_token_id: u32,
    /// `<|vision_end|>`.
    pub vision_end_token_id: u32,
    /// Beginning-of-text token, if the config names one.
    pub bos_token_id: Option<u32>,
    /// End-of-text token(s), if the config names them.
    pub eos_token_id: Vec<u32>,
}

/// Where a config was read from, for error messages.
fn source_path(path: Option<&Path>) -> PathBuf {
    path.map_or_else(|| PathBuf::from("<memory>"), Path::to_path_buf)
}

/// A `config.json` as written, with the text fields of both layouts merged (see
/// [`Qwen2_5VlConfig::parse`]); defaults are the released checkpoints'. Fields that the two
/// layouts name differently (and that r1 itself writes under both names) are kept apart
/// rather than aliased, since serde refuses an alias whose two names are both present.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default = "silu")]
    hidden_act: String,
    /// The original release's name.
    rope_scaling: Option<RawRope>,
    /// transformers 5's name.
    rope_parameters: Option<RawRope>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_image_token_id")]
    image_token_id: u32,
    #[serde(default = "default_video_token_id")]
    video_token_id: u32,
    #[serde(default = "default_vision_start_token_id")]
    vision_start_token_id: u32,
    #[serde(default = "default_vision_end_token_id")]
    vision_end_token_id: u32,
    bos_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: Option<TokenIds>,
    #[serde(default)]
    vision_config: RawVision,
}

/// `rope_scaling` / `rope_parameters`: its kind is `type` (original) or `rope_type`.
#[derive(Deserialize)]
struct RawRope {
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_type: Option<String>,
    mrope_section: Option<[usize; 3]>,
    rope_theta: Option<f64>,
}

/// `eos_token_id`: one id or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Deserialize)]
#[serde(default)]
struct RawVision {
    depth: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_heads: Option<usize>,
    /// transformers 5's name.
    in_channels: Option<usize>,
    /// The original release's name.
    in_chans: Option<usize>,
    out_hidden_size: Option<usize>,
    patch_size: usize,
    spatial_merge_size: usize,
    temporal_patch_size: usize,
    window_size: usize,
    fullatt_block_indexes: Vec<usize>,
    tokens_per_second: f64,
    hidden_act: String,
}

impl Default for RawVision {
    fn default() -> Self {
        Self {
            depth: None,
            hidden_size: None,
            intermediate_size: None,
            num_heads: None,
            in_channels: None,
            in_chans: None,
            out_hidden_size: None,
            patch_size: 14,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            window_size: 112,
            fullatt_block_indexes: Vec::new(),
            tokens_per_second: 2.0,
            hidden_act: silu(),
        }
    }
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    128_000
}
fn silu() -> String {
    "silu".into()
}
fn default_image_token_id() -> u32 {
    151_655
}
fn default_video_token_id() -> u32 {
    151_656
}
fn default_vision_start_token_id() -> u32 {
    151_652
}
fn default_vision_end_token_id() -> u32 {
    151_653
}

impl Qwen2_5VlConfig {
    /// Reads and validates `<dir>/config.json` (or the file `path` itself).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let path = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::parse(&text, Some(&path))
    }

    /// Parses a `config.json` text in either layout; `path` only labels errors.
    ///
    /// The entries of `text_config` (transformers 5) are laid over the top-level ones (the
    /// original release), so both layouts, and hybrids written by intermediate versions, read
    /// as one flat object.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ModelError> {
        let label = source_path(path);
        let err = |message: String| ModelError::Config { path: label.clone(), message };
        let value: Value =
            serde_json::from_str(text).map_err(|source| ModelError::Json { path: label.clone(), source })?;
        let Value::Object(mut top) = value else {
            return Err(err("config.json must hold a JSON object".into()));
        };
        check_architecture(&top, &label)?;
        if let Some(Value::Object(text)) = top.remove("text_config") {
            top.extend(text);
        }
        // transformers writes `null` for what a config does not set: the default applies.
        top.retain(|_, v| !v.is_null());
        if let Some(Value::Object(vision)) = top.get_mut("vision_config") {
            vision.retain(|_, v| !v.is_null());
        }
        let raw: RawConfig = serde_path_to_error::deserialize(Value::Object(top))
            .map_err(|e| err(format!("{}: {}", e.path(), e.inner())))?;
        let config = Self::from_raw(raw).map_err(err)?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    /// The normalised config; what the model cannot run is an error.
    fn from_raw(raw: RawConfig) -> Result<Self, String> {
        // transformers 5 writes `rope_parameters` and may keep a stale `rope_scaling`.
        let rope = raw
            .rope_parameters
            .or(raw.rope_scaling)
            .ok_or("missing rope_scaling / rope_parameters with mrope_section")?;
        // transformers rewrites `mrope` to `default` when it keeps `mrope_section`.
        if let Some(kind) =
            rope.rope_type.as_deref().or(rope.kind.as_deref()).filter(|k| !["mrope", "default"].contains(k))
        {
            return Err(format!("rope type {kind:?} is not supported (expected mrope)"));
        }
        let mrope_section = rope.mrope_section.ok_or("rope_scaling has no mrope_section")?;
        if raw.hidden_act != "silu" {
            return Err(format!("hidden_act {:?} is not supported (expected silu)", raw.hidden_act));
        }
        let v = raw.vision_config;
        if v.hidden_act != "silu" {
            return Err(format!("vision_config.hidden_act {:?} is not supported", v.hidden_act));
        }
        let required = |value: Option<usize>, name: &str| value.ok_or(format!("missing field vision_config.{name}"));
        let text = TextConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta: rope.rope_theta.or(raw.rope_theta).unwrap_or(1_000_000.0),
            mrope_section,
            max_position_embeddings: raw.max_position_embeddings,
        };
        let vision = VisionConfig {
            depth: required(v.depth, "depth")?,
            hidden_size: required(v.hidden_size, "hidden_size")?,
            intermediate_size: required(v.intermediate_size, "intermediate_size")?,
            num_heads: required(v.num_heads, "num_heads")?,
            in_channels: v.in_channels.or(v.in_chans).unwrap_or(3),
            out_hidden_size: v.out_hidden_size.unwrap_or(text.hidden_size),
            patch_size: v.patch_size,
            spatial_merge_size: v.spatial_merge_size,
            temporal_patch_size: v.temporal_patch_size,
            window_size: v.window_size,
            fullatt_block_indexes: v.fullatt_block_indexes,
            tokens_per_second: v.tokens_per_second,
        };
        Ok(Self {
            text,
            vision,
            tie_word_embeddings: raw.tie_word_embeddings,
            image_token_id: raw.image_token_id,
            video_token_id: raw.video_token_id,
            vision_start_token_id: raw.vision_start_token_id,
            vision_end_token_id: raw.vision_end_token_id,
            bos_token_id: raw.bos_token_id,
            eos_token_id: match raw.eos_token_id {
                None => Vec::new(),
                Some(TokenIds::One(id)) => vec![id],
                Some(TokenIds::Many(ids)) => ids,
            },
        })
    }

    /// Checks the relations the model code relies on; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.text;
        let v = &self.vision;
        let positive = [
            ("vocab_size", t.vocab_size),
            ("hidden_size", t.hidden_size),
            ("intermediate_size", t.intermediate_size),
            ("num_attention_heads", t.num_attention_heads),
            ("num_key_value_heads", t.num_key_value_heads),
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("vision_config.num_heads", v.num_heads),
            ("vision_config.in_channels", v.in_channels),
            ("vision_config.out_hidden_size", v.out_hidden_size),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.spatial_merge_size", v.spatial_merge_size),
            ("vision_config.temporal_patch_size", v.temporal_patch_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        let sections: usize = t.mrope_section.iter().sum();
        if 2 * sections != t.head_dim() {
            return Err(format!(
                "mrope_section {:?} sums to {sections}, but head_dim / 2 is {}",
                t.mrope_section,
                t.head_dim() / 2
            ));
        }
        if !v.hidden_size.is_multiple_of(v.num_heads) || !v.head_dim().is_multiple_of(4) {
            return Err(format!(
                "vision hidden_size {} / num_heads {} must give a head_dim divisible by 4",
                v.hidden_size, v.num_heads
            ));
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(format!(
                "vision_config.out_hidden_size {} differs from the text hidden_size {}",
                v.out_hidden_size, t.hidden_size
            ));
        }
        let unit = v.patch_size * v.spatial_merge_size;
        if v.window_size < unit || !v.window_size.is_multiple_of(unit) {
            return Err(format!(
                "vision_config.window_size {} is not a positive multiple of patch_size * spatial_merge_size {unit}",
                v.window_size
            ));
        }
        if let Some(i) = v.fullatt_block_indexes.iter().find(|&&i| i >= v.depth) {
            return Err(format!("fullatt_block_indexes holds {i}, but depth is {}", v.depth));
        }
        if !(t.rms_norm_eps > 0.0 && t.rope_theta > 0.0) {
            return Err("rms_norm_eps and rope_theta must be positive".into());
        }
        let ids = [self.image_token_id, self.video_token_id, self.vision_start_token_id, self.vision_end_token_id];
        if let Some(id) = ids.iter().find(|&&id| id as usize >= t.vocab_size) {
            return Err(format!("special token id {id} is outside the vocabulary of {}", t.vocab_size));
        }
        Ok(())
    }

    /// The config as `config.json` in the original flat layout, with the vision channel count
    /// under both names, so transformers 4.x and 5.x and this crate all read it.
    pub fn to_hf_json(&self) -> Value {
        let t = &self.text;
        let v = &self.vision;
        let mut top = json!({
            "architectures": [ARCHITECTURE],
            "model_type": MODEL_TYPE,
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "hidden_act": "silu",
            "rms_norm_eps": t.rms_norm_eps,
            "rope_theta": t.rope_theta,
            "max_position_embeddings": t.max_position_embeddings,
            "rope_scaling": {"type": "mrope", "rope_type": "default", "mrope_section": t.mrope_section},
            "tie_word_embeddings": self.tie_word_embeddings,
            "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "attention_dropout": 0.0,
            "use_sliding_window": false,
            "torch_dtype": "float32",
            "vision_config": {
                "model_type": "qwen2_5_vl",
                "depth": v.depth,
                "hidden_size": v.hidden_size,
                "intermediate_size": v.intermediate_size,
                "num_heads": v.num_heads,
                "in_chans": v.in_channels,
                "in_channels": v.in_channels,
                "out_hidden_size": v.out_hidden_size,
                "patch_size": v.patch_size,
                "spatial_merge_size": v.spatial_merge_size,
                "temporal_patch_size": v.temporal_patch_size,
                "window_size": v.window_size,
                "fullatt_block_indexes": v.fullatt_block_indexes,
                // transformers 5 validates this field as an int (Qwen writes 2): a whole
                // value is written as one, a fractional one as it is.
                "tokens_per_second": if v.tokens_per_second.fract() == 0.0 && v.tokens_per_second.abs() < 1e15 {
                    json!(v.tokens_per_second as i64)
                } else {
                    json!(v.tokens_per_second)
                },
                "hidden_act": "silu",
            },
        });
        let obj = top.as_object_mut().expect("json! object literal");
        if let Some(bos) = self.bos_token_id {
            obj.insert("bos_token_id".into(), json!(bos));
        }
        match self.eos_token_id.as_slice() {
            [] => {}
            [one] => {
                obj.insert("eos_token_id".into(), json!(one));
            }
            many => {
                obj.insert("eos_token_id".into(), json!(many));
            }
        }
        top
    }
}

/// Rejects checkpoints of other architectures with a message naming what was found.
fn check_architecture(top: &Map<String, Value>, path: &Path) -> Result<(), ModelError> {
    let unsupported = |found: String| ModelError::UnsupportedArchitecture { path: path.to_path_buf(), found };
    if let Some(archs) = top.get("architectures").and_then(Value::as_array) {
        let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
        let known = ["Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLModel"];
        if !names.iter().any(|n| known.contains(n)) {
            return Err(unsupported(names.join(", ")));
        }
    }
    match top.get("model_type").and_then(Value::as_str) {
        Some(MODEL_TYPE) => Ok(()),
        Some(other) => Err(unsupported(format!("model_type {other:?}"))),
        None if top.contains_key("architectures") => Ok(()),
        None => Err(unsupported("neither architectures nor model_type".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat() -> Value {
        json!({
            "architectures": [ARCHITECTURE], "model_type": "qwen2_5_vl",
            "vocab_size": 400, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1e6, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "image_token_id": 300, "video_token_id": 301, "vision_start_token_id": 302,
            "vision_end_token_id": 303, "eos_token_id": [304, 305],
            "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 48, "num_heads": 2,
                "in_chans": 3, "out_hidden_size": 64, "fullatt_block_indexes": [1]}
        })
    }

    fn parse(v: &Value) -> Result<Qwen2_5VlConfig, ModelError> {
        Qwen2_5VlConfig::parse(&v.to_string(), None)
    }

    #[test]
    fn flat_layout_with_defaults() {
        let c = parse(&flat()).unwrap();
        assert_eq!(c.text.head_dim(), 16);
        assert_eq!(c.vision.patch_dim(), 1176);
        assert_eq!(c.vision.window_merged(), 4);
        assert_eq!(c.eos_token_id, vec![304, 305]);
        assert!(!c.tie_word_embeddings);
    }

    #[test]
    fn whole_tokens_per_second_is_written_as_an_int() {
        let mut c = parse(&flat()).unwrap();
        assert_eq!(c.to_hf_json()["vision_config"]["tokens_per_second"], json!(2));
        c.vision.tokens_per_second = 2.5;
        assert_eq!(c.to_hf_json()["vision_config"]["tokens_per_second"], json!(2.5));
        assert_eq!(parse(&c.to_hf_json()).unwrap(), c);
    }

    #[test]
    fn unknown_architectures_are_rejected_by_name() {
        let mut v = flat();
        v["architectures"] = json!(["LlamaForCausalLM"]);
        let err = parse(&v).unwrap_err().to_string();
        assert!(err.contains("LlamaForCausalLM"), "{err}");
        let mut v = flat();
        v["model_type"] = json!("qwen2_vl");
        let err = parse(&v).unwrap_err().to_string();
        assert!(err.contains("qwen2_vl"), "{err}");
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let cases = [
            ("/rope_scaling/mrope_section", json!([2, 3, 4]), "mrope_section"),
            ("/num_key_value_heads", json!(3), "num_key_value_heads"),
            ("/vision_config/fullatt_block_indexes", json!([5]), "fullatt_block_indexes"),
            ("/rope_scaling/type", json!("yarn"), "yarn"),
            ("/hidden_size", json!("big"), "hidden_size"),
        ];
        for (pointer, value, needle) in cases {
            let mut v = flat();
            *v.pointer_mut(pointer).unwrap() = value;
            let err = parse(&v).unwrap_err().to_string();
            assert!(err.contains(needle), "{pointer}: {err}");
        }
        let err = Qwen2_5VlConfig::parse("[1, 2]", None).unwrap_err().to_string();
        assert!(err.contains("JSON object"), "{err}");
    }

    /// transformers 5's layout: text fields under `text_config` (with the `null`s it writes),
    /// `rope_parameters`, `in_channels`. It reads as the flat one does, and its errors name
    /// the field.
    #[test]
    fn nested_layout_reads_as_the_flat_one() {
        let flat = flat();
        let mut nested = json!({
            "architectures": [ARCHITECTURE], "model_type": "qwen2_5_vl", "image_token_id": 300,
            "video_token_id": 301, "vision_start_token_id": 302, "vision_end_token_id": 303,
            "text_config": {"bos_token_id": null, "eos_token_id": [304, 305], "pad_token_id": null,
                "rope_parameters": {"mrope_section": [2, 3, 3], "rope_theta": 1e6, "rope_type": "default"}},
            "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 48, "num_heads": 2,
                "in_channels": 3, "out_hidden_size": 64, "fullatt_block_indexes": [1]}
        });
        for key in [
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "rms_norm_eps",
        ] {
            nested["text_config"][key] = flat[key].clone();
        }
        assert_eq!(parse(&nested).unwrap(), parse(&flat).unwrap());
        nested["text_config"]["hidden_size"] = json!("big");
        let err = parse(&nested).unwrap_err().to_string();
        assert!(err.contains("hidden_size") && err.contains("big"), "{err}");
        nested["text_config"].as_object_mut().unwrap().remove("hidden_size");
        let err = parse(&nested).unwrap_err().to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }
}
