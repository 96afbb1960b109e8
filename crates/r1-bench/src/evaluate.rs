//! Evaluation: ask a model every question, score every completion, summarise.
//!
//! The model is anything that answers a chat ([`Responder`]), so the evaluation logic is the
//! same for a checkpoint on burn, for answers recorded elsewhere ([`RecordedAnswers`]: another
//! model, an API such as GPT-4o) and for a scripted responder in tests. Each question gets
//! `samples` completions (one greedy completion by default); metrics report the mean over
//! completions and, with several, the best of N.
//!
//! Multiple-choice and open-ended QA samples are scored with r1-reward's [`RewardFn`] (strict
//! format, the paper's answer rules); bench questions with [`rubric::score`] and, when a
//! judge is configured, with the judge. A judge failure is recorded on the completion and the
//! completion is left out of the judge's averages, never scored as 0.

use std::collections::BTreeMap;
use std::path::Path;

use r1_data::{Answer, Message, QaSample, QaType};
use r1_reward::{RewardFn, extract_answer, positions};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::judge::{Judge, JudgeScore};
use crate::question::{BenchQuestion, Category, TaskSet};
use crate::rubric;
use crate::stats::{self, Agreement};

/// One reply of a model (a completion) to an evaluation question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub text: String,
    /// Generated tokens; unknown for answers recorded elsewhere ([`RecordedAnswers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
}

/// Anything that answers a chat: `samples` completions for question `id` asked as
/// `messages`, whose image paths are relative to `root`.
pub trait Responder {
    fn respond(&mut self, id: &str, messages: &[Message], root: &Path, samples: usize) -> Result<Vec<Response>>;
}

/// Answers produced elsewhere (another model, an API, a person), read from a JSONL file with
/// one object per question: `{"id": ..., "completion": "..."}` or `{"id": ...,
/// "completions": ["...", ...]}`. Questions are matched by id; a question without an answer
/// is an error, not a silent 0.
pub struct RecordedAnswers {
    path: std::path::PathBuf,
    answers: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RecordedLine {
    id: String,
    #[serde(default)]
    completion: Option<String>,
    #[serde(default)]
    completions: Option<Vec<String>>,
}

impl RecordedAnswers {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let mut answers = BTreeMap::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed: RecordedLine = serde_json::from_str(line).map_err(|source| BenchError::Json {
                path: path.to_path_buf(),
                line: Some(i + 1),
                source,
            })?;
            let list = match (parsed.completion, parsed.completions) {
                (Some(c), None) => vec![c],
                (None, Some(list)) if !list.is_empty() => list,
                _ => {
                    return Err(BenchError::invalid(
                        path,
                        format!("line {}: give exactly one of \"completion\" or a non-empty \"completions\"", i + 1),
                    ));
                }
            };
            if answers.insert(parsed.id.clone(), list).is_some() {
                return Err(BenchError::invalid(
                    path,
                    format!("line {}: question {} is answered twice", i + 1, parsed.id),
                ));
            }
        }
        Ok(Self { path: path.to_path_buf(), answers })
    }

    /// The recorded completions of question `id`; exactly `samples` are required.
    fn get(&self, id: &str, samples: usize) -> Result<Vec<Response>> {
        let list = self
            .answers
            .get(id)
            .ok_or_else(|| BenchError::invalid(&self.path, format!("no answer for question {id}")))?;
        if list.len() != samples {
            return Err(BenchError::invalid(
                &self.path,
                format!("question {id} has {} completions, expected {samples}", list.len()),
            ));
        }
        Ok(list.iter().map(|t| Response { text: t.clone(), tokens: None }).collect())
    }
}

impl Responder for RecordedAnswers {
    fn respond(&mut self, id: &str, _messages: &[Message], _root: &Path, samples: usize) -> Result<Vec<Response>> {
        self.get(id, samples)
    }
}

