//! Errors of r1-grpo. Every variant that comes from a file names it.

use std::path::{Path, PathBuf};

/// Result with [`GrpoError`].
pub type Result<T> = std::result::Result<T, GrpoError>;

#[derive(Debug, thiserror::Error)]
pub enum GrpoError {
    /// Arguments or data that contradict each other (batch arithmetic, shapes, values).
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that exists but whose content is wrong (bad TOML, bad JSON, missing entry).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A model-side failure (loading, tokenising, a forward pass).
    #[error(transparent)]
    Model(#[from] r1_model::ModelError),
    #[error(transparent)]
    Reward(#[from] r1_reward::RewardError),
    #[error(transparent)]
    Data(#[from] r1_data::DataError),
    /// A checkpoint could not be written (a full disk, a read-only folder): nothing of it
    /// was left, and `last_good`, the newest complete checkpoint, is untouched.
    #[error("could not write {} ({})", dir.display(), match last_good {
        Some(d) => format!("the last complete checkpoint, {}, is intact", d.display()),
        None => "no checkpoint was written before it".to_string(),
    })]
    Checkpoint { dir: PathBuf, last_good: Option<PathBuf>, source: Box<GrpoError> },
    /// The run stopped on purpose (for example after repeated non-finite losses).
    #[error("training stopped: {0}")]
    Stopped(String),
}

impl GrpoError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File { path: path.to_path_buf(), message: message.to_string() }
    }
}
