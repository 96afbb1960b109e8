//! Floating-point operations of a forward pass, counted from the config: what model FLOPs
//! utilisation (MFU) is measured against. Matmuls count `2 m n k`; attention counts its two
//! products (`q k^T` and `p v`); norms, activations and softmax are left out, as in the usual
//! MFU accounting (PaLM, appendix B). A backward pass costs twice its forward.

use crate::config::{Qwen2_5VlConfig, TextConfig, VisionConfig};

/// One token through the decoder layers, attending to `context` keys (itself included); the
/// LM head is not included (see [`lm_head_flops`]).
pub fn decoder_token_flops(text: &TextConfig, context: usize) -> f64 {
    let h = text.hidden_size as f64;
    let kv = (text.num_key_value_heads * text.head_dim()) as f64;
    let projections = 2.0 * (2.0 * h * h + 2.0 * h * kv);
    let mlp = 2.0 * 3.0 * h * text.intermediate_size as f64;
    let attention = 2.0 * 2.0 * context as f64 * h;
    text.num_hidden_layers as f64 * (projections + mlp + attention)
}

/// The logits of one position.
pub fn lm_head_flops(text: &TextConfig) -> f64 {
    2.0 * (text.hidden_size * text.vocab_size) as f64
}

/// `tokens` consecutive tokens through the decoder after `past` cached ones (a prefill when
/// `past` is 0), without the LM head.
pub fn decoder_flops(text: &TextConfig, past: usize, tokens: usize) -> f64 {
    // Token i attends to past + i + 1 keys: the context grows linearly, so its mean is exact.
    let mean_context = past as f64 + (tokens as f64 + 1.0) / 2.0;
    let per_token = decoder_token_flops(text, 0)
        + 2.0 * 2.0 * mean_context * text.hidden_size as f64 * text.num_hidden_layers as f64;
    tokens as f64 * per_token
}

/// An image of `patches` patches (before merging) through the vision tower and its merger.
/// Window attention is counted as full attention inside windows of `window_size` pixels (the
/// full-attention blocks over the whole image).
pub fn vision_flops(vision: &VisionConfig, patches: usize) -> f64 {
    let n = patches as f64;
    let h = vision.hidden_size as f64;
    let patch_dim = (vision.in_channels * vision.temporal_patch_size * vision.patch_size * vision.patch_size) as f64;
    let embed = 2.0 * n * patch_dim * h;
    let window_patches = ((vision.window_size / vision.patch_size).pow(2) as f64).min(n).max(1.0);
    let blocks: f64 = (0..vision.depth)
        .map(|i| {
            let context = if vision.fullatt_block_indexes.contains(&i) { n } else { window_patches };
            let linear = 2.0 * n * (4.0 * h * h + 3.0 * h * vision.intermediate_size as f64);
            linear + 2.0 * 2.0 * n * context * h
        })
        .sum();
    let merged = n / (vision.spatial_merge_size * vision.spatial_merge_size) as f64;
    let unit = h * (vision.spatial_merge_size * vision.spatial_merge_size) as f64;
    let merger = 2.0 * merged * (unit * unit + unit * vision.out_hidden_size as f64);
    embed + blocks + merger
}

/// A prompt of `tokens` tokens holding images of `patches` patches in all, prefilled once,
/// then `completions` continuations of `completion_len` tokens each run against its cache
/// with the logits of every continuation position (what teacher-forced scoring does).
pub fn scoring_flops(
    config: &Qwen2_5VlConfig,
    tokens: usize,
    patches: usize,
    completions: usize,
    completion_len: usize,
) -> f64 {
    let text = &config.text;
    vision_flops(&config.vision, patches)
        + decoder_flops(text, 0, tokens)
        + completions as f64
            * (decoder_flops(text, tokens, completion_len) + completion_len as f64 * lm_head_flops(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> TextConfig {
        TextConfig {
            vocab_size: 100,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            mrope_section: [1, 1, 2],
            max_position_embeddings: 128,
        }
    }

    /// Summing tokens one at a time equals the closed form of `decoder_flops`.
    #[test]
    fn decoder_flops_sum_token_by_token() {
        let t = text();
        let (past, tokens) = (7, 5);
        let by_token: f64 = (0..tokens).map(|i| decoder_token_flops(&t, past + i + 1)).sum();
        let closed = decoder_flops(&t, past, tokens);
        assert!((by_token - closed).abs() <= 1e-9 * closed, "{by_token} vs {closed}");
    }

    /// At short context a token costs about twice the decoder's matmul parameters.
    #[test]
    fn a_token_costs_twice_the_parameters() {
        let t = text();
        let h = t.hidden_size;
        let kv = t.num_key_value_heads * t.head_dim();
        let params = t.num_hidden_layers * (2 * h * h + 2 * h * kv + 3 * h * t.intermediate_size);
        assert_eq!(decoder_token_flops(&t, 0), 2.0 * params as f64);
    }
}
