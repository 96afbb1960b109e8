//! The deterministic rule-based scorer: 0 to 3 on the paper's rubric (0 contradicts the
//! reference, 1 partially matches with significant differences, 2 mostly matches, 3 is
//! equivalent or more detailed), with one published rule per category.
//!
//! Text is compared as *content words*: lower-cased alphanumeric runs minus a short list of
//! function words ([`content_words`]). Two texts are compared by the F1 of their content-word
//! sets, `F1 = 2|A∩B| / (|A| + |B|)` (0 when either is empty).
//!
//! * **Movement.** Answer and reference are both read as per-axis claims by r1-reward's
//!   movement parser ([`parse_movement`]: forward/front, backward/back, left, right, up, down,
//!   each optionally "slightly"). The score is [`score_axes`] with qualifiers compared.
//! * **Spatial, relation questions** ("where is A relative to B"): the answer's per-axis
//!   claims ([`parse_relation`]: in front of, behind, left, right, above/on top, below/under)
//!   against the true signs of `A - B`, [`score_axes`] without qualifiers.
//! * **Spatial, object questions** ("which object is ..."): [`score_object`].
//! * **High-level action**: [`score_subtask`].
//! * **Planning**: [`score_plan`].
//!
//! An empty answer scores 0 in every category. An answer that lists everything (every
//! direction, every object, every subtask) cannot score above 1: directions conflict on some
//! axis (0), several objects are named (1), the subtask is not the uniquely best match (1) and
//! a plan's extra steps lower its precision.

use crate::question::Truth;

/// Words that carry no content for matching subtasks and plan steps.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "to", "of", "and", "then", "next", "is", "it", "its", "this", "that", "should", "be", "will",
    "would", "robot", "subtask", "step", "steps", "now", "first", "i", "we", "you", "answer", "please", "must",
    "needs", "need", "has", "have", "s", "by", "with", "from", "for", "so", "as", "at", "which", "there", "here",
];

/// Content words of `text` in order of appearance: lower-cased alphanumeric runs that are not
/// [`STOP_WORDS`].
pub fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// F1 of the content-word *sets* of two texts: `2|A∩B| / (|A| + |B|)`, in [0, 1]; 0 when
/// either text has no content word.
pub fn word_f1(a: &str, b: &str) -> f64 {
    let set = |t: &str| content_words(t).into_iter().collect::<std::collections::BTreeSet<_>>();
    let (a, b) = (set(a), set(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    2.0 * a.intersection(&b).count() as f64 / (a.len() + b.len()) as f64
}

/// What a text claims about one world axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisClaim {
    /// Nothing said.
    None,
    /// One direction: `sign` is +1 or -1 (x: front/back, y: right/left, z: up/down);
    /// `slight` when qualified by "slightly".
    Dir { sign: i8, slight: bool },
    /// Both directions named: the text contradicts itself on this axis.
    Conflict,
}

/// Per-axis claims for x, y, z.
pub type Axes = [AxisClaim; 3];

/// Relation words and the axis and sign they name, as seen from the front camera.
/// Multi-word phrases reduce to one of these tokens ("in front of" to "front", "on top of"
/// to "top").
fn relation_word(word: &str) -> Option<(usize, i8)> {
    Some(match word {
        "front" | "forward" | "closer" | "nearer" => (0, 1),
        "back" | "behind" | "farther" | "further" => (0, -1),
        "right" => (1, 1),
        "left" => (1, -1),
        "up" | "above" | "over" | "top" | "higher" => (2, 1),
        "down" | "below" | "under" | "beneath" | "underneath" | "lower" => (2, -1),
        _ => return None,
    })
}

/// Reads per-axis relation claims ("in front of and to the left of") from free text: a
/// relation word sets its axis; naming both directions of an axis is a
/// [`AxisClaim::Conflict`]. Relations carry no "slightly". Negation is not understood ("not
/// left" claims left), which errs toward penalising hedged answers.
pub fn parse_relation(text: &str) -> Axes {
    let mut axes = [AxisClaim::None; 3];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if let Some((axis, sign)) = relation_word(&word.to_lowercase()) {
            axes[axis] = match axes[axis] {
                AxisClaim::None => AxisClaim::Dir { sign, slight: false },
                AxisClaim::Dir { sign: s, .. } if s == sign => axes[axis],
                _ => AxisClaim::Conflict,
            };
        }
    }
    axes
}

