//! `cargo xtask experiment`: Robot-R1's findings at small scale.
//!
//! From one base model and with one budget of training examples, four methods are trained once
//! per seed: Direct SFT and CoT SFT (the paper's baselines: SFT on the open waypoint question's
//! answer, or on plan, subtask, move and answer), GRPO on the three multiple-choice types (the
//! paper's method, through `cargo xtask train`'s pipeline: format warm-up, then GRPO) and GRPO on
//! the waypoint question alone (the paper's ablation of the auxiliary questions). Every run, and
//! the base model, is evaluated greedily on the same test questions (held-in and held-out tasks)
//! and the same Robot-R1 Bench questions with `cargo xtask eval`'s machinery; the report gives
//! mean and standard deviation over seeds and a verdict per finding computed from the numbers.
//!
//! Layout of `--out`: `experiment.json` (the settings, checked on every re-run),
//! `configs/<method>.toml`, `base/eval/`, `<method>-seed<s>/` (a training run with its `eval/`),
//! `plots/`, `report.md`, `report.json`. A run whose last checkpoint reached its steps is not
//! trained again, an unfinished one is resumed, and an evaluation folder appears only when
//! complete, so re-running the command continues an interrupted experiment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use r1_bench::evaluate;
use r1_bench::question::BenchQuestion;
use r1_bench::report::{self, Results, Source};
use r1_bench::stats;
use r1_data::dataset::{Split, read_split};
use r1_data::{QaSample, QaType};
use r1_grpo::config::{Preset, TrainConfig};
use r1_grpo::metrics::{self, Metric, StepMetrics};
use r1_grpo::run::RunDir;
use r1_grpo::sft::SftMode;
use r1_model::DeviceKind;
use r1_model::checkpoint::run::CONFIG_FILE;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::train::{self, WARMUP_DIR};

/// The settings every re-run of one experiment folder must repeat.
const SETTINGS_FILE: &str = "experiment.json";
/// Wall time of an evaluation, next to its results.
const EVAL_TIMING_FILE: &str = "timing.json";
const REPORT_MD: &str = "report.md";
const REPORT_JSON: &str = "report.json";
/// The evaluation folder inside a run folder (where `cargo xtask eval` puts it too).
const EVAL_DIR: &str = "eval";
/// The base model's evaluation, as a pseudo-method.
const BASE: &str = "base";

#[derive(clap::Args)]
pub struct Args {
    /// Experiment folder (default: runs/experiment-<unix time>). Give an existing one to continue
    /// it: finished runs and evaluations are skipped, unfinished ones resumed.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seeds, comma-separated: every method is trained once per seed.
    #[arg(long, value_name = "S,S,..", value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    /// Training examples (questions) per method: SFT steps x sft.batch_size = GRPO steps x
    /// rollout.prompts_per_rollout = N, so it must be a multiple of both (tiny preset: 8 and 4).
    #[arg(long, value_name = "N", default_value_t = 800)]
    examples: u64,
    /// Format warm-up steps before each GRPO run (default: the config's sft.warmup_steps). Its
    /// answers are labels picked by a hash of the question id, so it teaches the reply's shape,
    /// not the task; its examples come on top of the budget.
    #[arg(long, value_name = "N")]
    warmup_steps: Option<u64>,
    /// TOML configuration layered over the tiny preset, shared by every method (each sets its
    /// own data.qa_types, steps and seed).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Base model every method starts from: a Hugging Face Qwen2.5-VL folder, a run or a
    /// checkpoint (default: the tiny model `cargo xtask train` uses, created in models/r1-tiny
    /// if absent).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// QA dataset (default: the config's, datasets/default).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Robot-R1 Bench folder.
    #[arg(long, value_name = "DIR", default_value = "datasets/bench")]
    bench: PathBuf,
    /// At most N test questions per task and question type, evenly spread (0: none).
    #[arg(long, value_name = "N", default_value_t = 30)]
    eval_questions: usize,
    /// At most N bench questions per task and category (default: all of them).
    #[arg(long, value_name = "N")]
    bench_questions: Option<usize>,
    /// Longest evaluation answer in tokens, the same for every model (default: the longest
    /// reply SFT is trained to give, with its end token, or the config's
    /// rollout.max_response_tokens if longer, so that no method is cut short).
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
    /// Device for training and evaluation (default: the config's).
    #[arg(long, value_enum, ignore_case = true)]
    device: Option<DeviceKind>,
}

/// What is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    DirectSft,
    CotSft,
    Grpo,
    GrpoWaypoint,
}

impl Method {
    const ALL: [Method; 4] = [Method::DirectSft, Method::CotSft, Method::Grpo, Method::GrpoWaypoint];

    /// Folder and key name.
    fn name(self) -> &'static str {
        match self {
            Method::DirectSft => "direct-sft",
            Method::CotSft => "cot-sft",
            Method::Grpo => "grpo",
            Method::GrpoWaypoint => "grpo-waypoint",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Method::DirectSft => "Direct SFT",
            Method::CotSft => "CoT SFT",
            Method::Grpo => "GRPO (MCQA)",
            Method::GrpoWaypoint => "GRPO (waypoint only)",
        }
    }

    /// SFT methods train on the open waypoint question, the only type with SFT targets (the
    /// paper's SFT baselines train on the waypoint answer).
    fn sft_mode(self) -> Option<SftMode> {
        match self {
            Method::DirectSft => Some(SftMode::Direct),
            Method::CotSft => Some(SftMode::Cot),
            Method::Grpo | Method::GrpoWaypoint => None,
        }
    }

    fn qa_types(self) -> Vec<QaType> {
        match self {
            Method::DirectSft | Method::CotSft => vec![QaType::WaypointOpen],
            Method::Grpo => QaType::ALL.into_iter().filter(|t| t.is_multiple_choice()).collect(),
            Method::GrpoWaypoint => vec![QaType::Waypoint],
        }
    }
}

