//! `cargo xtask reward`: Robot-R1 rewards for the completions of a JSONL file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use r1_data::{Answer, QaType};
use r1_reward::{FormatMode, PositionMetric, RewardConfig, RewardFn, Weights};
use serde::{Deserialize, Deserializer};

use crate::progress;

/// Reads one JSON object per line and writes each back to standard output, in order and
/// otherwise unchanged, with a `rewards` object added: `{"format", "answer", "total"}`.
///
/// Accepted lines: `{"id", "qa_type": "waypoint"|"current_state"|"movement", "completion",
/// "options": {"A": text, ...} (or [text, ...], labelled A, B, ... in order), "answer": "B"}`, `{"id", "qa_type": "waypoint_open",
/// "completion", "target": [x, y, z]}`, and QA-dataset lines (`cargo xtask data`) with a
/// `completion` field added. Blank lines are skipped. The first malformed line stops the
/// command with its file and line number.
#[derive(clap::Args)]
pub struct Args {
    /// The JSONL file of completions.
    #[arg(long)]
    input: PathBuf,
    /// Component weights as `name=weight` pairs (components: format, answer); unlisted
    /// components keep their default weight of 1.
    #[arg(long, default_value = "format=1,answer=1")]
    weights: Weights,
    /// The format rule: `strict` (each tag exactly once, nothing outside the two blocks) or
    /// `paper` (the paper's regex).
    #[arg(long, default_value = "strict")]
    format: FormatMode,
    /// The open-ended position reward: `l1` (the paper's), `l2` or `per_axis`.
    #[arg(long, default_value = "l1")]
    position: PositionMetric,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reward = RewardFn::new(RewardConfig { format: args.format, position: args.position, weights: args.weights });
    let path = &args.input;
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let bar = progress::bar(file.metadata().map_or(0, |m| m.len()), "reward");
    let mut out = BufWriter::new(std::io::stdout().lock());
    score_lines(BufReader::new(bar.wrap_read(file)), &mut out, path, &reward)?;
    bar.finish_and_clear();
    Ok(())
}

/// Scores every line of `input` (read from `path`, named in errors) into `out`.
fn score_lines(input: impl BufRead, out: &mut impl Write, path: &Path, reward: &RewardFn) -> anyhow::Result<()> {
    for (index, line) in input.lines().enumerate() {
        let at = format!("{}:{}", path.display(), index + 1);
        let line = line.with_context(|| format!("{at}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let scored = score_line(&line, reward).with_context(|| at.clone())?;
        writeln!(out, "{scored}").context("cannot write to standard output")?;
    }
    out.flush().context("cannot write to standard output")
}

/// The fields of an input line that scoring reads; all others pass through untouched.
#[derive(Deserialize)]
struct Line {
    completion: String,
    qa_type: QaType,
    #[serde(default, deserialize_with = "options_map")]
    options: Option<BTreeMap<String, String>>,
    /// A bare label (`"B"`, simple lines) or a typed answer (`{"label": "B"}`, QA-dataset lines).
    #[serde(default)]
    answer: Option<serde_json::Value>,
    /// The open-ended target of simple `waypoint_open` lines.
    #[serde(default)]
    target: Option<[f64; 3]>,
    #[serde(default, rename = "rewards", deserialize_with = "present")]
    has_rewards: bool,
}

/// `options` as a map from label to text (`{"A": "move up", ...}`, the dataset's form) or as a
/// list of texts, labelled `A`, `B`, ... in order.
fn options_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Options {
        Map(BTreeMap<String, String>),
        List(Vec<String>),
    }
    let options = Option::<Options>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("`options` must be {\"A\": text, ...} or [text, ...]"))?;
    Ok(options.map(|o| match o {
        Options::Map(map) => map,
        Options::List(texts) => texts.into_iter().enumerate().map(|(i, text)| (option_label(i), text)).collect(),
    }))
}

