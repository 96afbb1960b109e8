//! Blind baselines on freshly simulated question sets: with the default (balanced)
//! distractors no rule that ignores the image may beat 40% on any question type (chance is
//! 25%). The settings are the default dataset's (`datasets/README.md`: all ten tasks, seed 0,
//! the simulator's held-out tasks, default question settings) with fewer episodes and smaller
//! images: the questions do not depend on the image size.
//!
//! `cargo test --release -p r1-sim --test blind -- --ignored --nocapture` prints the tables of
//! both distractor styles on 10 tasks x 10 episodes (`R1_BLIND_EPISODES=N` for another size;
//! `R1_BLIND_OUT=DIR` keeps the datasets as `DIR/paper` and `DIR/balanced`, which must not
//! exist).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use r1_data::blind::{Baseline, BlindBaselines, blind_baselines};
use r1_data::dataset::{DatasetConfig, Split, SplitConfig, read_split, write_dataset};
use r1_data::distractors::DistractorStyle;
use r1_data::qa_build::QaConfig;
use r1_data::{EnvMetadata, Episode, QaSample, QaType};
use r1_sim::{SimConfig, is_held_out, simulate, task_names};

const MULTIPLE_CHOICE: [QaType; 3] = [QaType::Waypoint, QaType::CurrentState, QaType::Movement];

fn simulated(episodes_per_task: usize) -> Vec<Episode> {
    let cfg = SimConfig { tasks: Vec::new(), episodes_per_task, seed: 0, image_size: 16 };
    simulate(&cfg, |_, _| {}).unwrap()
}

fn default_config(style: DistractorStyle) -> DatasetConfig {
    DatasetConfig {
        source: "tests/blind.rs".into(),
        qa: QaConfig { distractors: style, ..Default::default() },
        split: SplitConfig {
            held_out_tasks: task_names().into_iter().filter(|t| is_held_out(t)).map(String::from).collect(),
            ..Default::default()
        },
        overwrite: false,
    }
}

/// The per-split baselines from the data card, and those of all splits together (with the
/// majority label fitted on train).
fn baselines(episodes: &[Episode], style: DistractorStyle) -> (BTreeMap<String, BlindBaselines>, BlindBaselines) {
    let tmp = tempfile::tempdir().unwrap();
    baselines_in(&tmp.path().join("ds"), episodes, style)
}

/// As [`baselines`], writing the dataset to `root` (which must not exist).
fn baselines_in(
    root: &Path,
    episodes: &[Episode],
    style: DistractorStyle,
) -> (BTreeMap<String, BlindBaselines>, BlindBaselines) {
    let card = write_dataset(episodes, root, &default_config(style), || {}).unwrap();
    let per_split = card.splits.iter().map(|(s, c)| (s.clone(), c.blind.clone())).collect();
    let read = |s| read_split(root, s).unwrap();
    let train = read(Split::Train);
    let all: Vec<QaSample> = Split::ALL.into_iter().flat_map(read).collect();
    let metadata: BTreeMap<String, &EnvMetadata> = episodes.iter().map(|e| (e.id(), &e.metadata)).collect();
    let id = |s: &QaSample| format!("{}/v{}/e{}", s.task, s.variation, s.episode);
    let overall = blind_baselines(&train, &all, |s| metadata[&id(s)]).unwrap();
    (per_split, overall)
}

#[test]
fn no_blind_rule_beats_forty_percent_with_balanced_distractors() {
    let episodes = simulated(5);
    let (per_split, overall) = baselines(&episodes, DistractorStyle::Balanced);
    let mut checked = 0;
    for (name, b) in per_split.iter().map(|(s, b)| (s.as_str(), b)).chain([("all", &overall)]) {
        for t in MULTIPLE_CHOICE {
            for baseline in Baseline::RULES.into_iter().filter(|b| b.applies_to(t)) {
                let Some(score) = b.scores.get(&baseline).and_then(|per| per.get(&t)) else {
                    panic!("{name}: no {baseline} score for {t}\n{}", b.to_markdown());
                };
                // Small splits (val) are too noisy to judge.
                if score.n < 100 {
                    continue;
                }
                checked += 1;
                assert!(
                    score.accuracy <= 0.40,
                    "{name}: {baseline} answers {:.1}% of {} {t} questions blind\n{}",
                    100.0 * score.accuracy,
                    score.n,
                    b.to_markdown()
                );
            }
        }
    }
    // Every rule on every type it applies to, at least over all splits together.
    assert!(overall.scores[&Baseline::Medoid][&QaType::Movement].n >= 100);
    assert!(checked >= 10, "{checked} scores checked");
}

#[test]
fn paper_distractors_are_answerable_blind() {
    // The shortcuts the balanced style removes, measured the same way: the paper's uniform
    // positions and adjacent movements give the answer away.
    let (_, overall) = baselines(&simulated(2), DistractorStyle::Paper);
    let acc = |b: Baseline, t: QaType| overall.scores[&b][&t].accuracy;
    assert!(acc(Baseline::NearestCurrent, QaType::Waypoint) > 0.6, "{}", overall.to_markdown());
    assert!(acc(Baseline::Medoid, QaType::Movement) > 0.6, "{}", overall.to_markdown());
    assert!(acc(Baseline::NearestWorkspaceCentre, QaType::CurrentState) > 0.6, "{}", overall.to_markdown());
}

#[test]
#[ignore = "a report: run with --ignored --nocapture"]
fn report_blind_baselines_of_both_styles() {
    let n = std::env::var("R1_BLIND_EPISODES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let episodes = simulated(n);
    let keep = std::env::var_os("R1_BLIND_OUT").map(PathBuf::from);
    for style in DistractorStyle::ALL {
        let (per_split, overall) = match &keep {
            Some(dir) => baselines_in(&dir.join(style.to_string()), &episodes, style),
            None => baselines(&episodes, style),
        };
        println!("## distractors {style}, 10 tasks x {n} episodes, seed 0\n");
        for (split, b) in &per_split {
            println!("### {split}\n\n{}", b.to_markdown());
        }
        println!("### all splits (majority label fitted on train)\n\n{}", overall.to_markdown());
    }
}