/// How many steps give each method the same number of training examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Budget {
    examples: u64,
    sft_batch: usize,
    sft_steps: u64,
    prompts_per_step: usize,
    grpo_steps: u64,
    warmup_steps: u64,
}

impl Budget {
    fn new(examples: u64, config: &TrainConfig) -> anyhow::Result<Self> {
        let (sft_batch, prompts) = (config.sft.batch_size, config.rollout.prompts_per_rollout);
        anyhow::ensure!(
            examples > 0 && examples.is_multiple_of(sft_batch as u64) && examples.is_multiple_of(prompts as u64),
            "--examples {examples} must be a positive multiple of sft.batch_size = {sft_batch} and of \
             rollout.prompts_per_rollout = {prompts}, so that every method trains on exactly that many questions"
        );
        Ok(Self {
            examples,
            sft_batch,
            sft_steps: examples / sft_batch as u64,
            prompts_per_step: prompts,
            grpo_steps: examples / prompts as u64,
            warmup_steps: config.sft.warmup_steps,
        })
    }

    fn steps(&self, method: Method) -> u64 {
        if method.sft_mode().is_some() { self.sft_steps } else { self.grpo_steps }
    }
}

/// `experiment.json`: what a re-run must repeat for the folder's runs to stay comparable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    base_model: PathBuf,
    budget: Budget,
    eval_questions: usize,
    bench_questions: Option<usize>,
    max_new_tokens: usize,
    bench: PathBuf,
    /// The shared configuration (before each method's changes), as TOML.
    config: String,
}

/// Everything the runs share.
struct Experiment {
    out: PathBuf,
    settings: Settings,
    /// Device override for training (`None`: the config's) and the device evaluations run on.
    device: Option<DeviceKind>,
    eval_device: DeviceKind,
    data_root: PathBuf,
    questions: Vec<QaSample>,
    bench: Vec<BenchQuestion>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.seeds.is_empty(), "--seeds names no seed");
    let mut seeds = args.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    let exp = prepare(&args)?;
    let b = &exp.settings.budget;
    println!(
        "experiment in {}: {} methods x {} seed(s), {} training examples each (SFT {} steps x {}, GRPO {} steps x {} \
         prompts, after a {}-step format warm-up); evaluation on {} test and {} bench questions, answers up to {} tokens",
        exp.out.display(),
        Method::ALL.len(),
        seeds.len(),
        b.examples,
        b.sft_steps,
        b.sft_batch,
        b.grpo_steps,
        b.prompts_per_step,
        b.warmup_steps,
        exp.questions.len(),
        exp.bench.len(),
        exp.settings.max_new_tokens
    );
    evaluate_model(&exp, &exp.settings.base_model, &exp.out.join(BASE).join(EVAL_DIR), BASE, None)?;
    let jobs: Vec<(u64, Method)> = seeds.iter().flat_map(|&s| Method::ALL.map(|m| (s, m))).collect();
    for (i, &(seed, method)) in jobs.iter().enumerate() {
        let name = format!("[{}/{}] {} seed {seed}", i + 1, jobs.len(), method.label());
        let dir = run_dir(&exp.out, method, seed);
        let steps = exp.settings.budget.steps(method);
        match trained_steps(&dir)? {
            Some(done) if done >= steps => println!("{name}: trained ({done} steps): skipped"),
            _ => {
                println!("{name}: training {steps} steps in {}", dir.display());
                train_run(&exp, method, seed, &dir, steps)?;
            }
        }
        if evaluate_model(&exp, &dir, &dir.join(EVAL_DIR), method.name(), Some(seed))? {
            // The report so far, so that a long experiment can be read (or stopped) half-way.
            write_report(&exp, &seeds)?;
        }
    }
    let report = write_report(&exp, &seeds)?;
    println!("\n{report}");
    println!("wrote {} and {}", exp.out.join(REPORT_MD).display(), exp.out.join(REPORT_JSON).display());
    Ok(())
}

