//! Supervised fine-tuning on the same QA data, loss on the assistant tokens only: the paper's
//! Direct SFT and CoT SFT baselines, the format warm-up of the tiny model before GRPO, and its
//! perception pretraining.
//!
//! Loss of a batch: `-(sum over reply tokens of log p) / (reply tokens in the batch)`, the
//! token mean over the whole optimiser batch (gradient accumulation gives the same gradient).

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use r1_data::{Answer, Message, QaSample};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{GrpoError, Result};
use crate::metrics::{self, StepMetrics, UpdateMetrics};
use crate::policy::{Policy, ScoreRow, length_mask};
use crate::run::Phase;
use crate::trainer::{Algorithm, Loader, StepContext, Trainer};

/// What the model is taught to reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
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
    /// Perception pretraining on the simulator's ground truth: one short question of its own
    /// per frame ([`PERCEIVE_QUESTION`], the frame's image and nothing of the task, the question
    /// or the options) answered with [`Grounded`](Self::Grounded)'s sentence. Meant to give a
    /// small base model the sight a pretrained 7B model brings; it teaches no answer.
    Perceive,
}

impl SftMode {
    pub const ALL: [SftMode; 5] =
        [SftMode::Direct, SftMode::Cot, SftMode::Format, SftMode::Grounded, SftMode::Perceive];

    /// The name configs, the command line and checkpoints use, as a `&'static str` for the code
    /// that needs one (everything else prints the mode; a test keeps the two equal).
    pub fn as_str(self) -> &'static str {
        match self {
            SftMode::Direct => "direct",
            SftMode::Cot => "cot",
            SftMode::Format => "format",
            SftMode::Grounded => "grounded",
            SftMode::Perceive => "perceive",
        }
    }
}

impl std::fmt::Display for SftMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

impl std::str::FromStr for SftMode {
    type Err = GrpoError;
    fn from_str(s: &str) -> Result<Self> {
        r1_data::names::parse_name(s, "SFT mode").map_err(GrpoError::Invalid)
    }
}

/// The reasoning of the format target. Deliberately constant: the warm-up teaches the shape of
/// a reply; what the reasoning says is left to GRPO.
pub const FORMAT_REASONING: &str = "I compare the gripper with the goal.";

/// The whole prompt text of a [`SftMode::Perceive`] sample, beside the frame's image.
pub const PERCEIVE_QUESTION: &str = "Where is the gripper? Give its position [x, y, z] in metres.";

/// Where the gripper is, from the simulator's ground truth: the reasoning of the grounded
/// warm-up and the whole reply of perception pretraining, one sentence so that the warm-up asks
/// for what pretraining taught. Centimetres: finer than the 5 cm between options.
fn gripper_sentence(sample: &QaSample) -> String {
    let [x, y, z] = sample.state.current;
    format!("The gripper is at [{x:.2}, {y:.2}, {z:.2}].")
}

