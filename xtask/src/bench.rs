//! `cargo xtask bench`: end-to-end throughput figures, printed as a Markdown table (or JSON
//! with `--json`, which `crates/r1-model/scripts/bench_vs_transformers.py` reads). The
//! per-function figures are criterion benches (`cargo bench -p r1-bench`, and the benches of
//! r1-reward and r1-sim).
//!
//! Every figure is the median over `--repeats` runs, and each run gets different inputs (the
//! next prompts of the training split, the next GRPO rollout) so that no backend can serve a
//! repetition from work it already did.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use r1_data::QaSample;
use r1_grpo::config::{OldLogprobs, Preset, TrainConfig};
use r1_grpo::grpo::GrpoTrainer;
use r1_grpo::loss::{LossInputs, Normaliser, grpo_loss};
use r1_grpo::metrics::StepMetrics;
use r1_grpo::policy::{Policy, ScoreRow, length_mask};
use r1_grpo::qwen::QwenPolicy;
use r1_model::batch::pack;
use r1_model::generate::{SamplingConfig, draw_token, generate};
use r1_model::{DeviceKind, Prompt};
use serde::Serialize;

use crate::train;

/// Which group of figures to run.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Only {
    Generation,
    Training,
    Rendering,
    /// Host memory over a long run (not part of the default set: minutes).
    Soak,
}

#[derive(clap::Args)]
pub struct Args {
    /// Episodes per task for the rendering figure (10 tasks, 224x224).
    #[arg(long, value_name = "N", default_value_t = 2)]
    episodes_per_task: usize,
    /// Repetitions of each figure (GRPO steps for the training figures); the table reports the
    /// median.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeats: usize,
    /// Hugging Face Qwen2.5-VL directory for the generation and training figures (default: the
    /// tiny model in models/r1-tiny, created if absent).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Training configuration (TOML) layered over the tiny preset for the training figures,
    /// as `cargo xtask train --config` reads it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// QA dataset whose train split supplies the prompts and images.
    #[arg(long, value_name = "DIR", default_value = "datasets/default")]
    data: PathBuf,
    /// Device the figures run on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
    /// Tokens generated per row by the decode figures (stop tokens are ignored).
    #[arg(long, value_name = "N", default_value_t = 32)]
    new_tokens: usize,
    /// GRPO steps of `--only soak`.
    #[arg(long, value_name = "N", default_value_t = 500)]
    soak_steps: u64,
    /// Run one group of figures only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Print the rows as a JSON array instead of a Markdown table.
    #[arg(long)]
    json: bool,
    /// Internal: measure the training micro-batch's peak memory in this (child) process and
    /// print it as JSON.
    #[arg(long, hide = true)]
    peak_memory_child: bool,
}

/// One row of the table.
#[derive(Serialize)]
struct Row {
    /// Stable identifier for scripts.
    key: &'static str,
    figure: String,
    value: f64,
    unit: &'static str,
    setup: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `f` and returns its result with the wall-clock seconds it took.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// Rendered frames per second of the whole simulator pipeline (scene, expert, rasteriser, PNG
/// encoding) on every core.
fn rendering(args: &Args) -> anyhow::Result<Row> {
    let cfg =
        r1_sim::SimConfig { tasks: Vec::new(), episodes_per_task: args.episodes_per_task, seed: 0, image_size: 224 };
    let mut rates = Vec::new();
    let mut frames = 0;
    for _ in 0..args.repeats {
        let start = Instant::now();
        let episodes = r1_sim::simulate(&cfg, |_, _| {}).context("simulating")?;
        let seconds = start.elapsed().as_secs_f64();
        frames = episodes.iter().map(|e| e.steps.len()).sum::<usize>();
        rates.push(frames as f64 / seconds);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(Row {
        key: "rendering",
        figure: "rendering (simulate + rasterise + PNG)".into(),
        value: median(rates),
        unit: "frames/s",
        setup: format!("10 tasks x {} episodes, {frames} frames at 224x224, {cores} threads", args.episodes_per_task),
    })
}

/// The tiny preset (or `--config` over it) pointed at `--data`, `--model` (or the tiny model, created if absent) and
/// `--device`, with the training split it reads.
fn bench_config(args: &Args) -> anyhow::Result<(TrainConfig, Vec<QaSample>)> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path, Preset::Tiny)?,
        None => TrainConfig::tiny(),
    };
    config.data.root = args.data.clone();
    config.model.path = args.model.clone();
    config.device = args.device;
    config.validate()?;
    let data = train::training_data(&config)?;
    train::initial_model(&mut config, &data)?;
    Ok((config, data))
}