/// Resolves the configuration, the base model (created if it is the absent tiny model), the
/// budget and the evaluation questions, and records the settings in (or checks them against)
/// the experiment folder, with each method's configuration.
fn prepare(args: &Args) -> anyhow::Result<Experiment> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path, Preset::Tiny)?,
        None => TrainConfig::tiny(),
    };
    if let Some(data) = &args.data {
        config.data.root = data.clone();
    }
    if let Some(steps) = args.warmup_steps {
        config.sft.warmup_steps = steps;
    }
    if let Some(model) = &args.model {
        config.model.path = Some(report::resolve_model(model)?.model_dir);
    }
    config.validate()?;
    let budget = Budget::new(args.examples, &config)?;
    // The base model `cargo xtask train` starts from (created from its training text if absent).
    let train_data = train::training_data(&config)?;
    let base_model = train::initial_model(&mut config, &train_data)?;
    let out = args.out.clone().unwrap_or_else(|| train::default_out("experiment"));
    let data_root = config.data.root.clone();

    let test = read_split(&data_root, Split::Test)
        .with_context(|| format!("{}: the experiment evaluates on the test split", data_root.display()))?;
    let questions = train::evenly_per_group(test, args.eval_questions, |s| (s.task.clone(), s.qa_type));
    let bench = r1_bench::question::read_bench(&args.bench).with_context(|| {
        format!(
            "{} is not a Robot-R1 Bench folder (build one with `cargo xtask eval make-bench`)",
            args.bench.display()
        )
    })?;
    let bench = match args.bench_questions {
        Some(n) => train::evenly_per_group(bench, n, |q| (q.task.clone(), q.category)),
        None => bench,
    };
    let max_new_tokens = match args.max_new_tokens {
        Some(n) => n,
        None => longest_sft_reply(&base_model, &config)?.max(config.rollout.max_response_tokens),
    };
    let settings = Settings {
        base_model,
        budget,
        eval_questions: args.eval_questions,
        bench_questions: args.bench_questions,
        max_new_tokens,
        bench: args.bench.clone(),
        config: config.to_toml()?,
    };
    check_settings(&out, &settings)?;
    for method in Method::ALL {
        let mut c = config.clone();
        c.data.qa_types = method.qa_types();
        c.run.steps = settings.budget.steps(method);
        // The warm-up belongs to the GRPO pipeline; the SFT baselines start from the base model.
        if method.sft_mode().is_some() {
            c.sft.warmup_steps = 0;
        }
        let path = config_path(&out, method);
        r1_data::fsutil::write_atomic(&path, c.to_toml()?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let eval_device = args.device.unwrap_or(config.device);
    Ok(Experiment { out, settings, device: args.device, eval_device, data_root, questions, bench })
}

fn config_path(out: &Path, method: Method) -> PathBuf {
    out.join("configs").join(format!("{}.toml", method.name()))
}

fn run_dir(out: &Path, method: Method, seed: u64) -> PathBuf {
    out.join(format!("{}-seed{seed}", method.name()))
}

/// Tokens of the longest SFT target (CoT's, with its end token) of the training split, in the
/// base model's tokenizer.
fn longest_sft_reply(base: &Path, config: &TrainConfig) -> anyhow::Result<usize> {
    let assets = r1_model::Assets::from_dir(base)?;
    let mut sft = config.clone();
    sft.data.qa_types = vec![QaType::WaypointOpen];
    let mut longest = 0;
    for sample in train::training_data(&sft)? {
        for mode in [SftMode::Direct, SftMode::Cot] {
            if let Ok(text) = r1_grpo::sft::target(&sample, mode) {
                longest = longest.max(assets.encode_reply(&text)?.len());
            }
        }
    }
    Ok(longest)
}

/// Records the settings of a new experiment folder, or checks that a re-run repeats them
/// (the seeds may change: each seed's runs stand alone).
fn check_settings(out: &Path, settings: &Settings) -> anyhow::Result<()> {
    let path = out.join(SETTINGS_FILE);
    if !path.is_file() {
        return r1_grpo::fsio::write_json(&path, settings).map_err(Into::into);
    }
    let recorded: Settings = r1_grpo::fsio::read_json(&path)?;
    if &recorded == settings {
        return Ok(());
    }
    let (old, new) = (serde_json::to_value(&recorded)?, serde_json::to_value(settings)?);
    let differ: Vec<String> = match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            new.iter().filter(|(k, v)| old.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect()
        }
        _ => Vec::new(),
    };
    anyhow::bail!(
        "{}: this experiment was started with other settings ({} differ); repeat its flags or choose another --out",
        path.display(),
        differ.join(", ")
    )
}

/// The step of the run's newest checkpoint; `None` before its own training has one (a GRPO
/// run still in its warm-up included).
fn trained_steps(dir: &Path) -> anyhow::Result<Option<u64>> {
    if !dir.join(CONFIG_FILE).is_file() {
        return Ok(None);
    }
    let (run, _) = RunDir::open(dir)?;
    Ok(run.latest_checkpoint()?.map(|(step, _)| step))
}

/// Trains (or continues) one run with `cargo xtask sft` or `cargo xtask train`.
fn train_run(exp: &Experiment, method: Method, seed: u64, dir: &Path, steps: u64) -> anyhow::Result<()> {
    let common = |resume: bool| train::Common {
        config: (!resume).then(|| config_path(&exp.out, method)),
        preset: Preset::Tiny,
        model: None,
        data: None,
        steps: Some(steps),
        out: (!resume).then(|| dir.to_path_buf()),
        save_every: None,
        resume: resume.then(|| dir.to_path_buf()),
        device: exp.device,
        seed: (!resume).then_some(seed),
    };
    match method.sft_mode() {
        Some(mode) => {
            let started = dir.join(CONFIG_FILE).is_file();
            let checkpointed = started && RunDir::open(dir)?.0.latest_checkpoint()?.is_some();
            if started && !checkpointed {
                // Nothing to resume from: the run starts again.
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            // A resumed run keeps the mode its checkpoint records.
            train::run_sft(train::SftArgs { common: common(checkpointed), mode: (!checkpointed).then_some(mode) })
        }
        None => {
            // `train --resume` continues the pipeline wherever it stopped, in the warm-up too.
            let started = dir.join(CONFIG_FILE).is_file() || dir.join(WARMUP_DIR).join(CONFIG_FILE).is_file();
            train::run(train::Args {
                common: common(started),
                warmup_steps: None,
                eval_questions: 0,
                dry_run: false,
                device_memory: None,
            })
        }
    }
}

/// How long an evaluation took.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct EvalTiming {
    seconds: f64,
    questions: usize,
}

