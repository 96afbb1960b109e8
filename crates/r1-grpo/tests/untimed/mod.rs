//! Metric lines compared across runs: equal but for what the clock and the machine decide.

use serde_json::{Map, Value};

/// Metric lines without wall-clock fields.
pub fn untimed(lines: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    lines
        .into_iter()
        .map(|mut l| {
            l.retain(|k, _| !["timing/", "tokens_per_second/", "memory/"].iter().any(|p| k.starts_with(p)));
            l
        })
        .collect()
}
