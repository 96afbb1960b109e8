//! Typed errors. A completion never causes an error (a bad completion earns 0); errors concern
//! the configuration (weights) or a sample whose reference answer cannot be scored.

use r1_data::QaType;

use crate::movement::Axis;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RewardError {
    /// A `--weights` specification such as `format=1,answer=oops`.
    #[error("invalid weights {spec:?}: {reason}")]
    Weights { spec: String, reason: String },
    /// A QA sample that cannot be scored.
    #[error("sample {id}: {source}")]
    Sample {
        id: String,
        #[source]
        source: SampleError,
    },
}

/// Why a question's reference (its type, options and answer) cannot be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("a {qa_type} question cannot have a {found} answer")]
    AnswerKind { qa_type: QaType, found: &'static str },
    #[error("a multiple-choice question needs options")]
    NoOptions,
    /// Labels must be writable as `[[label]]`; option texts must not be blank, or an empty
    /// answer would name them.
    #[error("option {label:?}: {reason}")]
    BadOption { label: String, reason: &'static str },
    #[error("answer label {label:?} is not one of the options ({labels})")]
    UnknownLabel { label: String, labels: String },
    #[error("target position {0:?} is not finite")]
    NonFiniteTarget([f64; 3]),
    #[error("reference movement {text:?}: {source}")]
    Movement {
        text: String,
        #[source]
        source: MovementError,
    },
}

/// Why a text does not describe one movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MovementError {
    #[error("names no direction (and is not \"stay still\")")]
    NoDirection,
    #[error("gives contradictory directions along the {0} axis")]
    Contradiction(Axis),
}
