//! Qwen2.5-VL for conditional generation: vision tower, decoder and LM head, with image
//! features placed at the `<|image_pad|>` tokens and M-RoPE positions.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::attention::group_mask;
use crate::config::Qwen2_5VlConfig;
use crate::error::ModelError;
use crate::layers::linear;
use crate::position_ids::rope_index;
use crate::rope::mrope_cos_sin;
use crate::text::decoder::LayerContext;
use crate::text::{KvCache, TextModel};
use crate::vision::{ImageInput, VisionTower};

/// The whole model. Field names follow the checkpoint keys (`visual.*`, `model.*`,
/// `lm_head`) so weights map by path.
#[derive(Module, Debug)]
pub struct Qwen2_5VlModel {
    /// Vision tower.
    pub visual: VisionTower,
    /// Decoder.
    pub model: TextModel,
    /// Untied output projection; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    /// `<|image_pad|>` token id.
    pub image_token_id: u32,
    /// Decoder rotary base.
    pub rope_theta: f64,
    /// M-RoPE split of the frequency slots.
    pub mrope_section: [usize; 3],
}

/// Reads an int tensor to the host as i64.
fn host_ints<const D: usize>(t: &Tensor<D, Int>) -> Vec<i64> {
    t.to_data().try_into_vec_as::<i64>().expect("int tensors convert to i64")
}

impl Qwen2_5VlModel {
    /// A randomly initialised model (weights N(0, 0.02), biases 0, norms 1).
    pub fn new(config: &Qwen2_5VlConfig, device: &Device) -> Self {
        let t = &config.text;
        Self {
            visual: VisionTower::new(&config.vision, device),
            model: TextModel::new(t, device),
            lm_head: (!config.tie_word_embeddings).then(|| linear(t.hidden_size, t.vocab_size, false, device)),
            image_token_id: config.image_token_id,
            rope_theta: t.rope_theta,
            mrope_section: t.mrope_section,
        }
    }

    /// Vocabulary size (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.model.embed_tokens.weight.lazy_shape()[0]
    }

    /// Width of the residual stream.
    pub fn hidden_size(&self) -> usize {
        self.model.embed_tokens.weight.lazy_shape()[1]
    }

    fn head_dim(&self) -> usize {
        self.model.layers.first().map_or(self.hidden_size(), |l| self.hidden_size() / l.self_attn.num_heads)
    }

    /// Query heads per key/value head.
    fn query_groups(&self) -> usize {
        self.model.layers.first().map_or(1, |l| l.self_attn.num_heads / l.self_attn.num_kv_heads)
    }

    /// Runs the vision tower and the decoder.
    ///
    /// - `input_ids [B, T]`, `attention_mask [B, T]` (1 for a token, 0 for left padding): the
    ///   whole prompt when `cache` is `None` or empty (prefill); otherwise only the `T` new
    ///   tokens, appended after the cached ones (the cache holds the earlier mask).
    /// - `images`: the images of all rows, in prompt order (row 0's first); their features
    ///   replace the `<|image_pad|>` tokens. Only allowed at prefill.
    ///
    /// Returns the final hidden states `[B, T, hidden]` (after the final norm).
    pub fn forward_hidden(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        images: Option<&ImageInput>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let [b, t] = input_ids.dims();
        if attention_mask.dims() != [b, t] || b == 0 || t == 0 {
            return Err(ModelError::Input(format!(
                "input_ids {:?} and attention_mask {:?} must have the same non-empty [B, T] shape",
                [b, t],
                attention_mask.dims()
            )));
        }
        let device = input_ids.device();
        let ids = host_ints(&input_ids);
        let vocab = self.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id < 0 || id as usize >= vocab) {
            return Err(ModelError::Input(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let ids: Vec<u32> = ids.into_iter().map(|id| id as u32).collect();
        let mask: Vec<bool> = host_ints(&attention_mask).into_iter().map(|m| m != 0).collect();
        let past_len = cache.as_ref().map_or(0, |c| c.len());
        if past_len > 0 {
            let c = cache.as_ref().expect("past_len > 0 implies a cache");
            if c.batch != b {
                return Err(ModelError::Input(format!("the cache holds {} rows, the input {b}", c.batch)));
            }
            if images.is_some() {
                return Err(ModelError::Input("images can only be given at prefill (empty cache)".into()));
            }
        }

        let mut embeds = self.model.embed_tokens.forward(input_ids);
        let image_slots: Vec<usize> =
            ids.iter().enumerate().filter(|&(_, &id)| id == self.image_token_id).map(|(i, _)| i).collect();
        let features = match images {
            Some(images) => Some(self.visual.forward(images)?),
            None => None,
        };
        let n_features = features.as_ref().map_or(0, |f| f.dims()[0]);
        if image_slots.len() != n_features {
            return Err(ModelError::ImageTokenMismatch { tokens: image_slots.len(), features: n_features });
        }
        if let Some(features) = features {
            embeds = place_features(embeds, features, &image_slots);
        }

        let positions = if past_len == 0 {
            let grids = images.map_or(&[][..], |i| &i.grid_thw[..]);
            let index = rope_index(&ids, &mask, b, t, grids, self.visual.spatial_merge_size, self.image_token_id)?;
            if let Some(c) = cache.as_deref_mut() {
                c.rope_deltas = index.deltas;
            }
            index.positions
        } else {
            let deltas = &cache.as_ref().expect("past_len > 0 implies a cache").rope_deltas;
            let row: Vec<i64> = (0..b).flat_map(|r| (0..t).map(move |i| (past_len + i) as i64 + deltas[r])).collect();
            [row.clone(), row.clone(), row].concat()
        };
        let head_dim = self.head_dim();
        let (cos, sin) = mrope_cos_sin(&positions, b * t, head_dim, self.rope_theta, self.mrope_section, &device);
        let dtype = embeds.dtype();
        let to4 = |x: Tensor<2>| x.reshape([b, t, head_dim]).unsqueeze_dim::<4>(1).cast(dtype);

        let past_mask = cache.as_ref().map_or(&[][..], |c| &c.mask[..]);
        let full_mask = join_masks(past_mask, &mask, b, past_len, t);
        let capacity = cache.as_ref().map_or(t, |c| c.capacity_after(t));
        let masked = causal_mask(&full_mask, b, past_len, t, capacity);
        let masked =
            Tensor::<3, Bool>::from_data(TensorData::new(masked, [b, t, capacity]), &device).unsqueeze_dim::<4>(1);
        let ctx = LayerContext {
            cos: to4(cos),
            sin: to4(sin),
            mask: group_mask(masked, self.query_groups()),
            past_len,
            capacity,
        };
        let past = cache.as_mut().map_or_else(Vec::new, |c| std::mem::take(&mut c.layers));
        let (hidden, kvs) = self.model.forward(embeds, &ctx, past);
        if let Some(c) = cache {
            c.layers = kvs;
            c.mask = full_mask;
            c.batch = b;
            c.len = past_len + t;
        }
        Ok(hidden)
    }

    /// `hidden [B, T, hidden]` -> logits `[B, T, vocab]`, through `lm_head` or the tied
    /// embedding.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let [b, t, h] = hidden.dims();
                let weight = self.model.embed_tokens.weight.val();
                let vocab = weight.dims()[0];
                hidden.reshape([b * t, h]).matmul(weight.transpose()).reshape([b, t, vocab])
            }
        }
    }

    /// Logits `[B, T, vocab]` of [`forward_hidden`](Self::forward_hidden).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        images: Option<&ImageInput>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        Ok(self.logits(self.forward_hidden(input_ids, attention_mask, images, cache)?))
    }
}

