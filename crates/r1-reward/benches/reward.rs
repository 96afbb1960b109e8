//! Completions scored per second on one core, for typical ~300-character completions of every
//! question kind (issue 5 asks for at least 100,000/s). Run with
//! `cargo bench --workspace --bench reward`; the figure is criterion's `thrpt` in elements/s.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_data::{Answer, QaType};
use r1_reward::{FormatMode, RewardConfig, RewardFn};

type Question = (QaType, Option<BTreeMap<String, String>>, Answer, &'static str);

fn labelled(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|&(l, t)| (l.to_string(), t.to_string())).collect())
}

/// One completion per question kind, each about 300 characters of reasoning and an answer.
fn questions() -> Vec<Question> {
    let positions = labelled(&[
        ("A", "[0.254, -0.197, 0.894]"),
        ("B", "[0.310, 0.042, 0.781]"),
        ("C", "[0.188, -0.105, 0.802]"),
        ("D", "[0.402, 0.133, 0.915]"),
    ]);
    let moves = labelled(&[
        ("A", "move up"),
        ("B", "move down and slightly left"),
        ("C", "slightly move front and move down"),
        ("D", "move left"),
    ]);
    vec![
        (
            QaType::Waypoint,
            positions.clone(),
            Answer::Label("C".into()),
            "<think>The gripper is open above the red cup at [0.254, -0.197, 0.894]. To grasp the cup it must \
          descend toward the table and shift a little to the right, so the next keypoint is lower and \
          slightly to the right of the current state. Option C matches that best; B and D are too high.</think>\n<answer>[[C]]</answer>",
        ),
        (
            QaType::CurrentState,
            positions,
            Answer::Label("A".into()),
            "<think>The end effector hovers over the cup, about ninety centimetres above the floor, close to \
          the middle of the table and slightly left of the robot base. Of the four options only A has that \
          height and that lateral offset, so A it is.</think>\n<answer>A</answer>",
        ),
        (
            QaType::Movement,
            moves,
            Answer::Label("B".into()),
            "<think>The target keypoint is below the current gripper position because the cup sits on the \
          table, and it is a little to the left of it. The largest change is downward, the lateral change \
          is about half of it, hence slightly left.</think>\n<answer>Move down and slightly left</answer>",
        ),
        (
            QaType::WaypointOpen,
            None,
            Answer::Position([0.188, -0.105, 0.802]),
            "<think>The gripper starts at [0.254, -0.197, 0.894]. The cup handle is about nine centimetres \
          lower, seven centimetres closer to the robot and nine centimetres to the right, which puts the \
          grasp point near the coordinates below, within a centimetre.</think>\n<answer>[0.19, -0.11, 0.80]</answer>",
        ),
        (
            QaType::Movement,
            None,
            Answer::Movement("move down and slightly left".into()),
            "<think>The cup is on the table below the gripper and a little to its left. The arm should \
          descend first; the sideways correction is smaller than the descent, so it is a slight move to \
          the left, then the gripper can close.</think>\n<answer>Move down and slightly left.</answer>",
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let questions = questions();
    let mean_len = questions.iter().map(|q| q.3.len()).sum::<usize>() / questions.len();
    let mut group = c.benchmark_group(format!("score ({} questions, mean {mean_len} chars)", questions.len()));
    group.throughput(Throughput::Elements(questions.len() as u64));
    for format in [FormatMode::Strict, FormatMode::Paper] {
        let f = RewardFn::new(RewardConfig { format, ..RewardConfig::default() });
        group.bench_function(format.to_string(), |b| {
            b.iter(|| {
                for (qa_type, options, answer, completion) in &questions {
                    let rewards = f.score_parts(black_box(completion), *qa_type, options.as_ref(), answer);
                    black_box(rewards.expect("the questions are valid"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
