//! Blind baselines: how well multiple-choice questions can be answered without the image and
//! without a model, from what the prompt states alone. A question set is only worth training
//! on when these stay near chance (25% with four options).
//!
//! The rules ([`Baseline`]); each applies to the question types whose prompt gives it
//! something to work with:
//! * `nearest_current` (waypoint): the option nearest to the current position the prompt
//!   prints (the sample's `state.current`, rounded to the printed 3 decimals);
//! * `medoid` (every multiple-choice type): the option with the smallest summed distance to
//!   the other options: Euclidean for positions, [`Movement::edit_distance`] for movements;
//! * `nearest_workspace_centre` (positions): the option nearest to the middle of the
//!   episode's workspace box ([`EnvMetadata::workspace`]);
//! * `nearest_origin` (positions): the option nearest to the world origin the prompt prints,
//!   the table centre ([`EnvMetadata::origin`]);
//! * `majority_label` (every multiple-choice type): the most common answer label (`A`-`D`) of
//!   the training split for that question type (ties go to the earlier label).
//!
//! Beside the rules, `text_only_model` (every multiple-choice type) is a small network trained
//! on the training split's prompts without their images. It needs burn, so r1-bench computes it
//! (`r1_bench::text_only`) and `cargo xtask data` adds it to the card; [`BlindTally`] does not.
//!
//! A rule that ties between k options, the answer among them, earns 1/k: the expected score
//! of breaking ties at random. So `correct` is a real number.
//!
//! [`BlindTally`] accumulates one split sample by sample (the dataset writer streams);
//! [`blind_baselines`] does it all for samples in memory. Samples whose options cannot be
//! read (a position that is not `[x, y, z]`, a movement phrase the metadata's axis names do
//! not parse, an answer label that is not an option) are errors naming the sample.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::distractors::{distance, round3};
use crate::episode::EnvMetadata;
use crate::error::{DataError, Result};
use crate::movement::Movement;
use crate::qa::{Answer, QaSample, QaType};

/// A blind answering rule (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Baseline {
    NearestCurrent,
    Medoid,
    NearestWorkspaceCentre,
    NearestOrigin,
    MajorityLabel,
    TextOnlyModel,
}

impl Baseline {
    /// The fixed rules, which [`BlindTally`] scores.
    pub const RULES: [Baseline; 5] =
        [Self::NearestCurrent, Self::Medoid, Self::NearestWorkspaceCentre, Self::NearestOrigin, Self::MajorityLabel];

    /// Whether the rule can answer this question type from its prompt.
    pub fn applies_to(self, qa_type: QaType) -> bool {
        match self {
            Self::NearestCurrent => qa_type == QaType::Waypoint,
            Self::NearestWorkspaceCentre | Self::NearestOrigin => {
                matches!(qa_type, QaType::Waypoint | QaType::CurrentState)
            }
            Self::Medoid | Self::MajorityLabel | Self::TextOnlyModel => qa_type.is_multiple_choice(),
        }
    }
}

impl std::fmt::Display for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::names::fmt_name(self, f)
    }
}

/// One rule on one question type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Expected number of correct answers (ties share their credit, see the module docs).
    pub correct: f64,
    /// Number of questions.
    pub n: usize,
    /// `correct / n`.
    pub accuracy: f64,
}

impl Score {
    pub fn new(correct: f64, n: usize) -> Self {
        let accuracy = if n == 0 { 0.0 } else { correct / n as f64 };
        Self { correct, n, accuracy }
    }
}

/// Blind-baseline scores of one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlindBaselines {
    /// Per rule, per question type it applies to (types without questions are absent).
    pub scores: BTreeMap<Baseline, BTreeMap<QaType, Score>>,
    /// The training split's most common answer label per question type (what
    /// `majority_label` answers).
    pub majority_labels: BTreeMap<QaType, String>,
}

impl BlindBaselines {
    /// The highest accuracy of any rule on `qa_type`, if any applies.
    pub fn best(&self, qa_type: QaType) -> Option<(Baseline, Score)> {
        self.scores
            .iter()
            .filter_map(|(&b, per)| per.get(&qa_type).map(|&s| (b, s)))
            .max_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy))
    }

    /// A Markdown table: one row per rule, one column per question type, cells
    /// `accuracy% (correct/n)`; `-` where the rule does not apply.
    pub fn to_markdown(&self) -> String {
        let types: Vec<QaType> =
            QaType::ALL.into_iter().filter(|t| self.scores.values().any(|per| per.contains_key(t))).collect();
        let mut s = String::from("| blind baseline |");
        for t in &types {
            s += &format!(" {t} |");
        }
        s += "\n|---|";
        s += &"---|".repeat(types.len());
        s += "\n";
        for (baseline, per) in &self.scores {
            s += &format!("| {baseline} |");
            for t in &types {
                s += &match per.get(t) {
                    Some(sc) => format!(" {:.1}% ({:.1}/{}) |", 100.0 * sc.accuracy, sc.correct, sc.n),
                    None => " - |".to_string(),
                };
            }
            s += "\n";
        }
        s
    }
}

