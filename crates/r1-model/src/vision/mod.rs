//! The vision tower of Qwen2.5-VL.

pub mod tower;
pub mod window;

pub use tower::{ImageInput, VisionStages, VisionTower};
