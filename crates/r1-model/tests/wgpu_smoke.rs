//! The wgpu path gives flex's outputs. On CI it runs on the CPU through Mesa lavapipe
//! (`mesa-vulkan-drivers`, installed by `.ci/run`); elsewhere it needs any Vulkan, Metal or DX12
//! adapter. One model code path serves both backends, so this is a smoke test of the backend,
//! not of the model (the parity suite checks the model on flex).

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use r1_model::{ImageInput, Qwen2_5VlModel, load_model};

/// A prompt of text tokens around one 56x56 image (4x4 patches, 4 merged features), with a
/// left-padded second row.
fn forward(model: &Qwen2_5VlModel, image_token: i64, device: &Device) -> Vec<f32> {
    let (b, t) = (2, 12);
    let row = |pad: usize| -> Vec<i64> {
        let text = [5, 17, 42, image_token, image_token, image_token, image_token, 7, 99, 150, 3, 12];
        std::iter::repeat_n(0, pad).chain(text[pad..].iter().copied()).collect()
    };
    // The second row's first two tokens are padding, so it carries no image: one image in all.
    let ids: Vec<i64> = [row(0), [vec![0, 0], vec![5, 17, 42, 8, 9, 10, 11, 7, 99, 150]].concat()].concat();
    let mask: Vec<i64> = [vec![1; t], [vec![0, 0], vec![1; t - 2]].concat()].concat();
    let patch_dim = 3 * 2 * 14 * 14;
    let pixels: Vec<f32> = (0..16 * patch_dim).map(|i| ((i as f32) * 0.37).sin()).collect();
    let images = ImageInput {
        pixel_values: Tensor::from_data(TensorData::new(pixels, [16, patch_dim]), device),
        grid_thw: vec![[1, 4, 4]],
    };
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [b, t]), device);
    model.forward(ids, mask, Some(&images), None).unwrap().into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn wgpu_logits_equal_flex_logits() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gqa1_tied");
    let flex = Device::flex();
    let wgpu = r1_model::parse_device("wgpu").unwrap();
    let (config, on_flex) = load_model(&dir, &flex).unwrap();
    let (_, on_wgpu) = load_model(&dir, &wgpu).unwrap();
    let image_token = i64::from(config.image_token_id);
    let a = forward(&on_flex, image_token, &flex);
    let b = forward(&on_wgpu, image_token, &wgpu);
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "max |wgpu - flex| = {diff}");
    assert!(a.iter().all(|v| v.is_finite()));
}