/// The reply `sample` is trained towards in `mode`.
pub fn target(sample: &QaSample, mode: SftMode) -> Result<String> {
    let missing = |what: &str| GrpoError::Invalid(format!("sample {} has no {what} SFT target", sample.id));
    match mode {
        SftMode::Direct => sample.sft.as_ref().map(|s| s.direct.clone()).ok_or_else(|| missing("direct")),
        SftMode::Cot => sample.sft.as_ref().and_then(|s| s.cot.clone()).ok_or_else(|| missing("CoT")),
        SftMode::Perceive => Ok(gripper_sentence(sample)),
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
                SftMode::Grounded => gripper_sentence(sample),
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
pub type SftTrainer<P> = Trainer<P, Sft>;

/// SFT's part of a run: the samples that have a target in its mode, and the targets' token ids.
pub struct Sft {
    mode: SftMode,
    samples: Vec<QaSample>,
    targets: Vec<Vec<u32>>,
}

impl<P: Policy> SftTrainer<P> {
    /// Starts a run in `out`; samples without a target for `mode` are left out (an error if
    /// none has one).
    pub fn start(config: TrainConfig, out: &Path, data: Vec<QaSample>, mode: SftMode, load: Loader<P>) -> Result<Self> {
        Self::start_with(config, out, load, |_, policy| Sft::new(policy, data, mode))
    }

    /// Continues the SFT run in `dir` from its newest checkpoint, in the mode it was started in.
    pub fn resume(dir: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        let mode = |phase| match phase {
            Phase::Sft(mode) => Some(mode),
            Phase::Grpo => None,
        };
        Self::resume_with(dir, load, mode, |_, mode, policy| Sft::new(policy, data, mode))
    }

    /// Optimiser steps of `epochs` passes over the samples.
    pub fn steps_for_epochs(&self, epochs: usize) -> u64 {
        (self.algorithm.samples.len() * epochs).div_ceil(self.config.sft.batch_size) as u64
    }
}

impl<P: Policy> Algorithm<P> for Sft {
    const NAME: &'static str = "an SFT";

    fn phase(&self) -> Phase {
        Phase::Sft(self.mode)
    }

    /// One optimiser step over a batch of samples.
    fn step(&mut self, ctx: &mut StepContext<'_, P>) -> Result<Vec<StepMetrics>> {
        let s = &ctx.config.sft;
        let t = Instant::now();
        let rows = ctx.take_prompts(self.samples.len(), s.batch_size);
        let tokens: f64 = rows.iter().map(|&r| self.targets[r].len() as f64).sum();
        let mut acc = GradientsAccumulator::<P>::new();
        let mut loss_sum = 0.0;
        for (index, micro) in rows.chunks(s.micro_batch_size).enumerate() {
            ctx.seed_dropout(index as u64)?;
            let prompts: Vec<&QaSample> = micro.iter().map(|&r| &self.samples[r]).collect();
            let targets: Vec<ScoreRow> = micro
                .iter()
                .enumerate()
                .map(|(i, &r)| ScoreRow { prompt: i, ids: self.targets[r].as_slice() })
                .collect();
            let logp = ctx.policy.logprobs(&prompts, &targets, 1.0)?;
            let [_, tt] = logp.dims();
            let mask = length_mask(&targets.iter().map(|r| r.ids.len()).collect::<Vec<_>>(), tt, &logp.device());
            let loss = -(logp * mask).sum() / tokens.max(1.0);
            let value = loss.clone().detach().into_scalar::<f32>() as f64;
            loss_sum += value;
            if value.is_finite() {
                acc.accumulate(&*ctx.policy, GradientsParams::from_grads(loss.backward(), &*ctx.policy));
            }
        }
        let lr = s.schedule.lr(s.lr, ctx.state.optimizer_step, ctx.target_steps);
        let grad_norm = ctx.optimise(lr, loss_sum, acc)?;
        let update_s = t.elapsed().as_secs_f64();
        let update = UpdateMetrics {
            loss: loss_sum,
            grad_norm,
            learning_rate: lr,
            skipped_nonfinite: ctx.state.skipped_nonfinite,
            update_s,
            training_tps: tokens / update_s.max(1e-9),
        };
        Ok(vec![StepMetrics { host_rss_mib: metrics::host_rss_mib(), ..StepMetrics::supervised(ctx.step, update) }])
    }
}

impl Sft {
    /// Keeps the samples that have a target in `mode`, with the target's token ids.
    fn new<P: Policy>(policy: &P, data: Vec<QaSample>, mode: SftMode) -> Result<Self> {
        let data = if mode == SftMode::Perceive { perception_samples(data)? } else { data };
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
        Ok(Self { mode, samples, targets })
    }
}

/// What perception pretraining asks: one sample per frame (the first question on it), its
/// prompt replaced by [`PERCEIVE_QUESTION`] beside the frame's image, under an id of its own
/// (policies cache prompts by id).
fn perception_samples(data: Vec<QaSample>) -> Result<Vec<QaSample>> {
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for mut sample in data {
        let image = sample.messages.iter().flat_map(Message::images).next().map(str::to_owned);
        let image =
            image.ok_or_else(|| GrpoError::Invalid(format!("sample {} has no image to perceive", sample.id)))?;
        if seen.insert(image.clone()) {
            sample.id = format!("{image}/perceive");
            sample.messages = vec![Message::user_with_image(image, PERCEIVE_QUESTION)];
            sample.options = None;
            samples.push(sample);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// Perception pretraining asks one question per frame, shows the frame's image and nothing
    /// of the question or its options, and is answered with the grounded warm-up's sentence.
    #[test]
    fn perception_asks_one_short_question_per_frame() {
        let sample = |qa_type: &str, image: &str| -> QaSample {
            serde_json::from_value(json!({
                "id": format!("t/v0/e0/{image}/{qa_type}"), "task": "t", "variation": 0, "episode": 0, "frame": 0,
                "keypoint_frame": 3, "qa_type": qa_type,
                "messages": [{"role": "user", "content": [{"type": "image", "image": image},
                                                          {"type": "text", "text": "Which movement? [[A]] move up"}]}],
                "options": {"A": "move up", "B": "move down"},
                "answer": {"label": "B"},
                "state": {"current": [0.123, -0.456, 0.5], "target": [0.0, 0.0, 0.4], "movement": "move down",
                          "gripper_open": true, "target_gripper_open": true}
            }))
            .unwrap()
        };
        let data = vec![sample("movement", "a.png"), sample("current_state", "a.png"), sample("movement", "b.png")];
        let grounded = target(&data[0], SftMode::Grounded).unwrap();
        let samples = perception_samples(data).unwrap();
        assert_eq!(samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a.png/perceive", "b.png/perceive"]);
        for (s, image) in samples.iter().zip(["a.png", "b.png"]) {
            assert_eq!(s.messages, vec![Message::user_with_image(image, PERCEIVE_QUESTION)]);
            assert_eq!(s.options, None);
            let reply = target(s, SftMode::Perceive).unwrap();
            assert_eq!(reply, "The gripper is at [0.12, -0.46, 0.50].");
            assert!(grounded.contains(&format!("<think>{reply}</think>")), "{grounded}");
        }
        let mut blind = sample("movement", "c.png");
        blind.messages = vec![Message::text("user", "Which movement?")];
        let err = perception_samples(vec![blind]).unwrap_err().to_string();
        assert!(err.contains("t/v0/e0/c.png/movement has no image to perceive"), "{err}");
        // The script that measures perception asks the same question.
        let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../xtask/scripts/perception.py"));
        assert!(script.unwrap().contains(&format!("PERCEIVE_QUESTION = \"{PERCEIVE_QUESTION}\"")));
    }
}
