//! The properties issue 5 asks for, over generated inputs: ranges for any input (arbitrary
//! Unicode, megabytes), whitespace invariance of the format, no pay-out for naming all or no
//! options, monotone position reward that is 1 only at the target, wrapped completions losing
//! their format reward, and a many-case fuzz of the parser against independent oracles.

use std::collections::BTreeMap;

use proptest::prelude::*;
use r1_data::{Answer, QaSample, QaType};
use r1_reward::{
    FormatMode, PositionMetric, RewardConfig, RewardFn, Rewards, Weights, choice_reward, extract_answer,
    is_well_formatted, parse_position, position_reward,
};

const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];
const MODES: [FormatMode; 2] = [FormatMode::Strict, FormatMode::Paper];
const METRICS: [PositionMetric; 3] = [PositionMetric::L1, PositionMetric::L2, PositionMetric::PerAxis];

fn labelled(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|&(l, t)| (l.to_string(), t.to_string())).collect()
}

/// A question as (qa_type, options, answer).
type Question = (QaType, Option<BTreeMap<String, String>>, Answer);

/// One question of each kind the reward function scores.
fn questions() -> Vec<Question> {
    let positions = labelled(&[
        ("A", "[0.1, 0.2, 0.3]"),
        ("B", "[0.4, -0.2, 0.9]"),
        ("C", "[0.0, 0.0, 1.0]"),
        ("D", "[-0.3, 0.2, 0.8]"),
    ]);
    let moves =
        labelled(&[("A", "move up"), ("B", "move down and slightly left"), ("C", "move left"), ("D", "move forward")]);
    vec![
        (QaType::Waypoint, Some(positions.clone()), Answer::Label("B".into())),
        (QaType::CurrentState, Some(positions), Answer::Label("A".into())),
        (QaType::Movement, Some(moves), Answer::Label("B".into())),
        (QaType::WaypointOpen, None, Answer::Position([0.4, -0.2, 0.9])),
        (QaType::Movement, None, Answer::Movement("move down and slightly left".into())),
    ]
}

/// Reward functions over every mode and metric, with unequal weights so that a wrong total shows.
fn reward_fns() -> Vec<RewardFn> {
    let weights: Weights = "format=0.25,answer=2".parse().unwrap();
    MODES
        .into_iter()
        .flat_map(|format| METRICS.map(|position| RewardFn::new(RewardConfig { format, position, weights })))
        .collect()
}

fn assert_in_range(r: &Rewards, weights: &Weights) {
    assert!(r.format() == 0.0 || r.format() == 1.0, "format {}", r.format());
    assert!((0.0..=1.0).contains(&r.answer()), "answer {}", r.answer());
    let expected: f64 = r.iter().map(|(c, v)| weights.get(c) * v).sum();
    assert_eq!(r.total(), expected);
}

/// Scores `completion` against every question under every reward function, checking ranges.
fn check_every_score(completion: &str) {
    for f in reward_fns() {
        for (qa_type, options, answer) in questions() {
            let r = f.score_parts(completion, qa_type, options.as_ref(), &answer).expect("the questions are valid");
            assert_in_range(&r, &f.config().weights);
        }
    }
}

/// Text rich in the syntax the parsers look for, so that generated inputs reach every branch.
fn syntax_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(TAGS.to_vec()).prop_map(str::to_string),
        4 => prop::sample::select(vec![
            "[[", "]]", "[", "]", ",", ", ", ".", "(", ")", "A", "b", "C", "E", " ", "\n", "\u{3000}", "slightly",
            "up", "down", "left", "right", "front", "back", "move ", "é", "[[B]]", "[0.4, -0.2, 0.9]",
        ])
        .prop_map(str::to_string),
        2 => "[-+]?[0-9]{0,3}(\\.[0-9]{0,3})?([eE][-+]?[0-9]{1,3})?",
        1 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// The canonical completion with each of its parts replaced, now and then, by [`syntax_text`]:
/// inputs near the format boundary, where the format rules and the extraction differ.
fn near_format() -> impl Strategy<Value = String> {
    let slot = |canonical: &'static str| prop_oneof![3 => Just(canonical.to_string()), 1 => syntax_text()];
    (
        (slot(""), slot("<think>"), syntax_text(), slot("</think>"), slot(" \n")),
        (slot("<answer>"), syntax_text(), slot("</answer>"), slot("\n")),
    )
        .prop_map(|((a, b, c, d, e), (f, g, h, i))| [a, b, c, d, e, f, g, h, i].concat())
}