/// A scored completion of a QA sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QaScore {
    pub completion: Response,
    pub format: f64,
    /// The answer reward: 0 or 1 for multiple choice, `clip(1 - L1, 0, 1)` open ended.
    pub answer: f64,
    /// Open ended: the L1 error (metres) of the predicted position, when one parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<f64>,
}

/// A QA sample's completions and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QaRecord {
    pub id: String,
    pub task: String,
    pub split: TaskSet,
    pub qa_type: QaType,
    pub scores: Vec<QaScore>,
}

/// A scored completion of a bench question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchScore {
    pub completion: Response,
    /// The judged text ([`rubric::judged_text`]).
    pub answer: String,
    pub rule: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeScore>,
    /// Why the judge could not score this completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_error: Option<String>,
}

/// A bench question's completions and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    pub id: String,
    pub task: String,
    pub split: TaskSet,
    pub category: Category,
    pub scores: Vec<BenchScore>,
}

fn checked(completions: Vec<Response>, samples: usize, id: &str) -> Result<Vec<Response>> {
    if completions.len() != samples {
        return Err(BenchError::Config(format!(
            "{id}: the model returned {} completions, expected {samples}",
            completions.len()
        )));
    }
    Ok(completions)
}

/// Answers and scores QA samples (images relative to `root`). `held_out(task)` decides In
/// versus Out; `on_done` is called after each sample (progress).
pub fn run_qa(
    samples: &[QaSample],
    root: &Path,
    responder: &mut dyn Responder,
    n: usize,
    held_out: &dyn Fn(&str) -> bool,
    on_done: &mut dyn FnMut(),
) -> Result<Vec<QaRecord>> {
    let reward = RewardFn::default();
    samples
        .iter()
        .map(|s| {
            let completions = checked(responder.respond(&s.id, &s.messages, root, n)?, n, &s.id)?;
            let scores = completions
                .into_iter()
                .map(|c| {
                    let r = reward.score(&c.text, s)?;
                    let l1 = match (&s.answer, stated_position(&c.text)) {
                        (Answer::Position(t), Some(p)) => Some((0..3).map(|i| (p[i] - t[i]).abs()).sum()),
                        _ => None,
                    };
                    Ok(QaScore { format: r.format(), answer: r.answer(), l1, completion: c })
                })
                .collect::<Result<Vec<_>>>()?;
            on_done();
            let split = if held_out(&s.task) { TaskSet::Out } else { TaskSet::In };
            Ok(QaRecord { id: s.id.clone(), task: s.task.clone(), split, qa_type: s.qa_type, scores })
        })
        .collect()
}

/// The position a reply states, for the open question's L1 error, read from the text the bench
/// judges ([`rubric::judged_text`]): the first of a reasoning reply's answer block, as the
/// reward reads it; the last of any other reply (the SFT baselines', whose targets end
/// `Answer: [x, y, z]`). The reward itself still pays only an answer block.
fn stated_position(completion: &str) -> Option<[f64; 3]> {
    let mut stated = positions(rubric::judged_text(completion));
    if rubric::is_reasoning_reply(completion) { stated.next() } else { stated.last() }
}

/// Answers and scores bench questions (images relative to `root`), with the judge when
/// given.
pub fn run_bench(
    questions: &[BenchQuestion],
    root: &Path,
    responder: &mut dyn Responder,
    n: usize,
    judge: Option<&Judge>,
    on_done: &mut dyn FnMut(),
) -> Result<Vec<BenchRecord>> {
    questions
        .iter()
        .map(|q| {
            let completions = checked(responder.respond(&q.id, &q.messages, root, n)?, n, &q.id)?;
            let question = q.question();
            let scores = completions
                .into_iter()
                .map(|c| {
                    let answer = rubric::judged_text(&c.text).to_string();
                    let rule = rubric::score(&answer, &q.truth);
                    let (judge, judge_error) = match judge.map(|j| j.score(&question, &q.reference, &answer)) {
                        None => (None, None),
                        Some(Ok(s)) => (Some(s), None),
                        Some(Err(e)) => (None, Some(e.to_string())),
                    };
                    BenchScore { completion: c, answer, rule, judge, judge_error }
                })
                .collect();
            on_done();
            Ok(BenchRecord { id: q.id.clone(), task: q.task.clone(), split: q.split, category: q.category, scores })
        })
        .collect()
}

