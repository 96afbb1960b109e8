//! The wgpu path gives flex's outputs. On CI it runs on the CPU through Mesa lavapipe
//! (`mesa-vulkan-drivers`, installed by `.ci/run`); elsewhere it needs any Vulkan, Metal or DX12
//! adapter. One model code path serves both backends, so this is a smoke test of the backend,
//! not of the model (the parity suite checks the model on flex).

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use r1_model::{ImageInput, KvCache, Qwen2_5VlConfig, Qwen2_5VlModel, load_model};

/// A prompt of text tokens around one image of 4x4 patches (4 merged features), with a
/// left-padded second row, as `(ids, mask, images)`.
fn inputs(image_token: i64, patch_dim: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, ImageInput) {
    let (b, t) = (2, 12);
    let row = |pad: usize| -> Vec<i64> {
        let text = [5, 17, 42, image_token, image_token, image_token, image_token, 7, 99, 150, 3, 12];
        std::iter::repeat_n(0, pad).chain(text[pad..].iter().copied()).collect()
    };
    // The second row's first two tokens are padding, so it carries no image: one image in all.
    let ids: Vec<i64> = [row(0), [vec![0, 0], vec![5, 17, 42, 8, 9, 10, 11, 7, 99, 150]].concat()].concat();
    let mask: Vec<i64> = [vec![1; t], [vec![0, 0], vec![1; t - 2]].concat()].concat();
    let pixels: Vec<f32> = (0..16 * patch_dim).map(|i| ((i as f32) * 0.37).sin()).collect();
    let images = ImageInput {
        pixel_values: Tensor::from_data(TensorData::new(pixels, [16, patch_dim]), device),
        grid_thw: vec![[1, 4, 4]],
    };
    (
        Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device),
        Tensor::<2, Int>::from_data(TensorData::new(mask, [b, t]), device),
        images,
    )
}

/// Logits of the whole prompt, then of three tokens decoded one at a time through a cache
/// with room reserved for them (written in place), all flattened.
fn forward(model: &Qwen2_5VlModel, config: &Qwen2_5VlConfig, device: &Device) -> Vec<f32> {
    let (ids, mask, images) = inputs(i64::from(config.image_token_id), config.vision.patch_dim(), device);
    let mut cache = KvCache::with_reserve(3);
    let mut out = model
        .forward(ids, mask, Some(&images), Some(&mut cache))
        .unwrap()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    for token in [11, 23, 5] {
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![token; 2], [2, 1]), device);
        let logits = model.forward(ids, Tensor::ones([2, 1], device), None, Some(&mut cache)).unwrap();
        out.extend(logits.into_data().try_into_vec_as::<f32>().unwrap());
    }
    out
}

/// Plain and grouped-query attention (the fused kernel's inference path on each backend).
#[test]
fn wgpu_logits_equal_flex_logits() {
    for fixture in ["gqa1_tied", "gqa2_untied_windows"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
        let flex = Device::flex();
        let wgpu = r1_model::parse_device("wgpu").unwrap();
        let (config, on_flex) = load_model(&dir, &flex).unwrap();
        let (_, on_wgpu) = load_model(&dir, &wgpu).unwrap();
        let a = forward(&on_flex, &config, &flex);
        let b = forward(&on_wgpu, &config, &wgpu);
        assert_eq!(a.len(), b.len());
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-3, "{fixture}: max |wgpu - flex| = {diff}");
        assert!(a.iter().all(|v| v.is_finite()));
    }
}