/// Reads a movement answer with r1-reward's parser (the one the movement reward uses, so the
/// bench and the reward read directions identically): no direction word gives no claim, a
/// contradiction on an axis gives [`AxisClaim::Conflict`] there.
pub fn parse_movement(text: &str) -> Axes {
    use r1_reward::{MovementError, parse_movement};
    match parse_movement(text) {
        Ok(m) => m.steps.map(|s| match s {
            Some(s) => AxisClaim::Dir { sign: if s.positive { 1 } else { -1 }, slight: s.slight },
            None => AxisClaim::None,
        }),
        Err(MovementError::Contradiction(axis)) => {
            let mut axes = [AxisClaim::None; 3];
            axes[axis as usize] = AxisClaim::Conflict;
            axes
        }
        Err(_) => [AxisClaim::None; 3],
    }
}

/// Scores per-axis claims against the reference's.
///
/// * 0: the answer claims nothing, contradicts itself on an axis, names the opposite
///   direction of a reference axis, or gets no reference axis right.
/// * 3: the same axes with the same signs (and, when `qualifiers`, the same "slightly"s).
/// * 2: every unqualified reference axis is right; the differences are only on "slightly"
///   axes (missing, extra, or qualified differently).
/// * 1: otherwise (some axes right, an important one missing or an unqualified one extra).
pub fn score_axes(answer: &Axes, reference: &Axes, qualifiers: bool) -> u8 {
    let dir = |c: &AxisClaim| match *c {
        AxisClaim::Dir { sign, slight } => Some((sign, slight && qualifiers)),
        _ => None,
    };
    if answer.iter().all(|c| *c == AxisClaim::None) || answer.contains(&AxisClaim::Conflict) {
        return 0;
    }
    let (mut right, mut exact, mut major_error) = (0, true, false);
    for (a, r) in answer.iter().zip(reference) {
        match (dir(a), dir(r)) {
            (Some((sa, qa)), Some((sr, qr))) if sa == sr => {
                right += 1;
                exact &= qa == qr;
            }
            (Some(_), Some(_)) => return 0,
            (None, None) => {}
            // A missing reference axis, or an extra answer axis: minor when slight.
            (None, Some((_, q))) | (Some((_, q)), None) => {
                exact = false;
                major_error |= !q;
            }
        }
    }
    match (right, exact, major_error) {
        (0, _, _) => 0,
        (_, true, _) => 3,
        (_, false, false) => 2,
        _ => 1,
    }
}

/// Scores a "which object" answer. Objects are named by their scene name (e.g. "red cup");
/// an object counts as named when all its name's words appear in the answer, unless those
/// words are part of a longer named object's name ("phone base" names the base, not the
/// phone).
///
/// * 3: the answer names the right object and no other;
/// * 1: it names the right object among others;
/// * 0: it does not name the right object.
///
/// No 2: an answer either picks the object or it does not.
pub fn score_object(answer: &str, truth: &str, objects: &[String]) -> u8 {
    use std::collections::BTreeSet;
    let words: BTreeSet<String> = content_words(answer).into_iter().collect();
    let named: Vec<(&str, BTreeSet<String>)> = objects
        .iter()
        .map(|o| (o.as_str(), content_words(o).into_iter().collect::<BTreeSet<_>>()))
        .filter(|(_, w)| !w.is_empty() && w.is_subset(&words))
        .collect();
    let named: Vec<&str> = named
        .iter()
        .filter(|(_, w)| !named.iter().any(|(_, longer)| w.len() < longer.len() && w.is_subset(longer)))
        .map(|(name, _)| *name)
        .collect();
    if !named.contains(&truth) {
        return 0;
    }
    if named.iter().all(|n| *n == truth) { 3 } else { 1 }
}

/// Scores a next-subtask answer against the plan. The answer is compared with every plan
/// step by [`word_f1`]; `f` is its F1 with the true next step.
///
/// * 0: `f` is 0, or another step matches strictly better (the answer names another
///   subtask);
/// * 1: the true step ties with another one, or `f < 1/3`;
/// * 2: the true step is the unique best match with `1/3 <= f < 2/3`;
/// * 3: the unique best match with `f >= 2/3`.
pub fn score_subtask(answer: &str, plan: &[String], next: usize) -> u8 {
    let Some(truth) = plan.get(next) else { return 0 };
    let f = word_f1(answer, truth);
    let best_other = plan
        .iter()
        .enumerate()
        .filter(|&(i, s)| i != next && s != truth)
        .map(|(_, s)| word_f1(answer, s))
        .fold(0.0, f64::max);
    if f == 0.0 || best_other > f {
        0
    } else if best_other == f || f < 1.0 / 3.0 {
        1
    } else if f < 2.0 / 3.0 {
        2
    } else {
        3
    }
}

