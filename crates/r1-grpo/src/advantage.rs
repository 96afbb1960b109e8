//! Advantages from the rewards of a rollout batch (host-side `f64`: rewards are a handful of
//! numbers per step, so no tensor is needed).
//!
//! Rewards arrive grouped: `rewards[g * G + i]` is the reward of completion `i` of prompt `g`
//! (`G` = group size). Every token of a completion gets the same advantage.
//!
//! * Group-normalised GRPO (EasyR1/verl): `A_i = (r_i - mean_g) / (std_g + eps)`, unbiased std.
//! * Batch std (TRL `scale_rewards = "batch"`): `A_i = (r_i - mean_g) / (std_batch + eps)`.
//! * No std (Dr. GRPO): `A_i = r_i - mean_g`.
//! * RLOO: `A_i = r_i - mean of the other G - 1 rewards of the group`.
//!
//! A group whose rewards are all equal carries no learning signal: its advantages are exactly 0
//! (set explicitly, so that rounding in the mean never leaks a tiny non-zero value divided by
//! `eps`), and the fraction of such groups is reported (`frac_reward_zero_std`).

use serde::{Deserialize, Serialize};

use crate::error::{GrpoError, Result};

/// How rewards become advantages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageEstimator {
    /// Subtract the group mean, divide by the group's unbiased std plus eps.
    Grpo,
    /// Subtract the group mean, divide by the unbiased std of the whole batch plus eps.
    GrpoBatchStd,
    /// Subtract the group mean only (Dr. GRPO).
    GrpoNoStd,
    /// Leave-one-out baseline.
    Rloo,
}

/// Advantages of one rollout batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Advantages {
    /// One value per completion, in the order of the rewards.
    pub values: Vec<f64>,
    /// Fraction of groups whose rewards are all equal.
    pub frac_zero_std: f64,
}

/// Computes the advantages of `rewards` grouped by `group_size`.
///
/// Errors when the group size is below 2 (no baseline exists), when the rewards do not split
/// into whole groups, or when a reward is not finite.
pub fn compute(rewards: &[f64], group_size: usize, estimator: AdvantageEstimator, eps: f64) -> Result<Advantages> {
    if group_size < 2 {
        return Err(GrpoError::Invalid(format!("group size {group_size} is below 2: GRPO needs a baseline")));
    }
    if rewards.is_empty() || !rewards.len().is_multiple_of(group_size) {
        return Err(GrpoError::Invalid(format!("{} rewards do not split into groups of {group_size}", rewards.len())));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(GrpoError::Invalid(format!("reward {i} is {}", rewards[i])));
    }
    let batch_std = unbiased_std(rewards);
    let mut values = Vec::with_capacity(rewards.len());
    let mut zero_std_groups = 0usize;
    for group in rewards.chunks(group_size) {
        if is_constant(group) {
            zero_std_groups += 1;
            values.extend(std::iter::repeat_n(0.0, group.len()));
            continue;
        }
        let g = group.len() as f64;
        let sum: f64 = group.iter().sum();
        let mean = sum / g;
        match estimator {
            AdvantageEstimator::Grpo => {
                let std = unbiased_std(group);
                values.extend(group.iter().map(|r| (r - mean) / (std + eps)));
            }
            AdvantageEstimator::GrpoBatchStd => values.extend(group.iter().map(|r| (r - mean) / (batch_std + eps))),
            AdvantageEstimator::GrpoNoStd => values.extend(group.iter().map(|r| r - mean)),
            AdvantageEstimator::Rloo => values.extend(group.iter().map(|r| r - (sum - r) / (g - 1.0))),
        }
    }
    let groups = rewards.len() / group_size;
    Ok(Advantages { values, frac_zero_std: zero_std_groups as f64 / groups as f64 })
}

fn is_constant(xs: &[f64]) -> bool {
    xs.iter().all(|x| *x == xs[0])
}

