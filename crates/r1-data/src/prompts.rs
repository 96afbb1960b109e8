//! Prompt templates for the Robot-R1 questions.
//!
//! Two templates share one set of facts, all taken from [`EnvMetadata`] (never written into
//! the text by hand):
//! * [`Template::Paper`] follows the paper's section structure: a title naming the robot
//!   assistant, `## Task description`, `## Visual Input`, `## Coordinate System`,
//!   `## Robot Specifications`, `## Current Robot State`, `### Choice Question` (or
//!   `### Question` when open ended) and `## Output Format` with a `<think>`/`<answer>`
//!   example. The current-state question drops the state section; the movement question
//!   also drops the origin line and the gripper size.
//! * [`Template::Compact`] states the same facts in a few short lines, for small models.
//!
//! The image itself is the first content part of the user message
//! ([`crate::Message::user_with_image`]); the text refers to it. Coordinates are printed by
//! [`format_position`].

use serde::{Deserialize, Serialize};

use crate::episode::{EnvMetadata, Pose};
use crate::qa::QaType;

/// Which prompt wording to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Template {
    #[default]
    Paper,
    Compact,
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::names::fmt_name(self, f)
    }
}

/// What the prompt says about the robot state beyond its position (the paper gives the
/// position only and names the missing rotation and gripper as its limitation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptOptions {
    pub template: Template,
    /// Add the orientation quaternion to the state.
    pub include_rotation: bool,
    /// Add the gripper's open/closed flag to the state.
    pub include_gripper: bool,
}

/// Everything one prompt is rendered from.
#[derive(Clone, Copy, Debug)]
pub struct PromptInput<'a> {
    pub qa_type: QaType,
    /// The task instruction.
    pub description: &'a str,
    pub metadata: &'a EnvMetadata,
    /// The current end-effector pose and gripper flag.
    pub pose: &'a Pose,
    pub gripper_open: bool,
    /// `(label, text)` per option for multiple-choice questions; empty when open ended.
    pub options: &'a [(String, String)],
    /// The option label shown in the output-format example (drawn per sample so that the
    /// example does not favour one label).
    pub example_label: &'a str,
}