/// Evaluates `model` (a model folder or a run: its newest checkpoint) greedily on the
/// experiment's questions into `out`, which appears only once complete; an existing one is
/// kept. Returns whether it evaluated.
fn evaluate_model(exp: &Experiment, model: &Path, out: &Path, group: &str, seed: Option<u64>) -> anyhow::Result<bool> {
    let label = match seed {
        Some(s) => format!("{group} s{s}"),
        None => group.to_string(),
    };
    if out.join(report::RESULTS_FILE).is_file() {
        println!("{label}: evaluated: skipped");
        return Ok(false);
    }
    let resolved = report::resolve_model(model)?;
    let staged = r1_data::fsutil::StagedDir::new(out)?;
    let start = Instant::now();
    let (qa, bench) = crate::eval::greedy_records(
        &resolved.model_dir,
        (&exp.questions, &exp.data_root),
        (&exp.bench, &exp.settings.bench),
        exp.eval_device,
        exp.settings.max_new_tokens,
        &format!("eval {label}"),
    )?;
    let timing = EvalTiming { seconds: start.elapsed().as_secs_f64(), questions: qa.len() + bench.len() };
    let results = Results {
        model: model.display().to_string(),
        source: Source::Model { model_dir: resolved.model_dir.display().to_string(), temperature: 0.0 },
        step: resolved.step,
        // The method, not the configuration: Direct and CoT SFT differ only in their targets.
        group: group.to_string(),
        seed,
        samples: 1,
        metrics: evaluate::summarise(&qa, &bench, 1),
        // A subset of the split: the data card's baselines describe the whole of it.
        blind: None,
    };
    report::write(staged.path(), &results, &qa, &bench)?;
    r1_bench::charts::write(staged.path(), &results)?;
    r1_grpo::fsio::write_json(&staged.path().join(EVAL_TIMING_FILE), &timing)?;
    staged.commit(true)?;
    println!("{label}: evaluated {} questions in {:.0} s", timing.questions, timing.seconds);
    Ok(true)
}

/// Mean and sample standard deviation of one figure over seeds.
#[derive(Clone, Debug, Serialize)]
struct Stat {
    mean: f64,
    std: f64,
    n: usize,
    values: Vec<f64>,
    /// The figure does not depend on a seed (the base model's greedy evaluation, a constant):
    /// one value is its whole distribution.
    fixed: bool,
}

impl Stat {
    fn of(values: Vec<f64>) -> Option<Self> {
        let (mean, std) = (stats::mean(&values)?, stats::std_dev(&values)?);
        Some(Self { mean, std, n: values.len(), values, fixed: false })
    }

    fn fixed(value: f64) -> Self {
        Self { mean: value, std: 0.0, n: 1, values: vec![value], fixed: true }
    }

    /// Whether the standard deviation says how far the figure moves with the seed.
    fn has_spread(&self) -> bool {
        self.fixed || self.n >= 2
    }

    fn cell(stat: Option<&Stat>) -> String {
        match stat {
            None => "–".into(),
            Some(s) if s.n == 1 => format!("{:.3}", s.mean),
            Some(s) => format!("{:.3} ± {:.3}", s.mean, s.std),
        }
    }
}

/// One method's (or the base model's) figures over its seeds.
#[derive(Serialize)]
struct MethodSummary {
    name: String,
    label: String,
    seeds: Vec<u64>,
    /// Evaluation metrics (r1-bench's keys, see [`reported`]).
    metrics: BTreeMap<String, Stat>,
    /// Figures of training itself, from `metrics.jsonl`.
    training: BTreeMap<String, Stat>,
}

/// Figures read from a run's training logs: the first and last tenth of the GRPO curves and
/// their change (completion length, reward, answer reward), and seconds per step.
fn training_figures(dir: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let lines = RunDir::open(dir)?.0.read_metrics()?;
    for (name, metric) in CURVES.iter().filter(|(n, _, _)| *n != "loss").map(|(n, m, _)| (n, m)) {
        let ys: Vec<f64> = metric.series(&lines).into_iter().map(|(_, y)| y).collect();
        let window = (ys.len() / 10).max(1);
        if let (Some(first), Some(last)) =
            (stats::mean(&ys[..window.min(ys.len())]), stats::mean(&ys[ys.len().saturating_sub(window)..]))
        {
            out.insert(format!("{name}.first"), first);
            out.insert(format!("{name}.last"), last);
            out.insert(format!("{name}.change"), last - first);
        }
    }
    // GRPO logs its whole step; SFT (and the warm-up) log the update, which is their step.
    let per_step = |lines: &[StepMetrics]| {
        let step: Vec<f64> = metrics::STEP_SECONDS.series(lines).into_iter().map(|(_, y)| y).collect();
        let step = if step.is_empty() {
            metrics::UPDATE_SECONDS.series(lines).into_iter().map(|(_, y)| y).collect()
        } else {
            step
        };
        stats::mean(&step)
    };
    if let Some(s) = per_step(&lines) {
        out.insert("seconds_per_step".into(), s);
    }
    let warmup = dir.join(WARMUP_DIR);
    if warmup.join(CONFIG_FILE).is_file()
        && let Some(s) = per_step(&RunDir::open(&warmup)?.0.read_metrics()?)
    {
        out.insert("warmup.seconds_per_step".into(), s);
    }
    let timing = dir.join(EVAL_DIR).join(EVAL_TIMING_FILE);
    if timing.is_file() {
        let t: EvalTiming = r1_grpo::fsio::read_json(&timing)?;
        out.insert("eval.seconds_per_question".into(), t.seconds / t.questions.max(1) as f64);
    }
    Ok(out)
}

