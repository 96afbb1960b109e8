//! The GRPO trainer. A step reads like EasyR1's: [`rollout`](Trainer::rollout) samples `G`
//! completions per prompt, [`score`](Trainer::score) turns their rewards into advantages,
//! [`baselines`](Trainer::baselines) computes the old and reference log-probs once per rollout,
//! and [`update`](Trainer::update) runs the optimiser steps over micro-batches with gradient
//! accumulation. Around them: metrics, completions, checkpoints, exact resume, non-finite loss
//! handling.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use r1_data::QaSample;
use r1_reward::{RewardFn, Rewards};
use serde_json::{Map, Value, json};

use crate::advantage::{self, Advantages, unbiased_std};
use crate::config::{OldLogprobs, TrainConfig};
use crate::error::{GrpoError, Result};
use crate::loss::{LossInputs, Normaliser, grpo_loss};
use crate::metrics::{self, RolloutMetrics, StepMetrics, UpdateMetrics};
use crate::optim::AdamW;
use crate::policy::{Completion, LoraStart, Policy, Sampling, ScoreRow, length_mask};
use crate::run::{self, COMPLETIONS_FILE, METRICS_FILE, MODEL_DIR, OPTIMIZER_FILE, Phase, RunDir, TrainState};

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
    data: Arc<[QaSample]>,
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

/// The rollout phase: the step's prompts (each once) and their completions, prompt-major
/// (`completions[p * G + i]` follows `prompts[p]`).
struct Rollout<'a> {
    prompts: Vec<&'a QaSample>,
    completions: Vec<Completion>,
    seconds: f64,
}

impl Rollout<'_> {
    /// The prompts of `rows` (completion indices, consecutive) each once, and the rows
    /// pointing into them.
    fn micro_batch(&self, rows: &[usize], group: usize) -> (Vec<&QaSample>, Vec<ScoreRow<'_>>) {
        let first = rows.first().map_or(0, |&r| r / group);
        let last = rows.last().map_or(0, |&r| r / group);
        let prompts = self.prompts[first..=last].to_vec();
        let rows =
            rows.iter().map(|&r| ScoreRow { prompt: r / group - first, ids: &self.completions[r].ids }).collect();
        (prompts, rows)
    }

    fn lengths(&self) -> Vec<usize> {
        self.completions.iter().map(|c| c.ids.len()).collect()
    }
}

/// The scoring phase: rewards (total and per component) and advantages.
struct Scored {
    rewards: Vec<f64>,
    per_completion: Vec<Rewards>,
    advantages: Advantages,
    seconds: f64,
}

/// Old-policy and reference log-probs, one `[rows, T]` tensor per micro-batch; `None` for the
/// old ones when the update differentiates the sampling policy itself (one optimiser step per
/// rollout: the ratio is exactly 1) and for the reference without a KL term.
struct Baselines {
    old: Option<Vec<Tensor<2>>>,
    reference: Option<Vec<Tensor<2>>>,
    old_seconds: f64,
    ref_seconds: f64,
}

impl<P: Policy> Trainer<P> {
    /// Starts a new run in `out` from the model at `config.model.path`.
    pub fn start(config: TrainConfig, out: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        config.validate()?;
        check_data(&config, &data)?;
        let model_path = initial_model(&config)?;
        let policy = load_policy(&config, load, &model_path, LoraStart::Fresh)?;
        let reference = load_reference(&config, load)?;
        let run = RunDir::create(out, &config)?;
        let state = TrainState {
            phase: Phase::Grpo,
            step: 0,
            optimizer_step: 0,
            cursor: 0,
            seed: config.seed,
            skipped_nonfinite: 0,
            nonfinite_streak: 0,
        };
        let optim = AdamW::new(adamw_config(&config));
        let reward = RewardFn::new(config.reward);
        Ok(Self { config, run, state, policy, reference, optim, data: data.into(), reward })
    }

