//! QA dataset files: the writer, the split rule, the data card and the reader.
//!
//! ```text
//! <root>/
//!   qa/train.jsonl, qa/val.jsonl, qa/test.jsonl   one QaSample per line (see `qa.rs`)
//!   images/<task>/v<variation>/e<episode>/<camera>_<frame>.png
//!   card.json                                      the configuration and counts
//!   README.md                                      the same, for people
//! ```
//! Image paths inside the samples are relative to `<root>`.
//!
//! Splits go by episode, never by frame, so no image of a validation or test episode is
//! seen in training. Per task, episodes are ordered by (variation, episode), shuffled with a
//! generator seeded by the split seed and the task name, and the first
//! `round(n * test_fraction)` go to test, the next `round(n * val_fraction)` to val, the rest
//! to train. Held-out ("Out") tasks go to test entirely.
//!
//! The data card also reports, per split, the blind baselines (`crate::blind`): how often
//! rules that ignore the image (nearest option to the printed current position, medoid of the
//! options, option nearest to the workspace centre or the origin, the training split's most
//! common answer label) pick the right option.
//!
//! The dataset is written under a temporary sibling folder and renamed into place at the
//! end: a failed run leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::blind::{BlindBaselines, BlindTally};
use crate::episode::Episode;
use crate::error::{DataError, Result};
use crate::fsutil::{StagedDir, create_dir, write_atomic, write_pngs};
use crate::qa::{QaSample, QaType};
use crate::qa_build::{QaConfig, TaskKeypoints, build_episode, keyed_rng};

/// One of the three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::names::fmt_name(self, f)
    }
}

/// How episodes are divided (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Tasks whose episodes all go to test (the "Out" set).
    pub held_out_tasks: Vec<String>,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { val_fraction: 0.1, test_fraction: 0.1, held_out_tasks: Vec::new(), seed: 0 }
    }
}

/// Everything the dataset writer needs besides the episodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Where the episodes came from, for the data card (a path, or the simulator settings).
    pub source: String,
    pub qa: QaConfig,
    pub split: SplitConfig,
    /// Replace an existing dataset folder (only once the new one is complete).
    #[serde(skip)]
    pub overwrite: bool,
}

/// Counts for one task within one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub episodes: usize,
    /// Samples per question type (`waypoint`, `current_state`, ...).
    pub samples: BTreeMap<String, usize>,
}

/// Counts for one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitCard {
    pub episodes: usize,
    pub samples: usize,
    pub tasks: BTreeMap<String, TaskCounts>,
    /// Blind-baseline accuracies of this split (absent from cards written before they were
    /// measured).
    #[serde(default)]
    pub blind: BlindBaselines,
}

/// The data card (`card.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetCard {
    pub config: DatasetConfig,
    /// Keyed by split name.
    pub splits: BTreeMap<String, SplitCard>,
}

/// The split of every episode, in input order (see the module docs). Fails on fractions
/// outside `[0, 1]` or summing above 1, and on held-out tasks that no episode has.
pub fn assign_splits(episodes: &[Episode], config: &SplitConfig) -> Result<Vec<Split>> {
    let (v, t) = (config.val_fraction, config.test_fraction);
    if !((0.0..=1.0).contains(&v) && (0.0..=1.0).contains(&t) && v + t <= 1.0) {
        return Err(DataError::Config(format!(
            "split fractions must lie in [0, 1] and sum to at most 1 (val {v}, test {t})"
        )));
    }
    let mut by_task: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in episodes.iter().enumerate() {
        by_task.entry(&e.task).or_default().push(i);
    }
    if let Some(missing) = config.held_out_tasks.iter().find(|t| !by_task.contains_key(t.as_str())) {
        let known: Vec<&str> = by_task.keys().copied().collect();
        return Err(DataError::Config(format!(
            "held-out task {missing:?} is not among the tasks: {}",
            known.join(", ")
        )));
    }
    let mut splits = vec![Split::Train; episodes.len()];
    for (task, mut members) in by_task {
        if config.held_out_tasks.iter().any(|t| t == task) {
            members.iter().for_each(|&i| splits[i] = Split::Test);
            continue;
        }
        members.sort_by_key(|&i| (episodes[i].variation, episodes[i].episode));
        members.shuffle(&mut keyed_rng(config.seed, &format!("split/{task}")));
        let n = members.len() as f64;
        let n_test = (n * t).round() as usize;
        let n_val = ((n * v).round() as usize).min(members.len() - n_test);
        for (rank, &i) in members.iter().enumerate() {
            splits[i] = if rank < n_test {
                Split::Test
            } else if rank < n_test + n_val {
                Split::Val
            } else {
                Split::Train
            };
        }
    }
    Ok(splits)
}

