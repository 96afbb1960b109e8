//! Advantages, ratios, clipping, KL estimators and aggregations against values computed by
//! `scripts/golden.py` (the peers' formulas, written independently in numpy).

use burn::tensor::{Device, Tensor, TensorData};
use r1_grpo::advantage::{self, AdvantageEstimator};
use r1_grpo::loss::{self, Aggregation, KlEstimator, LossConfig, LossInputs, Normaliser};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    b: usize,
    t: usize,
    max_len: usize,
    mask: Vec<Vec<f64>>,
    logp: Vec<Vec<f64>>,
    old_logp: Vec<Vec<f64>>,
    ref_logp: Vec<Vec<f64>>,
    advantages: Vec<f64>,
    rewards: Vec<f64>,
    group: usize,
    adv_grpo: Vec<f64>,
    adv_batch_std: Vec<f64>,
    adv_no_std: Vec<f64>,
    adv_rloo: Vec<f64>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    clip_low: f64,
    clip_high: f64,
    dual_clip: Option<f64>,
    policy_loss: Vec<Vec<f64>>,
    clipped_low_count: f64,
    clipped_high_count: f64,
    kl: std::collections::BTreeMap<String, Vec<Vec<f64>>>,
    total: std::collections::BTreeMap<String, f64>,
}

fn golden() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn t2(rows: &[Vec<f64>], device: &Device) -> Tensor<2> {
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<f32> = rows.iter().flatten().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}

fn t1(xs: &[f64], device: &Device) -> Tensor<1> {
    let flat: Vec<f32> = xs.iter().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(flat, [xs.len()]), device)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Relative-or-absolute closeness at f32 precision.
fn assert_close(actual: &[f32], expected: &[Vec<f64>], what: &str) {
    let expected: Vec<f64> = expected.iter().flatten().copied().collect();
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        let tol = 1e-5 * (1.0 + e.abs());
        assert!((*a as f64 - e).abs() <= tol, "{what}[{i}]: {a} vs {e}");
    }
}

#[test]
fn advantages_match_the_reference() {
    let g = golden();
    for (est, want) in [
        (AdvantageEstimator::Grpo, &g.adv_grpo),
        (AdvantageEstimator::GrpoBatchStd, &g.adv_batch_std),
        (AdvantageEstimator::GrpoNoStd, &g.adv_no_std),
        (AdvantageEstimator::Rloo, &g.adv_rloo),
    ] {
        let got = advantage::compute(&g.rewards, g.group, est, 1e-6).unwrap();
        for (a, e) in got.values.iter().zip(want) {
            assert!((a - e).abs() < 1e-12, "{est:?}: {a} vs {e}");
        }
    }
}

#[test]
fn policy_loss_clipping_and_counts_match_the_reference() {
    let g = golden();
    let device = Device::flex();
    for case in &g.cases {
        let terms = loss::policy_terms(
            t2(&g.logp, &device),
            t2(&g.old_logp, &device),
            t1(&g.advantages, &device),
            case.clip_low,
            case.clip_high,
            case.dual_clip,
        );
        assert_close(&values(terms.loss), &case.policy_loss, "policy loss");
        let mask = t2(&g.mask, &device);
        let low = (terms.clipped_low.float() * mask.clone()).sum().into_scalar::<f32>();
        let high = (terms.clipped_high.float() * mask).sum().into_scalar::<f32>();
        assert_eq!(low as f64, case.clipped_low_count);
        assert_eq!(high as f64, case.clipped_high_count);
    }
}

#[test]
fn kl_estimators_match_the_reference() {
    let g = golden();
    let device = Device::flex();
    for (key, want) in &g.cases[0].kl {
        let (name, clamp) = key.split_once('/').unwrap();
        let est = match name {
            "k1" => KlEstimator::K1,
            "k2" => KlEstimator::K2,
            _ => KlEstimator::K3,
        };
        let clamp = clamp.parse::<f64>().ok();
        let kl = loss::kl_per_token(t2(&g.logp, &device), t2(&g.ref_logp, &device), est, clamp);
        assert_close(&values(kl), want, key);
    }
}

#[test]
fn every_aggregation_matches_the_reference() {
    let g = golden();
    let device = Device::flex();
    for case in &g.cases {
        for (name, want) in &case.total {
            let aggregation = match name.as_str() {
                "token-mean" => Aggregation::TokenMean,
                "seq-mean-token-mean" => Aggregation::SeqMeanTokenMean,
                _ => Aggregation::DrGrpo,
            };
            let config = LossConfig {
                clip_low: case.clip_low,
                clip_high: case.clip_high,
                dual_clip: case.dual_clip,
                kl_coef: 0.01,
                kl_estimator: KlEstimator::K3,
                kl_clamp: Some(10.0),
                aggregation,
            };
            let mask = t2(&g.mask, &device);
            let norm = Normaliser::of(&mask, g.max_len);
            assert_eq!((norm.sequences as usize, g.t), (g.b, g.mask[0].len()));
            let out = loss::grpo_loss(
                LossInputs {
                    logp: t2(&g.logp, &device),
                    old_logp: t2(&g.old_logp, &device),
                    ref_logp: Some(t2(&g.ref_logp, &device)),
                    advantages: t1(&g.advantages, &device),
                    mask,
                },
                &config,
                norm,
            );
            let got = out.loss.into_scalar::<f32>() as f64;
            assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "{name}: {got} vs {want}");
        }
    }
}