    /// Continues the run in `dir` from its newest checkpoint; lines logged after that
    /// checkpoint are dropped so the continued run rewrites them exactly.
    pub fn resume(dir: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        let (run, config) = RunDir::open(dir)?;
        check_data(&config, &data)?;
        let (_, checkpoint) =
            run.latest_checkpoint()?.ok_or_else(|| GrpoError::file(dir, "has no checkpoint to resume from"))?;
        let state = RunDir::read_state(&checkpoint)?;
        if state.phase != Phase::Grpo {
            return Err(GrpoError::file(&checkpoint, format!("is a {} checkpoint, not a GRPO one", state.phase)));
        }
        let policy = load_policy(&config, load, &checkpoint.join(MODEL_DIR), LoraStart::Resume)?;
        let reference = load_reference(&config, load)?;
        let mut optim = AdamW::new(adamw_config(&config));
        let device =
            policy.devices().into_iter().next().ok_or_else(|| GrpoError::file(&checkpoint, "model has no device"))?;
        optim.load(&checkpoint.join(OPTIMIZER_FILE), &device)?;
        run.truncate_after(METRICS_FILE, "step", state.step)?;
        run.truncate_after(COMPLETIONS_FILE, "step", state.step)?;
        let reward = RewardFn::new(config.reward);
        Ok(Self { config, run, state, policy, reference, optim, data: data.into(), reward })
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
        self.run.save(&self.state, self.config.run.keep_last, &self.policy, &self.optim)
    }

    /// One rollout step and its optimiser steps.
    fn step(&mut self, target_steps: u64) -> Result<StepSummary> {
        let step = self.state.step + 1;
        let step_start = Instant::now();
        let mut rng = run::step_rng(self.state.seed, step);
        // The rollout borrows its prompts while the update changes the trainer.
        let data = Arc::clone(&self.data);
        let rollout = self.rollout(&data, &mut rng)?;
        let scored = self.score(&rollout)?;
        let micro_batches = self.micro_batches(rollout.completions.len());
        let baselines = self.baselines(&rollout, &micro_batches)?;
        let rollout_metrics = self.rollout_metrics(step, &rollout, &scored, &baselines);
        let updates = self.update(&rollout, &scored, &baselines, &micro_batches, target_steps, step)?;
        let count = updates.len();
        let lines: Vec<Map<String, Value>> = updates
            .into_iter()
            .enumerate()
            .map(|(i, update)| {
                let last = i + 1 == count;
                let step_s = last.then(|| step_start.elapsed().as_secs_f64());
                let host_rss_mib = if last { metrics::host_rss_mib() } else { None };
                StepMetrics { rollout: rollout_metrics.clone(), update, step_s, host_rss_mib }.to_map()
            })
            .collect();
        for line in &lines {
            self.run.append(METRICS_FILE, &Value::Object(line.clone()))?;
        }
        self.log_completions(step, &rollout, &scored)?;
        self.state.step = step;
        self.state.cursor += rollout.prompts.len() as u64;
        Ok(StepSummary { step, reward_mean: mean(&scored.rewards), metrics: lines })
    }