/// Unbiased (Bessel-corrected) standard deviation; 0 for fewer than two values.
pub fn unbiased_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [AdvantageEstimator; 4] = [
        AdvantageEstimator::Grpo,
        AdvantageEstimator::GrpoBatchStd,
        AdvantageEstimator::GrpoNoStd,
        AdvantageEstimator::Rloo,
    ];

    #[test]
    fn hand_derived_group() {
        // rewards 0, 1, 2: mean 1, unbiased std 1 -> -1/(1+eps), 0, 1/(1+eps).
        let a = compute(&[0.0, 1.0, 2.0], 3, AdvantageEstimator::Grpo, 1e-6).unwrap();
        assert!((a.values[0] + 1.0 / (1.0 + 1e-6)).abs() < 1e-12);
        assert_eq!(a.values[1], 0.0);
        // RLOO: 0 - 1.5, 1 - 1, 2 - 0.5.
        let r = compute(&[0.0, 1.0, 2.0], 3, AdvantageEstimator::Rloo, 1e-6).unwrap();
        assert_eq!(r.values, vec![-1.5, 0.0, 1.5]);
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(compute(&[1.0, 2.0, 3.0], 2, AdvantageEstimator::Grpo, 1e-6).is_err());
        assert!(compute(&[1.0, 2.0], 1, AdvantageEstimator::Grpo, 1e-6).is_err());
        assert!(compute(&[], 2, AdvantageEstimator::Grpo, 1e-6).is_err());
        assert!(compute(&[1.0, f64::NAN], 2, AdvantageEstimator::Grpo, 1e-6).is_err());
    }

    fn grouped() -> impl Strategy<Value = (Vec<f64>, usize)> {
        (2usize..6, 1usize..5).prop_flat_map(|(g, n)| {
            // Small integer-valued rewards make equal rewards (zero-std groups) common.
            (prop::collection::vec((0i32..4).prop_map(|x| x as f64 * 0.5), g * n), Just(g))
        })
    }

    proptest! {
        #[test]
        fn advantages_sum_to_zero_per_group((rewards, g) in grouped()) {
            for est in ALL {
                let a = compute(&rewards, g, est, 1e-6).unwrap();
                for chunk in a.values.chunks(g) {
                    let s: f64 = chunk.iter().sum();
                    prop_assert!(s.abs() < 1e-9, "{est:?}: group sums to {s}");
                }
            }
        }

        #[test]
        fn zero_variance_groups_give_zero((rewards, g) in grouped()) {
            for est in ALL {
                let a = compute(&rewards, g, est, 1e-6).unwrap();
                let mut zero = 0;
                for (r, adv) in rewards.chunks(g).zip(a.values.chunks(g)) {
                    if r.iter().all(|x| *x == r[0]) {
                        zero += 1;
                        prop_assert!(adv.iter().all(|x| *x == 0.0));
                    } else {
                        prop_assert!(adv.iter().any(|x| *x != 0.0));
                    }
                }
                prop_assert_eq!(a.frac_zero_std, zero as f64 / (rewards.len() / g) as f64);
            }
        }

        #[test]
        fn advantages_order_like_rewards((rewards, g) in grouped()) {
            for est in ALL {
                let a = compute(&rewards, g, est, 1e-6).unwrap();
                for (r, adv) in rewards.chunks(g).zip(a.values.chunks(g)) {
                    for i in 0..g {
                        for j in 0..g {
                            if r[i] > r[j] { prop_assert!(adv[i] > adv[j]); }
                        }
                    }
                }
            }
        }

        #[test]
        fn group_normalised_has_unit_std((rewards, g) in grouped()) {
            let a = compute(&rewards, g, AdvantageEstimator::Grpo, 0.0).unwrap();
            for (r, adv) in rewards.chunks(g).zip(a.values.chunks(g)) {
                if !r.iter().all(|x| *x == r[0]) {
                    prop_assert!((unbiased_std(adv) - 1.0).abs() < 1e-9);
                }
            }
        }
    }
}
