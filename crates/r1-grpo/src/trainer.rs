//! The training loop of every trainer. A [`Trainer`] owns the run folder, the [`TrainState`],
//! the policy and its optimiser: it starts a run, resumes one from its newest checkpoint
//! (dropping the lines logged after it), and runs steps until a target, appending each step's
//! metric lines and checkpointing every `run.save_every` steps. What a step does is an
//! [`Algorithm`]'s: [`Grpo`](crate::grpo::Grpo) samples, scores and updates; [`Sft`](crate::sft::Sft)
//! takes a supervised batch.

use std::path::{Path, PathBuf};

use burn::optim::GradientsAccumulator;
use burn::tensor::Device;

use crate::config::TrainConfig;
use crate::error::{GrpoError, Result};
use crate::metrics::{Metric, StepMetrics};
use crate::optim::{AdamW, AdamWConfig};
use crate::policy::{LoraStart, Policy};
use r1_model::checkpoint::run::{COMPLETIONS_FILE, METRICS_FILE, MODEL_DIR, OPTIMIZER_FILE};

use crate::run::{self, Phase, RunDir, TrainState};

/// Loads a policy from a model directory onto the training device.
pub type Loader<'a, P> = &'a dyn Fn(&Path) -> Result<P>;

/// What a trainer does in a step; the [`Trainer`] does the rest.
pub trait Algorithm<P: Policy> {
    /// The algorithm as errors name it after an article ("a GRPO", "an SFT").
    const NAME: &'static str;

    /// The phase `state.json` records.
    fn phase(&self) -> Phase;

    /// Step `ctx.step`: its metric lines, one per optimiser step, which the trainer appends to
    /// `metrics.jsonl`. The step takes its prompts with [`StepContext::take_prompts`] and
    /// changes the policy with [`StepContext::optimise`].
    fn step(&mut self, ctx: &mut StepContext<'_, P>) -> Result<Vec<StepMetrics>>;
}

/// A run in progress: GRPO's ([`GrpoTrainer`](crate::grpo::GrpoTrainer)) or SFT's
/// ([`SftTrainer`](crate::sft::SftTrainer)).
pub struct Trainer<P: Policy, A: Algorithm<P>> {
    pub config: TrainConfig,
    pub run: RunDir,
    pub state: TrainState,
    policy: P,
    optim: AdamW,
    pub(crate) algorithm: A,
}

/// What a step did, for progress displays.
#[derive(Clone, Debug)]
pub struct StepSummary {
    pub step: u64,
    /// The metric lines written for this step, one per optimiser step.
    pub metrics: Vec<StepMetrics>,
}

impl StepSummary {
    /// `metric` on the step's last line (`None` if it has none).
    pub fn last(&self, metric: Metric) -> Option<f64> {
        (metric.value)(self.metrics.last()?)
    }
}

impl<P: Policy, A: Algorithm<P>> Trainer<P, A> {
    /// Starts a new run in `out` from the model at `config.model.path`; `build` makes the
    /// algorithm from the configuration and the loaded policy.
    pub(crate) fn start_with(
        config: TrainConfig,
        out: &Path,
        load: Loader<P>,
        build: impl FnOnce(&TrainConfig, &P) -> Result<A>,
    ) -> Result<Self> {
        config.validate()?;
        let policy = load_policy(&config, load, &initial_model(&config)?, LoraStart::Fresh)?;
        let algorithm = build(&config, &policy)?;
        let run = RunDir::create(out, &config)?;
        let state = TrainState::new(algorithm.phase(), config.seed);
        let optim = AdamW::new(adamw_config(&config));
        Ok(Self { config, run, state, policy, optim, algorithm })
    }

