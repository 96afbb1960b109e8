//! The GRPO trainer: rollout, rewards, advantages, old and reference log-probs once per
//! rollout, several minibatch updates with gradient accumulation, metrics, completions,
//! checkpoints, exact resume, non-finite loss handling.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use r1_data::QaSample;
use r1_reward::RewardFn;
use serde_json::{Map, Value, json};

use crate::advantage::{self, unbiased_std};
use crate::config::TrainConfig;
use crate::error::{GrpoError, Result};
use crate::loss::{LossInputs, Normaliser, grpo_loss};
use crate::optim::AdamW;
use crate::policy::{Completion, Policy, Sampling, length_mask};
use crate::run::{self, COMPLETIONS_FILE, METRICS_FILE, MODEL_DIR, OPTIMIZER_FILE, RunDir, TrainState};

/// Loads a policy from a model directory onto the training device.
pub type Loader<'a, P> = &'a dyn Fn(&Path) -> Result<P>;

/// A GRPO run in progress.
pub struct Trainer<P: Policy> {
    pub config: TrainConfig,
    pub run: RunDir,
    pub state: TrainState,
    policy: P,
    reference: Option<P>,
    optim: AdamW,
    data: Vec<QaSample>,
    reward: RewardFn,
}

/// What happened in one rollout step (for progress displays).
#[derive(Clone, Debug)]
pub struct StepSummary {
    pub step: u64,
    pub reward_mean: f64,
    /// The metric lines written for this step, one per optimiser step.
    pub metrics: Vec<Map<String, Value>>,
}

impl<P: Policy> Trainer<P> {
    /// Starts a new run in `out` from the model at `config.model.path`.
    pub fn start(config: TrainConfig, out: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        config.validate()?;
        check_data(&config, &data)?;
        let model_path = initial_model(&config)?;
        let policy = load(&model_path)?;
        let reference = load_reference(&config, load)?;
        let run = RunDir::create(out, &config)?;
        let state = TrainState {
            phase: "grpo".into(),
            step: 0,
            optimizer_step: 0,
            cursor: 0,
            seed: config.seed,
            skipped_nonfinite: 0,
            nonfinite_streak: 0,
        };
        let optim = AdamW::new(adamw_config(&config));
        let reward = RewardFn::new(config.reward);
        Ok(Self { config, run, state, policy, reference, optim, data, reward })
    }

    /// Continues the run in `dir` from its newest checkpoint; lines logged after that
    /// checkpoint are dropped so the continued run rewrites them exactly.
    pub fn resume(dir: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        let (run, config) = RunDir::open(dir)?;
        check_data(&config, &data)?;
        let (_, checkpoint) = run
            .latest_checkpoint()?
            .ok_or_else(|| GrpoError::file(dir, "has no checkpoint to resume from"))?;
        let state = RunDir::read_state(&checkpoint)?;
        if state.phase != "grpo" {
            return Err(GrpoError::file(&checkpoint, format!("is a {} checkpoint, not a GRPO one", state.phase)));
        }
        let policy = load(&checkpoint.join(MODEL_DIR))?;
        let reference = load_reference(&config, load)?;
        let mut optim = AdamW::new(adamw_config(&config));
        let device = policy.devices().into_iter().next().ok_or_else(|| GrpoError::file(&checkpoint, "model has no device"))?;
        optim.load(&checkpoint.join(OPTIMIZER_FILE), &device)?;
        run.truncate_after(METRICS_FILE, "step", state.step)?;
        run.truncate_after(COMPLETIONS_FILE, "step", state.step)?;
        let reward = RewardFn::new(config.reward);
        Ok(Self { config, run, state, policy, reference, optim, data, reward })
    }

    /// The policy being trained.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Runs rollout steps until `target_steps` are done, checkpointing every
    /// `run.save_every` steps and at the end; `on_step` sees each step's summary.
    pub fn train(&mut self, target_steps: u64, mut on_step: impl FnMut(&StepSummary)) -> Result<()> {
        while self.state.step < target_steps {
            let summary = self.step(target_steps)?;
            let every = self.config.run.save_every;
            if (every > 0 && summary.step % every == 0) || summary.step == target_steps {
                self.checkpoint()?;
            }
            on_step(&summary);
        }
        Ok(())
    }

