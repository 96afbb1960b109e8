//! Supervised fine-tuning on the same QA data, loss on the assistant tokens only: the paper's
//! Direct SFT and CoT SFT baselines, and the format warm-up of the tiny model before GRPO.
//!
//! Loss of a batch: `-(sum over reply tokens of log p) / (reply tokens in the batch)`, the
//! token mean over the whole optimiser batch (gradient accumulation gives the same gradient).

use std::path::Path;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use r1_data::{Answer, QaSample};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::TrainConfig;
use crate::error::{GrpoError, Result};
use crate::grpo::{Loader, adamw_config, initial_model, load_policy, note_nonfinite, seed_dropout};
use crate::metrics;
use crate::optim::AdamW;
use crate::policy::{LoraStart, Policy, ScoreRow, length_mask};
use crate::run::{self, METRICS_FILE, MODEL_DIR, OPTIMIZER_FILE, Phase, RunDir, TrainState};

/// What the model is taught to reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SftMode {
    /// The answer only (`QaSample.sft.direct`).
    Direct,
    /// Plan, subtask, move, answer (`QaSample.sft.cot`).
    Cot,
    /// `<think>...</think> <answer>...</answer>` with a stand-in answer that says nothing of the
    /// right one (a label picked by the question id; for an open question the current position
    /// the prompt states): teaches the output format.
    Format,
    /// [`Format`](Self::Format) with the gripper's true current position (the simulator's ground
    /// truth) as the reasoning: meant to teach the format and to see where the gripper is, and
    /// still nothing of which option is right.
    Grounded,
}

impl SftMode {
    pub const ALL: [SftMode; 4] = [SftMode::Direct, SftMode::Cot, SftMode::Format, SftMode::Grounded];

    /// The name configs, the command line and checkpoints use.
    pub fn as_str(self) -> &'static str {
        match self {
            SftMode::Direct => "direct",
            SftMode::Cot => "cot",
            SftMode::Format => "format",
            SftMode::Grounded => "grounded",
        }
    }
}

impl std::str::FromStr for SftMode {
    type Err = GrpoError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            GrpoError::Invalid(format!("unknown SFT mode {s:?} (expected direct, cot, format or grounded)"))
        })
    }
}

/// The reasoning of the format target. Deliberately constant: the warm-up teaches the shape of
/// a reply; what the reasoning says is left to GRPO.
pub const FORMAT_REASONING: &str = "I compare the gripper with the goal.";

/// The reply `sample` is trained towards in `mode`.
pub fn target(sample: &QaSample, mode: SftMode) -> Result<String> {
    let missing = |what: &str| GrpoError::Invalid(format!("sample {} has no {what} SFT target", sample.id));
    match mode {
        SftMode::Direct => sample.sft.as_ref().map(|s| s.direct.clone()).ok_or_else(|| missing("direct")),
        SftMode::Cot => sample.sft.as_ref().and_then(|s| s.cot.clone()).ok_or_else(|| missing("CoT")),
        SftMode::Format | SftMode::Grounded => {
            let answer = match &sample.answer {
                Answer::Label(_) => format!("[[{}]]", stand_in_label(sample)?),
                Answer::Position(_) => {
                    let [x, y, z] = sample.state.current;
                    format!("[{x:.3}, {y:.3}, {z:.3}]")
                }
                // No question type asks for a movement in words; nothing neutral to stand in.
                Answer::Movement(_) => return Err(missing("format")),
            };
            let reasoning = match mode {
                SftMode::Grounded => {
                    let [x, y, z] = sample.state.current;
                    format!("The gripper is at [{x:.2}, {y:.2}, {z:.2}].")
                }
                _ => FORMAT_REASONING.to_string(),
            };
            Ok(format!("<think>{reasoning}</think> <answer>{answer}</answer>"))
        }
    }
}

/// The format warm-up's answer to a multiple-choice question: one of its option labels, picked
/// by a hash of the sample id alone, so the warm-up teaches the shape of an answer and nothing
/// of which one is right (GRPO, credited with the accuracy gained after the warm-up, starts from
/// labels that are uniform and independent of the answer).
fn stand_in_label(sample: &QaSample) -> Result<&str> {
    let labels: Vec<&str> = sample.options.iter().flatten().map(|(label, _)| label.as_str()).collect();
    if labels.is_empty() {
        return Err(GrpoError::Invalid(format!("sample {} has a label answer but no options", sample.id)));
    }
    // FNV-1a: stable across platforms and releases, unlike std's hasher.
    let hash = sample.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    Ok(labels[(hash % labels.len() as u64) as usize])
}