/// Arbitrary text with no `<`, so that it cannot hold or complete a tag.
fn plain_text() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('<', "‹"))
}

/// `<think>{think}</think>{gap}<answer>{answer}</answer>` with whitespace around each tag.
fn canonical(think: &str, answer: &str, ws: &[String; 6]) -> String {
    format!("{}<think>{think}</think>{}{}<answer>{answer}</answer>{}", ws[0], ws[1], ws[2], ws[3])
}

fn whitespace() -> impl Strategy<Value = String> {
    "[ \t\r\n\u{a0}\u{2003}\u{3000}]{0,4}"
}

fn six_whitespace() -> impl Strategy<Value = [String; 6]> {
    [whitespace(), whitespace(), whitespace(), whitespace(), whitespace(), whitespace()]
}

/// The paper's regex `<think>.*?</think>\s*<answer>.*?</answer>` as a backtracking matcher
/// over its parts, full match on the trimmed text: the oracle for the paper format.
fn paper_oracle(text: &str) -> bool {
    enum Part {
        Lit(&'static str),
        Any,
        Space,
    }
    const PATTERN: [Part; 7] = [
        Part::Lit("<think>"),
        Part::Any,
        Part::Lit("</think>"),
        Part::Space,
        Part::Lit("<answer>"),
        Part::Any,
        Part::Lit("</answer>"),
    ];
    fn matches(chars: &[char], parts: &[Part]) -> bool {
        match parts.split_first() {
            None => chars.is_empty(),
            Some((Part::Lit(lit), rest)) => {
                let lit: Vec<char> = lit.chars().collect();
                chars.starts_with(&lit) && matches(&chars[lit.len()..], rest)
            }
            Some((Part::Any, rest)) => (0..=chars.len()).any(|k| matches(&chars[k..], rest)),
            Some((Part::Space, rest)) => (0..=chars.len())
                .take_while(|&k| chars[..k].iter().all(|c| c.is_whitespace()))
                .any(|k| matches(&chars[k..], rest)),
        }
    }
    let chars: Vec<char> = text.trim().chars().collect();
    matches(&chars, &PATTERN)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_component_is_in_range_for_any_text(text in prop_oneof![any::<String>(), syntax_text()]) {
        check_every_score(&text);
    }

    #[test]
    fn whitespace_around_tags_does_not_change_a_good_format(
        think in plain_text(), answer in plain_text(), ws in six_whitespace(),
    ) {
        let spaced = canonical(&format!("{}{think}{}", ws[4], ws[5]), &format!("{}{answer}{}", ws[5], ws[4]), &ws);
        for mode in MODES {
            prop_assert!(is_well_formatted(&canonical(&think, &answer, &Default::default()), mode));
            prop_assert!(is_well_formatted(&spaced, mode), "{mode}: {spaced:?}");
        }
    }

    #[test]
    fn whitespace_around_tags_does_not_change_any_format(
        tokens in prop::collection::vec(prop_oneof![(0..4usize).prop_map(Ok), plain_text().prop_map(Err)], 0..12),
        ws in prop::collection::vec((whitespace(), whitespace()), 12),
    ) {
        let mut plain = String::new();
        let mut spaced = String::new();
        for (token, (before, after)) in tokens.iter().zip(&ws) {
            match token {
                Ok(tag) => {
                    plain.push_str(TAGS[*tag]);
                    spaced.push_str(&format!("{before}{}{after}", TAGS[*tag]));
                }
                Err(text) => {
                    plain.push_str(text);
                    spaced.push_str(text);
                }
            }
        }
        for mode in MODES {
            prop_assert_eq!(is_well_formatted(&plain, mode), is_well_formatted(&spaced, mode), "{}: {:?} vs {:?}", mode, plain, spaced);
        }
    }

    #[test]
    fn a_second_think_or_answer_block_costs_the_format(think in plain_text(), answer in plain_text(), extra in plain_text()) {
        let good = canonical(&think, &answer, &Default::default());
        for mode in MODES {
            prop_assert!(is_well_formatted(&good, mode));
            for wrapped in [format!("<think>{good}</think>"), format!("<answer>{good}</answer>")] {
                prop_assert!(!is_well_formatted(&wrapped, mode), "{mode}: {wrapped:?}");
            }
        }
        // The paper's lazy `.*?` can swallow a second block placed before or after; strict cannot.
        for doubled in [
            format!("<think>{extra}</think>{good}"),
            format!("{good}<answer>{extra}</answer>"),
            format!("{good}<think>{extra}</think><answer>{extra}</answer>"),
        ] {
            prop_assert!(!is_well_formatted(&doubled, FormatMode::Strict), "{doubled:?}");
        }
    }

    #[test]
    fn naming_every_option_earns_nothing(
        // No brackets or parentheses, so that joining the texts cannot spell a label.
        texts in prop::collection::btree_map("[A-H]", "[^\\[\\]()]{1,20}", 2..6),
        separator in prop::sample::select(vec!["", " ", ", ", " or ", "\n"]),
        lowercase in any::<bool>(),
    ) {
        prop_assume!(texts.values().all(|t| !t.trim().trim_end_matches('.').trim().is_empty()));
        let named: Vec<String> = texts
            .keys()
            .map(|l| format!("[[{}]]", if lowercase { l.to_lowercase() } else { l.clone() }))
            .collect();
        let all_labels = named.join(separator);
        let all_texts = texts.values().cloned().collect::<Vec<_>>().join(separator);
        for correct in texts.keys() {
            prop_assert_eq!(choice_reward(&all_labels, &texts, correct), 0.0);
            prop_assert_eq!(choice_reward(&all_texts, &texts, correct), 0.0);
        }
    }

    #[test]
    fn naming_no_option_earns_nothing(
        // No `[`, so no bracketed label and no option text ("[x, y, z]"); no letter a-d, so no
        // lone label.
        answer in "[^\\[a-dA-D]{0,40}",
        unknown in prop::collection::vec("[E-Z]", 1..3),
    ) {
        let (qa_type, options, correct) = questions().swap_remove(0);
        let Answer::Label(label) = &correct else { unreachable!("the first question is multiple choice") };
        // Labels that are not options name nothing, and as bracketed labels they shut out the
        // correct lone label after them.
        let brackets: String = unknown.iter().map(|l| format!("[[{l}]]")).collect();
        for answer in [answer.clone(), format!("{brackets} {answer}"), format!("{brackets} {label}")] {
            let completion = format!("<think>t</think><answer>{answer}</answer>");
            let r = RewardFn::default().score_parts(&completion, qa_type, options.as_ref(), &correct);
            prop_assert_eq!(r.map(|r| r.answer()), Ok(0.0), "{:?}", answer);
        }
    }

    #[test]
    fn position_reward_is_monotone_along_any_ray(
        target in prop::array::uniform3(-2.0..2.0f64),
        direction in prop::array::uniform3(-1.0..1.0f64),
        (s1, s2) in (0.0..3.0f64, 0.0..3.0f64).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ) {
        let at = |s: f64| [0, 1, 2].map(|i| target[i] + s * direction[i]);
        for metric in METRICS {
            let (near, far) = (position_reward(at(s1), target, metric), position_reward(at(s2), target, metric));
            prop_assert!(near >= far, "{metric:?}: {near} < {far}");
            prop_assert!((0.0..=1.0).contains(&far));
        }
    }

    #[test]
    fn position_reward_is_one_only_at_the_target(
        target in prop::array::uniform3(prop_oneof![-1e3..1e3f64, Just(0.0), any::<f64>()]),
        offset in prop::array::uniform3(prop_oneof![
            Just(0.0), Just(f64::EPSILON), Just(-f64::MIN_POSITIVE), -1e-9..1e-9f64, -2.0..2.0f64,
        ]),
        exponent_form in any::<bool>(),
    ) {
        let prediction = [0, 1, 2].map(|i| target[i] + offset[i]);
        // Printed the way a model would write it; Rust's float printing round-trips exactly.
        let written = if exponent_form {
            format!("<answer>[{:e}, {:e}, {:e}]</answer>", prediction[0], prediction[1], prediction[2])
        } else {
            format!("<answer>[{}, {}, {}]</answer>", prediction[0], prediction[1], prediction[2])
        };
        let finite = prediction.iter().chain(&target).all(|v| v.is_finite());
        if finite {
            prop_assert_eq!(parse_position(&written), Some(prediction));
        }
        for metric in METRICS {
            let r = position_reward(prediction, target, metric);
            prop_assert_eq!(r == 1.0, finite && prediction == target, "{:?} {:?} {:?}", metric, prediction, target);
            prop_assert!((0.0..=1.0).contains(&r));
        }
    }
}

proptest! {
    // The fuzz requirement: many cases on the parsers, checked against independent oracles.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn fuzz_parsers(text in prop_oneof![syntax_text(), near_format()]) {
        let strict = is_well_formatted(&text, FormatMode::Strict);
        let paper = is_well_formatted(&text, FormatMode::Paper);
        prop_assert_eq!(paper, paper_oracle(&text), "{:?}", text);
        prop_assert!(!strict || paper, "strict but not paper: {:?}", text);
        let answer = extract_answer(&text);
        if let Some(a) = answer {
            prop_assert!(TAGS.iter().all(|t| !a.contains(t)), "tag in answer {:?}", a);
            let offset = a.as_ptr() as usize - text.as_ptr() as usize;
            prop_assert!(text[..offset].ends_with("<answer>") && text[offset + a.len()..].starts_with("</answer>"));
        }
        if strict {
            let trimmed = text.trim();
            let open = trimmed.find("<answer>").unwrap() + "<answer>".len();
            prop_assert_eq!(answer, Some(&trimmed[open..trimmed.len() - "</answer>".len()]));
        }
        if let Some(p) = parse_position(&text) {
            prop_assert!(text.contains('[') && text.contains(']'));
            prop_assert!(p.iter().all(|v| !v.is_nan()));
        }
        check_every_score(&text);
    }
}

