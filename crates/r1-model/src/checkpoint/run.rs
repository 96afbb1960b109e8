//! The layout of a training run folder. r1-grpo's trainer writes it and r1-bench's evaluator
//! reads it; both take the names from here, so neither re-spells the other's files:
//!
//! ```text
//! RUN/
//!   config.toml                 resolved configuration
//!   metrics.jsonl               one JSON object per optimiser step
//!   completions.jsonl           sampled completions with rewards and advantages
//!   checkpoint-<step>/          model/ (a checkpoint directory as in the parent module),
//!                               optimizer.safetensors, state.json (written last)
//!   plots/                      PNG plots of the metrics
//! ```

use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const COMPLETIONS_FILE: &str = "completions.jsonl";
pub const PLOTS_DIR: &str = "plots";
/// Written last into a checkpoint: a `checkpoint-<step>/` without it is incomplete.
pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MODEL_DIR: &str = "model";
const CHECKPOINT_PREFIX: &str = "checkpoint-";

/// `RUN/checkpoint-<step>`.
pub fn checkpoint_dir(run: &Path, step: u64) -> PathBuf {
    run.join(format!("{CHECKPOINT_PREFIX}{step}"))
}

/// The step of a checkpoint folder named `checkpoint-<step>` (r1's and Hugging Face Trainer's
/// naming); `None` for any other name.
pub fn checkpoint_step(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()
}

/// The `checkpoint-<step>` folders in `run`, complete or not, oldest first, as `(step, dir)`.
pub fn checkpoint_dirs(run: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(run)? {
        let entry = entry?;
        if let Some(step) = checkpoint_step(&entry.file_name().to_string_lossy())
            && entry.file_type()?.is_dir()
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_round_trip() {
        let run = Path::new("runs/a");
        let dir = checkpoint_dir(run, 40);
        assert_eq!(dir, run.join("checkpoint-40"));
        assert_eq!(checkpoint_step(&dir.file_name().unwrap().to_string_lossy()), Some(40));
        for other in ["checkpoint-", "checkpoint-x", "checkpoint--1", "ckpt-3", "plots"] {
            assert_eq!(checkpoint_step(other), None, "{other}");
        }
    }

    #[test]
    fn checkpoint_folders_are_listed_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["checkpoint-10", "checkpoint-2", "checkpoint-x", "plots"] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
        }
        // A file with a checkpoint's name is not a checkpoint.
        std::fs::write(tmp.path().join("checkpoint-7"), "").unwrap();
        let found = checkpoint_dirs(tmp.path()).unwrap();
        assert_eq!(found, [(2, tmp.path().join("checkpoint-2")), (10, tmp.path().join("checkpoint-10"))]);
    }
}
