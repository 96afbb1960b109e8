//! Training configuration: a TOML file layered over a preset.
//!
//! The defaults ([`TrainConfig::paper`]) reproduce EasyR1 as Robot-R1 used it (G 5, temperature
//! 1.0, top-p 0.99, lr 1e-6 constant, weight decay 1e-2, clip 0.2/0.3, dual clip 3.0, k3 KL 1e-2
//! in the loss, token-mean, grad clip 1.0, 512 prompts per rollout, 128 per update, responses up
//! to 2048 tokens). [`TrainConfig::tiny`] is the small CPU model's preset. A file only lists what
//! it changes; its optional top-level `preset = "tiny" | "paper"` picks the base.
//!
//! [`TrainConfig::validate`] checks the batch and group arithmetic and every range before
//! anything runs, naming the numbers that disagree.

use std::path::{Path, PathBuf};

use r1_data::dataset::Split;
use r1_data::{QaSample, QaType};
use r1_model::lora::LoraConfig;
use r1_model::{DeviceKind, Precision};
use serde::{Deserialize, Serialize};

use crate::advantage::AdvantageEstimator;
use crate::error::{GrpoError, Result};
use crate::loss::{Aggregation, KlEstimator, LossConfig};
use crate::optim::AdamWConfig;
use crate::schedule::Schedule;
use crate::sft::SftMode;

/// Source of the old log-probs of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldLogprobs {
    /// One optimiser step per rollout: the policy being differentiated is the one that
    /// sampled, so its own log-probs, detached, are the old ones (ratio exactly 1).
    Current,
    /// Tokens drawn from the plain tempered distribution: the sampler's log-probs are the
    /// policy's, no second pass needed.
    Sampled,
    /// Nucleus sampling: the sampler's distribution is truncated, so a teacher-forced pass of
    /// the sampling policy computes them.
    Scored,
}

/// A named starting point for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Preset {
    /// Qwen2.5-VL-7B on a GPU, EasyR1's settings.
    Paper,
    /// The small default model on CPU, a run of minutes.
    Tiny,
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// Everything a GRPO or SFT run needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub preset: Preset,
    pub seed: u64,
    /// `flex` (CPU), `cuda` or `wgpu`.
    pub device: DeviceKind,
    pub model: ModelSection,
    pub data: DataSection,
    pub rollout: RolloutSection,
    pub update: UpdateSection,
    pub algorithm: AlgorithmSection,
    pub optim: OptimSection,
    /// Reward rules and weights (r1-reward's settings; default: strict format 1 + answer 1).
    #[serde(default)]
    pub reward: r1_reward::RewardConfig,
    pub run: RunSection,
    pub sft: SftSection,
    /// LoRA adapters instead of full fine-tuning (absent: off). Only the adapters train, the
    /// frozen base is shared with the reference model (the policy with its adapters off), and
    /// checkpoints hold the adapters in PEFT's layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face Qwen2.5-VL directory; absent: the project's tiny model, created on first use.
    pub path: Option<PathBuf>,
    /// Excludes the vision tower from the updates.
    pub freeze_vision: bool,
    /// burn's gradient checkpointing on the training device: memory-bound operations
    /// (elementwise, normalisation, softmax) are recomputed in the backward pass instead of
    /// kept, compute-bound ones (matmuls) still cached. burn applies it to the whole graph, so
    /// it covers every decoder and vision block at once.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Dtype of every forward pass (generation, scoring, the update): `f32`, or `bf16` with
    /// f32 where precision needs it (see `r1_model::precision`). Master weights, gradients and
    /// AdamW's moments stay f32 either way; the reference model is kept in this dtype.
    #[serde(default)]
    pub dtype: Precision,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Dataset root (the folder holding `qa/`).
    pub root: PathBuf,
    pub split: Split,
    /// Question types trained on: the three multiple-choice types by default, as the paper
    /// trained; `waypoint_open` (its ablation) is available.
    #[serde(default = "multiple_choice")]
    pub qa_types: Vec<QaType>,
}