/// Formats a number to 3 decimals, without a negative zero.
pub fn format_coordinate(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    format!("{:.3}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// Formats a position as the prompts and answers print it: `[0.254, -0.197, 0.894]`.
pub fn format_position(p: [f64; 3]) -> String {
    format!("[{}, {}, {}]", format_coordinate(p[0]), format_coordinate(p[1]), format_coordinate(p[2]))
}

/// The question sentence for a question type.
fn question(qa_type: QaType) -> &'static str {
    match qa_type {
        QaType::Waypoint => {
            "Which option is the position of the gripper at the next waypoint (the next keypoint of the demonstration)? Choose the most accurate option."
        }
        QaType::CurrentState => "Which option is the current position of the gripper? Choose the most accurate option.",
        QaType::Movement => {
            "Which movement brings the gripper from its current position to the next waypoint (the next keypoint of the demonstration)? Choose the most accurate option."
        }
        QaType::WaypointOpen => {
            "Predict the position [x, y, z] of the gripper at the next waypoint (the next keypoint of the demonstration)."
        }
    }
}

fn shows_state(qa_type: QaType) -> bool {
    matches!(qa_type, QaType::Waypoint | QaType::WaypointOpen)
}

fn shows_scale(qa_type: QaType) -> bool {
    qa_type != QaType::Movement
}

fn state_lines(input: &PromptInput, options: &PromptOptions) -> Vec<String> {
    let mut lines = vec![format!("Position: {}", format_position(input.pose.position))];
    if options.include_rotation {
        let q = input.pose.orientation;
        let parts: Vec<String> = q.iter().map(|&v| format_coordinate(v)).collect();
        lines.push(format!("Orientation (quaternion x, y, z, w): [{}]", parts.join(", ")));
    }
    if options.include_gripper {
        lines.push(format!("Gripper: {}", if input.gripper_open { "open" } else { "closed" }));
    }
    lines
}

fn answer_example(input: &PromptInput) -> String {
    if input.qa_type.is_multiple_choice() {
        format!("[[{}]]", input.example_label)
    } else {
        format_position(input.metadata.origin)
    }
}

/// Renders the prompt text of one question.
pub fn render(input: &PromptInput, options: &PromptOptions) -> String {
    match options.template {
        Template::Paper => render_paper(input, options),
        Template::Compact => render_compact(input, options),
    }
}

fn render_paper(input: &PromptInput, options: &PromptOptions) -> String {
    let m = input.metadata;
    let g = &m.gripper;
    let mut s = String::from("# Robot Assistant for Low-Level Control\n");
    s += "You are a robot assistant that reasons about how a robot arm with a parallel gripper should move. \
          Use the image and the information below to answer the question.\n\n";
    s += &format!("## Task description\nInstruction: \"{}\"\n\n", input.description.trim());
    s += "## Visual Input\nThe image shows the scene from the front view.\n\n";
    s += "## Coordinate System\nPositions are [x, y, z] in metres, in the world frame seen from the front view.\n";
    for (name, axis) in ["X", "Y", "Z"].iter().zip(&m.axes) {
        s += &format!("- {name} axis: {} is positive, {} is negative.\n", axis.positive, axis.negative);
    }
    if shows_scale(input.qa_type) {
        s += &format!("- World origin {} is at {}.\n", format_position(m.origin), m.origin_description);
        s += &format!(
            "\n## Robot Specifications\nThe gripper is {} m wide (x), {} m long (y) and {} m high (z); its fingers are {} m long.\n",
            format_coordinate(g.width),
            format_coordinate(g.length),
            format_coordinate(g.height),
            format_coordinate(g.finger_length)
        );
    }
    if shows_state(input.qa_type) {
        s += &format!("\n## Current Robot State\n{}\n", state_lines(input, options).join("\n"));
    }
    if input.qa_type.is_multiple_choice() {
        s += &format!("\n### Choice Question\n{}\n", question(input.qa_type));
        for (label, text) in input.options {
            s += &format!("[[{label}]] {text}\n");
        }
    } else {
        s += &format!("\n### Question\n{}\n", question(input.qa_type));
    }
    let what = if input.qa_type.is_multiple_choice() { "only the label of your choice" } else { "only the position" };
    s += &format!(
        "\n## Output Format\nFirst think step by step inside <think> </think>, then give {what} inside <answer> </answer>. Example:\n<think> your reasoning </think> <answer> {} </answer>",
        answer_example(input)
    );
    s
}

fn render_compact(input: &PromptInput, options: &PromptOptions) -> String {
    let m = input.metadata;
    let axes: Vec<String> =
        ["x", "y", "z"].iter().zip(&m.axes).map(|(n, a)| format!("{n} +{}/-{}", a.positive, a.negative)).collect();
    let mut lines =
        vec![format!("Task: {}", input.description.trim()), format!("Front view. Axes (m): {}.", axes.join(", "))];
    if shows_scale(input.qa_type) {
        let g = &m.gripper;
        lines.push(format!("Origin {}: {}.", format_position(m.origin), m.origin_description));
        lines.push(format!(
            "Gripper {} x {} x {} m.",
            format_coordinate(g.width),
            format_coordinate(g.length),
            format_coordinate(g.height)
        ));
    }
    if shows_state(input.qa_type) {
        lines.push(state_lines(input, options).join(" "));
    }
    lines.push(format!("Q: {}", question(input.qa_type)));
    for (label, text) in input.options {
        lines.push(format!("[[{label}]] {text}"));
    }
    lines.push(format!("Reply: <think>...</think><answer>{}</answer>", answer_example(input)));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::GripperDims;

    fn options() -> Vec<(String, String)> {
        ["A", "B", "C", "D"].iter().map(|l| (l.to_string(), format!("option {l}"))).collect()
    }

    fn input<'a>(
        qa_type: QaType,
        meta: &'a EnvMetadata,
        pose: &'a Pose,
        opts: &'a [(String, String)],
    ) -> PromptInput<'a> {
        PromptInput {
            qa_type,
            description: "pick up the red cup",
            metadata: meta,
            pose,
            gripper_open: true,
            options: opts,
            example_label: "C",
        }
    }

    #[test]
    fn coordinates_have_three_decimals_and_no_negative_zero() {
        assert_eq!(format_position([0.2544, -0.19749, 0.894]), "[0.254, -0.197, 0.894]");
        assert_eq!(format_position([-0.0001, 1.0, -2.5]), "[0.000, 1.000, -2.500]");
    }

    #[test]
    fn paper_sections_depend_on_the_question() {
        let meta = EnvMetadata::default();
        let pose = Pose { position: [0.1, -0.2, 0.9], orientation: [0.0, 1.0, 0.0, 0.0] };
        let opts = options();
        let paper = PromptOptions::default();
        let w = render(&input(QaType::Waypoint, &meta, &pose, &opts), &paper);
        for section in [
            "# Robot Assistant",
            "## Task description",
            "## Visual Input",
            "## Coordinate System",
            "World origin [0.250, 0.000, 0.752] is at the center of the table surface",
            "## Robot Specifications",
            "0.060 m wide (x), 0.200 m long (y) and 0.090 m high (z)",
            "## Current Robot State\nPosition: [0.100, -0.200, 0.900]",
            "### Choice Question",
            "[[A]] option A\n[[B]] option B\n[[C]] option C\n[[D]] option D",
            "## Output Format",
            "<answer> [[C]] </answer>",
        ] {
            assert!(w.contains(section), "missing {section:?} in\n{w}");
        }
        let c = render(&input(QaType::CurrentState, &meta, &pose, &opts), &paper);
        assert!(!c.contains("Current Robot State") && c.contains("World origin") && c.contains("Robot Specifications"));
        let mv = render(&input(QaType::Movement, &meta, &pose, &opts), &paper);
        assert!(!mv.contains("Current Robot State") && !mv.contains("World origin") && !mv.contains("Specifications"));
        assert!(mv.contains("front is positive, back is negative"));
        let open = render(&input(QaType::WaypointOpen, &meta, &pose, &[]), &paper);
        assert!(
            open.contains("### Question")
                && !open.contains("[[")
                && open.contains("<answer> [0.250, 0.000, 0.752] </answer>")
        );
    }

    #[test]
    fn every_number_comes_from_the_metadata() {
        let default = EnvMetadata::default();
        let mut axes = default.axes.clone();
        axes[1].positive = "east".into();
        let meta = EnvMetadata {
            origin: [1.5, 2.5, 3.5],
            origin_description: "the robot base".into(),
            gripper: GripperDims { width: 0.123, ..default.gripper },
            axes,
            ..default
        };
        let pose = Pose { position: [0.0; 3], orientation: [0.0, 0.0, 0.0, 1.0] };
        for template in [Template::Paper, Template::Compact] {
            let o = PromptOptions { template, ..Default::default() };
            let text = render(&input(QaType::Waypoint, &meta, &pose, &options()), &o);
            assert!(text.contains("[1.500, 2.500, 3.500]") && text.contains("the robot base"), "{text}");
            assert!(text.contains("0.123") && text.contains("east") && !text.contains("0.752"), "{text}");
        }
    }

    #[test]
    fn state_extras_are_opt_in() {
        let meta = EnvMetadata::default();
        let pose = Pose { position: [0.0; 3], orientation: [0.0, 1.0, 0.0, 0.0] };
        let opts = options();
        let i = input(QaType::Waypoint, &meta, &pose, &opts);
        let plain = render(&i, &PromptOptions::default());
        assert!(!plain.contains("Orientation") && !plain.contains("Gripper: open"));
        let full = PromptOptions { include_rotation: true, include_gripper: true, ..Default::default() };
        let text = render(&i, &full);
        assert!(text.contains("Orientation (quaternion x, y, z, w): [0.000, 1.000, 0.000, 0.000]"));
        assert!(text.contains("Gripper: open"));
    }

    #[test]
    fn compact_is_shorter_and_keeps_the_options() {
        let meta = EnvMetadata::default();
        let pose = Pose { position: [0.1, -0.2, 0.9], orientation: [0.0, 1.0, 0.0, 0.0] };
        let opts = options();
        let i = input(QaType::Waypoint, &meta, &pose, &opts);
        let compact = render(&i, &PromptOptions { template: Template::Compact, ..Default::default() });
        let paper = render(&i, &PromptOptions::default());
        assert!(compact.len() * 2 < paper.len(), "{compact}");
        assert!(compact.contains("[[D]] option D") && compact.contains("[0.100, -0.200, 0.900]"));
        assert!(compact.contains("<answer>[[C]]</answer>"));
    }
}
