//! Packing prompts (and continuations) of different lengths into one batch, and grouping
//! prompts into batches that need no padding.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::checkpoint::Prompt;
use crate::processor::ImageProcessor;
use crate::vision::ImageInput;

/// A packed batch: row `i` is prompt `i` left-padded to the longest prompt `P`, followed by
/// continuation `i` right-padded to the longest continuation `T`.
pub struct Packed {
    /// `[B, P + T]`.
    pub ids: Tensor<2, Int>,
    /// `[B, P + T]`, 1 on real tokens, 0 on padding.
    pub mask: Tensor<2, Int>,
    /// The images of every row, in row and prompt order; `None` when there are none.
    pub images: Option<ImageInput>,
    /// Prompt width `P`: continuation token `j` of every row sits at column `P + j`.
    pub prompt_width: usize,
}

/// Packs `prompts[i]` followed by `continuations[i]` (same length as `prompts`, possibly all
/// empty) with `pad` in the padding slots.
pub fn pack(
    prompts: &[&Prompt],
    continuations: &[&[u32]],
    pad: u32,
    processor: &ImageProcessor,
    device: &Device,
) -> Packed {
    debug_assert_eq!(prompts.len(), continuations.len());
    let b = prompts.len();
    let p = prompts.iter().map(|x| x.ids.len()).max().unwrap_or(0);
    let t = continuations.iter().map(|c| c.len()).max().unwrap_or(0);
    let width = p + t;
    let mut ids = Vec::with_capacity(b * width);
    let mut mask = Vec::with_capacity(b * width);
    for (prompt, continuation) in prompts.iter().zip(continuations) {
        let left = p - prompt.ids.len();
        let right = t - continuation.len();
        ids.extend(std::iter::repeat_n(pad as i64, left));
        ids.extend(prompt.ids.iter().chain(continuation.iter()).map(|&id| id as i64));
        ids.extend(std::iter::repeat_n(pad as i64, right));
        mask.extend(std::iter::repeat_n(0i64, left));
        mask.extend(std::iter::repeat_n(1i64, prompt.ids.len() + continuation.len()));
        mask.extend(std::iter::repeat_n(0i64, right));
    }
    let images: Vec<_> = prompts.iter().flat_map(|x| x.images.iter().cloned()).collect();
    Packed {
        ids: Tensor::from_data(TensorData::new(ids, [b, width]), device),
        mask: Tensor::from_data(TensorData::new(mask, [b, width]), device),
        images: (!images.is_empty()).then(|| processor.to_input(&images, device)),
        prompt_width: p,
    }
}

/// Indices into `lengths` grouped by length, shortest first: the prompts that can share a
/// prefill batch without padding. A padded position costs a real one's compute, and on flex a
/// batch is no faster per token than one prompt at a time, so prompts of different lengths
/// are not batched together (`cargo xtask bench --only generation` measures both).
pub fn same_length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &len) in lengths.iter().enumerate() {
        groups.entry(len).or_default().push(i);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A partition of the indices into groups of one length each, one group per length.
        #[test]
        fn groups_partition_by_length(lengths in proptest::collection::vec(1usize..20, 0..40)) {
            let groups = same_length_groups(&lengths);
            let mut seen: Vec<usize> = groups.concat();
            seen.sort();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            let firsts: Vec<usize> = groups.iter().map(|g| lengths[g[0]]).collect();
            prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]));
            for g in &groups {
                prop_assert!(g.iter().all(|&i| lengths[i] == lengths[g[0]]));
            }
        }
    }
}