/// Reads an option printed as `[x, y, z]`.
pub fn parse_position(text: &str) -> Option<[f64; 3]> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let values: Vec<f64> = inner.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<_, _>>().ok()?;
    match values[..] {
        [x, y, z] if values.iter().all(|v| v.is_finite()) => Some([x, y, z]),
        _ => None,
    }
}

/// The credit of a rule that picks the option of least `cost`: `1/k` when the answer (index
/// `answer`) is among the `k` options tied for the least, 0 otherwise.
pub fn credit(costs: &[f64], answer: usize) -> f64 {
    let least = costs.iter().copied().fold(f64::INFINITY, f64::min);
    // Costs are sums of a few distances between printed (3-decimal) values: differences
    // below a nanometre are rounding noise, not a preference.
    let tied = |c: f64| (c - least).abs() <= 1e-9;
    match costs.get(answer) {
        Some(&c) if tied(c) => 1.0 / costs.iter().filter(|&&c| tied(c)).count() as f64,
        _ => 0.0,
    }
}

/// Per option, the summed distance to the other options.
pub fn medoid_costs<T: Copy>(options: &[T], dist: impl Fn(T, T) -> f64) -> Vec<f64> {
    options.iter().map(|&a| options.iter().map(|&b| dist(a, b)).sum()).collect()
}

/// Accumulates the blind baselines of one split (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlindTally {
    /// `(credit, questions)` per rule and type; `majority_label` is scored in `finish`.
    credit: BTreeMap<(Baseline, QaType), (f64, usize)>,
    /// Answer-label counts per type.
    labels: BTreeMap<QaType, BTreeMap<String, usize>>,
}

impl BlindTally {
    /// Scores one sample; open-ended samples are ignored. `metadata` is its episode's.
    pub fn add(&mut self, sample: &QaSample, metadata: &EnvMetadata) -> Result<()> {
        let qa_type = sample.qa_type;
        if !qa_type.is_multiple_choice() {
            return Ok(());
        }
        let bad = |message: String| DataError::Sample { id: sample.id.clone(), message };
        let (options, label, answer) = options_and_answer(sample)?;
        let mut scores: Vec<(Baseline, f64)> = Vec::new();
        if qa_type == QaType::Movement {
            let moves = options
                .values()
                .map(|t| {
                    Movement::parse(t, &metadata.axes).ok_or_else(|| bad(format!("option {t:?} is not a movement")))
                })
                .collect::<Result<Vec<_>>>()?;
            let costs = medoid_costs(&moves, |a, b| f64::from(a.edit_distance(b)));
            scores.push((Baseline::Medoid, credit(&costs, answer)));
        } else {
            let points = options
                .values()
                .map(|t| parse_position(t).ok_or_else(|| bad(format!("option {t:?} is not a position"))))
                .collect::<Result<Vec<_>>>()?;
            let nearest = |to: [f64; 3]| {
                let costs: Vec<f64> = points.iter().map(|&p| distance(p, to)).collect();
                credit(&costs, answer)
            };
            let ws = &metadata.workspace;
            let centre = std::array::from_fn(|a| (ws.min[a] + ws.max[a]) / 2.0);
            scores.push((Baseline::Medoid, credit(&medoid_costs(&points, distance), answer)));
            scores.push((Baseline::NearestWorkspaceCentre, nearest(centre)));
            scores.push((Baseline::NearestOrigin, nearest(metadata.origin)));
            if Baseline::NearestCurrent.applies_to(qa_type) {
                scores.push((Baseline::NearestCurrent, nearest(round3(sample.state.current))));
            }
        }
        for (baseline, c) in scores {
            let entry = self.credit.entry((baseline, qa_type)).or_default();
            entry.0 += c;
            entry.1 += 1;
        }
        *self.labels.entry(qa_type).or_default().entry(label.to_string()).or_default() += 1;
        Ok(())
    }

    /// The most common label per type (ties to the earlier label).
    fn majority_labels(&self) -> BTreeMap<QaType, String> {
        self.labels
            .iter()
            .filter_map(|(&t, counts)| {
                // `max_by_key` keeps the last of equal maxima: walk the labels backwards.
                let (label, _) = counts.iter().rev().max_by_key(|(_, n)| **n)?;
                Some((t, label.clone()))
            })
            .collect()
    }