/// Splits a plan answer into steps: one per non-empty line, with leading enumerators
/// ("1.", "2)", "-", "*", "Step 3:") stripped; a single line is split at ";" and at
/// ", then" / " then ".
pub fn split_steps(answer: &str) -> Vec<String> {
    let strip = |l: &str| -> String {
        let l = l.trim().trim_start_matches(['-', '*', '•']).trim_start();
        let l = l.strip_prefix("Step ").or_else(|| l.strip_prefix("step ")).unwrap_or(l);
        let digits = l.len() - l.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let l = if digits > 0 { l[digits..].trim_start_matches(['.', ')', ':']) } else { l };
        l.trim().to_string()
    };
    let lines: Vec<String> = answer.lines().map(strip).filter(|l| !l.is_empty()).collect();
    if lines.len() != 1 {
        return lines;
    }
    lines[0].replace(", then ", ";").replace(" then ", ";").split(';').map(strip).filter(|l| !l.is_empty()).collect()
}

/// Scores a plan answer against the reference steps by *ordered step overlap*: an answer
/// step matches a reference step when that step is (one of) its best by [`word_f1`] and the
/// F1 is at least 1/2 (best, because steps of one task share their object's name: "grasp
/// the cup" must not match "lift the cup"), and `L` is the length of the longest common
/// subsequence of the two step lists under that match (steps in the same order). With `P = L / answer steps`, `R = L / reference steps` and
/// `F = 2PR / (P + R)`:
///
/// * 0: `L = 0`; 1: `F < 0.5`; 2: `0.5 <= F < 0.85`; 3: `F >= 0.85`.
pub fn score_plan(answer: &str, reference: &[String]) -> u8 {
    let steps = split_steps(answer);
    if steps.is_empty() || reference.is_empty() {
        return 0;
    }
    // lcs[i][j]: the LCS of steps[..i] and reference[..j].
    let mut lcs = vec![vec![0usize; reference.len() + 1]; steps.len() + 1];
    for (i, s) in steps.iter().enumerate() {
        let f1: Vec<f64> = reference.iter().map(|r| word_f1(s, r)).collect();
        let best = f1.iter().copied().fold(0.0, f64::max);
        for j in 0..reference.len() {
            let matched = best >= 0.5 && f1[j] == best;
            lcs[i + 1][j + 1] = if matched { lcs[i][j] + 1 } else { lcs[i][j + 1].max(lcs[i + 1][j]) };
        }
    }
    let l = lcs[steps.len()][reference.len()];
    if l == 0 {
        return 0;
    }
    let (p, r) = (l as f64 / steps.len() as f64, l as f64 / reference.len() as f64);
    let f = 2.0 * p * r / (p + r);
    if f >= 0.85 {
        3
    } else if f >= 0.5 {
        2
    } else {
        1
    }
}

/// Whether `completion` is a reasoning model's reply (it wrote an `<answer>` tag), which is
/// judged on its answer block alone; any other reply (the SFT baselines') is judged whole.
pub fn is_reasoning_reply(completion: &str) -> bool {
    completion.contains("<answer>")
}

/// The part of a completion that is judged: for a reasoning reply ([`is_reasoning_reply`]) the
/// content of its one answer block by r1-reward's rule, or nothing when that block is missing
/// or ambiguous; otherwise the whole completion. Trimmed.
pub fn judged_text(completion: &str) -> &str {
    if is_reasoning_reply(completion) {
        r1_reward::extract_answer(completion).unwrap_or("").trim()
    } else {
        completion.trim()
    }
}

