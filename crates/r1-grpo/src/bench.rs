//! What `cargo xtask bench` measures, as a library: the figures of a GRPO step read from its
//! metric lines, the model FLOPs of a step (for MFU), the matmul throughput MFU is measured
//! against, decoding without a KV cache, and one training micro-batch for peak memory. The
//! command line only prepares inputs, runs these and prints the table.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use r1_data::QaSample;
use r1_model::Prompt;
use r1_model::batch::pack;
use r1_model::generate::{SamplingConfig, draw_token};
use serde::{Deserialize, Serialize};

use crate::config::{OldLogprobs, TrainConfig};
use crate::error::{GrpoError, Result};
use crate::loss::{LossInputs, Normaliser, grpo_loss};
use crate::metrics::{StepMetrics, proc_status_kib};
use crate::policy::{Policy, ScoreRow, length_mask};
use crate::qwen::QwenPolicy;

/// The median (the upper one of an even count); `xs` must not be empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Least-squares slope of `points` (`(x, y)`); 0 for fewer than two distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

/// The figures of one GRPO step, from its metric lines (one per optimiser step).
#[derive(Debug, PartialEq)]
pub struct StepFigures {
    pub step: f64,
    pub generate: f64,
    pub logp: f64,
    pub reward: f64,
    pub update: f64,
    pub generation_tps: f64,
    pub mean_length: f64,
    /// Completion tokens trained on over the update seconds, across the step's updates.
    pub training_tps: f64,
}

/// Groups metric lines by `step` (in order) and reads each step's timings: the rollout
/// figures are repeated on every line of a step, the update figures are per line.
pub fn step_figures(lines: &[StepMetrics]) -> Result<Vec<StepFigures>> {
    let mut steps: Vec<(u64, Vec<&StepMetrics>)> = Vec::new();
    for line in lines {
        match steps.last_mut() {
            Some((s, group)) if *s == line.step => group.push(line),
            _ => steps.push((line.step, vec![line])),
        }
    }
    if steps.is_empty() {
        return Err(GrpoError::Invalid("metrics.jsonl has no GRPO step".into()));
    }
    let missing = |step: u64, what: &str| GrpoError::Invalid(format!("step {step} of metrics.jsonl {what}"));
    steps
        .into_iter()
        .map(|(step, group)| {
            let (first, last) = (group[0], group[group.len() - 1]);
            let rollout = first.rollout.as_ref().ok_or_else(|| missing(step, "is not a GRPO step"))?;
            let update: f64 = group.iter().map(|l| l.update.update_s).sum();
            let tokens: f64 = group.iter().map(|l| l.update.training_tps * l.update.update_s).sum();
            Ok(StepFigures {
                step: last.step_s.ok_or_else(|| missing(step, "has no timing/step"))?,
                generate: rollout.generate_s,
                logp: rollout.old_logp_s + rollout.ref_logp_s,
                reward: rollout.reward_s,
                update,
                generation_tps: rollout.generation_tps,
                mean_length: rollout.mean_length,
                training_tps: tokens / update.max(1e-9),
            })
        })
        .collect()
}

/// Side of the square matmul whose throughput MFU is measured against.
pub const MATMUL_SIZE: usize = 1024;

/// FLOP/s of an f32 `MATMUL_SIZE`-square matmul on `device`, median of `repeats` (each on new
/// operands, after one warm-up).
pub fn matmul_flops_per_second(device: &Device, repeats: usize) -> f64 {
    let n = MATMUL_SIZE;
    let operand = || Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let times: Vec<f64> = (0..=repeats)
        .map(|_| {
            let (a, b) = (operand(), operand());
            // Reading one value back waits for the operands (and then the product) on
            // asynchronous backends, without timing a large read-back.
            let _ = (a.clone() + b.clone()).slice([0..1, 0..1]).into_data();
            let start = Instant::now();
            let _ = a.matmul(b).slice([0..1, 0..1]).into_data();
            start.elapsed().as_secs_f64()
        })
        .collect();
    2.0 * (n * n * n) as f64 / median(times[1..].to_vec())
}

