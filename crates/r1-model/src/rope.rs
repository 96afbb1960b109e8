//! Rotary position embeddings in the rotate-half convention of transformers (the two halves of
//! the head dim are rotated together, NOT interleaved pairs as in burn's `RotaryEncoding`).
//!
//! - Decoder (M-RoPE): each token has three positions (t, h, w). The `head_dim / 2` frequency
//!   slots are split contiguously by `mrope_section`; slot `j` in chunk `i` is rotated by
//!   position row `i`. Angles are duplicated over the two halves of the head dim.
//! - Vision tower (2D): the first `head_dim / 4` slots use the patch row, the next the column.
//!
//! Tables are computed on the host (they are small: tokens x head_dim) in the same f32
//! arithmetic as transformers, then uploaded once per forward.

use burn::tensor::{Device, Tensor, TensorData};

/// `1 / theta^(2k / dim)` for `k in 0..dim/2`, rounded through f32 as transformers does.
pub fn inv_freq(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim / 2)
        .map(|k| {
            let exponent = (2 * k) as f32 / dim as f32;
            1.0f32 / (theta.powf(f64::from(exponent)) as f32)
        })
        .collect()
}

/// Index of the position row (0 = t, 1 = h, 2 = w) that rotates each of the `head_dim / 2`
/// frequency slots: `section[0]` slots of t, then `section[1]` of h, then `section[2]` of w.
pub fn mrope_rows(section: [usize; 3]) -> Vec<usize> {
    section.iter().enumerate().flat_map(|(row, &n)| std::iter::repeat_n(row, n)).collect()
}

/// Cos/sin tables from per-token angles: `angles` is `[n, half]` row-major; the result is two
/// `[n, 2 * half]` tensors with each row's angles duplicated (`cat(a, a)`).
fn cos_sin_tables(angles: &[f32], n: usize, half: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let mut cos = Vec::with_capacity(2 * angles.len());
    let mut sin = Vec::with_capacity(2 * angles.len());
    for row in angles.chunks(half.max(1)).take(n) {
        for _ in 0..2 {
            cos.extend(row.iter().map(|&a| f64::from(a).cos() as f32));
            sin.extend(row.iter().map(|&a| f64::from(a).sin() as f32));
        }
    }
    let shape = [n, 2 * half];
    (Tensor::from_data(TensorData::new(cos, shape), device), Tensor::from_data(TensorData::new(sin, shape), device))
}

/// M-RoPE tables for the decoder.
///
/// `positions` holds the three position rows back to back, `[3, n]` row-major (n tokens in any
/// flattening, e.g. `B * T`). Returns `(cos, sin)`, each `[n, head_dim]`:
/// `angle[i, j] = positions[row(j), i] * inv_freq[j]` with `row` from [`mrope_rows`].
pub fn mrope_cos_sin(
    positions: &[i64],
    n: usize,
    head_dim: usize,
    theta: f64,
    section: [usize; 3],
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let freqs = inv_freq(head_dim, theta);
    let rows = mrope_rows(section);
    debug_assert_eq!(rows.len(), freqs.len(), "config validation guarantees 2 * sum(section) == head_dim");
    debug_assert_eq!(positions.len(), 3 * n);
    let mut angles = Vec::with_capacity(n * freqs.len());
    for i in 0..n {
        angles.extend(rows.iter().zip(&freqs).map(|(&row, &f)| positions[row * n + i] as f32 * f));
    }
    cos_sin_tables(&angles, n, freqs.len(), device)
}

