//! Robot-R1 question builders: from one episode to its QA samples.
//!
//! * Current frames are `0, every, 2 * every, ...` (default every 10th); each is paired with
//!   the first keypoint strictly after it ([`current_frames`]); frames with no later keypoint
//!   are skipped.
//! * Per current frame, one sample per requested [`QaType`]: waypoint (options are positions,
//!   answer the keypoint's position; the balanced style asks it only where the gripper sets off
//!   somewhere new, [`NEW_PLACE_MAX_PROGRESS`]), current state (answer the current position), movement
//!   (options are movement phrases, answer [`Movement::between`] current and keypoint) and
//!   open-ended waypoint (answer the keypoint's position, with SFT targets).
//! * Multiple choice has 4 options `A` to `D`, the answer shuffled among 3 distractors drawn
//!   in the configured [`DistractorStyle`] ([`crate::distractors`] gives the rules): `paper`
//!   (uniform in the workspace, adjacent movements) or `balanced` (the default: matched to the
//!   answer so that no blind rule beats chance). Position distractors are at least
//!   `min_distractor_distance` (Euclidean, metres) from the answer and from each other, and
//!   optionally at most `max_distractor_distance` from the answer (a difficulty knob), rounded
//!   to the printed 3 decimals.
//! * Randomness (which description, distractors, shuffle, example label) comes from a
//!   generator seeded by the configured seed and the sample id. A sample does not change when
//!   other episodes are added or removed, except balanced waypoint distractors, which are other
//!   episodes' keypoints ([`TaskKeypoints`]).
//! * SFT targets on open-ended samples: Direct is the coordinates; CoT is
//!   "Plan: 1. ... 2. ...\nSubtask: ...\nMove: ...\nAnswer: [x, y, z]" when the episode has a
//!   plan and the current step names its subtask.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

pub use crate::distractors::{DistractorStyle, movement_distractors, position_distractors};
use crate::distractors::{
    EpisodePool, PositionRules, balanced_movement_distractors, keypoint_distractors, state_distractors,
    waypoint_distractors,
};
use crate::episode::Episode;
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
    /// How distractors are drawn. Files written before the option existed used the paper's
    /// style, so a missing field reads as `paper`; new configurations default to `balanced`.
    #[serde(default = "paper_style")]
    pub distractors: DistractorStyle,
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
            distractors: DistractorStyle::default(),
            negligible_movement: NEGLIGIBLE_M,
            prompt: PromptOptions::default(),
            keypoints: KeypointConfig::default(),
            seed: 0,
        }
    }
}

fn paper_style() -> DistractorStyle {
    DistractorStyle::Paper
}

