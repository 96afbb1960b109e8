//! One Robot-R1 Bench question: an open-ended question about one simulator frame, with a
//! reference answer in words (what a judge reads) and the structured ground truth behind it
//! (what the rule-based scorer compares against). Serialised as one line of
//! `datasets/bench/bench.jsonl`:
//!
//! ```json
//! {"id": "push_button/e0/f12/movement", "task": "push_button", "split": "in", "episode": 0,
//!  "frame": 12, "category": "movement",
//!  "messages": [{"role": "system", "content": [{"type": "text", "text": "..."}]},
//!               {"role": "user", "content": [{"type": "image", "image": "images/push_button_e0_f12.png"},
//!                                            {"type": "text", "text": "What is the robot's next movement?"}]}],
//!  "reference": "move down and slightly right",
//!  "truth": {"kind": "movement", "phrase": "move down and slightly right"}}
//! ```
//! Image paths are relative to the bench folder.

use std::io::{BufRead, BufReader};
use std::path::Path;

use r1_data::Message;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The four question categories of the paper's bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Category {
    /// The steps that finish the task, in order.
    Planning,
    /// The next subtask only.
    HighLevelAction,
    /// The next movement of the end effector, e.g. "move down and slightly right".
    Movement,
    /// Relations between objects as seen from the camera.
    Spatial,
}

impl Category {
    pub const ALL: [Category; 4] = [Self::Planning, Self::HighLevelAction, Self::Movement, Self::Spatial];
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// Whether the question's task is one the model trained on ("In") or a held-out one ("Out").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum TaskSet {
    In,
    Out,
}

impl std::fmt::Display for TaskSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// The ground truth behind a reference answer, in the form the rule-based scorer compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Truth {
    /// The remaining subtasks of the expert's plan, in order.
    Planning { steps: Vec<String> },
    /// The whole plan and the index of the next subtask in it (the other steps are what a
    /// wrong answer usually names instead).
    HighLevelAction { plan: Vec<String>, next: usize },
    /// The movement label from the current position to the next waypoint, in r1-data's
    /// wording.
    Movement { phrase: String },
    /// Where `subject` is relative to `object` as seen from the front camera: per world axis
    /// `x, y, z` the sign of `subject - object` (`+x` in front, `+y` right, `+z` above), 0 where
    /// the two are not clearly apart.
    SpatialRelation { subject: String, object: String, relation: [i8; 3] },
    /// The name of the object that answers the question, and the names of every object in
    /// the scene (to tell a wrong object from no object).
    SpatialObject { answer: String, objects: Vec<String> },
}

impl Truth {
    pub fn category(&self) -> Category {
        match self {
            Truth::Planning { .. } => Category::Planning,
            Truth::HighLevelAction { .. } => Category::HighLevelAction,
            Truth::Movement { .. } => Category::Movement,
            Truth::SpatialRelation { .. } | Truth::SpatialObject { .. } => Category::Spatial,
        }
    }
}

/// One bench question (see the module docs for the JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchQuestion {
    pub id: String,
    pub task: String,
    pub split: TaskSet,
    pub episode: u32,
    pub frame: usize,
    pub category: Category,
    /// The system prompt ([`SYSTEM_PROMPT`]) and the user turn (image, then question).
    pub messages: Vec<Message>,
    pub reference: String,
    pub truth: Truth,
}

impl BenchQuestion {
    /// The question text (the user turn's text parts).
    pub fn question(&self) -> String {
        self.messages.iter().filter(|m| m.role == "user").map(Message::joined_text).collect::<Vec<_>>().join("\n")
    }
}

/// The system prompt the evaluated model answers under, after the paper's: answer only what
/// is asked, concisely, with directions as seen from the camera.
pub const SYSTEM_PROMPT: &str = "You are a robot arm's reasoning assistant. You see the scene \
through the robot's front camera. Answer only what is asked, concisely. Give directions as seen \
from the camera: up is away from the ground, down is toward it, front (forward) is toward the \
camera, back (backward) is away from it, and left and right are as they appear in the image. \
For planning questions, list the steps as numbered lines (1. ..., 2. ...). For high-level \
action questions, name only the next subtask. For movement questions, give only the next \
movement of the gripper, for example \"Move down and slightly right\".";

/// The bench file inside a bench folder.
pub const BENCH_FILE: &str = "bench.jsonl";

/// Reads `dir/bench.jsonl` and checks that every question is consistent (its category matches
/// its truth) and that every image it names exists under `dir`.
pub fn read_bench(dir: &Path) -> Result<Vec<BenchQuestion>> {
    let path = dir.join(BENCH_FILE);
    let file = std::fs::File::open(&path).map_err(|e| BenchError::io(&path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| BenchError::io(&path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let q: BenchQuestion = serde_json::from_str(&line).map_err(|source| BenchError::Json {
            path: path.clone(),
            line: Some(i + 1),
            source,
        })?;
        if q.truth.category() != q.category {
            return Err(BenchError::invalid(
                &path,
                format!("line {}: question {} is {} but its truth is {}", i + 1, q.id, q.category, q.truth.category()),
            ));
        }
        for image in q.messages.iter().flat_map(Message::images) {
            if !dir.join(image).is_file() {
                return Err(BenchError::invalid(&path, format!("line {}: image {image} does not exist", i + 1)));
            }
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(BenchError::invalid(&path, "the bench has no questions"));
    }
    Ok(out)
}
