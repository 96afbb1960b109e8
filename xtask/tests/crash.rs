//! Crashes and faults during `cargo xtask train` (warm-up, then GRPO), on the small config.
//!
//! * Killed with SIGKILL at seeded random moments, and at every stage of a checkpoint write
//!   (after the model, after the optimiser state, before the rename) in both the warm-up and
//!   GRPO, then `--resume`d: each run ends with the metrics and completions of an
//!   uninterrupted one, so no resume read a partial checkpoint or kept a line logged after it.
//! * A checkpoint that cannot be written (a file size limit, which fails writes as a full disk
//!   does) stops the run with a message naming the checkpoint and the last complete one, leaves
//!   nothing of the failed one, and the run resumes from the intact one.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{default_data, untimed, xtask};
use r1_grpo::crash;

const WARMUP_STEPS: u64 = 2;
const GRPO_STEPS: u64 = 3;
const RANDOM_KILLS: u64 = 20;

/// Arguments of a whole run into `out`, checkpointing every step.
fn train_args(data: &str, out: &str) -> Vec<String> {
    let (warmup, steps) = (WARMUP_STEPS.to_string(), GRPO_STEPS.to_string());
    [
        "train",
        "--config",
        "small.toml",
        "--data",
        data,
        "--warmup-steps",
        &warmup,
        "--steps",
        &steps,
        "--save-every",
        "1",
        "--eval-questions",
        "0",
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

fn resume_args(data: &str, out: &str) -> Vec<String> {
    ["train", "--resume", out, "--data", data, "--eval-questions", "0"].map(String::from).to_vec()
}

fn spawn(cwd: &Path, args: &[String], stderr: Stdio) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(cwd).args(args).stdout(Stdio::null()).stderr(stderr);
    command
}

type Lines = Vec<serde_json::Map<String, serde_json::Value>>;

/// What a finished run logged, without wall-clock fields: warm-up metrics, GRPO metrics, and
/// the completions.
fn outcome(run: &Path) -> (Lines, Lines, String) {
    (untimed(&run.join("warmup")), untimed(run), std::fs::read_to_string(run.join("completions.jsonl")).unwrap())
}

/// Where a killed run stopped: the phase that was running (GRPO once its folder holds a
/// config, else the warm-up), its newest complete checkpoint, and the steps logged past it that
/// the resume redoes.
fn stopped_at(run: &Path) -> String {
    let (phase, name) = if run.join("config.toml").is_file() {
        (run.to_path_buf(), "GRPO")
    } else if run.join("warmup/config.toml").is_file() {
        (run.join("warmup"), "warm-up")
    } else {
        return "before the run existed".into();
    };
    let logged = std::fs::read_to_string(phase.join("metrics.jsonl")).map_or(0, |t| t.matches('\n').count() as u64);
    let newest = std::fs::read_dir(&phase)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("checkpoint-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("{name}, newest checkpoint {newest}, {} step(s) to redo", logged.saturating_sub(newest))
}

/// Resumes a killed run; one killed before it had written its configuration has nothing to
/// resume and is started again, as its user would.
fn finish(cwd: &Path, data: &str, out: &str) {
    let run = cwd.join(out);
    let started = run.join("config.toml").is_file() || run.join("warmup/config.toml").is_file();
    let args = if started { resume_args(data, out) } else { train_args(data, out) };
    xtask(cwd, &args);
}

/// Seeded fractions in [0.02, 0.98), the same on every run (the trainer's own seed mixer).
fn kill_fraction(trial: u64) -> f64 {
    0.02 + 0.96 * (r1_grpo::run::mix(0, trial) >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn runs_killed_anywhere_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("small.toml"), common::SMALL_CONFIG).unwrap();
    let data = default_data();
    // The first run also creates the tiny model; the second, timed, tells how long training
    // takes, and that two uninterrupted runs agree (else comparing with one would prove nothing).
    let mut whole = Duration::ZERO;
    for out in ["untimed", "reference"] {
        let start = Instant::now();
        xtask(cwd, &train_args(&data, out));
        whole = start.elapsed();
    }
    let reference = outcome(&cwd.join("reference"));
    assert_eq!(outcome(&cwd.join("untimed")), reference);
    assert_eq!(reference.0.len() as u64, WARMUP_STEPS);
    assert_eq!(reference.1.len() as u64, GRPO_STEPS);

    let mut report = Vec::new();
    // Checkpoint visits 1..=WARMUP_STEPS are the warm-up's, the next one GRPO's first.
    for point in [crash::MODEL_SAVED, crash::OPTIMIZER_SAVED, crash::BEFORE_RENAME] {
        for visit in [1, WARMUP_STEPS + 1] {
            let out = format!("{point}-{visit}");
            let mut child = spawn(cwd, &train_args(&data, &out), Stdio::piped())
                .env(crash::ENV, format!("{point}:{visit}"))
                .spawn()
                .unwrap();
            let stderr = BufReader::new(child.stderr.take().unwrap());
            let reached = stderr.lines().map_while(Result::ok).any(|l| l.contains(crash::STOPPED));
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(reached, "{out}: the run ended without reaching the crash point");
            let stopped = stopped_at(&cwd.join(&out));
            finish(cwd, &data, &out);
            assert_eq!(outcome(&cwd.join(&out)), reference, "{out}");
            report.push(format!("{out}: {stopped}"));
        }
    }

    let mut interrupted = 0;
    for trial in 0..RANDOM_KILLS {
        let out = format!("random-{trial}");
        let at = whole.mul_f64(kill_fraction(trial));
        let mut child = spawn(cwd, &train_args(&data, &out), Stdio::null()).spawn().unwrap();
        std::thread::sleep(at);
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        interrupted += u64::from(running);
        let stopped = stopped_at(&cwd.join(&out));
        finish(cwd, &data, &out);
        assert_eq!(outcome(&cwd.join(&out)), reference, "{out}, killed after {at:?}");
        let when = if running { "killed" } else { "finished before the kill" };
        report.push(format!("{out}: {when} at {:.2} s: {stopped}", at.as_secs_f64()));
    }
    eprintln!("uninterrupted run {:.2} s\n{}", whole.as_secs_f64(), report.join("\n"));
    // The kill times span the run; on a machine so loaded that most runs finished first, the
    // test would prove little.
    assert!(interrupted * 2 > RANDOM_KILLS, "only {interrupted} of {RANDOM_KILLS} kills landed in a run");
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_the_run_and_keeps_the_last_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("small.toml"), common::SMALL_CONFIG).unwrap();
    let data = default_data();
    let args = train_args(&data, "reference");
    xtask(cwd, &args);
    let reference = outcome(&cwd.join("reference"));

    // A run stopped after GRPO's first checkpoint...
    let mut args = train_args(&data, "run");
    let steps = args.iter().position(|a| a == "--steps").unwrap() + 1;
    args[steps] = "1".into();
    xtask(cwd, &args);
    // ...resumed under a file size limit between the model's size and the optimiser state's:
    // the next checkpoint's model is written, its optimiser state fails as on a full disk.
    let size = |f: &str| std::fs::metadata(cwd.join("run/checkpoint-1").join(f)).unwrap().len();
    let (model, optimizer) = (size("model/model.safetensors"), size("optimizer.safetensors"));
    assert!(model < optimizer);
    let limit_kib = (model + optimizer) / 2 / 1024;
    let mut resume = resume_args(&data, "run");
    resume.extend(["--steps".to_string(), GRPO_STEPS.to_string()]);
    // SIGXFSZ ignored, so an oversized write fails with EFBIG instead of killing the process.
    let out = Command::new("bash")
        .current_dir(cwd)
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {limit_kib}; exec \"$@\""))
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(&resume)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let message = stderr.lines().last().unwrap_or_default();
    for part in
        ["run/checkpoint-2", "optimizer.safetensors", "the last complete checkpoint, run/checkpoint-1, is intact"]
    {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
    assert_eq!(message.matches("File too large").count(), 1, "the reason once: {message}");
    let left: Vec<_> = std::fs::read_dir(cwd.join("run")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with('.')), "temporary files left: {left:?}");
    assert!(!cwd.join("run/checkpoint-2").exists());

    // A read-only run folder: the resume stops at its first write, naming the file. Root
    // writes through permissions, so there the folder is not read-only and this part is moot.
    let run = cwd.join("run");
    set_mode(&run, 0o555);
    if std::fs::write(run.join("probe"), b"").is_err() {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).current_dir(cwd).args(&resume).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("run/") && stderr.contains("ermission denied"), "{stderr}");
        assert!(run.join("checkpoint-1/state.json").is_file());
    } else {
        eprintln!("running as a user that writes through permissions: read-only folder not tested");
        std::fs::remove_file(run.join("probe")).unwrap();
    }
    set_mode(&run, 0o755);

    // Without the limit the run resumes from checkpoint-1 to the uninterrupted result.
    xtask(cwd, &resume);
    assert_eq!(outcome(&cwd.join("run")), reference);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every value of every f32 tensor in the safetensors files under `dir`, checked finite;
