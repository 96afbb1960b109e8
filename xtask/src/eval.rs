//! `cargo xtask eval`: evaluate a model or training run (`eval model`), or answers recorded
//! elsewhere (`eval answers`), on the QA test split and the Robot-R1 Bench; build the bench
//! (`eval make-bench`); compare evaluated runs (`eval compare`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use r1_bench::evaluate::{self, RecordedAnswers, Responder};
use r1_bench::judge::{Judge, JudgeConfig};
use r1_bench::question::{BenchQuestion, read_bench};
use r1_bench::report::{self, Results, Source};
use r1_bench::{charts, make};
use r1_data::QaSample;
use r1_data::dataset::{Split, read_split};
use r1_model::DeviceKind;

use crate::progress;

/// Longest completion when neither the command line nor a training run says.
const DEFAULT_MAX_NEW_TOKENS: usize = 512;

/// Where the committed simulator bench lives.
const DEFAULT_BENCH: &str = "datasets/bench";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(clap::Subcommand)]
enum EvalCommand {
    /// Evaluate a model folder or a training run (its latest checkpoint): it answers the QA
    /// split and the bench.
    Model(ModelArgs),
    /// Evaluate answers recorded elsewhere (another model, an API) to the QA split and the bench.
    Answers(AnswersArgs),
    /// Build the simulator's Robot-R1 Bench.
    MakeBench(MakeBenchArgs),
    /// Compare evaluation folders (or runs evaluated to `<run>/eval`) side by side.
    Compare(CompareArgs),
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Model folder (Hugging Face layout) or training run (its latest checkpoint) to evaluate.
    #[arg(value_name = "RUN_OR_MODEL_DIR")]
    model: PathBuf,
    /// Output folder (default: `<run>/eval` for a run, `<model>/eval` for a model folder).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Device the model runs on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
    /// Sampling temperature (0: greedy).
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    temperature: f64,
    /// Longest completion, in tokens (default: the training run's `rollout.max_response_tokens`
    /// when the model is a run or one of its checkpoints, else 512).
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
}

#[derive(clap::Args)]
struct AnswersArgs {
    /// JSONL lines `{"id", "completion"}` or `{"id", "completions": [...]}`, one per question of
    /// the split and of the bench.
    #[arg(value_name = "FILE.jsonl")]
    answers: PathBuf,
    /// Output folder (default: `<answers>.eval/`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// What `eval model` and `eval answers` share: the questions, the samples and the judge.
#[derive(clap::Args)]
struct Common {
    /// QA dataset whose split is answered (multiple choice and open ended).
    #[arg(long, value_name = "DIR", default_value = "datasets/default")]
    data: PathBuf,
    /// Split of the QA dataset.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Robot-R1 Bench folder (built by `eval make-bench`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BENCH)]
    bench: PathBuf,
    /// Skip the QA split (bench only).
    #[arg(long)]
    no_qa: bool,
    /// Skip the bench (QA split only).
    #[arg(long)]
    no_bench: bool,
    /// Evaluate only the first N questions of each set (a quick look, not a result).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Completions per question; with more than one, metrics also report best of N.
    #[arg(long, value_name = "N", default_value_t = 1)]
    samples: usize,

