//! Movement labels (Robot-R1's movement question) and their adjacency.
//!
//! Label rule for a displacement `d = target - current` (metres) with largest component
//! `m = max_a |d_a|`:
//! * if `m <= negligible` the movement is "stay still";
//! * otherwise, per axis `a`: no motion when `|d_a| <= negligible`, "slightly" when
//!   `|d_a| <= m / 2`, a plain move otherwise; the direction is the sign of `d_a`.
//!
//! The largest axis is never "slightly" (`m > m / 2`), so every label other than "stay still"
//! has at least one plain move. The default negligible threshold [`NEGLIGIBLE_M`] is 1 cm:
//! below the repeatability of the demonstrations' keypoints, and small against the gripper
//! (6 cm wide).
//!
//! Phrases list the moving axes in x, y, z order with the metadata's direction names, e.g.
//! "move down", "move right and move down", "slightly move front, slightly move left, and
//! move down". [`Movement::parse`] also accepts "move right and down", "move down and
//! slightly right" and capitals.
//!
//! Adjacency (for distractors): the movements that differ from a label by one edit on one
//! axis: flip a moving axis's direction, toggle "slightly" on it, drop it, or add a plain or
//! slight move along a still axis; results that break the rule above (only slight moves)
//! are excluded. Every label has at least six neighbours and is never its own neighbour.
//!
//! Edit distance ([`Movement::edit_distance`]): the fewest such edits between two labels, the
//! sum over the axes of 0 (same level), 2 (opposite directions and one of them "slightly":
//! a flip and a toggle) or 1 (any other change). A test checks it against a breadth-first
//! search over the adjacency graph of all 99 labels.

use serde::{Deserialize, Serialize};

use crate::episode::AxisNames;

/// Default negligible displacement per axis, metres.
pub const NEGLIGIBLE_M: f64 = 0.01;

const STILL_PHRASE: &str = "stay still";

/// A movement label: per axis x, y, z a level in `-2..=2` (`±2` move, `±1` slightly move,
/// `0` no motion along that axis). Invariant: all levels zero, or at least one is `±2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[i8; 3]", into = "[i8; 3]")]
pub struct Movement([i8; 3]);

impl Movement {
    /// No motion along any axis.
    pub const STILL: Movement = Movement([0; 3]);

    /// The label of displacement `delta` (see the module docs).
    pub fn from_delta(delta: [f64; 3], negligible: f64) -> Self {
        let largest = delta.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        // `f64::max` skips NaN components, so `largest` is a number.
        if largest <= negligible {
            return Self::STILL;
        }
        Self(std::array::from_fn(|a| {
            let d = delta[a];
            let level = if d.abs() <= negligible {
                0
            } else if d.abs() <= largest / 2.0 {
                1
            } else {
                2
            };
            if d < 0.0 { -level } else { level }
        }))
    }

    /// The label of the move from `current` to `target` with the default threshold.
    pub fn between(current: [f64; 3], target: [f64; 3]) -> Self {
        Self::from_delta(std::array::from_fn(|a| target[a] - current[a]), NEGLIGIBLE_M)
    }

    /// A label from per-axis levels, or `None` when they break the invariant.
    pub fn new(levels: [i8; 3]) -> Option<Self> {
        let in_range = levels.iter().all(|l| (-2..=2).contains(l));
        let has_plain = levels.iter().any(|l| l.abs() == 2);
        let still = levels == [0; 3];
        (in_range && (has_plain || still)).then_some(Self(levels))
    }

    pub fn levels(self) -> [i8; 3] {
        self.0
    }

    /// The phrase for this label with the given axis direction names.
    pub fn phrase(self, axes: &[AxisNames; 3]) -> String {
        let parts: Vec<String> = (0..3)
            .filter(|&a| self.0[a] != 0)
            .map(|a| {
                let name = if self.0[a] > 0 { &axes[a].positive } else { &axes[a].negative };
                if self.0[a].abs() == 1 { format!("slightly move {name}") } else { format!("move {name}") }
            })
            .collect();
        match parts.as_slice() {
            [] => STILL_PHRASE.to_string(),
            [one] => one.clone(),
            [a, b] => format!("{a} and {b}"),
            [init @ .., last] => format!("{}, and {last}", init.join(", ")),
        }
    }

