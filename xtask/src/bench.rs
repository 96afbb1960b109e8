//! `cargo xtask bench`: end-to-end throughput figures, printed as a Markdown table (or JSON
//! with `--json`, which `crates/r1-model/scripts/bench_vs_transformers.py` reads). What each
//! figure measures is [`r1_grpo::bench`]'s; this file prepares the inputs and prints. The
//! per-function figures are the crates' criterion benches (`cargo bench --workspace`).
//!
//! Every figure is the median over `--repeats` runs, and each run gets different inputs (the
//! next prompts of the training split, the next GRPO rollout) so that no backend can serve a
//! repetition from work it already did.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use r1_data::QaSample;
use r1_grpo::bench::{
    MATMUL_SIZE, PeakMemory, StepFigures, decode_without_cache, matmul_flops_per_second, median,
    peak_memory_micro_batch, slope, step_figures, step_flops,
};
use r1_grpo::config::{Preset, TrainConfig};
use r1_grpo::grpo::GrpoTrainer;
use r1_grpo::qwen::{QwenPolicy, loader};
use r1_model::generate::{SamplingConfig, generate_with};
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

/// Prefill and KV-cache decode through [`generate_with`], and decode without a cache, at
/// batch 1 and 16.
///
/// Prefill is `generate` with one new token (the prompt's forward plus one host-side draw), at
/// batch 16 and, on the same 16 prompts, one prompt at a time, so that the two figures differ
/// by the batching alone (prompt lengths change the cost per token); decode is timed within an
/// `N`-token generation, from the first token drawn (the prefill done) to the last: the `N - 1`
/// cached single-token steps (the difference between an `N`-token and a one-token run can
/// come out negative on a busy machine). Without a cache every step is a forward over prompt
/// and generated tokens (steps 2..N).
fn generation(args: &Args, config: &TrainConfig, data: &[QaSample]) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(args.new_tokens >= 2, "--new-tokens must be at least 2 (decode is timed from the second token on)");
    let device = args.device.device()?;
    let policy = QwenPolicy::load(model_dir(config)?, &config.data.root, &device)?;
    // In the configured dtype, as a rollout generates.
    let model = &r1_model::precision::cast(policy.model.clone(), config.model.dtype);
    let assets = policy.assets();
    let pad = assets.tokenizer.special().endoftext;
    let n = args.new_tokens;
    let mut prompts = Prompts { policy: &policy, samples: data, next: 0 };
    let mut rng = r1_grpo::run::step_rng(0, 0);
    let greedy = |tokens| SamplingConfig::greedy(tokens);
    // Returns the seconds from the first token drawn to the end.
    let run = |prompts: &[Prompt], tokens: usize, rng: &mut rand::rngs::StdRng| -> anyhow::Result<f64> {
        let refs: Vec<&Prompt> = prompts.iter().collect();
        let mut first: Option<Instant> = None;
        // No stop ids: every row generates exactly `tokens`.
        generate_with(model, &assets.processor, &refs, 1, &greedy(tokens), &[], pad, rng, |_, _| {
            first.get_or_insert_with(Instant::now);
            true
        })?;
        Ok(first.map_or(0.0, |t| t.elapsed().as_secs_f64()))
    };
    // Warm-up (allocator, thread pool), outside every figure.
    run(&prompts.take(1)?, 2, &mut rng)?;

    // Prefill: the same sets of 16 prompts, batched and one at a time.
    let (mut batched, mut alone, mut prompt_tokens) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        let set = prompts.take(16)?;
        let tokens: usize = set.iter().map(|p| p.ids.len()).sum();
        prompt_tokens.push(tokens as f64 / set.len() as f64);
        let (_, seconds) = timed(|| run(&set, 1, &mut rng))?;
        batched.push(tokens as f64 / seconds);
        let mut seconds = 0.0;
        for prompt in set.chunks(1) {
            seconds += timed(|| run(prompt, 1, &mut rng))?.1;
        }
        alone.push(tokens as f64 / seconds);
    }
    let prompt_len = median(prompt_tokens).round();
    let mut prefill =
        [("prefill_b1", 1, alone), ("prefill_b16", 16, batched)].into_iter().map(|(key, batch, values)| Row {
            key,
            figure: format!("prefill, batch {batch}"),
            value: median(values),
            unit: "tokens/s",
            setup: format!("the same 16 dataset prompts (+ 1 image each, ~{prompt_len} tokens/row), {}", args.device),
        });

    let mut rows = Vec::new();
    for (batch, keys) in
        [(1usize, ["decode_cache_b1", "decode_nocache_b1"]), (16, ["decode_cache_b16", "decode_nocache_b16"])]
    {
        let (mut decode, mut nocache) = (Vec::new(), Vec::new());
        for _ in 0..args.repeats {
            let set = prompts.take(batch)?;
            decode.push((batch * (n - 1)) as f64 / run(&set, n, &mut rng)?.max(1e-9));
            let set = prompts.take(batch)?;
            let seconds = decode_without_cache(&policy, &set, n, &device)?;
            nocache.push((batch * (n - 1)) as f64 / seconds.max(1e-9));
        }
        rows.extend(prefill.next());
        rows.push(Row {
            key: keys[0],
            figure: format!("decode with KV cache, batch {batch}"),
            value: median(decode),
            unit: "tokens/s",
            setup: format!("greedy, {n} new tokens/row, no stop, {}", args.device),
        });
        rows.push(Row {
            key: keys[1],
            figure: format!("decode without cache, batch {batch}"),
            value: median(nocache),
            unit: "tokens/s",
            setup: format!("full forward per token, {n} new tokens/row, {}", args.device),
        });
    }
    Ok(rows)
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
    let load = loader(&config, config.training_device(None)?);
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
        "tiny preset: {} prompts x {} completions, <= {} tokens, {} updates/step, {} in {}, median of {} steps",
        r.prompts_per_rollout,
        r.group_size,
        r.max_response_tokens,
        config.updates_per_rollout(),
        args.device,
        config.model.dtype,
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
    let load = loader(&config, config.training_device(None)?);
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

/// Runs [`peak_memory_micro_batch`] in a fresh process (this executable again), so the figure holds
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
            "VmHWM of a child process: model loaded ({:.0} MiB RSS) + {} completions x {} tokens; host memory only, {} in {}{}",
            m.before_kib as f64 / 1024.0,
            c.micro_batch_size,
            config.rollout.max_response_tokens,
            args.device,
            config.model.dtype,
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
        println!("{}", serde_json::to_string(&peak_memory_micro_batch(&config, &data)?)?);
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
