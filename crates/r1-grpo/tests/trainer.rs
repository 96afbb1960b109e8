//! The trainers end to end on a micro policy: exact resume, non-finite losses, SFT.

mod common;

use burn::tensor::Device;
use common::{Bigram, initial_model, micro_config, samples};
use r1_grpo::GrpoError;
use r1_grpo::grpo::GrpoTrainer;
use r1_grpo::run::RunDir;
use r1_grpo::sft::{SftMode, SftTrainer};
use r1_model::checkpoint::run::COMPLETIONS_FILE;

mod untimed;
use untimed::untimed;

fn device() -> Device {
    Device::flex().autodiff()
}

#[test]
fn resumed_run_writes_the_same_metrics_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = device();
    let model = initial_model(dir.path(), &d, false);
    let load = |p: &std::path::Path| Bigram::load(p, &d);

    let whole = dir.path().join("whole");
    let mut t = GrpoTrainer::start(micro_config(model.clone()), &whole, samples(), &load).unwrap();
    t.train(3, |_| {}).unwrap();

    let split = dir.path().join("split");
    let mut t = GrpoTrainer::start(micro_config(model), &split, samples(), &load).unwrap();
    t.train(1, |_| {}).unwrap();
    drop(t);
    let mut t = GrpoTrainer::resume(&split, samples(), &load).unwrap();
    assert_eq!(t.state.step, 1);
    t.train(3, |_| {}).unwrap();

    let a = RunDir { root: whole.clone() }.read_metrics().unwrap();
    let b = RunDir { root: split.clone() }.read_metrics().unwrap();
    // 3 rollout steps x 2 optimiser steps.
    assert_eq!(a.len(), 6);
    assert_eq!(untimed(&a), untimed(&b));
    // The runs did learn something: the policy moved (ratios differ from 1 on the 2nd update).
    assert!(a.iter().any(|l| l.update.grad_norm > 0.0));
    assert!(a.iter().all(|l| l.policy.as_ref().unwrap().kl.is_finite()));
    let ca: Vec<serde_json::Value> = RunDir { root: whole }.read_lines(COMPLETIONS_FILE).unwrap();
    let cb: Vec<serde_json::Value> = RunDir { root: split }.read_lines(COMPLETIONS_FILE).unwrap();
    assert!(!ca.is_empty());
    assert_eq!(ca, cb);
}

#[test]
fn repeated_non_finite_losses_stop_the_run_and_keep_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = device();
    let model = initial_model(dir.path(), &d, true);
    let load = |p: &std::path::Path| Bigram::load(p, &d);
    let out = dir.path().join("run");
    let mut t = GrpoTrainer::start(micro_config(model), &out, samples(), &load).unwrap();
    let err = t.train(3, |_| {}).unwrap_err();
    assert!(matches!(err, GrpoError::Stopped(_)), "{err}");
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert_eq!(t.state.skipped_nonfinite, 2);
    assert_eq!(t.state.optimizer_step, 0);
    // Nothing was checkpointed after the bad steps.
    assert!(t.run.latest_checkpoint().unwrap().is_none());
}

#[test]
fn format_sft_lowers_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = device();
    let model = initial_model(dir.path(), &d, false);
    let load = |p: &std::path::Path| Bigram::load(p, &d);
    let mut config = micro_config(model);
    config.sft.lr = 0.1;
    config.sft.schedule = r1_grpo::schedule::Schedule::Constant;
    config.run.save_every = 0;
    let mut t = SftTrainer::start(config, &dir.path().join("sft"), samples(), SftMode::Format, &load).unwrap();
    let mut losses = Vec::new();
    t.train(12, |s| losses.push(s.last(r1_grpo::metrics::LOSS).unwrap())).unwrap();
    assert!(losses.last().unwrap() < &(losses[0] * 0.7), "{losses:?}");
    // Only the final checkpoint.
    assert_eq!(t.run.checkpoints().unwrap().len(), 1);
}

/// The SFT trainer resumes exactly too, in the mode its checkpoint records; a GRPO trainer
/// refuses its checkpoints.
#[test]
fn resumed_sft_run_writes_the_same_metrics_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = device();
    let model = initial_model(dir.path(), &d, false);
    let load = |p: &std::path::Path| Bigram::load(p, &d);
    let config = micro_config(model);

    let whole = dir.path().join("whole");
    let mut t = SftTrainer::start(config.clone(), &whole, samples(), SftMode::Format, &load).unwrap();
    t.train(4, |_| {}).unwrap();

    let split = dir.path().join("split");
    let mut t = SftTrainer::start(config, &split, samples(), SftMode::Format, &load).unwrap();
    t.train(2, |_| {}).unwrap();
    drop(t);
    let err = GrpoTrainer::resume(&split, samples(), &load).err().expect("an SFT checkpoint is not GRPO's");
    assert!(err.to_string().contains("is a sft-format checkpoint, not a GRPO one"), "{err}");
    let mut t = SftTrainer::resume(&split, samples(), &load).unwrap();
    assert_eq!((t.state.step, t.state.phase), (2, r1_grpo::run::Phase::Sft(SftMode::Format)));
    t.train(4, |_| {}).unwrap();

    let a = RunDir { root: whole }.read_metrics().unwrap();
    let b = RunDir { root: split }.read_metrics().unwrap();
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|l| l.rollout.is_none() && l.policy.is_none() && l.update.loss.is_finite()));
    assert_eq!(untimed(&a), untimed(&b));
}
