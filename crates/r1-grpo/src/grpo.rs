//! The GRPO trainer. A step reads like EasyR1's: [`rollout`](Grpo::rollout) samples `G`
//! completions per prompt, [`score`](Grpo::score) turns their rewards into advantages,
//! [`baselines`](Grpo::baselines) computes the old and reference log-probs once per rollout,
//! and [`update`](update) runs the optimiser steps over micro-batches with gradient
//! accumulation. The [`Trainer`] around it owns the run folder, checkpoints, exact resume and the
//! loop.

use std::path::Path;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use r1_data::QaSample;
use r1_reward::{RewardFn, Rewards};
use serde::Serialize;

use crate::advantage::{self, Advantages, unbiased_std};
use crate::config::{OldLogprobs, TrainConfig};
use crate::error::{GrpoError, Result};
use crate::loss::{LossInputs, Normaliser, grpo_loss};
use crate::metrics::{self, ComponentMeans, PolicyMetrics, RolloutMetrics, StepMetrics, UpdateMetrics};
use crate::policy::{Completion, Policy, Sampling, ScoreRow, length_mask};
use r1_model::checkpoint::run::COMPLETIONS_FILE;

use crate::run::{self, Phase};
use crate::trainer::{Algorithm, Loader, StepContext, Trainer, initial_model};

/// A GRPO run in progress.
pub type GrpoTrainer<P> = Trainer<P, Grpo<P>>;

/// GRPO's part of a run: the prompts, the reward and the frozen reference.
pub struct Grpo<P: Policy> {
    data: Vec<QaSample>,
    reward: RewardFn,
    reference: Option<P>,
}

impl<P: Policy> GrpoTrainer<P> {
    /// Starts a new run in `out` from the model at `config.model.path`.
    pub fn start(config: TrainConfig, out: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        Self::start_with(config, out, load, |config, _| Grpo::new(config, data, load))
    }

    /// Continues the GRPO run in `dir` from its newest checkpoint.
    pub fn resume(dir: &Path, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        let grpo = |phase| (phase == Phase::Grpo).then_some(());
        Self::resume_with(dir, load, grpo, |config, (), _| Grpo::new(config, data, load))
    }
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

impl<P: Policy> Algorithm<P> for Grpo<P> {
    const NAME: &'static str = "a GRPO";

    fn phase(&self) -> Phase {
        Phase::Grpo
    }

    /// One rollout step and its optimiser steps.
    fn step(&mut self, ctx: &mut StepContext<'_, P>) -> Result<Vec<StepMetrics>> {
        let step_start = Instant::now();
        let mut rng = run::step_rng(ctx.state.seed, ctx.step);
        let rollout = self.rollout(ctx, &mut rng)?;
        let scored = self.score(ctx.config, &rollout)?;
        let micro_batches = micro_batches(ctx.config, rollout.completions.len());
        let baselines = self.baselines(ctx, &rollout, &micro_batches)?;
        let rollout_metrics = rollout_metrics(&rollout, &scored, &baselines);
        let updates = update(ctx, &rollout, &scored, &baselines, &micro_batches)?;
        self.log_completions(ctx, &rollout, &scored)?;
        let count = updates.len();
        Ok(updates
            .into_iter()
            .enumerate()
            .map(|(i, (policy, update))| {
                let last = i + 1 == count;
                StepMetrics {
                    step: ctx.step,
                    rollout: Some(rollout_metrics.clone()),
                    policy: Some(policy),
                    update,
                    step_s: last.then(|| step_start.elapsed().as_secs_f64()),
                    host_rss_mib: if last { metrics::host_rss_mib() } else { None },
                }
            })
            .collect())
    }
}

impl<P: Policy> Grpo<P> {
    fn new(config: &TrainConfig, data: Vec<QaSample>, load: Loader<P>) -> Result<Self> {
        check_data(config, &data)?;
        Ok(Self { data, reward: RewardFn::new(config.reward), reference: load_reference(config, load)? })
    }

