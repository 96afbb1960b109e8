//! Batched generation with a KV cache: every prompt is prefilled once, its cache is repeated
//! for the `group` samples GRPO draws from it, then tokens are decoded one step at a time for
//! all rows together until each row meets a stop token or the length limit.
//!
//! Prompts are prefilled in batches of one length (a padded position costs as much as a real
//! one), and the batches' caches are joined, left-padded, for decoding, where a padding slot
//! costs one masked cache position instead of a forward pass.
//!
//! Sampling happens on the host from each step's logits, with one uniform draw per active row
//! per step from the caller's generator, so a seed reproduces a run on every backend whose
//! logits agree.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, RngExt};

use crate::batch::{pack, same_length_groups};
use crate::checkpoint::Prompt;
use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;
use crate::processor::ImageProcessor;
use crate::text::KvCache;

/// How tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// Tokens generated at most per row.
    pub max_new_tokens: usize,
    /// Divides the logits; 0 means greedy.
    pub temperature: f64,
    /// Nucleus: the smallest set of most likely tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Only the `top_k` most likely tokens (0: no limit).
    pub top_k: usize,
}

impl SamplingConfig {
    /// Greedy decoding of up to `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, temperature: 0.0, top_p: 1.0, top_k: 0 }
    }

    /// Checks the ranges; the message names the offending setting.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.max_new_tokens == 0 {
            return Err(ModelError::Sampling("max_new_tokens must be at least 1".into()));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::Sampling(format!("temperature {} must be finite and >= 0", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::Sampling(format!("top_p {} must be in (0, 1]", self.top_p)));
        }
        Ok(())
    }
}

/// One generated completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, the stop token included when one was drawn.
    pub ids: Vec<u32>,
    /// Per generated token, its natural-log probability under the model's tempered
    /// distribution `softmax(logits / temperature)` over the whole vocabulary (temperature 1
    /// for greedy decoding): what teacher-forced scoring of the same tokens computes
    /// ([`crate::score`]), so without top-k/top-p truncation these are the rollout's old
    /// log-probs and need no second pass.
    pub logprobs: Vec<f32>,
    /// Whether a stop token ended it (otherwise the length limit did).
    pub stopped: bool,
}

/// Draws one token from `logits` given a uniform `u` in `[0, 1)`: returns the token and its
/// log-probability (see [`Generation::logprobs`]).
pub fn sample_token(logits: &[f32], config: &SamplingConfig, u: f64) -> (u32, f32) {
    if config.temperature == 0.0 {
        let best = argmax(logits);
        return (best as u32, log_softmax_at(logits, best, 1.0));
    }
    let inv_t = 1.0 / config.temperature;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    // Unnormalised probabilities, most likely first when a filter needs the order.
    let mut candidates: Vec<(usize, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i, ((l as f64 - max) * inv_t).exp())).collect();
    let filtered = config.top_k > 0 || config.top_p < 1.0;
    if filtered {
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if config.top_k > 0 {
            candidates.truncate(config.top_k);
        }
        if config.top_p < 1.0 {
            let total: f64 = candidates.iter().map(|c| c.1).sum();
            let mut cumulative = 0.0;
            let mut keep = 0;
            for c in &candidates {
                keep += 1;
                cumulative += c.1 / total;
                if cumulative >= config.top_p {
                    break;
                }
            }
            candidates.truncate(keep);
        }
    }
    let total: f64 = candidates.iter().map(|c| c.1).sum();
    let mut target = u * total;
    let mut chosen = candidates[candidates.len() - 1];
    for &c in &candidates {
        if target < c.1 {
            chosen = c;
            break;
        }
        target -= c.1;
    }
    (chosen.0 as u32, (chosen.1 / total).ln() as f32)
}

/// [`sample_token`] for a row of `model`'s logits, which are overwritten: `<|image_pad|>` is
/// never drawn, because the next forward (and teacher-forced scoring) would take a generated
/// one for an image slot and fail on the missing image features.
pub fn draw_token(model: &Qwen2_5VlModel, logits: &mut [f32], config: &SamplingConfig, u: f64) -> (u32, f32) {
    if let Some(pad) = logits.get_mut(model.image_token_id as usize) {
        *pad = f32::NEG_INFINITY;
    }
    sample_token(logits, config, u)
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// `log softmax(logits / temperature)[index]`, computed stably in f64.
pub fn log_softmax_at(logits: &[f32], index: usize, temperature: f64) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_z: f64 = logits.iter().map(|&l| ((l as f64 - max) / temperature).exp()).sum::<f64>().ln();
    ((logits[index] as f64 - max) / temperature - log_z) as f32
}

