//! A Hugging Face checkpoint directory as a whole: the weights plus everything that turns chat
//! messages and images into model inputs and token ids back into text.
//!
//! ```text
//! DIR/
//!   config.json, model.safetensors (or shards + model.safetensors.index.json)
//!   tokenizer.json, tokenizer_config.json
//!   chat_template.jinja (or chat_template.json, or tokenizer_config.json's field)
//!   preprocessor_config.json (or processor_config.json)
//!   generation_config.json
//! ```
//!
//! A training run keeps such a directory inside each of its checkpoints; [`run`] spells out the
//! run folder around it.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use r1_data::{ContentPart, Message};
use rand::Rng;
use serde_json::{Value, json};

use crate::chat::ChatTemplate;
use crate::config::Qwen2_5VlConfig;
use crate::error::ModelError;
use crate::generate::{Generation, SamplingConfig, generate_with};
use crate::lora;
use crate::model::Qwen2_5VlModel;
use crate::processor::{ImageProcessor, ImageProcessorConfig, ProcessedImage};
use crate::score::completion_logprobs;
use crate::tokenizer::{ENDOFTEXT, IM_END, Tokenizer, expand_image_pads};
use crate::weights::{CONFIG_FILE, load_model, save_model, weight_files, write_atomic, write_config};

pub mod run;

const TOKENIZER_FILE: &str = "tokenizer.json";
const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
const TEMPLATE_FILE: &str = "chat_template.jinja";
const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
const GENERATION_FILE: &str = "generation_config.json";

/// Everything of a checkpoint besides the weights.
#[derive(Debug, Clone)]
pub struct Assets {
    pub config: Qwen2_5VlConfig,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub processor: ImageProcessor,
    /// The checkpoint's own `tokenizer_config.json`, written back unchanged on save so that
    /// fields r1 does not use (added-token tables, model_max_length) survive a round trip.
    pub tokenizer_config: Option<Value>,
}

/// A prompt ready for the model: token ids with one `<|image_pad|>` per image feature, and the
/// processed images in prompt order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub images: Vec<ProcessedImage>,
}