    /// Samples `G` completions for each of the step's prompts with the inference view.
    fn rollout<'d>(&self, data: &'d [QaSample], rng: &mut rand::rngs::StdRng) -> Result<Rollout<'d>> {
        let c = &self.config;
        let group = c.rollout.group_size;
        let indices = run::take_prompts(self.state.seed, data.len(), self.state.cursor, c.rollout.prompts_per_rollout);
        let prompts: Vec<&QaSample> = indices.iter().map(|&i| &data[i]).collect();
        let t = Instant::now();
        let infer = self.policy.valid();
        let mut completions = Vec::with_capacity(prompts.len() * group);
        for chunk in c.rollout.generation_chunks() {
            completions.extend(infer.sample(&prompts[chunk], group, &self.sampling(), rng)?);
        }
        let seconds = t.elapsed().as_secs_f64();
        if completions.len() != prompts.len() * group {
            return Err(GrpoError::Invalid(format!(
                "the policy returned {} completions for {} prompts x {group}",
                completions.len(),
                prompts.len()
            )));
        }
        Ok(Rollout { prompts, completions, seconds })
    }

    fn sampling(&self) -> Sampling {
        let r = &self.config.rollout;
        Sampling { temperature: r.temperature, top_p: r.top_p, max_tokens: r.max_response_tokens }
    }

    /// Rewards every completion against its prompt and computes the advantages.
    fn score(&self, rollout: &Rollout) -> Result<Scored> {
        let c = &self.config;
        let group = c.rollout.group_size;
        let t = Instant::now();
        let per_completion = rollout
            .completions
            .iter()
            .enumerate()
            .map(|(i, comp)| Ok(self.reward.score(&comp.text, rollout.prompts[i / group])?))
            .collect::<Result<Vec<Rewards>>>()?;
        let rewards: Vec<f64> = per_completion.iter().map(Rewards::total).collect();
        let advantages = advantage::compute(&rewards, group, c.algorithm.advantage, c.algorithm.advantage_eps)?;
        Ok(Scored { rewards, per_completion, advantages, seconds: t.elapsed().as_secs_f64() })
    }

    /// Rows (completion indices) of each micro-batch, in update order.
    fn micro_batches(&self, completions: usize) -> Vec<Vec<usize>> {
        let rows: Vec<usize> = (0..completions).collect();
        rows.chunks(self.config.update.micro_batch_size).map(<[usize]>::to_vec).collect()
    }

    /// Old and reference log-probs for every micro-batch (see [`OldLogprobs`] for where the
    /// old ones come from).
    fn baselines(&self, rollout: &Rollout, micro_batches: &[Vec<usize>]) -> Result<Baselines> {
        let group = self.config.rollout.group_size;
        let score = |policy: &P, rows: &[usize]| {
            let (prompts, rows) = rollout.micro_batch(rows, group);
            policy.logprobs(&prompts, &rows, self.config.rollout.temperature)
        };
        let t = Instant::now();
        let old = match self.config.old_logprobs() {
            OldLogprobs::Current => None,
            OldLogprobs::Sampled => {
                let device = self.device()?;
                Some(micro_batches.iter().map(|m| sampled_logprobs(&rollout.completions, m, &device)).collect())
            }
            OldLogprobs::Scored => {
                let infer = self.policy.valid();
                Some(micro_batches.iter().map(|m| score(&infer, m)).collect::<Result<Vec<_>>>()?)
            }
        };
        let old_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reference = match self.reference_view() {
            Some(r) => Some(micro_batches.iter().map(|m| score(&r, m)).collect::<Result<Vec<_>>>()?),
            None => None,
        };
        Ok(Baselines { old, reference, old_seconds, ref_seconds: t.elapsed().as_secs_f64() })
    }

    /// The reference model when the KL term needs one: the loaded copy, or under LoRA the
    /// policy's inference view with its adapters left out (the frozen base, no second copy).
    fn reference_view(&self) -> Option<P> {
        match &self.reference {
            Some(r) => Some(r.clone()),
            None if self.config.lora.is_some() && self.config.algorithm.loss.kl_coef > 0.0 => {
                Some(self.policy.valid().without_adapters())
            }
            None => None,
        }
    }

    fn device(&self) -> Result<Device> {
        self.policy.devices().into_iter().next().ok_or_else(|| GrpoError::Invalid("the policy has no device".into()))
    }

    fn rollout_metrics(&self, step: u64, rollout: &Rollout, scored: &Scored, baselines: &Baselines) -> RolloutMetrics {
        let mut components: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for r in &scored.per_completion {
            for (component, value) in r.iter() {
                components.entry(component.name()).or_default().push(value);
            }
        }
        let lengths = rollout.lengths();
        let lens: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
        let n = rollout.completions.len() as f64;
        RolloutMetrics {
            step,
            reward_mean: mean(&scored.rewards),
            reward_std: unbiased_std(&scored.rewards),
            components: components
                .iter()
                .map(|(name, values)| (format!("rewards/{name}/mean"), mean(values)))
                .collect(),
            frac_reward_zero_std: scored.advantages.frac_zero_std,
            mean_length: mean(&lens),
            min_length: lengths.iter().min().copied().unwrap_or(0),
            max_length: lengths.iter().max().copied().unwrap_or(0),
            clipped_ratio: rollout.completions.iter().filter(|c| c.truncated).count() as f64 / n,
            generate_s: rollout.seconds,
            reward_s: scored.seconds,
            old_logp_s: baselines.old_seconds,
            ref_logp_s: baselines.ref_seconds,
            generation_tps: lens.iter().sum::<f64>() / rollout.seconds.max(1e-9),
        }
    }

    /// The optimiser steps of the rollout (`epochs` passes over its micro-batches, grouped
    /// into updates), each with gradient accumulation over its micro-batches.
    fn update(
        &mut self,
        rollout: &Rollout,
        scored: &Scored,
        baselines: &Baselines,
        micro_batches: &[Vec<usize>],
        target_steps: u64,
        step: u64,
    ) -> Result<Vec<UpdateMetrics>> {
        let c = self.config.clone();
        let group = c.rollout.group_size;
        let lengths = rollout.lengths();
        let micro_per_update = c.completions_per_update() / c.update.micro_batch_size;
        let total_optimizer_steps = target_steps * c.updates_per_rollout() as u64;
        let mut reports = Vec::new();
        for epoch in 0..c.update.epochs {
            for (u, update_micro) in micro_batches.chunks(micro_per_update).enumerate() {
                let t = Instant::now();
                let norm = Normaliser {
                    tokens: update_micro.iter().flatten().map(|&r| lengths[r] as f64).sum(),
                    sequences: update_micro.iter().map(Vec::len).sum::<usize>() as f64,
                    max_len: c.rollout.max_response_tokens as f64,
                };
                let mut acc = GradientsAccumulator::<P>::new();
                let mut sums = UpdateSums::default();
                for (k, m) in update_micro.iter().enumerate() {
                    let index = u * micro_per_update + k;
                    seed_dropout(
                        &c,
                        &self.device()?,
                        self.state.seed,
                        step,
                        (epoch * micro_batches.len() + index) as u64,
                    );
                    let (prompts, rows) = rollout.micro_batch(m, group);
                    let logp = self.policy.logprobs(&prompts, &rows, c.rollout.temperature)?;
                    let [b, tt] = logp.dims();
                    let device = logp.device();
                    let mask = length_mask(&m.iter().map(|&r| lengths[r]).collect::<Vec<_>>(), tt, &device);
                    let old_logp = match &baselines.old {
                        Some(old) => old[index].clone(),
                        None => logp.clone().detach(),
                    };
                    let advantages: Vec<f32> = m.iter().map(|&r| scored.advantages.values[r] as f32).collect();
                    let out = grpo_loss(
                        LossInputs {
                            logp: logp.clone(),
                            old_logp,
                            ref_logp: baselines.reference.as_ref().map(|r| r[index].clone()),
                            advantages: Tensor::from_data(TensorData::new(advantages, [b]), &device),
                            mask: mask.clone(),
                        },
                        &c.algorithm.loss,
                        norm,
                    );
                    let neg_logp_sum = -(logp.detach() * mask).sum();
                    let host = Tensor::cat(
                        vec![
                            out.loss.clone().detach(),
                            out.kl_sum,
                            out.clipped_low_count,
                            out.clipped_high_count,
                            neg_logp_sum,
                        ],
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
                    let (policy, report) = self.optim.step(lr, self.policy.clone(), acc.grads())?;
                    self.policy = policy;
                    grad_norm = report.grad_norm;
                    report.applied
                } else {
                    false
                };
                if applied {
                    self.state.optimizer_step += 1;
                }
                note_nonfinite(&mut self.state, applied, c.run.max_nonfinite_steps, &self.run, step)?;
                let per_token = |x: f64| x / norm.tokens.max(1.0);
                let update_s = t.elapsed().as_secs_f64();
                reports.push(UpdateMetrics {
                    optimizer_step: self.state.optimizer_step,
                    loss: sums.loss,
                    kl: per_token(sums.kl),
                    entropy: per_token(sums.neg_logp),
                    clip_low: per_token(sums.clipped_low),
                    clip_high: per_token(sums.clipped_high),
                    grad_norm,
                    learning_rate: lr,
                    skipped_nonfinite: self.state.skipped_nonfinite,
                    update_s,
                    training_tps: norm.tokens / update_s.max(1e-9),
                });
            }
        }
        Ok(reports)
    }

    /// Appends the first `log_completions` completions of the step to `completions.jsonl`.
    fn log_completions(&self, step: u64, rollout: &Rollout, scored: &Scored) -> Result<()> {
        let group = self.config.rollout.group_size;
        for (i, comp) in rollout.completions.iter().enumerate().take(self.config.run.log_completions) {
            let line = json!({
                "step": step,
                "prompt_id": rollout.prompts[i / group].id,
                "completion": comp.text,
                "length": comp.ids.len(),
                "truncated": comp.truncated,
                "rewards": scored.per_completion[i],
                "advantage": scored.advantages.values[i],
            });
            self.run.append(COMPLETIONS_FILE, &line)?;
        }
        Ok(())
    }
}