/// Generates `group` completions for each prompt, prompt-major (`out[p * group + i]`).
///
/// Run it on the inference view (`model.valid()`): on an autodiff device a graph nobody
/// consumes would be kept alive. `stop` lists the ids that end a row; `pad` fills finished
/// rows and the left padding. The `<|image_pad|>` token is never drawn.
// The arguments are the model, its processor, the batch and how to sample it: a struct
// would only rename them at every call.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Qwen2_5VlModel,
    processor: &ImageProcessor,
    prompts: &[&Prompt],
    group: usize,
    config: &SamplingConfig,
    stop: &[u32],
    pad: u32,
    rng: &mut impl Rng,
) -> Result<Vec<Generation>, ModelError> {
    generate_with(model, processor, prompts, group, config, stop, pad, rng, |_, _| true)
}

/// [`generate`], telling `on_token(row, token)` about every token as soon as it is drawn
/// (`row` indexes the prompt-major output; a stop token is reported too, and ends its row
/// whatever the answer), so that a caller can stream replies while the batch decodes.
/// Returning `false` ends that row after this token, its `stopped` flag unset unless the
/// token is a stop token: a caller's own ending rule (a per-row length limit below
/// `config.max_new_tokens`, a stop string, a reader gone). The other rows decode on, and
/// the batch ends when every row has ended.
#[allow(clippy::too_many_arguments)]
pub fn generate_with(
    model: &Qwen2_5VlModel,
    processor: &ImageProcessor,
    prompts: &[&Prompt],
    group: usize,
    config: &SamplingConfig,
    stop: &[u32],
    pad: u32,
    rng: &mut impl Rng,
    mut on_token: impl FnMut(usize, u32) -> bool,
) -> Result<Vec<Generation>, ModelError> {
    config.validate()?;
    if prompts.is_empty() || group == 0 {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(|p| p.ids.is_empty()) {
        return Err(ModelError::Input(format!("prompt {i} is empty")));
    }
    let device =
        model.devices().into_iter().next().ok_or_else(|| ModelError::Input("the model has no device".into()))?;
    // Room for every token fed back (the last one drawn never is), so decoding never copies
    // the cache.
    let (mut cache, mut logits) = prefill(model, processor, prompts, group, pad, config.max_new_tokens - 1, &device)?;
    let n = prompts.len() * group;
    let vocab = logits.dims()[2];
    let mut out = vec![Generation { ids: Vec::new(), logprobs: Vec::new(), stopped: false }; n];
    // A row ends at a stop token or when `on_token` declines more of it.
    let mut ended = vec![false; n];
    let mut allowed: Vec<f32> = Vec::with_capacity(vocab);
    let scoring_temperature = if config.temperature == 0.0 { 1.0 } else { config.temperature };
    for step in 0..config.max_new_tokens {
        let host = logits
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| ModelError::Input(format!("cannot read the logits: {e:?}")))?;
        let mut next = Vec::with_capacity(n);
        for (row, generation) in out.iter_mut().enumerate() {
            if ended[row] {
                next.push(pad as i64);
                continue;
            }
            let row_logits = &host[row * vocab..(row + 1) * vocab];
            allowed.clear();
            allowed.extend_from_slice(row_logits);
            let (token, _) = draw_token(model, &mut allowed, config, rng.random::<f64>());
            generation.ids.push(token);
            generation.logprobs.push(log_softmax_at(row_logits, token as usize, scoring_temperature));
            generation.stopped = stop.contains(&token);
            let wanted = on_token(row, token);
            ended[row] = generation.stopped || !wanted;
            next.push(token as i64);
        }
        if step + 1 == config.max_new_tokens || ended.iter().all(|&e| e) {
            break;
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(next, [n, 1]), &device);
        let mask = Tensor::<2, Int>::ones([n, 1], &device);
        logits = model.forward(ids, mask, None, Some(&mut cache))?;
    }
    Ok(out)
}