/// The training curves plotted per method (mean over seeds at each step): file stem, figure,
/// y-axis label. SFT samples nothing while it trains, so its only curve is its loss.
const CURVES: [(&str, Metric, &str); 4] = [
    ("reward", metrics::REWARD, "mean reward (format + answer)"),
    ("accuracy", metrics::ANSWER_REWARD, "answer reward of the samples (accuracy)"),
    ("length", metrics::MEAN_LENGTH, "mean completion length (tokens)"),
    ("loss", metrics::LOSS, "loss"),
];

/// Summaries of the base model and of every method with at least one evaluated seed.
fn summarise(exp: &Experiment, seeds: &[u64]) -> anyhow::Result<Vec<MethodSummary>> {
    let mut out = Vec::new();
    let base = exp.out.join(BASE).join(EVAL_DIR);
    if base.join(report::RESULTS_FILE).is_file() {
        let results = report::read_results(&base)?;
        out.push(MethodSummary {
            name: BASE.into(),
            label: "base model".into(),
            seeds: Vec::new(),
            // Greedy decoding of one model: the figures do not depend on a seed.
            metrics: results
                .metrics
                .into_iter()
                .filter(|(k, _)| reported(k))
                .map(|(k, v)| (k, Stat::fixed(v)))
                .collect(),
            training: BTreeMap::new(),
        });
    }
    for method in Method::ALL {
        let (mut metrics, mut training, mut done) = (Vec::new(), Vec::new(), Vec::new());
        for &seed in seeds {
            let dir = run_dir(&exp.out, method, seed);
            if dir.join(EVAL_DIR).join(report::RESULTS_FILE).is_file() {
                metrics.push(report::read_results(&dir.join(EVAL_DIR))?.metrics);
                training.push(training_figures(&dir)?);
                done.push(seed);
            }
        }
        if done.is_empty() {
            continue;
        }
        out.push(MethodSummary {
            name: method.name().into(),
            label: method.label().into(),
            seeds: done,
            metrics: aggregate(&metrics),
            training: aggregate(&training),
        });
    }
    Ok(out)
}

/// Whether the report keeps an evaluation metric: per-task figures are left to each run's own
/// report.
fn reported(key: &str) -> bool {
    !key.contains(".task.")
}

/// Mean and std over runs of every reported key any run has.
fn aggregate(runs: &[BTreeMap<String, f64>]) -> BTreeMap<String, Stat> {
    let keys: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|m| m.keys()).filter(|k| reported(k)).collect();
    keys.into_iter()
        .filter_map(|k| Some((k.clone(), Stat::of(runs.iter().filter_map(|m| m.get(k).copied()).collect())?)))
        .collect()
}

/// How one comparison of the claim `higher > lower` came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// The difference is in the claimed direction and larger than its noise.
    Holds,
    /// The difference is against the claim and larger than its noise.
    Contradicted,
    /// The difference is within one standard deviation.
    WithinNoise,
    /// A side that depends on the seed was measured with one seed: its spread is unknown.
    OneSeed,
    /// A side was not measured.
    Missing,
}

#[derive(Clone, Debug, Serialize)]
struct Comparison {
    claim: String,
    metric: String,
    higher: Option<Stat>,
    lower: Option<Stat>,
    /// Mean of the side claimed higher minus mean of the other.
    difference: Option<f64>,
    /// sqrt(std_higher² + std_lower²): the standard deviation of the difference between two
    /// single runs, one of each side.
    noise: Option<f64>,
    outcome: Outcome,
}