/// Mean over records of `per(record)` (records where it is `None` are left out), with the
/// count; nothing when no record counts.
fn mean_of<R>(records: &[&R], per: impl Fn(&R) -> Option<f64>) -> Option<(f64, usize)> {
    let values: Vec<f64> = records.iter().filter_map(|r| per(r)).collect();
    stats::mean(&values).map(|m| (m, values.len()))
}

fn mean_and_best(xs: impl Iterator<Item = f64> + Clone) -> (Option<f64>, Option<f64>) {
    let v: Vec<f64> = xs.collect();
    (stats::mean(&v), v.iter().copied().reduce(f64::max))
}

/// Writes `<prefix>.<metric>` (mean over records), `<prefix>.best_of_n` when `n > 1`, and
/// `<prefix>.n`.
fn put_group<R>(
    out: &mut BTreeMap<String, f64>,
    prefix: &str,
    metric: &str,
    records: &[&R],
    per: impl Fn(&R) -> Vec<f64>,
    n: usize,
) {
    if let Some((m, count)) = mean_of(records, |r| mean_and_best(per(r).into_iter()).0) {
        out.insert(format!("{prefix}.{metric}"), m);
        out.insert(format!("{prefix}.n"), count as f64);
        if n > 1
            && let Some((b, _)) = mean_of(records, |r| mean_and_best(per(r).into_iter()).1)
        {
            out.insert(format!("{prefix}.best_of_n"), b);
        }
    }
}