/// Scores an answer (already reduced to the `<answer>` content for reasoning models) against
/// a question's ground truth, 0 to 3, by the rule of its category (see the module docs).
pub fn score(answer: &str, truth: &Truth) -> u8 {
    match truth {
        Truth::Planning { steps } => score_plan(answer, steps),
        Truth::HighLevelAction { plan, next } => score_subtask(answer, plan, *next),
        Truth::Movement { phrase } => score_axes(&parse_movement(answer), &parse_movement(phrase), true),
        Truth::SpatialRelation { subject, object, relation } => {
            // Object names may hold relation words ("top drawer"): they are not claims.
            let mut text = answer.to_lowercase();
            for name in [subject, object] {
                text = text.replace(&name.to_lowercase(), " ");
            }
            let reference = relation
                .map(|s| if s == 0 { AxisClaim::None } else { AxisClaim::Dir { sign: s.signum(), slight: false } });
            score_axes(&parse_relation(&text), &reference, false)
        }
        Truth::SpatialObject { answer: truth, objects } => score_object(answer, truth, objects),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn movement(answer: &str, reference: &str) -> u8 {
        score(answer, &Truth::Movement { phrase: reference.into() })
    }

    #[test]
    fn parses_directions_with_qualifiers_and_conflicts() {
        use AxisClaim::*;
        assert_eq!(
            parse_movement("slightly move front, slightly move left, and move down"),
            [Dir { sign: 1, slight: true }, Dir { sign: -1, slight: true }, Dir { sign: -1, slight: false }]
        );
        assert_eq!(parse_movement("up and down"), [None, None, Conflict]);
        assert_eq!(parse_movement(""), [None; 3]);
        assert_eq!(
            parse_relation("The cup is in front of and above the box"),
            [Dir { sign: 1, slight: false }, None, Dir { sign: 1, slight: false }]
        );
        assert_eq!(parse_relation("left of it, or maybe right"), [None, Conflict, None]);
    }

    #[test]
    fn movement_rubric() {
        let r = "move down and slightly right";
        assert_eq!(movement("Move down and slightly right.", r), 3);
        assert_eq!(movement("slightly right, then down", r), 3);
        assert_eq!(movement("Move down and right", r), 2, "qualifier differs");
        assert_eq!(movement("Move down", r), 2, "slight axis missing");
        assert_eq!(movement("Move right", r), 1, "main axis missing");
        assert_eq!(movement("Move down, right and forward", r), 1, "unqualified extra axis");
        assert_eq!(movement("Move up and slightly right", r), 0, "opposite direction");
        assert_eq!(movement("Move forward", r), 0, "nothing right");
        assert_eq!(movement("", r), 0, "empty");
        assert_eq!(movement("I cannot tell.", r), 0, "no direction");
        assert_eq!(movement("move up, down, left, right, forward and backward", r), 0, "everything listed");
    }

    #[test]
    fn spatial_relation_rubric() {
        let truth =
            Truth::SpatialRelation { subject: "red cup".into(), object: "blue box".into(), relation: [1, -1, 0] };
        assert_eq!(score("The red cup is in front of the blue box and to its left.", &truth), 3);
        assert_eq!(score("To the left of it.", &truth), 1, "an unqualified axis is missing");
        assert_eq!(score("Left, in front, and above.", &truth), 1, "an extra unqualified axis");
        assert_eq!(score("It is behind the blue box.", &truth), 0);
        assert_eq!(score("It is above, below, left, right, in front of and behind it.", &truth), 0);
        assert_eq!(score("", &truth), 0);
        let named =
            Truth::SpatialRelation { subject: "top drawer".into(), object: "blue box".into(), relation: [0, 1, 0] };
        assert_eq!(score("The top drawer is to the right of the blue box.", &named), 3, "names are not claims");
    }

    #[test]
    fn spatial_object_rubric() {
        let objects = s(&["red cup", "blue box", "green plate"]);
        let truth = Truth::SpatialObject { answer: "blue box".into(), objects };
        assert_eq!(score("The blue box.", &truth), 3);
        assert_eq!(score("the box that is blue", &truth), 3, "word order is free");
        assert_eq!(score("The red cup.", &truth), 0);
        assert_eq!(score("The box.", &truth), 0, "the colour is part of the name");
        assert_eq!(score("The red cup, the blue box or the green plate.", &truth), 1, "everything listed");
        assert_eq!(score("", &truth), 0);
        let nested =
            |answer: &str| Truth::SpatialObject { answer: answer.into(), objects: s(&["phone", "phone base"]) };
        assert_eq!(score("The phone base.", &nested("phone base")), 3, "the longer name wins");
        assert_eq!(score("The phone base.", &nested("phone")), 0);
        assert_eq!(score("The phone.", &nested("phone")), 3);
    }

    #[test]
    fn subtask_rubric() {
        let plan = s(&["reach the lid", "grasp the lid", "lift the lid", "place the lid on the table"]);
        let truth = Truth::HighLevelAction { plan: plan.clone(), next: 1 };
        assert_eq!(score("Grasp the lid.", &truth), 3);
        assert_eq!(
            score("The next subtask is to grasp the red lid firmly with both fingers.", &truth),
            2,
            "extra words lower F1"
        );
        assert_eq!(score("Lift the lid.", &truth), 0, "another subtask");
        assert_eq!(score("The lid.", &truth), 1, "ties with every step");
        assert!(
            score("reach the lid, grasp the lid, lift the lid, place the lid on the table", &truth) <= 1,
            "everything listed"
        );
        assert_eq!(score("", &truth), 0);
        assert_eq!(score("Open the drawer.", &truth), 0);
    }

    #[test]
    fn plan_rubric() {
        let steps = s(&["reach the cup", "grasp the cup", "lift the cup"]);
        let truth = Truth::Planning { steps: steps.clone() };
        assert_eq!(score("1. Reach the cup\n2. Grasp the cup\n3. Lift the cup", &truth), 3);
        assert_eq!(score("reach the cup, then grasp the cup, then lift the cup", &truth), 3);
        assert_eq!(score("1. Reach the cup\n2. Lift the cup", &truth), 2, "one step missing: F = 0.8");
        assert_eq!(score("1. Lift the cup\n2. Grasp the cup\n3. Reach the cup", &truth), 1, "reversed order");
        assert_eq!(score("1. Open the drawer\n2. Close the drawer", &truth), 0);
        assert_eq!(score("", &truth), 0);
        let everything = "1. reach the cup\n2. grasp the cup\n3. lift the cup\n4. push the button\n5. open the drawer\n\
                          6. stack the block\n7. slide the block\n8. place the phone\n9. grasp the lid\n10. lift the lid";
        assert!(score(everything, &truth) <= 1, "everything listed");
        let repeated = s(&["move above the cup", "grasp the cup", "move above the cup"]);
        assert_eq!(
            score_plan("1. move above the cup\n2. grasp the cup\n3. move above the cup", &repeated),
            3,
            "repeated steps"
        );
    }

    #[test]
    fn judges_the_answer_block_of_reasoning_models() {
        assert_eq!(judged_text("<think>up?</think> <answer> move down </answer>"), "move down");
        assert_eq!(judged_text("<answer>a</answer><answer>b</answer>"), "", "ambiguous");
        assert_eq!(judged_text("  Move down.\n"), "Move down.");
    }

    #[test]
    fn splits_enumerated_steps() {
        assert_eq!(split_steps("1. a b\n 2) c d \n- e\nStep 4: f"), s(&["a b", "c d", "e", "f"]));
        assert_eq!(split_steps("grasp it; lift it"), s(&["grasp it", "lift it"]));
    }

    proptest! {
        #[test]
        fn scores_are_in_range_and_never_panic(answer in "\\PC{0,200}", phrase in "[a-z ,]{0,40}") {
            let truths = [
                Truth::Movement { phrase: phrase.clone() },
                Truth::Planning { steps: vec![phrase.clone(), "grasp the cup".into()] },
                Truth::HighLevelAction { plan: vec![phrase.clone(), "lift".into()], next: 0 },
                Truth::SpatialRelation { subject: "a".into(), object: "b".into(), relation: [1, 0, -1] },
                Truth::SpatialObject { answer: "red cup".into(), objects: vec!["red cup".into(), phrase] },
            ];
            for t in &truths {
                prop_assert!(score(&answer, t) <= 3);
            }
        }

        #[test]
        fn a_reference_scores_3_against_itself(axes in proptest::array::uniform3(0u8..5)) {
            // Build a movement phrase from per-axis codes: 0 none, 1/2 full -/+, 3/4 slight -/+.
            let names = [["back", "front"], ["left", "right"], ["down", "up"]];
            let parts: Vec<String> = axes.iter().zip(names).filter(|(c, _)| **c != 0).map(|(&c, n)| {
                let word = n[usize::from(c % 2 == 0)];
                if c >= 3 { format!("slightly move {word}") } else { format!("move {word}") }
            }).collect();
            let phrase = parts.join(" and ");
            let expected = if parts.is_empty() { 0 } else { 3 };
            prop_assert_eq!(movement(&phrase, &phrase), expected);
        }

        #[test]
        fn f1_is_symmetric_and_bounded(a in "[a-z ]{0,30}", b in "[a-z ]{0,30}") {
            let (x, y) = (word_f1(&a, &b), word_f1(&b, &a));
            prop_assert!((x - y).abs() < 1e-12);
            prop_assert!((0.0..=1.0).contains(&x));
        }
    }
}