/// Replaces the embeddings at the flat positions `slots` (row-major over `[B, T]`) by the rows
/// of `features [slots.len(), H]`, in order: `embeds [B, T, H]` -> `[B, T, H]`.
fn place_features(embeds: Tensor<3>, features: Tensor<2>, slots: &[usize]) -> Tensor<3> {
    let [b, t, h] = embeds.dims();
    let n = b * t;
    let mut source: Vec<i64> = (0..n as i64).collect();
    for (k, &slot) in slots.iter().enumerate() {
        source[slot] = (n + k) as i64;
    }
    let device = embeds.device();
    let index = Tensor::<1, Int>::from_data(TensorData::new(source, [n]), &device);
    let features = features.cast(embeds.dtype());
    Tensor::cat(vec![embeds.reshape([n, h]), features], 0).select(0, index).reshape([b, t, h])
}

/// `[B, past]` and `[B, new]` row-major masks -> `[B, past + new]`.
fn join_masks(past: &[bool], new: &[bool], b: usize, past_len: usize, t: usize) -> Vec<bool> {
    (0..b)
        .flat_map(|r| past[r * past_len..(r + 1) * past_len].iter().chain(&new[r * t..(r + 1) * t]).copied())
        .collect()
}

/// Attention mask `[B, T, width]` over `mask [B, past + T]` (row-major), true where query `i`
/// (absolute position `past + i`) must not read key `j`: keys after it (`j > past + i`),
/// padding keys, and the cache slots not written yet (`past + T` to `width`).
fn causal_mask(mask: &[bool], b: usize, past: usize, t: usize, width: usize) -> Vec<bool> {
    let s = past + t;
    debug_assert!(width >= s);
    let mut masked = Vec::with_capacity(b * t * width);
    for r in 0..b {
        let row = &mask[r * s..(r + 1) * s];
        for i in 0..t {
            masked.extend(row.iter().enumerate().map(|(j, &m)| !(m && j <= past + i)));
            masked.extend(std::iter::repeat_n(true, width - s));
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Without padding the bias is the causal triangle shifted by the cache length; cache
        /// slots past the written tokens are masked.
        #[test]
        fn causal_mask_is_shifted_triangle(past in 0usize..5, t in 1usize..5, spare in 0usize..3) {
            let s = past + t;
            let width = s + spare;
            let masked = causal_mask(&vec![true; s], 1, past, t, width);
            prop_assert_eq!(masked.len(), t * width);
            for i in 0..t {
                for j in 0..width {
                    prop_assert_eq!(!masked[i * width + j], j <= past + i);
                }
            }
        }

        /// Padded keys are masked for every query.
        #[test]
        fn padding_is_masked(mask in proptest::collection::vec(any::<bool>(), 1..8)) {
            let t = mask.len();
            let masked = causal_mask(&mask, 1, 0, t, t);
            for i in 0..t {
                for (j, &m) in mask.iter().enumerate() {
                    if !m {
                        prop_assert!(masked[i * t + j]);
                    }
                }
            }
        }
    }
}