/// Builds the QA samples of `episodes` (validated ones, with unique ids) and writes the
/// dataset folder `out` (see the module docs). `on_episode` is called after each episode,
/// for progress display. Returns the data card.
pub fn write_dataset(
    episodes: &[Episode],
    out: &Path,
    config: &DatasetConfig,
    mut on_episode: impl FnMut(),
) -> Result<DatasetCard> {
    config.qa.check()?;
    let splits = assign_splits(episodes, &config.split)?;
    let mut ids = BTreeSet::new();
    if let Some(dup) = episodes.iter().find(|e| !ids.insert(e.id())) {
        return Err(DataError::Config(format!("episode {} appears twice", dup.id())));
    }
    let staged = StagedDir::new(out)?;
    let qa_dir = staged.path().join("qa");
    create_dir(&qa_dir)?;
    let mut writers = BTreeMap::new();
    for split in Split::ALL {
        let path = split_path(staged.path(), split);
        let file = std::fs::File::create(&path).map_err(|e| DataError::io(&path, e))?;
        writers.insert(split, (path, BufWriter::new(file)));
    }
    let mut card: BTreeMap<String, SplitCard> =
        Split::ALL.iter().map(|s| (s.to_string(), SplitCard::default())).collect();
    let mut blind: BTreeMap<Split, BlindTally> = Split::ALL.iter().map(|&s| (s, BlindTally::default())).collect();
    // Lines go in (task, variation, episode) order, so the same episodes listed in another
    // order (simulated, or read back from disk) give the same files.
    let mut order: Vec<usize> = (0..episodes.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |e: &Episode| (e.task.clone(), e.variation, e.episode);
        key(&episodes[a]).cmp(&key(&episodes[b]))
    });
    let task_keypoints = TaskKeypoints::new(episodes, &config.qa.keypoints);
    for (episode, &split) in order.iter().map(|&i| (&episodes[i], &splits[i])) {
        let qa = build_episode(episode, &config.qa, &task_keypoints)?;
        let mut images = Vec::with_capacity(qa.images.len());
        for (frame, rel) in &qa.images {
            let dest = staged.path().join(rel);
            if let Some(parent) = dest.parent() {
                create_dir(parent)?;
            }
            images.push((&episode.steps[*frame].images[&qa.camera], dest));
        }
        write_pngs(&images, Path::new(""))?;
        let (path, writer) = writers.get_mut(&split).expect("a writer per split");
        let tally = blind.get_mut(&split).expect("a tally per split");
        for sample in &qa.samples {
            tally.add(sample, &episode.metadata)?;
            let line =
                serde_json::to_string(sample).map_err(|source| DataError::Json { path: path.clone(), source })?;
            writeln!(writer, "{line}").map_err(|e| DataError::io(&*path, e))?;
        }
        let split_card = card.get_mut(&split.to_string()).expect("a card per split");
        split_card.episodes += 1;
        split_card.samples += qa.samples.len();
        let task = split_card.tasks.entry(episode.task.clone()).or_default();
        task.episodes += 1;
        for sample in &qa.samples {
            *task.samples.entry(sample.qa_type.to_string()).or_default() += 1;
        }
        on_episode();
    }
    for (_, (path, mut writer)) in writers {
        writer.flush().map_err(|e| DataError::io(&path, e))?;
    }
    for (split, tally) in &blind {
        card.get_mut(&split.to_string()).expect("a card per split").blind = tally.finish(&blind[&Split::Train]);
    }
    let card = DatasetCard { config: config.clone(), splits: card };
    write_card(staged.path(), &card)?;
    staged.commit(config.overwrite)?;
    Ok(card)
}

