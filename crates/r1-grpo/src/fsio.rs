//! File helpers shared by the run directory, checkpoints and optimiser state: every write goes
//! through [`r1_data::fsutil::write_file_atomic`], so a crash never leaves a half-written file
//! under the final name.

use std::path::Path;

use crate::error::{GrpoError, Result};

/// Writes `bytes` to `path` atomically (see [`r1_data::fsutil::write_file_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    r1_data::fsutil::write_atomic(path, bytes).map_err(|e| GrpoError::io(path, e))
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| GrpoError::io(path, e))
}

/// Reads and parses a JSON file, naming it in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read(path)?).map_err(|e| GrpoError::file(path, e))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| GrpoError::file(path, e))?;
    write_atomic(path, &text)
}
