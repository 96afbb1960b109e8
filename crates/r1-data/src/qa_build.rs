//! Robot-R1 question builders: from one episode to its QA samples.
//!
//! * Current frames are `0, every, 2 * every, ...` (default every 10th); each is paired with
//!   the first keypoint strictly after it ([`current_frames`]); frames with no later keypoint
//!   are skipped.
//! * Per current frame, one sample per requested [`QaType`]: waypoint (options are positions,
//!   answer the keypoint's position), current state (answer the current position), movement
//!   (options are movement phrases, answer [`Movement::between`] current and keypoint) and
//!   open-ended waypoint (answer the keypoint's position, with SFT targets).
//! * Multiple choice has 4 options `A` to `D`, the answer shuffled among 3 distractors.
//!   Position distractors are drawn uniformly inside the workspace bounds, at least
//!   `min_distractor_distance` (Euclidean, metres) from the answer and from each other, and
//!   optionally at most `max_distractor_distance` from the answer (a difficulty knob); they
//!   are rounded to the printed 3 decimals first so that the rule holds for what the model
//!   reads. Movement distractors are 3 of the answer's adjacent movements
//!   ([`Movement::adjacent`]).
//! * Randomness (which description, distractors, shuffle, example label) comes from a
//!   generator seeded by the configured seed and the sample id, so a sample does not change
//!   when other episodes are added or removed.
//! * SFT targets on open-ended samples: Direct is the coordinates; CoT is
//!   "Plan: 1. ... 2. ...\nSubtask: ...\nMove: ...\nAnswer: [x, y, z]" when the episode has a
//!   plan and the current step names its subtask.

use std::collections::BTreeMap;

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::episode::{Bounds, Episode};
use crate::error::{DataError, Result};
use crate::keypoints::{KeypointConfig, episode_keypoints};
use crate::movement::{Movement, NEGLIGIBLE_M};
use crate::prompts::{PromptInput, PromptOptions, format_position, render};
use crate::qa::{Answer, GroundTruth, Message, QaSample, QaType, SftTargets};

/// Option labels, in order.
pub const LABELS: [&str; 4] = ["A", "B", "C", "D"];

/// Every knob of the builders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QaConfig {
    /// Distance between current frames.
    pub every: usize,
    /// The question types to build per current frame.
    pub qa_types: Vec<QaType>,
    /// The camera whose image the questions show; `None` picks `front` when the episode has
    /// it, otherwise its first camera.
    pub camera: Option<String>,
    /// Minimum distance (m) of a position distractor from the answer and from the others.
    pub min_distractor_distance: f64,
    /// Maximum distance (m) of a position distractor from the answer, if any.
    pub max_distractor_distance: Option<f64>,
    /// Per-axis displacement (m) below which the movement label ignores an axis.
    pub negligible_movement: f64,
    pub prompt: PromptOptions,
    pub keypoints: KeypointConfig,
    pub seed: u64,
}

impl Default for QaConfig {
    fn default() -> Self {
        Self {
            every: 10,
            qa_types: QaType::ALL.to_vec(),
            camera: None,
            min_distractor_distance: 0.05,
            max_distractor_distance: None,
            negligible_movement: NEGLIGIBLE_M,
            prompt: PromptOptions::default(),
            keypoints: KeypointConfig::default(),
            seed: 0,
        }
    }
}

impl QaConfig {
    /// Rejects settings no episode could satisfy.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Config(m));
        if self.every == 0 {
            return bad("the current-frame spacing must be at least 1".into());
        }
        if self.qa_types.is_empty() {
            return bad("no question type selected".into());
        }
        if !self.min_distractor_distance.is_finite() || self.min_distractor_distance < 0.0 {
            return bad(format!(
                "invalid minimum distractor distance {}",
                self.min_distractor_distance
            ));
        }
        if let Some(max) = self.max_distractor_distance
            && (max.is_nan() || max <= self.min_distractor_distance)
        {
            return bad(format!(
                "the maximum distractor distance {max} must exceed the minimum {}",
                self.min_distractor_distance
            ));
        }
        if self.negligible_movement.is_nan() || self.negligible_movement < 0.0 {
            return bad(format!(
                "invalid negligible movement {}",
                self.negligible_movement
            ));
        }
        Ok(())
    }
}

/// The QA samples of one episode and the images they show.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeQa {
    pub samples: Vec<QaSample>,
    /// The camera the images come from.
    pub camera: String,
    /// `(frame, path relative to the dataset root)` for every image the samples show.
    pub images: Vec<(usize, String)>,
}

