//! The r1 command line. Run through the cargo alias, which always builds optimised:
//! `cargo xtask <command> --help`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod data;
mod eval;
mod experiment;
mod generate;
mod keypoints;
mod merge;
mod plots;
mod progress;
mod random_model;
mod reward;
mod score;
mod serve;
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
    /// Merge a run's LoRA adapters into its base model: an ordinary Hugging Face checkpoint.
    Merge(merge::Args),
    /// Compute Robot-R1 rewards for completions in a JSONL file.
    Reward(reward::Args),
    /// Supervised fine-tuning (Direct SFT or CoT SFT baselines).
    Sft(train::SftArgs),
    /// GRPO training; with no arguments, the whole default pipeline on the embedded dataset.
    Train(train::Args),
    /// Evaluate a model, a run or recorded answers on the QA test split and the Robot-R1 Bench;
    /// build the bench; compare evaluations.
    Eval(eval::Args),
    /// The paper's findings at small scale: Direct SFT, CoT SFT, GRPO and waypoint-only GRPO
    /// from one base model and budget, over several seeds, evaluated and compared in a report.
    Experiment(experiment::Args),
    /// End-to-end throughput figures (generation, training step, rendering) as a table.
    Bench(bench::Args),
    /// Create a randomly initialised checkpoint (the tiny shape, or Qwen2.5-VL-3B's / 7B's at a
    /// chosen depth) for benchmarks.
    RandomModel(random_model::Args),
    /// Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models).
    Serve(serve::Args),
}

impl Cli {
    fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Data(a) => data::run(a),
            Command::Keypoints(a) => keypoints::run(a),
            Command::Generate(a) => generate::run(a),
            Command::Score(a) => score::run(a),
            Command::Merge(a) => merge::run(a),
            Command::Reward(a) => reward::run(a),
            Command::Sft(a) => train::run_sft(a),
            Command::Train(a) => train::run(a),
            Command::Eval(a) => eval::run(a),
            Command::Experiment(a) => experiment::run(a),
            Command::Bench(a) => bench::run(a),
            Command::RandomModel(a) => random_model::run(a),
            Command::Serve(a) => serve::run(a),
        }
    }
}

/// Whether Mesa's Vulkan device-select layer should be turned off, given the environment.
///
/// The layer (an implicit layer of `mesa-vulkan-drivers`, on by default) asks the Wayland
/// compositor which GPU drives the display every time devices are enumerated, since wgpu
/// enables `VK_KHR_wayland_surface` wherever it exists. When libwayland has no socket to reach,
/// because `XDG_RUNTIME_DIR` is unset or relative and neither `WAYLAND_DISPLAY` is an absolute
/// path nor `WAYLAND_SOCKET` is given, it prints "error: XDG_RUNTIME_DIR is invalid or not set
/// in the environment." to stderr, four times per wgpu device, and finds no compositor anyway.
/// r1 computes and never presents to a display, so which GPU drives one is of no use to it
/// (the adapter is wgpu's high-performance pick), and the layer's own switch, `NODEVICE_SELECT=1`
/// in its manifest, turns it off. A user who steers it (`MESA_VK_DEVICE_SELECT`, `DRI_PRIME`, ...) or has set
/// `NODEVICE_SELECT` keeps it as set.
fn device_select_is_futile(var: impl Fn(&str) -> Option<OsString>) -> bool {
    let absolute = |name: &str| var(name).is_some_and(|v| Path::new(&v).is_absolute());
    let wayland_unreachable =
        var("WAYLAND_SOCKET").is_none() && !absolute("WAYLAND_DISPLAY") && !absolute("XDG_RUNTIME_DIR");
    let steered =
        ["NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT", "MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE", "DRI_PRIME"]
            .into_iter()
            .any(|name| var(name).is_some());
    wayland_unreachable && !steered
}

fn main() -> ExitCode {
    if device_select_is_futile(|name| std::env::var_os(name)) {
        // SAFETY: the first statement of `main`, before any thread is spawned, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(e.chain().map(ToString::to_string)));
            ExitCode::FAILURE
        }
    }
}

/// The chain of causes, outermost first, on one line. The library errors print their cause
/// in their own message (`path: reason`) and also return it as their source, so a cause whose
/// text the line already holds is left out rather than printed twice.
fn one_line(chain: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for cause in chain {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_line_are_not_repeated() {
        let chain =
            ["could not write run/checkpoint-3", "run/x: File too large (os error 27)", "File too large (os error 27)"];
        assert_eq!(
            one_line(chain.iter().map(|s| s.to_string())),
            "could not write run/checkpoint-3: run/x: File too large (os error 27)"
        );
        assert_eq!(one_line(["context", "cause"].iter().map(|s| s.to_string())), "context: cause");
    }

    fn futile(vars: &[(&str, &str)]) -> bool {
        device_select_is_futile(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v)))
    }

    #[test]
    fn device_select_is_turned_off_only_where_wayland_cannot_be_reached() {
        // Unset, empty or relative XDG_RUNTIME_DIR: libwayland cannot form a socket path.
        assert!(futile(&[]));
        assert!(futile(&[("XDG_RUNTIME_DIR", "")]));
        assert!(futile(&[("XDG_RUNTIME_DIR", "run/user/0"), ("WAYLAND_DISPLAY", "wayland-0")]));
        // A runtime directory, an absolute display path or an inherited socket reach Wayland.
        assert!(!futile(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
        assert!(!futile(&[("WAYLAND_DISPLAY", "/tmp/wayland-1")]));
        assert!(!futile(&[("WAYLAND_SOCKET", "3")]));
        // The user's own device selection is left alone.
        assert!(!futile(&[("MESA_VK_DEVICE_SELECT", "10de:2684")]));
        assert!(!futile(&[("DRI_PRIME", "1")]));
        assert!(!futile(&[("NODEVICE_SELECT", "0")]));
    }
}