impl Assets {
    /// Reads config, tokenizer, chat template and image processor of a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found"),
            ));
        }
        let config = Qwen2_5VlConfig::from_file(&dir.join(CONFIG_FILE))?;
        let tokenizer = Tokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
        let template = ChatTemplate::from_dir(dir)?;
        let processor = ImageProcessor::new(ImageProcessorConfig::from_dir(dir)?);
        let tokenizer_config = read_json_if_present(&dir.join(TOKENIZER_CONFIG_FILE))?;
        let assets = Self { config, tokenizer, template, processor, tokenizer_config };
        assets.check_consistency(dir)?;
        Ok(assets)
    }

    /// The tokenizer and the config must agree on the ids the model code relies on, and the
    /// processor must cut patches the vision tower accepts.
    fn check_consistency(&self, dir: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Config { path: dir.to_path_buf(), message };
        let image_pad = self.tokenizer.special().image_pad;
        if image_pad != self.config.image_token_id {
            return Err(bad(format!(
                "tokenizer.json maps <|image_pad|> to {image_pad} but config.json says image_token_id {}",
                self.config.image_token_id
            )));
        }
        let (p, v) = (&self.processor.config, &self.config.vision);
        if (p.patch_size, p.merge_size, p.temporal_patch_size)
            != (v.patch_size, v.spatial_merge_size, v.temporal_patch_size)
        {
            return Err(bad(format!(
                "the image processor cuts patches of {} px, merge {}, temporal {} but the vision config expects {} px, merge {}, temporal {}",
                p.patch_size,
                p.merge_size,
                p.temporal_patch_size,
                v.patch_size,
                v.spatial_merge_size,
                v.temporal_patch_size
            )));
        }
        let largest = self.tokenizer.vocab_size().max(1) - 1;
        if largest >= self.config.text.vocab_size {
            return Err(bad(format!(
                "the tokenizer has {} tokens but the embedding only {} rows",
                self.tokenizer.vocab_size(),
                self.config.text.vocab_size
            )));
        }
        Ok(())
    }

    /// Renders `messages` with the chat template (plus the generation prompt), tokenises the
    /// text, processes the images (paths relative to `image_root`) and expands each image's
    /// placeholder to one `<|image_pad|>` per image feature.
    pub fn encode_prompt(&self, messages: &[Message], image_root: &Path) -> Result<Prompt, ModelError> {
        let images = messages
            .iter()
            .flat_map(|m| &m.content)
            .filter_map(|part| match part {
                ContentPart::Image { image } => Some(self.processor.process_file(&image_root.join(image))),
                ContentPart::Text { .. } => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.encode_prompt_with_images(messages, images)
    }

    /// [`Self::encode_prompt`] with the images already processed, one per image part of
    /// `messages` in order (their `image` strings are not read): for images that do not come
    /// from files, such as a server's data URLs.
    pub fn encode_prompt_with_images(
        &self,
        messages: &[Message],
        images: Vec<ProcessedImage>,
    ) -> Result<Prompt, ModelError> {
        let text = self.template.render(messages, true)?;
        let ids = self.tokenizer.encode(&text, false)?;
        let merge = self.config.vision.spatial_merge_size;
        let counts: Vec<usize> = images.iter().map(|i| i.num_tokens(merge)).collect();
        let ids = expand_image_pads(&ids, self.tokenizer.special().image_pad, &counts)?;
        Ok(Prompt { ids, images })
    }

    /// Token ids of an assistant turn's content followed by the end-of-turn token: what a
    /// model trained on this chat format must produce after the generation prompt.
    pub fn encode_reply(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let mut ids = self.tokenizer.encode(text, false)?;
        ids.push(self.tokenizer.special().im_end);
        Ok(ids)
    }

    /// `group` completions per prompt (prompt-major) with this checkpoint's stop and padding
    /// tokens, each with its text: the tokens before the stop token, special tokens removed.
    /// Run it on the inference view of the model (`valid()`).
    pub fn sample(
        &self,
        model: &Qwen2_5VlModel,
        prompts: &[&Prompt],
        group: usize,
        config: &SamplingConfig,
        rng: &mut impl Rng,
    ) -> Result<Vec<(Generation, String)>, ModelError> {
        let generations = self.generate_with(model, prompts, group, config, rng, |_, _| true)?;
        generations
            .into_iter()
            .map(|g| {
                let content = if g.stopped { &g.ids[..g.ids.len() - 1] } else { &g.ids[..] };
                let text = self.tokenizer.decode(content, true)?;
                Ok((g, text))
            })
            .collect()
    }

    /// [`generate_with`] with this checkpoint's stop and padding tokens: `on_token(row, token)`
    /// hears every token as it is drawn and may end its row. Run it on the inference view of
    /// the model (`valid()`).
    pub fn generate_with(
        &self,
        model: &Qwen2_5VlModel,
        prompts: &[&Prompt],
        group: usize,
        config: &SamplingConfig,
        rng: &mut impl Rng,
        on_token: impl FnMut(usize, u32) -> bool,
    ) -> Result<Vec<Generation>, ModelError> {
        let pad = self.tokenizer.special().endoftext;
        generate_with(model, &self.processor, prompts, group, config, &self.tokenizer.stop_ids(), pad, rng, on_token)
    }

    /// Teacher-forced log-probs `[B, T]` of `completions` after `prompts` (see
    /// [`completion_logprobs`]), padded with this checkpoint's padding token.
    pub fn score(
        &self,
        model: &Qwen2_5VlModel,
        prompts: &[&Prompt],
        completions: &[&[u32]],
        temperature: f64,
    ) -> Result<Tensor<2>, ModelError> {
        let pad = self.tokenizer.special().endoftext;
        completion_logprobs(model, &self.processor, prompts, completions, temperature, pad)
    }

    /// Writes the non-weight files of the checkpoint into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_json = self.tokenizer.inner().to_string(true).map_err(|e| ModelError::Tokenizer {
            path: tokenizer_path.clone(),
            message: format!("cannot serialise: {e}"),
        })?;
        write_atomic(&tokenizer_path, tokenizer_json.as_bytes())?;
        let tokenizer_config = self.tokenizer_config.clone().unwrap_or_else(|| {
            json!({
                "tokenizer_class": "Qwen2TokenizerFast",
                "eos_token": IM_END,
                "pad_token": ENDOFTEXT,
                "unk_token": null,
                "bos_token": null,
                "clean_up_tokenization_spaces": false,
                "model_max_length": self.config.text.max_position_embeddings,
            })
        });
        write_json(&dir.join(TOKENIZER_CONFIG_FILE), &tokenizer_config)?;
        write_atomic(&dir.join(TEMPLATE_FILE), self.template.source().as_bytes())?;
        write_json(&dir.join(PREPROCESSOR_FILE), &self.processor.config.to_hf_json())?;
        let special = self.tokenizer.special();
        let generation = json!({
            "bos_token_id": special.endoftext,
            "eos_token_id": [special.im_end, special.endoftext],
            "pad_token_id": special.endoftext,
            "do_sample": true,
            "temperature": 1.0,
            "top_p": 1.0,
        });
        write_json(&dir.join(GENERATION_FILE), &generation)
    }
}