/// `(current frame, target keypoint)` pairs: frames `0, every, 2 * every, ...` below
/// `n_steps`, each with the first keypoint strictly after it; frames with none are
/// skipped. `keypoints` must increase.
pub fn current_frames(n_steps: usize, keypoints: &[usize], every: usize) -> Vec<(usize, usize)> {
    (0..n_steps)
        .step_by(every.max(1))
        .filter_map(|f| {
            let k = keypoints.partition_point(|&k| k <= f);
            keypoints.get(k).map(|&k| (f, k))
        })
        .collect()
}

/// Where a frame's image goes in a dataset, relative to its root.
pub fn image_rel_path(episode: &Episode, camera: &str, frame: usize) -> String {
    format!(
        "images/{}/v{}/e{}/{camera}_{frame}.png",
        episode.task, episode.variation, episode.episode
    )
}

/// A generator seeded by `seed` and `key` (FNV-1a over the key's bytes, mixed with the seed):
/// stable across runs, platforms and the order in which samples are built.
pub fn keyed_rng(seed: u64, key: &str) -> Xoshiro256PlusPlus {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Xoshiro256PlusPlus::seed_from_u64(h)
}

fn round3(p: [f64; 3]) -> [f64; 3] {
    p.map(|v| (v * 1000.0).round() / 1000.0)
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
}

/// Three position distractors for `answer` (see the module docs): inside `workspace`, at
/// least `min_distance` from the (rounded) answer and from each other, at most
/// `max_distance` from the answer when set, rounded to 3 decimals. Rejection sampling from
/// the workspace box (clipped to the box of half-side `max_distance` around the answer);
/// fails with a configuration error when 50 rounds of 200 draws do not suffice.
pub fn position_distractors(
    answer: [f64; 3],
    workspace: &Bounds,
    min_distance: f64,
    max_distance: Option<f64>,
    rng: &mut impl rand::Rng,
) -> Result<[[f64; 3]; 3]> {
    let answer = round3(answer);
    let reach = max_distance.unwrap_or(f64::INFINITY);
    let lo: [f64; 3] = std::array::from_fn(|a| workspace.min[a].max(answer[a] - reach));
    let hi: [f64; 3] = std::array::from_fn(|a| workspace.max[a].min(answer[a] + reach));
    let fail = || {
        DataError::Config(format!(
            "cannot place 3 distractors {min_distance} m apart{} around {} inside the workspace {:?}..{:?}",
            max_distance
                .map(|m| format!(" and within {m} m"))
                .unwrap_or_default(),
            format_position(answer),
            workspace.min,
            workspace.max
        ))
    };
    if (0..3).any(|a| lo[a] > hi[a]) {
        return Err(fail());
    }
    let mut chosen: Vec<[f64; 3]> = Vec::with_capacity(3);
    // Greedy placement can paint itself into a corner (two early picks leaving no room for a
    // third), so start over a few times rather than drawing forever.
    for _round in 0..50 {
        chosen.clear();
        for _ in 0..200 {
            let p = round3(std::array::from_fn(|a| {
                if lo[a] < hi[a] {
                    rng.random_range(lo[a]..=hi[a])
                } else {
                    lo[a]
                }
            }));
            let d = distance(p, answer);
            let apart = chosen
                .iter()
                .all(|&c| distance(c, p) >= min_distance && c != p);
            if workspace.contains(p) && d >= min_distance && d > 0.0 && d <= reach && apart {
                chosen.push(p);
                if let [a, b, c] = chosen[..] {
                    return Ok([a, b, c]);
                }
            }
        }
    }
    Err(fail())
}

/// Three distinct movements adjacent to `answer`, drawn uniformly.
pub fn movement_distractors(answer: Movement, rng: &mut impl rand::Rng) -> [Movement; 3] {
    answer
        .adjacent()
        .sample_array(rng)
        .expect("every movement has at least six neighbours (see `movement`)")
}

/// Shuffles the answer among the distractors: `(options as (label, text), answer label)`.
fn shuffle_options(
    answer: String,
    distractors: [String; 3],
    rng: &mut impl rand::Rng,
) -> (Vec<(String, String)>, String) {
    let mut texts: Vec<(bool, String)> = std::iter::once((true, answer))
        .chain(distractors.map(|d| (false, d)))
        .collect();
    texts.shuffle(rng);
    let correct = texts
        .iter()
        .position(|(is_answer, _)| *is_answer)
        .unwrap_or(0);
    let options = LABELS
        .iter()
        .zip(texts)
        .map(|(l, (_, t))| (l.to_string(), t))
        .collect();
    (options, LABELS[correct].to_string())
}

