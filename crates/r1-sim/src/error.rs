//! Typed errors of the simulator.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown task {name:?}; known tasks: {}", known.join(", "))]
    UnknownTask { name: String, known: Vec<&'static str> },
    /// A bad option in [`crate::SimConfig`] or a bad argument.
    #[error("invalid simulator settings: {0}")]
    Config(String),
    #[error("{episode}: cannot encode frame {step} as PNG: {source}")]
    Encode {
        episode: String,
        step: usize,
        #[source]
        source: image::ImageError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An episode handed to [`crate::montage`] whose frames cannot be read.
    #[error(transparent)]
    Data(#[from] r1_data::DataError),
}
