//! Teacher-forced scoring: the per-token log-probabilities of given completions after their
//! prompts. Differentiable when the model lives on an autodiff device, which is how the GRPO
//! and SFT trainers compute their losses.
//!
//! The `[B, T, vocab]` log-softmax is the memory peak of a training step (152k columns for the
//! released checkpoints), so it is formed a few positions at a time and only the gathered
//! `[B, chunk]` values are kept.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::batch::pack;
use crate::checkpoint::Prompt;
use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;
use crate::processor::ImageProcessor;

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
    let device = model.devices().into_iter().next().ok_or_else(|| ModelError::Input("the model has no device".into()))?;
    let b = prompts.len();
    let packed = pack(prompts, completions, pad, processor, &device);
    let p = packed.prompt_width;
    // Completion token j (column p + j) is predicted by the hidden state at column p + j - 1.
    let hidden = model.forward_hidden(packed.ids, packed.mask, packed.images.as_ref(), None)?.slice([0..b, p - 1..p + t - 1]);
    let targets: Vec<i64> = completions
        .iter()
        .flat_map(|c| c.iter().map(|&id| id as i64).chain(std::iter::repeat_n(pad as i64, t - c.len())))
        .collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
    let chunk = chunk_len(b, model.vocab_size());
    let mut parts = Vec::with_capacity(t.div_ceil(chunk));
    for start in (0..t).step_by(chunk) {
        let end = (start + chunk).min(t);
        let logits = model.logits(hidden.clone().slice([0..b, start..end])) / temperature;
        let index = targets.clone().slice([0..b, start..end]).unsqueeze_dim::<3>(2);
        parts.push(log_softmax(logits, 2).gather(2, index).squeeze_dim::<2>(2));
    }
    Ok(Tensor::cat(parts, 1))
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