    /// Continues the run in `dir` from its newest checkpoint. `phase` accepts the checkpoint's
    /// phase (what it returns is passed on to `build`) or refuses it, before anything loads;
    /// `build` makes the algorithm from the configuration and the loaded policy. Lines logged
    /// after that checkpoint are dropped so the continued run rewrites them exactly.
    pub(crate) fn resume_with<T>(
        dir: &Path,
        load: Loader<P>,
        phase: impl FnOnce(Phase) -> Option<T>,
        build: impl FnOnce(&TrainConfig, T, &P) -> Result<A>,
    ) -> Result<Self> {
        let (run, config) = RunDir::open(dir)?;
        let (_, checkpoint) =
            run.latest_checkpoint()?.ok_or_else(|| GrpoError::file(dir, "has no checkpoint to resume from"))?;
        let state = RunDir::read_state(&checkpoint)?;
        let accepted = phase(state.phase).ok_or_else(|| {
            GrpoError::file(&checkpoint, format!("is a {} checkpoint, not {} one", state.phase, A::NAME))
        })?;
        let policy = load_policy(&config, load, &checkpoint.join(MODEL_DIR), LoraStart::Resume)?;
        let device = first_device(&policy).map_err(|_| GrpoError::file(&checkpoint, "model has no device"))?;
        let mut optim = AdamW::new(adamw_config(&config));
        optim.load(&checkpoint.join(OPTIMIZER_FILE), &device)?;
        let algorithm = build(&config, accepted, &policy)?;
        for file in [METRICS_FILE, COMPLETIONS_FILE] {
            run.truncate_after(file, state.step)?;
        }
        Ok(Self { config, run, state, policy, optim, algorithm })
    }

    /// The policy being trained.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Runs steps until `target_steps` are done, checkpointing every `run.save_every` steps
    /// and at the end; `on_step` sees each step's summary.
    pub fn train(&mut self, target_steps: u64, mut on_step: impl FnMut(&StepSummary)) -> Result<()> {
        while self.state.step < target_steps {
            let summary = self.step(target_steps)?;
            let every = self.config.run.save_every;
            if (every > 0 && summary.step.is_multiple_of(every)) || summary.step == target_steps {
                self.checkpoint()?;
            }
            on_step(&summary);
        }
        Ok(())
    }

    /// Writes `checkpoint-<step>/` (model, optimiser, state).
    pub fn checkpoint(&self) -> Result<PathBuf> {
        self.run.save(&self.state, self.config.run.keep_last, &self.policy, &self.optim)
    }

    /// One step of the algorithm, its metric lines appended; the state then counts it.
    fn step(&mut self, target_steps: u64) -> Result<StepSummary> {
        let step = self.state.step + 1;
        let mut ctx = StepContext {
            config: &self.config,
            run: &self.run,
            state: &mut self.state,
            policy: &mut self.policy,
            optim: &mut self.optim,
            step,
            target_steps,
            taken: 0,
        };
        let metrics = self.algorithm.step(&mut ctx)?;
        let taken = ctx.taken;
        for line in &metrics {
            self.run.append(METRICS_FILE, line)?;
        }
        self.state.step = step;
        self.state.cursor += taken;
        Ok(StepSummary { step, metrics })
    }
}

/// What a step works with: the run's configuration, folder and state, the policy and its
/// optimiser.
pub struct StepContext<'a, P: Policy> {
    pub config: &'a TrainConfig,
    /// The run folder, for logs of the algorithm's own (GRPO's completions).
    pub run: &'a RunDir,
    pub state: &'a mut TrainState,
    pub policy: &'a mut P,
    optim: &'a mut AdamW,
    /// The step being taken (`state.step + 1`).
    pub step: u64,
    /// The step the run trains to (the learning-rate schedules end there).
    pub target_steps: u64,
    /// Prompts taken so far in this step.
    taken: u64,
}

