//! Typed errors. Every variant that concerns a file names it; judge errors name the endpoint.

use std::path::PathBuf;

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON or JSONL file that does not parse; `line` is 1-based for JSONL files.
    #[error("{path}{}: invalid JSON: {source}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Json {
        path: PathBuf,
        line: Option<usize>,
        #[source]
        source: serde_json::Error,
    },
    /// The content of a file is wrong (a missing image, an empty bench, a run without a
    /// checkpoint, a dataset without the requested split, ...).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] r1_data::DataError),
    #[error(transparent)]
    Judge(#[from] crate::judge::JudgeError),
    /// The model failed on a question (an image it cannot take, a prompt it cannot encode).
    #[error(transparent)]
    Model(#[from] r1_model::ModelError),
    /// A QA sample that cannot be scored (its answer does not suit its type).
    #[error(transparent)]
    Reward(#[from] r1_reward::RewardError),
    #[error("{path}: cannot draw the chart: {message}")]
    Plot { path: PathBuf, message: String },
    /// A problem with a user-supplied option, not with a file.
    #[error("{0}")]
    Config(String),
}

impl BenchError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), message: message.into() }
    }
}

/// Writes `bytes` to `path` atomically (see [`r1_data::fsutil::write_file_atomic`]), naming the
/// file in the error.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    r1_data::fsutil::write_atomic(path, bytes).map_err(|e| BenchError::io(path, e))
}
