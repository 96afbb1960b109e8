//! Builds the simulator's Robot-R1 Bench from r1-sim ground truth.
//!
//! For every task of the suite (five trained on, "In"; five held out, "Out"), five frames,
//! one from each of five episodes, spread over the demonstration (episode `k` contributes the
//! usable frame nearest to `(k + 0.5) / 5` of its length; a frame is usable when a waypoint
//! follows it and the arm still has to move to reach it). Per frame:
//! * **planning**: the remaining subtasks of the expert's plan, from the one under way;
//! * **high-level action**: the subtask under way (the one whose waypoint comes next);
//! * **movement**: r1-data's movement label from the current position to the next waypoint;
//! * **spatial, relation**: where one object is relative to another (a pair whose centres are
//!   at least [`CLEAR_M`] apart on at least one axis and, on every axis, either that far apart
//!   or within [`SAME_M`], so the truth is never borderline);
//! * **spatial, object**: which object is leftmost, rightmost, closest to or farthest from the
//!   camera, or highest, when it leads the runner-up by at least [`CLEAR_M`].
//!
//! That is 4 to 5 questions per frame (a spatial question is skipped when no pair or no
//! object is clear): a little over 200 over 50 frames, with about as many spatial questions
//! as the paper's 65.
//! The bench seed defaults to [`DEFAULT_SEED`], unlike the training data's, so that the
//! "In" questions are asked on episodes the model has not seen.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use r1_data::fsutil::{StagedDir, write_png};
use r1_data::movement::Movement;
use r1_data::{Episode, ImageRef, Message, SceneObject};

use crate::error::{BenchError, Result};
use crate::question::{BENCH_FILE, BenchQuestion, Category, SYSTEM_PROMPT, TaskSet, Truth};

/// Seed of the bench's episodes (the training data uses small seeds).
pub const DEFAULT_SEED: u64 = 20_250_600;
/// Frames (one per episode) per task.
pub const FRAMES_PER_TASK: usize = 5;
/// A separation this large (metres, between object centres) is a clear relation.
pub const CLEAR_M: f64 = 0.05;
/// Centres closer than this (metres) on an axis are level on it.
pub const SAME_M: f64 = 0.02;

/// The bench and the images its questions show (path relative to the bench folder).
pub struct Bench {
    pub questions: Vec<BenchQuestion>,
    pub images: BTreeMap<String, ImageRef>,
}

/// The frame chosen from one episode, with the index of the waypoint it heads for.
struct Frame {
    t: usize,
    next: usize,
}

/// Picks the usable frame nearest to `fraction` of the episode; `None` when the episode has
/// no usable frame or lacks ground truth (waypoints and a plan of the same length).
fn pick_frame(e: &Episode, fraction: f64) -> Option<Frame> {
    let waypoints = e.waypoints.as_ref()?;
    if e.plan.as_ref()?.len() != waypoints.len() {
        return None;
    }
    let goal = fraction * e.steps.len() as f64;
    (0..e.steps.len())
        .filter_map(|t| {
            let next = waypoints.iter().position(|&w| w > t)?;
            let moves =
                Movement::between(e.steps[t].pose.position, e.steps[waypoints[next]].pose.position) != Movement::STILL;
            moves.then_some(Frame { t, next })
        })
        .min_by(|a, b| (a.t as f64 - goal).abs().total_cmp(&(b.t as f64 - goal).abs()))
}

/// Per-axis sign of `a - b` when the relation is clear, `None` when it is borderline on some
/// axis or level on all.
fn relation(a: [f64; 3], b: [f64; 3]) -> Option<[i8; 3]> {
    let mut rel = [0i8; 3];
    for i in 0..3 {
        let d = a[i] - b[i];
        if d.abs() >= CLEAR_M {
            rel[i] = if d > 0.0 { 1 } else { -1 };
        } else if d.abs() > SAME_M {
            return None;
        }
    }
    (rel != [0; 3]).then_some(rel)
}

/// "in front of and to the left of", as seen from the front camera (x+ toward it).
pub fn relation_phrase(rel: [i8; 3]) -> String {
    let words = [["behind", "in front of"], ["to the left of", "to the right of"], ["below", "above"]];
    let parts: Vec<&str> = (0..3).filter(|&i| rel[i] != 0).map(|i| words[i][usize::from(rel[i] > 0)]).collect();
    parts.join(" and ")
}