    /// Writes `checkpoint-<step>/` (model, optimiser, state).
    pub fn checkpoint(&self) -> Result<std::path::PathBuf> {
        self.run.write_checkpoint(&self.state, self.config.run.keep_last, |dir| {
            self.policy.save(&dir.join(MODEL_DIR))?;
            self.optim.save(&dir.join(OPTIMIZER_FILE))
        })
    }

    /// One rollout step and its optimiser steps.
    fn step(&mut self, target_steps: u64) -> Result<StepSummary> {
        let c = &self.config;
        let step = self.state.step + 1;
        let group = c.rollout.group_size;
        let step_start = Instant::now();
        let mut rng = run::step_rng(self.state.seed, step);
        let indices = run::take_prompts(self.state.seed, self.data.len(), self.state.cursor, c.rollout.prompts_per_rollout);
        let prompts: Vec<&QaSample> = indices.iter().map(|&i| &self.data[i]).collect();
        let sampling =
            Sampling { temperature: c.rollout.temperature, top_p: c.rollout.top_p, max_tokens: c.rollout.max_response_tokens };

        let t = Instant::now();
        let infer = self.policy.valid();
        let completions = infer.sample(&prompts, group, &sampling, &mut rng)?;
        let generate_s = t.elapsed().as_secs_f64();
        if completions.len() != prompts.len() * group {
            return Err(GrpoError::Invalid(format!(
                "the policy returned {} completions for {} prompts x {group}",
                completions.len(),
                prompts.len()
            )));
        }

        let t = Instant::now();
        let mut rewards = Vec::with_capacity(completions.len());
        let mut components: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        let mut scored = Vec::with_capacity(completions.len());
        for (i, comp) in completions.iter().enumerate() {
            let r = self.reward.score(&comp.text, prompts[i / group])?;
            for (component, value) in r.iter() {
                components.entry(component.name()).or_default().push(value);
            }
            rewards.push(r.total());
            scored.push(r);
        }
        let adv = advantage::compute(&rewards, group, c.algorithm.advantage, c.algorithm.advantage_eps)?;
        let reward_s = t.elapsed().as_secs_f64();

        // Rows (completion indices) of each micro-batch, in update order.
        let per_update = c.completions_per_update();
        let micro = c.update.micro_batch_size;
        let rows: Vec<usize> = (0..completions.len()).collect();
        let micro_batches: Vec<&[usize]> = rows.chunks(micro).collect();
        let full_prompts: Vec<&QaSample> = (0..completions.len()).map(|i| prompts[i / group]).collect();
        let batch = Batch { prompts: &full_prompts, completions: &completions, temperature: c.rollout.temperature };

        // With one optimiser step per rollout the sampler's policy is the policy being
        // differentiated, so the old log-probs are the current ones detached (ratio exactly 1).
        let single_update = c.updates_per_rollout() == 1;
        let t = Instant::now();
        let old = if single_update {
            None
        } else {
            Some(micro_batches.iter().map(|m| batch.logprobs(&infer, m)).collect::<Result<Vec<_>>>()?)
        };
        let old_logp_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reference = match &self.reference {
            Some(r) => Some(micro_batches.iter().map(|m| batch.logprobs(r, m)).collect::<Result<Vec<_>>>()?),
            None => None,
        };
        let ref_logp_s = t.elapsed().as_secs_f64();
        drop(infer);

        let lengths: Vec<usize> = completions.iter().map(|c| c.ids.len()).collect();
        let generated: usize = lengths.iter().sum();
        let rollout_metrics = {
            let mut m = Map::new();
            m.insert("step".into(), json!(step));
            m.insert("reward/mean".into(), json!(mean(&rewards)));
            m.insert("reward/std".into(), json!(unbiased_std(&rewards)));
            for (name, values) in &components {
                m.insert(format!("rewards/{name}/mean"), json!(mean(values)));
            }
            m.insert("frac_reward_zero_std".into(), json!(adv.frac_zero_std));
            let lens: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
            m.insert("completions/mean_length".into(), json!(mean(&lens)));
            m.insert("completions/min_length".into(), json!(lengths.iter().min().copied().unwrap_or(0)));
            m.insert("completions/max_length".into(), json!(lengths.iter().max().copied().unwrap_or(0)));
            let clipped = completions.iter().filter(|c| c.truncated).count() as f64 / completions.len() as f64;
            m.insert("completions/clipped_ratio".into(), json!(clipped));
            m.insert("timing/generate".into(), json!(generate_s));
            m.insert("timing/reward".into(), json!(reward_s));
            m.insert("timing/old_logp".into(), json!(old_logp_s));
            m.insert("timing/ref_logp".into(), json!(ref_logp_s));
            m.insert("tokens_per_second/generation".into(), json!(generated as f64 / generate_s.max(1e-9)));
            m
        };

        let micro_per_update = per_update / micro;
        let total_optimizer_steps = target_steps * c.updates_per_rollout() as u64;
        let mut lines = Vec::new();
        for _epoch in 0..c.update.epochs {
            for (u, update_micro) in micro_batches.chunks(micro_per_update).enumerate() {
                let t = Instant::now();
                let update_rows: Vec<usize> = update_micro.iter().flat_map(|m| m.iter().copied()).collect();
                let norm = Normaliser {
                    tokens: update_rows.iter().map(|&r| lengths[r] as f64).sum(),
                    sequences: update_rows.len() as f64,
                    max_len: c.rollout.max_response_tokens as f64,
                };
                let mut acc = GradientsAccumulator::<P>::new();
                let mut sums = UpdateSums::default();
                for (k, m) in update_micro.iter().enumerate() {
                    let index = u * micro_per_update + k;
                    let logp = batch.logprobs(&self.policy, m)?;
                    let [b, tt] = logp.dims();
                    let device = logp.device();
                    let mask = length_mask(&m.iter().map(|&r| lengths[r]).collect::<Vec<_>>(), tt, &device);
                    let old_logp = match &old {
                        Some(old) => old[index].clone(),
                        None => logp.clone().detach(),
                    };
                    let advantages: Vec<f32> = m.iter().map(|&r| adv.values[r] as f32).collect();
                    let out = grpo_loss(
                        LossInputs {
                            logp: logp.clone(),
                            old_logp,
                            ref_logp: reference.as_ref().map(|r| r[index].clone()),
                            advantages: Tensor::from_data(TensorData::new(advantages, [b]), &device),
                            mask: mask.clone(),
                        },
                        &c.algorithm.loss,
                        norm,
                    );
                    let neg_logp_sum = -(logp.detach() * mask).sum();
                    let host = Tensor::cat(
                        vec![out.loss.clone().detach(), out.kl_sum, out.clipped_low_count, out.clipped_high_count, neg_logp_sum],
                        0,
                    )
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| GrpoError::Invalid(format!("cannot read the loss: {e:?}")))?;
                    sums.add(&host);
                    if host[0].is_finite() {
                        let grads = GradientsParams::from_grads(out.loss.backward(), &self.policy);
                        acc.accumulate(&self.policy, grads);
                    }
                }
                let lr = c.optim.schedule.lr(c.optim.lr, self.state.optimizer_step, total_optimizer_steps);
                let mut grad_norm = f64::NAN;
                let applied = if sums.loss.is_finite() {
                    let policy = self.policy.clone();
                    let (policy, report) = self.optim.step(lr, policy, acc.grads());
                    self.policy = policy;
                    grad_norm = report.grad_norm;
                    report.applied
                } else {
                    false
                };
                if applied {
                    self.state.optimizer_step += 1;
                }
                let mut line = rollout_metrics.clone();
                line.insert("optimizer_step".into(), json!(self.state.optimizer_step));
                line.insert("loss".into(), json!(sums.loss));
                line.insert("kl".into(), json!(sums.kl / norm.tokens.max(1.0)));
                line.insert("entropy".into(), json!(sums.neg_logp / norm.tokens.max(1.0)));
                line.insert("clip_ratio/low_mean".into(), json!(sums.clipped_low / norm.tokens.max(1.0)));
                line.insert("clip_ratio/high_mean".into(), json!(sums.clipped_high / norm.tokens.max(1.0)));
                line.insert("grad_norm".into(), json!(grad_norm));
                line.insert("learning_rate".into(), json!(lr));
                note_nonfinite(&mut self.state, applied, c.run.max_nonfinite_steps, &self.run, step)?;
                line.insert("skipped_nonfinite".into(), json!(self.state.skipped_nonfinite));
                let update_s = t.elapsed().as_secs_f64();
                line.insert("timing/update".into(), json!(update_s));
                line.insert("tokens_per_second/training".into(), json!(norm.tokens / update_s.max(1e-9)));
                lines.push(line);
            }
        }
        if let Some(last) = lines.last_mut() {
            last.insert("timing/step".into(), json!(step_start.elapsed().as_secs_f64()));
        }
        for line in &lines {
            self.run.append(METRICS_FILE, &Value::Object(line.clone()))?;
        }
        for (i, comp) in completions.iter().enumerate().take(c.run.log_completions) {
            let line = json!({
                "step": step,
                "prompt_id": prompts[i / group].id,
                "completion": comp.text,
                "length": comp.ids.len(),
                "truncated": comp.truncated,
                "rewards": scored[i],
                "advantage": adv.values[i],
            });
            self.run.append(COMPLETIONS_FILE, &line)?;
        }
        self.state.step = step;
        self.state.cursor += prompts.len() as u64;
        Ok(StepSummary { step, reward_mean: mean(&rewards), metrics: lines })
    }
}

