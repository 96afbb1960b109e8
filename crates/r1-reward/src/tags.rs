//! The four tags of the Robot-R1 output format and one scanner over them, shared by the format
//! check and the answer extraction so that both see exactly the same tags.

/// One of `<think>`, `</think>`, `<answer>`, `</answer>` (case-sensitive, no attributes, no
/// inner whitespace: anything else is ordinary text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    ThinkOpen = 0,
    ThinkClose = 1,
    AnswerOpen = 2,
    AnswerClose = 3,
}

impl Tag {
    const ALL: [Tag; 4] = [Tag::ThinkOpen, Tag::ThinkClose, Tag::AnswerOpen, Tag::AnswerClose];

    pub(crate) const fn text(self) -> &'static str {
        match self {
            Tag::ThinkOpen => "<think>",
            Tag::ThinkClose => "</think>",
            Tag::AnswerOpen => "<answer>",
            Tag::AnswerClose => "</answer>",
        }
    }
}

/// Every tag occurrence in `text` as `(byte offset, tag)`, left to right.
///
/// Each tag holds a single `<`, at its start, so two occurrences can never overlap and the
/// sequence is unambiguous. Offsets are char boundaries (`<` is ASCII). O(len).
pub(crate) fn tags(text: &str) -> impl Iterator<Item = (usize, Tag)> + '_ {
    let bytes = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while let Some(offset) = bytes[pos..].iter().position(|&b| b == b'<') {
            let at = pos + offset;
            let rest = &bytes[at..];
            if let Some(tag) = Tag::ALL.into_iter().find(|t| rest.starts_with(t.text().as_bytes())) {
                pos = at + tag.text().len();
                return Some((at, tag));
            }
            pos = at + 1;
        }
        pos = bytes.len();
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tags_in_order_and_skips_lookalikes() {
        let text = "<<think>a</Think><answer ></think>é<answer></answer>";
        let found: Vec<_> = tags(text).collect();
        assert_eq!(
            found,
            vec![(1, Tag::ThinkOpen), (26, Tag::ThinkClose), (36, Tag::AnswerOpen), (44, Tag::AnswerClose)]
        );
    }
}
