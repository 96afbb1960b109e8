//! Summary statistics for reports: mean and sample standard deviation over seeds, and the
//! agreement between two scorers.

use serde::{Deserialize, Serialize};

/// Arithmetic mean; `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Unbiased sample standard deviation `sqrt(Σ(x - mean)² / (n - 1))`; 0 for one value,
/// `None` for none.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    if xs.len() == 1 {
        return Some(0.0);
    }
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// Pearson correlation `cov(x, y) / (σx σy)` of paired values; `None` when there are fewer
/// than two pairs, the lengths differ, or either side is constant (undefined).
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 2 {
        return None;
    }
    let (mx, my) = (mean(xs)?, mean(ys)?);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// How well two scorers agree on the same questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Questions both scored.
    pub n: usize,
    /// Pearson correlation (`None` when undefined).
    pub pearson: Option<f64>,
    /// Fraction of questions where the second score, rounded to the nearest integer, equals
    /// the first.
    pub exact: f64,
    /// Mean absolute difference.
    pub mean_abs_diff: f64,
}

/// Agreement of paired scores (`a`: integer rule scores, `b`: possibly averaged judge scores);
/// `None` for no pairs.
pub fn agreement(a: &[f64], b: &[f64]) -> Option<Agreement> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let n = a.len();
    let exact = a.iter().zip(b).filter(|(x, y)| (y.round() - **x).abs() < 1e-9).count() as f64 / n as f64;
    let mad = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / n as f64;
    Some(Agreement { n, pearson: pearson(a, b), exact, mean_abs_diff: mad })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).map(|s| (s * 1e6).round()), Some(2138090.0));
        assert_eq!(std_dev(&[5.0]), Some(0.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), Some(1.0));
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
        let a = agreement(&[0.0, 3.0, 2.0, 1.0], &[0.0, 2.6, 1.0, 1.0]).unwrap();
        assert_eq!((a.n, a.exact), (4, 0.75));
        assert!((a.mean_abs_diff - 0.35).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn pearson_is_bounded_and_symmetric(v in proptest::collection::vec((-10.0f64..10.0, -10.0f64..10.0), 2..30)) {
            let (x, y): (Vec<f64>, Vec<f64>) = v.into_iter().unzip();
            if let Some(r) = pearson(&x, &y) {
                prop_assert!((-1.0..=1.0).contains(&r));
                prop_assert!((r - pearson(&y, &x).unwrap()).abs() < 1e-9);
            }
        }
    }
}
