//! The learned blind baseline: a small network trained on the training split that answers
//! multiple-choice questions from what the prompt's text states, never the image. The fixed
//! rules of [`r1_data::blind`] only test shortcuts someone thought of; this finds the ones
//! nobody did (a waypoint option whose height no keypoint of the task has, say).
//!
//! Each option is scored on its own, from the numbers a reader of the prompt has:
//! * the current position, when the prompt prints one (`Position: [x, y, z]`), and a flag
//!   saying whether it does;
//! * the option: a position `[x, y, z]`, or a movement phrase as its per-axis levels (-2..2,
//!   parsed with the episode's axis names, which the prompt also prints);
//! * for a position option with a printed current position, their difference and distance;
//! * the task, one-hot over the training split's tasks (all zero for a task it never saw).
//!
//! One network per question type, `features -> 64 -> 64 -> 1` with ReLU, features standardised
//! with the training split's mean and deviation. A question's options are ranked by score, a
//! softmax over them trained with cross-entropy on the right one: full batch, AdamW, a fixed
//! number of epochs, on the CPU. It answers the option with the highest score.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use r1_data::blind::{Baseline, Score, options_and_answer, parse_position};
use r1_data::dataset::{DatasetCard, Split, read_split, write_card};
use r1_data::episode::EnvMetadata;
use r1_data::movement::Movement;
use r1_data::{DataError, QaSample, QaType};

use crate::error::Result;

/// Width of both hidden layers.
const HIDDEN: usize = 64;
/// Full-batch optimiser steps per question type: enough for the training loss to level off on
/// a few thousand questions (a few seconds on two cores).
const EPOCHS: usize = 400;
const LEARNING_RATE: f64 = 3e-3;
/// Score of a padding option (questions with fewer options than the widest one): far below
/// any real score, finite so that the softmax stays finite.
const ABSENT: f32 = -1.0e9;

/// Where the prompt prints the current position (the paper's template and r1's own).
const CURRENT_MARKER: &str = "Position: [";

#[derive(Module, Debug)]
struct Scorer {
    input: Linear,
    hidden: Linear,
    output: Linear,
    relu: Relu,
}

impl Scorer {
    fn new(features: usize, device: &Device) -> Self {
        Self {
            input: LinearConfig::new(features, HIDDEN).init(device),
            hidden: LinearConfig::new(HIDDEN, HIDDEN).init(device),
            output: LinearConfig::new(HIDDEN, 1).init(device),
            relu: Relu::new(),
        }
    }

    /// `[questions, options, features]` -> scores `[questions, options]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let h = self.relu.forward(self.input.forward(x));
        let h = self.relu.forward(self.hidden.forward(h));
        self.output.forward(h).squeeze_dim(2)
    }
}

/// A question as the network reads it: each option's raw features, and the right option.
struct Encoded {
    options: Vec<Vec<f32>>,
    answer: usize,
}

/// The text-only model's accuracy on each multiple-choice type of each of `evals`, trained on
/// the multiple-choice questions of `train`. `metadata` gives a sample's episode metadata (the
/// axis names its movement phrases use). Types absent from `train` or from an eval set are
/// absent from its map.
pub fn text_only_scores<'m>(
    train: &[QaSample],
    evals: &[&[QaSample]],
    metadata: impl Fn(&QaSample) -> &'m EnvMetadata,
    seed: u64,
) -> Result<Vec<BTreeMap<QaType, Score>>> {
    let tasks: Vec<&str> = {
        let mut t: Vec<&str> = train.iter().map(|s| s.task.as_str()).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let device = Device::flex();
    let mut scores = vec![BTreeMap::new(); evals.len()];
    for qa_type in QaType::ALL.into_iter().filter(|t| t.is_multiple_choice()) {
        let encode = |samples: &[QaSample]| -> Result<Vec<Encoded>> {
            samples.iter().filter(|s| s.qa_type == qa_type).map(|s| encode(s, metadata(s), &tasks)).collect()
        };
        let train_q = encode(train)?;
        if train_q.is_empty() {
            continue;
        }
        let standardise = Standardiser::fit(&train_q);
        device.seed(seed);
        let model = fit(&train_q, &standardise, &device.clone().autodiff()).valid();
        for (eval, score) in evals.iter().zip(&mut scores) {
            let eval_q = encode(eval)?;
            if eval_q.is_empty() {
                continue;
            }
            let predicted = predict(&model, &eval_q, &standardise, &device);
            let correct = predicted.iter().zip(&eval_q).filter(|(p, q)| **p == q.answer).count();
            score.insert(qa_type, Score::new(correct as f64, eval_q.len()));
        }
    }
    Ok(scores)
}

/// Adds the text-only model, trained on the training split, to the blind baselines of the
/// other splits of the card of the dataset in `root`, and rewrites the card. (On the split it
/// learnt from, its score would say how well it memorises, not what the text gives away.)
pub fn add_to_card<'m>(
    root: &Path,
    mut card: DatasetCard,
    metadata: impl Fn(&QaSample) -> &'m EnvMetadata,
    seed: u64,
) -> Result<DatasetCard> {
    let train = read_split(root, Split::Train)?;
    let held = [Split::Val, Split::Test].map(|split| read_split(root, split).map(|samples| (split, samples)));
    let splits = held.into_iter().collect::<std::result::Result<Vec<_>, DataError>>()?;
    let evals: Vec<&[QaSample]> = splits.iter().map(|(_, samples)| samples.as_slice()).collect();
    let scores = text_only_scores(&train, &evals, metadata, seed)?;
    for ((split, _), per_type) in splits.iter().zip(scores) {
        if let Some(split_card) = card.splits.get_mut(&split.to_string())
            && !per_type.is_empty()
        {
            split_card.blind.scores.insert(Baseline::TextOnlyModel, per_type);
        }
    }
    write_card(root, &card)?;
    Ok(card)
}

