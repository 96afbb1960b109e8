//! `cargo xtask train` end to end on the tiny model: it creates the model, warms it up, runs
//! GRPO, writes a complete run folder, and a run resumed from a checkpoint writes the metrics
//! an uninterrupted run writes. `generate` and `score` then read the run's checkpoint and agree
//! with each other.

mod common;

use std::process::Command;

use common::{copy_dir, repo, untimed, xtask};
use serde_json::Value;

#[test]
fn train_runs_resumes_exactly_and_its_checkpoint_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = common::default_data();
    let data = data.as_str();
    std::fs::write(cwd.join("small.toml"), common::SMALL_CONFIG).unwrap();
    let common = ["--config", "small.toml", "--data", data, "--warmup-steps", "1", "--save-every", "1"];
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend(common);
        args.extend(["--out", out]);
        args.extend(extra);
        xtask(cwd, &args)
    };

    // One test question per task and type evaluated before and after GRPO.
    let printed = run("whole", &["--steps", "2", "--eval-questions", "1"]);
    assert!(cwd.join("models/r1-tiny/tokenizer.json").is_file(), "the tiny model was not created");
    for file in [
        "config.toml",
        "metrics.jsonl",
        "completions.jsonl",
        "checkpoint-2/model/model.safetensors",
        "plots/reward.png",
        "plots/loss.png",
        "warmup/plots/loss.png",
        "eval/before_after.md",
        "eval/before_after.json",
    ] {
        assert!(cwd.join("whole").join(file).is_file(), "{file} missing");
    }
    assert!(printed.contains("checkpoint-2"), "{printed}");
    assert!(printed.contains("before GRPO") && printed.contains("mean of types"), "{printed}");

    run("split", &["--steps", "1", "--eval-questions", "0"]);
    xtask(cwd, &["train", "--resume", "split", "--steps", "2", "--data", data, "--eval-questions", "0"]);
    let (whole, split) = (untimed(&cwd.join("whole")), untimed(&cwd.join("split")));
    assert_eq!(whole.len(), 2);
    assert_eq!(whole, split);

    // Stopped during the warm-up, before GRPO wrote anything: once after the warm-up's checkpoint
    // (it is complete), once before it (only its config exists). Both resume into the same run.
    for (name, keep_checkpoint) in [("after-warmup", true), ("in-warmup", false)] {
        let warmup = cwd.join(name).join("warmup");
        std::fs::create_dir_all(&warmup).unwrap();
        std::fs::copy(cwd.join("whole/warmup/config.toml"), warmup.join("config.toml")).unwrap();
        if keep_checkpoint {
            copy_dir(&cwd.join("whole/warmup/checkpoint-1"), &warmup.join("checkpoint-1"));
        }
        xtask(cwd, &["train", "--resume", name, "--steps", "2", "--data", data, "--eval-questions", "0"]);
        assert_eq!(untimed(&cwd.join(name)), whole, "{name}");
    }

    // The checkpoint answers, and scoring its greedy reply gives the log-probs generation reported.
    let image = repo().join("datasets/default/images/pick_up_cup/v0/e0/front_0.png");
    let image = image.to_str().unwrap();
    // A checkpoint folder is taken wherever a model is, as a run is.
    xtask(
        cwd,
        &[
            "generate",
            "--model",
            "whole/checkpoint-2",
            "--image",
            image,
            "--prompt",
            "Where next?",
            "--max-new-tokens",
            "2",
        ],
    );
    let model = ["--model", "whole", "--image", image, "--prompt", "Where next?"];
    let generated: Value =
        serde_json::from_str(&xtask(cwd, &[&["generate"], &model[..], &["--max-new-tokens", "5", "--json"]].concat()))
            .unwrap();
    let text = generated["text"].as_str().unwrap();
    let ids: Vec<u64> = serde_json::from_value(generated["ids"].clone()).unwrap();
    if !text.is_empty() && generated["stopped"] == false {
        let scored: Value =
            serde_json::from_str(&xtask(cwd, &[&["score"], &model[..], &["--completion", text, "--json"]].concat()))
                .unwrap();
        assert_eq!(scored["prompt_tokens"], generated["prompt_tokens"]);
        // Re-tokenising decoded text may split differently; compare only when it does not.
        if serde_json::from_value::<Vec<u64>>(scored["completion_ids"].clone()).unwrap() == ids {
            let a: Vec<f64> = serde_json::from_value(scored["completion_logprobs"].clone()).unwrap();
            let b: Vec<f64> = serde_json::from_value(generated["logprobs"].clone()).unwrap();
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-3), "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn bad_input_is_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(tmp.path())
        .args(["generate", "--model", "nowhere", "--image", "x.png", "--prompt", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("nowhere") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    // An I/O error names the file and gives the system's reason once.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(tmp.path())
        .args(["train", "--config", "nope.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("nope.toml"), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    // `sft --resume` needs no --mode (the checkpoint records it) and refuses one.
    let sft = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).current_dir(tmp.path()).args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = sft(&["sft", "--resume", "nowhere"]);
    assert!(stderr.contains("nowhere") && !stderr.contains("--mode"), "{stderr}");
    let stderr = sft(&["sft", "--resume", "nowhere", "--mode", "cot"]);
    assert!(stderr.contains("--mode") && stderr.contains("cannot be used with"), "{stderr}");
    assert!(sft(&["sft"]).contains("--mode"));
}

/// `--dry-run` prints the memory plan and starts nothing; a plan larger than the device stops
/// the run with the numbers, before anything is loaded.
#[test]
fn the_memory_plan_is_printed_and_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::default_data();
    let plan = xtask(tmp.path(), &["train", "--dry-run", "--data", &data, "--out", "run"]);
    for row in [
        "| weights |",
        "| reference model |",
        "| AdamW moments |",
        "| generation KV cache |",
        "| training activations |",
        "| total |",
    ] {
        assert!(plan.contains(row), "{row} missing from:\n{plan}");
    }
    assert!(!tmp.path().join("run").exists(), "a dry run wrote a run folder");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(tmp.path())
        .args(["train", "--data", &data, "--out", "run", "--device-memory", "0.01"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("the device has 0.01 GiB") && stderr.contains("training activations"),
        "{stderr}"
    );
    assert!(!tmp.path().join("run").exists());
}

/// Too few episodes for a split: `data` warns that it is empty, and evaluating it is an error
/// naming the split (not an all-empty report).
#[test]
fn empty_split_warns_and_cannot_be_evaluated() {
    let tmp = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_xtask")).current_dir(tmp.path()).args(args).output().unwrap();
    let data = run(&[
        "data",
        "--sim",
        "--tasks",
        "push_button",
        "--episodes-per-task",
        "2",
        "--held-out",
        "none",
        "--out",
        "d",
    ]);
    assert!(data.status.success(), "{}", String::from_utf8_lossy(&data.stderr));
    assert!(String::from_utf8_lossy(&data.stderr).contains("warning: the val split is empty"));
    let eval = run(&["eval", "answers", "none.jsonl", "--data", "d", "--split", "val", "--no-bench"]);
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert!(!eval.status.success() && stderr.contains("val split") && stderr.contains("no questions"), "{stderr}");
}