/// Model FLOPs of GRPO step `step` of a run of `config` on `data` (see `r1_model::flops`):
/// the step's prompts (the trainer's seeded order), encoded as the policy encodes them, with
/// completions of the step's mean length; generation, one pass per log-prob baseline the
/// step computes, and forward plus backward (3 forwards) per update epoch.
pub fn step_flops(
    config: &TrainConfig,
    assets: &r1_model::Assets,
    data: &[QaSample],
    step: u64,
    mean_length: f64,
) -> Result<f64> {
    let r = &config.rollout;
    let cursor = (step - 1) * r.prompts_per_rollout as u64;
    let indices = crate::run::take_prompts(config.seed, data.len(), cursor, r.prompts_per_rollout);
    let completion_len = mean_length.round() as usize;
    let mut pass = 0.0;
    for i in indices {
        let prompt = assets.encode_prompt(r1_data::qa::prompt_turns(&data[i].messages), &config.data.root)?;
        let patches: usize = prompt.images.iter().map(|im| im.grid_thw.iter().product::<usize>()).sum();
        pass += r1_model::flops::scoring_flops(&assets.config, prompt.ids.len(), patches, r.group_size, completion_len);
    }
    let old = config.old_logprobs() == OldLogprobs::Scored;
    let reference = config.algorithm.loss.kl_coef > 0.0;
    let passes = 1.0 + f64::from(u8::from(old)) + f64::from(u8::from(reference)) + 3.0 * config.update.epochs as f64;
    Ok(passes * pass)
}

/// Greedy decoding of `n` tokens per row where every step runs the whole sequence (prompt,
/// image and the tokens so far) through the model: what generation costs without a KV cache.
/// Returns the seconds of steps 2..=n (step 1 is a prefill).
pub fn decode_without_cache(policy: &QwenPolicy, prompts: &[Prompt], n: usize, device: &Device) -> Result<f64> {
    let model = &policy.model;
    let assets = policy.assets();
    let pad = assets.tokenizer.special().endoftext;
    let refs: Vec<&Prompt> = prompts.iter().collect();
    let b = prompts.len();
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut start = Instant::now();
    for step in 0..n {
        if step == 1 {
            start = Instant::now();
        }
        let continuations: Vec<&[u32]> = generated.iter().map(Vec::as_slice).collect();
        let packed = pack(&refs, &continuations, pad, &assets.processor, device);
        let width = packed.ids.dims()[1];
        // Only the last position's logits are needed (as in `generate` and transformers).
        let hidden = model.forward_hidden(packed.ids, packed.mask, packed.images.as_ref(), None)?;
        let logits = model.logits(hidden.slice([0..b, width - 1..width]));
        let vocab = logits.dims()[2];
        let mut host = logits
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| GrpoError::Invalid(format!("cannot read the logits: {e:?}")))?;
        for (row, ids) in generated.iter_mut().enumerate() {
            ids.push(draw_token(model, &mut host[row * vocab..(row + 1) * vocab], &SamplingConfig::greedy(1), 0.0).0);
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Host memory around one training micro-batch, from this process's `/proc/self/status`.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct PeakMemory {
    /// Resident set after loading the model, before the forward.
    pub before_kib: u64,
    /// High-water mark of the resident set after the backward.
    pub peak_kib: u64,
}

fn own_status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| GrpoError::Invalid(format!("/proc/self/status (Linux only): {e}")))?;
    proc_status_kib(&status, field).ok_or_else(|| GrpoError::Invalid(format!("/proc/self/status has no {field} line")))
}