fn model_dir(config: &TrainConfig) -> anyhow::Result<&Path> {
    config.model.path.as_deref().context("the benchmark configuration names no model")
}

/// Hands out the training prompts in order, wrapping around, so that every repetition sees
/// prompts it has not seen before (as long as the split is large enough).
struct Prompts<'a> {
    policy: &'a QwenPolicy,
    samples: &'a [QaSample],
    next: usize,
}

impl Prompts<'_> {
    fn take(&mut self, n: usize) -> anyhow::Result<Vec<Prompt>> {
        (0..n)
            .map(|_| {
                let sample = &self.samples[self.next % self.samples.len()];
                self.next += 1;
                Ok(self.policy.prompt(sample)?.as_ref().clone())
            })
            .collect()
    }
}

/// Prefill and KV-cache decode through [`generate`], and decode without a cache, at batch 1
/// and 16.
///
/// Prefill is `generate` with one new token (the prompt's forward plus one host-side draw);
/// decode is the difference between `N` and one new tokens on the same prompts, i.e. the
/// `N - 1` cached single-token steps. Without a cache every step is a forward over prompt and
/// generated tokens, timed the same way (steps 2..N).
fn generation(args: &Args, config: &TrainConfig, data: &[QaSample]) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(args.new_tokens >= 2, "--new-tokens must be at least 2 (decode is timed from the second token on)");
    let device = args.device.device()?;
    let policy = QwenPolicy::load(model_dir(config)?, &config.data.root, &device)?;
    let model = &policy.model;
    let assets = policy.assets();
    let pad = assets.tokenizer.special().endoftext;
    let n = args.new_tokens;
    let mut prompts = Prompts { policy: &policy, samples: data, next: 0 };
    let mut rng = r1_grpo::run::step_rng(0, 0);
    let greedy = |tokens| SamplingConfig::greedy(tokens);
    let run = |prompts: &[Prompt], tokens: usize, rng: &mut rand::rngs::StdRng| -> anyhow::Result<()> {
        let refs: Vec<&Prompt> = prompts.iter().collect();
        // No stop ids: every row generates exactly `tokens`.
        generate(model, &assets.processor, &refs, 1, &greedy(tokens), &[], pad, rng)?;
        Ok(())
    };
    // Warm-up (allocator, thread pool), outside every figure.
    run(&prompts.take(1)?, 2, &mut rng)?;

    let mut rows = Vec::new();
    for (batch, keys) in [
        (1usize, ["prefill_b1", "decode_cache_b1", "decode_nocache_b1"]),
        (16, ["prefill_b16", "decode_cache_b16", "decode_nocache_b16"]),
    ] {
        let (mut prefill, mut decode, mut nocache) = (Vec::new(), Vec::new(), Vec::new());
        let mut prompt_tokens = Vec::new();
        for _ in 0..args.repeats {
            let set = prompts.take(batch)?;
            let tokens: usize = set.iter().map(|p| p.ids.len()).sum();
            prompt_tokens.push(tokens as f64 / batch as f64);
            let ((), one) = timed(|| run(&set, 1, &mut rng))?;
            let ((), all) = timed(|| run(&set, n, &mut rng))?;
            prefill.push(tokens as f64 / one);
            decode.push((batch * (n - 1)) as f64 / (all - one).max(1e-9));
            let set = prompts.take(batch)?;
            let seconds = decode_without_cache(&policy, &set, n, &device)?;
            nocache.push((batch * (n - 1)) as f64 / seconds.max(1e-9));
        }
        let prompt_len = median(prompt_tokens).round();
        rows.push(Row {
            key: keys[0],
            figure: format!("prefill, batch {batch}"),
            value: median(prefill),
            unit: "tokens/s",
            setup: format!("dataset prompt + 1 image, ~{prompt_len} tokens/row, {}", args.device),
        });
        rows.push(Row {
            key: keys[1],
            figure: format!("decode with KV cache, batch {batch}"),
            value: median(decode),
            unit: "tokens/s",
            setup: format!("greedy, {n} new tokens/row, no stop, {}", args.device),
        });
        rows.push(Row {
            key: keys[2],
            figure: format!("decode without cache, batch {batch}"),
            value: median(nocache),
            unit: "tokens/s",
            setup: format!("full forward per token, {n} new tokens/row, {}", args.device),
        });
    }
    Ok(rows)
}