/// The CoT SFT target, when the plan and the current subtask are known.
pub fn cot_target(plan: &[String], subtask: &str, movement: &str, target: [f64; 3]) -> String {
    let steps: Vec<String> = plan
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect();
    format!(
        "Plan: {}\nSubtask: {subtask}\nMove: {movement}\nAnswer: {}",
        steps.join(" "),
        format_position(target)
    )
}

fn pick_camera(episode: &Episode, wanted: Option<&str>) -> Result<String> {
    let name = match wanted {
        Some(w) => w.to_string(),
        None if episode.cameras.iter().any(|c| c.name == "front") => "front".to_string(),
        None => episode
            .cameras
            .first()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "front".to_string()),
    };
    if episode.steps.iter().all(|s| s.images.contains_key(&name)) {
        Ok(name)
    } else {
        Err(DataError::Config(format!(
            "episode {}: no image from camera {name:?} on every step",
            episode.id()
        )))
    }
}

/// Builds the QA samples of one (validated) episode.
pub fn build_episode(episode: &Episode, config: &QaConfig) -> Result<EpisodeQa> {
    config.check()?;
    let camera = pick_camera(episode, config.camera.as_deref())?;
    let keypoints = episode_keypoints(episode, &config.keypoints);
    let axes = &episode.metadata.axes;
    let mut samples = Vec::new();
    let mut images = Vec::new();
    for (frame, keypoint) in current_frames(episode.steps.len(), &keypoints, config.every) {
        let (step, key_step) = (&episode.steps[frame], &episode.steps[keypoint]);
        let (current, target) = (step.pose.position, key_step.pose.position);
        let delta = std::array::from_fn(|a| target[a] - current[a]);
        let movement = Movement::from_delta(delta, config.negligible_movement);
        let movement_phrase = movement.phrase(axes);
        let image = image_rel_path(episode, &camera, frame);
        images.push((frame, image.clone()));
        let state = GroundTruth {
            current,
            target,
            movement: movement_phrase.clone(),
            gripper_open: step.gripper_open,
            target_gripper_open: key_step.gripper_open,
        };
        for &qa_type in &config.qa_types {
            let id = format!("{}/f{frame}/{qa_type}", episode.id());
            let mut rng = keyed_rng(config.seed, &id);
            let description = episode
                .descriptions
                .choose(&mut rng)
                .map(String::as_str)
                .unwrap_or_default();
            let (options, answer) = match qa_type {
                QaType::Waypoint | QaType::CurrentState => {
                    let truth = if qa_type == QaType::Waypoint {
                        target
                    } else {
                        current
                    };
                    let d = position_distractors(
                        truth,
                        &episode.metadata.workspace,
                        config.min_distractor_distance,
                        config.max_distractor_distance,
                        &mut rng,
                    )
                    .map_err(|e| DataError::Config(format!("{id}: {e}")))?;
                    let (opts, label) =
                        shuffle_options(format_position(truth), d.map(format_position), &mut rng);
                    (opts, Answer::Label(label))
                }
                QaType::Movement => {
                    let d = movement_distractors(movement, &mut rng).map(|m| m.phrase(axes));
                    let (opts, label) = shuffle_options(movement_phrase.clone(), d, &mut rng);
                    (opts, Answer::Label(label))
                }
                QaType::WaypointOpen => (Vec::new(), Answer::Position(target)),
            };
            let example_label = LABELS.choose(&mut rng).copied().unwrap_or("A");
            let text = render(
                &PromptInput {
                    qa_type,
                    description,
                    metadata: &episode.metadata,
                    pose: &step.pose,
                    gripper_open: step.gripper_open,
                    options: &options,
                    example_label,
                },
                &config.prompt,
            );
            let sft = (qa_type == QaType::WaypointOpen).then(|| SftTargets {
                direct: format_position(target),
                cot: episode
                    .plan
                    .as_deref()
                    .zip(step.subtask.as_deref())
                    .map(|(plan, subtask)| cot_target(plan, subtask, &movement_phrase, target)),
            });
            samples.push(QaSample {
                id,
                task: episode.task.clone(),
                variation: episode.variation,
                episode: episode.episode,
                frame,
                keypoint_frame: keypoint,
                qa_type,
                messages: vec![Message::user_with_image(image.clone(), text)],
                options: qa_type
                    .is_multiple_choice()
                    .then(|| options.into_iter().collect::<BTreeMap<_, _>>()),
                answer,
                state: state.clone(),
                sft,
            });
        }
    }
    Ok(EpisodeQa {
        samples,
        camera,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::{Camera, EnvMetadata, ImageRef, Pose, Step};
    use crate::prompts::Template;
    use proptest::prelude::*;

    /// A 40-step episode: moves along +x to a dwell at 15-17, closes the gripper at 25, then
    /// moves down to the end.
    fn episode() -> Episode {
        let position = |i: usize| -> [f64; 3] {
            let t = i.min(16) as f64 / 16.0;
            let down = i.saturating_sub(25) as f64 * 0.01;
            [0.1 + 0.2 * t, 0.0, 1.0 - down]
        };
        Episode {
            task: "pick_up_cup".into(),
            variation: 0,
            episode: 7,
            descriptions: vec!["pick up the cup".into(), "grasp the cup and lift it".into()],
            metadata: EnvMetadata::default(),
            cameras: vec![Camera {
                name: "front".into(),
                width: 8,
                height: 8,
                intrinsics: None,
                extrinsics: None,
            }],
            steps: (0..40)
                .map(|i| Step {
                    pose: Pose {
                        position: position(i),
                        orientation: [0.0, 1.0, 0.0, 0.0],
                    },
                    gripper_open: i < 25,
                    joint_velocities: None,
                    images: [(
                        "front".to_string(),
                        ImageRef::Path(format!("front/{i}.png").into()),
                    )]
                    .into(),
                    subtask: Some(
                        if i < 25 {
                            "reach the cup"
                        } else {
                            "lift the cup"
                        }
                        .into(),
                    ),
                    scene: vec![],
                })
                .collect(),
            waypoints: None,
            plan: Some(vec![
                "reach the cup".into(),
                "grasp the cup".into(),
                "lift the cup".into(),
            ]),
        }
    }

    #[test]
    fn current_frames_pair_with_the_next_keypoint() {
        assert_eq!(
            current_frames(40, &[17, 25, 39], 10),
            vec![(0, 17), (10, 17), (20, 25), (30, 39)]
        );
        assert_eq!(
            current_frames(40, &[10, 39], 10),
            vec![(0, 10), (10, 39), (20, 39), (30, 39)]
        );
        assert_eq!(
            current_frames(41, &[39], 10),
            vec![(0, 39), (10, 39), (20, 39), (30, 39)]
        );
        assert!(current_frames(5, &[], 10).is_empty());
    }

    #[test]
    fn builds_every_type_with_consistent_answers() {
        let ep = episode();
        let qa = build_episode(&ep, &QaConfig::default()).unwrap();
        let kps = episode_keypoints(&ep, &KeypointConfig::default());
        let pairs = current_frames(40, &kps, 10);
        assert_eq!(qa.samples.len(), pairs.len() * 4);
        assert_eq!(qa.images.len(), pairs.len());
        for s in &qa.samples {
            assert_eq!(s.state.current, ep.steps[s.frame].pose.position);
            assert_eq!(s.state.target, ep.steps[s.keypoint_frame].pose.position);
            let user = &s.messages[0];
            assert_eq!(
                user.images().collect::<Vec<_>>(),
                vec![format!("images/pick_up_cup/v0/e7/front_{}.png", s.frame)]
            );
            match (&s.answer, &s.options) {
                (Answer::Label(l), Some(opts)) => {
                    assert_eq!(opts.len(), 4);
                    let truth = match s.qa_type {
                        QaType::Waypoint => format_position(s.state.target),
                        QaType::CurrentState => format_position(s.state.current),
                        _ => s.state.movement.clone(),
                    };
                    assert_eq!(opts[l], truth);
                    let distinct: std::collections::BTreeSet<_> = opts.values().collect();
                    assert_eq!(distinct.len(), 4);
                    assert!(user.joined_text().contains(&format!("[[{l}]] {truth}")));
                }
                (Answer::Position(p), None) => {
                    assert_eq!(s.qa_type, QaType::WaypointOpen);
                    assert_eq!(*p, s.state.target);
                    let sft = s.sft.as_ref().unwrap();
                    assert_eq!(sft.direct, format_position(*p));
                    let cot = sft.cot.as_ref().unwrap();
                    assert!(cot.starts_with(
                        "Plan: 1. reach the cup 2. grasp the cup 3. lift the cup\nSubtask: "
                    ));
                    assert!(cot.ends_with(&format!(
                        "\nMove: {}\nAnswer: {}",
                        s.state.movement, sft.direct
                    )));
                }
                other => panic!("unexpected answer/options {other:?}"),
            }
        }
    }

    #[test]
    fn building_is_deterministic_and_seed_dependent() {
        let ep = episode();
        let a = build_episode(&ep, &QaConfig::default()).unwrap();
        assert_eq!(a, build_episode(&ep, &QaConfig::default()).unwrap());
        let b = build_episode(
            &ep,
            &QaConfig {
                seed: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(a.samples, b.samples);
    }

    #[test]
    fn compact_template_and_type_selection() {
        let cfg = QaConfig {
            qa_types: vec![QaType::Movement],
            prompt: PromptOptions {
                template: Template::Compact,
                ..Default::default()
            },
            every: 5,
            ..Default::default()
        };
        let qa = build_episode(&episode(), &cfg).unwrap();
        assert!(
            qa.samples
                .iter()
                .all(|s| s.qa_type == QaType::Movement && s.sft.is_none())
        );
        assert!(
            qa.samples[0].messages[0]
                .joined_text()
                .starts_with("Task: ")
        );
    }

    #[test]
    fn bad_configuration_and_missing_camera_are_errors() {
        let ep = episode();
        let err = build_episode(
            &ep,
            &QaConfig {
                camera: Some("wrist".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("pick_up_cup/v0/e7") && err.to_string().contains("wrist"),
            "{err}"
        );
        assert!(
            build_episode(
                &ep,
                &QaConfig {
                    every: 0,
                    ..Default::default()
                }
            )
            .is_err()
        );
        let impossible = QaConfig {
            min_distractor_distance: 5.0,
            ..Default::default()
        };
        let err = build_episode(&ep, &impossible).unwrap_err().to_string();
        assert!(err.contains("cannot place 3 distractors"), "{err}");
    }

    proptest! {
        #[test]
        fn position_distractors_respect_the_rules(
            answer in proptest::array::uniform3(0.0f64..1.0),
            min in 0.0f64..0.2,
            max in proptest::option::of(0.3f64..0.8),
            seed: u64,
        ) {
            let ws = Bounds { min: [-0.3, -0.5, 0.6], max: [0.7, 0.5, 1.6] };
            let answer = [answer[0] - 0.3, answer[1] - 0.5, answer[2] + 0.6];
            let mut rng = keyed_rng(seed, "p");
            let d = position_distractors(answer, &ws, min, max, &mut rng).unwrap();
            let a = round3(answer);
            for (i, p) in d.iter().enumerate() {
                prop_assert!(ws.contains(*p));
                prop_assert!(distance(*p, a) >= min && *p != a);
                prop_assert_eq!(round3(*p), *p);
                if let Some(m) = max { prop_assert!(distance(*p, a) <= m); }
                for q in &d[i + 1..] { prop_assert!(distance(*p, *q) >= min && p != q); }
            }
            let mut again = keyed_rng(seed, "p");
            prop_assert_eq!(position_distractors(answer, &ws, min, max, &mut again).unwrap(), d);
        }

        #[test]
        fn movement_distractors_are_adjacent_and_distinct(levels in proptest::array::uniform3(-2i8..=2), seed: u64) {
            prop_assume!(Movement::new(levels).is_some());
            let m = Movement::new(levels).unwrap();
            let d = movement_distractors(m, &mut keyed_rng(seed, "m"));
            let adj = m.adjacent();
            prop_assert!(d.iter().all(|x| adj.contains(x) && *x != m));
            prop_assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
        }

        #[test]
        fn the_answer_label_is_spread_over_a_to_d(seed: u64) {
            let mut rng = keyed_rng(seed, "s");
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..64 {
                let (opts, label) = shuffle_options("x".into(), ["a".into(), "b".into(), "c".into()], &mut rng);
                prop_assert_eq!(&opts.iter().find(|(l, _)| *l == label).unwrap().1, "x");
                seen.insert(label);
            }
            prop_assert_eq!(seen.len(), 4);
        }
    }
}
