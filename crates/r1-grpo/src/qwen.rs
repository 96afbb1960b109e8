//! The [`Policy`] of r1-model's Qwen2.5-VL: a QA sample's chat messages go through the
//! checkpoint's own chat template, tokenizer and image processor; rollouts use KV-cache
//! generation; log-probs are teacher-forced and differentiable, each prompt computed once for
//! all the completions that follow it.
//!
//! Encoding a sample (template, tokenizer, PNG decoding and resizing) is host work that a GRPO
//! step would otherwise repeat for the rollout, the reference and the update: encoded prompts
//! are kept by sample id, within a memory budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use r1_data::QaSample;
use r1_model::Qwen2_5VlModel;
use r1_model::checkpoint::{self, Assets, Prompt};
use r1_model::generate::SamplingConfig;
use r1_model::lora::{self, LoraConfig};
use r1_model::precision::{self, Precision};
use rand::rngs::StdRng;

use crate::config::TrainConfig;
use crate::error::{GrpoError, Result};
use crate::plan::{ModelShape, PromptShape};
use crate::policy::{Completion, LoraStart, Policy, Sampling, ScoreRow};

/// Bytes of encoded prompts kept (a 448x448 image is about 3 MiB of pixel values).
const PROMPT_CACHE_BYTES: usize = 512 << 20;

/// Qwen2.5-VL with its checkpoint assets and the folder its QA images are relative to.
#[derive(Module, Debug)]
pub struct QwenPolicy {
    pub model: Qwen2_5VlModel,
    #[module(skip)]
    assets: Arc<Assets>,
    #[module(skip)]
    image_root: PathBuf,
    /// Shared by every clone (the inference view included).
    #[module(skip)]
    encoded: Arc<PromptCache>,
    /// The folder loaded from.
    #[module(skip)]
    source: PathBuf,
    /// The model the adapters are trained on, recorded in a saved adapter folder: the folder
    /// loaded from, or the base of an adapter folder.
    #[module(skip)]
    base: PathBuf,
    /// Dtype of the forward passes; `model` keeps its own (f32 master weights when trained).
    #[module(skip)]
    precision: Precision,
}

impl QwenPolicy {
    /// Loads the checkpoint directory `dir` onto `device`; image paths of the samples it will
    /// see are relative to `image_root` (the dataset root).
    pub fn load(dir: &Path, image_root: &Path, device: &Device) -> Result<Self> {
        let (assets, model) = checkpoint::load(dir, device)?;
        Ok(Self {
            model,
            assets: Arc::new(assets),
            image_root: image_root.to_path_buf(),
            encoded: Arc::new(PromptCache::new(PROMPT_CACHE_BYTES)),
            source: dir.to_path_buf(),
            base: checkpoint::base_dir(dir)?,
            precision: Precision::F32,
        })
    }

    /// The policy with its forward passes in `precision`.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    /// Runs `f` on the model in the forward dtype: under autodiff the casts are in the graph,
    /// so gradients reach the stored (master) weights in their own dtype.
    fn forward<T>(&self, f: impl FnOnce(&Qwen2_5VlModel) -> T) -> T {
        match self.precision {
            Precision::F32 => f(&self.model),
            p => f(&precision::cast(self.model.clone(), p)),
        }
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// The prompt of a sample: its turns before the first assistant turn, rendered with the
    /// generation prompt (encoded once per sample id while it stays in the cache).
    pub fn prompt(&self, sample: &QaSample) -> Result<Arc<Prompt>> {
        if let Some(prompt) = self.encoded.get(&sample.id) {
            return Ok(prompt);
        }
        let prompt =
            Arc::new(self.assets.encode_prompt(r1_data::qa::prompt_turns(&sample.messages), &self.image_root)?);
        self.encoded.insert(&sample.id, prompt.clone());
        Ok(prompt)
    }

    fn prompts(&self, samples: &[&QaSample]) -> Result<Vec<Arc<Prompt>>> {
        samples.iter().map(|s| self.prompt(s)).collect()
    }
}

impl Policy for QwenPolicy {
    fn sample(
        &self,
        prompts: &[&QaSample],
        group: usize,
        sampling: &Sampling,
        rng: &mut StdRng,
    ) -> Result<Vec<Completion>> {
        let encoded = self.prompts(prompts)?;
        let refs: Vec<&Prompt> = encoded.iter().map(|p| p.as_ref()).collect();
        let config = SamplingConfig {
            max_new_tokens: sampling.max_tokens,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            top_k: 0,
        };
        let out = self.forward(|model| self.assets.sample(model, &refs, group, &config, rng))?;
        Ok(out
            .into_iter()
            .map(|(g, text)| Completion { truncated: !g.stopped, ids: g.ids, logprobs: g.logprobs, text })
            .collect())
    }

    fn logprobs(&self, prompts: &[&QaSample], rows: &[ScoreRow], temperature: f64) -> Result<Tensor<2>> {
        let encoded = self.prompts(prompts)?;
        let row_prompts =
            rows.iter()
                .map(|r| {
                    encoded.get(r.prompt).map(|p| p.as_ref()).ok_or_else(|| {
                        GrpoError::Invalid(format!("a row names prompt {} of {}", r.prompt, prompts.len()))
                    })
                })
                .collect::<Result<Vec<&Prompt>>>()?;
        let ids: Vec<&[u32]> = rows.iter().map(|r| r.ids).collect();
        Ok(self.forward(|model| self.assets.score(model, &row_prompts, &ids, temperature))?)
    }

    fn encode_reply(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.assets.encode_reply(text)?)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        if lora::has_adapters(&self.model) {
            Ok(checkpoint::save_adapted(&self.model, &self.assets, &self.base, dir)?)
        } else {
            Ok(checkpoint::save(&self.model, &self.assets, dir)?)
        }
    }