/// Greedy decoding of `n` tokens per row where every step runs the whole sequence (prompt,
/// image and the tokens so far) through the model: what generation costs without a KV cache.
/// Returns the seconds of steps 2..=n (step 1 is a prefill).
fn decode_without_cache(policy: &QwenPolicy, prompts: &[Prompt], n: usize, device: &Device) -> anyhow::Result<f64> {
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
            .map_err(|e| anyhow::anyhow!("cannot read the logits: {e:?}"))?;
        for (row, ids) in generated.iter_mut().enumerate() {
            ids.push(draw_token(model, &mut host[row * vocab..(row + 1) * vocab], &SamplingConfig::greedy(1), 0.0).0);
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Removes a directory when dropped (the GRPO bench's temporary run).
struct TempDir(PathBuf);

impl TempDir {
    /// A fresh run folder for the benchmark `name` in the system's temporary directory.
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir = Self(std::env::temp_dir().join(format!("r1-bench-{name}-{}", std::process::id())));
        if dir.0.exists() {
            std::fs::remove_dir_all(&dir.0).with_context(|| format!("removing {}", dir.0.display()))?;
        }
        Ok(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover folder in the temp directory is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// GRPO steps of the tiny preset (no SFT warm-up) in a temporary run directory; the phases and
/// throughputs are its metric lines (those of metrics.jsonl), median over the steps after the
/// first.
fn training(args: &Args, config: &TrainConfig, data: Vec<QaSample>) -> anyhow::Result<Vec<Row>> {
    let mut config = config.clone();
    // One warm-up step (allocator, thread pool, prompt encoding) outside every figure.
    config.run.steps = args.repeats as u64 + 1;
    config.run.save_every = 0;
    config.run.log_completions = 0;
    let out = TempDir::new("grpo")?;
    let device = config.training_device(None)?;
    let root = config.data.root.clone();
    let load = |dir: &Path| QwenPolicy::load(dir, &root, &device);
    let mut trainer = GrpoTrainer::start(config.clone(), &out.0, data.clone(), &load)?;
    // The step summaries hold the step's metrics.jsonl lines as written.
    let mut lines = Vec::new();
    trainer.train(config.run.steps, |summary| lines.extend(summary.metrics.iter().cloned()))?;
    drop(trainer);
    let steps: Vec<StepFigures> = step_figures(&lines)?.into_iter().skip(1).collect();
    let column = |f: fn(&StepFigures) -> f64| median(steps.iter().map(f).collect());
    let peak = matmul_flops_per_second(&args.device.device()?, args.repeats);
    let assets = r1_model::Assets::from_dir(model_dir(&config)?)?;
    let mfu = steps
        .iter()
        .enumerate()
        .map(|(i, s)| Ok(step_flops(&config, &assets, &data, i as u64 + 2, s.mean_length)? / s.step / peak))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let r = &config.rollout;
    let setup = format!(
        "tiny preset: {} prompts x {} completions, <= {} tokens, {} updates/step, {}, median of {} steps",
        r.prompts_per_rollout,
        r.group_size,
        r.max_response_tokens,
        config.updates_per_rollout(),
        args.device,
        steps.len()
    );
    let row = |key, figure: &str, value, unit| Row { key, figure: figure.into(), value, unit, setup: setup.clone() };
    Ok(vec![
        row("grpo_step", "GRPO step", column(|s| s.step), "s"),
        row("grpo_generate", "GRPO step: generation", column(|s| s.generate), "s"),
        row("grpo_logp", "GRPO step: old + ref log-probs", column(|s| s.logp), "s"),
        row("grpo_reward", "GRPO step: reward + advantages", column(|s| s.reward), "s"),
        row("grpo_update", "GRPO step: updates (fwd + bwd + AdamW)", column(|s| s.update), "s"),
        row("grpo_generation_tps", "GRPO generation", column(|s| s.generation_tps), "tokens/s"),
        row("grpo_training_tps", "GRPO training", column(|s| s.training_tps), "tokens/s"),
        Row {
            key: "matmul_gflops",
            figure: "f32 matmul throughput".into(),
            value: peak / 1e9,
            unit: "GFLOP/s",
            setup: format!(
                "{MATMUL_SIZE}x{MATMUL_SIZE} by {MATMUL_SIZE}x{MATMUL_SIZE}, all cores, {}, median of {}",
                args.device, args.repeats
            ),
        },
        row("grpo_mfu", "GRPO step: model FLOPs utilisation", median(mfu), "fraction of matmul throughput"),
    ])
}

/// Side of the square matmul whose throughput MFU is measured against.
const MATMUL_SIZE: usize = 1024;

/// FLOP/s of an f32 `MATMUL_SIZE`-square matmul on `device`, median of `repeats` (each on new
/// operands, after one warm-up).
fn matmul_flops_per_second(device: &Device, repeats: usize) -> f64 {
    use burn::tensor::Distribution;
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
fn step_flops(
    config: &TrainConfig,
    assets: &r1_model::Assets,
    data: &[QaSample],
    step: u64,
    mean_length: f64,
) -> anyhow::Result<f64> {
    let r = &config.rollout;
    let cursor = (step - 1) * r.prompts_per_rollout as u64;
    let indices = r1_grpo::run::take_prompts(config.seed, data.len(), cursor, r.prompts_per_rollout);
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

/// The figures of one GRPO step, from its metric lines (one per optimiser step).
#[derive(Debug, PartialEq)]
struct StepFigures {
    step: f64,
    generate: f64,
    logp: f64,
    reward: f64,
    update: f64,
    generation_tps: f64,
    mean_length: f64,
    /// Completion tokens trained on over the update seconds, across the step's updates.
    training_tps: f64,
}

/// Groups metric lines by `step` (in order) and reads each step's timings: the rollout
/// figures are repeated on every line of a step, the update figures are per line.
fn step_figures(lines: &[StepMetrics]) -> anyhow::Result<Vec<StepFigures>> {
    let mut steps: Vec<(u64, Vec<&StepMetrics>)> = Vec::new();
    for line in lines {
        match steps.last_mut() {
            Some((s, group)) if *s == line.step => group.push(line),
            _ => steps.push((line.step, vec![line])),
        }
    }
    anyhow::ensure!(!steps.is_empty(), "metrics.jsonl has no GRPO step");
    steps
        .into_iter()
        .map(|(step, group)| {
            let (first, last) = (group[0], group[group.len() - 1]);
            let rollout =
                first.rollout.as_ref().with_context(|| format!("step {step} of metrics.jsonl is not a GRPO step"))?;
            let update: f64 = group.iter().map(|l| l.update.update_s).sum();
            let tokens: f64 = group.iter().map(|l| l.update.training_tps * l.update.update_s).sum();
            Ok(StepFigures {
                step: last.step_s.with_context(|| format!("step {step} of metrics.jsonl has no timing/step"))?,
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

/// Steps after the soak's first epoch needed for a slope worth reporting.
const SOAK_MIN_STEADY_STEPS: u64 = 100;

/// `--only soak`: `--soak-steps` GRPO steps of the tiny preset (checkpoints as configured), the
/// resident host memory read after every step; the figure is the least-squares growth per 100
/// steps after the first epoch, which a leak of anything kept per step (an autodiff graph, a
/// cache entry, a log buffer) makes positive. The first epoch is left out because the policy
/// caches every training prompt it encodes (pixels included, within a fixed budget) until it
/// has seen them all, and the allocator and thread pool grow to their working size meanwhile.
fn soak(args: &Args, config: &TrainConfig, data: Vec<QaSample>) -> anyhow::Result<Vec<Row>> {
    let mut config = config.clone();
    config.run.steps = args.soak_steps;
    let epoch = data.len().div_ceil(config.rollout.prompts_per_rollout) as u64;
    anyhow::ensure!(
        args.soak_steps >= epoch + SOAK_MIN_STEADY_STEPS,
        "--soak-steps {}: too few; the first epoch over the {} training prompts ({epoch} steps) fills the prompt cache and \
         is left out of the figure, so run at least {} steps",
        args.soak_steps,
        data.len(),
        epoch + SOAK_MIN_STEADY_STEPS
    );
    let out = TempDir::new("soak")?;
    let device = config.training_device(None)?;
    let root = config.data.root.clone();
    let load = |dir: &Path| QwenPolicy::load(dir, &root, &device);
    let mut trainer = GrpoTrainer::start(config.clone(), &out.0, data, &load)?;
    let bar = crate::progress::bar(args.soak_steps, "soak");
    let mut rss = Vec::new();
    trainer.train(args.soak_steps, |summary| {
        let last = summary.metrics.last().and_then(|l| l.host_rss_mib);
        if let Some(mib) = last {
            rss.push((summary.step as f64, mib));
            bar.set_message(format!("{mib:.0} MiB"));
        }
        bar.inc(1);
    })?;
    bar.finish();
    drop(trainer);
    anyhow::ensure!(!rss.is_empty(), "no memory figure was logged (it is read from /proc/self/status: Linux only)");
    let steady: Vec<(f64, f64)> = rss.iter().copied().filter(|p| p.0 > epoch as f64).collect();
    anyhow::ensure!(steady.len() >= 2, "fewer than two memory figures after the first epoch");
    let peak = rss.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let setup = format!(
        "{} GRPO steps of the tiny preset (checkpoint every {}), {}; RSS {:.0} MiB after step {}, {:.0} MiB after step {}, \
         peak {peak:.0} MiB; least-squares slope over steps {}..{} (the first epoch fills the prompt cache)",
        args.soak_steps,
        config.run.save_every,
        args.device,
        steady[0].1,
        steady[0].0,
        steady[steady.len() - 1].1,
        steady[steady.len() - 1].0,
        steady[0].0,
        steady[steady.len() - 1].0,
    );
    Ok(vec![Row {
        key: "soak_memory_growth",
        figure: "host memory growth per 100 GRPO steps".into(),
        value: slope(&steady) * 100.0,
        unit: "MiB",
        setup,
    }])
}

/// Least-squares slope of `points` (`(x, y)`); 0 for fewer than two distinct `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

/// What the child process reports.
#[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
struct PeakMemory {
    /// Resident set after loading the model, before the forward.
    before_kib: u64,
    /// High-water mark of the resident set after the backward.
    peak_kib: u64,
}

fn own_status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status (Linux only)")?;
    r1_grpo::metrics::proc_status_kib(&status, field).with_context(|| format!("/proc/self/status has no {field} line"))
}

/// In the child: one training micro-batch of the tiny preset (micro_batch_size completions of
/// max_response_tokens each, `group_size` per prompt) through the teacher-forced forward, the
/// GRPO loss and the backward, on a freshly loaded model.
fn peak_memory_child(config: &TrainConfig, data: &[QaSample]) -> anyhow::Result<PeakMemory> {
    let device = config.training_device(None)?;
    let policy = QwenPolicy::load(model_dir(config)?, &config.data.root, &device)?;
    let micro = config.update.micro_batch_size;
    let group = config.rollout.group_size;
    let t = config.rollout.max_response_tokens;
    anyhow::ensure!(data.len() >= micro.div_ceil(group), "the training split has too few prompts for one micro-batch");
    let prompts: Vec<&QaSample> = data[..micro.div_ceil(group)].iter().collect();
    // Real reply tokens, repeated to the length limit: the longest completions a rollout makes.
    let completions: Vec<Vec<u32>> = (0..micro)
        .map(|i| {
            let reply =
                r1_model::tiny::dataset_texts(std::slice::from_ref(prompts[i / group])).pop().unwrap_or_default();
            let ids = policy.encode_reply(&reply)?;
            Ok(ids.iter().copied().cycle().take(t).collect())
        })
        .collect::<anyhow::Result<_>>()?;
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
    let grads = out.loss.backward();
    drop(grads);
    Ok(PeakMemory { before_kib, peak_kib: own_status_kib("VmHWM")? })
}

/// Runs [`peak_memory_child`] in a fresh process (this executable again), so the figure holds
/// the model and one micro-batch only, not the other benchmarks' allocations.
fn peak_memory(args: &Args, config: &TrainConfig) -> anyhow::Result<Row> {
    let exe = std::env::current_exe().context("locating the xtask executable")?;
    let model = model_dir(config)?;
    let mut child = Command::new(&exe);
    child.arg("bench").arg("--peak-memory-child").arg("--model").arg(model).arg("--data").arg(&config.data.root);
    child.arg("--device").arg(args.device.to_string());
    if let Some(path) = &args.config {
        child.arg("--config").arg(path);
    }
    let output = child.output().with_context(|| format!("running {}", exe.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "the peak-memory child failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().context("the peak-memory child printed nothing")?;
    let m: PeakMemory =
        serde_json::from_str(last).with_context(|| format!("the peak-memory child printed {last:?}"))?;
    let c = &config.update;
    Ok(Row {
        key: "train_peak_memory",
        figure: "training micro-batch peak memory (fwd + bwd)".into(),
        value: m.peak_kib as f64 / 1024.0,
        unit: "MiB",
        setup: format!(
            "VmHWM of a child process: model loaded ({:.0} MiB RSS) + {} completions x {} tokens; host memory only, {}{}",
            m.before_kib as f64 / 1024.0,
            c.micro_batch_size,
            config.rollout.max_response_tokens,
            args.device,
            if config.model.gradient_checkpointing { ", gradient checkpointing" } else { "" }
        ),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.repeats >= 1 && args.episodes_per_task >= 1 && args.soak_steps >= 1,
        "--repeats, --episodes-per-task and --soak-steps must be at least 1"
    );
    // The soak runs only when asked for.
    let wants = |group| args.only == Some(group) || (args.only.is_none() && group != Only::Soak);
    if args.peak_memory_child {
        let (config, data) = bench_config(&args)?;
        println!("{}", serde_json::to_string(&peak_memory_child(&config, &data)?)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    if wants(Only::Generation) || wants(Only::Training) {
        let (config, data) = bench_config(&args)?;
        if wants(Only::Generation) {
            rows.extend(generation(&args, &config, &data)?);
        }
        if wants(Only::Training) {
            rows.extend(training(&args, &config, data)?);
            rows.push(peak_memory(&args, &config)?);
        }
    }
    if wants(Only::Soak) {
        let (config, data) = bench_config(&args)?;
        rows.extend(soak(&args, &config, data)?);
    }
    if wants(Only::Rendering) {
        rows.push(rendering(&args)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("| figure | median | unit | setup |\n|---|---|---|---|");
    for r in rows {
        // Three significant digits or so: step phases are fractions of a second, rates thousands.
        let decimals = if r.value.abs() >= 100.0 {
            0
        } else if r.value.abs() >= 1.0 {
            2
        } else {
            3
        };
        println!("| {} | {:.*} | {} | {} |", r.figure, decimals, r.value, r.unit, r.setup);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line of GRPO step `step` with the rollout figures the bench reads.
    fn line(step: u64, update_s: f64, training_tps: f64, step_s: Option<f64>) -> StepMetrics {
        use r1_grpo::metrics::{ComponentMeans, PolicyMetrics, RolloutMetrics, UpdateMetrics};
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