/// An SFT run in progress.
pub struct SftTrainer<P: Policy> {
    pub config: TrainConfig,
    pub run: RunDir,
    pub state: TrainState,
    policy: P,
    optim: AdamW,
    samples: Vec<QaSample>,
    targets: Vec<Vec<u32>>,
}

impl<P: Policy> SftTrainer<P> {
    /// Starts a run in `out`; samples without a target for `mode` are left out (an error if
    /// none has one).
    pub fn start(config: TrainConfig, out: &Path, data: Vec<QaSample>, mode: SftMode, load: Loader<P>) -> Result<Self> {
        config.validate()?;
        let policy = load_policy(&config, load, &initial_model(&config)?, LoraStart::Fresh)?;
        let (samples, targets) = encode(&policy, data, mode)?;
        let run = RunDir::create(out, &config)?;
        let state = TrainState {
            phase: Phase::Sft(mode),
            step: 0,
            optimizer_step: 0,
            cursor: 0,
            seed: config.seed,
            skipped_nonfinite: 0,
            nonfinite_streak: 0,
        };
        let optim = AdamW::new(adamw_config(&config));
        Ok(Self { config, run, state, policy, optim, samples, targets })
    }

    /// Continues the SFT run in `dir` from its newest checkpoint.
    pub fn resume(dir: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        let (run, config) = RunDir::open(dir)?;
        let (_, checkpoint) =
            run.latest_checkpoint()?.ok_or_else(|| GrpoError::file(dir, "has no checkpoint to resume from"))?;
        let state = RunDir::read_state(&checkpoint)?;
        let Phase::Sft(mode) = state.phase else {
            return Err(GrpoError::file(&checkpoint, format!("is a {} checkpoint, not an SFT one", state.phase)));
        };
        let policy = load_policy(&config, load, &checkpoint.join(MODEL_DIR), LoraStart::Resume)?;
        let device =
            policy.devices().into_iter().next().ok_or_else(|| GrpoError::file(&checkpoint, "model has no device"))?;
        let mut optim = AdamW::new(adamw_config(&config));
        optim.load(&checkpoint.join(OPTIMIZER_FILE), &device)?;
        let (samples, targets) = encode(&policy, data, mode)?;
        run.truncate_after(METRICS_FILE, "step", state.step)?;
        Ok(Self { config, run, state, policy, optim, samples, targets })
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Optimiser steps of `epochs` passes over the samples.
    pub fn steps_for_epochs(&self, epochs: usize) -> u64 {
        (self.samples.len() * epochs).div_ceil(self.config.sft.batch_size) as u64
    }

    /// Trains until `target_steps` optimiser steps are done, checkpointing like GRPO.
    pub fn train(&mut self, target_steps: u64, mut on_step: impl FnMut(&Map<String, Value>)) -> Result<()> {
        while self.state.step < target_steps {
            let line = self.step(target_steps)?;
            let every = self.config.run.save_every;
            if (every > 0 && self.state.step.is_multiple_of(every)) || self.state.step == target_steps {
                self.checkpoint()?;
            }
            on_step(&line);
        }
        Ok(())
    }

    pub fn checkpoint(&self) -> Result<std::path::PathBuf> {
        self.run.save(&self.state, self.config.run.keep_last, &self.policy, &self.optim)
    }

    fn step(&mut self, target_steps: u64) -> Result<Map<String, Value>> {
        let s = &self.config.sft;
        let step = self.state.step + 1;
        let t = Instant::now();
        let rows = run::take_prompts(self.state.seed, self.samples.len(), self.state.cursor, s.batch_size);
        let tokens: f64 = rows.iter().map(|&r| self.targets[r].len() as f64).sum();
        let mut acc = GradientsAccumulator::<P>::new();
        let mut loss_sum = 0.0;
        for (index, micro) in rows.chunks(s.micro_batch_size).enumerate() {
            if let Some(device) = self.policy.devices().first() {
                seed_dropout(&self.config, device, self.state.seed, step, index as u64);
            }
            let prompts: Vec<&QaSample> = micro.iter().map(|&r| &self.samples[r]).collect();
            let targets: Vec<ScoreRow> = micro
                .iter()
                .enumerate()
                .map(|(i, &r)| ScoreRow { prompt: i, ids: self.targets[r].as_slice() })
                .collect();
            let logp = self.policy.logprobs(&prompts, &targets, 1.0)?;
            let [_, tt] = logp.dims();
            let mask = length_mask(&targets.iter().map(|r| r.ids.len()).collect::<Vec<_>>(), tt, &logp.device());
            let loss = -(logp * mask).sum() / tokens.max(1.0);
            let value = loss.clone().detach().into_scalar::<f32>() as f64;
            loss_sum += value;
            if value.is_finite() {
                acc.accumulate(&self.policy, GradientsParams::from_grads(loss.backward(), &self.policy));
            }
        }
        let lr = s.schedule.lr(s.lr, self.state.optimizer_step, target_steps);
        let mut grad_norm = f64::NAN;
        let applied = loss_sum.is_finite() && {
            let (policy, report) = self.optim.step(lr, self.policy.clone(), acc.grads())?;
            self.policy = policy;
            grad_norm = report.grad_norm;
            report.applied
        };
        let elapsed = t.elapsed().as_secs_f64();
        let mut line = Map::new();
        line.insert("step".into(), json!(step));
        line.insert("loss".into(), json!(loss_sum));
        line.insert("grad_norm".into(), json!(grad_norm));
        line.insert("learning_rate".into(), json!(lr));
        line.insert("timing/update".into(), json!(elapsed));
        line.insert("tokens_per_second/training".into(), json!(tokens / elapsed.max(1e-9)));
        if applied {
            self.state.optimizer_step += 1;
        }
        note_nonfinite(&mut self.state, applied, self.config.run.max_nonfinite_steps, &self.run, step)?;
        line.insert("skipped_nonfinite".into(), json!(self.state.skipped_nonfinite));
        if let Some(rss) = metrics::host_rss_mib() {
            line.insert(metrics::HOST_RSS_KEY.into(), json!(rss));
        }
        self.run.append(METRICS_FILE, &Value::Object(line.clone()))?;
        self.state.step = step;
        self.state.cursor += rows.len() as u64;
        Ok(line)
    }
}

/// Keeps the samples that have a target in `mode`, with the target's token ids.
fn encode<P: Policy>(policy: &P, data: Vec<QaSample>, mode: SftMode) -> Result<(Vec<QaSample>, Vec<Vec<u32>>)> {
    let mut samples = Vec::new();
    let mut targets = Vec::new();
    let total = data.len();
    for sample in data {
        if let Ok(text) = target(&sample, mode) {
            targets.push(policy.encode_reply(&text)?);
            samples.push(sample);
        }
    }
    if samples.is_empty() {
        return Err(GrpoError::Invalid(format!("none of the {total} samples has a {mode:?} SFT target")));
    }
    Ok((samples, targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_target_passes_the_strict_format_reward() {
        let mut sample: QaSample = serde_json::from_value(json!({
            "id": "t/v0/e0/f0/movement", "task": "t", "variation": 0, "episode": 0, "frame": 0,
            "keypoint_frame": 3, "qa_type": "movement",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Which movement?"}]}],
            "options": {"A": "move up", "B": "move down"},
            "answer": {"label": "B"},
            "state": {"current": [0.0, 0.0, 0.5], "target": [0.0, 0.0, 0.4], "movement": "move down",
                      "gripper_open": true, "target_gripper_open": true}
        }))
        .unwrap();
        let text = target(&sample, SftMode::Format).unwrap();
        let rewards = r1_reward::RewardFn::default().score(&text, &sample).unwrap();
        assert_eq!(rewards.format(), 1.0, "{text}");
        assert!(target(&sample, SftMode::Cot).is_err());
        sample.sft = Some(r1_data::SftTargets { direct: "[0.0, 0.0, 0.4]".into(), cot: None });
        assert_eq!(target(&sample, SftMode::Direct).unwrap(), "[0.0, 0.0, 0.4]");
    }

    /// The warm-up's labels do not follow the answers: over many questions whose answer is
    /// always `A`, they spread over the options about evenly.
    #[test]
    fn format_labels_are_independent_of_the_answer() {
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..400 {
            let sample: QaSample = serde_json::from_value(json!({
                "id": format!("task/v0/e{i}/f0/waypoint"), "task": "task", "variation": 0, "episode": i,
                "frame": 0, "keypoint_frame": 3, "qa_type": "waypoint",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Where next?"}]}],
                "options": {"A": "[0, 0, 0]", "B": "[1, 0, 0]", "C": "[0, 1, 0]", "D": "[0, 0, 1]"},
                "answer": {"label": "A"},
                "state": {"current": [0.0, 0.0, 0.5], "target": [0.0, 0.0, 0.0], "movement": "move down",
                          "gripper_open": true, "target_gripper_open": true}
            }))
            .unwrap();
            *counts.entry(stand_in_label(&sample).unwrap().to_string()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4, "{counts:?}");
        assert!(counts.values().all(|&n| (70..=130).contains(&n)), "{counts:?}");
    }
}