/// One training micro-batch of `config` (micro_batch_size completions of max_response_tokens
/// each, `group_size` per prompt) through the teacher-forced forward, the GRPO loss and the
/// backward, on the freshly loaded `config.model.path`. Run it in a fresh process: the
/// high-water mark it reports is the whole process's.
pub fn peak_memory_micro_batch(config: &TrainConfig, data: &[QaSample]) -> Result<PeakMemory> {
    let device = config.training_device(None)?;
    let model =
        config.model.path.as_deref().ok_or_else(|| GrpoError::Invalid("the configuration names no model".into()))?;
    let policy = crate::qwen::loader(config, device.clone())(model)?;
    let micro = config.update.micro_batch_size;
    let group = config.rollout.group_size;
    let t = config.rollout.max_response_tokens;
    if data.len() < micro.div_ceil(group) {
        return Err(GrpoError::Invalid("the training split has too few prompts for one micro-batch".into()));
    }
    let prompts: Vec<&QaSample> = data[..micro.div_ceil(group)].iter().collect();
    // Real reply tokens, repeated to the length limit: the longest completions a rollout makes.
    let completions: Vec<Vec<u32>> = (0..micro)
        .map(|i| {
            let reply = r1_data::qa::dataset_texts(std::slice::from_ref(prompts[i / group])).pop().unwrap_or_default();
            let ids = policy.encode_reply(&reply)?;
            Ok(ids.iter().copied().cycle().take(t).collect())
        })
        .collect::<Result<_>>()?;
    let rows: Vec<ScoreRow> =
        completions.iter().enumerate().map(|(i, ids)| ScoreRow { prompt: i / group, ids }).collect();
    let before_kib = own_status_kib("VmRSS")?;
    let logp = policy.logprobs(&prompts, &rows, config.rollout.temperature)?;
    let mask = length_mask(&vec![t; micro], t, &device);
    let advantages: Vec<f32> = (0..micro).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let norm = Normaliser { tokens: (micro * t) as f64, sequences: micro as f64, max_len: t as f64 };
    let ref_logp = (config.algorithm.loss.kl_coef > 0.0).then(|| logp.clone().detach());
    let out = grpo_loss(
        LossInputs {
            logp: logp.clone(),
            old_logp: logp.detach(),
            ref_logp,
            advantages: Tensor::from_data(TensorData::new(advantages, [micro]), &device),
            mask,
        },
        &config.algorithm.loss,
        norm,
    );
    drop(out.loss.backward());
    Ok(PeakMemory { before_kib, peak_kib: own_status_kib("VmHWM")? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line of GRPO step `step` with the rollout figures the bench reads.
    fn line(step: u64, update_s: f64, training_tps: f64, step_s: Option<f64>) -> StepMetrics {
        use crate::metrics::{ComponentMeans, PolicyMetrics, RolloutMetrics, UpdateMetrics};
        StepMetrics {
            step,
            rollout: Some(RolloutMetrics {
                reward_mean: 0.5,
                reward_std: 0.5,
                components: ComponentMeans { format: 1.0, answer: 0.0 },
                frac_reward_zero_std: 0.0,
                mean_length: 12.5,
                min_length: 10,
                max_length: 15,
                clipped_ratio: 0.0,
                generate_s: 2.0,
                reward_s: 0.1,
                old_logp_s: 0.5,
                ref_logp_s: 0.25,
                generation_tps: 100.0,
            }),
            policy: Some(PolicyMetrics { optimizer_step: 1, kl: 0.0, entropy: 1.0, clip_low: 0.0, clip_high: 0.0 }),
            update: UpdateMetrics {
                loss: 0.0,
                grad_norm: 1.0,
                learning_rate: 1e-3,
                skipped_nonfinite: 0,
                update_s,
                training_tps,
            },
            step_s,
            host_rss_mib: None,
        }
    }

    /// Two optimiser steps per GRPO step: update seconds add up, training tokens/s is the
    /// token-weighted rate, the rollout figures come from the step's first line and the step
    /// time from its last.
    #[test]
    fn step_figures_group_lines_by_step() {
        let mut lines = Vec::new();
        for step in [1, 2] {
            lines.extend([line(step, 1.0, 100.0, None), line(step, 3.0, 20.0, Some(7.0 + step as f64))]);
        }
        let steps = step_figures(&lines).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[1],
            StepFigures {
                step: 9.0,
                generate: 2.0,
                logp: 0.75,
                reward: 0.1,
                update: 4.0,
                generation_tps: 100.0,
                mean_length: 12.5,
                training_tps: 40.0
            }
        );
    }

    #[test]
    fn step_figures_name_a_missing_field() {
        let err = step_figures(&[line(1, 1.0, 100.0, None)]).unwrap_err();
        assert!(err.to_string().contains("timing/step"), "{err}");
        let sft = StepMetrics { rollout: None, ..line(1, 1.0, 100.0, Some(1.0)) };
        let err = step_figures(&[sft]).unwrap_err();
        assert!(err.to_string().contains("not a GRPO step"), "{err}");
        assert!(step_figures(&[]).is_err());
    }

    proptest! {
        /// A straight line's slope is found whatever its offset and sampling, and a constant
        /// series has none.
        #[test]
        fn slope_of_a_line(a in -1e3f64..1e3, b in -10f64..10.0, xs in proptest::collection::btree_set(0u32..2000, 2..50)) {
            let points: Vec<(f64, f64)> = xs.iter().map(|&x| (x as f64, a + b * x as f64)).collect();
            prop_assert!((slope(&points) - b).abs() < 1e-6 * (1.0 + b.abs()));
            let flat: Vec<(f64, f64)> = points.iter().map(|p| (p.0, a)).collect();
            prop_assert!(slope(&flat).abs() < 1e-9);
        }

        /// The median is an element with at least half of the values on either side.
        #[test]
        fn median_splits_the_values(xs in proptest::collection::vec(-1e6f64..1e6, 1..40)) {
            let m = median(xs.clone());
            prop_assert!(xs.contains(&m));
            prop_assert!(xs.iter().filter(|&&x| x <= m).count() * 2 >= xs.len());
            prop_assert!(xs.iter().filter(|&&x| x >= m).count() * 2 >= xs.len());
        }
    }
}