impl Comparison {
    fn new(claim: String, metric: &str, higher: Option<&Stat>, lower: Option<&Stat>) -> Self {
        let (difference, noise, outcome) = match (higher, lower) {
            (Some(h), Some(l)) => {
                let (d, noise) = (h.mean - l.mean, h.std.hypot(l.std));
                let outcome = if !(h.has_spread() && l.has_spread()) {
                    Outcome::OneSeed
                } else if d.abs() <= noise {
                    Outcome::WithinNoise
                } else if d > 0.0 {
                    Outcome::Holds
                } else {
                    Outcome::Contradicted
                };
                (Some(d), Some(noise), outcome)
            }
            _ => (None, None, Outcome::Missing),
        };
        Self {
            claim,
            metric: metric.into(),
            higher: higher.cloned(),
            lower: lower.cloned(),
            difference,
            noise,
            outcome,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Reproduces,
    DoesNotReproduce,
    Inconclusive,
    NotMeasured,
}

impl Verdict {
    /// The verdict on a finding and why: every comparison must hold; one that goes the other
    /// way by more than its noise refutes the finding; a missing figure, a single seed or a
    /// difference within one std leaves it open.
    fn of(comparisons: &[Comparison]) -> (Self, &'static str) {
        let any = |o: Outcome| comparisons.iter().any(|c| c.outcome == o);
        if comparisons.is_empty() || any(Outcome::Missing) {
            (Verdict::NotMeasured, "a method or metric is missing")
        } else if any(Outcome::OneSeed) {
            (Verdict::Inconclusive, "one seed: how much a figure moves with the seed is unknown")
        } else if any(Outcome::Contradicted) {
            (Verdict::DoesNotReproduce, "a difference goes against the claim by more than one std")
        } else if any(Outcome::WithinNoise) {
            (Verdict::Inconclusive, "a difference is within one std")
        } else {
            (Verdict::Reproduces, "every difference is in the claimed direction by more than one std")
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Reproduces => "reproduces",
            Verdict::DoesNotReproduce => "does not reproduce",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }
}

#[derive(Serialize)]
struct Finding {
    claim: &'static str,
    paper: &'static str,
    verdict: Verdict,
    /// Why the comparisons give that verdict.
    reason: &'static str,
    comparisons: Vec<Comparison>,
}

/// The paper's four findings, each checked against the measured figures.
fn findings(summaries: &[MethodSummary]) -> Vec<Finding> {
    let find = |name: &str| summaries.iter().find(|s| s.name == name);
    let label = |name: &str| find(name).map_or(name.to_string(), |s| s.label.clone());
    let metric = |name: &str, key: &str| find(name).and_then(|s| s.metrics.get(key));
    let pair = |higher: &str, lower: &str, key: &str, what: &str| {
        Comparison::new(
            format!("{} > {} on {what}", label(higher), label(lower)),
            key,
            metric(higher, key),
            metric(lower, key),
        )
    };
    let finding = |claim, paper, comparisons: Vec<Comparison>| {
        let (verdict, reason) = Verdict::of(&comparisons);
        Finding { claim, paper, verdict, reason, comparisons }
    };
    let (grpo, cot, direct, waypoint) =
        (Method::Grpo.name(), Method::CotSft.name(), Method::DirectSft.name(), Method::GrpoWaypoint.name());
    let movement = ("bench.movement.score", "bench movement (0-3)");
    let spatial = ("bench.spatial.score", "bench spatial (0-3)");
    let zero = Stat::fixed(0.0);
    let length_change = find(grpo).and_then(|s| s.training.get("length.change"));
    vec![
        finding(
            "GRPO > CoT SFT > Direct SFT on movement and spatial reasoning",
            "Robot-R1 Bench movement / spatial: Robot-R1 0.76 / 1.51 (movement: best of 3 seeds, mean 0.65 ± 0.11), \
             CoT SFT 0.70 / 0.29, Direct SFT 0.06 / 0.06",
            [movement, spatial]
                .into_iter()
                .flat_map(|(key, what)| [pair(grpo, cot, key, what), pair(cot, direct, key, what)])
                .collect(),
        ),
        finding(
            "Direct SFT loses the ability to answer open questions",
            "Qwen2.5-VL-7B's movement / spatial scores 0.58 / 1.40 fell to 0.06 / 0.06 after Direct SFT",
            vec![pair(BASE, direct, "bench.overall.score", "the bench's open questions, all categories (0-3)")],
        ),
        finding(
            "MCQA with the auxiliary questions beats waypoint-only MCQA",
            "the ablation: training on all three multiple-choice types was best on low-level reasoning",
            vec![
                pair(grpo, waypoint, "mcqa.waypoint.accuracy", "waypoint multiple-choice accuracy"),
                pair(grpo, waypoint, movement.0, movement.1),
            ],
        ),
        finding(
            "Completions get shorter during GRPO",
            "the reasoning got shorter as GRPO trained",
            vec![Comparison::new(
                format!("{}'s mean completion length falls from the first to the last tenth of training", label(grpo)),
                "length.change",
                Some(&zero),
                length_change,
            )],
        ),
    ]
}

/// Columns of the report's tables: header and metric key.
const MC_COLUMNS: [(&str, &str); 10] = [
    ("waypoint In", "mcqa.waypoint.in.accuracy"),
    ("waypoint Out", "mcqa.waypoint.out.accuracy"),
    ("state In", "mcqa.current_state.in.accuracy"),
    ("state Out", "mcqa.current_state.out.accuracy"),
    ("movement In", "mcqa.movement.in.accuracy"),
    ("movement Out", "mcqa.movement.out.accuracy"),
    ("MC In", "mcqa.in.accuracy"),
    ("MC Out", "mcqa.out.accuracy"),
    ("format", "mcqa.format_rate"),
    ("tokens", "mcqa.completion_tokens.mean"),
];
const OPEN_COLUMNS: [(&str, &str); 3] = [
    ("reward", "open.waypoint.reward"),
    ("L1 (m)", "open.waypoint.l1"),
    ("positions parsed", "open.waypoint.parsed_rate"),
];
const BENCH_COLUMNS: [(&str, &str); 7] = [
    ("planning", "bench.planning.score"),
    ("high-level action", "bench.high_level_action.score"),
    ("movement", "bench.movement.score"),
    ("spatial", "bench.spatial.score"),
    ("overall", "bench.overall.score"),
    ("overall In", "bench.overall.in.score"),
    ("overall Out", "bench.overall.out.score"),
];
const TRAINING_COLUMNS: [(&str, &str); 7] = [
    ("reward, first -> last tenth", "reward"),
    ("answer reward", "accuracy"),
    ("length (tokens)", "length"),
    ("length change", "length.change"),
    ("s/step", "seconds_per_step"),
    ("warm-up s/step", "warmup.seconds_per_step"),
    ("eval s/question", "eval.seconds_per_question"),
];

fn table(
    summaries: &[MethodSummary],
    columns: &[(&str, &str)],
    cell: impl Fn(&MethodSummary, &str) -> String,
) -> String {
    let mut s = String::from("| method | seeds |");
    s += &columns.iter().map(|(h, _)| format!(" {h} |")).collect::<String>();
    s += "\n|---|---|";
    s += &"---|".repeat(columns.len());
    s += "\n";
    for m in summaries {
        s += &format!("| {} | {} |", m.label, if m.seeds.is_empty() { "–".into() } else { m.seeds.len().to_string() });
        s += &columns.iter().map(|(_, key)| format!(" {} |", cell(m, key))).collect::<String>();
        s += "\n";
    }
    s
}

fn markdown(exp: &Experiment, summaries: &[MethodSummary], findings: &[Finding], plots: &[PathBuf]) -> String {
    let b = &exp.settings.budget;
    let mut s = String::from("# Robot-R1's findings at small scale\n\n");
    s += &format!(
        "Base model `{}`. Every method trains on **{} examples** (questions): Direct and CoT SFT {} steps x {} \
         open waypoint questions (their targets: the answer, or plan, subtask, move and answer); GRPO {} steps x {} \
         prompts (each with its group of samples), on the three multiple-choice types or on the waypoint question \
         alone, after a {}-step format warm-up ({} examples whose answers are labels drawn by a hash of the question \
         id, so they teach the reply's shape and nothing of the task). Evaluation: greedy, answers up to {} tokens, \
         {} test questions (at most {} per task and type; In = tasks trained on, Out = held-out tasks) and {} \
         Robot-R1 Bench questions scored by the rule-based scorer. Cells: mean ± sample std over seeds.\n\n",
        exp.settings.base_model.display(),
        b.examples,
        b.sft_steps,
        b.sft_batch,
        b.grpo_steps,
        b.prompts_per_step,
        b.warmup_steps,
        b.warmup_steps * b.sft_batch as u64,
        exp.settings.max_new_tokens,
        exp.questions.len(),
        exp.settings.eval_questions,
        exp.bench.len(),
    );
    s += "## Verdicts\n\nA comparison holds when the difference of the means exceeds one standard deviation of the \
          difference between two single runs, sqrt(std1² + std2²), and is contradicted when it goes the other way by \
          more than that; a method measured on one seed has no spread to compare with (the base model's greedy \
          evaluation and a constant do not depend on a seed). A finding reproduces when all its comparisons hold, \
          does not when one is contradicted, and is inconclusive when one is within one std or rests on one seed.\n\n";
    for f in findings {
        s += &format!("### {}: **{}** ({})\n\nPaper: {}.\n\n", f.claim, f.verdict.text(), f.reason, f.paper);
        for c in &f.comparisons {
            let fmt = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:+.3}"));
            s += &format!(
                "- {} (`{}`): {} vs {}, difference {}, noise {} -> {}\n",
                c.claim,
                c.metric,
                Stat::cell(c.higher.as_ref()),
                Stat::cell(c.lower.as_ref()),
                fmt(c.difference),
                c.noise.map_or("–".into(), |x| format!("{x:.3}")),
                match c.outcome {
                    Outcome::Holds => "holds",
                    Outcome::Contradicted => "contradicted",
                    Outcome::WithinNoise if c.difference == Some(0.0) => "no difference",
                    Outcome::WithinNoise => "within one std",
                    Outcome::OneSeed => "one seed",
                    Outcome::Missing => "not measured",
                }
            );
        }
        s += "\n";
    }
    let metric = |m: &MethodSummary, key: &str| Stat::cell(m.metrics.get(key));
    s += "## Multiple choice on the test split (accuracy; chance 0.25)\n\n";
    s += &table(summaries, &MC_COLUMNS, metric);
    s += "\n## Open waypoint question on the test split\n\nThe reward pays only an `<answer>` block, which the \
          SFT targets (the paper's) do not have; the L1 error reads the position a reply states (its answer \
          block's, or the last one it writes when it has none).\n\n";
    s += &table(summaries, &OPEN_COLUMNS, metric);
    s += "\n## Robot-R1 Bench (rule-based, 0-3)\n\n";
    s += &table(summaries, &BENCH_COLUMNS, metric);
    s += "\n## Training\n\nFirst and last tenth of the GRPO curves (SFT samples nothing while it trains); times on \
          this machine.\n\n";
    s += &table(summaries, &TRAINING_COLUMNS, |m, key| {
        let t = |k: &str| m.training.get(k);
        match (t(&format!("{key}.first")), t(&format!("{key}.last"))) {
            (Some(a), Some(b)) => format!("{:.3} -> {:.3}", a.mean, b.mean),
            _ => Stat::cell(t(key)),
        }
    });
    if !plots.is_empty() {
        s += "\n## Plots\n\n";
        for p in plots {
            let rel = p.strip_prefix(&exp.out).unwrap_or(p);
            s += &format!("![{}]({})\n", rel.display(), rel.display());
        }
    }
    s
}

/// Plots per method: the training curves (mean over seeds at each step) and the evaluation's
/// bar charts of the mean metrics.
fn plots(exp: &Experiment, summaries: &[MethodSummary]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = exp.out.join("plots");
    let mut written = Vec::new();
    for m in summaries {
        let Some(method) = Method::ALL.into_iter().find(|x| x.name() == m.name) else { continue };
        let logs: Vec<Vec<StepMetrics>> = m
            .seeds
            .iter()
            .map(|&seed| Ok(RunDir::open(&run_dir(&exp.out, method, seed))?.0.read_metrics()?))
            .collect::<anyhow::Result<_>>()?;
        for (stem, metric, label) in CURVES {
            let mut sums: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
            for lines in &logs {
                for (x, y) in metric.series(lines) {
                    let e = sums.entry(x as u64).or_default();
                    *e = (e.0 + y, e.1 + 1);
                }
            }
            // SFT's loss is its curve; GRPO's loss is a surrogate, not a training signal to read.
            if sums.is_empty() || (stem == "loss" && method.sft_mode().is_none()) {
                continue;
            }
            let points: Vec<(f64, f64)> = sums.into_iter().map(|(x, (sum, n))| (x as f64, sum / n as f64)).collect();
            let path = dir.join(format!("{}-{stem}.png", m.name));
            let title = format!("{}: {} (mean of {} seed(s))", m.label, metric.key, m.seeds.len());
            r1_bench::plot::line_chart(&path, &title, label, &points)?;
            written.push(path);
        }
    }
    for m in summaries {
        let results = Results {
            model: m.label.clone(),
            source: Source::Model { model_dir: m.name.clone(), temperature: 0.0 },
            step: None,
            group: m.name.clone(),
            seed: None,
            samples: 1,
            metrics: m.metrics.iter().map(|(k, s)| (k.clone(), s.mean)).collect(),
            blind: None,
        };
        let out = dir.join(&m.name);
        r1_bench::charts::write(&out, &results)?;
        written.extend([r1_bench::charts::MCQA_CHART, r1_bench::charts::BENCH_CHART].map(|c| out.join(c)));
    }
    Ok(written)
}

/// Writes `report.md`, `report.json` and the plots from every finished evaluation; returns the
/// Markdown.
fn write_report(exp: &Experiment, seeds: &[u64]) -> anyhow::Result<String> {
    let summaries = summarise(exp, seeds)?;
    let findings = findings(&summaries);
    let plots = plots(exp, &summaries)?;
    let md = markdown(exp, &summaries, &findings, &plots);
    let json = json!({
        "settings": exp.settings,
        "seeds": seeds,
        "questions": {"test": exp.questions.len(), "bench": exp.bench.len()},
        "methods": summaries,
        "findings": findings,
    });
    let (md_path, json_path) = (exp.out.join(REPORT_MD), exp.out.join(REPORT_JSON));
    r1_data::fsutil::write_atomic(&md_path, md.as_bytes()).with_context(|| format!("writing {}", md_path.display()))?;
    r1_grpo::fsio::write_json(&json_path, &json)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(values: &[f64]) -> Stat {
        Stat::of(values.to_vec()).unwrap()
    }

    #[test]
    fn comparisons_weigh_the_difference_against_the_spread() {
        let c = |a: &[f64], b: &[f64]| Comparison::new(String::new(), "m", Some(&stat(a)), Some(&stat(b))).outcome;
        assert_eq!(c(&[0.6, 0.7, 0.8], &[0.2, 0.3, 0.4]), Outcome::Holds);
        assert_eq!(c(&[0.2, 0.3, 0.4], &[0.6, 0.7, 0.8]), Outcome::Contradicted);
        // Means 0.1 apart, each std 0.1: the difference's noise is 0.141.
        assert_eq!(c(&[0.3, 0.4, 0.5], &[0.2, 0.3, 0.4]), Outcome::WithinNoise);
        assert_eq!(c(&[0.0, 0.0], &[0.0, 0.0]), Outcome::WithinNoise, "no difference at all");
        assert_eq!(c(&[0.9], &[0.1, 0.2]), Outcome::OneSeed, "one seed has no spread");
        let fixed = Comparison::new(String::new(), "m", Some(&Stat::fixed(0.0)), Some(&stat(&[-3.0, -2.0])));
        assert_eq!(fixed.outcome, Outcome::Holds, "a constant needs no second seed");
        assert_eq!(Comparison::new(String::new(), "m", None, Some(&stat(&[1.0]))).outcome, Outcome::Missing);
    }

    #[test]
    fn a_verdict_needs_every_comparison() {
        let with = |outcomes: &[Outcome]| {
            let comparisons: Vec<Comparison> = outcomes
                .iter()
                .map(|&outcome| Comparison { outcome, ..Comparison::new(String::new(), "m", None, None) })
                .collect();
            Verdict::of(&comparisons).0
        };
        assert_eq!(with(&[Outcome::Holds, Outcome::Holds]), Verdict::Reproduces);
        assert_eq!(with(&[Outcome::Holds, Outcome::WithinNoise]), Verdict::Inconclusive);
        assert_eq!(with(&[Outcome::WithinNoise, Outcome::Contradicted]), Verdict::DoesNotReproduce);
        assert_eq!(with(&[Outcome::Holds, Outcome::Missing]), Verdict::NotMeasured);
        assert_eq!(with(&[Outcome::Contradicted, Outcome::OneSeed]), Verdict::Inconclusive);
        assert_eq!(with(&[]), Verdict::NotMeasured);
    }

    #[test]
    fn the_budget_gives_every_method_the_same_examples() {
        let config = TrainConfig::tiny();
        let b = Budget::new(800, &config).unwrap();
        assert_eq!(b.sft_steps * b.sft_batch as u64, 800);
        assert_eq!(b.grpo_steps * b.prompts_per_step as u64, 800);
        let err = Budget::new(802, &config).unwrap_err().to_string();
        assert!(err.contains("sft.batch_size = 8") && err.contains("prompts_per_rollout = 4"), "{err}");
    }
}
