//! Multimodal rotary position ids (`get_rope_index` of transformers' Qwen2.5-VL).
//!
//! Within a row, only tokens with `attention_mask = 1` are counted. Text tokens get
//! `[p, p, p]` with `p` incrementing. An image of grid `(t, h, w)` patches occupies
//! `t * (h/m) * (w/m)` consecutive `<|image_pad|>` tokens (`m` the spatial merge size); token
//! `(ti, hi, wi)` of the merged grid gets `[s, s + hi, s + wi]` where `s` is the next position
//! at the start of the run (still images have no time offset in 2.5-VL: transformers scales
//! the frame index by `second_per_grid_t = 0`). After the run, text resumes at
//! `s + max(h/m, w/m)`, one past the largest position used. Padded tokens get `[1, 1, 1]`.
//!
//! For decoding, `delta = max_position + 1 - T` (T the padded row length): the token appended
//! at cache length `L` gets position `L + delta` on all three rows.

use crate::error::ModelError;

/// Positions of a batch, as [`rope_index`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopeIndex {
    /// `[3, B, T]` row-major: row 0 temporal, 1 height, 2 width.
    pub positions: Vec<i64>,
    /// `[B]`: `max_position + 1 - T` per row.
    pub deltas: Vec<i64>,
}

/// Computes the three position rows of a `[batch, seq]` batch.
///
/// `input_ids` and `attention_mask` are `[batch, seq]` row-major. Images are taken from
/// `grids` in order, across rows (row 0's images first). Errors when a run of image tokens is
/// shorter than its grid implies, or when the prompt has more image runs than `grids`.
pub fn rope_index(
    input_ids: &[u32],
    attention_mask: &[bool],
    batch: usize,
    seq: usize,
    grids: &[[usize; 3]],
    merge: usize,
    image_token_id: u32,
) -> Result<RopeIndex, ModelError> {
    if input_ids.len() != batch * seq || attention_mask.len() != batch * seq {
        return Err(ModelError::Input(format!(
            "input_ids ({}) and attention_mask ({}) must both hold batch * seq = {} values",
            input_ids.len(),
            attention_mask.len(),
            batch * seq
        )));
    }
    let mut positions = vec![1i64; 3 * batch * seq];
    let mut deltas = Vec::with_capacity(batch);
    let mut next_grid = grids.iter();
    for b in 0..batch {
        let row = b * seq..(b + 1) * seq;
        // Indices (within the row) of the tokens that count.
        let kept: Vec<usize> = (0..seq).filter(|&i| attention_mask[row.start + i]).collect();
        let tokens: Vec<u32> = kept.iter().map(|&i| input_ids[row.start + i]).collect();
        let mut row_pos: Vec<[i64; 3]> = Vec::with_capacity(tokens.len());
        let mut next: i64 = 0;
        let mut i = 0;
        while i < tokens.len() {
            if tokens[i] != image_token_id {
                row_pos.push([next; 3]);
                next += 1;
                i += 1;
                continue;
            }
            let &[t, h, w] = next_grid.next().ok_or_else(|| {
                ModelError::Input(format!(
                    "row {b}: an image-token run at token {} has no image left to fill it",
                    kept[i]
                ))
            })?;
            let (gh, gw) = (h / merge, w / merge);
            let run = t * gh * gw;
            let end = i + run;
            if end > tokens.len() || tokens[i..end].iter().any(|&x| x != image_token_id) {
                return Err(ModelError::Input(format!(
                    "row {b}: the image of grid {t}x{h}x{w} needs {run} consecutive image tokens from token {}",
                    kept[i]
                )));
            }
            for _ in 0..t {
                for hi in 0..gh {
                    for wi in 0..gw {
                        row_pos.push([next, next + hi as i64, next + wi as i64]);
                    }
                }
            }
            next += gh.max(gw) as i64;
            i = end;
        }
        for (&col, p) in kept.iter().zip(&row_pos) {
            for (r, &v) in p.iter().enumerate() {
                positions[(r * batch + b) * seq + col] = v;
            }
        }
        let max = row_pos.iter().flatten().copied().max().unwrap_or(-1);
        deltas.push(max + 1 - seq as i64);
    }
    Ok(RopeIndex { positions, deltas })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IMG: u32 = 9;

    #[test]
    fn text_then_image_then_text() {
        // 2 text, an image of 1x4x6 patches -> 2x3 merged tokens, 2 text.
        let ids = [1, 2, IMG, IMG, IMG, IMG, IMG, IMG, 3, 4];
        let mask = [true; 10];
        let r = rope_index(&ids, &mask, 1, 10, &[[1, 4, 6]], 2, IMG).unwrap();
        let t = &r.positions[0..10];
        let h = &r.positions[10..20];
        let w = &r.positions[20..30];
        assert_eq!(t, &[0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(h, &[0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(w, &[0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
        assert_eq!(r.deltas, vec![7 - 10]);
    }

    #[test]
    fn left_padding_counts_only_real_tokens() {
        let ids = [0, 0, 5, 6, 3, 4, 5, 6];
        let mask = [false, false, true, true, true, true, true, true];
        let r = rope_index(&ids, &mask, 2, 4, &[], 2, IMG).unwrap();
        assert_eq!(&r.positions[0..8], &[1, 1, 0, 1, 0, 1, 2, 3]);
        assert_eq!(r.deltas, vec![-2, 0]);
    }

    #[test]
    fn short_image_run_is_an_error() {
        let ids = [1, IMG, IMG, 2];
        let err = rope_index(&ids, &[true; 4], 1, 4, &[[1, 4, 4]], 2, IMG).unwrap_err();
        assert!(err.to_string().contains("4 consecutive image tokens"), "{err}");
        let err = rope_index(&ids, &[true; 4], 1, 4, &[], 2, IMG).unwrap_err();
        assert!(err.to_string().contains("no image left"), "{err}");
    }

    proptest! {
        /// Text-only rows: positions are the running count of real tokens, like
        /// `cumsum(mask) - 1`, identical on the three rows, and the next token after the
        /// row lands at `T + delta = count`.
        #[test]
        fn text_only_matches_cumsum(mask in proptest::collection::vec(any::<bool>(), 1..20)) {
            let seq = mask.len();
            let ids = vec![3u32; seq];
            let r = rope_index(&ids, &mask, 1, seq, &[], 2, IMG).unwrap();
            let mut count = 0i64;
            for (i, &m) in mask.iter().enumerate() {
                let want = if m { count += 1; count - 1 } else { 1 };
                for row in 0..3 {
                    prop_assert_eq!(r.positions[row * seq + i], want);
                }
            }
            if count > 0 {
                prop_assert_eq!(seq as i64 + r.deltas[0], count);
            }
        }

        /// With an image anywhere, positions never decrease along the t row and the text after
        /// the image starts one past the largest image position.
        #[test]
        fn image_runs_are_monotone(pre in 0usize..5, post in 1usize..5, gh in 1usize..4, gw in 1usize..4) {
            let run = gh * gw;
            let mut ids = vec![1u32; pre];
            ids.extend(std::iter::repeat_n(IMG, run));
            ids.extend(std::iter::repeat_n(2u32, post));
            let seq = ids.len();
            let r = rope_index(&ids, &vec![true; seq], 1, seq, &[[1, 2 * gh, 2 * gw]], 2, IMG).unwrap();
            let t = &r.positions[0..seq];
            prop_assert!(t.windows(2).all(|w| w[0] <= w[1]));
            let image_max = (0..3).map(|row| r.positions[row * seq + pre + run - 1]).max().unwrap();
            prop_assert_eq!(t[pre + run], image_max + 1);
            prop_assert_eq!(t[pre + run], (pre + gh.max(gw)) as i64);
        }
    }
}