/// The completions of a rollout with their prompts, scored in micro-batches of rows.
struct Batch<'a> {
    prompts: &'a [&'a QaSample],
    completions: &'a [Completion],
    temperature: f64,
}

impl Batch<'_> {
    fn logprobs<P: Policy>(&self, policy: &P, rows: &[usize]) -> Result<Tensor<2>> {
        let prompts: Vec<&QaSample> = rows.iter().map(|&r| self.prompts[r]).collect();
        let ids: Vec<&[u32]> = rows.iter().map(|&r| self.completions[r].ids.as_slice()).collect();
        policy.logprobs(&prompts, &ids, self.temperature)
    }
}

/// Sums over the micro-batches of one optimiser step.
#[derive(Default)]
struct UpdateSums {
    loss: f64,
    kl: f64,
    clipped_low: f64,
    clipped_high: f64,
    neg_logp: f64,
}

impl UpdateSums {
    /// `host` = [loss, kl sum, clipped low, clipped high, -sum logp].
    fn add(&mut self, host: &[f32]) {
        self.loss += host[0] as f64;
        self.kl += host[1] as f64;
        self.clipped_low += host[2] as f64;
        self.clipped_high += host[3] as f64;
        self.neg_logp += host[4] as f64;
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

pub(crate) fn adamw_config(config: &TrainConfig) -> crate::optim::AdamWConfig {
    let mut a = config.optim.adamw.clone();
    if config.model.freeze_vision {
        a.frozen_prefixes.push(crate::VISION_PREFIX.into());
    }
    a
}

pub(crate) fn initial_model(config: &TrainConfig) -> Result<std::path::PathBuf> {
    config.model.path.clone().ok_or_else(|| {
        GrpoError::Invalid("model.path is not set: pass --model DIR (the tiny model is created by `cargo xtask train`)".into())
    })
}

/// The frozen reference (the run's initial model), only when the KL term is used.
fn load_reference<P: Policy>(config: &TrainConfig, load: Loader<P>) -> Result<Option<P>> {
    if config.algorithm.loss.kl_coef > 0.0 { Ok(Some(load(&initial_model(config)?)?.valid())) } else { Ok(None) }
}

fn check_data(config: &TrainConfig, data: &[QaSample]) -> Result<()> {
    if data.is_empty() {
        return Err(GrpoError::Invalid(format!(
            "no training samples in {} (split {})",
            config.data.root.display(),
            config.data.split
        )));
    }
    Ok(())
}

/// Counts a skipped (non-finite) optimiser step, or resets the streak after a good one; stops the
/// run once `max` non-finite steps come in a row. Nothing is checkpointed after a bad step, so
/// the newest checkpoint is the last good state.
pub(crate) fn note_nonfinite(state: &mut TrainState, applied: bool, max: u32, run: &RunDir, step: u64) -> Result<()> {
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