/// The features of every option of `sample` (see the module docs), and the answer's index.
fn encode(sample: &QaSample, metadata: &EnvMetadata, tasks: &[&str]) -> Result<Encoded> {
    let bad = |message: String| DataError::Sample { id: sample.id.clone(), message };
    let (options, _, answer) = options_and_answer(sample)?;
    let current = printed_current(sample);
    let task = tasks.iter().map(|t| f32::from(u8::from(*t == sample.task)));
    let options = options
        .values()
        .map(|text| {
            let (option, offset) = if sample.qa_type == QaType::Movement {
                let m = Movement::parse(text, &metadata.axes)
                    .ok_or_else(|| bad(format!("option {text:?} is not a movement")))?;
                (m.levels().map(f64::from), None)
            } else {
                let p = parse_position(text).ok_or_else(|| bad(format!("option {text:?} is not a position")))?;
                (p, current.map(|c| std::array::from_fn::<f64, 3, _>(|a| p[a] - c[a])))
            };
            let distance = offset.map_or(0.0, |d| d.iter().map(|x| x * x).sum::<f64>().sqrt());
            let mut f: Vec<f32> = Vec::new();
            f.extend(current.unwrap_or_default().map(|x| x as f32));
            f.push(f32::from(u8::from(current.is_some())));
            f.extend(option.map(|x| x as f32));
            f.extend(offset.unwrap_or_default().map(|x| x as f32));
            f.push(distance as f32);
            f.extend(task.clone());
            Ok(f)
        })
        .collect::<std::result::Result<Vec<_>, DataError>>()?;
    Ok(Encoded { options, answer })
}

/// The current position the prompt prints, if it prints one.
fn printed_current(sample: &QaSample) -> Option<[f64; 3]> {
    sample.messages.iter().map(|m| m.joined_text()).find_map(|text| {
        let start = text.find(CURRENT_MARKER)? + CURRENT_MARKER.len() - 1;
        let end = start + text[start..].find(']')? + 1;
        parse_position(&text[start..end])
    })
}

