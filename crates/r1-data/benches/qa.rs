//! QA benchmarks (`benches/import.rs` times the readers alone).
//!
//! * criterion: keypoint discovery and QA building for one 150-step episode;
//! * one timed run (too long for criterion's repetitions): importing an RLBench-sized set
//!   (5 tasks x 50 episodes x 150 steps, one 224x224 camera) and writing its QA dataset,
//!   printed as a table. The set is the RLBench pickle set that
//!   `python3 crates/r1-data/tests/fixtures/gen_rlbench.py --bench DIR` writes, named by
//!   `R1_BENCH_RLBENCH=DIR`; without it, an equally sized native-format set is generated in a
//!   temporary folder first (not timed).
//!
//! Run: `cargo bench --workspace --bench qa` (criterion's filters apply to the first part).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use r1_data::dataset::{DatasetConfig, write_dataset};
use r1_data::episode::{Camera, EnvMetadata, Episode, ImageRef, Pose, Step};
use r1_data::keypoints::{KeypointConfig, discover, episode_keypoints};
use r1_data::qa_build::{QaConfig, TaskKeypoints, build_episode};
use r1_data::source::{LoadOptions, load_episodes};

const TASKS: usize = 5;
const EPISODES: u32 = 50;
const STEPS: usize = 150;
const SIZE: u32 = 224;