impl<P: Policy> StepContext<'_, P> {
    /// Indices of the next `count` of the `n` prompts in the run's seeded order (see
    /// [`run::take_prompts`]); the cursor moves past them once the step is done.
    pub fn take_prompts(&mut self, n: usize, count: usize) -> Vec<usize> {
        let indices = run::take_prompts(self.state.seed, n, self.state.cursor + self.taken, count);
        self.taken += count as u64;
        indices
    }

    /// The device the policy lives on.
    pub fn device(&self) -> Result<Device> {
        first_device(self.policy)
    }

    /// With LoRA dropout, seeds the device's generator (which draws the dropout masks) from the
    /// run's seed, the step and the micro-batch before that micro-batch's forward, so a resumed
    /// run draws the masks an uninterrupted one drew.
    pub fn seed_dropout(&self, micro_batch: u64) -> Result<()> {
        if self.config.lora.as_ref().is_some_and(|l| l.dropout > 0.0) {
            self.device()?.seed(run::mix(run::mix(self.state.seed ^ LORA_DROPOUT_STREAM, self.step), micro_batch));
        }
        Ok(())
    }

    /// One optimiser step at learning rate `lr` with the accumulated gradients, unless `loss`
    /// (their loss) or the gradient norm is not finite: then the step is skipped and counted
    /// (see [`note_nonfinite`]). Returns the gradient norm, not a number when skipped.
    pub fn optimise(&mut self, lr: f64, loss: f64, grads: GradientsAccumulator<P>) -> Result<f64> {
        let mut grad_norm = f64::NAN;
        let mut applied = false;
        if loss.is_finite() {
            let mut grads = grads;
            let (policy, report) = self.optim.step(lr, self.policy.clone(), grads.grads())?;
            *self.policy = policy;
            grad_norm = report.grad_norm;
            applied = report.applied;
        }
        if applied {
            self.state.optimizer_step += 1;
        }
        note_nonfinite(self.state, applied, self.config.run.max_nonfinite_steps, self.run, self.step)?;
        Ok(grad_norm)
    }
}

fn first_device<P: Policy>(policy: &P) -> Result<Device> {
    policy.devices().into_iter().next().ok_or_else(|| GrpoError::Invalid("the policy has no device".into()))
}

/// The optimiser of a run: the configured AdamW, with the vision tower frozen when
/// `model.freeze_vision` says so.
fn adamw_config(config: &TrainConfig) -> AdamWConfig {
    let mut a = config.optim.adamw.clone();
    if config.model.freeze_vision {
        a.frozen_prefixes.push(crate::VISION_PREFIX.into());
    }
    a
}

/// The model a run starts from.
pub(crate) fn initial_model(config: &TrainConfig) -> Result<PathBuf> {
    config.model.path.clone().ok_or_else(|| {
        GrpoError::Invalid(
            "model.path is not set: pass --model DIR (the tiny model is created by `cargo xtask train`)".into(),
        )
    })
}

/// Loads the policy a run trains from `path`, with its LoRA adapters when the run uses LoRA
/// (`start` says whether they are new or the checkpoint's). New adapters are drawn from a
/// stream of the run's seed that nothing else uses.
fn load_policy<P: Policy>(config: &TrainConfig, load: Loader<P>, path: &Path, start: LoraStart) -> Result<P> {
    let policy = load(path)?;
    match &config.lora {
        Some(lora) => policy.with_lora(lora, start, run::mix(config.seed ^ LORA_INIT_STREAM, 0)),
        None => Ok(policy),
    }
}

/// Seed streams of LoRA's random draws, apart from the step streams of `run::step_rng`.
const LORA_INIT_STREAM: u64 = 0x4C6F_5241_496E_6974;
const LORA_DROPOUT_STREAM: u64 = 0x4C6F_5241_4472_6F70;

/// Counts a skipped (non-finite) optimiser step, or resets the streak after a good one; stops the
/// run once `max` non-finite steps come in a row. Nothing is checkpointed after a bad step, so
/// the newest checkpoint is the last good state.
fn note_nonfinite(state: &mut TrainState, applied: bool, max: u32, run: &RunDir, step: u64) -> Result<()> {
    if applied {
        state.nonfinite_streak = 0;
        return Ok(());
    }
    state.skipped_nonfinite += 1;
    state.nonfinite_streak += 1;
    if state.nonfinite_streak < max {
        return Ok(());
    }
    let last = run.latest_checkpoint()?.map(|(_, d)| d.display().to_string());
    Err(GrpoError::Stopped(format!(
        "{} consecutive optimiser steps had a non-finite loss or gradient (step {step}); the last good checkpoint is {}",
        state.nonfinite_streak,
        last.unwrap_or_else(|| "none (no checkpoint was written yet)".into())
    )))
}
