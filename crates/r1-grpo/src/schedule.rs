//! Learning-rate schedules, pure functions of the optimiser step (so the schedule's state in a
//! checkpoint is just the step).

use serde::{Deserialize, Serialize};

/// How the learning rate evolves over optimiser steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The peak rate throughout (EasyR1's GRPO setting).
    Constant,
    /// Linear warm-up from 0 over `warmup_ratio * total` steps, then cosine decay to 0
    /// (Hugging Face `get_cosine_schedule_with_warmup`, the paper's SFT setting with ratio 0.03).
    WarmupCosine { warmup_ratio: f64 },
}

impl Schedule {
    /// Rate of optimiser step `step` (0-based) out of `total`, for peak rate `peak`.
    ///
    /// Warm-up + cosine, with `w = ceil(warmup_ratio * total)`:
    /// `peak * step / w` while `step < w`, then `peak * 0.5 (1 + cos(pi (step - w) / (total - w)))`.
    pub fn lr(&self, peak: f64, step: u64, total: u64) -> f64 {
        match self {
            Schedule::Constant => peak,
            Schedule::WarmupCosine { warmup_ratio } => {
                let warmup = (warmup_ratio * total as f64).ceil() as u64;
                if step < warmup {
                    return peak * step as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_derived_points() {
        let s = Schedule::WarmupCosine { warmup_ratio: 0.1 };
        // total 100 -> warm-up 10 steps.
        assert_eq!(s.lr(1.0, 0, 100), 0.0);
        assert!((s.lr(1.0, 5, 100) - 0.5).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 100) - 1.0).abs() < 1e-12);
        // Half way through the decay: cos(pi/2) = 0 -> 0.5.
        assert!((s.lr(1.0, 55, 100) - 0.5).abs() < 1e-12);
        assert!(s.lr(1.0, 100, 100).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(1e-6, 7, 9), 1e-6);
    }

    proptest! {
        #[test]
        fn cosine_stays_within_peak(ratio in 0.0f64..0.5, total in 1u64..500, step in 0u64..600, peak in 1e-7f64..1.0) {
            let lr = Schedule::WarmupCosine { warmup_ratio: ratio }.lr(peak, step, total);
            prop_assert!((0.0..=peak * (1.0 + 1e-12)).contains(&lr));
        }
    }
}
