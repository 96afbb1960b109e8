//! One question-answer sample: the contract between r1-data and every consumer (trainers,
//! rewards, evaluation). Serialised as one JSON line of `qa/{train,val,test}.jsonl`.
//!
//! ```json
//! {"id": "pick_up_cup/v0/e3/f20/waypoint", "task": "pick_up_cup", "variation": 0,
//!  "episode": 3, "frame": 20, "keypoint_frame": 31, "qa_type": "waypoint",
//!  "messages": [{"role": "user", "content": [
//!      {"type": "image", "image": "images/pick_up_cup/v0/e3/front_20.png"},
//!      {"type": "text", "text": "..."}]}],
//!  "options": {"A": "[0.254, -0.197, 0.894]", "B": "...", "C": "...", "D": "..."},
//!  "answer": {"label": "C"},
//!  "state": {"current": [..], "target": [..], "movement": "move down", "gripper_open": true}}
//! ```
//! Image paths are relative to the dataset root (the folder holding `qa/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind of question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum QaType {
    /// Multiple choice: the next keypoint position.
    Waypoint,
    /// Multiple choice: the current end-effector position.
    CurrentState,
    /// Multiple choice: the movement from the current state to the next keypoint.
    Movement,
    /// Open ended: write the next keypoint position.
    WaypointOpen,
}

impl QaType {
    pub const ALL: [QaType; 4] = [Self::Waypoint, Self::CurrentState, Self::Movement, Self::WaypointOpen];

    pub fn is_multiple_choice(self) -> bool {
        !matches!(self, Self::WaypointOpen)
    }

    /// The name as a `&'static str`, for the trainer's code that still needs one; everything else
    /// prints the type ([`Display`](std::fmt::Display)), which a test keeps equal to this.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waypoint => "waypoint",
            Self::CurrentState => "current_state",
            Self::Movement => "movement",
            Self::WaypointOpen => "waypoint_open",
        }
    }
}

impl std::fmt::Display for QaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::names::fmt_name(self, f)
    }
}

/// One part of a chat message's content, Hugging Face style.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Path of the image, relative to the dataset root.
    Image {
        image: String,
    },
    Text {
        text: String,
    },
}

/// A chat message (`role` is `system`, `user` or `assistant`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Vec<ContentPart>,
}

impl Message {
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        Self { role: role.into(), content: vec![ContentPart::Text { text: text.into() }] }
    }

    /// A user turn with the image first and the text second, as Qwen2.5-VL expects.
    pub fn user_with_image(image: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: vec![ContentPart::Image { image: image.into() }, ContentPart::Text { text: text.into() }],
        }
    }

    /// The message's text parts joined by newlines.
    pub fn joined_text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Image { .. } => None,
            })
            .collect();
        texts.join("\n")
    }

    /// Image paths in order of appearance.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|p| match p {
            ContentPart::Image { image } => Some(image.as_str()),
            ContentPart::Text { .. } => None,
        })
    }
}

/// The turns a model answers: those before the first assistant turn (a conversation that
/// already holds its reply, as SFT data does, is cut there).
pub fn prompt_turns(messages: &[Message]) -> &[Message] {
    let end = messages.iter().position(|m| m.role == "assistant").unwrap_or(messages.len());
    &messages[..end]
}

/// The correct answer, typed by what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The label of the correct option (`"A"` to `"D"`).
    Label(String),
    /// A position `[x, y, z]` in metres.
    Position([f64; 3]),
    /// A movement phrase such as `"move down and slightly right"`.
    Movement(String),
}

/// Ground-truth states behind a question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// End-effector position at the current frame.
    pub current: [f64; 3],
    /// End-effector position at the next keypoint.
    pub target: [f64; 3],
    /// The movement label from `current` to `target`.
    pub movement: String,
    pub gripper_open: bool,
    /// Gripper flag at the next keypoint.
    pub target_gripper_open: bool,
}

/// Supervised targets for the SFT baselines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftTargets {
    /// Direct SFT: the coordinates only, e.g. `[0.254, -0.197, 0.894]`.
    pub direct: String,
    /// CoT SFT: "Plan: 1. ... Subtask: ... Move: ... Answer: [x, y, z]", when the task's plan is
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cot: Option<String>,
}

/// One question-answer sample (see the module docs for the JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QaSample {
    pub id: String,
    pub task: String,
    pub variation: u32,
    pub episode: u32,
    pub frame: usize,
    pub keypoint_frame: usize,
    pub qa_type: QaType,
    pub messages: Vec<Message>,
    /// Option label to option text, for multiple-choice questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    pub answer: Answer,
    pub state: GroundTruth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sft: Option<SftTargets>,
}

/// The text of `samples` a tokenizer should know: every message's text, the options, the SFT
/// targets and each answer in the `<think> </think> <answer> .. </answer>` reply form.
pub fn dataset_texts(samples: &[QaSample]) -> Vec<String> {
    let mut texts = Vec::new();
    for sample in samples {
        texts.extend(sample.messages.iter().map(Message::joined_text));
        texts.extend(sample.options.iter().flat_map(|o| o.values().cloned()));
        if let Some(sft) = &sample.sft {
            texts.push(sft.direct.clone());
            texts.extend(sft.cot.clone());
        }
        let answer = match &sample.answer {
            Answer::Label(label) => format!("[[{label}]]"),
            Answer::Position(p) => crate::prompts::format_position(*p),
            Answer::Movement(m) => m.clone(),
        };
        texts.push(format!("<think> </think> <answer> {answer} </answer>"));
    }
    texts
}