    /// Samples `G` completions for each of the step's prompts with the inference view.
    fn rollout(&self, ctx: &mut StepContext<'_, P>, rng: &mut rand::rngs::StdRng) -> Result<Rollout<'_>> {
        let c = ctx.config;
        let group = c.rollout.group_size;
        let indices = ctx.take_prompts(self.data.len(), c.rollout.prompts_per_rollout);
        let prompts: Vec<&QaSample> = indices.iter().map(|&i| &self.data[i]).collect();
        let t = Instant::now();
        let infer = ctx.policy.valid();
        let mut completions = Vec::with_capacity(prompts.len() * group);
        for chunk in c.rollout.generation_chunks() {
            completions.extend(infer.sample(&prompts[chunk], group, &sampling(c), rng)?);
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

    /// Rewards every completion against its prompt and computes the advantages.
    fn score(&self, c: &TrainConfig, rollout: &Rollout) -> Result<Scored> {
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

    /// Old and reference log-probs for every micro-batch (see [`OldLogprobs`] for where the
    /// old ones come from).
    fn baselines(
        &self,
        ctx: &StepContext<'_, P>,
        rollout: &Rollout,
        micro_batches: &[Vec<usize>],
    ) -> Result<Baselines> {
        let c = ctx.config;
        let group = c.rollout.group_size;
        let score = |policy: &P, rows: &[usize]| {
            let (prompts, rows) = rollout.micro_batch(rows, group);
            policy.logprobs(&prompts, &rows, c.rollout.temperature)
        };
        let t = Instant::now();
        let old = match c.old_logprobs() {
            OldLogprobs::Current => None,
            OldLogprobs::Sampled => {
                let device = ctx.device()?;
                Some(micro_batches.iter().map(|m| sampled_logprobs(&rollout.completions, m, &device)).collect())
            }
            OldLogprobs::Scored => {
                let infer = ctx.policy.valid();
                Some(micro_batches.iter().map(|m| score(&infer, m)).collect::<Result<Vec<_>>>()?)
            }
        };
        let old_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reference = match self.reference_view(c, ctx.policy) {
            Some(r) => Some(micro_batches.iter().map(|m| score(&r, m)).collect::<Result<Vec<_>>>()?),
            None => None,
        };
        Ok(Baselines { old, reference, old_seconds, ref_seconds: t.elapsed().as_secs_f64() })
    }

    /// The reference model when the KL term needs one: the loaded copy, or under LoRA the
    /// policy's inference view with its adapters left out (the frozen base, no second copy).
    fn reference_view(&self, c: &TrainConfig, policy: &P) -> Option<P> {
        match &self.reference {
            Some(r) => Some(r.clone()),
            None if c.lora.is_some() && c.algorithm.loss.kl_coef > 0.0 => Some(policy.valid().without_adapters()),
            None => None,
        }
    }

    /// Appends the first `log_completions` completions of the step to `completions.jsonl`.
    fn log_completions(&self, ctx: &StepContext<'_, P>, rollout: &Rollout, scored: &Scored) -> Result<()> {
        let group = ctx.config.rollout.group_size;
        for (i, comp) in rollout.completions.iter().enumerate().take(ctx.config.run.log_completions) {
            let line = CompletionLine {
                step: ctx.step,
                prompt_id: &rollout.prompts[i / group].id,
                completion: &comp.text,
                length: comp.ids.len(),
                truncated: comp.truncated,
                rewards: &scored.per_completion[i],
                advantage: scored.advantages.values[i],
            };
            ctx.run.append(COMPLETIONS_FILE, &line)?;
        }
        Ok(())
    }
}

/// One line of `completions.jsonl`.
#[derive(Serialize)]
struct CompletionLine<'a> {
    step: u64,
    prompt_id: &'a str,
    completion: &'a str,
    length: usize,
    truncated: bool,
    rewards: &'a Rewards,
    advantage: f64,
}

fn sampling(c: &TrainConfig) -> Sampling {
    let r = &c.rollout;
    Sampling { temperature: r.temperature, top_p: r.top_p, max_tokens: r.max_response_tokens }
}

/// Rows (completion indices) of each micro-batch, in update order.
fn micro_batches(c: &TrainConfig, completions: usize) -> Vec<Vec<usize>> {
    let rows: Vec<usize> = (0..completions).collect();
    rows.chunks(c.update.micro_batch_size).map(<[usize]>::to_vec).collect()
}

fn rollout_metrics(rollout: &Rollout, scored: &Scored, baselines: &Baselines) -> RolloutMetrics {
    let lengths = rollout.lengths();
    let lens: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    let n = rollout.completions.len() as f64;
    RolloutMetrics {
        reward_mean: mean(&scored.rewards),
        reward_std: unbiased_std(&scored.rewards),
        components: ComponentMeans::of(&scored.per_completion),
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

/// The optimiser steps of the rollout (`epochs` passes over its micro-batches, grouped into
/// updates), each with gradient accumulation over its micro-batches.
fn update<P: Policy>(
    ctx: &mut StepContext<'_, P>,
    rollout: &Rollout,
    scored: &Scored,
    baselines: &Baselines,
    micro_batches: &[Vec<usize>],
) -> Result<Vec<(PolicyMetrics, UpdateMetrics)>> {
    let c = ctx.config;
    let group = c.rollout.group_size;
    let lengths = rollout.lengths();
    let micro_per_update = c.completions_per_update() / c.update.micro_batch_size;
    let total_optimizer_steps = ctx.target_steps * c.updates_per_rollout() as u64;
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
                ctx.seed_dropout((epoch * micro_batches.len() + index) as u64)?;
                let (prompts, rows) = rollout.micro_batch(m, group);
                let logp = ctx.policy.logprobs(&prompts, &rows, c.rollout.temperature)?;
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
                    let grads = GradientsParams::from_grads(out.loss.backward(), &*ctx.policy);
                    acc.accumulate(&*ctx.policy, grads);
                }
            }
            let lr = c.optim.schedule.lr(c.optim.lr, ctx.state.optimizer_step, total_optimizer_steps);
            let grad_norm = ctx.optimise(lr, sums.loss, acc)?;
            let per_token = |x: f64| x / norm.tokens.max(1.0);
            let update_s = t.elapsed().as_secs_f64();
            reports.push((
                PolicyMetrics {
                    optimizer_step: ctx.state.optimizer_step,
                    kl: per_token(sums.kl),
                    entropy: per_token(sums.neg_logp),
                    clip_low: per_token(sums.clipped_low),
                    clip_high: per_token(sums.clipped_high),
                },
                UpdateMetrics {
                    loss: sums.loss,
                    grad_norm,
                    learning_rate: lr,
                    skipped_nonfinite: ctx.state.skipped_nonfinite,
                    update_s,
                    training_tps: norm.tokens / update_s.max(1e-9),
                },
            ));
        }
    }
    Ok(reports)
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

/// The frozen reference (the run's initial model), only when the KL term is used and LoRA is
/// off (under LoRA the reference is the policy's own base, see `Grpo::reference_view`).
fn load_reference<P: Policy>(config: &TrainConfig, load: Loader<P>) -> Result<Option<P>> {
    if config.algorithm.loss.kl_coef > 0.0 && config.lora.is_none() {
        Ok(Some(load(&initial_model(config)?)?.into_reference()))
    } else {
        Ok(None)
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
