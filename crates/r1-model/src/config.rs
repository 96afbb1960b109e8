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

/// Field lookup over the two layouts: a text field is searched in `text_config` first, then at
/// the top level, so both layouts (and hybrids written by intermediate versions) are read.
struct Fields<'a> {
    top: &'a Map<String, Value>,
    text: Option<&'a Map<String, Value>>,
    vision: &'a Map<String, Value>,
    path: PathBuf,
}

impl Fields<'_> {
    fn err(&self, message: impl Into<String>) -> ModelError {
        ModelError::Config { path: self.path.clone(), message: message.into() }
    }

    fn text_value(&self, key: &str) -> Option<&Value> {
        self.text.and_then(|t| t.get(key)).or_else(|| self.top.get(key))
    }

    fn usize_in(&self, value: Option<&Value>, key: &str) -> Result<Option<usize>, ModelError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(format!("{key} must be a non-negative integer, got {v}"))),
        }
    }

    fn f64_in(&self, value: Option<&Value>, key: &str) -> Result<Option<f64>, ModelError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_f64().map(Some).ok_or_else(|| self.err(format!("{key} must be a number, got {v}")))
            }
        }
    }

    fn text_usize(&self, key: &str) -> Result<usize, ModelError> {
        self.usize_in(self.text_value(key), key)?
            .ok_or_else(|| self.err(format!("missing field {key}")))
    }

    fn vision_usize(&self, key: &str) -> Result<usize, ModelError> {
        self.usize_in(self.vision.get(key), key)?
            .ok_or_else(|| self.err(format!("missing field vision_config.{key}")))
    }

    fn token_id(&self, key: &str, default: u32) -> Result<u32, ModelError> {
        let value = self.top.get(key).or_else(|| self.text.and_then(|t| t.get(key)));
        match self.usize_in(value, key)? {
            None => Ok(default),
            Some(n) => u32::try_from(n).map_err(|_| self.err(format!("{key} {n} is out of range"))),
        }
    }

    /// `rope_scaling` (original) or `rope_parameters` (transformers 5), in `text_config` or at
    /// the top level; its kind is `type` or `rope_type`. transformers rewrites `mrope` to
    /// `default` when it keeps `mrope_section`, so both kinds are accepted.
    fn rope(&self) -> Result<([usize; 3], Option<f64>), ModelError> {
        let rope = ["rope_parameters", "rope_scaling"]
            .iter()
            .find_map(|k| self.text_value(k).filter(|v| !v.is_null()))
            .ok_or_else(|| self.err("missing rope_scaling / rope_parameters with mrope_section"))?;
        let rope = rope.as_object().ok_or_else(|| self.err("rope_scaling must be an object"))?;
        let kind = rope.get("rope_type").or_else(|| rope.get("type")).and_then(Value::as_str);
        if let Some(kind) = kind
            && kind != "mrope"
            && kind != "default"
        {
            return Err(self.err(format!("rope type {kind:?} is not supported (expected mrope)")));
        }
        let section = rope
            .get("mrope_section")
            .and_then(Value::as_array)
            .ok_or_else(|| self.err("rope_scaling has no mrope_section"))?;
        let section: Vec<usize> = section
            .iter()
            .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err("mrope_section must hold non-negative integers"))?;
        let section: [usize; 3] = section
            .try_into()
            .map_err(|s: Vec<usize>| self.err(format!("mrope_section must have 3 entries, has {}", s.len())))?;
        let theta = self.f64_in(rope.get("rope_theta"), "rope_parameters.rope_theta")?;
        Ok((section, theta))
    }
}

