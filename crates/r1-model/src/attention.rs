//! Scaled dot-product attention, shared by the decoder and the vision tower.
//!
//! Grouped-query attention reads each key/value head once: the `G = heads / kv_heads` query
//! heads that share a key/value head are stacked along the query axis (`[B, H, T, d]` ->
//! `[B, KVH, G * T, d]`, a free reshape since head `h` reads kv head `h / G`), so every backend
//! sees plain multi-head attention over the `KVH` heads and no `repeat_kv` copy of the keys and
//! values is ever made. The mask is given in that stacked layout (see [`group_mask`]).
//!
//! Where no gradient is recorded (generation, reference and old log-probs) the backend's fused
//! kernel runs: on flex it never holds more than one head's score tile, spreads the heads over
//! the cores (`rayon`), and skips the exponentials of masked keys (a boolean mask, not an
//! additive `-1e9`, whose `exp` underflows through libm's slow path). Under autodiff burn would
//! decompose that kernel into tracked ops anyway, so the scores are formed here directly, with
//! the `1 / sqrt(d)` scale applied to `q` (`[.., T, d]`) rather than to the larger `[.., T, S]`
//! scores, and masked scores set to the finite `MASK_VALUE` so that a fully masked row (a
//! left-padding query) stays finite.

use burn::tensor::activation::softmax;
use burn::tensor::module::attention as fused_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor};

use crate::layers::MASK_VALUE;

/// `mask [B, 1, T, S]` (true: masked; one query row per position) -> `[B, 1, G * T, S]`, the
/// layout [`attention`] expects for `groups` query heads per key/value head.
pub fn group_mask(mask: Tensor<4, Bool>, groups: usize) -> Tensor<4, Bool> {
    if groups == 1 { mask } else { mask.repeat_dim(2, groups) }
}

/// `softmax(q k^T / sqrt(d)) v` per head, masked keys excluded.
///
/// - `q [B, H, T, d]`, `k [B, KVH, S, d]`, `v [B, KVH, S, d]` with `H` a multiple of `KVH`;
/// - `mask [B or 1, 1, (H / KVH) * T, S]` from [`group_mask`] (true: the query does not read
///   that key), or `None` for full attention.
///
/// Returns `[B, H, T, d]`. Scores and softmax are computed in f32 whatever the input dtype.
/// A query whose keys are all masked gets zeros from the fused kernel and the mean of the
/// values from the explicit path: such rows are padding, never read by a real token.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let [b, heads, t, d] = q.dims();
    let kv_heads = k.dims()[1];
    let groups = heads / kv_heads;
    let q = q.reshape([b, kv_heads, groups * t, d]);
    let out = if q.is_autodiff() { explicit(q, k, v, mask) } else { fused(q, k, v, mask) };
    out.reshape([b, heads, t, d])
}

fn fused(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    fused_attention(q, k, v, mask, None, options)
}

/// In f32 from the scores on, as the fused kernel computes, so that a bf16 policy's training
/// forward rounds where its sampling forward does (the PPO ratio starts at 1).
fn explicit(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let dtype = q.dtype();
    let scale = (q.dims()[3] as f64).powf(-0.5);
    let f32 = |x: Tensor<4>| if x.dtype() == DType::F32 { x } else { x.cast(DType::F32) };
    let scores = f32(q).mul_scalar(scale).matmul(f32(k).swap_dims(2, 3));
    let scores = match mask {
        Some(mask) => {
            let [b, h, t, s] = scores.dims();
            scores.mask_fill(mask.expand([b, h, t, s]), MASK_VALUE)
        }
        None => scores,
    };
    let out = softmax(scores, 3).matmul(f32(v));
    if dtype == DType::F32 { out } else { out.cast(dtype) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    /// The textbook formula with the key/value heads repeated (transformers' `repeat_kv`).
    fn reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
        let [b, h, _, d] = q.dims();
        let [_, kvh, s, _] = k.dims();
        let repeat = |x: Tensor<4>| x.unsqueeze_dim::<5>(2).repeat_dim(2, h / kvh).reshape([b, h, s, d]);
        let scores = q.matmul(repeat(k).swap_dims(2, 3)).mul_scalar((d as f64).powf(-0.5)) + bias;
        softmax(scores, 3).matmul(repeat(v))
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_data().try_into_vec_as::<f32>().unwrap()[0]
    }

    /// Fused (inference) and explicit (autodiff) paths both equal the reference, for plain
    /// and grouped heads, with a causal-and-padding mask.
    #[test]
    fn grouped_attention_matches_repeat_kv() {
        let device = Device::flex();
        for (heads, kv_heads) in [(4, 4), (4, 2), (6, 1)] {
            let (b, t, s, d) = (2, 3, 5, 8);
            let rand = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (rand([b, heads, t, d]), rand([b, kv_heads, s, d]), rand([b, kv_heads, s, d]));
            // Query i reads keys j <= 2 + i; row 1 also masks its first key (left padding).
            let masked: Vec<bool> = (0..b)
                .flat_map(|r| (0..t).flat_map(move |i| (0..s).map(move |j| !(j <= 2 + i && !(r == 1 && j == 0)))))
                .collect();
            let bias: Vec<f32> = masked.iter().map(|&m| if m { -1e9 } else { 0.0 }).collect();
            let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, t, s]), &device);
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(masked, [b, 1, t, s]), &device);
            let want = reference(q.clone(), k.clone(), v.clone(), bias);
            let grouped = group_mask(mask, heads / kv_heads);
            let fused = attention(q.clone(), k.clone(), v.clone(), Some(grouped.clone()));
            assert!(max_diff(fused, want.clone()) < 1e-5, "fused {heads}/{kv_heads}");
            let ad = device.clone().autodiff();
            let on = |x: &Tensor<4>| Tensor::<4>::from_data(x.to_data(), &ad);
            let mask_ad = Tensor::<4, Bool>::from_data(grouped.to_data(), &ad);
            let explicit = attention(on(&q), on(&k), on(&v), Some(mask_ad));
            let explicit = Tensor::<4>::from_data(explicit.into_data(), &device);
            assert!(max_diff(explicit, want) < 1e-5, "explicit {heads}/{kv_heads}");
        }
    }
}
