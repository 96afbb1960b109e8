//! The key/value cache of the decoder.
//!
//! Keys and values live in buffers allocated once with room for the tokens still to come
//! (`reserve`), and each decoding step writes its token into place: on flex the write happens in
//! the buffer itself (the cache is its only owner), so a step costs the new token, not a copy of
//! everything cached so far. The slots not written yet are never read: the causal bias masks
//! every key after the query.

use burn::tensor::Tensor;

/// Keys and values of one decoder layer, `[B, kv_heads, capacity, head_dim]` each, before the
/// grouped-query sharing and after the rotary embedding; only the first `KvCache::len`
/// positions hold tokens.
#[derive(Debug, Clone)]
pub struct LayerKv {
    /// Rotated keys.
    pub k: Tensor<4>,
    /// Values.
    pub v: Tensor<4>,
}

impl LayerKv {
    /// Positions the buffers hold, written or not.
    pub fn capacity(&self) -> usize {
        self.k.dims()[2]
    }

    /// Writes `k`, `v` (`[B, kv_heads, T, head_dim]`) at positions `len..len + T` of `past`
    /// (none: an empty cache), in place when `past` has room, else into new buffers of
    /// `capacity` positions (at least `len + T`).
    pub fn append(past: Option<Self>, k: Tensor<4>, v: Tensor<4>, len: usize, capacity: usize) -> Self {
        let [b, heads, t, d] = k.dims();
        debug_assert!(capacity >= len + t);
        match past {
            Some(p) if p.capacity() >= len + t => {
                let at = [0..b, 0..heads, len..len + t, 0..d];
                Self { k: p.k.slice_assign(at.clone(), k), v: p.v.slice_assign(at, v) }
            }
            past => {
                let grow = |old: Option<Tensor<4>>, new: Tensor<4>| {
                    let spare = capacity - len - t;
                    let mut parts: Vec<Tensor<4>> = old.map(|o| o.narrow(2, 0, len)).into_iter().collect();
                    let device = new.device();
                    let dtype = new.dtype();
                    parts.push(new);
                    if spare > 0 {
                        parts.push(Tensor::<4>::zeros([b, heads, spare, d], &device).cast(dtype));
                    }
                    if parts.len() == 1 { parts.pop().expect("one part") } else { Tensor::cat(parts, 2) }
                };
                let (pk, pv) = match past {
                    Some(p) => (Some(p.k), Some(p.v)),
                    None => (None, None),
                };
                Self { k: grow(pk, k), v: grow(pv, v) }
            }
        }
    }
}

/// Everything a decoding step needs from the tokens before it: per layer keys/values, the
/// attention mask so far (`[B, len]`, false for left padding) and each row's rope delta (the
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
    /// Positions allocated beyond the tokens written whenever the buffers (re)grow.
    pub(crate) reserve: usize,
}

impl KvCache {
    /// An empty cache that allocates exactly what it is given.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache that, whenever it allocates, leaves room for `reserve` more tokens, so
    /// that decoding up to that many tokens after the prefill never copies the cache.
    pub fn with_reserve(reserve: usize) -> Self {
        Self { reserve, ..Self::default() }
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

    /// Positions the buffers hold after appending `t` tokens: the current ones when they fit,
    /// else the tokens plus the reserve.
    pub(crate) fn capacity_after(&self, t: usize) -> usize {
        let capacity = self.layers.first().map_or(0, LayerKv::capacity);
        if self.len + t <= capacity { capacity } else { self.len + t + self.reserve }
    }

    /// Repeats each row `n` times (row-major: row `i` -> rows `i*n .. i*n + n`) so a prompt
    /// prefilled once serves `n` samples.
    pub fn repeat_interleave(&self, n: usize) -> Self {
        let rows: Vec<(usize, usize)> = (0..self.batch).flat_map(|b| std::iter::repeat_n((0, b), n)).collect();
        Self::gather_left_padded(std::slice::from_ref(self), &rows)
    }

    /// The cache whose row `i` is row `rows[i].1` of `parts[rows[i].0]` (repeats allowed),
    /// each part left-padded to the longest: padding slots are masked, and a row's rope delta
    /// drops by its padding so that the next token keeps its position. Every row is copied
    /// once, into buffers of the longest part's capacity. The parts must come from one model
    /// (same layers and widths) and share their reserve.
    pub fn gather_left_padded(parts: &[Self], rows: &[(usize, usize)]) -> Self {
        let len = parts.iter().map(|p| p.len).max().unwrap_or(0);
        let reserve = parts.first().map_or(0, |p| p.reserve);
        let pad = |p: usize| len - parts[p].len;
        let mut mask = Vec::with_capacity(rows.len() * len);
        for &(p, r) in rows {
            let part = &parts[p];
            mask.extend(std::iter::repeat_n(false, pad(p)));
            mask.extend_from_slice(&part.mask[r * part.len..(r + 1) * part.len]);
        }
        let layer_count = parts.first().map_or(0, |p| p.layers.len());
        let layers = (0..layer_count)
            .map(|l| {
                let gather = |pick: fn(&LayerKv) -> &Tensor<4>| {
                    let first = pick(&parts[0].layers[l]);
                    let [_, heads, _, d] = first.dims();
                    let capacity = (0..parts.len()).map(|p| pad(p) + parts[p].layers[l].capacity()).max().unwrap_or(0);
                    let mut out =
                        Tensor::<4>::zeros([rows.len(), heads, capacity, d], &first.device()).cast(first.dtype());
                    for (i, &(p, r)) in rows.iter().enumerate() {
                        let source = pick(&parts[p].layers[l]).clone().narrow(0, r, 1);
                        let width = source.dims()[2];
                        out = out.slice_assign([i..i + 1, 0..heads, pad(p)..pad(p) + width, 0..d], source);
                    }
                    out
                };
                LayerKv { k: gather(|kv| &kv.k), v: gather(|kv| &kv.v) }
            })
            .collect();
        Self {
            layers,
            mask,
            batch: rows.len(),
            len,
            rope_deltas: rows.iter().map(|&(p, r)| parts[p].rope_deltas[r] - pad(p) as i64).collect(),
            reserve,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn filled(len: usize, value: f32, device: &Device) -> Tensor<4> {
        Tensor::<4>::ones([1, 2, len, 3], device).mul_scalar(value)
    }

    fn positions(t: &Tensor<4>) -> Vec<f32> {
        // The value of each position (all entries of a position are equal here).
        let data = t.clone().slice([0..1, 0..1, 0..t.dims()[2], 0..1]).into_data();
        data.try_into_vec_as::<f32>().unwrap()
    }

    /// Appends land at the cache length, growing by the reserve only when the buffers are full.
    #[test]
    fn appends_fill_the_reserve_then_grow() {
        let device = Device::flex();
        let kv = LayerKv::append(None, filled(2, 1.0, &device), filled(2, 1.0, &device), 0, 4);
        assert_eq!(positions(&kv.k), vec![1.0, 1.0, 0.0, 0.0]);
        let kv = LayerKv::append(Some(kv), filled(1, 2.0, &device), filled(1, 2.0, &device), 2, 4);
        assert_eq!(positions(&kv.k), vec![1.0, 1.0, 2.0, 0.0]);
        let kv = LayerKv::append(Some(kv), filled(2, 3.0, &device), filled(2, 3.0, &device), 3, 7);
        assert_eq!(positions(&kv.v), vec![1.0, 1.0, 2.0, 3.0, 3.0, 0.0, 0.0]);
    }
}
