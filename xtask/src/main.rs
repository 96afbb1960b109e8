//! The r1 command line. Run through the cargo alias, which always builds optimised:
//! `cargo xtask <command> --help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod data;
mod eval;
mod generate;
mod keypoints;
mod progress;
mod reward;
mod score;
mod train;

/// r1: post-train vision-language models with reinforcement learning (Robot-R1) so that they
/// reason better about robot control.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import demonstrations (or simulate them) and write a Robot-R1 QA dataset.
    Data(data::Args),
    /// Print the keypoints the ARM/PerAct heuristic finds in demonstrations.
    Keypoints(keypoints::Args),
    /// Generate a completion from a Qwen2.5-VL checkpoint for one image and prompt.
    Generate(generate::Args),
    /// Score a given completion: per-token log-probs under a checkpoint.
    Score(score::Args),
    /// Compute Robot-R1 rewards for completions in a JSONL file.
    Reward(reward::Args),
    /// Supervised fine-tuning (Direct SFT or CoT SFT baselines).
    Sft(train::SftArgs),
    /// GRPO training; with no arguments, the whole default pipeline on the embedded dataset.
    Train(train::Args),
    /// Evaluate a model or run on the QA test split and the Robot-R1 Bench.
    Eval(eval::Args),
    /// End-to-end throughput figures (generation, training step, rendering) as a table.
    Bench(bench::Args),
}

impl Cli {
    fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Data(a) => data::run(a),
            Command::Keypoints(a) => keypoints::run(a),
            Command::Generate(a) => generate::run(a),
            Command::Score(a) => score::run(a),
            Command::Reward(a) => reward::run(a),
            Command::Sft(a) => train::run_sft(a),
            Command::Train(a) => train::run(a),
            Command::Eval(a) => eval::run(a),
            Command::Bench(a) => bench::run(a),
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, outermost first, each of which names its file.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
