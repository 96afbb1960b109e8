//! r1-bench: evaluation of Robot-R1 models.
//!
//! * [`question`]: the Robot-R1 Bench question format and the system prompt the evaluated
//!   model answers under.
//! * [`make`]: builds the bench from r1-sim's ground truth (the rules of every category).
//! * [`rubric`]: the deterministic rule-based 0-3 scorer, one published rule per category.
//! * [`judge`]: the optional LLM judge (any OpenAI-compatible chat-completions endpoint).
//! * [`evaluate`]: asks a model every question and summarises the scores as flat metrics.
//! * [`report`]: `results.json`, the Markdown report, checkpoint resolution and the comparison
//!   of runs.
//! * [`charts`]: PNG bar charts of one evaluation.
//! * [`plot`]: line charts of a series over steps (a run's metrics), and the bundled font.
//! * [`stats`]: means and standard deviations over seeds, scorer agreement.
//! * [`text_only`]: the learned blind baseline, a network that answers from the prompt's text.

pub mod charts;
pub mod error;
pub mod evaluate;
pub mod judge;
pub mod make;
pub mod plot;
pub mod question;
pub mod report;
pub mod rubric;
pub mod stats;
#[cfg(test)]
mod test_http;
pub mod text_only;

pub use error::{BenchError, Result};
