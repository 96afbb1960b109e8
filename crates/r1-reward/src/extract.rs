//! Answer extraction: the content of the one `<answer>` block that is not inside `<think>`.

use crate::tags::{Tag, tags};

/// The answer of `completion`: the text between `<answer>` and the next `</answer>`, for the one
/// such block that is not inside `<think>`…`</think>`. `None` when there is no such block or
/// several, and also when the answer is ambiguous in one of these ways:
/// * a block holds another tag (`<answer>a<think>b</answer>`, `<answer>a<answer>b</answer>`),
/// * the completion ends inside an `<answer>` that was never closed.
///
/// Rules of the scan: a `<think>` runs to the next `</think>` (or to the end, if never closed),
/// and every tag inside it is ignored; stray closing tags outside any block are ignored. The
/// content is returned untrimmed. O(len), no allocation.
pub fn extract_answer(completion: &str) -> Option<&str> {
    enum State {
        Outside,
        Think,
        /// Inside an answer block whose content starts at this byte offset.
        Answer(usize),
    }
    let mut state = State::Outside;
    let mut found = None;
    for (pos, tag) in tags(completion) {
        state = match (state, tag) {
            (State::Outside, Tag::ThinkOpen) => State::Think,
            (State::Outside, Tag::AnswerOpen) => State::Answer(pos + tag.text().len()),
            (State::Outside, Tag::ThinkClose | Tag::AnswerClose) => State::Outside,
            (State::Think, Tag::ThinkClose) => State::Outside,
            (State::Think, _) => State::Think,
            (State::Answer(start), Tag::AnswerClose) => {
                if found.is_some() {
                    return None;
                }
                found = Some(&completion[start..pos]);
                State::Outside
            }
            (State::Answer(_), _) => return None,
        };
    }
    match state {
        State::Answer(_) => None,
        State::Outside | State::Think => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_block_outside_think() {
        assert_eq!(extract_answer("<think>x</think><answer> B </answer>"), Some(" B "));
        assert_eq!(extract_answer("<think>try <answer>A</answer></think>\n<answer>C</answer>"), Some("C"));
        assert_eq!(extract_answer("no think <answer>D</answer> trailing"), Some("D"));
        assert_eq!(extract_answer("<answer></answer>"), Some(""));
        assert_eq!(extract_answer("</answer></think><answer>A</answer>"), Some("A"));
    }

    #[test]
    fn zero_or_several_blocks_or_ambiguity_give_none() {
        assert_eq!(extract_answer("<think>x</think>B"), None);
        assert_eq!(extract_answer("<think><answer>A</answer></think>"), None);
        assert_eq!(extract_answer("<think>never closed <answer>A</answer>"), None);
        assert_eq!(extract_answer("<answer>A</answer><answer>B</answer>"), None);
        assert_eq!(extract_answer("<answer>A</answer><answer>B"), None);
        assert_eq!(extract_answer("<answer>A"), None);
        assert_eq!(extract_answer("<answer>A<answer>B</answer>"), None);
        assert_eq!(extract_answer("<answer>A<think>B</think></answer>"), None);
        // A nested `<think>` closes at its first `</think>`, exposing the first answer.
        assert_eq!(extract_answer("<think>a<think>b</think><answer>A</answer></think><answer>B</answer>"), None);
    }
}