/// A superlative of object questions: the question's wording and the key to maximise.
type Superlative = (&'static str, fn(&SceneObject) -> f64);

const SUPERLATIVES: [Superlative; 5] = [
    ("furthest to the left, as seen from the camera", |o| -o.position[1]),
    ("furthest to the right, as seen from the camera", |o| o.position[1]),
    ("closest to the camera", |o| o.position[0]),
    ("farthest from the camera", |o| -o.position[0]),
    ("highest", |o| o.position[2] + o.size[2] / 2.0),
];

/// The first superlative (from `start`, cycling) with a clear winner among `objects`.
fn object_question(objects: &[&SceneObject], start: usize) -> Option<(&'static str, String)> {
    if objects.len() < 2 {
        return None;
    }
    (0..SUPERLATIVES.len()).map(|i| SUPERLATIVES[(start + i) % SUPERLATIVES.len()]).find_map(|(wording, key)| {
        let mut ranked: Vec<(f64, &str)> = objects.iter().map(|o| (key(o), o.name.as_str())).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        (ranked[0].0 - ranked[1].0 >= CLEAR_M).then(|| (wording, ranked[0].1.to_string()))
    })
}

/// Builds the bench from simulated episodes: `episodes` holds, per task, at least
/// [`FRAMES_PER_TASK`] episodes (r1-sim's order: task by task); `held_out(task)` says which
/// tasks are "Out". Errors when a task has too few usable episodes.
pub fn build(episodes: &[Episode], held_out: impl Fn(&str) -> bool) -> Result<Bench> {
    let mut by_task: Vec<(&str, Vec<&Episode>)> = Vec::new();
    for e in episodes {
        match by_task.iter_mut().find(|(t, _)| *t == e.task) {
            Some((_, list)) => list.push(e),
            None => by_task.push((&e.task, vec![e])),
        }
    }
    let (mut questions, mut images) = (Vec::new(), BTreeMap::new());
    for (task, list) in by_task {
        let split = if held_out(task) { TaskSet::Out } else { TaskSet::In };
        let usable: Vec<(&Episode, Frame)> = list
            .iter()
            .enumerate()
            .filter_map(|(k, e)| pick_frame(e, (k as f64 + 0.5) / FRAMES_PER_TASK as f64).map(|f| (*e, f)))
            .take(FRAMES_PER_TASK)
            .collect();
        if usable.len() < FRAMES_PER_TASK {
            return Err(BenchError::Config(format!(
                "task {task}: only {} of {} episodes have a usable frame with a known plan (need {FRAMES_PER_TASK})",
                usable.len(),
                list.len()
            )));
        }
        for (k, (e, frame)) in usable.into_iter().enumerate() {
            let step = &e.steps[frame.t];
            let camera = e
                .cameras
                .first()
                .ok_or_else(|| BenchError::Config(format!("{}: the episode has no camera", e.id())))?;
            let image = step.images.get(&camera.name).ok_or_else(|| {
                BenchError::Config(format!("{}: step {} has no {:?} image", e.id(), frame.t, camera.name))
            })?;
            let image_path = format!("images/{task}_e{}_f{}.png", e.episode, frame.t);
            images.insert(image_path.clone(), image.clone());
            let plan = e.plan.clone().unwrap_or_default();
            let waypoints = e.waypoints.as_deref().unwrap_or_default();
            let description = &e.descriptions[k % e.descriptions.len()];
            let mut push = |suffix: &str, text: String, reference: String, truth: Truth| {
                questions.push(BenchQuestion {
                    id: format!("{task}/e{}/f{}/{suffix}", e.episode, frame.t),
                    task: task.to_string(),
                    split,
                    episode: e.episode,
                    frame: frame.t,
                    category: truth.category(),
                    messages: vec![Message::text("system", SYSTEM_PROMPT), Message::user_with_image(&image_path, text)],
                    reference,
                    truth,
                });
            };
            let remaining = plan[frame.next..].to_vec();
            push(
                "planning",
                format!(
                    "The robot's task: {description}. What steps remain to finish the task from the current state? List them in order."
                ),
                remaining.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n"),
                Truth::Planning { steps: remaining },
            );
            push(
                "high_level_action",
                format!("The robot's task: {description}. What is the robot's next subtask?"),
                plan[frame.next].clone(),
                Truth::HighLevelAction { plan: plan.clone(), next: frame.next },
            );
            let phrase = Movement::between(step.pose.position, e.steps[waypoints[frame.next]].pose.position)
                .phrase(&e.metadata.axes);
            push(
                "movement",
                format!("The robot's task: {description}. What is the gripper's next movement?"),
                phrase.clone(),
                Truth::Movement { phrase },
            );
            let objects: Vec<&SceneObject> = step.scene.iter().filter(|o| !o.held).collect();
            let pairs: Vec<(&SceneObject, &SceneObject, [i8; 3])> = objects
                .iter()
                .flat_map(|a| objects.iter().map(move |b| (*a, *b)))
                .filter(|(a, b)| a.name != b.name)
                .filter_map(|(a, b)| relation(a.position, b.position).map(|r| (a, b, r)))
                .collect();
            if !pairs.is_empty() {
                let (a, b, rel) = pairs[(k * 7 + frame.t) % pairs.len()];
                push(
                    "spatial",
                    format!("Where is the {} relative to the {}, as seen from the camera?", a.name, b.name),
                    format!("The {} is {} the {}.", a.name, relation_phrase(rel), b.name),
                    Truth::SpatialRelation { subject: a.name.clone(), object: b.name.clone(), relation: rel },
                );
            }
            if let Some((wording, answer)) = object_question(&objects, k + frame.t) {
                push(
                    "spatial_object",
                    format!("Which object is {wording}?"),
                    format!("The {answer}."),
                    Truth::SpatialObject { answer, objects: objects.iter().map(|o| o.name.clone()).collect() },
                );
            }
        }
    }
    Ok(Bench { questions, images })
}

/// The bench's data card: counts per category and split, and how to regenerate it.
pub fn card(bench: &Bench, command: &str) -> String {
    let mut counts: BTreeMap<(Category, TaskSet), usize> = BTreeMap::new();
    for q in &bench.questions {
        *counts.entry((q.category, q.split)).or_default() += 1;
    }
    let mut tasks: Vec<(&str, TaskSet)> = bench.questions.iter().map(|q| (q.task.as_str(), q.split)).collect();
    tasks.dedup();
    let mut s = String::from("# Robot-R1 Bench (simulator)\n\n");
    s += "Open-ended questions about frames of r1-sim demonstrations, in the four categories of the \
          Robot-R1 paper's bench, each with a reference answer derived from the simulator's ground \
          truth. Built by `r1_bench::make` (the module documents every rule); scored 0-3 by \
          `r1_bench::rubric` and optionally by an LLM judge.\n\n";
    s += &format!("Regenerate (byte for byte): `{command}`\n\n");
    s += &format!(
        "{} questions, {} images.\n\n| category | In | Out | total |\n|---|---|---|---|\n",
        bench.questions.len(),
        bench.images.len()
    );
    for c in Category::ALL {
        let (i, o) =
            (counts.get(&(c, TaskSet::In)).copied().unwrap_or(0), counts.get(&(c, TaskSet::Out)).copied().unwrap_or(0));
        s += &format!("| {c} | {i} | {o} | {} |\n", i + o);
    }
    s += "\nTasks: ";
    s += &tasks.iter().map(|(t, sp)| format!("{t} ({sp})")).collect::<Vec<_>>().join(", ");
    s += "\n\nFiles: `bench.jsonl` (one question per line: id, task, split, category, chat messages \
          with the system prompt and the image, reference, structured truth) and `images/`.\n";
    s
}

/// Writes the bench folder (`bench.jsonl`, `images/`, `README.md`) atomically: it is built
/// beside `dir` and renamed into place, replacing an existing bench only when `replace`.
pub fn write(bench: &Bench, dir: &Path, command: &str, replace: bool) -> Result<()> {
    let staged = StagedDir::new(dir)?;
    let root = staged.path();
    let images = root.join("images");
    std::fs::create_dir_all(&images).map_err(|e| BenchError::io(&images, e))?;
    for (path, image) in &bench.images {
        write_png(image, Path::new(""), &root.join(path))?;
    }
    let path = root.join(BENCH_FILE);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| BenchError::io(&path, e))?);
    for q in &bench.questions {
        let line =
            serde_json::to_string(q).map_err(|source| BenchError::Json { path: path.clone(), line: None, source })?;
        writeln!(out, "{line}").map_err(|e| BenchError::io(&path, e))?;
    }
    out.flush().map_err(|e| BenchError::io(&path, e))?;
    drop(out);
    let readme = root.join("README.md");
    std::fs::write(&readme, card(bench, command)).map_err(|e| BenchError::io(&readme, e))?;
    staged.commit(replace)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::question::read_bench;
    use crate::rubric;

    fn episodes() -> Vec<Episode> {
        let cfg = r1_sim::SimConfig {
            tasks: vec!["pick_up_cup".into(), "stack_blocks".into()],
            episodes_per_task: FRAMES_PER_TASK,
            seed: 3,
            image_size: 32,
        };
        r1_sim::simulate(&cfg, |_, _| {}).unwrap()
    }

    #[test]
    fn relations_are_clear_or_absent() {
        assert_eq!(relation([0.1, 0.0, 0.0], [0.0, 0.0, 0.0]), Some([1, 0, 0]));
        assert_eq!(relation([0.0, -0.06, 0.01], [0.0, 0.0, 0.0]), Some([0, -1, 0]));
        assert_eq!(relation([0.03, 0.1, 0.0], [0.0, 0.0, 0.0]), None, "borderline on x");
        assert_eq!(relation([0.01, 0.0, 0.0], [0.0, 0.0, 0.0]), None, "level");
        assert_eq!(relation_phrase([1, -1, 0]), "in front of and to the left of");
    }

    /// The words the bench uses must mean, in the rendered image, what the rubric reads them
    /// as: y+ is to the right in the image and x+ is closer to the camera.
    #[test]
    fn directions_match_the_camera() {
        let e = &episodes()[0];
        let cam = &e.cameras[0];
        let (o, right, front) = ([0.25, 0.0, 0.752], [0.25, 0.2, 0.752], [0.45, 0.0, 0.752]);
        assert!(cam.project(right).unwrap()[0] > cam.project(o).unwrap()[0]);
        let ext = cam.extrinsics.unwrap();
        let dist = |p: [f64; 3]| (0..3).map(|i| (p[i] - ext[i][3]).powi(2)).sum::<f64>();
        assert!(dist(front) < dist(o));
    }

    #[test]
    fn builds_consistent_questions_and_references_score_3() {
        let bench = build(&episodes(), r1_sim::is_held_out).unwrap();
        let per = |c: Category| bench.questions.iter().filter(|q| q.category == c).count();
        assert_eq!(per(Category::Planning), 2 * FRAMES_PER_TASK);
        assert_eq!(per(Category::HighLevelAction), 2 * FRAMES_PER_TASK);
        assert_eq!(per(Category::Movement), 2 * FRAMES_PER_TASK);
        assert!(per(Category::Spatial) >= FRAMES_PER_TASK);
        assert!(bench.questions.iter().any(|q| q.split == TaskSet::Out && q.task == "stack_blocks"));
        assert!(bench.questions.iter().all(|q| q.split == TaskSet::In || q.task == "stack_blocks"));
        for q in &bench.questions {
            assert_eq!(rubric::score(&q.reference, &q.truth), 3, "{} {:?}", q.id, q.reference);
        }
        let ids: std::collections::BTreeSet<_> = bench.questions.iter().map(|q| &q.id).collect();
        assert_eq!(ids.len(), bench.questions.len(), "ids are unique");
    }

    #[test]
    fn writes_and_reads_back() {
        let bench = build(&episodes(), r1_sim::is_held_out).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bench");
        write(&bench, &dir, "cargo xtask eval make-bench", false).unwrap();
        assert_eq!(read_bench(&dir).unwrap(), bench.questions);
        assert!(write(&bench, &dir, "x", false).is_err(), "no silent overwrite");
        write(&bench, &dir, "x", true).unwrap();
        std::fs::remove_file(dir.join(bench.questions[0].messages[1].images().next().unwrap())).unwrap();
        let err = read_bench(&dir).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("bench.jsonl"), "{err}");
    }

    #[test]
    fn too_few_episodes_is_an_error() {
        let e = episodes();
        let err = build(&e[..2], r1_sim::is_held_out).err().unwrap().to_string();
        assert!(err.contains("pick_up_cup"), "{err}");
    }
}
