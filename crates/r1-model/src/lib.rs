//! Qwen2.5-VL on burn: config, vision tower, decoder with M-RoPE and KV cache, and Hugging
//! Face checkpoint loading and saving. One code path for every backend: the burn `Device`
//! decides (flex on CPU, cuda, wgpu).

pub mod chat;
pub mod config;
pub mod device;
pub mod error;
pub mod layers;
pub mod model;
pub mod position_ids;
pub mod processor;
pub mod rope;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use config::{Qwen2_5VlConfig, TextConfig, VisionConfig};
pub use device::{DeviceKind, parse_device};
pub use error::ModelError;
pub use model::Qwen2_5VlModel;
pub use text::KvCache;
pub use vision::ImageInput;
pub use weights::{load_model, save_model};