fn multiple_choice() -> Vec<QaType> {
    QaType::ALL.into_iter().filter(|t| t.is_multiple_choice()).collect()
}

impl DataSection {
    /// The samples of the configured question types, in their order.
    pub fn select(&self, samples: Vec<QaSample>) -> Vec<QaSample> {
        samples.into_iter().filter(|s| self.qa_types.contains(&s.qa_type)).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// Completions per prompt (G).
    pub group_size: usize,
    /// Prompts per rollout batch.
    pub prompts_per_rollout: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_response_tokens: usize,
    /// Prompts generated together (their G completions each, one KV cache): bounds the
    /// generation memory whatever `prompts_per_rollout` is. Absent: all of the rollout's
    /// prompts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_batch_prompts: Option<usize>,
}

impl RolloutSection {
    /// The rollout's prompts `0..prompts_per_rollout` in the chunks generated together.
    pub fn generation_chunks(&self) -> Vec<std::ops::Range<usize>> {
        let n = self.prompts_per_rollout;
        let size = self.generation_batch_prompts.unwrap_or(n).clamp(1, n.max(1));
        (0..n).step_by(size).map(|start| start..(start + size).min(n)).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// Prompts per optimiser step (their G completions each).
    pub prompts_per_update: usize,
    /// Completions per forward/backward pass; the gradients of a minibatch are accumulated.
    pub micro_batch_size: usize,
    /// Passes over each rollout batch.
    pub epochs: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmSection {
    pub advantage: AdvantageEstimator,
    /// `eps` of the group normalisation.
    pub advantage_eps: f64,
    pub loss: LossConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    pub adamw: AdamWConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Rollout steps of GRPO.
    pub steps: u64,
    /// Checkpoint every N rollout steps (0: only at the end).
    pub save_every: u64,
    /// Checkpoints kept (older ones are deleted).
    pub keep_last: usize,
    /// Consecutive non-finite losses after which the run stops.
    pub max_nonfinite_steps: u32,
    /// Completions per rollout written to `completions.jsonl` (0: none).
    pub log_completions: usize,
}

/// Supervised fine-tuning (the paper's Direct/CoT SFT baselines and the tiny model's warm-up).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftSection {
    pub lr: f64,
    pub schedule: Schedule,
    /// Samples per optimiser step.
    pub batch_size: usize,
    pub micro_batch_size: usize,
    pub epochs: usize,
    /// Optimiser steps of the format warm-up before GRPO (0: none).
    pub warmup_steps: u64,
    /// What the warm-up teaches: `format` (the reply's shape) or `grounded` (the shape, with
    /// the gripper's true position as the reasoning); neither says which option is right. The
    /// other SFT modes teach no reply format and are refused here.
    #[serde(default = "format_mode")]
    pub warmup_mode: SftMode,
}

fn format_mode() -> SftMode {
    SftMode::Format
}

impl TrainConfig {
    /// EasyR1's settings as Robot-R1 used them, for Qwen2.5-VL-7B on a GPU.
    pub fn paper() -> Self {
        Self {
            preset: Preset::Paper,
            seed: 1,
            device: DeviceKind::Cuda,
            model: ModelSection {
                path: Some(PathBuf::from("models/Qwen2.5-VL-7B-Instruct")),
                freeze_vision: false,
                gradient_checkpointing: false,
                dtype: Precision::Bf16,
            },
            data: DataSection {
                root: PathBuf::from("datasets/default"),
                split: Split::Train,
                qa_types: multiple_choice(),
            },
            rollout: RolloutSection {
                group_size: 5,
                prompts_per_rollout: 512,
                temperature: 1.0,
                top_p: 0.99,
                max_response_tokens: 2048,
                // 160 sequences of up to ~2,650 tokens: a 7B model's KV cache in f32 then
                // takes about 49 GB (see the memory plan); all 512 prompts at once, 780 GB.
                generation_batch_prompts: Some(32),
            },
            update: UpdateSection { prompts_per_update: 128, micro_batch_size: 8, epochs: 1 },
            algorithm: AlgorithmSection {
                advantage: AdvantageEstimator::Grpo,
                advantage_eps: 1e-6,
                loss: LossConfig {
                    clip_low: 0.2,
                    clip_high: 0.3,
                    dual_clip: Some(3.0),
                    kl_coef: 1e-2,
                    kl_estimator: KlEstimator::K3,
                    kl_clamp: Some(10.0),
                    aggregation: Aggregation::TokenMean,
                },
            },
            optim: OptimSection { lr: 1e-6, schedule: Schedule::Constant, adamw: AdamWConfig::default() },
            reward: r1_reward::RewardConfig::default(),
            run: RunSection { steps: 70, save_every: 5, keep_last: 3, max_nonfinite_steps: 3, log_completions: 16 },
            sft: SftSection {
                lr: 1e-5,
                schedule: Schedule::WarmupCosine { warmup_ratio: 0.03 },
                batch_size: 128,
                micro_batch_size: 8,
                epochs: 1,
                warmup_steps: 0,
                warmup_mode: SftMode::Format,
            },
            lora: None,
        }
    }

