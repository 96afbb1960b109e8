//! The Qwen2.5-VL vision tower: patch embedding, 2D-rotary window/full attention blocks and
//! the patch merger.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::gelu;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::attention::attention;
use crate::config::VisionConfig;
use crate::error::ModelError;
use crate::layers::{GatedMlp, RmsNorm, linear};
use crate::lora::LoraLinear;
use crate::rope::{apply_rotary, vision_cos_sin};
use crate::vision::window::{inverse_permutation, patch_rows_cols, unit_to_patch_permutation, window_layout};

/// Epsilon of the vision RMSNorms (fixed in Qwen2.5-VL, not in the config).
const VISION_EPS: f64 = 1e-6;
/// Base of the vision rotary frequencies.
const VISION_THETA: f64 = 10_000.0;

/// Pixel patches of one or more images, as the image processor produces them.
#[derive(Debug, Clone)]
pub struct ImageInput {
    /// `[patches, C * T * P * P]` (1176 for Qwen2.5-VL), images back to back.
    pub pixel_values: Tensor<2>,
    /// Per image `(t, h, w)` in patches; `h` and `w` multiples of the merge size.
    pub grid_thw: Vec<[usize; 3]>,
}

impl ImageInput {
    /// Features the vision tower yields for these images (one per merge unit): the number of
    /// `<|image_pad|>` tokens the prompt must hold.
    pub fn num_features(&self, merge: usize) -> usize {
        self.grid_thw.iter().map(|&[t, h, w]| t * (h / merge) * (w / merge)).sum()
    }
}

/// Conv3d with kernel = stride, as one matmul over flattened patches (no bias).
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// `[C*T*P*P] -> [hidden]`; on disk a Conv3d kernel `[hidden, C, T, P, P]`.
    pub proj: Linear,
}

/// Multi-head self-attention with a fused qkv projection; both projections may carry a LoRA
/// adapter.
#[derive(Module, Debug)]
pub struct VisionAttention {
    /// `hidden -> 3 * hidden` (q, k, v stacked), with bias.
    pub qkv: LoraLinear,
    /// `hidden -> hidden`, with bias.
    pub proj: LoraLinear,
    /// Attention heads.
    pub num_heads: usize,
}

/// Pre-norm transformer block.
#[derive(Module, Debug)]
pub struct VisionBlock {
    /// Before attention.
    pub norm1: RmsNorm,
    /// Before the MLP.
    pub norm2: RmsNorm,
    /// Window or full attention.
    pub attn: VisionAttention,
    /// Gated SiLU MLP with biases.
    pub mlp: GatedMlp,
    /// Whether this block attends over whole frames (`fullatt_block_indexes`).
    pub full_attention: bool,
}

/// RMSNorm, then groups of `m²` patches concatenated and projected to the text width.
#[derive(Module, Debug)]
pub struct PatchMerger {
    /// Norm over the vision width.
    pub ln_q: RmsNorm,
    /// `m² * hidden -> m² * hidden` (`merger.mlp.0`).
    pub mlp_0: Linear,
    /// `m² * hidden -> out_hidden` (`merger.mlp.2`).
    pub mlp_2: Linear,
}

/// The whole vision tower.
#[derive(Module, Debug)]
pub struct VisionTower {
    /// Patch embedding.
    pub patch_embed: PatchEmbed,
    /// Transformer blocks.
    pub blocks: Vec<VisionBlock>,
    /// Patch merger.
    pub merger: PatchMerger,
    /// Values per flattened patch.
    pub patch_dim: usize,
    /// Spatial merge size `m`.
    pub spatial_merge_size: usize,
    /// Window side in merge units.
    pub window_merged: usize,
}

/// Intermediate results of the vision tower, for parity tests and inspection.
#[derive(Debug, Clone)]
pub struct VisionStages {
    /// Patch embeddings `[N, hidden]`, processor order.
    pub patch_embeds: Tensor<2>,
    /// Output of the last block `[N, hidden]`, window order.
    pub blocks_out: Tensor<2>,
    /// Merger output `[N / m², out_hidden]`, window order.
    pub merged: Tensor<2>,
    /// Image features `[N / m², out_hidden]`, processor order: what replaces `<|image_pad|>`.
    pub features: Tensor<2>,
}

