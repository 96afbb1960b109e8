//! The metrics of a GRPO step, as written to `metrics.jsonl`: one line per optimiser step, the
//! rollout's figures repeated on each line of the step. Key names follow TRL's GRPOTrainer
//! logs (`reward/mean`, `completions/mean_length`, `clip_ratio/low_mean`, ...).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// Figures of the rollout, shared by the step's lines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutMetrics {
    pub step: u64,
    #[serde(rename = "reward/mean")]
    pub reward_mean: f64,
    #[serde(rename = "reward/std")]
    pub reward_std: f64,
    /// `rewards/<component>/mean` for every reward component.
    #[serde(flatten)]
    pub components: BTreeMap<String, f64>,
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

/// Figures of one optimiser step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpdateMetrics {
    pub optimizer_step: u64,
    pub loss: f64,
    /// Mean per-token KL to the reference (0 without one).
    pub kl: f64,
    /// Mean negative log-prob of the sampled tokens (a sampled estimate of the entropy).
    pub entropy: f64,
    #[serde(rename = "clip_ratio/low_mean")]
    pub clip_low: f64,
    #[serde(rename = "clip_ratio/high_mean")]
    pub clip_high: f64,
    /// Global gradient norm before clipping; not a number when the step was skipped.
    pub grad_norm: f64,
    pub learning_rate: f64,
    pub skipped_nonfinite: u64,
    #[serde(rename = "timing/update")]
    pub update_s: f64,
    #[serde(rename = "tokens_per_second/training")]
    pub training_tps: f64,
}

/// One `metrics.jsonl` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepMetrics {
    #[serde(flatten)]
    pub rollout: RolloutMetrics,
    #[serde(flatten)]
    pub update: UpdateMetrics,
    /// Wall time of the whole step, on the step's last line only.
    #[serde(rename = "timing/step", skip_serializing_if = "Option::is_none")]
    pub step_s: Option<f64>,
    /// Resident host memory at the end of the step ([`host_rss_mib`]), on its last line only.
    #[serde(rename = "memory/host_rss_mib", skip_serializing_if = "Option::is_none")]
    pub host_rss_mib: Option<f64>,
}

/// Key of [`StepMetrics::host_rss_mib`], also logged by the SFT trainer.
pub const HOST_RSS_KEY: &str = "memory/host_rss_mib";

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

impl StepMetrics {
    /// The line as a JSON object (non-finite numbers become `null`, as serde_json writes them).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a struct of numbers and strings serialises to a JSON object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a line are the peers' names that the plots, the bench and users read.
    #[test]
    fn lines_carry_the_documented_keys() {
        let line = StepMetrics {
            rollout: RolloutMetrics {
                step: 3,
                reward_mean: 1.0,
                reward_std: 0.5,
                components: BTreeMap::from([("rewards/format/mean".to_string(), 1.0)]),
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
            },
            update: UpdateMetrics {
                optimizer_step: 3,
                loss: 0.1,
                kl: 0.0,
                entropy: 2.0,
                clip_low: 0.0,
                clip_high: 0.0,
                grad_norm: f64::NAN,
                learning_rate: 1e-3,
                skipped_nonfinite: 1,
                update_s: 2.0,
                training_tps: 50.0,
            },
            step_s: Some(4.0),
            host_rss_mib: Some(100.0),
        };
        let map = line.to_map();
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        for key in [
            "step",
            "reward/mean",
            "reward/std",
            "rewards/format/mean",
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
        assert_eq!(keys.len(), 27);
        assert_eq!(map["grad_norm"], Value::Null);
        assert_eq!(map["completions/max_length"], Value::from(16));
        let without = StepMetrics { step_s: None, host_rss_mib: None, ..line }.to_map();
        assert!(!without.contains_key("timing/step") && !without.contains_key(HOST_RSS_KEY));
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
