//! `cargo xtask experiment` end to end, at the smallest size: every method trains 2 steps for
//! one seed, every run and the base model are evaluated on a handful of questions, the report
//! has a row per method and a verdict per finding, running the command again skips every
//! finished run and evaluation, and a run cut short is resumed from its checkpoint.

mod common;

use common::xtask;

#[test]
fn experiment_trains_every_method_reports_and_skips_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = common::default_data();
    let bench = common::repo().join("datasets/bench");
    // SMALL_CONFIG: SFT batches of 2, GRPO steps of 2 prompts: 4 examples are 2 steps of each,
    // each checkpointed so that a run can be cut back to its first step.
    std::fs::write(cwd.join("small.toml"), format!("{}[run]\nsave_every = 1\n", common::SMALL_CONFIG)).unwrap();
    let args = [
        "experiment",
        "--config",
        "small.toml",
        "--data",
        &data,
        "--bench",
        bench.to_str().unwrap(),
        "--out",
        "exp",
        "--seeds",
        "1",
        "--examples",
        "4",
        "--warmup-steps",
        "1",
        "--eval-questions",
        "1",
        "--bench-questions",
        "1",
        "--max-new-tokens",
        "8",
    ];
    let first = xtask(cwd, &args);
    let exp = cwd.join("exp");
    for file in ["report.md", "report.json", "experiment.json", "base/eval/results.json"] {
        assert!(exp.join(file).is_file(), "{file} missing");
    }
    for method in ["direct-sft", "cot-sft", "grpo", "grpo-waypoint"] {
        let run = exp.join(format!("{method}-seed1"));
        assert!(run.join("checkpoint-2/model/model.safetensors").is_file(), "{method} did not train 2 steps");
        assert!(run.join("eval/results.json").is_file(), "{method} was not evaluated");
    }
    assert!(exp.join("grpo-waypoint-seed1/warmup/checkpoint-1").is_dir(), "GRPO runs start with the warm-up");
    for plot in ["grpo-reward.png", "grpo-accuracy.png", "grpo-length.png", "cot-sft-loss.png", "grpo/bench.png"] {
        assert!(exp.join("plots").join(plot).is_file(), "plots/{plot} missing");
    }

    let report = std::fs::read_to_string(exp.join("report.md")).unwrap();
    for label in ["base model", "Direct SFT", "CoT SFT", "GRPO (MCQA)", "GRPO (waypoint only)"] {
        assert!(report.lines().any(|l| l.starts_with(&format!("| {label} |"))), "no row for {label}:\n{report}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("report.json")).unwrap()).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 4);
    for f in findings {
        let verdict = f["verdict"].as_str().unwrap();
        assert!(["reproduces", "does_not_reproduce", "inconclusive", "not_measured"].contains(&verdict), "{f}");
        assert!(!f["comparisons"].as_array().unwrap().is_empty(), "{f}");
    }
    assert_eq!(json["settings"]["budget"]["sft_steps"], 2);
    assert_eq!(json["settings"]["budget"]["grpo_steps"], 2);
    assert!(first.contains("## Verdicts"), "{first}");

    // Again: nothing is trained or evaluated twice.
    let results = exp.join("grpo-seed1/eval/results.json");
    let before = std::fs::metadata(&results).unwrap().modified().unwrap();
    let second = xtask(cwd, &args);
    assert_eq!(second.matches("trained (2 steps): skipped").count(), 4, "{second}");
    assert_eq!(second.matches("evaluated: skipped").count(), 5, "{second}");
    assert_eq!(std::fs::metadata(&results).unwrap().modified().unwrap(), before);

    // A GRPO run stopped after its first step (its last checkpoint and its evaluation gone) is
    // resumed to its second step and evaluated; nothing else runs.
    let run = exp.join("grpo-seed1");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    std::fs::remove_dir_all(run.join("checkpoint-2")).unwrap();
    std::fs::remove_dir_all(run.join("eval")).unwrap();
    let third = xtask(cwd, &args);
    assert!(third.contains("GRPO (MCQA) seed 1: training 2 steps"), "{third}");
    assert_eq!(third.matches("trained (2 steps): skipped").count(), 3, "{third}");
    assert!(run.join("checkpoint-2").is_dir() && results.is_file());
    assert_eq!(common::untimed(&run), {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("metrics.jsonl"), &metrics).unwrap();
        common::untimed(tmp.path())
    });

    // Other settings in the same folder are refused, naming what differs.
    let changed: Vec<&str> = args.iter().map(|&a| if a == "4" { "8" } else { a }).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask")).current_dir(cwd).args(&changed).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("experiment.json") && stderr.contains("budget"), "{stderr}");
}
