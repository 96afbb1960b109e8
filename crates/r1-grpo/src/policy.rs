//! What the trainers need from a model, as a trait: sampling completions, per-token
//! log-probabilities of given completions (differentiable on an autodiff device), the token ids
//! of a supervised target, and saving. [`crate::qwen`] implements it for Qwen2.5-VL; tests
//! implement it for small models so that the training loop is exercised in milliseconds.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use r1_data::QaSample;
use r1_model::lora::LoraConfig;
use rand::rngs::StdRng;

use crate::error::Result;

/// Sampling settings of a rollout (log-probs are computed from logits / temperature, so the
/// trainer and the sampler agree).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
}

/// One sampled completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Completion token ids (the stop token included when one was sampled).
    pub ids: Vec<u32>,
    /// Per token, its log-probability under `softmax(logits / temperature)` of the policy
    /// that sampled it: what [`Policy::logprobs`] returns for these ids on that policy.
    pub logprobs: Vec<f32>,
    /// Decoded text without special tokens.
    pub text: String,
    /// Stopped by the length limit rather than a stop token.
    pub truncated: bool,
}

/// A completion to score: which of the prompts it follows, and its token ids.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRow<'a> {
    /// Index into the prompts passed with it.
    pub prompt: usize,
    pub ids: &'a [u32],
}

/// A trainable policy.
pub trait Policy: Module + Sized {
    /// `group` completions of every prompt, prompt-major (`out[p * group + i]`), drawing every
    /// random number from `rng`. Called on the inference view (`valid()`).
    fn sample(
        &self,
        prompts: &[&QaSample],
        group: usize,
        sampling: &Sampling,
        rng: &mut StdRng,
    ) -> Result<Vec<Completion>>;

    /// Log-probabilities `[B, T]` of each row's ids after its prompt, from logits divided by
    /// `temperature`; `T` is the longest row, shorter rows are right-padded (the padding values
    /// are arbitrary: callers mask them). `prompts` holds each prompt once; consecutive rows of
    /// the same prompt may share its computation.
    fn logprobs(&self, prompts: &[&QaSample], rows: &[ScoreRow], temperature: f64) -> Result<Tensor<2>>;

    /// Token ids of an assistant reply whose content is `text`, end-of-turn included.
    fn encode_reply(&self, text: &str) -> Result<Vec<u32>>;

    /// Writes the model as a Hugging Face directory (with LoRA adapters, a PEFT adapter folder).
    fn save(&self, dir: &Path) -> Result<()>;

    /// Puts LoRA adapters on the policy and freezes everything else. [`LoraStart::Fresh`] merges
    /// whatever adapters the policy was loaded with into its weights (a run that starts from a
    /// LoRA warm-up trains new adapters on the warmed-up model) and attaches new ones drawn
    /// from `seed`; [`LoraStart::Resume`] keeps the adapters of the checkpoint it was loaded
    /// from. Policies without adapters refuse.
    fn with_lora(self, _config: &LoraConfig, _start: LoraStart, _seed: u64) -> Result<Self> {
        Err(crate::GrpoError::Invalid("this policy has no LoRA adapters (lora is set in the configuration)".into()))
    }

    /// The policy with its adapters left out, sharing its (frozen) weights: the model the
    /// adapters were attached to, which is GRPO's reference under LoRA. Without adapters, the
    /// policy itself.
    fn without_adapters(&self) -> Self {
        self.clone()
    }

    /// The frozen copy GRPO's KL term scores against: the inference view, stored as compactly
    /// as its forward passes allow (no optimiser needs its weights in f32).
    fn into_reference(self) -> Self {
        self.valid()
    }
}

/// How [`Policy::with_lora`] treats the adapters a loaded policy already carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraStart {
    /// A new run: merge them, attach new ones.
    Fresh,
    /// Resuming: keep them.
    Resume,
}

/// `[B, T]` mask with 1.0 on the first `lengths[i]` positions of row `i`.
pub fn length_mask(lengths: &[usize], t: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = lengths.iter().flat_map(|&l| (0..t).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(values, [lengths.len(), t]), device)
}
