//! The run directory (its layout is [`r1_model::checkpoint::run`]'s) and its bookkeeping.
//!
//! Exact resume rests on two choices: every random draw of step `s` comes from a generator
//! seeded with `(seed, s)` (so the RNG state to restore is the step itself), and the prompt
//! order of epoch `e` is a permutation seeded with `(seed, e)` (so the data-order state is the
//! cursor). Lines logged after the checkpoint a run resumes from are dropped on resume.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use r1_model::checkpoint::run::{self as layout, CONFIG_FILE, METRICS_FILE, MODEL_DIR, OPTIMIZER_FILE, STATE_FILE};

use crate::config::TrainConfig;
use crate::crash;
use crate::error::{GrpoError, Result};
use crate::fsio;
use crate::metrics::StepMetrics;
use crate::optim::AdamW;
use crate::policy::Policy;
use crate::sft::SftMode;

/// Mixes a seed with a stream index (SplitMix64 finaliser) so that nearby indices give
/// unrelated generators.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of step `step` (sampling, dynamic choices) for a run seeded with `seed`.
pub fn step_rng(seed: u64, step: u64) -> StdRng {
    StdRng::seed_from_u64(mix(seed, step))
}

/// Prompt indices `0..n` in the order of epoch `epoch`.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    // A stream far from the step streams, so data order and sampling never share a generator.
    order.shuffle(&mut StdRng::seed_from_u64(mix(seed ^ 0xD1B5_4A32_D192_ED03, epoch)));
    order
}

/// The `count` prompt indices taken at `cursor` (prompts consumed so far), crossing epochs.
pub fn take_prompts(seed: u64, n: usize, cursor: u64, count: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(count);
    let mut pos = cursor;
    let mut cached: Option<(u64, Vec<usize>)> = None;
    while out.len() < count {
        let epoch = pos / n as u64;
        if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            cached = Some((epoch, epoch_order(seed, epoch, n)));
        }
        let order = &cached.as_ref().expect("set above").1;
        out.push(order[(pos % n as u64) as usize]);
        pos += 1;
    }
    out
}

/// What a run trains, as `state.json` records it: `grpo`, or `sft-<mode>` (`sft-format`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Phase {
    Grpo,
    Sft(SftMode),
}

impl From<Phase> for String {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Grpo => "grpo".into(),
            Phase::Sft(mode) => format!("sft-{}", mode.as_str()),
        }
    }
}