    /// The small default model on CPU: a run of minutes whose reward visibly rises.
    pub fn tiny() -> Self {
        let mut c = Self::paper();
        c.preset = Preset::Tiny;
        c.device = DeviceKind::Flex;
        c.model.path = None;
        c.model.dtype = Precision::F32;
        c.rollout = RolloutSection {
            group_size: 4,
            prompts_per_rollout: 4,
            temperature: 1.0,
            top_p: 1.0,
            max_response_tokens: 32,
            generation_batch_prompts: None,
        };
        // One optimiser step per rollout: the ratio is 1 and no old log-probs are computed,
        // which keeps a step at a few seconds on 2 cores.
        c.update = UpdateSection { prompts_per_update: 4, micro_batch_size: 16, epochs: 1 };
        // A model of a million parameters needs a far larger step than a 7B one.
        c.optim.lr = 3e-4;
        c.run = RunSection { steps: 200, save_every: 50, keep_last: 2, max_nonfinite_steps: 3, log_completions: 16 };
        // The format warm-up: a constant, large rate, because the shape of the reply must be
        // learnt in a couple of minutes.
        c.sft = SftSection {
            lr: 3e-3,
            schedule: Schedule::Constant,
            batch_size: 8,
            micro_batch_size: 8,
            epochs: 1,
            warmup_steps: 60,
            warmup_mode: SftMode::Format,
        };
        c
    }

    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Paper => Self::paper(),
            Preset::Tiny => Self::tiny(),
        }
    }

    /// The training device: `kind` (a `--device` override) or the configured one, with
    /// autodiff, and gradient checkpointing when `model.gradient_checkpointing` asks for it.
    pub fn training_device(&self, kind: Option<DeviceKind>) -> Result<burn::tensor::Device> {
        let device = kind.unwrap_or(self.device).device()?.autodiff();
        Ok(if self.model.gradient_checkpointing { device.gradient_checkpointing() } else { device })
    }

    /// Parses TOML text layered over a preset: the text's own `preset` key if present, else
    /// `default_preset`. `origin` names the source in errors.
    pub fn from_toml(text: &str, default_preset: Preset, origin: &Path) -> Result<Self> {
        let overrides: toml::Table = toml::from_str(text).map_err(|e| GrpoError::file(origin, e))?;
        let preset = match overrides.get("preset") {
            Some(toml::Value::String(s)) => {
                r1_data::names::parse_name(s, "preset").map_err(|e| GrpoError::file(origin, GrpoError::Invalid(e)))?
            }
            Some(other) => {
                return Err(GrpoError::file(origin, format!("`preset` must be a string, not {other}")));
            }
            None => default_preset,
        };
        let mut base = toml::Table::try_from(Self::preset(preset)).map_err(|e| GrpoError::file(origin, e))?;
        merge(&mut base, overrides);
        let config: Self = base.try_into().map_err(|e| GrpoError::file(origin, e))?;
        config.validate().map_err(|e| GrpoError::file(origin, e))?;
        Ok(config)
    }

