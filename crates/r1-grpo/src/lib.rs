//! r1-grpo: GRPO and SFT training of r1-model policies on r1-data question sets.
//!
//! * [`advantage`]: rewards to advantages (group-normalised, batch std, Dr. GRPO, RLOO).
//! * [`loss`]: clipped policy loss, dual clip, KL estimators and aggregations on burn tensors.
//! * [`optim`]: AdamW with PyTorch semantics, global gradient-norm clipping, path-keyed state.
//! * [`schedule`]: learning-rate schedules.
//! * [`plan`]: the memory plan of a run, before it starts.
//! * [`bench`]: what `cargo xtask bench` measures (step figures, MFU, peak memory).
//! * [`config`]: the TOML configuration, its presets and validation.
//! * [`policy`]: what the trainers need from a model.
//! * [`qwen`]: the policy for r1-model's Qwen2.5-VL.
//! * [`trainer`]: the training loop: start, resume, steps, metric lines, checkpoints.
//! * [`grpo`]: the GRPO step.
//! * [`sft`]: the supervised step (Direct, CoT, format warm-up).
//! * [`crash`]: crash points for the fault-injection tests.
//! * [`run`]: the run directory, checkpoints, seeded data order for exact resume.
//! * [`metrics`]: the typed lines of `metrics.jsonl`.

pub mod advantage;
pub mod bench;
pub mod config;
pub mod crash;
pub mod error;
pub mod fsio;
pub mod grpo;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod plan;
pub mod policy;
pub mod qwen;
pub mod run;
pub mod schedule;
pub mod sft;
pub mod trainer;

/// Module path of the vision tower as the optimiser walks a [`qwen::QwenPolicy`] (its field
/// `model`, then the model's `visual`): the parameters `freeze_vision` excludes.
pub const VISION_PREFIX: &str = "model.visual";

pub use error::{GrpoError, Result};