impl QaConfig {
    /// The hard rules of position distractors in `episode`'s workspace.
    fn position_rules(&self, episode: &Episode) -> PositionRules {
        PositionRules {
            workspace: episode.metadata.workspace,
            min_distance: self.min_distractor_distance,
            max_distance: self.max_distractor_distance,
        }
    }

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
            return bad(format!("invalid minimum distractor distance {}", self.min_distractor_distance));
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
            return bad(format!("invalid negligible movement {}", self.negligible_movement));
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
    format!("images/{}/v{}/e{}/{camera}_{frame}.png", episode.task, episode.variation, episode.episode)
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

/// Shuffles the answer among the distractors: `(options as (label, text), answer label)`.
fn shuffle_options(
    answer: String,
    distractors: [String; 3],
    rng: &mut impl rand::Rng,
) -> (Vec<(String, String)>, String) {
    let mut texts: Vec<(bool, String)> =
        std::iter::once((true, answer)).chain(distractors.map(|d| (false, d))).collect();
    texts.shuffle(rng);
    let correct = texts.iter().position(|(is_answer, _)| *is_answer).unwrap_or(0);
    let options = LABELS.iter().zip(texts).map(|(l, (_, t))| (l.to_string(), t)).collect();
    (options, LABELS[correct].to_string())
}

/// The CoT SFT target, when the plan and the current subtask are known.
pub fn cot_target(plan: &[String], subtask: &str, movement: &str, target: [f64; 3]) -> String {
    let steps: Vec<String> = plan.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect();
    format!("Plan: {}\nSubtask: {subtask}\nMove: {movement}\nAnswer: {}", steps.join(" "), format_position(target))
}

fn pick_camera(episode: &Episode, wanted: Option<&str>) -> Result<String> {
    let name = match wanted {
        Some(w) => w.to_string(),
        None if episode.cameras.iter().any(|c| c.name == "front") => "front".to_string(),
        None => episode.cameras.first().map(|c| c.name.clone()).unwrap_or_else(|| "front".to_string()),
    };
    if episode.steps.iter().all(|s| s.images.contains_key(&name)) {
        Ok(name)
    } else {
        Err(DataError::Config(format!("episode {}: no image from camera {name:?} on every step", episode.id())))
    }
}

/// The keypoint positions of every episode, by task: what balanced waypoint distractors of
/// one episode draw from the others ([`keypoint_distractors`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskKeypoints(BTreeMap<String, Vec<EpisodeKeypoints>>);

/// An episode's id and the positions of its keypoints, in order.
type EpisodeKeypoints = (String, Vec<[f64; 3]>);

impl TaskKeypoints {
    /// The keypoints of `episodes` (found with `config`), grouped by task, in episode order.
    pub fn new(episodes: &[Episode], config: &KeypointConfig) -> Self {
        let mut by_task: BTreeMap<String, Vec<EpisodeKeypoints>> = BTreeMap::new();
        for episode in episodes {
            let positions =
                episode_keypoints(episode, config).iter().map(|&k| episode.steps[k].pose.position).collect();
            by_task.entry(episode.task.clone()).or_default().push((episode.id(), positions));
        }
        // Sorted, so that the episodes' order does not change any draw.
        by_task.values_mut().for_each(|v| v.sort_by(|a, b| a.0.cmp(&b.0)));
        Self(by_task)
    }

