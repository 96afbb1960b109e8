//! Metric lines compared across runs: equal but for what the clock and the machine decide.

use r1_grpo::metrics::StepMetrics;
use serde_json::{Map, Value};

/// Metric lines as written, without wall-clock fields (a number that is not one reads back as
/// `null`, so lines compare as written).
pub fn untimed(lines: &[StepMetrics]) -> Vec<Map<String, Value>> {
    lines
        .iter()
        .map(|line| {
            let Value::Object(mut l) = serde_json::to_value(line).unwrap() else { panic!("a line is an object") };
            l.retain(|k, _| !["timing/", "tokens_per_second/", "memory/"].iter().any(|p| k.starts_with(p)));
            l
        })
        .collect()
}
