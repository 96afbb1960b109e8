//! Typed errors. Every variant that concerns a file names it, so the command line can print
//! one line that tells the user which file and what is wrong.

use std::path::PathBuf;

pub type Result<T, E = DataError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: invalid image: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// The content of a file is structurally wrong (a truncated pickle, a NaN pose, a missing
    /// image, ...). `step` is set when the problem concerns one step of an episode.
    #[error("{path}{}: {message}", step.map(|s| format!(" (step {s})")).unwrap_or_default())]
    Invalid { path: PathBuf, step: Option<usize>, message: String },
    /// A video stream that cannot be decoded: the file, its codec when known, and why.
    #[error(
        "{path}: cannot decode the video ({}): {message}",
        codec.as_deref().map_or("codec unknown".to_owned(), |c| format!("codec {c}"))
    )]
    Video { path: PathBuf, codec: Option<String>, message: String },
    /// FFmpeg's `program` is not installed (or not on `PATH`); `path` is the video it was
    /// needed for.
    #[error(
        "{path}: decoding video needs FFmpeg's `{program}` program, which was not found on PATH; install \
         FFmpeg 5.1 or newer (Debian/Ubuntu: `apt-get install ffmpeg`, macOS: `brew install ffmpeg`)"
    )]
    FfmpegMissing { program: String, path: PathBuf },
    /// A QA sample that cannot be read as its question type says (named by its id).
    #[error("sample {id}: {message}")]
    Sample { id: String, message: String },
    /// A problem with a user-supplied option, not with a file.
    #[error("{0}")]
    Config(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), step: None, message: message.into() }
    }

    pub fn invalid_step(path: impl Into<PathBuf>, step: usize, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), step: Some(step), message: message.into() }
    }
}
