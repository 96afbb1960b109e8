//! Teacher-forced scoring: the per-token log-probabilities of given completions after their
//! prompts. Differentiable when the model lives on an autodiff device, which is how the GRPO
//! and SFT trainers compute their losses.
//!
//! Completions that follow the same prompt share it: the prompt (and its image) goes through
//! the model once, its key/value cache is repeated over the completions, and only the
//! completion tokens run against it. A GRPO group of `G` completions of ~30 tokens after a
//! ~400-token prompt thus costs one prompt plus `G` completions instead of `G` prompts, and no
//! row is padded to another prompt's length. Under autodiff the prompt's forward is part of the
//! graph, so its gradient collects every completion's contribution.
//!
//! The `[B, T, vocab]` log-softmax is formed a few positions at a time (152k columns for the
//! released checkpoints) and only the gathered `[B, chunk]` values are kept; under autodiff
//! each chunk's logits stay alive until the backward pass.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::checkpoint::Prompt;
use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;
use crate::processor::ImageProcessor;
use crate::text::KvCache;

/// Upper bound on the elements of one chunk's `[B, chunk, vocab]` logits (64 MiB in f32).
const CHUNK_ELEMENTS: usize = 1 << 24;

/// Positions per chunk for `batch` rows over `vocab` columns: as many as fit the bound, at
/// least one.
pub fn chunk_len(batch: usize, vocab: usize) -> usize {
    (CHUNK_ELEMENTS / (batch * vocab).max(1)).max(1)
}

/// Log-probabilities `[B, T]` of `completions[i]` after `prompts[i]` under
/// `softmax(logits / temperature)`; `T` is the longest completion and the positions past a
/// row's length hold arbitrary values (callers mask them).
///
/// Consecutive rows with the same prompt (the same `Prompt`, or an equal one) are scored
/// against one prefill of it; `pad` fills the completion slots past a row's length.
pub fn completion_logprobs(
    model: &Qwen2_5VlModel,
    processor: &ImageProcessor,
    prompts: &[&Prompt],
    completions: &[&[u32]],
    temperature: f64,
    pad: u32,
) -> Result<Tensor<2>, ModelError> {
    if prompts.len() != completions.len() || prompts.is_empty() {
        return Err(ModelError::Input(format!(
            "{} prompts and {} completions: expected the same non-zero number",
            prompts.len(),
            completions.len()
        )));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(ModelError::Sampling(format!("temperature {temperature} must be finite and > 0 for scoring")));
    }
    if let Some(i) = prompts.iter().position(|p| p.ids.is_empty()) {
        return Err(ModelError::Input(format!("prompt {i} is empty")));
    }
    let t = completions.iter().map(|c| c.len()).max().unwrap_or(0);
    if t == 0 {
        return Err(ModelError::Input("every completion is empty: nothing to score".into()));
    }
    let device =
        model.devices().into_iter().next().ok_or_else(|| ModelError::Input("the model has no device".into()))?;
    let mut parts = Vec::new();
    let mut start = 0;
    for end in group_ends(prompts) {
        let group = Group { prompt: prompts[start], completions: &completions[start..end] };
        parts.push(group.logprobs(model, processor, t, temperature, pad, &device)?);
        start = end;
    }
    Ok(if parts.len() == 1 { parts.pop().expect("one group") } else { Tensor::cat(parts, 0) })
}

/// End (exclusive) of each run of consecutive rows that share a prompt.
fn group_ends(prompts: &[&Prompt]) -> Vec<usize> {
    let same = |a: &Prompt, b: &Prompt| std::ptr::eq(a, b) || a == b;
    let mut ends: Vec<usize> = (1..prompts.len()).filter(|&i| !same(prompts[i - 1], prompts[i])).collect();
    ends.push(prompts.len());
    ends
}

/// The completions of one prompt.
struct Group<'a> {
    prompt: &'a Prompt,
    completions: &'a [&'a [u32]],
}

