//! The lines of `metrics.jsonl`, one per optimiser step, typed: [`StepMetrics`] is what the
//! trainers write and what every reader (the plots, the command line, the benchmarks) reads
//! back with [`RunDir::read_metrics`](crate::run::RunDir::read_metrics). Key names follow TRL's
//! GRPOTrainer logs (`reward/mean`, `completions/mean_length`, `clip_ratio/low_mean`, ...); a
//! GRPO line repeats its rollout's figures on each optimiser step of the rollout, an SFT line
//! has only the update's.

use r1_reward::{Component, Rewards};
use serde::{Deserialize, Deserializer, Serialize};

/// One `metrics.jsonl` line. Non-finite numbers are written as `null` (as serde_json writes
/// them) and read back as not a number. The GRPO parts are read when all their keys are there
/// and well formed, and are `None` otherwise (SFT lines have none of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step the line belongs to: a rollout step of GRPO, an optimiser step of SFT.
    pub step: u64,
    /// Figures of the rollout (GRPO only), the same on every line of a step.
    #[serde(flatten)]
    pub rollout: Option<RolloutMetrics>,
    /// GRPO's figures of the optimiser step (GRPO only).
    #[serde(flatten)]
    pub policy: Option<PolicyMetrics>,
    #[serde(flatten)]
    pub update: UpdateMetrics,
    /// Wall time of the whole step, on the step's last line only (GRPO).
    #[serde(rename = "timing/step", default, skip_serializing_if = "Option::is_none")]
    pub step_s: Option<f64>,
    /// Resident host memory at the end of the step ([`host_rss_mib`]), on its last line only.
    #[serde(rename = "memory/host_rss_mib", default, skip_serializing_if = "Option::is_none")]
    pub host_rss_mib: Option<f64>,
}

impl StepMetrics {
    /// A line with the update's figures only, as an SFT step writes.
    pub fn supervised(step: u64, update: UpdateMetrics) -> Self {
        Self { step, rollout: None, policy: None, update, step_s: None, host_rss_mib: None }
    }
}

/// Figures of a GRPO rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutMetrics {
    #[serde(rename = "reward/mean")]
    pub reward_mean: f64,
    #[serde(rename = "reward/std")]
    pub reward_std: f64,
    /// Mean of each reward component over the rollout's completions.
    #[serde(flatten)]
    pub components: ComponentMeans,
    pub frac_reward_zero_std: f64,
    #[serde(rename = "completions/mean_length")]
    pub mean_length: f64,
    #[serde(rename = "completions/min_length")]
    pub min_length: usize,
    #[serde(rename = "completions/max_length")]
    pub max_length: usize,
    /// Fraction of completions cut by the length limit.
    #[serde(rename = "completions/clipped_ratio")]
    pub clipped_ratio: f64,
    #[serde(rename = "timing/generate")]
    pub generate_s: f64,
    #[serde(rename = "timing/reward")]
    pub reward_s: f64,
    #[serde(rename = "timing/old_logp")]
    pub old_logp_s: f64,
    #[serde(rename = "timing/ref_logp")]
    pub ref_logp_s: f64,
    #[serde(rename = "tokens_per_second/generation")]
    pub generation_tps: f64,
}

/// `rewards/<component>/mean`: the mean of each [`Component`] over a rollout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentMeans {
    #[serde(rename = "rewards/format/mean")]
    pub format: f64,
    #[serde(rename = "rewards/answer/mean")]
    pub answer: f64,
}

impl ComponentMeans {
    /// The means of the components over `rewards` (zero without any).
    pub fn of(rewards: &[Rewards]) -> Self {
        let n = rewards.len().max(1) as f64;
        let mut means = Self::default();
        for component in Component::ALL {
            let mean = rewards.iter().map(|r| r.get(component)).sum::<f64>() / n;
            // A new component needs its field (and its key) here.
            match component {
                Component::Format => means.format = mean,
                Component::Answer => means.answer = mean,
            }
        }
        means
    }
}

/// What GRPO adds to the figures of an optimiser step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyMetrics {
    pub optimizer_step: u64,
    /// Mean per-token KL to the reference (0 without one).
    #[serde(deserialize_with = "nullable")]
    pub kl: f64,
    /// Mean negative log-prob of the sampled tokens (a sampled estimate of the entropy).
    #[serde(deserialize_with = "nullable")]
    pub entropy: f64,
    #[serde(rename = "clip_ratio/low_mean", deserialize_with = "nullable")]
    pub clip_low: f64,
    #[serde(rename = "clip_ratio/high_mean", deserialize_with = "nullable")]
    pub clip_high: f64,
}