/// Prefills `prompts` in batches of one length ([`same_length_groups`]) into caches with room
/// for `reserve` more tokens, and joins them: the cache and the last position's logits
/// `[B * group, 1, vocab]` hold each prompt's row `group` times, prompt-major.
fn prefill(
    model: &Qwen2_5VlModel,
    processor: &ImageProcessor,
    prompts: &[&Prompt],
    group: usize,
    pad: u32,
    reserve: usize,
    device: &Device,
) -> Result<(KvCache, Tensor<3>), ModelError> {
    let lengths: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let batches = same_length_groups(&lengths);
    // (batch, row within it) of every prompt.
    let mut place = vec![(0, 0); prompts.len()];
    let (mut caches, mut logits) = (Vec::with_capacity(batches.len()), Vec::with_capacity(batches.len()));
    for (k, batch) in batches.iter().enumerate() {
        let members: Vec<&Prompt> = batch.iter().map(|&i| prompts[i]).collect();
        for (row, &i) in batch.iter().enumerate() {
            place[i] = (k, row);
        }
        let empty: Vec<&[u32]> = vec![&[]; members.len()];
        let packed = pack(&members, &empty, pad, processor, device);
        let (b, p) = (members.len(), packed.prompt_width);
        let mut cache = KvCache::with_reserve(reserve);
        let hidden = model.forward_hidden(packed.ids, packed.mask, packed.images.as_ref(), Some(&mut cache))?;
        logits.push(model.logits(hidden.slice([0..b, p - 1..p])));
        caches.push(cache);
    }
    // One batch keeps the prompts' order: with one sample each, it is the result as it is.
    if caches.len() == 1 && group == 1 {
        return Ok((caches.pop().expect("one batch"), logits.pop().expect("one batch")));
    }
    let rows: Vec<(usize, usize)> = place.iter().flat_map(|&at| std::iter::repeat_n(at, group)).collect();
    // The logits' rows in batch order, then gathered like the cache's.
    let starts: Vec<usize> =
        batches.iter().scan(0, |start, b| Some(std::mem::replace(start, *start + b.len()))).collect();
    let index: Vec<i64> = rows.iter().map(|&(k, r)| (starts[k] + r) as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows.len()]), device);
    Ok((KvCache::gather_left_padded(&caches, &rows), Tensor::cat(logits, 0).select(0, index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(temperature: f64, top_p: f64, top_k: usize) -> SamplingConfig {
        SamplingConfig { max_new_tokens: 1, temperature, top_p, top_k }
    }

    proptest! {
        /// Greedy picks the argmax whatever the draw.
        #[test]
        fn greedy_is_argmax(logits in proptest::collection::vec(-10.0f32..10.0, 1..50), u in 0.0f64..1.0) {
            let (token, logprob) = sample_token(&logits, &SamplingConfig::greedy(1), u);
            prop_assert_eq!(token as usize, argmax(&logits));
            prop_assert!(logprob <= 0.0);
        }

        /// Sampled tokens are always among the top-k, and their log-probability is that of the
        /// renormalised filtered distribution (so it is at least ln(1/k) for the most likely).
        #[test]
        fn top_k_limits_the_support(logits in proptest::collection::vec(-5.0f32..5.0, 2..40), k in 1usize..5, u in 0.0f64..1.0) {
            let (token, logprob) = sample_token(&logits, &config(1.0, 1.0, k), u);
            let mut sorted = logits.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kth = sorted[(k - 1).min(sorted.len() - 1)];
            prop_assert!(logits[token as usize] >= kth);
            prop_assert!(logprob <= 1e-6 && logprob.is_finite());
        }

        /// A tiny top-p keeps only the most likely token.
        #[test]
        fn tiny_top_p_is_greedy(logits in proptest::collection::vec(-5.0f32..5.0, 1..40), u in 0.0f64..1.0) {
            let (token, logprob) = sample_token(&logits, &config(1.0, 1e-9, 0), u);
            prop_assert_eq!(logits[token as usize], logits[argmax(&logits)]);
            prop_assert!(logprob.abs() < 1e-6);
        }

        /// Without filters the log-probability is the tempered log-softmax.
        #[test]
        fn unfiltered_logprob_is_log_softmax(logits in proptest::collection::vec(-5.0f32..5.0, 1..40), t in 0.2f64..3.0, u in 0.0f64..1.0) {
            let (token, logprob) = sample_token(&logits, &config(t, 1.0, 0), u);
            prop_assert!((logprob - log_softmax_at(&logits, token as usize, t)).abs() < 1e-4);
        }
    }

    /// The draw `u` walks the cumulative distribution in token order.
    #[test]
    fn draws_follow_the_cumulative_distribution() {
        let logits = [0.0f32, 0.0, 0.0, 0.0];
        let picks: Vec<u32> =
            [0.1, 0.3, 0.6, 0.9].iter().map(|&u| sample_token(&logits, &config(1.0, 1.0, 0), u).0).collect();
        assert_eq!(picks, vec![0, 1, 2, 3]);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(config(-1.0, 1.0, 0).validate().unwrap_err().to_string().contains("temperature"));
        assert!(config(1.0, 0.0, 0).validate().unwrap_err().to_string().contains("top_p"));
        let zero = SamplingConfig { max_new_tokens: 0, ..config(1.0, 1.0, 0) };
        assert!(zero.validate().unwrap_err().to_string().contains("max_new_tokens"));
    }
}
