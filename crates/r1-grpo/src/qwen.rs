//! The [`Policy`] of r1-model's Qwen2.5-VL: a QA sample's chat messages go through the
//! checkpoint's own chat template, tokenizer and image processor; rollouts use KV-cache
//! generation; log-probs are teacher-forced and differentiable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use r1_data::QaSample;
use r1_model::checkpoint::{self, Assets, Prompt};
use r1_model::Qwen2_5VlModel;
use r1_model::generate::SamplingConfig;
use rand::rngs::StdRng;

use crate::error::Result;
use crate::policy::{Completion, Policy, Sampling};

/// Qwen2.5-VL with its checkpoint assets and the folder its QA images are relative to.
#[derive(Module, Debug)]
pub struct QwenPolicy {
    pub model: Qwen2_5VlModel,
    #[module(skip)]
    assets: Arc<Assets>,
    #[module(skip)]
    image_root: PathBuf,
}

impl QwenPolicy {
    /// Loads the checkpoint directory `dir` onto `device`; image paths of the samples it will
    /// see are relative to `image_root` (the dataset root).
    pub fn load(dir: &Path, image_root: &Path, device: &Device) -> Result<Self> {
        let (assets, model) = checkpoint::load(dir, device)?;
        Ok(Self { model, assets: Arc::new(assets), image_root: image_root.to_path_buf() })
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// The prompt of a sample: its turns before the first assistant turn, rendered with the
    /// generation prompt.
    pub fn prompt(&self, sample: &QaSample) -> Result<Prompt> {
        Ok(self.assets.encode_prompt(r1_data::qa::prompt_turns(&sample.messages), &self.image_root)?)
    }

    fn prompts(&self, samples: &[&QaSample]) -> Result<Vec<Prompt>> {
        samples.iter().map(|s| self.prompt(s)).collect()
    }
}

impl Policy for QwenPolicy {
    fn sample(&self, prompts: &[&QaSample], group: usize, sampling: &Sampling, rng: &mut StdRng) -> Result<Vec<Completion>> {
        let encoded = self.prompts(prompts)?;
        let refs: Vec<&Prompt> = encoded.iter().collect();
        let config =
            SamplingConfig { max_new_tokens: sampling.max_tokens, temperature: sampling.temperature, top_p: sampling.top_p, top_k: 0 };
        let out = self.assets.sample(&self.model, &refs, group, &config, rng)?;
        Ok(out.into_iter().map(|(g, text)| Completion { truncated: !g.stopped, ids: g.ids, text }).collect())
    }

    fn logprobs(&self, prompts: &[&QaSample], completions: &[&[u32]], temperature: f64) -> Result<Tensor<2>> {
        let encoded = self.prompts(prompts)?;
        let refs: Vec<&Prompt> = encoded.iter().collect();
        Ok(self.assets.score(&self.model, &refs, completions, temperature)?)
    }

    fn encode_reply(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.assets.encode_reply(text)?)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Ok(checkpoint::save(&self.model, &self.assets, dir)?)
    }
}
