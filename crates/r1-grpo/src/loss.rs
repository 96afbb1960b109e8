//! The GRPO policy loss on burn tensors, as verl/EasyR1 define it (`compute_policy_loss` in
//! verl's `core_algos.py`). Shapes: `B` completions, `T` completion positions (padded);
//! `mask` is 1.0 on real completion tokens and 0.0 on padding.
//!
//! Per token, with `A` the completion's advantage:
//! * `log rho = clamp(logp - logp_old, -20, 20)`, `rho = exp(log rho)`;
//! * `L = max(-A rho, -A clip(rho, 1 - eps_low, 1 + eps_high))`;
//! * dual clip (negative advantages only): `L = min(L, -A c)`;
//! * plus `beta * KL(logp, logp_ref)` when the KL coefficient is positive.
//!
//! The per-token values are then reduced by one of the [`Aggregation`]s, whose normaliser is
//! taken from a [`Normaliser`] holding the totals of the whole optimiser minibatch, so that a
//! minibatch split into gradient-accumulation chunks gives the same gradient as one pass.

use burn::tensor::{Bool, Tensor};
use serde::{Deserialize, Serialize};

/// Bound of a log-ratio before exponentiation (verl, EasyR1, TRL): keeps `rho` finite when the
/// policy drifts far from the sampler, and likewise k3's `exp(logp_ref - logp)`, whose backward
/// would otherwise be `0 * inf = NaN` past the point where f32 `exp` overflows.
const LOG_RATIO_BOUND: f64 = 20.0;

/// Estimator of `KL(pi_theta || pi_ref)` from per-token log-probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// `logp - logp_ref`.
    K1,
    /// `0.5 (logp - logp_ref)^2`.
    K2,
    /// `exp(d) - d - 1` with `d = clamp(logp_ref - logp, -20, 20)` ("low_var_kl", EasyR1's
    /// inner clamp included).
    K3,
}

/// How per-token losses become one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// `sum(m L) / number of completion tokens` (EasyR1 "token", TRL "dapo").
    TokenMean,
    /// `mean_i (sum_t m L / |o_i|)` (original GRPO).
    SeqMeanTokenMean,
    /// `sum(m L) / (B * max completion length)` (Dr. GRPO).
    DrGrpo,
}

/// Settings of the loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub clip_low: f64,
    pub clip_high: f64,
    /// Dual-clip constant `c` (> 1) for negative advantages; `None` disables it.
    pub dual_clip: Option<f64>,
    /// KL coefficient beta; 0 means no reference model at all.
    pub kl_coef: f64,
    pub kl_estimator: KlEstimator,
    /// Symmetric clamp of the per-token KL (verl/EasyR1: 10); `None` leaves it unclamped (TRL).
    pub kl_clamp: Option<f64>,
    pub aggregation: Aggregation,
}

/// Totals of the whole optimiser minibatch, the denominators of the aggregations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normaliser {
    /// Completion tokens in the minibatch.
    pub tokens: f64,
    /// Completions in the minibatch.
    pub sequences: f64,
    /// Maximum completion length of the run (Dr. GRPO's constant).
    pub max_len: f64,
}

impl Normaliser {
    /// Totals of a single chunk that is the whole minibatch.
    pub fn of(mask: &Tensor<2>, max_len: usize) -> Self {
        let [b, _] = mask.dims();
        Self { tokens: mask.clone().sum().into_scalar::<f32>() as f64, sequences: b as f64, max_len: max_len as f64 }
    }
}

/// Per-token clipped policy loss `[B, T]` and where the clip binds.
pub struct PolicyTerms {
    pub loss: Tensor<2>,
    /// `rho < 1 - eps_low` with `A < 0` (TRL's `clip_ratio/low`).
    pub clipped_low: Tensor<2, Bool>,
    /// `rho > 1 + eps_high` with `A > 0` (TRL's `clip_ratio/high`).
    pub clipped_high: Tensor<2, Bool>,
}

/// Clipped surrogate per token. `logp`, `old_logp`: `[B, T]`; `advantages`: `[B]`.
pub fn policy_terms(
    logp: Tensor<2>,
    old_logp: Tensor<2>,
    advantages: Tensor<1>,
    clip_low: f64,
    clip_high: f64,
    dual_clip: Option<f64>,
) -> PolicyTerms {
    let dims = logp.dims();
    let adv = advantages.unsqueeze_dim::<2>(1).expand(dims);
    let ratio = (logp - old_logp).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND).exp();
    let unclipped = -adv.clone() * ratio.clone();
    let clipped = -adv.clone() * ratio.clone().clamp(1.0 - clip_low, 1.0 + clip_high);
    let mut loss = unclipped.max_pair(clipped);
    let negative = adv.clone().lower_elem(0.0);
    if let Some(c) = dual_clip {
        let bound = -adv.clone() * c;
        loss = loss.clone().mask_where(negative.clone(), loss.min_pair(bound));
    }
    let clipped_low = ratio.clone().lower_elem(1.0 - clip_low).bool_and(negative);
    let clipped_high = ratio.greater_elem(1.0 + clip_high).bool_and(adv.greater_elem(0.0));
    PolicyTerms { loss, clipped_low, clipped_high }
}

