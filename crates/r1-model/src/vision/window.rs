//! The token layout of the vision tower, computed on the host from the image grids.
//!
//! Patches arrive in the processor's order: per frame, merge units of `m x m` patches in
//! row-major order of the merged grid, the `m²` patches of a unit consecutive. Window attention
//! regroups merge units window by window (windows of `wm x wm` merge units, row-major over the
//! frame, edge windows cut short); full-attention blocks attend over each whole frame.

/// Per patch, in the processor's order: `(row, col)` of the patch in its frame, the
/// positions of the vision 2D rotary embedding.
pub fn patch_rows_cols(grids: &[[usize; 3]], merge: usize) -> Vec<[usize; 2]> {
    let mut out = Vec::with_capacity(grids.iter().map(|g| g[0] * g[1] * g[2]).sum());
    for &[t, h, w] in grids {
        for _ in 0..t {
            for hb in 0..h / merge {
                for wb in 0..w / merge {
                    for hs in 0..merge {
                        for ws in 0..merge {
                            out.push([hb * merge + hs, wb * merge + ws]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// The window permutation of all images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLayout {
    /// `window_index[k]` is the merge unit (global index over all images, processor order)
    /// placed at slot `k` of the window order.
    pub window_index: Vec<usize>,
    /// Lengths in patches of the non-empty windows, in window order.
    pub window_lengths: Vec<usize>,
    /// Lengths in patches of the frames (full-attention segments), in order.
    pub frame_lengths: Vec<usize>,
}

/// Computes the window order for `grids` (`(t, h, w)` in patches), with merge size `merge`
/// and windows of `window` x `window` merge units.
pub fn window_layout(grids: &[[usize; 3]], merge: usize, window: usize) -> WindowLayout {
    let unit = merge * merge;
    let mut window_index = Vec::new();
    let mut window_lengths = Vec::new();
    let mut frame_lengths = Vec::new();
    let mut offset = 0;
    for &[t, h, w] in grids {
        let (gh, gw) = (h / merge, w / merge);
        for frame in 0..t {
            frame_lengths.push(h * w);
            let base = offset + frame * gh * gw;
            for wr in 0..gh.div_ceil(window) {
                for wc in 0..gw.div_ceil(window) {
                    let rows = wr * window..((wr + 1) * window).min(gh);
                    let cols = wc * window..((wc + 1) * window).min(gw);
                    let before = window_index.len();
                    for r in rows {
                        window_index.extend(cols.clone().map(|c| base + r * gw + c));
                    }
                    window_lengths.push((window_index.len() - before) * unit);
                }
            }
        }
        offset += t * gh * gw;
    }
    WindowLayout { window_index, window_lengths, frame_lengths }
}

/// Expands a permutation of merge units to a permutation of patches: unit `u` covers patches
/// `u*unit .. u*unit + unit`.
pub fn unit_to_patch_permutation(units: &[usize], unit: usize) -> Vec<usize> {
    units.iter().flat_map(|&u| (0..unit).map(move |i| u * unit + i)).collect()
}

/// The inverse permutation: `inverse[perm[k]] = k`.
pub fn inverse_permutation(perm: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; perm.len()];
    for (k, &p) in perm.iter().enumerate() {
        inverse[p] = k;
    }
    inverse
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_by_two_windows_of_a_6x5_merged_grid() {
        // 12x10 patches -> 6x5 merged units; windows of 4: rows [0..4, 4..6], cols [0..4, 4..5].
        let l = window_layout(&[[1, 12, 10]], 2, 4);
        assert_eq!(l.window_lengths, vec![16 * 4, 4 * 4, 8 * 4, 2 * 4]);
        assert_eq!(&l.window_index[0..5], &[0, 1, 2, 3, 5]);
        assert_eq!(&l.window_index[16..20], &[4, 9, 14, 19]);
        assert_eq!(l.frame_lengths, vec![120]);
    }

    #[test]
    fn rows_cols_follow_merge_units() {
        let rc = patch_rows_cols(&[[1, 2, 4]], 2);
        assert_eq!(rc, vec![[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3]]);
    }

    proptest! {
        /// The window order is a permutation of all merge units, window lengths add up to the
        /// patches, and the inverse undoes it.
        #[test]
        fn window_index_is_a_permutation(
            grids in proptest::collection::vec((1usize..3, 1usize..9, 1usize..9), 1..4),
            window in 1usize..5,
        ) {
            let grids: Vec<[usize; 3]> = grids.into_iter().map(|(t, h, w)| [t, 2 * h, 2 * w]).collect();
            let l = window_layout(&grids, 2, window);
            let units: usize = grids.iter().map(|g| g[0] * g[1] * g[2] / 4).sum();
            let mut sorted = l.window_index.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..units).collect::<Vec<_>>());
            prop_assert_eq!(l.window_lengths.iter().sum::<usize>(), 4 * units);
            prop_assert_eq!(l.frame_lengths.iter().sum::<usize>(), 4 * units);
            prop_assert!(l.window_lengths.iter().all(|&n| n > 0 && n <= 4 * window * window));
            let perm = unit_to_patch_permutation(&l.window_index, 4);
            let inv = inverse_permutation(&perm);
            prop_assert!(inv.iter().enumerate().all(|(i, &k)| perm[k] == i));
        }
    }
}
