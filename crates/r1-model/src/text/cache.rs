//! The key/value cache of the decoder.

use burn::tensor::{Int, Tensor, TensorData};

/// Keys and values of one decoder layer, `[B, kv_heads, S, head_dim]` each, before the
/// grouped-query repetition and after the rotary embedding.
#[derive(Debug, Clone)]
pub struct LayerKv {
    /// Rotated keys.
    pub k: Tensor<4>,
    /// Values.
    pub v: Tensor<4>,
}

/// Everything a decoding step needs from the tokens before it: per layer keys/values, the
/// attention mask so far (`[B, S]`, false for left padding) and each row's rope delta (the
/// token appended at cache length `L` has position `L + delta` on all three M-RoPE rows).
///
/// An empty cache passed to `forward_hidden` is filled by the prefill; a filled one is
/// extended by each call.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    pub(crate) mask: Vec<bool>,
    pub(crate) batch: usize,
    pub(crate) len: usize,
    pub(crate) rope_deltas: Vec<i64>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens cached per row (padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows of the cached batch (0 when empty).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Per row `max_position + 1 - prompt_length` from the prefill.
    pub fn rope_deltas(&self) -> &[i64] {
        &self.rope_deltas
    }

    /// `[B, S]` row-major: whether each cached token is attended (false for padding).
    pub fn attention_mask(&self) -> &[bool] {
        &self.mask
    }

    /// Repeats each row `n` times (row-major: row `i` -> rows `i*n .. i*n + n`) so a prompt
    /// prefilled once serves `n` samples.
    pub fn repeat_interleave(&self, n: usize) -> Self {
        let rows: Vec<i64> = (0..self.batch).flat_map(|b| std::iter::repeat_n(b as i64, n)).collect();
        let layers = match self.layers.first() {
            None => Vec::new(),
            Some(first) => {
                let index: Tensor<1, Int> =
                    Tensor::from_data(TensorData::new(rows.clone(), [rows.len()]), &first.k.device());
                self.layers
                    .iter()
                    .map(|l| LayerKv { k: l.k.clone().select(0, index.clone()), v: l.v.clone().select(0, index.clone()) })
                    .collect()
            }
        };
        let repeat = |row: usize| self.mask[row * self.len..(row + 1) * self.len].iter().copied();
        Self {
            layers,
            mask: rows.iter().flat_map(|&b| repeat(b as usize)).collect(),
            batch: self.batch * n,
            len: self.len,
            rope_deltas: rows.iter().map(|&b| self.rope_deltas[b as usize]).collect(),
        }
    }
}
