//! Qwen2.5-VL on burn: config, vision tower, decoder with M-RoPE and KV cache, and Hugging
//! Face checkpoint loading and saving. One code path for every backend: the burn `Device`
//! decides (flex on CPU, cuda, wgpu).

pub mod attention;
pub mod batch;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod flops;
pub mod generate;
pub mod layers;
pub mod lora;
pub mod model;
pub mod position_ids;
pub mod precision;
pub mod processor;
pub mod rope;
pub mod score;
pub mod text;
pub mod tiny;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use checkpoint::{Assets, Prompt};
pub use config::{Qwen2_5VlConfig, TextConfig, VisionConfig};
pub use device::{DeviceKind, parse_device};
pub use error::ModelError;
pub use generate::{Generation, SamplingConfig, generate};
pub use model::Qwen2_5VlModel;
pub use precision::Precision;
pub use score::completion_logprobs;
pub use text::KvCache;
pub use vision::ImageInput;
pub use weights::{load_model, save_model};
