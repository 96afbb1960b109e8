//! What the test files of r1-model share: the fixture folders and a reader of the fixtures'
//! safetensors arrays.

#![allow(dead_code)] // each test file uses its own part

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

/// The fixture folder `tests/fixtures/<case>`.
pub fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case)
}

/// A safetensors file read to host arrays.
pub struct Arrays(HashMap<String, (Vec<usize>, Vec<f64>)>);

impl Arrays {
    pub fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut map = HashMap::new();
        for (name, view) in st.tensors() {
            let d = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => d.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect(),
                Dtype::I64 => d.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            map.insert(name, (view.shape().to_vec(), values));
        }
        Self(map)
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.0.get(name).unwrap_or_else(|| panic!("fixture array {name} missing"))
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.get(name).1.iter().map(|&v| v as f32).collect()
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).1.iter().map(|&v| v as i64).collect()
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.get(name).0.clone()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Max |diff| over the rows (of width `width`) whose token is not padding.
pub fn masked_diff(a: &[f32], b: &[f32], mask: &[i64], width: usize) -> f32 {
    mask.iter()
        .enumerate()
        .filter(|&(_, &m)| m == 1)
        .map(|(i, _)| max_abs_diff(&a[i * width..(i + 1) * width], &b[i * width..(i + 1) * width]))
        .fold(0.0, f32::max)
}

/// Mean |diff| over the rows (of width `width`) whose token is not padding.
pub fn masked_mean_diff(a: &[f32], b: &[f32], mask: &[i64], width: usize) -> f64 {
    let rows: Vec<usize> = mask.iter().enumerate().filter(|&(_, &m)| m == 1).map(|(i, _)| i).collect();
    let sum: f64 = rows
        .iter()
        .flat_map(|&i| a[i * width..(i + 1) * width].iter().zip(&b[i * width..(i + 1) * width]))
        .map(|(x, y)| (x - y).abs() as f64)
        .sum();
    sum / (rows.len() * width).max(1) as f64
}