/// Per-token KL estimate `[B, T]`, clamped to `[-clamp, clamp]` when given.
pub fn kl_per_token(logp: Tensor<2>, ref_logp: Tensor<2>, estimator: KlEstimator, clamp: Option<f64>) -> Tensor<2> {
    let diff = logp - ref_logp;
    let kl = match estimator {
        KlEstimator::K1 => diff,
        KlEstimator::K2 => diff.square() * 0.5,
        // With d = logp_ref - logp = -diff, clamped first as EasyR1 does: exp(d) - d - 1.
        KlEstimator::K3 => {
            let d = (-diff).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND);
            d.clone().exp() - d - 1.0
        }
    };
    match clamp {
        Some(c) => kl.clamp(-c, c),
        None => kl,
    }
}

/// Reduces per-token values `[B, T]` under `mask` to a scalar `[1]`.
pub fn aggregate(values: Tensor<2>, mask: Tensor<2>, aggregation: Aggregation, norm: Normaliser) -> Tensor<1> {
    match aggregation {
        Aggregation::TokenMean => (values * mask).sum() / norm.tokens.max(1.0),
        Aggregation::SeqMeanTokenMean => {
            // An empty completion (length 0) contributes 0 rather than 0/0.
            let lengths = mask.clone().sum_dim(1).clamp_min(1.0);
            ((values * mask).sum_dim(1) / lengths).sum() / norm.sequences.max(1.0)
        }
        Aggregation::DrGrpo => (values * mask).sum() / (norm.sequences * norm.max_len).max(1.0),
    }
}

/// Inputs of one loss evaluation; all `[B, T]` except `advantages` (`[B]`).
pub struct LossInputs {
    pub logp: Tensor<2>,
    pub old_logp: Tensor<2>,
    /// Required when the KL coefficient is positive.
    pub ref_logp: Option<Tensor<2>>,
    pub advantages: Tensor<1>,
    pub mask: Tensor<2>,
}

/// The loss to differentiate and sums for the metrics (sums over masked tokens, so that chunks
/// of one minibatch add up; divide by the token count for means).
pub struct LossOutput {
    /// Scalar `[1]` loss (policy + beta KL), aggregated.
    pub loss: Tensor<1>,
    /// Sum of the per-token KL over completion tokens (0 without a reference).
    pub kl_sum: Tensor<1>,
    pub clipped_low_count: Tensor<1>,
    pub clipped_high_count: Tensor<1>,
}

