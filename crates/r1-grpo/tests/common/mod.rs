//! A micro policy for trainer tests: a bigram model over a handful of word tokens that spell
//! Robot-R1 replies (`<think>`, `</think>`, `<answer>`, `[[A]]`, ...), so that r1-reward scores
//! its samples with varied rewards while every step takes milliseconds.

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use r1_data::QaSample;
use r1_grpo::config::TrainConfig;
use r1_grpo::policy::{Completion, Policy, Sampling, ScoreRow};
use r1_grpo::{GrpoError, Result};
use rand::RngExt;
use rand::rngs::StdRng;

pub const WORDS: [&str; 9] =
    ["<think>", r1_grpo::sft::FORMAT_REASONING, "</think>", " ", "<answer>", "[[A]]", "[[B]]", "</answer>", "<eos>"];
const EOS: u32 = 8;
/// ScoreRow of the table used before the first token.
const BOS: usize = WORDS.len();

#[derive(Module, Debug)]
pub struct Bigram {
    /// `[BOS + 1, V]` next-token logits given the previous token.
    pub table: Param<Tensor<2>>,
}

impl Bigram {
    pub fn new(device: &Device, poison: bool) -> Self {
        let v = WORDS.len();
        let mut values: Vec<f32> = (0..(v + 1) * v).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.05).collect();
        if poison {
            values[BOS * v] = f32::NAN;
        }
        Self { table: Param::from_tensor(Tensor::from_data(TensorData::new(values, [v + 1, v]), device)) }
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Bigram::new(device, false)
            .try_load_file(dir.join("model.bpk"))
            .map_err(|e| GrpoError::file(dir, format!("{e:?}")))
    }
}

impl Policy for Bigram {
    fn sample(
        &self,
        prompts: &[&QaSample],
        group: usize,
        sampling: &Sampling,
        rng: &mut StdRng,
    ) -> Result<Vec<Completion>> {
        let v = WORDS.len();
        let table = self.table.val().into_data().try_to_vec::<f32>().unwrap();
        let mut out = Vec::new();
        for _ in 0..prompts.len() * group {
            let (mut prev, mut ids, mut logprobs, mut truncated) = (BOS, Vec::new(), Vec::new(), true);
            for _ in 0..sampling.max_tokens {
                let logits: Vec<f64> =
                    table[prev * v..(prev + 1) * v].iter().map(|&x| x as f64 / sampling.temperature).collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut u = rng.random::<f64>() * total;
                let mut pick = v - 1;
                for (i, w) in weights.iter().enumerate() {
                    if u < *w {
                        pick = i;
                        break;
                    }
                    u -= w;
                }
                ids.push(pick as u32);
                logprobs.push((weights[pick] / total).ln() as f32);
                if pick as u32 == EOS {
                    truncated = false;
                    break;
                }
                prev = pick;
            }
            let text = ids.iter().filter(|&&i| i != EOS).map(|&i| WORDS[i as usize]).collect();
            out.push(Completion { ids, logprobs, text, truncated });
        }
        Ok(out)
    }

    fn logprobs(&self, _prompts: &[&QaSample], rows: &[ScoreRow], temperature: f64) -> Result<Tensor<2>> {
        let completions: Vec<&[u32]> = rows.iter().map(|r| r.ids).collect();
        let b = completions.len();
        let t = completions.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
        let mut prev = Vec::with_capacity(b * t);
        let mut next = Vec::with_capacity(b * t);
        for c in completions {
            for j in 0..t {
                prev.push(if j == 0 { BOS as i64 } else { c.get(j - 1).copied().unwrap_or(0) as i64 });
                next.push(c.get(j).copied().unwrap_or(0) as i64);
            }
        }
        let device = self.table.val().device();
        let prev = Tensor::<1, Int>::from_data(TensorData::new(prev, [b * t]), &device);
        let next = Tensor::<2, Int>::from_data(TensorData::new(next, [b * t, 1]), &device);
        let logits = self.table.val().select(0, prev) / temperature;
        Ok(log_softmax(logits, 1).gather(1, next).reshape([b, t]))
    }

    fn encode_reply(&self, text: &str) -> Result<Vec<u32>> {
        let mut rest = text;
        let mut ids = Vec::new();
        while !rest.is_empty() {
            let (i, w) = WORDS
                .iter()
                .enumerate()
                .find(|(_, w)| rest.starts_with(**w))
                .ok_or_else(|| GrpoError::Invalid(format!("cannot encode {rest:?}")))?;
            ids.push(i as u32);
            rest = &rest[w.len()..];
        }
        ids.push(EOS);
        Ok(ids)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| GrpoError::io(dir, e))?;
        self.clone().save_file(dir.join("model.bpk")).map_err(|e| GrpoError::file(dir, format!("{e:?}")))
    }
}

/// Two multiple-choice samples, answers A and B.
pub fn samples() -> Vec<QaSample> {
    ["A", "B"]
        .iter()
        .enumerate()
        .map(|(i, label)| {
            serde_json::from_value(serde_json::json!({
                "id": format!("t/v0/e{i}/f0/movement"), "task": "t", "variation": 0, "episode": i, "frame": 0,
                "keypoint_frame": 3, "qa_type": "movement",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Which movement?"}]}],
                "options": {"A": "move up", "B": "move down"},
                "answer": {"label": label},
                "state": {"current": [0.0, 0.0, 0.5], "target": [0.0, 0.0, 0.4], "movement": "move down",
                          "gripper_open": true, "target_gripper_open": true}
            }))
            .unwrap()
        })
        .collect()
}

/// A config for the micro policy: 2 prompts x G 4 per rollout, 2 optimiser steps per rollout
/// (so old log-probs and the clip matter), KL to the reference on, 3 steps, a checkpoint each.
pub fn micro_config(model: PathBuf) -> TrainConfig {
    let mut c = TrainConfig::tiny();
    c.model.path = Some(model);
    c.rollout.group_size = 4;
    c.rollout.prompts_per_rollout = 2;
    c.rollout.max_response_tokens = 8;
    c.update.prompts_per_update = 1;
    c.update.micro_batch_size = 2;
    c.optim.lr = 0.05;
    c.run.steps = 3;
    c.run.save_every = 1;
    c.run.keep_last = 5;
    c.run.max_nonfinite_steps = 2;
    c.sft.batch_size = 2;
    c.sft.micro_batch_size = 1;
    c
}

/// Writes an initial model and returns its directory.
pub fn initial_model(root: &Path, device: &Device, poison: bool) -> PathBuf {
    let dir = root.join("initial");
    Bigram::new(device, poison).save(&dir).unwrap();
    dir
}
