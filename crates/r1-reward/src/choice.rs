//! Multiple-choice answers: which option does an answer name?

use std::collections::BTreeMap;

use crate::error::SampleError;

/// What an answer names among a question's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named<'o> {
    Nothing,
    /// Exactly one option, by its label (a key of the options map).
    One(&'o str),
    /// Two or more distinct options.
    Several,
}

impl<'o> Named<'o> {
    fn and(self, label: &'o str) -> Self {
        match self {
            Named::Nothing => Named::One(label),
            Named::One(l) if l == label => self,
            Named::One(_) | Named::Several => Named::Several,
        }
    }
}

/// The options `answer` names, by the first of these forms that it uses:
/// 1. labels in double brackets, `[[B]]` (case-insensitive, spaces allowed inside the
///    brackets); when the answer holds at least one, nothing else counts, and a bracketed label
///    that is not an option names nothing;
/// 2. a lone label: the whole trimmed answer is `B`, `(B)` or `B.` (case-insensitive);
/// 3. an option's full text: the whole answer equals the option's text once both are trimmed,
///    stripped of one trailing `.`, freed of all whitespace and lowercased.
///
/// A bracketed label is `[[`, optional whitespace, one or more ASCII letters or digits,
/// optional whitespace, `]]`. O(len(answer) × options), no allocation.
pub fn named_options<'o>(answer: &str, options: &'o BTreeMap<String, String>) -> Named<'o> {
    let label_of = |written: &str| options.keys().find(|k| k.eq_ignore_ascii_case(written)).map(String::as_str);

    let mut bracketed = false;
    let mut named = Named::Nothing;
    for written in bracketed_labels(answer) {
        bracketed = true;
        if let Some(label) = label_of(written) {
            named = named.and(label);
        }
    }
    if bracketed {
        return named;
    }

    let trimmed = answer.trim();
    let lone = trimmed
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .or_else(|| trimmed.strip_suffix('.'))
        .unwrap_or(trimmed)
        .trim();
    if let Some(label) = label_of(lone) {
        return Named::One(label);
    }

    options
        .iter()
        .filter(|(_, text)| normalised(text).eq(normalised(answer)))
        .fold(Named::Nothing, |named, (label, _)| named.and(label))
}

/// 1.0 when `answer` names exactly one option and its label is `correct`, else 0.0.
pub fn choice_reward(answer: &str, options: &BTreeMap<String, String>, correct: &str) -> f64 {
    match named_options(answer, options) {
        Named::One(label) if label == correct => 1.0,
        _ => 0.0,
    }
}

/// Checks that `options` can be scored fairly and that `correct` is one of them: labels must be
/// writable in double brackets, and no option text may normalise to nothing (an empty answer
/// would otherwise name it).
pub fn check_options(options: &BTreeMap<String, String>, correct: &str) -> Result<(), SampleError> {
    for (label, text) in options {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SampleError::BadOption {
                label: label.clone(),
                reason: "labels must be ASCII letters or digits",
            });
        }
        if normalised(text).next().is_none() {
            return Err(SampleError::BadOption { label: label.clone(), reason: "the option text is blank" });
        }
    }
    if !options.contains_key(correct) {
        let labels = options.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        return Err(SampleError::UnknownLabel { label: correct.into(), labels });
    }
    Ok(())
}

/// The contents of every well-formed `[[label]]` in `text`, left to right.
fn bracketed_labels(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        while let Some(i) = rest.find("[[") {
            // On failure, resume one byte on so that `[[[B]]` still finds `[[B]]`; the scan
            // stops at the next `[` at the latest, so the whole search stays linear.
            let inner = rest[i + 2..].trim_start();
            let len = inner.bytes().take_while(u8::is_ascii_alphanumeric).count();
            let (label, after) = inner.split_at(len);
            if len > 0
                && let Some(next) = after.trim_start().strip_prefix("]]")
            {
                rest = next;
                return Some(label);
            }
            rest = &rest[i + 1..];
        }
        None
    })
}

/// The characters compared for full-text matching (see [`named_options`]).
fn normalised(text: &str) -> impl Iterator<Item = char> + '_ {
    let text = text.trim();
    let text = text.strip_suffix('.').unwrap_or(text);
    text.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BTreeMap<String, String> {
        [("A", "[0.1, 0.2, 0.3]"), ("B", "Move up and slightly left"), ("C", "move up"), ("D", "[0.4, 0.5, 0.6]")]
            .into_iter()
            .map(|(l, t)| (l.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn bracketed_labels_take_precedence() {
        let o = options();
        assert_eq!(named_options("I pick [[B]]", &o), Named::One("B"));
        assert_eq!(named_options("[[ b ]] because move up", &o), Named::One("B"));
        assert_eq!(named_options("[[[B]]]", &o), Named::One("B"));
        assert_eq!(named_options("[[B]] or [[b]]", &o), Named::One("B"));
        assert_eq!(named_options("[[B]] or [[C]]", &o), Named::Several);
        // An unknown bracketed label names nothing and still shuts out the other forms.
        assert_eq!(named_options("[[E]] move up", &o), Named::Nothing);
        assert_eq!(named_options("[[E]] [[C]]", &o), Named::One("C"));
    }

    #[test]
    fn lone_labels() {
        let o = options();
        for a in ["B", " b ", "(B)", "B.", "( B )"] {
            assert_eq!(named_options(a, &o), Named::One("B"), "{a:?}");
        }
        for a in ["B)", "Option B", "B, C", "E", "(B", "[B]"] {
            assert_eq!(named_options(a, &o), Named::Nothing, "{a:?}");
        }
    }

    #[test]
    fn full_text_is_whole_answer_normalised() {
        let o = options();
        assert_eq!(named_options("  MOVE UP and slightly\nleft. ", &o), Named::One("B"));
        assert_eq!(named_options("move up", &o), Named::One("C"));
        assert_eq!(named_options("[0.1,0.2,0.3]", &o), Named::One("A"));
        // Containing an option is not naming it: a listing names nothing.
        assert_eq!(named_options("move up or [0.1, 0.2, 0.3]", &o), Named::Nothing);
        assert_eq!(named_options("", &o), Named::Nothing);
    }

    #[test]
    fn reward_needs_exactly_the_correct_option() {
        let o = options();
        assert_eq!(choice_reward("[[C]]", &o, "C"), 1.0);
        assert_eq!(choice_reward("[[B]]", &o, "C"), 0.0);
        assert_eq!(choice_reward("[[A]][[B]][[C]][[D]]", &o, "C"), 0.0);
        assert_eq!(choice_reward("A B C D", &o, "C"), 0.0);
    }

    #[test]
    fn checks_options() {
        let mut o = options();
        assert_eq!(check_options(&o, "B"), Ok(()));
        assert!(matches!(check_options(&o, "E"), Err(SampleError::UnknownLabel { .. })));
        o.insert("E".into(), " . ".into());
        assert!(matches!(check_options(&o, "B"), Err(SampleError::BadOption { .. })));
        o.remove("E");
        o.insert("E F".into(), "x".into());
        assert!(matches!(check_options(&o, "B"), Err(SampleError::BadOption { .. })));
    }
}