/// The flat metrics of `results.json`, for `n` completions per question:
///
/// * `mcqa.modal_answer_share`: the share of multiple-choice completions whose answer is the
///   most common one (1.0: the model gives one answer, say `[[D]]`, whatever the question);
/// * `mcqa.<qa_type>.accuracy`, `.n` (and `.best_of_n` when `n > 1`) for waypoint,
///   current_state and movement; the same under `mcqa.<qa_type>.in.` / `.out.` and
///   `mcqa.<qa_type>.task.<task>.`; `mcqa.in.accuracy`, `mcqa.out.accuracy` over all three;
/// * `mcqa.format_rate` (strict format over every QA completion) and
///   `mcqa.completion_tokens.mean`;
/// * `open.waypoint.reward`, `.n` and `open.waypoint.l1` (mean over completions whose
///   position parses; the position a reply states, see [`stated_position`]),
///   `open.waypoint.parsed_rate`;
/// * `bench.<category>.score`, `.n` (0-3, rule-based), also under `.in.` / `.out.`, and
///   `bench.overall.score` (also `.in.` / `.out.`); with a judge `bench.judge.<category>.score`, `.n`,
///   `bench.judge.failed` and `bench.agreement.{n,pearson,exact,mean_abs_diff}`.
pub fn summarise(qa: &[QaRecord], bench: &[BenchRecord], n: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let answers = |r: &QaRecord| r.scores.iter().map(|s| s.answer).collect::<Vec<_>>();
    let mc: Vec<&QaRecord> = qa.iter().filter(|r| r.qa_type.is_multiple_choice()).collect();
    for t in QaType::ALL.into_iter().filter(|t| t.is_multiple_choice()) {
        let of_type: Vec<&QaRecord> = mc.iter().copied().filter(|r| r.qa_type == t).collect();
        put_group(&mut out, &format!("mcqa.{t}"), "accuracy", &of_type, answers, n);
        for split in [TaskSet::In, TaskSet::Out] {
            let part: Vec<&QaRecord> = of_type.iter().copied().filter(|r| r.split == split).collect();
            put_group(&mut out, &format!("mcqa.{t}.{split}"), "accuracy", &part, answers, n);
        }
        let tasks: std::collections::BTreeSet<&str> = of_type.iter().map(|r| r.task.as_str()).collect();
        for task in tasks {
            let part: Vec<&QaRecord> = of_type.iter().copied().filter(|r| r.task == task).collect();
            put_group(&mut out, &format!("mcqa.{t}.task.{task}"), "accuracy", &part, answers, n);
        }
    }
    for split in [TaskSet::In, TaskSet::Out] {
        let part: Vec<&QaRecord> = mc.iter().copied().filter(|r| r.split == split).collect();
        put_group(&mut out, &format!("mcqa.{split}"), "accuracy", &part, answers, n);
    }
    let mc_answers: Vec<&str> =
        mc.iter().flat_map(|r| &r.scores).map(|s| extract_answer(&s.completion.text).map_or("", str::trim)).collect();
    if !mc_answers.is_empty() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &mc_answers {
            *counts.entry(a).or_default() += 1;
        }
        let modal = counts.values().copied().max().unwrap_or(0);
        out.insert("mcqa.modal_answer_share".into(), modal as f64 / mc_answers.len() as f64);
    }
    let all: Vec<&QaScore> = qa.iter().flat_map(|r| &r.scores).collect();
    if !all.is_empty() {
        out.insert("mcqa.format_rate".into(), all.iter().map(|s| s.format).sum::<f64>() / all.len() as f64);
    }
    let lengths: Vec<f64> = all.iter().filter_map(|s| s.completion.tokens.map(|t| t as f64)).collect();
    if let Some(m) = stats::mean(&lengths) {
        out.insert("mcqa.completion_tokens.mean".into(), m);
    }
    let open: Vec<&QaRecord> = qa.iter().filter(|r| r.qa_type == QaType::WaypointOpen).collect();
    put_group(&mut out, "open.waypoint", "reward", &open, answers, n);
    let open_scores: Vec<&QaScore> = open.iter().flat_map(|r| &r.scores).collect();
    let l1: Vec<f64> = open_scores.iter().filter_map(|s| s.l1).collect();
    if let Some(m) = stats::mean(&l1) {
        out.insert("open.waypoint.l1".into(), m);
    }
    if !open_scores.is_empty() {
        out.insert("open.waypoint.parsed_rate".into(), l1.len() as f64 / open_scores.len() as f64);
    }

    let rules = |r: &BenchRecord| r.scores.iter().map(|s| f64::from(s.rule)).collect::<Vec<_>>();
    let judged = |r: &BenchRecord| r.scores.iter().filter_map(|s| s.judge.as_ref().map(|j| j.mean)).collect::<Vec<_>>();
    let has_judge = bench.iter().flat_map(|r| &r.scores).any(|s| s.judge.is_some() || s.judge_error.is_some());
    for c in Category::ALL {
        let of_cat: Vec<&BenchRecord> = bench.iter().filter(|r| r.category == c).collect();
        put_group(&mut out, &format!("bench.{c}"), "score", &of_cat, rules, n);
        for split in [TaskSet::In, TaskSet::Out] {
            let part: Vec<&BenchRecord> = of_cat.iter().copied().filter(|r| r.split == split).collect();
            put_group(&mut out, &format!("bench.{c}.{split}"), "score", &part, rules, n);
        }
        if has_judge {
            let scored: Vec<&BenchRecord> = of_cat.iter().copied().filter(|r| !judged(r).is_empty()).collect();
            put_group(&mut out, &format!("bench.judge.{c}"), "score", &scored, judged, n);
        }
    }
    let every: Vec<&BenchRecord> = bench.iter().collect();
    put_group(&mut out, "bench.overall", "score", &every, rules, n);
    for split in [TaskSet::In, TaskSet::Out] {
        let part: Vec<&BenchRecord> = every.iter().copied().filter(|r| r.split == split).collect();
        put_group(&mut out, &format!("bench.overall.{split}"), "score", &part, rules, n);
    }
    if has_judge {
        let failed = bench.iter().flat_map(|r| &r.scores).filter(|s| s.judge_error.is_some()).count();
        out.insert("bench.judge.failed".into(), failed as f64);
        let (a, b): (Vec<f64>, Vec<f64>) = bench
            .iter()
            .flat_map(|r| &r.scores)
            .filter_map(|s| s.judge.as_ref().map(|j| (f64::from(s.rule), j.mean)))
            .unzip();
        if let Some(Agreement { n, pearson, exact, mean_abs_diff }) = stats::agreement(&a, &b) {
            out.insert("bench.agreement.n".into(), n as f64);
            if let Some(p) = pearson {
                out.insert("bench.agreement.pearson".into(), p);
            }
            out.insert("bench.agreement.exact".into(), exact);
            out.insert("bench.agreement.mean_abs_diff".into(), mean_abs_diff);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::question::Truth;
    use r1_data::GroundTruth;

    /// Answers from a script keyed by the user text's first word.
    struct Script(Vec<(&'static str, &'static str)>);

    impl Responder for Script {
        fn respond(&mut self, _id: &str, messages: &[Message], _root: &Path, samples: usize) -> Result<Vec<Response>> {
            let text = messages.last().unwrap().joined_text();
            let reply = self.0.iter().find(|(k, _)| text.starts_with(k)).map_or("", |(_, v)| v);
            Ok((0..samples)
                .map(|i| Response { text: if i == 0 { reply.into() } else { String::new() }, tokens: Some(10) })
                .collect())
        }
    }

    fn qa(id: &str, task: &str, qa_type: QaType, text: &str, answer: Answer) -> QaSample {
        let options = qa_type.is_multiple_choice().then(|| {
            [("A", "[0.1, 0.0, 0.9]"), ("B", "[0.3, 0.1, 0.8]"), ("C", "[0.2, -0.1, 1.0]"), ("D", "[0.0, 0.2, 0.85]")]
                .into_iter()
                .map(|(l, t)| (l.to_string(), t.to_string()))
                .collect()
        });
        QaSample {
            id: id.into(),
            task: task.into(),
            variation: 0,
            episode: 0,
            frame: 0,
            keypoint_frame: 5,
            qa_type,
            messages: vec![Message::user_with_image("img.png", text)],
            options,
            answer,
            state: GroundTruth {
                current: [0.0; 3],
                target: [0.3, 0.1, 0.8],
                movement: "move down".into(),
                gripper_open: true,
                target_gripper_open: true,
            },
            sft: None,
        }
    }

    #[test]
    fn summarises_qa_and_bench() {
        let samples = vec![
            qa("1", "pick_up_cup", QaType::Waypoint, "right", Answer::Label("B".into())),
            qa("2", "pick_up_cup", QaType::Waypoint, "wrong", Answer::Label("B".into())),
            qa("3", "stack_blocks", QaType::Waypoint, "right", Answer::Label("B".into())),
            qa("4", "stack_blocks", QaType::WaypointOpen, "open", Answer::Position([0.3, 0.1, 0.8])),
        ];
        let mut script = Script(vec![
            ("right", "<think>x</think><answer>[[B]]</answer>"),
            ("wrong", "<think>x</think><answer>[[A]]</answer>"),
            ("open", "<answer>[0.4, 0.1, 0.7]</answer>"),
            ("Move", "<think>hm</think><answer>move down</answer>"),
        ]);
        let held_out = |t: &str| t == "stack_blocks";
        let records = run_qa(&samples, Path::new("."), &mut script, 1, &held_out, &mut || {}).unwrap();
        let bench = run_bench(&[movement_question("b")], Path::new("."), &mut script, 1, None, &mut || {}).unwrap();
        let m = summarise(&records, &bench, 1);
        let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing from {m:?}"));
        assert!((get("mcqa.waypoint.accuracy") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(get("mcqa.waypoint.n"), 3.0);
        assert_eq!(get("mcqa.waypoint.in.accuracy"), 0.5);
        assert_eq!(get("mcqa.waypoint.out.accuracy"), 1.0);
        assert_eq!(get("mcqa.waypoint.task.stack_blocks.accuracy"), 1.0);
        assert_eq!(get("mcqa.format_rate"), 0.75, "the open answer has no think block");
        assert!((get("mcqa.modal_answer_share") - 2.0 / 3.0).abs() < 1e-12, "[[B]] twice, [[A]] once");
        assert!((get("open.waypoint.l1") - 0.2).abs() < 1e-9);
        assert!((get("open.waypoint.reward") - 0.8).abs() < 1e-9);
        assert_eq!(get("bench.movement.score"), 3.0);
        assert_eq!(get("bench.movement.out.n"), 1.0);
        assert!(!m.contains_key("bench.movement.in.score"));
        assert!(!m.contains_key("mcqa.waypoint.best_of_n"), "one sample: no best of N");
        assert!(!m.contains_key("bench.judge.failed"), "no judge");
    }

    /// A reply without an `<answer>` tag (an SFT baseline's) is measured by the last position it
    /// writes and paid nothing; one with the tag by its answer block alone.
    #[test]
    fn the_open_question_reads_the_position_a_reply_states() {
        let samples: Vec<QaSample> = ["cot", "tagged", "none"]
            .iter()
            .map(|&id| qa(id, "pick_up_cup", QaType::WaypointOpen, id, Answer::Position([0.3, 0.1, 0.8])))
            .collect();
        let mut script = Script(vec![
            ("cot", "Plan: 1. reach [0.0, 0.0, 0.0]. Move: down. Answer: [0.3, 0.1, 0.6]"),
            ("tagged", "<think>[0.0, 0.0, 0.0]</think><answer>[0.3, 0.2, 0.8] or [0.3, 0.1, 0.8]</answer>"),
            ("none", "I cannot tell."),
        ]);
        let records = run_qa(&samples, Path::new("."), &mut script, 1, &|_| false, &mut || {}).unwrap();
        let l1: Vec<Option<f64>> = records.iter().map(|r| r.scores[0].l1).collect();
        assert!((l1[0].unwrap() - 0.2).abs() < 1e-9, "the last position of the reply: {l1:?}");
        assert!((l1[1].unwrap() - 0.1).abs() < 1e-9, "the first of the answer block: {l1:?}");
        assert_eq!(l1[2], None);
        assert_eq!(records[0].scores[0].answer, 0.0, "no answer block, no reward");
        let m = summarise(&records, &[], 1);
        assert!((m["open.waypoint.parsed_rate"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m["open.waypoint.l1"] - 0.15).abs() < 1e-9);
    }

    fn movement_question(id: &str) -> BenchQuestion {
        BenchQuestion {
            id: id.into(),
            task: "stack_blocks".into(),
            split: TaskSet::Out,
            episode: 0,
            frame: 0,
            category: Category::Movement,
            messages: vec![Message::user_with_image("img.png", "Move?")],
            reference: "move down".into(),
            truth: Truth::Movement { phrase: "move down".into() },
        }
    }

    #[test]
    fn a_judge_failure_is_recorded_and_excluded() {
        use crate::judge::JudgeConfig;
        use crate::test_http::{completion, serve};
        // The judge answers the first question and fails on the second.
        let (url, _requests) =
            serve(|n| if n == 0 { (200, completion("Same. Score: 2")) } else { (200, completion("no idea")) });
        let judge = Judge::new(JudgeConfig {
            base_url: url,
            model: "m".into(),
            api_key: None,
            samples: 1,
            timeout: std::time::Duration::from_secs(10),
        });
        let mut script = Script(vec![("Move", "move down")]);
        let questions = [movement_question("q1"), movement_question("q2")];
        let bench = run_bench(&questions, Path::new("."), &mut script, 1, Some(&judge), &mut || {}).unwrap();
        assert_eq!(bench[0].scores[0].judge.as_ref().unwrap().mean, 2.0);
        assert!(bench[1].scores[0].judge.is_none());
        assert!(bench[1].scores[0].judge_error.as_ref().unwrap().contains("no idea"));
        let m = summarise(&[], &bench, 1);
        assert_eq!(m["bench.judge.movement.score"], 2.0, "the failure is not averaged in as 0");
        assert_eq!(m["bench.judge.movement.n"], 1.0);
        assert_eq!(m["bench.judge.failed"], 1.0);
        assert_eq!(m["bench.movement.score"], 3.0, "the rule-based scorer still scores both");
        assert_eq!(m["bench.agreement.n"], 1.0);
        assert_eq!(m["bench.agreement.exact"], 0.0);
    }

    #[test]
    fn recorded_answers_are_matched_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("answers.jsonl");
        std::fs::write(&path, "{\"id\": \"1\", \"completion\": \"<think>x</think><answer>[[B]]</answer>\"}\n\n{\"id\": \"2\", \"completions\": [\"a\", \"b\"]}\n").unwrap();
        let mut answers = RecordedAnswers::read(&path).unwrap();
        let samples = vec![qa("1", "t", QaType::Waypoint, "q", Answer::Label("B".into()))];
        let records = run_qa(&samples, Path::new("."), &mut answers, 1, &|_| false, &mut || {}).unwrap();
        assert_eq!(records[0].scores[0].answer, 1.0);
        assert_eq!(summarise(&records, &[], 1).get("mcqa.completion_tokens.mean"), None, "no token counts");
        let err = answers.respond("2", &[], Path::new("."), 1).unwrap_err().to_string();
        assert!(err.contains("has 2 completions"), "{err}");
        let err = answers.respond("3", &[], Path::new("."), 1).unwrap_err().to_string();
        assert!(err.contains("no answer for question 3") && err.contains("answers.jsonl"), "{err}");
        std::fs::write(&path, "{\"id\": \"1\"}\n").unwrap();
        let err = RecordedAnswers::read(&path).err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, "{\"id\": \"1\", \"completion\": \"a\"}\n{\"id\": \"1\", \"completion\": \"b\"}\n")
            .unwrap();
        assert!(RecordedAnswers::read(&path).is_err(), "answered twice");
    }

    #[test]
    fn best_of_n_uses_every_sample() {
        // The script answers right on the first sample only.
        let samples = vec![qa("1", "t", QaType::Waypoint, "right", Answer::Label("B".into()))];
        let mut script = Script(vec![("right", "<think>x</think><answer>[[B]]</answer>")]);
        let records = run_qa(&samples, Path::new("."), &mut script, 4, &|_| false, &mut || {}).unwrap();
        let m = summarise(&records, &[], 4);
        assert_eq!(m["mcqa.waypoint.accuracy"], 0.25);
        assert_eq!(m["mcqa.waypoint.best_of_n"], 1.0);
    }

    #[test]
    fn a_responder_returning_too_few_completions_is_an_error() {
        struct Short;
        impl Responder for Short {
            fn respond(&mut self, _: &str, _: &[Message], _: &Path, _: usize) -> Result<Vec<Response>> {
                Ok(vec![])
            }
        }
        let samples = vec![qa("x1", "t", QaType::Waypoint, "q", Answer::Label("B".into()))];
        let err = run_qa(&samples, Path::new("."), &mut Short, 1, &|_| false, &mut || {}).unwrap_err();
        assert!(err.to_string().contains("x1"), "{err}");
    }
}