/// Contiguous segments of a sequence, grouped by length so segments of equal length are
/// attended in one batched matmul. `order` lists the rows group by group; `inverse` puts the
/// concatenated group outputs back in sequence order.
struct SegmentPlan {
    groups: Vec<(usize, usize, Tensor<1, Int>)>,
    inverse: Option<Tensor<1, Int>>,
}

fn index_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

impl SegmentPlan {
    fn new(lengths: &[usize], device: &Device) -> Self {
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut start = 0;
        for &len in lengths.iter().filter(|&&l| l > 0) {
            by_len.entry(len).or_default().push(start);
            start += len;
        }
        // A single segment group already in order needs no gather at all.
        if by_len.len() == 1 {
            let (&len, starts) = by_len.iter().next().expect("one group");
            let rows: Vec<usize> = (0..starts.len() * len).collect();
            return Self { groups: vec![(len, starts.len(), index_tensor(&rows, device))], inverse: None };
        }
        let mut order = Vec::with_capacity(start);
        let mut groups = Vec::with_capacity(by_len.len());
        for (len, starts) in by_len {
            let rows: Vec<usize> = starts.iter().flat_map(|&s| s..s + len).collect();
            groups.push((len, starts.len(), index_tensor(&rows, device)));
            order.extend(rows);
        }
        Self { groups, inverse: Some(index_tensor(&inverse_permutation(&order), device)) }
    }
}

impl VisionAttention {
    /// `x [N, hidden]`, rotary tables `[N, 1, head_dim]` -> `[N, hidden]`; each segment of
    /// `plan` attends only within itself.
    fn forward(&self, x: Tensor<2>, cos: Tensor<3>, sin: Tensor<3>, plan: &SegmentPlan) -> Tensor<2> {
        let [n, hidden] = x.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let dtype = x.dtype();
        let qkv = self.qkv.forward(x).reshape([n, 3, heads, head_dim]);
        let part = |i: usize| qkv.clone().narrow(1, i, 1).reshape([n, heads, head_dim]);
        // Rotary in f32 like transformers, then back to the compute dtype.
        let q = apply_rotary(part(0).cast(DType::F32), cos.clone(), sin.clone()).cast(dtype);
        let k = apply_rotary(part(1).cast(DType::F32), cos, sin).cast(dtype);
        let v = part(2);
        let single = plan.inverse.is_none();
        let outputs: Vec<Tensor<2>> = plan
            .groups
            .iter()
            .map(|(len, count, rows)| {
                let take = |t: &Tensor<3>| {
                    let t = if single { t.clone() } else { t.clone().select(0, rows.clone()) };
                    t.reshape([*count, *len, heads, head_dim]).swap_dims(1, 2)
                };
                attention(take(&q), take(&k), take(&v), None).swap_dims(1, 2).reshape([count * len, hidden])
            })
            .collect();
        let out = match &plan.inverse {
            None => outputs.into_iter().next().expect("one group"),
            Some(inverse) => Tensor::cat(outputs, 0).select(0, inverse.clone()),
        };
        self.proj.forward(out)
    }
}

impl VisionBlock {
    fn forward(&self, x: Tensor<2>, cos: Tensor<3>, sin: Tensor<3>, plan: &SegmentPlan) -> Tensor<2> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), cos, sin, plan);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

