//! r1-reward: Robot-R1's rewards. A completion plus a QA sample's answer become named reward
//! components and their weighted total.
//!
//! ```
//! use r1_data::{Answer, QaType};
//! use r1_reward::{RewardConfig, RewardFn};
//!
//! let options = [("A", "move up"), ("B", "move down")].map(|(l, t)| (l.to_string(), t.to_string())).into();
//! let rewards = RewardFn::new(RewardConfig::default())
//!     .score_parts("<think>The cup is below.</think><answer>[[B]]</answer>", QaType::Movement,
//!                  Some(&options), &Answer::Label("B".into()))
//!     .unwrap();
//! assert_eq!((rewards.format(), rewards.answer(), rewards.total()), (1.0, 1.0, 2.0));
//! ```
//!
//! # Rules
//! - Format (strict, the default): after trimming leading and trailing whitespace, the completion
//!   is `<think>` ... `</think>`, optional whitespace, `<answer>` ... `</answer>`, and nothing else;
//!   each of the four tags occurs exactly once. 1 or 0. The paper's looser regex
//!   (`<think>.*?</think>\s*<answer>.*?</answer>`, dot matches newline, full match) is an option.
//! - The answer is the content of the one `<answer>` block that is not inside `<think>`; zero or
//!   several such blocks mean no answer. The answer components below need an answer, not the
//!   format.
//! - Multiple-choice answer (waypoint, current state, movement): 1 when the answer names exactly
//!   one option and it is the correct one, else 0. An answer names an option by its label in
//!   double brackets (`[[B]]`, case-insensitive); if it has no double-bracket label, by a lone
//!   label (`B`, `(B)`, `B.`); if neither, by the option's full text (whitespace and case
//!   normalised). Bracketed labels take precedence over anything else; a label that is not one of
//!   the options names nothing; several distinct options named means 0.
//! - Open-ended position: the first `[x, y, z]` triple of numbers in the answer is the prediction;
//!   reward `clip(1 - L1, 0, 1)` with L1 the sum of absolute per-axis errors in metres; no triple or
//!   a non-finite number gives 0. L2 and per-axis variants as options.
//! - Open-ended movement (for bench-style answers): directions parsed from text (forward/front,
//!   backward/back, left, right, up, down, "slightly"), compared per axis; document the partial
//!   credit.
//! - Composition: named components with weights; `total` is the weighted sum. Default: format 1 +
//!   answer 1, as in the paper.
//!
//! # The rules in detail (what the wording above leaves open)
//! - Tags are exactly `<think>`, `</think>`, `<answer>`, `</answer>` (case-sensitive);
//!   whitespace is Unicode whitespace. Paper mode also trims the completion first, so it accepts
//!   everything strict mode accepts ([`is_well_formatted`]).
//! - Extraction: a `<think>` runs to the next `</think>`, or to the end when never closed; a
//!   block holding another tag, or an `<answer>` left open at the end, means no answer
//!   ([`extract_answer`]).
//! - Multiple choice: `[[ B ]]` counts (spaces inside), a lone label is the whole trimmed answer,
//!   full text means the whole answer equals the option text after trimming, dropping one
//!   trailing `.`, removing all whitespace and lowercasing; containing an option's text is not
//!   naming it ([`named_options`]). Samples whose labels are not ASCII letters or digits, or
//!   whose option texts are blank, are refused ([`check_options`]).
//! - Position: the prediction is exactly 1 only at the target; anything else, even off by a
//!   rounding error, gets strictly less ([`position_reward`], [`PositionMetric`]).
//! - Movement partial credit: the mean over the axes along which the answer or the reference
//!   moves of 1 (same direction, same "slightly"), 0.5 (same direction, "slightly" differs) or
//!   0 (opposite directions, or only one moves); "stay still" is the movement with no step; an
//!   answer with neither a direction nor "still", or with contradictory directions on one axis,
//!   earns 0 ([`parse_movement`], [`movement_credit`]).
//! - Weights are finite and >= 0 ([`Weights`]). A bad completion never causes an error; a
//!   sample that cannot be scored does ([`SampleError`]).

mod choice;
mod compose;
mod error;
mod extract;
mod format;
mod movement;
mod position;
mod tags;

pub use choice::{Named, check_options, choice_reward, named_options};
pub use compose::{Component, RewardConfig, RewardFn, Rewards, Weights};
pub use error::{MovementError, RewardError, SampleError};
pub use extract::extract_answer;
pub use format::{FormatMode, format_reward, is_well_formatted};
pub use movement::{Axis, AxisMove, ParsedMovement, movement_credit, movement_reward, parse_movement};
pub use position::{PositionMetric, parse_position, position_answer_reward, position_reward, positions};