    /// Reads a phrase back (case-insensitive, trailing period allowed). `None` when a part is
    /// not "[slightly] [move] [slightly] <direction>", an axis is named twice, or the result
    /// breaks the invariant.
    pub fn parse(text: &str, axes: &[AxisNames; 3]) -> Option<Self> {
        let text = text.trim().trim_end_matches('.').trim().to_lowercase();
        if text == STILL_PHRASE {
            return Some(Self::STILL);
        }
        let mut levels = [0i8; 3];
        let normalised = text.replace(", and ", ", ").replace(" and ", ", ");
        for part in normalised.split(',').map(str::trim) {
            let mut words: Vec<&str> = part.split_whitespace().collect();
            let mut slight = false;
            for filler in ["slightly", "move", "slightly"] {
                if words.first() == Some(&filler) {
                    slight |= filler == "slightly";
                    words.remove(0);
                }
            }
            let name = words.join(" ");
            let (axis, sign) = (0..3).find_map(|a| {
                if axes[a].positive.to_lowercase() == name {
                    Some((a, 1))
                } else if axes[a].negative.to_lowercase() == name {
                    Some((a, -1))
                } else {
                    None
                }
            })?;
            if levels[axis] != 0 {
                return None;
            }
            levels[axis] = sign * if slight { 1 } else { 2 };
        }
        Self::new(levels)
    }

    /// The adjacent labels (see the module docs), sorted, without duplicates.
    pub fn adjacent(self) -> Vec<Movement> {
        let mut out = Vec::new();
        for a in 0..3 {
            let l = self.0[a];
            let edits: &[i8] = if l == 0 { &[-2, -1, 1, 2] } else { &[-l, l.signum() * (3 - l.abs()), 0] };
            for &new in edits {
                let mut levels = self.0;
                levels[a] = new;
                if let Some(m) = Self::new(levels) {
                    out.push(m);
                }
            }
        }
        out.sort();
        out.dedup();
        out.retain(|&m| m != self);
        out
    }

    /// The number of [`adjacent`](Self::adjacent) steps between two labels (see the module
    /// docs): 0 for the same label, 1 for neighbours.
    pub fn edit_distance(self, other: Movement) -> u32 {
        self.0
            .iter()
            .zip(other.0)
            .map(|(&a, b)| {
                if a == b {
                    0
                } else if a * b < 0 && a != -b {
                    2
                } else {
                    1
                }
            })
            .sum()
    }
}

impl TryFrom<[i8; 3]> for Movement {
    type Error = String;
    fn try_from(levels: [i8; 3]) -> Result<Self, String> {
        Self::new(levels).ok_or_else(|| format!("invalid movement levels {levels:?}"))
    }
}