/// Figures of one optimiser step, of every trainer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetrics {
    /// Not a number when the step's loss was not (the step was then skipped).
    #[serde(deserialize_with = "nullable")]
    pub loss: f64,
    /// Global gradient norm before clipping; not a number when the step was skipped.
    #[serde(deserialize_with = "nullable")]
    pub grad_norm: f64,
    pub learning_rate: f64,
    /// Non-finite steps skipped so far.
    pub skipped_nonfinite: u64,
    #[serde(rename = "timing/update")]
    pub update_s: f64,
    #[serde(rename = "tokens_per_second/training")]
    pub training_tps: f64,
}

/// Reads `null` (a non-finite number as serde_json writes it) as not a number.
fn nullable<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// A figure of a line by its `metrics.jsonl` key, for readers that pick figures by name (plots,
/// summaries): `value` reads it from the typed line, `None` where the line has none.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub key: &'static str,
    pub value: fn(&StepMetrics) -> Option<f64>,
}

impl Metric {
    /// `(step, value)` of every line that holds a finite value of this figure.
    pub fn series(self, lines: &[StepMetrics]) -> Vec<(f64, f64)> {
        lines.iter().filter_map(|l| Some((l.step as f64, (self.value)(l)?))).filter(|(_, y)| y.is_finite()).collect()
    }
}

pub const LOSS: Metric = Metric { key: "loss", value: |l| Some(l.update.loss) };
pub const REWARD: Metric = Metric { key: "reward/mean", value: |l| Some(l.rollout.as_ref()?.reward_mean) };
pub const ANSWER_REWARD: Metric =
    Metric { key: "rewards/answer/mean", value: |l| Some(l.rollout.as_ref()?.components.answer) };
pub const MEAN_LENGTH: Metric =
    Metric { key: "completions/mean_length", value: |l| Some(l.rollout.as_ref()?.mean_length) };
pub const KL: Metric = Metric { key: "kl", value: |l| Some(l.policy.as_ref()?.kl) };
pub const HOST_RSS: Metric = Metric { key: "memory/host_rss_mib", value: |l| l.host_rss_mib };
pub const STEP_SECONDS: Metric = Metric { key: "timing/step", value: |l| l.step_s };
pub const UPDATE_SECONDS: Metric = Metric { key: "timing/update", value: |l| Some(l.update.update_s) };

/// Resident host memory of this process in MiB, where `/proc/self/status` tells it (Linux),
/// as verl logs `perf/cpu_memory_used_gb`: a leak shows as a rising line in `plots/memory.png`.
pub fn host_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    proc_status_kib(&status, "VmRSS").map(|kib| kib as f64 / 1024.0)
}