impl TryFrom<String> for Phase {
    type Error = GrpoError;
    fn try_from(name: String) -> Result<Self> {
        if name == "grpo" {
            return Ok(Phase::Grpo);
        }
        match name.strip_prefix("sft-") {
            Some(mode) => Ok(Phase::Sft(mode.parse()?)),
            None => Err(GrpoError::Invalid(format!("unknown phase {name:?} (expected grpo or sft-<mode>)"))),
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

/// What a checkpoint needs besides the model and the optimiser moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub phase: Phase,
    /// Steps completed (rollout steps for GRPO, optimiser steps for SFT).
    pub step: u64,
    /// Optimiser steps completed (drives the learning-rate schedule).
    pub optimizer_step: u64,
    /// Prompts consumed so far (data-order cursor).
    pub cursor: u64,
    pub seed: u64,
    /// Non-finite losses skipped so far, and the current streak.
    pub skipped_nonfinite: u64,
    pub nonfinite_streak: u32,
}

impl TrainState {
    /// The state of a run of `phase` seeded with `seed` before its first step.
    pub fn new(phase: Phase, seed: u64) -> Self {
        Self { phase, step: 0, optimizer_step: 0, cursor: 0, seed, skipped_nonfinite: 0, nonfinite_streak: 0 }
    }
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates `root` (which must not already hold a run) and records the configuration.
    pub fn create(root: &Path, config: &TrainConfig) -> Result<Self> {
        if root.join(CONFIG_FILE).exists() {
            return Err(GrpoError::file(
                root,
                "already holds a run (config.toml exists): pass --resume to continue it or choose another --out",
            ));
        }
        std::fs::create_dir_all(root).map_err(|e| GrpoError::io(root, e))?;
        fsio::write_atomic(&root.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
        Ok(Self { root: root.to_path_buf() })
    }

    /// Opens an existing run and reads its configuration.
    pub fn open(root: &Path) -> Result<(Self, TrainConfig)> {
        let path = root.join(CONFIG_FILE);
        if !path.exists() {
            return Err(GrpoError::file(root, "not a run directory (no config.toml)"));
        }
        let config = TrainConfig::load(&path, crate::config::Preset::Paper)?;
        Ok((Self { root: root.to_path_buf() }, config))
    }

    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        layout::checkpoint_dir(&self.root, step)
    }

    /// Complete checkpoints (those with their `state.json`), oldest first, as `(step, dir)`.
    pub fn checkpoints(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found = layout::checkpoint_dirs(&self.root).map_err(|e| GrpoError::io(&self.root, e))?;
        found.retain(|(_, dir)| dir.join(STATE_FILE).exists());
        Ok(found)
    }

    /// The newest complete checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(self.checkpoints()?.pop())
    }

    /// Writes a checkpoint atomically: `fill` writes everything into a temporary folder, which
    /// then gets `state.json` and is renamed to `checkpoint-<step>`. Older checkpoints beyond
    /// `keep_last` are removed afterwards. If any write fails (a full disk, a read-only
    /// folder), the temporary folder is removed and the error names the newest complete
    /// checkpoint, which is untouched.
    pub fn write_checkpoint(
        &self,
        state: &TrainState,
        keep_last: usize,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let final_dir = self.checkpoint_dir(state.step);
        // A hidden sibling, so listings never take it for a checkpoint.
        let tmp = self.root.join(format!(".{}.tmp", final_dir.file_name().unwrap_or_default().to_string_lossy()));
        let staged = (|| {
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|e| GrpoError::io(&tmp, e))?;
            }
            std::fs::create_dir_all(&tmp).map_err(|e| GrpoError::io(&tmp, e))?;
            fill(&tmp)?;
            fsio::write_json(&tmp.join(STATE_FILE), state)?;
            crash::point(crash::BEFORE_RENAME);
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir).map_err(|e| GrpoError::io(&final_dir, e))?;
            }
            std::fs::rename(&tmp, &final_dir).map_err(|e| GrpoError::io(&final_dir, e))?;
            r1_data::fsutil::sync_dir(&self.root).map_err(|e| GrpoError::io(&self.root, e))
        })();
        if let Err(source) = staged {
            // Best effort: what matters is the first error, and freeing the space it took.
            let _ = std::fs::remove_dir_all(&tmp);
            let last_good = self.latest_checkpoint().ok().flatten().map(|(_, dir)| dir);
            return Err(GrpoError::Checkpoint { dir: final_dir, last_good, source: Box::new(source) });
        }
        let all = self.checkpoints()?;
        for (_, dir) in all.iter().take(all.len().saturating_sub(keep_last)) {
            std::fs::remove_dir_all(dir).map_err(|e| GrpoError::io(dir, e))?;
        }
        Ok(final_dir)
    }

    /// Checkpoints a trainer: `policy` as `model/` (Hugging Face layout), the optimiser state,
    /// and `state`.
    pub fn save<P: Policy>(&self, state: &TrainState, keep_last: usize, policy: &P, optim: &AdamW) -> Result<PathBuf> {
        self.write_checkpoint(state, keep_last, |dir| {
            policy.save(&dir.join(MODEL_DIR))?;
            crash::point(crash::MODEL_SAVED);
            optim.save(&dir.join(OPTIMIZER_FILE))?;
            crash::point(crash::OPTIMIZER_SAVED);
            Ok(())
        })
    }

    pub fn read_state(checkpoint: &Path) -> Result<TrainState> {
        fsio::read_json(&checkpoint.join(STATE_FILE))
    }

    /// Appends `line` as one JSON object on a line of `file` (metrics or completions), in a
    /// single write, so that a crash leaves at most that one line torn (see
    /// [`truncate_after`](Self::truncate_after)). Keys are written in sorted order; non-finite
    /// numbers as `null`.
    pub fn append(&self, file: &str, line: &impl Serialize) -> Result<()> {
        use std::io::Write;
        let path = self.root.join(file);
        // Through a `Value`: its objects keep their keys sorted, whatever the field order.
        let line = serde_json::to_value(line).map_err(|e| GrpoError::file(&path, e))?;
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| GrpoError::io(&path, e))?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(|e| GrpoError::io(&path, e))
    }

    /// The lines of `metrics.jsonl` (none before the first step).
    pub fn read_metrics(&self) -> Result<Vec<StepMetrics>> {
        self.read_lines(METRICS_FILE)
    }

    /// Reads every line of a JSONL file of the run as a `T` (missing file: no lines).
    pub fn read_lines<T: DeserializeOwned>(&self, file: &str) -> Result<Vec<T>> {
        let path = self.root.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| GrpoError::io(&path, e))?;
        parse_lines(&path, text.lines()).map(|lines| lines.into_iter().map(|(_, line)| line).collect())
    }

    /// Keeps only the lines of `file` whose `step` is at most `last` (the rest were logged after
    /// the checkpoint being resumed), rewriting the file atomically. A last line without its
    /// newline was torn by a crash while being appended, and is dropped.
    pub fn truncate_after(&self, file: &str, last: u64) -> Result<()> {
        /// What truncation reads of a line.
        #[derive(Deserialize)]
        struct Stepped {
            step: Option<u64>,
        }
        let path = self.root.join(file);
        if !path.exists() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| GrpoError::io(&path, e))?;
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        let mut kept = String::new();
        for (text, line) in parse_lines::<Stepped>(&path, complete.lines())? {
            if line.step.is_some_and(|s| s <= last) {
                kept.push_str(text);
                kept.push('\n');
            }
        }
        fsio::write_atomic(&path, kept.as_bytes())
    }
}