    /// Judge endpoint base URL (OpenAI-compatible, e.g. https://api.openai.com/v1); default
    /// from R1_JUDGE_BASE_URL or OPENAI_BASE_URL. Without one, only the rule-based scorer runs.
    #[arg(long, value_name = "URL")]
    judge_base_url: Option<String>,
    /// Judge model; default from R1_JUDGE_MODEL or OPENAI_MODEL.
    #[arg(long, value_name = "NAME")]
    judge_model: Option<String>,
    /// Judge API key; default from R1_JUDGE_API_KEY or OPENAI_API_KEY.
    #[arg(long, value_name = "KEY")]
    judge_api_key: Option<String>,
    /// Judge requests per answer, averaged.
    #[arg(long, value_name = "N", default_value_t = 3)]
    judge_samples: u32,
}

#[derive(clap::Args)]
struct MakeBenchArgs {
    /// The bench folder to write.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BENCH)]
    out: PathBuf,
    /// Seed of the bench's episodes.
    #[arg(long, default_value_t = make::DEFAULT_SEED)]
    seed: u64,
    /// Replace an existing bench folder.
    #[arg(long)]
    overwrite: bool,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// Evaluation folders, or runs evaluated to `<run>/eval`.
    #[arg(value_name = "RUN", required = true)]
    runs: Vec<PathBuf>,
    /// One row per configuration: mean ± std over runs that differ only by seed.
    #[arg(long)]
    seeds: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        EvalCommand::Model(a) => evaluate_model(&a),
        EvalCommand::Answers(a) => evaluate_answers(&a),
        EvalCommand::MakeBench(a) => make_bench(&a),
        EvalCommand::Compare(a) => compare(&a),
    }
}

/// The command that rebuilds a bench: recorded in the bench's README.
fn make_bench_command(out: &Path, seed: u64) -> String {
    let mut command = format!("cargo xtask eval make-bench --out {}", out.display());
    if seed != make::DEFAULT_SEED {
        command += &format!(" --seed {seed}");
    }
    command
}

fn make_bench(args: &MakeBenchArgs) -> anyhow::Result<()> {
    let cfg = r1_sim::SimConfig {
        tasks: Vec::new(),
        episodes_per_task: make::FRAMES_PER_TASK,
        seed: args.seed,
        image_size: 224,
    };
    let bar = progress::bar((r1_sim::task_names().len() * make::FRAMES_PER_TASK) as u64, "simulating");
    let episodes =
        r1_sim::simulate(&cfg, |done, _| bar.set_position(done as u64)).context("simulating the bench episodes")?;
    bar.finish_and_clear();
    let bench = make::build(&episodes, r1_sim::is_held_out)?;
    make::write(&bench, &args.out, &make_bench_command(&args.out, args.seed), args.overwrite)?;
    println!("wrote {} questions and {} images to {}", bench.questions.len(), bench.images.len(), args.out.display());
    Ok(())
}

fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|p| {
            let name = p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
            Ok((name, report::read_results(p)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    print!("{}", report::compare(&runs, args.seeds));
    Ok(())
}

fn limited<T>(items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(n) => items.into_iter().take(n).collect(),
        None => items,
    }
}

/// What answers the questions, and how the results name it.
struct Subject {
    /// The model or answers as given on the command line.
    name: String,
    /// How the answers were made: the model folder loaded, or the answers file.
    source: Source,
    step: Option<u64>,
    run: Option<PathBuf>,
    out: PathBuf,
}

impl Common {
    /// The checks made before anything is read.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.samples >= 1, "--samples must be at least 1");
        anyhow::ensure!(!(self.no_qa && self.no_bench), "--no-qa and --no-bench leave nothing to evaluate");
        Ok(())
    }
}

fn evaluate_answers(args: &AnswersArgs) -> anyhow::Result<()> {
    args.common.check()?;
    let mut out = args.answers.clone().into_os_string();
    out.push(".eval");
    let subject = Subject {
        name: args.answers.display().to_string(),
        source: Source::Answers { answers: args.answers.display().to_string() },
        step: None,
        run: None,
        out: args.out.clone().unwrap_or_else(|| PathBuf::from(out)),
    };
    evaluate(&args.common, subject, |_, _| Ok(Box::new(RecordedAnswers::read(&args.answers)?)))
}

