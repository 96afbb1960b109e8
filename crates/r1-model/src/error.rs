//! The error type of r1-model. Every variant that concerns a file names it, and every variant
//! that concerns a tensor names the tensor, so a user can fix a checkpoint from the message.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while reading a checkpoint, selecting a device or running the
/// model on user input.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A JSON file could not be parsed.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },

    /// A `config.json` is readable JSON but does not describe a usable Qwen2.5-VL model.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file concerned (`<memory>` when parsed from a string).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The checkpoint is of another architecture than Qwen2.5-VL.
    #[error(
        "{}: unsupported architecture {found:?} (expected Qwen2_5_VLForConditionalGeneration / model_type \"qwen2_5_vl\")",
        path.display()
    )]
    UnsupportedArchitecture {
        /// The file concerned.
        path: PathBuf,
        /// The `architectures` / `model_type` value found.
        found: String,
    },

    /// A device name that is not `flex`, `cuda` or `wgpu`, or a backend not compiled in.
    #[error("device {name:?}: {message}")]
    Device {
        /// The device name given.
        name: String,
        /// Why it cannot be used.
        message: String,
    },

    /// A safetensors file is corrupt or holds a tensor in an unsupported dtype.
    #[error("{}: {message}", path.display())]
    Safetensors {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A LoRA adapter folder or setting r1 cannot use.
    #[error("{}: LoRA: {message}", path.display())]
    Lora {
        /// The adapter file or folder (`<config>` for settings).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// Tensors the model needs are absent from the checkpoint.
    #[error("{}: missing tensors: {}", dir.display(), names.join(", "))]
    MissingTensors {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The missing tensors' names (in the checkpoint's key layout).
        names: Vec<String>,
    },

    /// The checkpoint holds tensors the model does not have.
    #[error("{}: unexpected tensors: {}", dir.display(), names.join(", "))]
    UnexpectedTensors {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The unexpected tensors' names.
        names: Vec<String>,
    },

    /// A tensor's shape on disk differs from the shape the config implies.
    #[error("{}: tensor {name} has shape {found:?}, the config implies {expected:?}", path.display())]
    ShapeMismatch {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape on disk.
        found: Vec<usize>,
    },

    /// The number of `<|image_pad|>` tokens in the prompt does not match the image features.
    #[error(
        "the prompt has {tokens} <|image_pad|> tokens but the images give {features} features \
         (one per 2x2 merged patch)"
    )]
    ImageTokenMismatch {
        /// `<|image_pad|>` tokens counted in `input_ids`.
        tokens: usize,
        /// Features produced by the vision tower.
        features: usize,
    },

    /// An image the processor cannot take (too small, too thin, or off the patch grid).
    #[error("image of {height}x{width} pixels (height x width): {reason}")]
    ImageSize {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// Why it is rejected.
        reason: String,
    },

    /// An image file that cannot be read or processed.
    #[error("{}: {message}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// `tokenizer.json` cannot be loaded, or text cannot be tokenised / decoded.
    #[error("{}: tokenizer: {message}", path.display())]
    Tokenizer {
        /// The tokenizer file (or checkpoint directory).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The chat template is missing, does not compile or fails to render.
    #[error("{}: chat template: {message}", path.display())]
    Template {
        /// The file holding the template (or the checkpoint directory when none is found).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// Invalid sampling settings (temperature, top-p, top-k, max new tokens).
    #[error("invalid sampling settings: {0}")]
    Sampling(String),

    /// Model inputs with inconsistent shapes or values.
    #[error("invalid model input: {0}")]
    Input(String),
}

impl ModelError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