/// returns how many files were read.
fn assert_finite_safetensors(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files += assert_finite_safetensors(&path);
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            let bytes = std::fs::read(&path).unwrap();
            for (name, view) in safetensors::SafeTensors::deserialize(&bytes).unwrap().tensors() {
                assert_eq!(view.dtype(), safetensors::Dtype::F32, "{}: {name}", path.display());
                let finite =
                    view.data().chunks_exact(4).all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite());
                assert!(finite, "{}: {name} holds a non-finite value", path.display());
            }
            files += 1;
        }
    }
    files
}

/// An absurd GRPO learning rate: at 1e30 the first update leaves huge but finite weights, the
/// next losses are not finite, those steps are skipped and counted, and the third in a row
/// stops the run; at 1e38 the first update itself overflows, and the run stops before that
/// model can be kept. Either way every checkpoint written holds finite tensors only.
#[test]
fn absurd_learning_rates_stop_the_run_and_never_reach_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = default_data();
    for (lr, expected) in
        [("1e30", "3 consecutive optimiser steps had a non-finite loss"), ("1e38", "made weights non-finite")]
    {
        std::fs::write(cwd.join("small.toml"), format!("{}[optim]\nlr = {lr}\n", common::SMALL_CONFIG)).unwrap();
        let out = format!("lr-{lr}");
        let mut args = train_args(&data, &out);
        let steps = args.iter().position(|a| a == "--steps").unwrap() + 1;
        args[steps] = "6".into();
        let run = spawn(cwd, &args, Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains(expected), "lr {lr}: {stderr}");
        let lines = untimed(&cwd.join(&out).join("warmup"));
        assert_eq!(lines.len() as u64, WARMUP_STEPS, "lr {lr}: the warm-up ran normally");
        if lr == "1e30" {
            let grpo = untimed(&cwd.join(&out));
            let skipped: Vec<u64> = grpo.iter().map(|l| l["skipped_nonfinite"].as_u64().unwrap()).collect();
            // The third skipped step stops the run: the message reports it, no line logs it.
            assert_eq!(skipped, [0, 1, 2], "lr {lr}: skipped steps counted");
        }
        // The warm-up's checkpoints, and GRPO's if any: model and optimiser state.
        assert!(assert_finite_safetensors(&cwd.join(&out)) >= 2, "lr {lr}: no checkpoint was read");
    }
}