/// `[rows, T]` log-probs the sampler reported for the completions `rows` (T the longest; the
/// padding is 0 and masked by the caller).
fn sampled_logprobs(completions: &[Completion], rows: &[usize], device: &Device) -> Tensor<2> {
    let t = rows.iter().map(|&r| completions[r].logprobs.len()).max().unwrap_or(0).max(1);
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|&r| {
            let l = &completions[r].logprobs;
            l.iter().copied().chain(std::iter::repeat_n(0.0, t - l.len()))
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), t]), device)
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
        GrpoError::Invalid(
            "model.path is not set: pass --model DIR (the tiny model is created by `cargo xtask train`)".into(),
        )
    })
}

/// The frozen reference (the run's initial model), only when the KL term is used and LoRA is
/// off (under LoRA the reference is the policy's own base, see `Trainer::reference_view`).
fn load_reference<P: Policy>(config: &TrainConfig, load: Loader<P>) -> Result<Option<P>> {
    if config.algorithm.loss.kl_coef > 0.0 && config.lora.is_none() {
        Ok(Some(load(&initial_model(config)?)?.valid()))
    } else {
        Ok(None)
    }
}

/// Loads the policy a run trains from `path`, with its LoRA adapters when the run uses LoRA
/// (`start` says whether they are new or the checkpoint's). New adapters are drawn from a
/// stream of the run's seed that nothing else uses.
pub(crate) fn load_policy<P: Policy>(
    config: &TrainConfig,
    load: Loader<P>,
    path: &Path,
    start: LoraStart,
) -> Result<P> {
    let policy = load(path)?;
    match &config.lora {
        Some(lora) => policy.with_lora(lora, start, run::mix(config.seed ^ LORA_INIT_STREAM, 0)),
        None => Ok(policy),
    }
}

/// Seed streams of LoRA's random draws, apart from the step streams of `run::step_rng`.
const LORA_INIT_STREAM: u64 = 0x4C6F_5241_496E_6974;
const LORA_DROPOUT_STREAM: u64 = 0x4C6F_5241_4472_6F70;

/// With LoRA dropout, seeds the device's generator (which draws the dropout masks) from the run's
/// seed, the step and the micro-batch before that micro-batch's forward, so a resumed run
/// draws the masks an uninterrupted one drew.
pub(crate) fn seed_dropout(config: &TrainConfig, device: &Device, seed: u64, step: u64, micro_batch: u64) {
    if config.lora.as_ref().is_some_and(|l| l.dropout > 0.0) {
        device.seed(run::mix(run::mix(seed ^ LORA_DROPOUT_STREAM, step), micro_batch));
    }
}

fn check_data(config: &TrainConfig, data: &[QaSample]) -> Result<()> {
    if data.is_empty() {
        return Err(GrpoError::Invalid(format!(
            "no training samples in {} (split {}, question types {})",
            config.data.root.display(),
            config.data.split,
            config.data.qa_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
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
