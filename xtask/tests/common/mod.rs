//! Helpers shared by the command-line tests.
// Each test file uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

/// A smaller run than the tiny preset: 2 prompts x G 2, replies of at most 6 tokens, KL on.
pub const SMALL_CONFIG: &str = "preset = \"tiny\"\n[rollout]\ngroup_size = 2\nprompts_per_rollout = 2\n\
     max_response_tokens = 6\n[update]\nprompts_per_update = 2\nmicro_batch_size = 4\n\
     [sft]\nbatch_size = 2\nmicro_batch_size = 2\n";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped default dataset.
pub fn default_data() -> String {
    repo().join("datasets/default").to_str().unwrap().to_string()
}

/// Runs the command line in `cwd`; returns stdout, or panics with stderr.
pub fn xtask<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(cwd: &Path, args: &[S]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).current_dir(cwd).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xtask {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Metric lines of the run folder `run` without the fields that vary between identical runs
/// (wall-clock times, rates, memory).
pub fn untimed(run: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut m: Map<String, Value> = serde_json::from_str(l).unwrap();
            m.retain(|k, _| !["timing/", "tokens_per_second/", "memory/"].iter().any(|p| k.starts_with(p)));
            m
        })
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target)
        } else {
            std::fs::copy(entry.path(), target).map(drop).unwrap()
        }
    }
}
