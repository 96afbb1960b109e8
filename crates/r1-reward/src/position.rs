//! Open-ended positions: the first `[x, y, z]` in the answer against the target, in metres.

use serde::{Deserialize, Serialize};

/// The largest f64 below 1: what a prediction that is off by less than the f64 resolution gets,
/// so that 1 is paid only for the exact target.
const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;

/// How the distance between prediction `p` and target `t` becomes a reward in [0, 1].
/// With `e = p - t` in metres:
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum PositionMetric {
    /// `clip(1 - (|e_x| + |e_y| + |e_z|), 0, 1)`, the paper's reward.
    #[default]
    L1,
    /// `clip(1 - sqrt(e_x² + e_y² + e_z²), 0, 1)`.
    L2,
    /// `(clip(1 - |e_x|, 0, 1) + clip(1 - |e_y|, 0, 1) + clip(1 - |e_z|, 0, 1)) / 3`: partial
    /// credit for each axis that is close even when another is far off.
    PerAxis,
}

impl std::fmt::Display for PositionMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// The reward for a predicted position, per `metric` (see [`PositionMetric`]). Exactly 1 only
/// when `prediction == target`; any other prediction gets strictly less, even one off by a
/// rounding error. 0 when any coordinate of either is not finite. Non-increasing as the
/// prediction moves away from the target along any ray.
pub fn position_reward(prediction: [f64; 3], target: [f64; 3], metric: PositionMetric) -> f64 {
    if !prediction.iter().chain(&target).all(|v| v.is_finite()) {
        return 0.0;
    }
    if prediction == target {
        return 1.0;
    }
    // Per-axis errors may overflow to infinity; every formula below then gives 0, never NaN.
    let e = [prediction[0] - target[0], prediction[1] - target[1], prediction[2] - target[2]].map(f64::abs);
    let clip = |v: f64| v.clamp(0.0, 1.0);
    let reward = match metric {
        PositionMetric::L1 => clip(1.0 - (e[0] + e[1] + e[2])),
        PositionMetric::L2 => clip(1.0 - (e[0] * e[0] + e[1] * e[1] + e[2] * e[2]).sqrt()),
        PositionMetric::PerAxis => e.map(|a| clip(1.0 - a)).iter().sum::<f64>() / 3.0,
    };
    reward.min(BELOW_ONE)
}

/// The reward for an open-ended answer: [`position_reward`] of its first triple
/// ([`parse_position`]), 0 when it has none.
pub fn position_answer_reward(answer: &str, target: [f64; 3], metric: PositionMetric) -> f64 {
    parse_position(answer).map_or(0.0, |p| position_reward(p, target, metric))
}

/// The first `[x, y, z]` in `text`: `[`, three decimal numbers separated by commas, `]`, with
/// optional whitespace around each number. A number is an optional sign, digits with an
/// optional decimal point (at least one digit), and an optional exponent (`1e-3`). Values may be
/// infinite when the exponent overflows; the reward then treats them as wrong. O(len).
pub fn parse_position(text: &str) -> Option<[f64; 3]> {
    positions(text).next()
}

/// Every `[x, y, z]` in `text`, in order, by [`parse_position`]'s syntax. O(len) for the whole
/// iteration.
pub fn positions(text: &str) -> impl Iterator<Item = [f64; 3]> + '_ {
    // An attempt, failed or not, stops at the next `[` at the latest (no triple contains one),
    // so trying every `[` is linear overall.
    text.match_indices('[').filter_map(|(i, _)| triple(&text[i + 1..]))
}

/// `x, y, z]` at the start of `s` (the `[` already consumed).
fn triple(s: &str) -> Option<[f64; 3]> {
    let mut rest = s;
    let mut out = [0.0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let (value, after) = number(rest.trim_start())?;
        *slot = value;
        let separator = if i < 2 { ',' } else { ']' };
        rest = after.trim_start().strip_prefix(separator)?;
    }
    Some(out)
}

/// A decimal number at the start of `s` and the text after it.
fn number(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    let digits_from = |i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits_from(end);
    let mut mantissa_digits = int_end - end;
    end = int_end;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits_from(end + 1);
        mantissa_digits += frac_end - (end + 1);
        end = frac_end;
    }
    if mantissa_digits == 0 {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let exp_end = digits_from(end + 1 + sign);
        if exp_end > end + 1 + sign {
            end = exp_end;
        }
    }
    // Only ASCII bytes were consumed, so `end` is a char boundary; the slice is valid float
    // syntax for `f64::from_str` by construction.
    let value = s[..end].parse().ok()?;
    Some((value, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_triple() {
        assert_eq!(parse_position("[0.254, -0.197, 0.894]"), Some([0.254, -0.197, 0.894]));
        assert_eq!(parse_position("near [1, 2] then [ +1.5e-1 ,-.5,3. ] and [9, 9, 9]"), Some([0.15, -0.5, 3.0]));
        assert_eq!(parse_position("[[0.1, 0.2, 0.3]]"), Some([0.1, 0.2, 0.3]));
        assert_eq!(parse_position("[1e999, 0, 0]"), Some([f64::INFINITY, 0.0, 0.0]));
        let all: Vec<[f64; 3]> = positions("[[1, 2, 3]] then [4,5] [4, 5, 6]").collect();
        assert_eq!(all, vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        for text in ["", "[1, 2, 3", "(1, 2, 3)", "[1, 2, 3, 4]", "[1 2 3]", "[., 1, 2]", "[nan, 1, 2]", "[1e, 2, 3]"] {
            assert_eq!(parse_position(text), None, "{text:?}");
        }
    }

    #[test]
    fn metrics() {
        let t = [0.5, 0.5, 0.5];
        let p = [0.6, 0.3, 0.5];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(position_reward(p, t, PositionMetric::L1), 0.7));
        assert!(close(position_reward(p, t, PositionMetric::L2), 1.0 - 0.05f64.sqrt()));
        assert!(close(position_reward(p, t, PositionMetric::PerAxis), (0.9 + 0.8 + 1.0) / 3.0));
        assert_eq!(position_reward(t, t, PositionMetric::L1), 1.0);
        assert_eq!(position_reward([0.5, 0.5, 0.5 + 1e-17], t, PositionMetric::L1), 1.0);
        assert!(position_reward([0.5, 0.5, 0.500_000_000_000_001], t, PositionMetric::L1) < 1.0);
        assert_eq!(position_reward([5.0, 0.0, 0.0], t, PositionMetric::L1), 0.0);
        assert_eq!(position_reward([f64::MAX, -f64::MAX, 0.0], [-f64::MAX, 0.0, 0.0], PositionMetric::L2), 0.0);
        assert_eq!(position_reward([f64::NAN, 0.5, 0.5], t, PositionMetric::PerAxis), 0.0);
        assert_eq!(position_answer_reward("<answer>no numbers</answer>", t, PositionMetric::L1), 0.0);
    }

    #[test]
    fn metric_names() {
        for (metric, name) in
            [(PositionMetric::L1, "l1"), (PositionMetric::L2, "l2"), (PositionMetric::PerAxis, "per_axis")]
        {
            assert_eq!(metric.to_string(), name);
            assert_eq!(serde_json::from_str::<PositionMetric>(&format!("\"{name}\"")).unwrap(), metric);
            assert_eq!(<PositionMetric as clap::ValueEnum>::from_str(name, false).unwrap(), metric);
        }
        assert!(serde_json::from_str::<PositionMetric>("\"l3\"").is_err());
    }
}