/// 2D rotary tables for the vision tower: `rows_cols[i] = (row, col)` of patch `i` in its
/// frame. Returns `(cos, sin)`, each `[n, head_dim]`: the angles are
/// `cat(row * f, col * f)` with `f = inv_freq(head_dim / 2, theta)`, duplicated.
pub fn vision_cos_sin(
    rows_cols: &[[usize; 2]],
    head_dim: usize,
    theta: f64,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let freqs = inv_freq(head_dim / 2, theta);
    let mut angles = Vec::with_capacity(rows_cols.len() * 2 * freqs.len());
    for &[row, col] in rows_cols {
        angles.extend(freqs.iter().map(|&f| row as f32 * f));
        angles.extend(freqs.iter().map(|&f| col as f32 * f));
    }
    cos_sin_tables(&angles, rows_cols.len(), 2 * freqs.len(), device)
}

/// `cat(-x2, x1)` where `x1`, `x2` are the halves of the last dim.
fn rotate_half<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let d = x.dims()[D - 1];
    let first = x.clone().narrow(D - 1, 0, d / 2);
    let second = x.narrow(D - 1, d / 2, d - d / 2);
    Tensor::cat(vec![second.neg(), first], D - 1)
}

/// `x * cos + rotate_half(x) * sin`; `cos` and `sin` broadcast against `x` (same last dim).
pub fn apply_rotary<const D: usize>(x: Tensor<D>, cos: Tensor<D>, sin: Tensor<D>) -> Tensor<D> {
    x.clone() * cos + rotate_half(x) * sin
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inv_freq_starts_at_one_and_decreases() {
        let f = inv_freq(8, 10_000.0);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], 1.0);
        assert!(f.windows(2).all(|w| w[1] < w[0]));
        assert!((f[1] - 0.1).abs() < 1e-7, "10000^(-2/8) = 0.1, got {}", f[1]);
    }

    #[test]
    fn rotation_of_the_halves() {
        let device = Device::flex();
        // x = [1, 2 | 3, 4], angle 90 degrees on every slot: x*0 + (-3, -4, 1, 2)*1.
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4]), &device);
        let cos = Tensor::<2>::zeros([1, 4], &device);
        let sin = Tensor::<2>::ones([1, 4], &device);
        let y = apply_rotary(x, cos, sin).into_data().try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![-3.0, -4.0, 1.0, 2.0]);
    }

    proptest! {
        #[test]
        fn mrope_rows_follow_the_sections(a in 0usize..6, b in 0usize..6, c in 0usize..6) {
            let rows = mrope_rows([a, b, c]);
            prop_assert_eq!(rows.len(), a + b + c);
            prop_assert!(rows.windows(2).all(|w| w[0] <= w[1]));
            prop_assert_eq!(rows.iter().filter(|&&r| r == 1).count(), b);
        }

        /// With equal t, h, w positions M-RoPE is the plain 1D RoPE of Qwen2.
        #[test]
        fn equal_rows_give_plain_rope(p in 0i64..5000) {
            let device = Device::flex();
            let (cos, _) = mrope_cos_sin(&[p, p, p], 1, 8, 10_000.0, [1, 2, 1], &device);
            let cos = cos.into_data().try_into_vec_as::<f32>().unwrap();
            let f = inv_freq(8, 10_000.0);
            for (j, &fj) in f.iter().enumerate() {
                let want = f64::from(p as f32 * fj).cos() as f32;
                prop_assert_eq!(cos[j], want);
                prop_assert_eq!(cos[j + 4], want);
            }
        }

        /// Rotation preserves the norm of every (x1_j, x2_j) pair.
        #[test]
        fn rotation_preserves_norm(v in proptest::collection::vec(-10.0f32..10.0, 8), pos in 0usize..50) {
            let device = Device::flex();
            let (cos, sin) = vision_cos_sin(&[[pos, pos + 1]], 8, 10_000.0, &device);
            let x = Tensor::<2>::from_data(TensorData::new(v.clone(), [1, 8]), &device);
            let y = apply_rotary(x, cos, sin).into_data().try_into_vec_as::<f32>().unwrap();
            let norm = |z: &[f32]| z.iter().map(|a| a * a).sum::<f32>();
            prop_assert!((norm(&y) - norm(&v)).abs() <= 1e-3 * (1.0 + norm(&v)));
        }
    }
}