    /// Reads a TOML configuration file (see [`TrainConfig::from_toml`]).
    pub fn load(path: &Path, default_preset: Preset) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| GrpoError::io(path, e))?;
        Self::from_toml(&text, default_preset, path)
    }

    /// The configuration as TOML (what a run directory records as `config.toml`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| GrpoError::Invalid(format!("cannot write the configuration as TOML: {e}")))
    }

    /// Completions per rollout batch.
    pub fn completions_per_rollout(&self) -> usize {
        self.rollout.prompts_per_rollout * self.rollout.group_size
    }

    /// Completions per optimiser step.
    pub fn completions_per_update(&self) -> usize {
        self.update.prompts_per_update * self.rollout.group_size
    }

    /// Optimiser steps per rollout batch.
    pub fn updates_per_rollout(&self) -> usize {
        self.rollout.prompts_per_rollout / self.update.prompts_per_update * self.update.epochs
    }

    /// Where a rollout's old log-probs (the importance ratio's denominator) come from.
    pub fn old_logprobs(&self) -> OldLogprobs {
        let r = &self.rollout;
        if self.updates_per_rollout() == 1 {
            OldLogprobs::Current
        } else if r.temperature > 0.0 && r.top_p >= 1.0 {
            OldLogprobs::Sampled
        } else {
            OldLogprobs::Scored
        }
    }

    /// Checks ranges and batch arithmetic; the message names the numbers that disagree.
    pub fn validate(&self) -> Result<()> {
        let r = &self.rollout;
        let u = &self.update;
        let l = &self.algorithm.loss;
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        check(
            r.group_size >= 2,
            format!("rollout.group_size = {} must be at least 2 (GRPO needs a baseline)", r.group_size),
        );
        check(!self.data.qa_types.is_empty(), "data.qa_types is empty: name at least one question type".into());
        check(r.prompts_per_rollout >= 1, "rollout.prompts_per_rollout must be at least 1".into());
        check(u.prompts_per_update >= 1, "update.prompts_per_update must be at least 1".into());
        check(
            u.prompts_per_update >= 1 && r.prompts_per_rollout.is_multiple_of(u.prompts_per_update.max(1)),
            format!(
                "rollout.prompts_per_rollout = {} is not a multiple of update.prompts_per_update = {}",
                r.prompts_per_rollout, u.prompts_per_update
            ),
        );
        check(
            u.micro_batch_size >= 1 && self.completions_per_update().is_multiple_of(u.micro_batch_size.max(1)),
            format!(
                "update.micro_batch_size = {} does not divide the {} completions of an update \
                 (update.prompts_per_update = {} x rollout.group_size = {})",
                u.micro_batch_size,
                self.completions_per_update(),
                u.prompts_per_update,
                r.group_size
            ),
        );
        check(u.epochs >= 1, "update.epochs must be at least 1".into());
        check(r.temperature > 0.0, format!("rollout.temperature = {} must be positive", r.temperature));
        check(r.top_p > 0.0 && r.top_p <= 1.0, format!("rollout.top_p = {} must be in (0, 1]", r.top_p));
        check(r.max_response_tokens >= 1, "rollout.max_response_tokens must be at least 1".into());
        check(
            r.generation_batch_prompts != Some(0),
            "rollout.generation_batch_prompts must be at least 1 (leave it out to generate all prompts at once)".into(),
        );
        check(
            l.clip_low > 0.0 && l.clip_low < 1.0,
            format!("algorithm.loss.clip_low = {} must be in (0, 1)", l.clip_low),
        );
        check(l.clip_high > 0.0, format!("algorithm.loss.clip_high = {} must be positive", l.clip_high));
        if let Some(c) = l.dual_clip {
            check(c > 1.0, format!("algorithm.loss.dual_clip = {c} must exceed 1"));
        }
        check(
            l.kl_coef >= 0.0 && l.kl_coef.is_finite(),
            format!("algorithm.loss.kl_coef = {} must be >= 0", l.kl_coef),
        );
        if let Some(c) = l.kl_clamp {
            check(c > 0.0, format!("algorithm.loss.kl_clamp = {c} must be positive"));
        }
        check(self.algorithm.advantage_eps >= 0.0, "algorithm.advantage_eps must be >= 0".into());
        let a = &self.optim.adamw;
        check(self.optim.lr > 0.0, format!("optim.lr = {} must be positive", self.optim.lr));
        check((0.0..1.0).contains(&a.beta1), format!("optim.adamw.beta1 = {} must be in [0, 1)", a.beta1));
        check((0.0..1.0).contains(&a.beta2), format!("optim.adamw.beta2 = {} must be in [0, 1)", a.beta2));
        check(a.eps > 0.0, format!("optim.adamw.eps = {} must be positive", a.eps));
        check(a.weight_decay >= 0.0, format!("optim.adamw.weight_decay = {} must be >= 0", a.weight_decay));
        if let Some(m) = a.max_grad_norm {
            check(m > 0.0, format!("optim.adamw.max_grad_norm = {m} must be positive"));
        }
        let s = &self.sft;
        check(s.lr > 0.0, format!("sft.lr = {} must be positive", s.lr));
        check(
            s.micro_batch_size >= 1 && s.batch_size.is_multiple_of(s.micro_batch_size.max(1)),
            format!("sft.micro_batch_size = {} does not divide sft.batch_size = {}", s.micro_batch_size, s.batch_size),
        );
        check(
            matches!(s.warmup_mode, SftMode::Format | SftMode::Grounded),
            format!(
                "sft.warmup_mode = \"{}\" teaches no reply format: the warm-up before GRPO is \"format\" or \"grounded\"",
                s.warmup_mode
            ),
        );
        check(self.run.keep_last >= 1, "run.keep_last must be at least 1".into());
        check(self.run.max_nonfinite_steps >= 1, "run.max_nonfinite_steps must be at least 1".into());
        if let Some(lora) = &self.lora {
            for problem in lora.problems() {
                check(false, problem);
            }
            check(
                !(lora.vision && self.model.freeze_vision),
                "lora.vision = true adapts the vision tower that model.freeze_vision = true freezes: choose one".into(),
            );
        }
        if problems.is_empty() { Ok(()) } else { Err(GrpoError::Invalid(problems.join("; "))) }
    }
}