/// `A`, `B`, ..., `Z`, then `AA`, `AB`, ...: the label of the `i`-th listed option.
fn option_label(i: usize) -> String {
    let letter = |k: usize| char::from(b'A' + (k % 26) as u8);
    if i < 26 { letter(i).to_string() } else { format!("{}{}", letter(i / 26 - 1), letter(i)) }
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The typed answer of a line, from either of its spellings.
fn typed_answer(answer: Option<serde_json::Value>, target: Option<[f64; 3]>) -> anyhow::Result<Answer> {
    Ok(match (answer, target) {
        (Some(serde_json::Value::String(label)), None) => Answer::Label(label),
        (Some(typed), None) => serde_json::from_value(typed).context(
            "invalid answer: expected a label such as \"B\", or {\"label\": ...}, {\"position\": [x, y, z]} \
             or {\"movement\": ...}",
        )?,
        (None, Some(target)) => Answer::Position(target),
        (Some(_), Some(_)) => bail!("has both `answer` and `target`; give one"),
        (None, None) => bail!("has no `answer` (a label or a typed answer) nor `target` ([x, y, z])"),
    })
}

/// A JSON error located by column only: serde_json counts lines within the one line it was
/// given, which would contradict the file's line number in front of it.
fn json_error(error: serde_json::Error) -> anyhow::Error {
    let message = error.to_string();
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
    anyhow!("column {}: {message}", error.column())
}

/// The line with `"rewards": {...}` added as its last field. The input text is kept byte for
/// byte (field order, number spelling), only surrounding whitespace is dropped.
fn score_line(line: &str, reward: &RewardFn) -> anyhow::Result<String> {
    let line = line.trim();
    let Some(body) = line.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else {
        bail!("expected one JSON object `{{...}}` on the line");
    };
    let parsed: Line = serde_json::from_str(line).map_err(json_error)?;
    if parsed.has_rewards {
        bail!("already has a `rewards` field; score the file without it");
    }
    let answer = typed_answer(parsed.answer, parsed.target)?;
    let rewards = reward.score_parts(&parsed.completion, parsed.qa_type, parsed.options.as_ref(), &answer)?;
    // `body` is not empty: a line that parsed holds at least `completion` and `qa_type`.
    Ok(format!("{{{},\"rewards\":{}}}", body.trim_end(), serde_json::to_string(&rewards)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &str = r#"{"id": 1, "qa_type": "movement", "completion": "<think>t</think><answer>[[B]]</answer>", "options": {"A": "move up", "B": "move down"}, "answer": "B"}
{"id": 2, "qa_type": "waypoint_open", "completion": "<think>t</think> <answer>[0.1, 0.2, 0.3]</answer>", "target": [0.1, 0.2, 0.5]}

{"id": 3, "qa_type": "waypoint", "completion": "[[A]]", "options": {"A": "[0, 0, 1]", "B": "[0, 1, 0]"}, "answer": {"label": "A"}}
"#;

    fn score(input: &str, reward: RewardFn) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        score_lines(input.as_bytes(), &mut out, Path::new("in.jsonl"), &reward)?;
        Ok(String::from_utf8(out)?.lines().map(str::to_string).collect())
    }

    #[test]
    fn adds_rewards_to_each_line_in_order() {
        let lines = score(SIMPLE, RewardFn::default()).unwrap();
        assert_eq!(lines.len(), 3);
        let first = SIMPLE.lines().next().unwrap();
        assert_eq!(
            lines[0],
            format!("{},\"rewards\":{{\"format\":1.0,\"answer\":1.0,\"total\":2.0}}}}", &first[..first.len() - 1])
        );
        let rewards: Vec<serde_json::Value> =
            lines.iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rewards"].clone()).collect();
        let total = |i: usize| rewards[i]["total"].as_f64().unwrap();
        assert!((total(1) - 1.8).abs() < 1e-12, "{}", rewards[1]);
        assert_eq!(rewards[2], serde_json::json!({"format": 0.0, "answer": 0.0, "total": 0.0}));
    }

    /// Options listed without labels are labelled A, B, ... in order and score as the map form.
    #[test]
    fn listed_options_are_labelled_in_order() {
        let listed = SIMPLE
            .lines()
            .next()
            .unwrap()
            .replace(r#"{"A": "move up", "B": "move down"}"#, r#"["move up", "move down"]"#);
        let scored = |line: &str| {
            let out: serde_json::Value = serde_json::from_str(&score(line, RewardFn::default()).unwrap()[0]).unwrap();
            out["rewards"].clone()
        };
        assert_eq!(scored(&listed), scored(SIMPLE.lines().next().unwrap()));
        assert_eq!(scored(&listed)["answer"], 1.0);
        assert_eq!(
            (option_label(0), option_label(25), option_label(26), option_label(27)),
            ("A".into(), "Z".into(), "AA".into(), "AB".into())
        );
        let bad = SIMPLE.lines().next().unwrap().replace(r#"{"A": "move up", "B": "move down"}"#, "3");
        let err = format!("{:#}", score(&bad, RewardFn::default()).unwrap_err());
        assert!(err.contains("in.jsonl:1") && err.contains("`options` must be"), "{err}");
    }

    #[test]
    fn honours_weights_and_format() {
        let config = RewardConfig {
            format: FormatMode::Paper,
            weights: "format=0,answer=3".parse().unwrap(),
            ..Default::default()
        };
        let lines = score(SIMPLE, RewardFn::new(config)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(value["rewards"], serde_json::json!({"format": 1.0, "answer": 1.0, "total": 3.0}));
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        for (bad, needle) in [
            ("[1, 2]", "expected one JSON object"),
            (r#"{"qa_type": "waypoint", "answer": "A"}"#, "missing field `completion`"),
            (r#"{"qa_type": "sideways", "completion": ""}"#, "unknown variant `sideways`"),
            (r#"{"qa_type": "waypoint_open", "completion": ""}"#, "has no `answer`"),
            (r#"{"qa_type": "waypoint_open", "completion": "", "target": [0, 0, 0], "answer": "A"}"#, "both"),
            (r#"{"qa_type": "waypoint", "completion": "", "answer": "A"}"#, "needs options"),
            (r#"{"qa_type": "waypoint", "completion": "", "answer": {"colour": "red"}}"#, "invalid answer"),
            (r#"{"qa_type": "waypoint_open", "completion": "", "target": [0, 0, 0], "rewards": {}}"#, "already has"),
            (r#"{"qa_type": "waypoint_open", "completion": "", "target": [0, 0, 0]"#, "expected one JSON object"),
        ] {
            let input = format!("{SIMPLE}{bad}\n");
            let err = format!("{:#}", score(&input, RewardFn::default()).unwrap_err());
            assert!(err.starts_with("in.jsonl:5: ") && err.contains(needle), "{bad}: {err}");
        }
    }
}