    /// The `index`-th keypoint of each other episode of `episode`'s task that has one.
    fn others(&self, episode: &Episode, index: usize) -> Vec<[f64; 3]> {
        let id = episode.id();
        let Some(episodes) = self.0.get(&episode.task) else { return Vec::new() };
        episodes.iter().filter(|(e, _)| *e != id).filter_map(|(_, k)| k.get(index).copied()).collect()
    }
}

/// Waypoint questions the balanced style asks: the gripper about to go somewhere new, early in
/// its move (at most this fraction of the way from the previous keypoint, or from the start)...
pub const NEW_PLACE_MAX_PROGRESS: f64 = 0.3;
/// ...and at least this far (m) horizontally from the target. Elsewhere the text alone gives
/// the target away: mid-move the current position lies on the expert's straight path to it,
/// and a move straight down or up keeps the current place (`r1_bench::text_only` measured
/// 95% of such questions answered without the image).
pub const NEW_PLACE_MIN_HORIZONTAL: f64 = 0.05;

/// Whether a waypoint question at `frame`, whose target is `keypoint` (the next of
/// `keypoints`), needs the image (see [`NEW_PLACE_MAX_PROGRESS`]). The vertical axis is the
/// third, as in every coordinate frame the prompts describe.
fn needs_the_image(episode: &Episode, keypoints: &[usize], frame: usize, keypoint: usize) -> bool {
    let previous = keypoints.iter().copied().filter(|&k| k <= frame).max().unwrap_or(0);
    let progress = (frame - previous) as f64 / (keypoint - previous).max(1) as f64;
    let (current, target) = (episode.steps[frame].pose.position, episode.steps[keypoint].pose.position);
    let horizontal = ((target[0] - current[0]).powi(2) + (target[1] - current[1]).powi(2)).sqrt();
    progress <= NEW_PLACE_MAX_PROGRESS && horizontal >= NEW_PLACE_MIN_HORIZONTAL
}

/// Builds the QA samples of one (validated) episode; balanced waypoint distractors come from
/// the same keypoint of `task_keypoints`' other episodes of its task (an empty
/// `TaskKeypoints` leaves the episode's own moves).
pub fn build_episode(episode: &Episode, config: &QaConfig, task_keypoints: &TaskKeypoints) -> Result<EpisodeQa> {
    config.check()?;
    let camera = pick_camera(episode, config.camera.as_deref())?;
    let keypoints = episode_keypoints(episode, &config.keypoints);
    let axes = &episode.metadata.axes;
    let rules = config.position_rules(episode);
    let frames = current_frames(episode.steps.len(), &keypoints, config.every);
    let balanced = config.distractors == DistractorStyle::Balanced;
    // Balanced distractors draw from the whole episode; the fallback box grows by the minimum
    // spacing so that a short episode still leaves room for three spaced points.
    let pool = balanced.then(|| {
        let asked: Vec<usize> = frames.iter().map(|&(f, _)| f).collect();
        EpisodePool::new(episode, &keypoints, &asked, config.negligible_movement, config.min_distractor_distance)
    });
    let mut samples = Vec::new();
    let mut images = Vec::new();
    for (frame, keypoint) in frames {
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
            if balanced && qa_type == QaType::Waypoint && !needs_the_image(episode, &keypoints, frame, keypoint) {
                continue;
            }
            let id = format!("{}/f{frame}/{qa_type}", episode.id());
            let mut rng = keyed_rng(config.seed, &id);
            let description = episode.descriptions.choose(&mut rng).map(String::as_str).unwrap_or_default();
            let (options, answer) = match qa_type {
                QaType::Waypoint | QaType::CurrentState => {
                    let truth = if qa_type == QaType::Waypoint { target } else { current };
                    let d = match &pool {
                        None => position_distractors(
                            truth,
                            &rules.workspace,
                            rules.min_distance,
                            rules.max_distance,
                            &mut rng,
                        ),
                        Some(pool) if qa_type == QaType::Waypoint => {
                            let index = keypoints.iter().position(|&k| k == keypoint).unwrap_or_default();
                            let others = task_keypoints.others(episode, index);
                            match keypoint_distractors(truth, &others, &rules, &mut rng) {
                                Some(d) => Ok(d),
                                None => {
                                    waypoint_distractors((truth, current), &pool.moves, &pool.region, &rules, &mut rng)
                                }
                            }
                        }
                        Some(pool) => state_distractors(truth, &pool.states, &pool.region, &rules, &mut rng),
                    }
                    .map_err(|e| DataError::Config(format!("{id}: {e}")))?;
                    let (opts, label) = shuffle_options(format_position(truth), d.map(format_position), &mut rng);
                    (opts, Answer::Label(label))
                }
                QaType::Movement => {
                    let d = match &pool {
                        None => movement_distractors(movement, &mut rng),
                        Some(pool) => balanced_movement_distractors(movement, &pool.movements, &mut rng),
                    }
                    .map(|m| m.phrase(axes));
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
                options: qa_type.is_multiple_choice().then(|| options.into_iter().collect::<BTreeMap<_, _>>()),
                answer,
                state: state.clone(),
                sft,
            });
        }
    }
    Ok(EpisodeQa { samples, camera, images })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::episode::{Camera, EnvMetadata, ImageRef, Pose, Step};
    use crate::prompts::Template;
    use proptest::prelude::*;

    /// No other episodes: balanced waypoint distractors come from the episode's own moves.
    fn none() -> TaskKeypoints {
        TaskKeypoints::default()
    }