/// Writes the data card of the dataset in `root`: `card.json` and its Markdown rendering,
/// `README.md`, each atomically.
pub fn write_card(root: &Path, card: &DatasetCard) -> Result<()> {
    let card_path = root.join("card.json");
    let json =
        serde_json::to_string_pretty(card).map_err(|source| DataError::Json { path: card_path.clone(), source })?;
    write_atomic(&card_path, (json + "\n").as_bytes()).map_err(|e| DataError::io(&card_path, e))?;
    let readme = root.join("README.md");
    write_atomic(&readme, render_card(card).as_bytes()).map_err(|e| DataError::io(&readme, e))
}

/// The data card as Markdown.
pub fn render_card(card: &DatasetCard) -> String {
    let c = &card.config;
    let mut s = String::from("# Robot-R1 QA dataset\n\n");
    s += &format!("Source: {}\n\n", if c.source.is_empty() { "(not recorded)" } else { &c.source });
    s += "Layout: `qa/{train,val,test}.jsonl` (one question per line, Hugging Face chat `messages` with the \
          image first; image paths relative to this folder), `images/`, `card.json` (this card, machine readable).\n\n";
    s += "## Settings\n\n";
    let types: Vec<String> = c.qa.qa_types.iter().map(QaType::to_string).collect();
    let held_out =
        if c.split.held_out_tasks.is_empty() { "none".to_string() } else { c.split.held_out_tasks.join(", ") };
    for (k, v) in [
        ("question types", types.join(", ")),
        ("current frame every", format!("{} steps", c.qa.every)),
        ("prompt template", c.qa.prompt.template.to_string()),
        ("distractors", c.qa.distractors.to_string()),
        ("minimum distractor distance", format!("{} m", c.qa.min_distractor_distance)),
        ("maximum distractor distance", c.qa.max_distractor_distance.map_or("none".into(), |m| format!("{m} m"))),
        ("negligible movement", format!("{} m", c.qa.negligible_movement)),
        (
            "keypoints",
            format!(
                "velocity threshold {}, refractory {}",
                c.qa.keypoints.velocity_threshold, c.qa.keypoints.refractory
            ),
        ),
        ("split", format!("val {}, test {} of each task's episodes", c.split.val_fraction, c.split.test_fraction)),
        ("held-out tasks (test only)", held_out),
        ("seeds", format!("questions {}, split {}", c.qa.seed, c.split.seed)),
    ] {
        s += &format!("- {k}: {v}\n");
    }
    s += "\nBlind baselines (below, per split) answer the multiple-choice questions without the image: \
          the option nearest to the printed current position (`nearest_current`), the medoid of the options \
          (`medoid`), the option nearest to the workspace centre or to the printed origin, the training \
          split's most common answer label (`majority_label`), and, on the splits it did not learn from, a \
          network trained on the training split's prompts without their images (`text_only_model`, \
          `cargo xtask data` adds it). Chance is 25%; ties share their credit.\n";
    for split in Split::ALL {
        let Some(sc) = card.splits.get(&split.to_string()) else {
            continue;
        };
        s += &format!("\n## {split}: {} episodes, {} questions\n\n", sc.episodes, sc.samples);
        if sc.tasks.is_empty() {
            continue;
        }
        if !sc.blind.scores.is_empty() {
            s += &sc.blind.to_markdown();
            s += "\n";
        }
        s += "| task | episodes |";
        for t in QaType::ALL {
            s += &format!(" {t} |");
        }
        s += "\n|---|---|";
        s += &"---|".repeat(QaType::ALL.len());
        s += "\n";
        for (task, counts) in &sc.tasks {
            s += &format!("| {task} | {} |", counts.episodes);
            for t in QaType::ALL {
                s += &format!(" {} |", counts.samples.get(&t.to_string()).copied().unwrap_or(0));
            }
            s += "\n";
        }
    }
    s
}

/// Where the dataset at `root` keeps `split`: `qa/<split>.jsonl`.
pub fn split_path(root: &Path, split: Split) -> PathBuf {
    root.join("qa").join(format!("{split}.jsonl"))
}

/// Reads the data card (`card.json`) of the dataset at `root`.
pub fn read_card(root: &Path) -> Result<DatasetCard> {
    let path = root.join("card.json");
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::invalid(&path, e.to_string()))
}