    /// The frozen base is stored in the forward dtype (only the adapters keep f32 masters).
    fn with_lora(self, config: &LoraConfig, start: LoraStart, seed: u64) -> Result<Self> {
        let policy = match start {
            LoraStart::Fresh => {
                let model = lora::attach(lora::merge(self.model), config, seed)?;
                // The merged model is the folder this policy came from, adapters and all.
                Self { model, base: self.source.clone(), ..self }
            }
            LoraStart::Resume if lora::has_adapters(&self.model) => self,
            LoraStart::Resume => {
                return Err(GrpoError::file(
                    &self.source,
                    "holds no LoRA adapters, but the run trains with lora: not a checkpoint of this run",
                ));
            }
        };
        Ok(Self { model: precision::cast_frozen(policy.model.clone(), policy.precision), ..policy })
    }

    fn without_adapters(&self) -> Self {
        Self { model: lora::without_adapters(&self.model), ..self.clone() }
    }

    fn into_reference(self) -> Self {
        let policy = self.valid();
        Self { model: precision::cast(policy.model.clone(), policy.precision), ..policy }
    }
}

/// Loads policies as `config` trains them: onto `device`, with image paths relative to its
/// dataset root and forward passes in its dtype.
pub fn loader(config: &TrainConfig, device: Device) -> impl Fn(&Path) -> Result<QwenPolicy> + use<> {
    let (root, precision) = (config.data.root.clone(), config.model.dtype);
    move |dir: &Path| Ok(QwenPolicy::load(dir, &root, &device)?.with_precision(precision))
}

/// The [`ModelShape`] of the checkpoint in `dir`, from its `config.json` and the headers of its
/// weight files (no weight is loaded).
pub fn model_shape(dir: &Path) -> Result<ModelShape> {
    let config = r1_model::Qwen2_5VlConfig::from_file(dir)?;
    let counts = r1_model::weights::parameter_counts(dir)?;
    let (t, v) = (&config.text, &config.vision);
    let n = |x: usize| x as u64;
    Ok(ModelShape {
        text_params: counts.text,
        vision_params: counts.vision,
        layers: n(t.num_hidden_layers),
        hidden: n(t.hidden_size),
        intermediate: n(t.intermediate_size),
        heads: n(t.num_attention_heads),
        kv_heads: n(t.num_key_value_heads),
        head_dim: n(t.head_dim()),
        vocab: n(t.vocab_size),
        vision_layers: n(v.depth),
        vision_hidden: n(v.hidden_size),
        vision_intermediate: n(v.intermediate_size),
        vision_heads: n(v.num_heads),
    })
}

/// The longest of up to `sampled` prompts of `samples` (spread evenly over them), encoded with
/// the checkpoint's template, tokenizer and image processor as training will encode them;
/// `None` without samples.
pub fn longest_prompt(
    dir: &Path,
    samples: &[QaSample],
    image_root: &Path,
    sampled: usize,
) -> Result<Option<PromptShape>> {
    let assets = Assets::from_dir(dir)?;
    let stride = samples.len().div_ceil(sampled.max(1)).max(1);
    let mut longest: Option<PromptShape> = None;
    for sample in samples.iter().step_by(stride) {
        let prompt = assets.encode_prompt(r1_data::qa::prompt_turns(&sample.messages), image_root)?;
        let patches = prompt.images.iter().map(|im| im.grid_thw.iter().product::<usize>()).sum::<usize>() as u64;
        let shape = PromptShape { tokens: prompt.ids.len() as u64, patches };
        if longest.is_none_or(|l| shape.tokens > l.tokens) {
            longest = Some(shape);
        }
    }
    Ok(longest)
}

/// Encoded prompts by sample id; the least recently used go once their bytes pass the budget.
#[derive(Debug)]
struct PromptCache {
    budget: usize,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Prompt and the clock tick of its last use.
    entries: HashMap<String, (Arc<Prompt>, u64)>,
    clock: u64,
    bytes: usize,
}

fn prompt_bytes(prompt: &Prompt) -> usize {
    let pixels: usize = prompt.images.iter().map(|i| i.pixel_values.len()).sum();
    4 * (prompt.ids.len() + pixels)
}

impl PromptCache {
    fn new(budget: usize) -> Self {
        Self { budget, state: Mutex::new(CacheState::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock cannot leave the map inconsistent (each update is
        // one insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<Prompt>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        state.entries.get_mut(id).map(|(prompt, used)| {
            *used = now;
            prompt.clone()
        })
    }

    fn insert(&self, id: &str, prompt: Arc<Prompt>) {
        let size = prompt_bytes(&prompt);
        if size > self.budget {
            return;
        }
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some((old, _)) = state.entries.insert(id.to_string(), (prompt, now)) {
            state.bytes -= prompt_bytes(&old);
        }
        state.bytes += size;
        while state.bytes > self.budget {
            let oldest = state.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            let Some((evicted, _)) = oldest.and_then(|k| state.entries.remove(&k)) else {
                break;
            };
            state.bytes -= prompt_bytes(&evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(n: usize) -> Arc<Prompt> {
        Arc::new(Prompt { ids: vec![1; n], images: Vec::new() })
    }

    /// The budget holds: the least recently used prompt goes first, a touched one stays.
    #[test]
    fn cache_evicts_the_least_recently_used() {
        let cache = PromptCache::new(4 * 10);
        cache.insert("a", prompt(4));
        cache.insert("b", prompt(4));
        assert!(cache.get("a").is_some());
        cache.insert("c", prompt(4));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.insert("huge", prompt(11));
        assert!(cache.get("huge").is_none(), "a prompt over the whole budget is not kept");
        assert_eq!(cache.lock().bytes, 4 * 8);
    }
}