impl VisionTower {
    /// A randomly initialised tower.
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let unit = config.spatial_merge_size * config.spatial_merge_size;
        let blocks = (0..config.depth)
            .map(|i| VisionBlock {
                norm1: RmsNorm::new(hidden, VISION_EPS, device),
                norm2: RmsNorm::new(hidden, VISION_EPS, device),
                attn: VisionAttention {
                    qkv: linear(hidden, 3 * hidden, true, device).into(),
                    proj: linear(hidden, hidden, true, device).into(),
                    num_heads: config.num_heads,
                },
                mlp: GatedMlp::new(hidden, config.intermediate_size, true, device),
                full_attention: config.fullatt_block_indexes.contains(&i),
            })
            .collect();
        Self {
            patch_embed: PatchEmbed { proj: linear(config.patch_dim(), hidden, false, device) },
            blocks,
            merger: PatchMerger {
                ln_q: RmsNorm::new(hidden, VISION_EPS, device),
                mlp_0: linear(unit * hidden, unit * hidden, true, device),
                mlp_2: linear(unit * hidden, config.out_hidden_size, true, device),
            },
            patch_dim: config.patch_dim(),
            spatial_merge_size: config.spatial_merge_size,
            window_merged: config.window_merged(),
        }
    }

    /// Checks `images` against the tower: grid sides multiples of the merge size, patch count
    /// and width matching `pixel_values`.
    pub fn check_input(&self, images: &ImageInput) -> Result<(), ModelError> {
        let m = self.spatial_merge_size;
        if images.grid_thw.is_empty() {
            return Err(ModelError::Input("ImageInput has no grid_thw entries".into()));
        }
        for (i, &[t, h, w]) in images.grid_thw.iter().enumerate() {
            if t == 0 || h == 0 || w == 0 || h % m != 0 || w % m != 0 {
                return Err(ModelError::Input(format!(
                    "image {i}: grid {t}x{h}x{w} must be non-empty with h and w multiples of {m}"
                )));
            }
        }
        let patches: usize = images.grid_thw.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let dims = images.pixel_values.dims();
        if dims != [patches, self.patch_dim] {
            return Err(ModelError::Input(format!(
                "pixel_values has shape {dims:?}, the grids imply [{patches}, {}]",
                self.patch_dim
            )));
        }
        Ok(())
    }

    /// `pixel_values [N, patch_dim]` -> image features `[N / m², out_hidden]`.
    pub fn forward(&self, images: &ImageInput) -> Result<Tensor<2>, ModelError> {
        Ok(self.forward_stages(images)?.features)
    }

    /// Like [`forward`](Self::forward), keeping the intermediate stages.
    pub fn forward_stages(&self, images: &ImageInput) -> Result<VisionStages, ModelError> {
        self.check_input(images)?;
        let device = images.pixel_values.device();
        let grids = &images.grid_thw;
        let unit = self.spatial_merge_size * self.spatial_merge_size;
        let layout = window_layout(grids, self.spatial_merge_size, self.window_merged);
        let perm = unit_to_patch_permutation(&layout.window_index, unit);

        // Pixels arrive in f32 from the processor; the projection runs in the weights' dtype.
        let dtype = self.patch_embed.proj.weight.val().dtype();
        let patch_embeds = self.patch_embed.proj.forward(images.pixel_values.clone().cast(dtype));
        let mut x = patch_embeds.clone().select(0, index_tensor(&perm, &device));

        let rows_cols = patch_rows_cols(grids, self.spatial_merge_size);
        let permuted: Vec<[usize; 2]> = perm.iter().map(|&p| rows_cols[p]).collect();
        let head_dim = self.blocks.first().map_or(0, |b| x.dims()[1] / b.attn.num_heads);
        let (cos, sin) = vision_cos_sin(&permuted, head_dim, VISION_THETA, &device);
        let (cos, sin) = (cos.unsqueeze_dim::<3>(1), sin.unsqueeze_dim::<3>(1));

        let window_plan = SegmentPlan::new(&layout.window_lengths, &device);
        let frame_plan = SegmentPlan::new(&layout.frame_lengths, &device);
        for block in &self.blocks {
            let plan = if block.full_attention { &frame_plan } else { &window_plan };
            x = block.forward(x, cos.clone(), sin.clone(), plan);
        }
        let blocks_out = x.clone();
        let [n, hidden] = x.dims();
        let normed = self.merger.ln_q.forward(x).reshape([n / unit, unit * hidden]);
        let merged = self.merger.mlp_2.forward(gelu(self.merger.mlp_0.forward(normed)));
        let restore = index_tensor(&inverse_permutation(&layout.window_index), &device);
        let features = merged.clone().select(0, restore);
        Ok(VisionStages { patch_embeds, blocks_out, merged, features })
    }
}