/// Reads `qa/<split>.jsonl` of the dataset at `root`, checking that every image a sample
/// shows exists. Errors name the file and the line.
pub fn read_split(root: &Path, split: Split) -> Result<Vec<QaSample>> {
    let path = split_path(root, split);
    let file = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
    let at = |line: usize, message: String| DataError::invalid(&path, format!("line {line}: {message}"));
    let mut samples = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(&path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let sample: QaSample = serde_json::from_str(&line).map_err(|e| at(i + 1, e.to_string()))?;
        for image in sample.messages.iter().flat_map(|m| m.images()) {
            let image_path: PathBuf = root.join(image);
            if !image_path.is_file() {
                return Err(at(i + 1, format!("image {} does not exist", image_path.display())));
            }
        }
        samples.push(sample);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::{Camera, EnvMetadata, ImageRef, Pose, Step};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn tiny_png() -> Arc<[u8]> {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner().into()
    }

    fn episode(task: &str, index: u32, png: &Arc<[u8]>) -> Episode {
        Episode {
            task: task.into(),
            variation: 0,
            episode: index,
            descriptions: vec![format!("do {task}")],
            metadata: EnvMetadata::default(),
            cameras: vec![Camera { name: "front".into(), width: 4, height: 4, intrinsics: None, extrinsics: None }],
            steps: (0..25)
                .map(|i| Step {
                    pose: Pose { position: [0.01 * i.min(12) as f64, 0.0, 1.0], orientation: [0.0, 0.0, 0.0, 1.0] },
                    gripper_open: i < 20,
                    joint_velocities: None,
                    images: [("front".to_string(), ImageRef::Encoded(png.clone()))].into(),
                    subtask: None,
                    scene: vec![],
                })
                .collect(),
            waypoints: None,
            plan: None,
        }
    }

    fn episodes(tasks: &[(&str, u32)]) -> Vec<Episode> {
        let png = tiny_png();
        tasks.iter().flat_map(|&(t, n)| (0..n).map(move |i| (t, i))).map(|(t, i)| episode(t, i, &png)).collect()
    }

    #[test]
    fn writes_reads_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        let eps = episodes(&[("a", 10), ("b", 10), ("out", 3)]);
        let config = DatasetConfig {
            source: "unit test".into(),
            split: SplitConfig { held_out_tasks: vec!["out".into()], ..Default::default() },
            ..Default::default()
        };
        let mut calls = 0;
        let card = write_dataset(&eps, &out, &config, || calls += 1).unwrap();
        assert_eq!(calls, eps.len());
        let mut total = 0;
        for split in Split::ALL {
            let samples = read_split(&out, split).unwrap();
            let sc = &card.splits[&split.to_string()];
            assert_eq!(samples.len(), sc.samples);
            total += sc.episodes;
            for s in &samples {
                assert!(out.join(s.messages[0].images().next().unwrap()).is_file());
            }
            if split != Split::Test {
                assert!(samples.iter().all(|s| s.task != "out"));
            }
        }
        assert_eq!(total, eps.len());
        assert_eq!(card.splits["test"].tasks["out"].episodes, 3);
        assert_eq!(card.splits["val"].tasks["a"].episodes, 1);
        assert_eq!(card.splits["train"].tasks["b"].episodes, 8);
        let on_disk = read_card(&out).unwrap();
        assert_eq!(on_disk.splits, card.splits);
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(readme.contains("Source: unit test") && readme.contains("| out | 3 |"), "{readme}");
        // Blind baselines per split, with the majority label fitted on train.
        for split in Split::ALL {
            let sc = &card.splits[&split.to_string()];
            let medoid = &sc.blind.scores[&crate::blind::Baseline::Medoid];
            let samples = read_split(&out, split).unwrap();
            let count = |t: QaType| samples.iter().filter(|s| s.qa_type == t).count();
            for t in [QaType::Waypoint, QaType::CurrentState, QaType::Movement] {
                assert_eq!(medoid[&t].n, count(t), "{split} {t}");
            }
            assert_eq!(sc.blind.majority_labels, card.splits["train"].blind.majority_labels);
        }
        assert!(readme.contains("distractors: balanced") && readme.contains("| nearest_current |"), "{readme}");
        // Nothing but the dataset folder remains.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn existing_output_and_failures_leave_the_folder_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        let eps = episodes(&[("a", 4)]);
        write_dataset(&eps, &out, &DatasetConfig::default(), || {}).unwrap();
        let before = read_split(&out, Split::Train).unwrap();
        let err = write_dataset(&eps, &out, &DatasetConfig::default(), || {}).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        // A failure half-way (an undecodable image in the last episode) keeps the old dataset.
        let mut broken = eps.clone();
        broken[3].steps[0].images.insert("front".into(), ImageRef::Encoded(Arc::from(&b"junk"[..])));
        let overwrite = DatasetConfig { overwrite: true, ..Default::default() };
        assert!(write_dataset(&broken, &out, &overwrite, || {}).is_err());
        assert_eq!(read_split(&out, Split::Train).unwrap(), before);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let card = write_dataset(&eps[..3], &out, &overwrite, || {}).unwrap();
        assert_eq!(read_split(&out, Split::Train).unwrap().len(), card.splits["train"].samples);
        assert_ne!(card.splits["train"].samples, before.len());
    }

    #[test]
    fn reader_names_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        write_dataset(
            &episodes(&[("a", 2)]),
            &out,
            &DatasetConfig {
                split: SplitConfig { val_fraction: 0.0, test_fraction: 0.0, ..Default::default() },
                ..Default::default()
            },
            || {},
        )
        .unwrap();
        let path = out.join("qa/train.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}{{\"id\": 3}}\n")).unwrap();
        let lines = text.lines().count();
        let err = read_split(&out, Split::Train).unwrap_err().to_string();
        assert!(err.contains("qa/train.jsonl") && err.contains(&format!("line {}:", lines + 1)), "{err}");
        std::fs::write(&path, &text).unwrap();
        let first_image = read_split(&out, Split::Train).unwrap()[0].messages[0].images().next().unwrap().to_string();
        std::fs::remove_file(out.join(&first_image)).unwrap();
        let err = read_split(&out, Split::Train).unwrap_err().to_string();
        assert!(err.contains("line 1:") && err.contains("does not exist"), "{err}");
        assert!(read_split(&tmp.path().join("nothing"), Split::Val).unwrap_err().to_string().contains("val.jsonl"));
    }

    #[test]
    fn split_configuration_errors() {
        let eps = episodes(&[("a", 2)]);
        let bad = SplitConfig { val_fraction: 0.6, test_fraction: 0.6, ..Default::default() };
        assert!(assign_splits(&eps, &bad).is_err());
        let typo = SplitConfig { held_out_tasks: vec!["b".into()], ..Default::default() };
        assert!(assign_splits(&eps, &typo).unwrap_err().to_string().contains("held-out task \"b\""));
    }

    proptest! {
        #[test]
        fn splits_are_per_episode_and_order_independent(
            counts in proptest::collection::vec(1u32..30, 1..4),
            val in 0.0f64..0.5,
            test in 0.0f64..0.5,
            seed: u64,
        ) {
            let names = ["t0", "t1", "t2"];
            let tasks: Vec<(&str, u32)> = counts.iter().enumerate().map(|(i, &c)| (names[i], c)).collect();
            let eps = episodes(&tasks);
            let config = SplitConfig { val_fraction: val, test_fraction: test, held_out_tasks: vec![], seed };
            let splits = assign_splits(&eps, &config).unwrap();
            for &(task, n) in &tasks {
                let of = |s: Split| eps.iter().zip(&splits).filter(|(e, x)| e.task == task && **x == s).count();
                prop_assert_eq!(of(Split::Test), (n as f64 * test).round() as usize);
                prop_assert_eq!(of(Split::Train) + of(Split::Val) + of(Split::Test), n as usize);
            }
            // Reversing the input changes nothing about which episode goes where.
            let reversed: Vec<Episode> = eps.iter().rev().cloned().collect();
            let rev_splits = assign_splits(&reversed, &config).unwrap();
            for (e, s) in eps.iter().zip(&splits) {
                let j = reversed.iter().position(|r| r.id() == e.id()).unwrap();
                prop_assert_eq!(rev_splits[j], *s);
            }
        }
    }
}