fn evaluate_model(args: &ModelArgs) -> anyhow::Result<()> {
    let c = &args.common;
    c.check()?;
    anyhow::ensure!(args.temperature >= 0.0 && args.temperature.is_finite(), "--temperature must be finite and >= 0");
    anyhow::ensure!(
        c.samples == 1 || args.temperature > 0.0,
        "--samples {} at temperature 0 would repeat one greedy completion: give --temperature",
        c.samples
    );
    let resolved = report::resolve_model(&args.model)?;
    let subject = Subject {
        name: args.model.display().to_string(),
        source: Source::Model { model_dir: resolved.model_dir.display().to_string(), temperature: args.temperature },
        step: resolved.step,
        out: args.out.clone().unwrap_or_else(|| resolved.run.as_deref().unwrap_or(&args.model).join("eval")),
        run: resolved.run,
    };
    let run = subject.run.clone();
    evaluate(c, subject, |qa, bench| {
        let max_new_tokens = match (args.max_new_tokens, &run) {
            (Some(n), _) => n,
            (None, Some(run)) => r1_grpo::run::RunDir::open(run)?.1.rollout.max_response_tokens,
            (None, None) => DEFAULT_MAX_NEW_TOKENS,
        };
        eprintln!(
            "answering {} questions with up to {max_new_tokens} new tokens each (--max-new-tokens)",
            qa.len() + bench.len()
        );
        let config = r1_model::SamplingConfig { max_new_tokens, temperature: args.temperature, top_p: 1.0, top_k: 0 };
        load_model(&resolved.model_dir, args.device, config)
    })
}

/// A checkpoint answering with r1-model's generation.
struct ModelResponder {
    assets: r1_model::Assets,
    model: r1_model::Qwen2_5VlModel,
    config: r1_model::SamplingConfig,
    rng: rand::rngs::StdRng,
}

impl Responder for ModelResponder {
    fn respond(
        &mut self,
        _id: &str,
        messages: &[r1_data::Message],
        root: &Path,
        samples: usize,
    ) -> r1_bench::Result<Vec<evaluate::Response>> {
        let prompt = self.assets.encode_prompt(r1_data::qa::prompt_turns(messages), root)?;
        let out = self.assets.sample(&self.model, &[&prompt], samples, &self.config, &mut self.rng)?;
        Ok(out.into_iter().map(|(g, text)| evaluate::Response { text, tokens: Some(g.ids.len()) }).collect())
    }
}

/// A checkpoint as a [`Responder`]: greedy at temperature 0, otherwise sampled with a fixed
/// seed so an evaluation can be repeated.
fn load_model(dir: &Path, device: DeviceKind, config: r1_model::SamplingConfig) -> anyhow::Result<Box<dyn Responder>> {
    use burn::module::Module;
    use rand::SeedableRng;
    config.validate()?;
    let (assets, model) = crate::generate::load(dir, device)?;
    Ok(Box::new(ModelResponder { assets, model: model.valid(), config, rng: rand::rngs::StdRng::seed_from_u64(0) }))
}

/// The `mcqa.*` metrics of [`evaluate::summarise`] for the checkpoint `dir` answering `samples`
/// greedily (images relative to `root`), with a progress bar named `label`.
pub(crate) fn greedy_mcqa(
    dir: &Path,
    samples: &[QaSample],
    root: &Path,
    device: DeviceKind,
    max_new_tokens: usize,
    label: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let (records, _) = greedy_records(dir, (samples, root), (&[], root), device, max_new_tokens, label)?;
    Ok(evaluate::summarise(&records, &[], 1))
}