    /// The scores of this split, with `majority_label` fitted on `train` (the training split's
    /// tally; the same tally when scoring the training split itself).
    pub fn finish(&self, train: &BlindTally) -> BlindBaselines {
        let mut scores: BTreeMap<Baseline, BTreeMap<QaType, Score>> = BTreeMap::new();
        for (&(baseline, t), &(c, n)) in &self.credit {
            scores.entry(baseline).or_default().insert(t, Score::new(c, n));
        }
        let majority_labels = train.majority_labels();
        for (t, counts) in &self.labels {
            if let Some(label) = majority_labels.get(t) {
                let n = counts.values().sum();
                let c = counts.get(label).copied().unwrap_or(0);
                scores.entry(Baseline::MajorityLabel).or_default().insert(*t, Score::new(c as f64, n));
            }
        }
        BlindBaselines { scores, majority_labels }
    }
}

/// A multiple-choice sample's options (by label), its answer's label and that label's index
/// among them; an error naming the sample when it has no options or its answer is not one.
pub fn options_and_answer(sample: &QaSample) -> Result<(&BTreeMap<String, String>, &str, usize)> {
    let bad = |message: String| DataError::Sample { id: sample.id.clone(), message };
    let options = sample.options.as_ref().ok_or_else(|| bad("a multiple-choice question without options".into()))?;
    let Answer::Label(label) = &sample.answer else {
        return Err(bad("a multiple-choice answer must be an option label".into()));
    };
    let answer =
        options.keys().position(|l| l == label).ok_or_else(|| bad(format!("the answer {label:?} is not an option")))?;
    Ok((options, label, answer))
}