impl From<Movement> for [i8; 3] {
    fn from(m: Movement) -> Self {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::EnvMetadata;
    use proptest::prelude::*;

    fn axes() -> [AxisNames; 3] {
        EnvMetadata::default().axes
    }

    fn all_labels() -> Vec<Movement> {
        let r = -2i8..=2;
        r.clone()
            .flat_map(|x| r.clone().flat_map(move |y| (-2i8..=2).map(move |z| [x, y, z])))
            .filter_map(Movement::new)
            .collect()
    }

    #[test]
    fn phrases_follow_the_paper() {
        let a = axes();
        assert_eq!(Movement::between([0.0; 3], [0.0, 0.0, 0.2]).phrase(&a), "move up");
        assert_eq!(Movement::between([0.0; 3], [0.0, 0.1, -0.12]).phrase(&a), "move right and move down");
        assert_eq!(
            Movement::between([0.0; 3], [0.04, -0.05, -0.2]).phrase(&a),
            "slightly move front, slightly move left, and move down"
        );
        assert_eq!(Movement::between([0.0; 3], [0.005, 0.0, -0.009]).phrase(&a), "stay still");
        // Exactly half the largest is "slightly".
        assert_eq!(Movement::from_delta([0.1, 0.05, 0.0], 0.01).levels(), [2, 1, 0]);
    }

    #[test]
    fn parse_accepts_paraphrases() {
        let a = axes();
        let p = |s| Movement::parse(s, &a).map(Movement::levels);
        assert_eq!(p("Move right and down."), Some([0, 2, -2]));
        assert_eq!(p("move down and slightly right"), Some([0, 1, -2]));
        assert_eq!(p("move slightly left, and move up"), Some([0, -1, 2]));
        assert_eq!(p("slightly move up"), None, "only slight moves break the rule");
        assert_eq!(p("move up and move down"), None, "one axis named twice");
        assert_eq!(p("jump"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn there_are_99_labels_each_with_at_least_six_neighbours() {
        let labels = all_labels();
        assert_eq!(labels.len(), 5 * 5 * 5 - 3 * 3 * 3 + 1);
        for m in labels {
            let adj = m.adjacent();
            assert!(adj.len() >= 6, "{m:?} has {adj:?}");
            assert!(!adj.contains(&m));
            assert!(adj.iter().all(|n| { m.levels().iter().zip(n.levels()).filter(|(a, b)| *a != b).count() == 1 }));
        }
        assert_eq!(Movement::STILL.adjacent().len(), 6);
    }

    #[test]
    fn edit_distance_is_the_shortest_path_over_adjacent_labels() {
        let labels = all_labels();
        for &from in &labels {
            // Breadth-first search from `from` over `adjacent`.
            let mut dist = std::collections::BTreeMap::from([(from, 0u32)]);
            let mut frontier = vec![from];
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for m in frontier {
                    let d = dist[&m];
                    for n in m.adjacent() {
                        if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(n) {
                            e.insert(d + 1);
                            next.push(n);
                        }
                    }
                }
                frontier = next;
            }
            assert_eq!(dist.len(), labels.len(), "the graph is connected");
            for &to in &labels {
                assert_eq!(from.edit_distance(to), dist[&to], "{from:?} -> {to:?}");
                assert_eq!(from.edit_distance(to), to.edit_distance(from));
            }
        }
    }

    #[test]
    fn serde_rejects_invalid_levels() {
        assert_eq!(serde_json::to_string(&Movement::new([0, 1, -2]).unwrap()).unwrap(), "[0,1,-2]");
        assert!(serde_json::from_str::<Movement>("[0,1,1]").is_err());
        assert!(serde_json::from_str::<Movement>("[0,3,0]").is_err());
    }

    proptest! {
        #[test]
        fn label_rule_properties(d in proptest::array::uniform3(-0.5f64..0.5), scale in 1.0f64..10.0) {
            let m = Movement::from_delta(d, NEGLIGIBLE_M);
            prop_assert!(Movement::new(m.levels()).is_some());
            let neg = Movement::from_delta(d.map(|x| -x), NEGLIGIBLE_M);
            prop_assert_eq!(neg.levels(), m.levels().map(|l| -l));
            // Scaling up keeps every moving axis's direction and never makes it disappear.
            let big = Movement::from_delta(d.map(|x| x * scale), NEGLIGIBLE_M);
            for ((&l, &b), &da) in m.levels().iter().zip(&big.levels()).zip(&d) {
                if l != 0 {
                    prop_assert_eq!(b.signum(), l.signum());
                    prop_assert_eq!(l.signum() as f64, da.signum());
                }
                prop_assert_eq!(l == 0, da.abs() <= NEGLIGIBLE_M || m == Movement::STILL);
            }
        }

        #[test]
        fn phrase_parses_back(idx in 0usize..99) {
            let m = all_labels()[idx];
            prop_assert_eq!(Movement::parse(&m.phrase(&axes()), &axes()), Some(m));
        }
    }
}