/// A 224x224 frame: a smooth table-like gradient, a box whose place depends on `k`, and
/// faint noise, so that its PNG weighs about what a rendered frame does.
fn frame_png(k: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32.wrapping_mul(k + 1);
    let img = image::RgbImage::from_fn(SIZE, SIZE, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 7) as u8;
        let in_box = (x + 7 * k) % SIZE / 40 == 2 && y / 40 == 3;
        if in_box {
            image::Rgb([200, 30 + noise, 30])
        } else {
            image::Rgb([(x / 2) as u8 + noise, (y / 2) as u8 + noise, 120 + noise])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding to memory succeeds");
    out.into_inner()
}

/// A demonstration with RLBench's shape: four moves with dwells, one gripper close.
fn episode(task: usize, index: u32, images: &[Arc<[u8]>]) -> Episode {
    let waypoints = [[0.3, 0.0, 1.2], [0.25, 0.1, 0.9], [0.25, 0.1, 0.8], [0.3, -0.1, 1.0], [0.1, -0.2, 0.95]];
    let per = STEPS / (waypoints.len() - 1);
    let steps = (0..STEPS)
        .map(|i| {
            let seg = (i / per).min(waypoints.len() - 2);
            // Move during the first 80% of a segment, dwell for the rest.
            let t = ((i - seg * per) as f64 / (0.8 * per as f64)).min(1.0);
            let (a, b) = (waypoints[seg], waypoints[seg + 1]);
            let moving = t < 1.0;
            Step {
                pose: Pose {
                    position: std::array::from_fn(|k| a[k] + (b[k] - a[k]) * t + 0.001 * index as f64),
                    orientation: [0.0, 1.0, 0.0, 0.0],
                },
                gripper_open: i < 2 * per,
                joint_velocities: Some(vec![if moving { 0.5 } else { 0.0 }; 7]),
                images: [("front".to_string(), ImageRef::Encoded(images[i % images.len()].clone()))].into(),
                subtask: None,
                scene: vec![],
            }
        })
        .collect();
    Episode {
        task: format!("task_{task}"),
        variation: 0,
        episode: index,
        descriptions: vec![format!("do task {task}")],
        metadata: EnvMetadata::default(),
        cameras: vec![Camera { name: "front".into(), width: SIZE, height: SIZE, intrinsics: None, extrinsics: None }],
        steps,
        waypoints: None,
        plan: None,
    }
}

fn criterion_part(c: &mut Criterion) {
    let images: Vec<Arc<[u8]>> = (0..4).map(|k| frame_png(k).into()).collect();
    let ep = episode(0, 0, &images);
    let gripper = ep.gripper_open();
    c.bench_function("keypoints/discover_150_steps", |b| {
        b.iter(|| {
            discover(
                black_box(&gripper),
                |i| ep.steps[i].joint_velocities.as_deref().unwrap_or(&[]),
                &KeypointConfig::default(),
            )
        })
    });
    let mut no_velocities = ep.clone();
    no_velocities.steps.iter_mut().for_each(|s| s.joint_velocities = None);
    c.bench_function("keypoints/finite_differences_150_steps", |b| {
        b.iter(|| episode_keypoints(black_box(&no_velocities), &KeypointConfig::default()))
    });
    let config = QaConfig::default();
    c.bench_function("qa/build_episode_150_steps_all_types", |b| {
        b.iter(|| build_episode(black_box(&ep), &config, &TaskKeypoints::default()))
    });
}

/// Writes a native-format set of the benchmark's size under `root`.
fn generate_native_set(root: &Path) -> r1_data::Result<()> {
    let dir = root.join("frames");
    std::fs::create_dir_all(&dir).map_err(|e| r1_data::DataError::io(&dir, e))?;
    // Image files shared by all episodes: the writer copies PNG files byte for byte, as the
    // importer does with RLBench's PNGs.
    let frames: Vec<ImageRef> = (0..16)
        .map(|k| {
            let path = dir.join(format!("{k}.png"));
            std::fs::write(&path, frame_png(k))
                .map(|()| ImageRef::Path(path.clone()))
                .map_err(|e| r1_data::DataError::io(&path, e))
        })
        .collect::<r1_data::Result<_>>()?;
    for task in 0..TASKS {
        for e in 0..EPISODES {
            let mut ep = episode(task, e, &[Arc::from(&[][..])]);
            for (i, step) in ep.steps.iter_mut().enumerate() {
                step.images.insert("front".into(), frames[(i + e as usize) % frames.len()].clone());
            }
            r1_data::native::write_episode(&ep, &root.join("set").join(&ep.task).join(format!("episode{e}")))?;
        }
    }
    Ok(())
}

fn import_part() -> r1_data::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| r1_data::DataError::io(std::env::temp_dir(), e))?;
    let (set, kind) = match std::env::var_os("R1_BENCH_RLBENCH") {
        Some(dir) => (std::path::PathBuf::from(dir), "RLBench pickles (R1_BENCH_RLBENCH)"),
        None => {
            eprintln!("generating a native-format set of {TASKS} x {EPISODES} x {STEPS} steps (not timed) ...");
            generate_native_set(tmp.path())?;
            (tmp.path().join("set"), "native format (generated)")
        }
    };
    let start = Instant::now();
    let loaded = load_episodes(&set, &LoadOptions::default())?;
    let load_s = start.elapsed().as_secs_f64();
    let episodes: Vec<Episode> = loaded.episodes.into_iter().map(|(_, e)| e).collect();
    let steps: usize = episodes.iter().map(|e| e.steps.len()).sum();
    let write_start = Instant::now();
    let card = write_dataset(&episodes, &tmp.path().join("qa-dataset"), &DatasetConfig::default(), || {})?;
    let write_s = write_start.elapsed().as_secs_f64();
    let questions: usize = card.splits.values().map(|s| s.samples).sum();
    println!();
    println!("| import benchmark | value |");
    println!("|---|---|");
    println!("| input | {kind} |");
    println!("| episodes / steps | {} / {steps} |", episodes.len());
    println!("| skipped episodes | {} |", loaded.skipped.len());
    println!("| questions written | {questions} |");
    println!("| load + validate (s) | {load_s:.2} |");
    println!("| keypoints + QA + images + files (s) | {write_s:.2} |");
    println!("| total (s) | {:.2} |", load_s + write_s);
    Ok(())
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    criterion_part(&mut criterion);
    criterion.final_summary();
    // `cargo test --benches` runs this binary without `--bench`: skip the long measurement.
    if std::env::args().any(|a| a == "--bench")
        && let Err(e) = import_part()
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