impl Group<'_> {
    /// `[n, width]` log-probs of the group's `n` completions (see [`completion_logprobs`]);
    /// `width` is at least the group's longest completion.
    fn logprobs(
        &self,
        model: &Qwen2_5VlModel,
        processor: &ImageProcessor,
        width: usize,
        temperature: f64,
        pad: u32,
        device: &Device,
    ) -> Result<Tensor<2>, ModelError> {
        let n = self.completions.len();
        let t = self.completions.iter().map(|c| c.len()).max().unwrap_or(0);
        if t == 0 {
            return Ok(Tensor::zeros([n, width], device));
        }
        let p = self.prompt.ids.len();
        let ids: Vec<i64> = self.prompt.ids.iter().map(|&id| id as i64).collect();
        let images = (!self.prompt.images.is_empty()).then(|| processor.to_input(&self.prompt.images, device));
        let mut cache = KvCache::new();
        let prompt_hidden = model.forward_hidden(
            Tensor::from_data(TensorData::new(ids, [1, p]), device),
            Tensor::ones([1, p], device),
            images.as_ref(),
            Some(&mut cache),
        )?;
        // Completion token 0 is predicted by the prompt's last position, token j > 0 by
        // completion token j - 1 run against the prompt's cache.
        let first = prompt_hidden.slice([0..1, p - 1..p]).repeat_dim(0, n);
        let hidden = if t == 1 {
            first
        } else {
            let mut cache = cache.repeat_interleave(n);
            let inputs = padded(self.completions.iter().map(|c| &c[..c.len().min(t - 1)]), t - 1, pad);
            let rest = model.forward_hidden(
                Tensor::from_data(TensorData::new(inputs, [n, t - 1]), device),
                Tensor::ones([n, t - 1], device),
                None,
                Some(&mut cache),
            )?;
            Tensor::cat(vec![first, rest], 1)
        };
        let targets = Tensor::<2, Int>::from_data(
            TensorData::new(padded(self.completions.iter().copied(), t, pad), [n, t]),
            device,
        );
        let logp = token_logprobs(model, hidden, targets, temperature);
        Ok(if t == width { logp } else { Tensor::cat(vec![logp, Tensor::zeros([n, width - t], device)], 1) })
    }
}

/// Rows of ids right-padded with `pad` to `width`, flattened row-major.
fn padded<'a>(rows: impl Iterator<Item = &'a [u32]>, width: usize, pad: u32) -> Vec<i64> {
    rows.flat_map(|r| r.iter().map(|&id| id as i64).chain(std::iter::repeat_n(pad as i64, width - r.len()))).collect()
}

/// `log softmax(logits(hidden) / temperature)` at `targets`: `hidden [n, t, H]`,
/// `targets [n, t]` -> `[n, t]`, a chunk of positions at a time.
fn token_logprobs(model: &Qwen2_5VlModel, hidden: Tensor<3>, targets: Tensor<2, Int>, temperature: f64) -> Tensor<2> {
    let [n, t, _] = hidden.dims();
    let chunk = chunk_len(n, model.vocab_size());
    let mut parts = Vec::with_capacity(t.div_ceil(chunk));
    for start in (0..t).step_by(chunk) {
        let end = (start + chunk).min(t);
        // The log-sum-exp over the vocabulary in f32 whatever the compute dtype: summed in
        // bf16 (8 significant bits) over 152k entries, the small terms would be lost.
        let logits = model.logits(hidden.clone().slice([0..n, start..end])).cast(DType::F32) / temperature;
        let index = targets.clone().slice([0..n, start..end]).unsqueeze_dim::<3>(2);
        parts.push(log_softmax(logits, 2).gather(2, index).squeeze_dim::<2>(2));
    }
    if parts.len() == 1 { parts.pop().expect("one chunk") } else { Tensor::cat(parts, 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A chunk respects the element bound unless a single position already exceeds it.
        #[test]
        fn chunks_fit_the_bound(batch in 1usize..64, vocab in 1usize..200_000) {
            let c = chunk_len(batch, vocab);
            prop_assert!(c >= 1);
            prop_assert!(c == 1 || c * batch * vocab <= CHUNK_ELEMENTS);
        }
    }
}