    /// A 40-step episode: moves along +x to a dwell at 15-17, closes the gripper at 25, then
    /// moves down to the end.
    pub(crate) fn episode() -> Episode {
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
            cameras: vec![Camera { name: "front".into(), width: 8, height: 8, intrinsics: None, extrinsics: None }],
            steps: (0..40)
                .map(|i| Step {
                    pose: Pose { position: position(i), orientation: [0.0, 1.0, 0.0, 0.0] },
                    gripper_open: i < 25,
                    joint_velocities: None,
                    images: [("front".to_string(), ImageRef::Path(format!("front/{i}.png").into()))].into(),
                    subtask: Some(if i < 25 { "reach the cup" } else { "lift the cup" }.into()),
                    scene: vec![],
                })
                .collect(),
            waypoints: None,
            plan: Some(vec!["reach the cup".into(), "grasp the cup".into(), "lift the cup".into()]),
        }
    }

    #[test]
    fn current_frames_pair_with_the_next_keypoint() {
        assert_eq!(current_frames(40, &[17, 25, 39], 10), vec![(0, 17), (10, 17), (20, 25), (30, 39)]);
        assert_eq!(current_frames(40, &[10, 39], 10), vec![(0, 10), (10, 39), (20, 39), (30, 39)]);
        assert_eq!(current_frames(41, &[39], 10), vec![(0, 39), (10, 39), (20, 39), (30, 39)]);
        assert!(current_frames(5, &[], 10).is_empty());
    }

    #[test]
    fn balanced_waypoint_questions_are_asked_where_the_gripper_sets_off_somewhere_new() {
        // Keypoints 17 (after the move along +x), 22 and 25 (the gripper closes), 39 (the end
        // of the descent).
        let ep = episode();
        let kps = episode_keypoints(&ep, &KeypointConfig::default());
        assert_eq!(kps, [17, 22, 25, 39]);
        assert!(needs_the_image(&ep, &kps, 0, 17), "at rest, 0.2 m to go sideways");
        assert!(needs_the_image(&ep, &kps, 5, 17), "5/17 of the way: still setting off");
        assert!(!needs_the_image(&ep, &kps, 10, 17), "10/17 of the way: the path gives the target away");
        assert!(!needs_the_image(&ep, &kps, 17, 22), "the gripper stays where it is");
        assert!(!needs_the_image(&ep, &kps, 30, 39), "straight down");
        let qa = build_episode(&ep, &QaConfig::default(), &none()).unwrap();
        let asked: Vec<usize> = qa.samples.iter().filter(|s| s.qa_type == QaType::Waypoint).map(|s| s.frame).collect();
        assert_eq!(asked, [0]);
        let paper = QaConfig { distractors: DistractorStyle::Paper, ..Default::default() };
        let qa = build_episode(&ep, &paper, &none()).unwrap();
        assert_eq!(qa.samples.iter().filter(|s| s.qa_type == QaType::Waypoint).count(), 4, "the paper asks everywhere");
    }

    #[test]
    fn balanced_waypoint_distractors_are_the_same_keypoint_of_other_episodes() {
        let ep = episode();
        // Other episodes of the task: the same motion with the objects elsewhere.
        let moved = |episode: u32, dx: f64, dy: f64| {
            let mut e = episode_clone(&ep, episode);
            e.steps.iter_mut().for_each(|s| {
                s.pose.position[0] += dx;
                s.pose.position[1] += dy;
            });
            e
        };
        let others = [moved(8, 0.1, 0.0), moved(9, 0.0, 0.1), moved(10, -0.1, -0.1), moved(11, 0.0, -0.2)];
        let all: Vec<Episode> = std::iter::once(ep.clone()).chain(others.iter().cloned()).collect();
        let task_keypoints = TaskKeypoints::new(&all, &KeypointConfig::default());
        let first_keypoints: Vec<String> = others.iter().map(|e| format_position(e.steps[17].pose.position)).collect();
        let qa = build_episode(&ep, &QaConfig::default(), &task_keypoints).unwrap();
        let waypoint = qa.samples.iter().find(|s| s.qa_type == QaType::Waypoint).unwrap();
        let Answer::Label(answer) = &waypoint.answer else { panic!("a label") };
        for (label, option) in waypoint.options.as_ref().unwrap() {
            if label != answer {
                assert!(first_keypoints.contains(option), "{option} is not another episode's first keypoint");
            }
        }
    }

    fn episode_clone(ep: &Episode, episode: u32) -> Episode {
        Episode { episode, ..ep.clone() }
    }

    #[test]
    fn builds_every_type_with_consistent_answers() {
        for distractors in DistractorStyle::ALL {
            let config = QaConfig { distractors, ..Default::default() };
            check_consistent_answers(&config);
        }
    }

    fn check_consistent_answers(config: &QaConfig) {
        let ep = episode();
        let qa = build_episode(&ep, config, &none()).unwrap();
        let kps = episode_keypoints(&ep, &KeypointConfig::default());
        let pairs = current_frames(40, &kps, 10);
        let balanced = config.distractors == DistractorStyle::Balanced;
        let waypoints = pairs.iter().filter(|&&(f, k)| !balanced || needs_the_image(&ep, &kps, f, k)).count();
        assert_eq!(qa.samples.len(), pairs.len() * 3 + waypoints);
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
                    assert!(cot.starts_with("Plan: 1. reach the cup 2. grasp the cup 3. lift the cup\nSubtask: "));
                    assert!(cot.ends_with(&format!("\nMove: {}\nAnswer: {}", s.state.movement, sft.direct)));
                }
                other => panic!("unexpected answer/options {other:?}"),
            }
        }
    }

    #[test]
    fn configurations_without_a_distractor_style_read_as_paper() {
        let mut json = serde_json::to_value(QaConfig::default()).unwrap();
        assert_eq!(json["distractors"], "balanced");
        json.as_object_mut().unwrap().remove("distractors");
        let old: QaConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.distractors, DistractorStyle::Paper);
    }

    #[test]
    fn the_styles_differ_only_in_the_distractors_and_which_waypoints_are_asked() {
        let ep = episode();
        let paper = QaConfig { distractors: DistractorStyle::Paper, ..Default::default() };
        let a = build_episode(&ep, &paper, &none()).unwrap();
        let b = build_episode(&ep, &QaConfig::default(), &none()).unwrap();
        // The balanced style leaves out the waypoint questions the text answers.
        let asked: Vec<&QaSample> = a.samples.iter().filter(|x| b.samples.iter().any(|y| y.id == x.id)).collect();
        assert_eq!(asked.len(), b.samples.len());
        assert!(a.samples.iter().filter(|x| !asked.contains(x)).all(|x| x.qa_type == QaType::Waypoint));
        assert_ne!(a.samples, b.samples);
        for (x, y) in asked.into_iter().zip(&b.samples) {
            assert_eq!((&x.id, &x.state, &x.sft), (&y.id, &y.state, &y.sft));
            let truth = |s: &QaSample| match &s.answer {
                Answer::Label(l) => s.options.as_ref().map(|o| o[l].clone()),
                _ => None,
            };
            assert_eq!(truth(x), truth(y));
        }
    }

    #[test]
    fn building_is_deterministic_and_seed_dependent() {
        let ep = episode();
        let a = build_episode(&ep, &QaConfig::default(), &none()).unwrap();
        assert_eq!(a, build_episode(&ep, &QaConfig::default(), &none()).unwrap());
        let b = build_episode(&ep, &QaConfig { seed: 1, ..Default::default() }, &none()).unwrap();
        assert_ne!(a.samples, b.samples);
    }

    #[test]
    fn compact_template_and_type_selection() {
        let cfg = QaConfig {
            qa_types: vec![QaType::Movement],
            prompt: PromptOptions { template: Template::Compact, ..Default::default() },
            every: 5,
            ..Default::default()
        };
        let qa = build_episode(&episode(), &cfg, &none()).unwrap();
        assert!(qa.samples.iter().all(|s| s.qa_type == QaType::Movement && s.sft.is_none()));
        assert!(qa.samples[0].messages[0].joined_text().starts_with("Task: "));
    }

    #[test]
    fn bad_configuration_and_missing_camera_are_errors() {
        let ep = episode();
        let err =
            build_episode(&ep, &QaConfig { camera: Some("wrist".into()), ..Default::default() }, &none()).unwrap_err();
        assert!(err.to_string().contains("pick_up_cup/v0/e7") && err.to_string().contains("wrist"), "{err}");
        assert!(build_episode(&ep, &QaConfig { every: 0, ..Default::default() }, &none()).is_err());
        let impossible = QaConfig { min_distractor_distance: 5.0, ..Default::default() };
        let err = build_episode(&ep, &impossible, &none()).unwrap_err().to_string();
        assert!(err.contains("cannot place 3 distractors"), "{err}");
    }

    proptest! {
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
