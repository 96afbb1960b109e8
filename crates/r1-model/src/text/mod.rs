//! The language model of Qwen2.5-VL.

pub mod cache;
pub mod decoder;

pub use cache::{KvCache, LayerKv};
pub use decoder::TextModel;
