//! The format reward: is the completion `<think>` reasoning followed by an `<answer>`?

use serde::{Deserialize, Serialize};

use crate::tags::{Tag, tags};

/// Which format rule the format reward applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FormatMode {
    /// After trimming, exactly `<think>`…`</think>`, optional whitespace, `<answer>`…`</answer>`,
    /// each of the four tags exactly once.
    #[default]
    Strict,
    /// The paper's regex `<think>.*?</think>\s*<answer>.*?</answer>` (dot matches newline,
    /// full match), applied to the trimmed completion.
    Paper,
}

impl std::fmt::Display for FormatMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// The format reward: 1.0 when `completion` satisfies `mode`, else 0.0.
pub fn format_reward(completion: &str, mode: FormatMode) -> f64 {
    if is_well_formatted(completion, mode) { 1.0 } else { 0.0 }
}

/// Whether `completion` satisfies `mode`. Leading and trailing whitespace never matter, in either
/// mode: generation usually stops after a newline, and trimming in paper mode too keeps it a
/// pure relaxation of strict mode (everything strict accepts, paper accepts).
pub fn is_well_formatted(completion: &str, mode: FormatMode) -> bool {
    let text = completion.trim();
    match mode {
        FormatMode::Strict => is_strict(text),
        FormatMode::Paper => is_paper(text),
    }
}

fn is_strict(text: &str) -> bool {
    // Offset of each tag's only occurrence, indexed by `Tag as usize`.
    let mut at: [Option<usize>; 4] = [None; 4];
    for (pos, tag) in tags(text) {
        let slot = &mut at[tag as usize];
        if slot.is_some() {
            return false;
        }
        *slot = Some(pos);
    }
    let [Some(think_open), Some(think_close), Some(answer_open), Some(answer_close)] = at else {
        return false;
    };
    // Tags never overlap, so `think_close < answer_open` makes the slice below well-formed.
    think_open == 0
        && answer_close + Tag::AnswerClose.text().len() == text.len()
        && think_close < answer_open
        && answer_open < answer_close
        && text[think_close + Tag::ThinkClose.text().len()..answer_open].chars().all(char::is_whitespace)
}

fn is_paper(text: &str) -> bool {
    let Some(body) = text.strip_prefix(Tag::ThinkOpen.text()).and_then(|t| t.strip_suffix(Tag::AnswerClose.text()))
    else {
        return false;
    };
    // The two lazy `.*?` accept any text, so a full match exists iff some `</think>` in the
    // body is followed by whitespace and then `<answer>`. `<answer>` starts with a non-space,
    // so the whitespace run after each `</think>` is taken whole; those runs are disjoint, which
    // keeps this linear.
    let close = Tag::ThinkClose.text();
    let mut from = 0;
    while let Some(i) = body[from..].find(close) {
        let after = from + i + close.len();
        if body[after..].trim_start().starts_with(Tag::AnswerOpen.text()) {
            return true;
        }
        from = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(c: &str) -> (f64, f64) {
        (format_reward(c, FormatMode::Strict), format_reward(c, FormatMode::Paper))
    }

    #[test]
    fn accepts_the_canonical_form_with_whitespace() {
        assert_eq!(both("<think>reason</think><answer>B</answer>"), (1.0, 1.0));
        assert_eq!(both("\n <think>\nreason\n</think>\n\n<answer> B </answer>\n"), (1.0, 1.0));
        assert_eq!(both("<think></think><answer></answer>"), (1.0, 1.0));
    }

    #[test]
    fn rejects_text_outside_the_blocks() {
        assert_eq!(both("so <think>a</think><answer>B</answer>"), (0.0, 0.0));
        assert_eq!(both("<think>a</think><answer>B</answer> done"), (0.0, 0.0));
        assert_eq!(both("<think>a</think> so <answer>B</answer>"), (0.0, 0.0));
        assert_eq!(both("<answer>B</answer><think>a</think>"), (0.0, 0.0));
        assert_eq!(both("<think>a</think>"), (0.0, 0.0));
        assert_eq!(both(""), (0.0, 0.0));
    }

    #[test]
    fn repeated_tags_fail_strict_but_may_match_the_paper_regex() {
        // The regex's `.*?` spans the inner tags; strict mode demands each tag once.
        assert_eq!(both("<think>a</think><answer>B</answer><think>b</think><answer>C</answer>"), (0.0, 1.0));
        assert_eq!(both("<think>a <answer>C</answer></think><answer>B</answer>"), (0.0, 1.0));
        assert_eq!(both("<think>a</think>x</think><answer>B</answer>"), (0.0, 1.0));
    }

    #[test]
    fn mode_names() {
        for (mode, name) in [(FormatMode::Strict, "strict"), (FormatMode::Paper, "paper")] {
            assert_eq!(mode.to_string(), name);
            assert_eq!(serde_json::from_str::<FormatMode>(&format!("\"{name}\"")).unwrap(), mode);
            assert_eq!(<FormatMode as clap::ValueEnum>::from_str(name, false).unwrap(), mode);
        }
        let err = serde_json::from_str::<FormatMode>("\"loose\"").unwrap_err().to_string();
        assert!(err.contains("loose") && err.contains("strict") && err.contains("paper"), "{err}");
    }
}