impl Qwen2_5VlConfig {
    /// Reads and validates `<dir>/config.json` (or the file `path` itself).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let path = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::parse(&text, Some(&path))
    }

    /// Parses a `config.json` text in either layout; `path` only labels errors.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ModelError> {
        let label = source_path(path);
        let value: Value = serde_json::from_str(text)
            .map_err(|source| ModelError::Json { path: label.clone(), source })?;
        let top = value.as_object().ok_or_else(|| ModelError::Config {
            path: label.clone(),
            message: "config.json must hold a JSON object".into(),
        })?;
        check_architecture(top, &label)?;
        let empty = Map::new();
        let fields = Fields {
            top,
            text: top.get("text_config").and_then(Value::as_object),
            vision: top.get("vision_config").and_then(Value::as_object).unwrap_or(&empty),
            path: label,
        };
        let config = Self::from_fields(&fields)?;
        config.validate().map_err(|m| fields.err(m))?;
        Ok(config)
    }

    fn from_fields(f: &Fields<'_>) -> Result<Self, ModelError> {
        let (mrope_section, theta_in_rope) = f.rope()?;
        let rope_theta = match theta_in_rope {
            Some(t) => t,
            None => f.f64_in(f.text_value("rope_theta"), "rope_theta")?.unwrap_or(1_000_000.0),
        };
        let act = f.text_value("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        if act != "silu" {
            return Err(f.err(format!("hidden_act {act:?} is not supported (expected silu)")));
        }
        let text = TextConfig {
            vocab_size: f.text_usize("vocab_size")?,
            hidden_size: f.text_usize("hidden_size")?,
            intermediate_size: f.text_usize("intermediate_size")?,
            num_hidden_layers: f.text_usize("num_hidden_layers")?,
            num_attention_heads: f.text_usize("num_attention_heads")?,
            num_key_value_heads: f.text_usize("num_key_value_heads")?,
            rms_norm_eps: f.f64_in(f.text_value("rms_norm_eps"), "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            mrope_section,
            max_position_embeddings: f
                .usize_in(f.text_value("max_position_embeddings"), "max_position_embeddings")?
                .unwrap_or(128_000),
        };
        let v = f.vision;
        let vision_act = v.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        if vision_act != "silu" {
            return Err(f.err(format!("vision_config.hidden_act {vision_act:?} is not supported")));
        }
        let in_channels = match f.usize_in(v.get("in_channels"), "in_channels")? {
            Some(c) => c,
            None => f.usize_in(v.get("in_chans"), "in_chans")?.unwrap_or(3),
        };
        let fullatt_block_indexes = match v.get("fullatt_block_indexes") {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => list
                .as_array()
                .and_then(|a| {
                    a.iter().map(|x| x.as_u64().and_then(|n| usize::try_from(n).ok())).collect()
                })
                .ok_or_else(|| f.err("vision_config.fullatt_block_indexes must hold integers"))?,
        };
        let vision = VisionConfig {
            depth: f.vision_usize("depth")?,
            hidden_size: f.vision_usize("hidden_size")?,
            intermediate_size: f.vision_usize("intermediate_size")?,
            num_heads: f.vision_usize("num_heads")?,
            in_channels,
            out_hidden_size: f.usize_in(v.get("out_hidden_size"), "out_hidden_size")?.unwrap_or(text.hidden_size),
            patch_size: f.usize_in(v.get("patch_size"), "patch_size")?.unwrap_or(14),
            spatial_merge_size: f.usize_in(v.get("spatial_merge_size"), "spatial_merge_size")?.unwrap_or(2),
            temporal_patch_size: f.usize_in(v.get("temporal_patch_size"), "temporal_patch_size")?.unwrap_or(2),
            window_size: f.usize_in(v.get("window_size"), "window_size")?.unwrap_or(112),
            fullatt_block_indexes,
            tokens_per_second: f.f64_in(v.get("tokens_per_second"), "tokens_per_second")?.unwrap_or(2.0),
        };
        let tie = f.top.get("tie_word_embeddings").or_else(|| f.text.and_then(|t| t.get("tie_word_embeddings")));
        let eos_token_id = match f.top.get("eos_token_id").or_else(|| f.text.and_then(|t| t.get("eos_token_id"))) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| f.err("eos_token_id must hold token ids"))?,
            Some(x) => vec![
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| f.err("eos_token_id must be a token id"))?,
            ],
        };
        let bos = f.top.get("bos_token_id").or_else(|| f.text.and_then(|t| t.get("bos_token_id")));
        Ok(Self {
            text,
            vision,
            tie_word_embeddings: tie.and_then(Value::as_bool).unwrap_or(false),
            image_token_id: f.token_id("image_token_id", 151_655)?,
            video_token_id: f.token_id("video_token_id", 151_656)?,
            vision_start_token_id: f.token_id("vision_start_token_id", 151_652)?,
            vision_end_token_id: f.token_id("vision_end_token_id", 151_653)?,
            bos_token_id: f.usize_in(bos, "bos_token_id")?.and_then(|n| u32::try_from(n).ok()),
            eos_token_id,
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
        if t.hidden_size % t.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if t.num_attention_heads % t.num_key_value_heads != 0 {
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
        if v.hidden_size % v.num_heads != 0 || v.head_dim() % 4 != 0 {
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
        if v.window_size < unit || v.window_size % unit != 0 {
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
}