/// Per-feature mean and deviation of the training options.
struct Standardiser {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardiser {
    fn fit(questions: &[Encoded]) -> Self {
        let rows: Vec<&Vec<f32>> = questions.iter().flat_map(|q| &q.options).collect();
        let n = rows.len() as f64;
        let width = rows[0].len();
        let mean: Vec<f64> = (0..width).map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n).collect();
        let std = (0..width)
            .map(|j| {
                let var = rows.iter().map(|r| (f64::from(r[j]) - mean[j]).powi(2)).sum::<f64>() / n;
                // A constant feature (a task with one question type, say) stays as it is.
                if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        Self { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }

    /// `[questions, widest, features]` standardised features, and a `[questions, widest]`
    /// additive mask ([`ABSENT`] where a question has fewer options).
    fn batch(&self, questions: &[Encoded], device: &Device) -> (Tensor<3>, Tensor<2>) {
        let widest = questions.iter().map(|q| q.options.len()).max().unwrap_or(0);
        let width = self.mean.len();
        let mut x = vec![0.0f32; questions.len() * widest * width];
        let mut mask = vec![ABSENT; questions.len() * widest];
        for (i, q) in questions.iter().enumerate() {
            for (k, f) in q.options.iter().enumerate() {
                let row = &mut x[(i * widest + k) * width..][..width];
                for (j, v) in f.iter().enumerate() {
                    row[j] = (v - self.mean[j]) / self.std[j];
                }
                mask[i * widest + k] = 0.0;
            }
        }
        (
            Tensor::from_data(TensorData::new(x, [questions.len(), widest, width]), device),
            Tensor::from_data(TensorData::new(mask, [questions.len(), widest]), device),
        )
    }
}

/// Trains a scorer on `questions` (full batch) on the autodiff `device`.
fn fit(questions: &[Encoded], standardise: &Standardiser, device: &Device) -> Scorer {
    let (x, mask) = standardise.batch(questions, device);
    let answers: Vec<i64> = questions.iter().map(|q| q.answer as i64).collect();
    let answers = Tensor::<1, Int>::from_data(TensorData::new(answers, [questions.len()]), device);
    let mut model = Scorer::new(standardise.mean.len(), device);
    let mut optim = AdamWConfig::new().init();
    for _ in 0..EPOCHS {
        let logp = log_softmax(model.forward(x.clone()) + mask.clone(), 1);
        let loss = -logp.gather(1, answers.clone().unsqueeze_dim(1)).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(LEARNING_RATE, model, grads);
    }
    model
}

/// The index of the highest-scoring option of each question.
fn predict(model: &Scorer, questions: &[Encoded], standardise: &Standardiser, device: &Device) -> Vec<usize> {
    let (x, mask) = standardise.batch(questions, device);
    let best = (model.forward(x) + mask).argmax(1);
    best.into_data().iter::<i64>().map(|i| i as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use r1_data::Answer;
    use r1_data::qa::{GroundTruth, Message};

    /// A waypoint question whose options are `points`, the answer at `answer`.
    fn question(id: usize, points: [[f64; 3]; 4], answer: usize) -> QaSample {
        let labels = ["A", "B", "C", "D"];
        let options = labels.iter().zip(points).map(|(l, p)| (l.to_string(), format!("{p:?}"))).collect();
        QaSample {
            id: format!("t/v0/e{id}/f0/waypoint"),
            task: "t".into(),
            variation: 0,
            episode: id as u32,
            frame: 0,
            keypoint_frame: 10,
            qa_type: QaType::Waypoint,
            messages: vec![Message::text(
                "user",
                "Current Robot State\nPosition: [0.100, 0.000, 1.000]\nWhich option?",
            )],
            options: Some(options),
            answer: Answer::Label(labels[answer].into()),
            state: GroundTruth {
                current: [0.1, 0.0, 1.0],
                target: points[answer],
                movement: String::new(),
                gripper_open: true,
                target_gripper_open: true,
            },
            sft: None,
        }
    }

    /// Questions whose right option is the lowest one (`planted`) or a random one.
    fn questions(n: usize, seed: u64, planted: bool) -> Vec<QaSample> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let points: [[f64; 3]; 4] =
                    std::array::from_fn(|_| std::array::from_fn(|_| (rng.random::<f64>() * 1000.0).round() / 1000.0));
                let lowest = (0..4).min_by(|&a, &b| points[a][2].total_cmp(&points[b][2])).unwrap();
                question(i, points, if planted { lowest } else { rng.random_range(0..4) })
            })
            .collect()
    }

    #[test]
    fn finds_a_rule_the_text_gives_away_and_nothing_where_there_is_none() {
        let metadata = EnvMetadata::default();
        let accuracy = |planted: bool| {
            let eval = questions(200, 2, planted);
            let scores = text_only_scores(&questions(300, 1, planted), &[&eval], |_| &metadata, 0).unwrap();
            scores[0][&QaType::Waypoint].accuracy
        };
        let (found, none) = (accuracy(true), accuracy(false));
        assert!(found > 0.9, "the lowest option is always right, the model answers {found}");
        assert!((0.15..0.35).contains(&none), "answers are random, the model answers {none}");
    }

    #[test]
    fn reads_the_printed_current_position() {
        let q = question(0, [[0.0; 3]; 4], 0);
        assert_eq!(printed_current(&q), Some([0.1, 0.0, 1.0]));
        let mut silent = q.clone();
        silent.messages = vec![Message::text("user", "Which option?")];
        assert_eq!(printed_current(&silent), None);
    }
}