/// Overlays `over` on `base`, table by table (a value in `over` replaces the one in `base`).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The chunks cover the rollout's prompts once, in order, none larger than asked.
        #[test]
        fn generation_chunks_cover_the_prompts(n in 1usize..600, size in proptest::option::of(1usize..100)) {
            let mut r = TrainConfig::tiny().rollout;
            r.prompts_per_rollout = n;
            r.generation_batch_prompts = size;
            let chunks = r.generation_chunks();
            let flat: Vec<usize> = chunks.iter().flat_map(|c| c.clone()).collect();
            proptest::prop_assert_eq!(flat, (0..n).collect::<Vec<_>>());
            proptest::prop_assert!(chunks.iter().all(|c| c.len() <= size.unwrap_or(n)));
        }
    }

    #[test]
    fn presets_are_valid_and_paper_matches_easyr1() {
        TrainConfig::tiny().validate().unwrap();
        let p = TrainConfig::paper();
        p.validate().unwrap();
        assert_eq!(p.rollout.group_size, 5);
        assert_eq!(p.updates_per_rollout(), 4);
        assert_eq!(p.algorithm.loss.kl_estimator, KlEstimator::K3);
        assert_eq!(p.optim.adamw.eps, 1e-8);
    }

    /// One update per rollout needs no old log-probs; several take the sampler's unless the
    /// paper's nucleus sampling truncates its distribution.
    #[test]
    fn old_logprobs_follow_updates_and_sampling() {
        assert_eq!(TrainConfig::tiny().old_logprobs(), OldLogprobs::Current);
        let mut p = TrainConfig::paper();
        assert_eq!(p.old_logprobs(), OldLogprobs::Scored);
        p.rollout.top_p = 1.0;
        assert_eq!(p.old_logprobs(), OldLogprobs::Sampled);
        p.rollout.temperature = 0.0;
        assert_eq!(p.old_logprobs(), OldLogprobs::Scored);
    }

    /// The shipped files parse and restate their presets exactly, so they cannot drift apart.
    #[test]
    fn shipped_config_files_are_their_presets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (file, preset) in [("tiny.toml", Preset::Tiny), ("paper.toml", Preset::Paper)] {
            let path = root.join(file);
            let mut loaded = TrainConfig::load(&path, Preset::Paper).unwrap();
            let mut expected = TrainConfig::preset(preset);
            // The files name a model folder; the presets leave it to the command line.
            loaded.model.path = None;
            expected.model.path = None;
            assert_eq!(loaded, expected, "{}", path.display());
        }
    }

    /// The other shipped files (layered over a preset, like a user's) load and validate.
    #[test]
    fn shipped_overlay_files_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for file in ["perceive.toml", "compare.toml"] {
            let c = TrainConfig::load(&root.join(file), Preset::Paper).unwrap();
            assert_eq!((c.preset, c.sft.batch_size), (Preset::Tiny, 32), "{file}");
        }
    }

    #[test]
    fn file_overrides_its_preset_and_round_trips() {
        let c = TrainConfig::from_toml(
            "preset = \"tiny\"\n[rollout]\ngroup_size = 8\n",
            Preset::Paper,
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.preset, Preset::Tiny);
        assert_eq!(c.rollout.group_size, 8);
        assert_eq!(c.rollout.max_response_tokens, TrainConfig::tiny().rollout.max_response_tokens);
        let again = TrainConfig::from_toml(&c.to_toml().unwrap(), Preset::Paper, Path::new("y.toml")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn arithmetic_errors_name_the_numbers() {
        let text = "[rollout]\nprompts_per_rollout = 500\n";
        let err = TrainConfig::from_toml(text, Preset::Paper, Path::new("bad.toml")).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("prompts_per_rollout = 500") && err.contains("prompts_per_update = 128"), "{err}");
        let err = TrainConfig::from_toml("[update]\nmicro_batch_size = 7\n", Preset::Paper, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("micro_batch_size = 7") && err.contains("640"), "{err}");
        let err = TrainConfig::from_toml("[sft]\nwarmup_mode = \"perceive\"\n", Preset::Tiny, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("w.toml") && err.contains("sft.warmup_mode = \"perceive\" teaches no reply format"),
            "{err}"
        );
    }

    /// `[lora]` turns LoRA on with PEFT-like defaults, round-trips through the run's
    /// `config.toml`, and bad settings are refused with the key named.
    #[test]
    fn lora_section_is_optional_and_validated() {
        assert_eq!(TrainConfig::tiny().lora, None);
        let c = TrainConfig::from_toml("[lora]\nr = 4\n", Preset::Tiny, Path::new("l.toml")).unwrap();
        let lora = c.lora.clone().unwrap();
        assert_eq!((lora.r, lora.alpha), (4, LoraConfig::default().alpha));
        assert_eq!(lora.target_modules.len(), 7);
        let again = TrainConfig::from_toml(&c.to_toml().unwrap(), Preset::Paper, Path::new("y.toml")).unwrap();
        assert_eq!(again, c);
        for (text, needle) in [
            ("[lora]\nr = 0\n", "lora.r"),
            ("[lora]\ndropout = 1.0\n", "lora.dropout"),
            ("[lora]\nalpha = -1.0\n", "lora.alpha"),
            ("[lora]\ntarget_modules = [\"q_porj\"]\n", "q_porj"),
            ("[lora]\ntarget_modules = [\"qkv\"]\n", "lora.vision = true"),
            ("[lora]\nvision = true\ntarget_modules = [\"q_proj\"]\n", "no vision-tower projection"),
            ("[model]\nfreeze_vision = true\n[lora]\nvision = true\ntarget_modules = [\"qkv\"]\n", "freeze_vision"),
            ("[lora]\nrank = 4\n", "rank"),
        ] {
            let err = TrainConfig::from_toml(text, Preset::Tiny, Path::new("l.toml")).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    /// Presets, SFT modes, devices and splits keep their spellings in files and on the command
    /// line; an unknown one is refused with the accepted names.
    #[test]
    fn names_keep_their_spellings() {
        for (mode, name) in [
            (SftMode::Direct, "direct"),
            (SftMode::Cot, "cot"),
            (SftMode::Format, "format"),
            (SftMode::Grounded, "grounded"),
            (SftMode::Perceive, "perceive"),
        ] {
            assert_eq!((mode.as_str(), mode.to_string()), (name, name.to_string()));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{name}\""));
            assert_eq!(name.parse::<SftMode>().unwrap(), mode);
        }
        let err = "cto".parse::<SftMode>().unwrap_err().to_string();
        assert!(err.contains("unknown SFT mode \"cto\" (expected direct, cot, format, grounded or perceive)"), "{err}");
        for (preset, name) in [(Preset::Tiny, "tiny"), (Preset::Paper, "paper")] {
            assert_eq!(preset.to_string(), name);
            let text = format!("preset = \"{name}\"\n");
            assert_eq!(TrainConfig::from_toml(&text, Preset::Paper, Path::new("p.toml")).unwrap().preset, preset);
        }
        let err = TrainConfig::from_toml("preset = \"big\"\n", Preset::Paper, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown preset \"big\" (expected paper or tiny)"), "{err}");
        let text = TrainConfig::tiny().to_toml().unwrap();
        assert!(text.contains("device = \"flex\"") && text.contains("split = \"train\""), "{text}");
        let c =
            TrainConfig::from_toml("device = \"cpu\"\n[data]\nsplit = \"val\"\n", Preset::Tiny, Path::new("d.toml"))
                .unwrap();
        assert_eq!((c.device, c.data.split), (DeviceKind::Flex, Split::Val));
        let err = TrainConfig::from_toml("[data]\nsplit = \"dev\"\n", Preset::Tiny, Path::new("d.toml")).unwrap_err();
        assert!(err.to_string().contains("dev") && err.to_string().contains("val"), "{err}");
        let err = TrainConfig::from_toml("device = \"tpu\"\n", Preset::Tiny, Path::new("d.toml")).unwrap_err();
        assert!(err.to_string().contains("tpu") && err.to_string().contains("wgpu"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = TrainConfig::from_toml("[rollout]\ngroup_sise = 3\n", Preset::Tiny, Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("group_sise"), "{err}");
    }

    #[test]
    fn shipped_config_files_equal_the_presets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (name, preset) in [("tiny.toml", Preset::Tiny), ("paper.toml", Preset::Paper)] {
            let c = TrainConfig::load(&root.join(name), Preset::Paper).unwrap();
            assert_eq!(c, TrainConfig::preset(preset), "{name}");
        }
    }
}