#[test]
fn megabyte_inputs_stay_in_range() {
    let patterns = [
        "<think>",
        "<answer>",
        "</answer>",
        "[[",
        "[[B]]",
        "[1, ",
        "[1e308, 1e308, 1e308]",
        "9",
        "[",
        "slightly up down ",
        "<think>a</think><answer>B</answer>",
        "é\u{3000}",
        "(B).",
    ];
    for pattern in patterns {
        let big = pattern.repeat((1 << 20) / pattern.len() + 1);
        check_every_score(&big);
        check_every_score(&format!("<think>{big}</think><answer>{big}</answer>"));
    }
    // One huge number inside an otherwise valid triple.
    let digits = "7".repeat(1 << 20);
    assert_eq!(
        position_reward(parse_position(&format!("[{digits}, 0, 0]")).unwrap(), [0.0; 3], PositionMetric::L1),
        0.0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn megabyte_generated_inputs_stay_in_range(seed in prop_oneof![any::<String>(), syntax_text()]) {
        let unit = if seed.is_empty() { "x".to_string() } else { seed };
        check_every_score(&unit.repeat((1 << 20) / unit.len() + 1));
    }
}

#[test]
fn scores_a_qa_dataset_sample() {
    let sample: QaSample = serde_json::from_str(
        r#"{"id": "pick_up_cup/v0/e3/f20/waypoint", "task": "pick_up_cup", "variation": 0, "episode": 3,
            "frame": 20, "keypoint_frame": 31, "qa_type": "waypoint",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Where next?"}]}],
            "options": {"A": "[0.254, -0.197, 0.894]", "B": "[0.1, 0.1, 0.9]", "C": "[0.3, 0.0, 0.8]", "D": "[0.0, 0.2, 1.0]"},
            "answer": {"label": "C"},
            "state": {"current": [0.3, 0.0, 0.9], "target": [0.3, 0.0, 0.8], "movement": "move down",
                      "gripper_open": true, "target_gripper_open": false}}"#,
    )
    .unwrap();
    let f = RewardFn::default();
    let score = |c: &str| f.score(c, &sample).map(|r| (r.format(), r.answer(), r.total()));
    assert_eq!(score("<think>The cup is lower.</think>\n<answer>[[C]]</answer>"), Ok((1.0, 1.0, 2.0)));
    assert_eq!(score("<think>The cup is lower.</think>\n<answer>[0.3, 0.0, 0.8]</answer>"), Ok((1.0, 1.0, 2.0)));
    assert_eq!(score("<think>The cup is lower.</think>\n<answer>[[A]]</answer>"), Ok((1.0, 0.0, 1.0)));
    assert_eq!(score("<answer>C</answer>"), Ok((0.0, 1.0, 1.0)));

    let mut broken = sample.clone();
    broken.answer = Answer::Label("E".into());
    let err = f.score("<answer>C</answer>", &broken).unwrap_err().to_string();
    assert!(err.contains("pick_up_cup/v0/e3/f20/waypoint") && err.contains("\"E\""), "{err}");
}