/// Parses the non-empty `lines` of the JSONL file `path`, each with its text; errors name the
/// line.
fn parse_lines<'a, T: DeserializeOwned>(
    path: &Path,
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(&'a str, T)>> {
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line = serde_json::from_str(l).map_err(|e| GrpoError::file(path, format!("line {}: {e}", i + 1)))?;
            Ok((l, line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every phase reads back as itself from the name `state.json` holds, including the SFT
    /// modes added after the first ones (a grounded warm-up could not be resumed when the names
    /// were matched by hand).
    #[test]
    fn phases_round_trip_through_their_names() {
        let phases = std::iter::once(Phase::Grpo).chain(SftMode::ALL.map(Phase::Sft));
        for phase in phases {
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase, "{json}");
        }
        assert_eq!(serde_json::to_string(&Phase::Sft(SftMode::Format)).unwrap(), "\"sft-format\"");
        assert!(serde_json::from_str::<Phase>("\"sft-magic\"").is_err());
        assert!(serde_json::from_str::<Phase>("\"ppo\"").is_err());
    }

    #[test]
    fn checkpoints_are_atomic_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), &TrainConfig::tiny()).unwrap();
        assert!(RunDir::create(dir.path(), &TrainConfig::tiny()).is_err());
        let mut state = TrainState::new(Phase::Grpo, 1);
        for step in 1..=4 {
            state.step = step;
            run.write_checkpoint(&state, 2, |d| fsio::write_atomic(&d.join("x"), b"1")).unwrap();
        }
        let steps: Vec<u64> = run.checkpoints().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![3, 4]);
        // A failing fill leaves the previous checkpoints untouched and no final folder.
        state.step = 5;
        let err = run.write_checkpoint(&state, 2, |_| Err(GrpoError::Invalid("disk full".into())));
        assert!(err.is_err());
        assert_eq!(run.latest_checkpoint().unwrap().unwrap().0, 4);
        assert_eq!(RunDir::read_state(&run.checkpoint_dir(4)).unwrap().step, 4);
        let (_, config) = RunDir::open(dir.path()).unwrap();
        assert_eq!(config, TrainConfig::tiny());
    }

    /// An SFT line of step `step`.
    fn line(step: u64) -> StepMetrics {
        let update = crate::metrics::UpdateMetrics {
            loss: 0.5,
            grad_norm: f64::NAN,
            learning_rate: 1e-3,
            skipped_nonfinite: 0,
            update_s: 1.0,
            training_tps: 10.0,
        };
        StepMetrics::supervised(step, update)
    }

    #[test]
    fn truncation_drops_lines_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), &TrainConfig::tiny()).unwrap();
        for step in 1..=3u64 {
            run.append(METRICS_FILE, &line(step)).unwrap();
        }
        let before = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        run.truncate_after(METRICS_FILE, 1).unwrap();
        let lines = run.read_metrics().unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].step, 1);
        assert!(lines[0].update.grad_norm.is_nan(), "null reads back as not a number");
        // The kept line is the line as written, keys in sorted order.
        let after = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        assert_eq!(after, before.lines().next().unwrap().to_string() + "\n");
        assert!(
            after.starts_with(r#"{"grad_norm":null,"learning_rate":0.001,"loss":0.5,"skipped_nonfinite":0,"step":1,"#)
        );
    }

    /// A line torn by a crash in the middle of an append is dropped on resume, not an error.
    #[test]
    fn truncation_drops_a_torn_last_line() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), &TrainConfig::tiny()).unwrap();
        for step in 1..=2u64 {
            run.append(METRICS_FILE, &line(step)).unwrap();
        }
        let path = dir.path().join(METRICS_FILE);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"step\": 3, \"lo").unwrap();
        assert!(run.read_metrics().is_err(), "a torn line is not valid JSON");
        run.truncate_after(METRICS_FILE, 2).unwrap();
        let steps: Vec<u64> = run.read_metrics().unwrap().iter().map(|l| l.step).collect();
        assert_eq!(steps, [1, 2]);
    }

    proptest! {
        #[test]
        fn prompts_resume_where_they_stopped(seed in any::<u64>(), n in 1usize..20, a in 0usize..30, b in 0usize..30) {
            let whole = take_prompts(seed, n, 0, a + b);
            let mut parts = take_prompts(seed, n, 0, a);
            parts.extend(take_prompts(seed, n, a as u64, b));
            prop_assert_eq!(&whole, &parts);
            // Each epoch is a permutation.
            let mut e = epoch_order(seed, 3, n);
            e.sort();
            prop_assert_eq!(e, (0..n).collect::<Vec<_>>());
        }
    }
}