/// The GRPO loss of one chunk of a minibatch.
pub fn grpo_loss(inputs: LossInputs, config: &LossConfig, norm: Normaliser) -> LossOutput {
    let LossInputs { logp, old_logp, ref_logp, advantages, mask } = inputs;
    let terms = policy_terms(logp.clone(), old_logp, advantages, config.clip_low, config.clip_high, config.dual_clip);
    let count = |flags: Tensor<2, Bool>| (flags.float() * mask.clone()).sum().detach();
    let clipped_low_count = count(terms.clipped_low);
    let clipped_high_count = count(terms.clipped_high);
    let (per_token, kl_sum) = match ref_logp {
        Some(ref_logp) if config.kl_coef > 0.0 => {
            let kl = kl_per_token(logp, ref_logp, config.kl_estimator, config.kl_clamp);
            let kl_sum = (kl.clone() * mask.clone()).sum().detach();
            (terms.loss + kl * config.kl_coef, kl_sum)
        }
        _ => (terms.loss, Tensor::zeros([1], &mask.device())),
    };
    LossOutput {
        loss: aggregate(per_token, mask, config.aggregation, norm),
        kl_sum,
        clipped_low_count,
        clipped_high_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use proptest::prelude::*;

    fn t2(values: &[f32], b: usize, t: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [b, t]), &Device::flex())
    }

    fn t1(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Device::flex())
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Log-prob gaps far past where `exp` overflows f32 (~88) give a finite k3 and finite
    /// gradients (unclamped, the backward would be `0 * inf = NaN`).
    #[test]
    fn k3_survives_huge_gaps() {
        let device = Device::flex().autodiff();
        for gap in [-100.0f32, -90.0, 90.0, 100.0] {
            let logp = Tensor::<2>::from_data(TensorData::new(vec![-1.0f32, -2.0], [1, 2]), &device).require_grad();
            let reference = Tensor::<2>::from_data(TensorData::new(vec![-1.0 - gap, -2.0 + gap], [1, 2]), &device);
            for clamp in [Some(10.0), None] {
                let kl = kl_per_token(logp.clone(), reference.clone(), KlEstimator::K3, clamp);
                let grads = kl.clone().sum().backward();
                let grad = logp.grad(&grads).unwrap().into_data().try_into_vec_as::<f32>().unwrap();
                let values = kl.into_data().try_into_vec_as::<f32>().unwrap();
                assert!(values.iter().chain(&grad).all(|x| x.is_finite()), "gap {gap}: {values:?} {grad:?} {clamp:?}");
            }
        }
    }

    fn config(aggregation: Aggregation) -> LossConfig {
        LossConfig {
            clip_low: 0.2,
            clip_high: 0.3,
            dual_clip: Some(3.0),
            kl_coef: 0.01,
            kl_estimator: KlEstimator::K3,
            kl_clamp: Some(10.0),
            aggregation,
        }
    }

    /// `(b, t, logp, other logp, advantages, mask)` with every completion at least one token.
    fn batch() -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)> {
        (1usize..4, 1usize..5).prop_flat_map(|(b, t)| {
            (
                Just(b),
                Just(t),
                prop::collection::vec(-8.0f32..0.0, b * t),
                prop::collection::vec(-30.0f32..0.0, b * t),
                prop::collection::vec(-3.0f32..3.0, b),
                prop::collection::vec(1usize..=t, b).prop_map(move |lens| {
                    lens.iter().flat_map(|&l| (0..t).map(move |j| if j < l { 1.0 } else { 0.0 })).collect()
                }),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn one_update_per_rollout_has_ratio_one((b, t, logp, _o, adv, mask) in batch()) {
            let terms = policy_terms(t2(&logp, b, t), t2(&logp, b, t), t1(&adv), 0.2, 0.3, Some(3.0));
            let loss = host(terms.loss);
            for i in 0..b {
                for j in 0..t {
                    prop_assert!((loss[i * t + j] + adv[i]).abs() < 1e-6);
                }
            }
            let m = t2(&mask, b, t);
            prop_assert_eq!((terms.clipped_low.float() * m.clone()).sum().into_scalar::<f32>(), 0.0);
            prop_assert_eq!((terms.clipped_high.float() * m).sum().into_scalar::<f32>(), 0.0);
        }

        #[test]
        fn loss_is_finite_and_dual_clip_bounds_it((b, t, logp, old, adv, mask) in batch()) {
            let terms = policy_terms(t2(&logp, b, t), t2(&old, b, t), t1(&adv), 0.2, 0.3, Some(3.0));
            let loss = host(terms.loss);
            for i in 0..b {
                for j in 0..t {
                    let l = loss[i * t + j];
                    prop_assert!(l.is_finite());
                    if adv[i] < 0.0 {
                        prop_assert!(l <= -adv[i] * 3.0 + 1e-4);
                    }
                }
            }
            for agg in [Aggregation::TokenMean, Aggregation::SeqMeanTokenMean, Aggregation::DrGrpo] {
                let m = t2(&mask, b, t);
                let out = grpo_loss(
                    LossInputs {
                        logp: t2(&logp, b, t),
                        old_logp: t2(&old, b, t),
                        ref_logp: Some(t2(&old, b, t)),
                        advantages: t1(&adv),
                        mask: m.clone(),
                    },
                    &config(agg),
                    Normaliser::of(&m, t),
                );
                prop_assert!(out.loss.into_scalar::<f32>().is_finite());
            }
        }

        #[test]
        fn kl_estimators_are_zero_at_equality_and_k2_k3_non_negative(
            (b, t, logp, other, _a, _m) in batch()
        ) {
            for est in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
                let same = host(kl_per_token(t2(&logp, b, t), t2(&logp, b, t), est, Some(10.0)));
                prop_assert!(same.iter().all(|x| *x == 0.0));
            }
            for est in [KlEstimator::K2, KlEstimator::K3] {
                let kl = host(kl_per_token(t2(&logp, b, t), t2(&other, b, t), est, Some(10.0)));
                prop_assert!(kl.iter().all(|x| (0.0..=10.0).contains(x)));
            }
        }

        #[test]
        fn chunks_with_the_minibatch_normaliser_add_up((b, t, logp, old, adv, mask) in batch()) {
            prop_assume!(b >= 2);
            let m = t2(&mask, b, t);
            let norm = Normaliser::of(&m, t);
            for agg in [Aggregation::TokenMean, Aggregation::SeqMeanTokenMean, Aggregation::DrGrpo] {
                let run = |rows: std::ops::Range<usize>| {
                    let n = rows.len();
                    let s = rows.start * t..rows.end * t;
                    grpo_loss(
                        LossInputs {
                            logp: t2(&logp[s.clone()], n, t),
                            old_logp: t2(&old[s.clone()], n, t),
                            ref_logp: Some(t2(&old[s.clone()], n, t)),
                            advantages: t1(&adv[rows]),
                            mask: t2(&mask[s], n, t),
                        },
                        &config(agg),
                        norm,
                    )
                    .loss
                    .into_scalar::<f32>()
                };
                let whole = run(0..b);
                let parts = run(0..1) + run(1..b);
                prop_assert!((whole - parts).abs() <= 1e-4 * (1.0 + whole.abs()), "{agg:?}: {whole} vs {parts}");
            }
        }
    }
}