/// The scored greedy answers of the checkpoint `dir` to the QA samples and the bench questions,
/// each given with the folder its image paths are relative to, under one progress bar named
/// `label` (the rule-based bench scorer only: no judge).
pub(crate) fn greedy_records(
    dir: &Path,
    (samples, root): (&[QaSample], &Path),
    (questions, bench_root): (&[BenchQuestion], &Path),
    device: DeviceKind,
    max_new_tokens: usize,
    label: &str,
) -> anyhow::Result<(Vec<evaluate::QaRecord>, Vec<evaluate::BenchRecord>)> {
    let mut responder = load_model(dir, device, r1_model::SamplingConfig::greedy(max_new_tokens))?;
    let bar = progress::bar((samples.len() + questions.len()) as u64, label);
    let mut tick = progress::estimating_tick(&bar, "question");
    let qa = evaluate::run_qa(samples, root, responder.as_mut(), 1, &r1_sim::is_held_out, &mut tick)?;
    let bench = evaluate::run_bench(questions, bench_root, responder.as_mut(), 1, None, &mut tick)?;
    bar.finish_and_clear();
    Ok((qa, bench))
}

/// The blind baselines of `split` from the data card of the dataset at `root`, if it has them.
pub(crate) fn split_blind(root: &Path, split: Split) -> Option<r1_data::blind::BlindBaselines> {
    let mut card = r1_data::dataset::read_card(root).ok()?;
    card.splits.remove(&split.to_string()).map(|s| s.blind).filter(|b| !b.scores.is_empty())
}

/// Answers the QA split and the bench of `args` with the responder `responder` makes (given the
/// questions, once they are read), scores the answers, and writes and prints the results.
fn evaluate(
    args: &Common,
    subject: Subject,
    responder: impl FnOnce(&[QaSample], &[BenchQuestion]) -> anyhow::Result<Box<dyn Responder>>,
) -> anyhow::Result<()> {
    let Subject { name, source, step, run, out } = subject;
    // Read every input before loading the model, so a missing split fails fast.
    let qa = if args.no_qa {
        Vec::new()
    } else {
        let samples = read_split(&args.data, args.split)
            .with_context(|| format!("the dataset {} has no readable {} split", args.data.display(), args.split))?;
        anyhow::ensure!(
            !samples.is_empty(),
            "the {} split of {} has no questions (see its data card); evaluate another --split or pass --no-qa",
            args.split,
            args.data.display()
        );
        limited(samples, args.limit)
    };
    let bench = if args.no_bench {
        Vec::new()
    } else {
        let questions = read_bench(&args.bench).with_context(|| {
            format!("{} is not a Robot-R1 Bench folder (build one with `eval make-bench`)", args.bench.display())
        })?;
        limited(questions, args.limit)
    };
    let judge = JudgeConfig::resolve(
        args.judge_base_url.clone(),
        args.judge_model.clone(),
        args.judge_api_key.clone(),
        args.judge_samples,
        |k| std::env::var(k).ok(),
    )?
    .map(Judge::new);
    let mut responder = responder(&qa, &bench)?;
    let bar = progress::bar((qa.len() + bench.len()) as u64, "answering");
    let mut tick = progress::estimating_tick(&bar, "question");
    let qa_records =
        evaluate::run_qa(&qa, &args.data, responder.as_mut(), args.samples, &r1_sim::is_held_out, &mut tick)?;
    let bench_records =
        evaluate::run_bench(&bench, &args.bench, responder.as_mut(), args.samples, judge.as_ref(), &mut tick)?;
    bar.finish_and_clear();

    let metrics = evaluate::summarise(&qa_records, &bench_records, args.samples);
    let run = run.as_deref();
    let path = match &source {
        Source::Model { model_dir, .. } => model_dir.clone(),
        Source::Answers { answers } => answers.clone(),
    };
    let results = Results {
        model: name,
        group: run.and_then(report::config_group).unwrap_or(path),
        source,
        step,
        seed: run.and_then(report::config_seed),
        samples: args.samples,
        metrics,
        // Blind baselines describe the whole split; a --limit subset would not match them.
        blind: if args.no_qa || args.limit.is_some() { None } else { split_blind(&args.data, args.split) },
    };
    report::write(&out, &results, &qa_records, &bench_records)?;
    charts::write(&out, &results)?;
    print!("{}", report::markdown(&results));
    println!("\nwrote {}", out.display());
    Ok(())
}