/// Loads a whole checkpoint directory onto `device` (see [`load_weights`] for LoRA adapter
/// folders).
pub fn load(dir: &Path, device: &Device) -> Result<(Assets, Qwen2_5VlModel), ModelError> {
    let assets = Assets::from_dir(dir)?;
    let model = load_weights(dir, device)?;
    Ok((assets, model))
}

/// Adapter folders stacked on one another (a LoRA run started from a LoRA warm-up) deeper than
/// this are taken for a loop in `base_model_name_or_path`.
const MAX_ADAPTER_DEPTH: usize = 16;

/// The folder whose weights `dir` uses: `dir` itself, or for a LoRA adapter folder without
/// weights of its own, its `base_model_name_or_path`.
pub fn base_dir(dir: &Path) -> Result<PathBuf, ModelError> {
    if !lora::is_adapter_dir(dir) || weight_files(dir).is_ok() {
        return Ok(dir.to_path_buf());
    }
    let base = lora::read_adapter_config(dir)?.base_model.ok_or_else(|| ModelError::Lora {
        path: dir.join(lora::ADAPTER_CONFIG_FILE),
        message: "no base_model_name_or_path: r1 cannot tell which model the adapters belong to".into(),
    })?;
    if !base.is_dir() {
        return Err(ModelError::Lora {
            path: dir.join(lora::ADAPTER_CONFIG_FILE),
            message: format!("base model {} is not a folder here (r1 downloads nothing)", base.display()),
        });
    }
    Ok(base)
}

/// The model of the checkpoint `dir`, in f32. A PEFT adapter folder (`adapter_config.json`
/// and `adapter_model.safetensors`, r1 also writes the config, tokenizer and processor files
/// beside them) loads its base model's weights, or its own if it has any, with the adapters
/// attached (unmerged, frozen base). A base that is itself an adapter folder is loaded with its
/// adapters merged first, so the result carries one set of adapters.
pub fn load_weights(dir: &Path, device: &Device) -> Result<Qwen2_5VlModel, ModelError> {
    load_weights_at_depth(dir, device, 0)
}

fn load_weights_at_depth(dir: &Path, device: &Device, depth: usize) -> Result<Qwen2_5VlModel, ModelError> {
    if !lora::is_adapter_dir(dir) {
        return Ok(load_model(dir, device)?.1);
    }
    if depth >= MAX_ADAPTER_DEPTH {
        return Err(ModelError::Lora {
            path: dir.to_path_buf(),
            message: format!(
                "more than {MAX_ADAPTER_DEPTH} adapter folders stacked: a loop in base_model_name_or_path?"
            ),
        });
    }
    let base = base_dir(dir)?;
    let model = if base == dir {
        load_model(dir, device)?.1
    } else {
        let config_here = Qwen2_5VlConfig::from_file(&dir.join(CONFIG_FILE))?;
        let config_base = Qwen2_5VlConfig::from_file(&base.join(CONFIG_FILE))?;
        if config_here != config_base {
            return Err(ModelError::Lora {
                path: dir.to_path_buf(),
                message: format!("its config.json differs from its base model's ({})", base.display()),
            });
        }
        lora::merge(load_weights_at_depth(&base, device, depth + 1)?)
    };
    lora::load_adapters(model, dir)
}

/// Saves a whole checkpoint directory: weights and config, then the other assets.
pub fn save(model: &Qwen2_5VlModel, assets: &Assets, dir: &Path) -> Result<(), ModelError> {
    save_model(model, &assets.config, dir)?;
    assets.save(dir)
}

/// Saves a model carrying LoRA adapters as a PEFT adapter folder trained on `base`: the
/// adapters ([`lora::save_adapters`]) with the config, tokenizer, template and processor beside
/// them, and none of the base weights. [`load`] reads it back (with `base` in place).
pub fn save_adapted(model: &Qwen2_5VlModel, assets: &Assets, base: &Path, dir: &Path) -> Result<(), ModelError> {
    lora::save_adapters(model, base, dir)?;
    write_config(&assets.config, dir)?;
    assets.save(dir)
}

fn read_json_if_present(path: &Path) -> Result<Option<Value>, ModelError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|source| ModelError::Json { path: PathBuf::from(path), source })
}

fn write_json(path: &Path, value: &Value) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    write_atomic(path, format!("{text}\n").as_bytes())
}