/// A `VmRSS:`/`VmHWM:`-style field of a `/proc/<pid>/status` text, in KiB.
pub fn proc_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn update() -> UpdateMetrics {
        UpdateMetrics {
            loss: 0.1,
            grad_norm: f64::NAN,
            learning_rate: 1e-3,
            skipped_nonfinite: 1,
            update_s: 2.0,
            training_tps: 50.0,
        }
    }

    fn grpo_line() -> StepMetrics {
        StepMetrics {
            step: 3,
            rollout: Some(RolloutMetrics {
                reward_mean: 1.0,
                reward_std: 0.5,
                components: ComponentMeans { format: 1.0, answer: 0.25 },
                frac_reward_zero_std: 0.25,
                mean_length: 10.0,
                min_length: 4,
                max_length: 16,
                clipped_ratio: 0.0,
                generate_s: 1.0,
                reward_s: 0.0,
                old_logp_s: 0.0,
                ref_logp_s: 0.5,
                generation_tps: 100.0,
            }),
            policy: Some(PolicyMetrics { optimizer_step: 3, kl: 0.0, entropy: 2.0, clip_low: 0.0, clip_high: 0.0 }),
            update: update(),
            step_s: Some(4.0),
            host_rss_mib: Some(100.0),
        }
    }

    fn to_map(line: &StepMetrics) -> Map<String, Value> {
        match serde_json::to_value(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Reads a line back as written; `NaN` (written `null`) compares by its written form.
    fn round_trip(line: &StepMetrics) -> StepMetrics {
        let back: StepMetrics = serde_json::from_str(&serde_json::to_string(line).unwrap()).unwrap();
        assert_eq!(to_map(&back), to_map(line));
        back
    }

    /// The keys of a line are the peers' names that the plots, the bench and users read.
    #[test]
    fn lines_carry_the_documented_keys() {
        let line = grpo_line();
        let map = to_map(&line);
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        for key in [
            "step",
            "reward/mean",
            "reward/std",
            "rewards/format/mean",
            "rewards/answer/mean",
            "frac_reward_zero_std",
            "completions/mean_length",
            "completions/min_length",
            "completions/max_length",
            "completions/clipped_ratio",
            "timing/generate",
            "timing/reward",
            "timing/old_logp",
            "timing/ref_logp",
            "tokens_per_second/generation",
            "optimizer_step",
            "loss",
            "kl",
            "entropy",
            "clip_ratio/low_mean",
            "clip_ratio/high_mean",
            "grad_norm",
            "learning_rate",
            "skipped_nonfinite",
            "timing/update",
            "tokens_per_second/training",
            "timing/step",
            "memory/host_rss_mib",
        ] {
            assert!(keys.contains(&key), "missing {key} in {keys:?}");
        }
        assert_eq!(keys.len(), 28);
        assert_eq!(map["grad_norm"], Value::Null);
        assert_eq!(map["completions/max_length"], Value::from(16));
        let without = to_map(&StepMetrics { step_s: None, host_rss_mib: None, ..line });
        assert!(!without.contains_key("timing/step") && !without.contains_key("memory/host_rss_mib"));
    }

    /// GRPO and SFT lines read back as written: an SFT line has only the update's keys, and no
    /// rollout or policy figures.
    #[test]
    fn lines_read_back_as_written() {
        let grpo = round_trip(&grpo_line());
        assert!(grpo.update.grad_norm.is_nan());
        assert_eq!(grpo.rollout.as_ref().unwrap().components.answer, 0.25);
        let sft =
            StepMetrics { step: 2, rollout: None, policy: None, update: update(), step_s: None, host_rss_mib: None };
        let keys: Vec<String> = to_map(&sft).keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "grad_norm",
                "learning_rate",
                "loss",
                "skipped_nonfinite",
                "step",
                "timing/update",
                "tokens_per_second/training"
            ]
        );
        let back = round_trip(&sft);
        assert!(back.rollout.is_none() && back.policy.is_none());
        // A line without the update's figures is not a metrics line.
        assert!(serde_json::from_str::<StepMetrics>(r#"{"step": 1, "reward/mean": 1.0}"#).is_err());
    }

    /// Every named figure reads the value its key holds in the written line.
    #[test]
    fn metrics_read_the_figure_their_key_names() {
        let line = grpo_line();
        let map = to_map(&line);
        for metric in [LOSS, REWARD, ANSWER_REWARD, MEAN_LENGTH, KL, HOST_RSS, STEP_SECONDS, UPDATE_SECONDS] {
            assert_eq!((metric.value)(&line), map[metric.key].as_f64(), "{}", metric.key);
        }
        assert_eq!(LOSS.series(std::slice::from_ref(&line)), [(3.0, 0.1)]);
        // grad_norm is not a number here: no point.
        let grad_norm = Metric { key: "grad_norm", value: |l| Some(l.update.grad_norm) };
        assert!(grad_norm.series(&[line]).is_empty());
    }

    proptest::proptest! {
        /// Every `Name: N kB` line is found by its name, and only by it.
        #[test]
        fn proc_status_fields_parse(rss in 0u64..1 << 40, hwm in 0u64..1 << 40) {
            let status = format!("Name:\txtask\nVmHWM:\t{hwm:>8} kB\nVmRSS:\t{rss:>8} kB\nThreads:\t3\n");
            proptest::prop_assert_eq!(proc_status_kib(&status, "VmRSS"), Some(rss));
            proptest::prop_assert_eq!(proc_status_kib(&status, "VmHWM"), Some(hwm));
            proptest::prop_assert_eq!(proc_status_kib(&status, "Threads"), None);
            proptest::prop_assert_eq!(proc_status_kib(&status, "VmPeak"), None);
        }
    }
}