/// The blind baselines of `split`, with `majority_label` fitted on `train`. `metadata` gives a
/// sample's episode metadata (workspace, origin, axis names).
pub fn blind_baselines<'m>(
    train: &[QaSample],
    split: &[QaSample],
    metadata: impl Fn(&QaSample) -> &'m EnvMetadata,
) -> Result<BlindBaselines> {
    let tally = |samples: &[QaSample]| -> Result<BlindTally> {
        let mut t = BlindTally::default();
        for s in samples {
            t.add(s, metadata(s))?;
        }
        Ok(t)
    };
    Ok(tally(split)?.finish(&tally(train)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::{GroundTruth, Message};
    use proptest::prelude::*;

    fn sample(qa_type: QaType, options: [&str; 4], answer: &str, current: [f64; 3]) -> QaSample {
        QaSample {
            id: format!("t/v0/e0/f0/{qa_type}"),
            task: "t".into(),
            variation: 0,
            episode: 0,
            frame: 0,
            keypoint_frame: 1,
            qa_type,
            messages: vec![Message::text("user", "q")],
            options: Some(
                ["A", "B", "C", "D"].iter().zip(options).map(|(l, o)| (l.to_string(), o.to_string())).collect(),
            ),
            answer: Answer::Label(answer.into()),
            state: GroundTruth {
                current,
                target: current,
                movement: "stay still".into(),
                gripper_open: true,
                target_gripper_open: true,
            },
            sft: None,
        }
    }

    #[test]
    fn each_rule_scores_what_it_should() {
        let meta = EnvMetadata::default();
        // B is nearest to the current position, C to the workspace centre [0.2, 0, 1.1], D to
        // the origin [0.25, 0, 0.752]; A is far from everything.
        let opts = ["[-0.3, 0.5, 1.6]", "[0.5, 0.4, 1.4]", "[0.2, 0.0, 1.05]", "[0.25, 0.0, 0.8]"];
        let current = [0.5, 0.41, 1.4];
        let metadata = |_: &QaSample| &meta;
        let for_answer =
            |l: &str| blind_baselines(&[], &[sample(QaType::Waypoint, opts, l, current)], metadata).unwrap();
        let acc = |b: &BlindBaselines, r: Baseline| b.scores[&r][&QaType::Waypoint].accuracy;
        assert_eq!(acc(&for_answer("B"), Baseline::NearestCurrent), 1.0);
        assert_eq!(acc(&for_answer("A"), Baseline::NearestCurrent), 0.0);
        assert_eq!(acc(&for_answer("C"), Baseline::NearestWorkspaceCentre), 1.0);
        assert_eq!(acc(&for_answer("D"), Baseline::NearestOrigin), 1.0);
        // C lies between the others.
        assert_eq!(acc(&for_answer("C"), Baseline::Medoid), 1.0);
        // No training samples: no majority label to score.
        assert!(!for_answer("C").scores.contains_key(&Baseline::MajorityLabel));
    }

    #[test]
    fn majority_label_is_fitted_on_train_and_rules_apply_per_type() {
        let meta = EnvMetadata::default();
        let opts = ["[0.0, 0.0, 1.0]", "[0.1, 0.0, 1.0]", "[0.2, 0.0, 1.0]", "[0.3, 0.0, 1.0]"];
        let train: Vec<QaSample> =
            ["C", "C", "A", "B"].iter().map(|l| sample(QaType::CurrentState, opts, l, [0.0; 3])).collect();
        let test: Vec<QaSample> =
            ["C", "D", "D", "A"].iter().map(|l| sample(QaType::CurrentState, opts, l, [0.0; 3])).collect();
        let b = blind_baselines(&train, &test, |_| &meta).unwrap();
        assert_eq!(b.majority_labels[&QaType::CurrentState], "C");
        let s = b.scores[&Baseline::MajorityLabel][&QaType::CurrentState];
        assert_eq!((s.correct, s.n, s.accuracy), (1.0, 4, 0.25));
        // The current-state prompt does not print the current position.
        assert!(!b.scores.contains_key(&Baseline::NearestCurrent));
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["scores"]["majority_label"]["current_state"]["n"], 4);
        let back: BlindBaselines = serde_json::from_value(json).unwrap();
        assert_eq!(back, b);
        let md = b.to_markdown();
        assert!(md.contains("| majority_label | 25.0% (1.0/4) |"), "{md}");
    }

    #[test]
    fn movement_medoid_uses_edit_distance_and_shares_ties() {
        let meta = EnvMetadata::default();
        // "move down" is one edit from each of the others, which are two apart: the medoid.
        let star = ["move down", "move left and move down", "move right and move down", "move front and move down"];
        let b = blind_baselines(&[], &[sample(QaType::Movement, star, "A", [0.0; 3])], |_| &meta).unwrap();
        assert_eq!(b.scores[&Baseline::Medoid][&QaType::Movement].correct, 1.0);
        // A path of four labels, each one edit from the next: the two inner ones tie.
        let path = ["move up", "move front and move up", "move front", "move back"];
        let b = blind_baselines(&[], &[sample(QaType::Movement, path, "B", [0.0; 3])], |_| &meta).unwrap();
        assert_eq!(b.scores[&Baseline::Medoid][&QaType::Movement].correct, 0.5);
        assert_eq!(b.scores.len(), 1, "only the medoid applies without training data");
    }

    #[test]
    fn unreadable_samples_are_errors_naming_them() {
        let meta = EnvMetadata::default();
        let bad_pos = sample(QaType::Waypoint, ["[0, 0]", "[0, 0, 1]", "[1, 0, 1]", "[2, 0, 1]"], "A", [0.0; 3]);
        let err = blind_baselines(&[], &[bad_pos], |_| &meta).unwrap_err().to_string();
        assert!(err.contains("t/v0/e0/f0/waypoint") && err.contains("[0, 0]"), "{err}");
        let bad_move = sample(QaType::Movement, ["jump", "move up", "move down", "move left"], "A", [0.0; 3]);
        assert!(blind_baselines(&[], &[bad_move], |_| &meta).is_err());
        let mut bad_label =
            sample(QaType::Movement, ["move up", "move down", "move left", "move right"], "E", [0.0; 3]);
        let err = blind_baselines(&[], std::slice::from_ref(&bad_label), |_| &meta).unwrap_err().to_string();
        assert!(err.contains("\"E\" is not an option"), "{err}");
        bad_label.answer = Answer::Position([0.0; 3]);
        assert!(blind_baselines(&[], &[bad_label], |_| &meta).is_err());
    }

    #[test]
    fn positions_parse_as_printed() {
        assert_eq!(parse_position("[0.254, -0.197, 0.894]"), Some([0.254, -0.197, 0.894]));
        assert_eq!(parse_position(" [1,2,3] "), Some([1.0, 2.0, 3.0]));
        for bad in ["", "[1, 2]", "[1, 2, 3, 4]", "1, 2, 3", "[a, 2, 3]", "[NaN, 1, 1]"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn credit_is_one_over_the_ties_and_sums_to_one(costs in proptest::collection::vec(0u8..4, 1..6)) {
            let costs: Vec<f64> = costs.into_iter().map(f64::from).collect();
            let credits: Vec<f64> = (0..costs.len()).map(|i| credit(&costs, i)).collect();
            prop_assert!((credits.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let least = costs.iter().copied().fold(f64::INFINITY, f64::min);
            for (c, k) in costs.iter().zip(&credits) {
                prop_assert_eq!(*k > 0.0, *c == least);
            }
            prop_assert_eq!(credit(&costs, costs.len()), 0.0);
        }

        #[test]
        fn medoid_cost_is_symmetric_in_the_order_of_options(
            pts in proptest::collection::vec(proptest::array::uniform3(-1.0f64..1.0), 2..6),
        ) {
            let costs = medoid_costs(&pts, distance);
            let mut rev = pts.clone();
            rev.reverse();
            let mut rev_costs = medoid_costs(&rev, distance);
            rev_costs.reverse();
            for (a, b) in costs.iter().zip(&rev_costs) {
                prop_assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
