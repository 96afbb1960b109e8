//! Video import benchmark, printed as a table: frames decoded per second (whole episodes, one
//! FFmpeg run each) and the import of a 50-episode LeRobot v3.0 video dataset (load, then the
//! QA dataset with its question images, every 10th frame decoded).
//!
//! The dataset is generated first (not timed) in a temporary folder: 50 episodes x 100 frames
//! at 10 fps, one 224x224 camera, all episodes in one video file as LeRobot v3.0 stores them,
//! encoded by FFmpeg from its `testsrc2` pattern with LeRobot's settings (GOP 2, CRF 30,
//! yuv420p), once in AV1 (libsvtav1) and once in H.264 (libx264). Needs `ffmpeg` with both
//! encoders (Debian's has them).
//!
//! Run: `cargo bench --workspace --bench video`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::Float32Type;
use parquet::arrow::ArrowWriter;
use r1_data::dataset::{DatasetConfig, write_dataset};
use r1_data::episode::{Episode, ImageRef};
use r1_data::source::{LoadOptions, load_episodes};
use r1_data::video;

const EPISODES: usize = 50;
const FRAMES: usize = 100;
const FPS: usize = 10;
const SIZE: u32 = 224;
const KEY: &str = "observation.images.front";

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn column(array: impl Array + 'static) -> ArrayRef {
    Arc::new(array)
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) -> BenchResult<()> {
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    let batch = RecordBatch::try_from_iter(columns)?;
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

/// Writes the dataset (see the module docs) under `root` with the given FFmpeg encoder.
fn generate(root: &Path, encoder: &[&str]) -> BenchResult<()> {
    let video = root.join(format!("videos/{KEY}/chunk-000/file-000.mp4"));
    std::fs::create_dir_all(video.parent().ok_or("no parent")?)?;
    let source = format!("testsrc2=size={SIZE}x{SIZE}:rate={FPS}:duration={}", EPISODES * FRAMES / FPS);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &source])
        .args(encoder)
        .args(["-g", "2", "-crf", "30", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()?;
    if !status.success() {
        return Err(format!("ffmpeg failed to encode {}", video.display()).into());
    }

    let n = EPISODES * FRAMES;
    // Moves with a dwell in the middle; the gripper closes after the dwell.
    let state = (0..n).map(|i| {
        let f = i % FRAMES;
        let t = f.min(40) + f.saturating_sub(50);
        let open = if f < 50 { 1.0 } else { 0.0 };
        let t = t as f32;
        Some([0.3 + 0.004 * t, -0.1 + 0.003 * t, 0.9 - 0.002 * t, 0.0, 0.0, 0.0, 1.0, open].map(Some))
    });
    let int = |f: &dyn Fn(usize) -> usize| column(Int64Array::from_iter_values((0..n).map(|i| f(i) as i64)));
    write_parquet(
        &root.join("data/chunk-000/file-000.parquet"),
        vec![
            ("observation.state", column(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(state, 8))),
            ("timestamp", column(Float32Array::from_iter_values((0..n).map(|i| (i % FRAMES) as f32 / FPS as f32)))),
            ("frame_index", int(&|i| i % FRAMES)),
            ("episode_index", int(&|i| i / FRAMES)),
            ("index", int(&|i| i)),
            ("task_index", int(&|_| 0)),
        ],
    )?;
    let per_episode = |f: &dyn Fn(usize) -> f64| column(Float64Array::from_iter_values((0..EPISODES).map(f)));
    let zeros = || column(Int64Array::from_iter_values((0..EPISODES).map(|_| 0)));
    let seconds = (FRAMES / FPS) as f64;
    let [chunk, file, from, to] =
        ["chunk_index", "file_index", "from_timestamp", "to_timestamp"].map(|c| format!("videos/{KEY}/{c}"));
    write_parquet(
        &root.join("meta/episodes/chunk-000/file-000.parquet"),
        vec![
            ("episode_index", column(Int64Array::from_iter_values(0..EPISODES as i64))),
            (&chunk, zeros()),
            (&file, zeros()),
            (&from, per_episode(&|e| e as f64 * seconds)),
            (&to, per_episode(&|e| (e + 1) as f64 * seconds)),
        ],
    )?;
    write_parquet(
        &root.join("meta/tasks.parquet"),
        vec![
            ("task_index", column(Int64Array::from(vec![0i64]))),
            ("__index_level_0__", column(StringArray::from(vec!["pick up the cube"]))),
        ],
    )?;
    let info = serde_json::json!({
        "codebase_version": "v3.0",
        "fps": FPS,
        "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [8], "names": ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]},
            KEY: {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"]},
            "timestamp": {"dtype": "float32", "shape": [1], "names": null},
            "frame_index": {"dtype": "int64", "shape": [1], "names": null},
            "episode_index": {"dtype": "int64", "shape": [1], "names": null},
            "index": {"dtype": "int64", "shape": [1], "names": null},
            "task_index": {"dtype": "int64", "shape": [1], "names": null},
        },
    });
    std::fs::write(root.join("meta/info.json"), serde_json::to_string_pretty(&info)?)?;
    Ok(())
}

/// Decodes every frame of every episode, one run per episode; returns frames per second.
fn decode_all(episodes: &[Episode]) -> BenchResult<f64> {
    let start = Instant::now();
    let mut frames = 0usize;
    for episode in episodes {
        let requests: Vec<&video::VideoFrame> = episode
            .steps
            .iter()
            .filter_map(|s| match &s.images["front"] {
                ImageRef::Video(frame) => Some(frame),
                _ => None,
            })
            .collect();
        let timestamps: Vec<f64> = requests.iter().map(|f| f.timestamp).collect();
        let video = &requests.first().ok_or("no video frames")?.video;
        video::decode(video, &timestamps, |_, _| {
            frames += 1;
            Ok(())
        })?;
    }
    Ok(frames as f64 / start.elapsed().as_secs_f64())
}

struct Row {
    codec: &'static str,
    frames_per_s: f64,
    load_s: f64,
    write_s: f64,
    images: usize,
}

fn measure(codec: &'static str, encoder: &[&str], tmp: &Path) -> BenchResult<Row> {
    let root: PathBuf = tmp.join(codec);
    eprintln!("encoding {EPISODES} x {FRAMES} frames ({codec}, not timed) ...");
    generate(&root, encoder)?;
    let start = Instant::now();
    let loaded = load_episodes(&root, &LoadOptions::default())?;
    let load_s = start.elapsed().as_secs_f64();
    if !loaded.skipped.is_empty() {
        return Err(format!("skipped: {:?}", loaded.skipped).into());
    }
    let episodes: Vec<Episode> = loaded.episodes.into_iter().map(|(_, e)| e).collect();
    let start = Instant::now();
    let out = tmp.join(format!("{codec}-qa"));
    write_dataset(&episodes, &out, &DatasetConfig::default(), || {})?;
    let write_s = start.elapsed().as_secs_f64();
    let images = count_files(&out.join("images"))?;
    let frames_per_s = decode_all(&episodes)?;
    Ok(Row { codec, frames_per_s, load_s, write_s, images })
}

fn count_files(dir: &Path) -> BenchResult<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        n += if path.is_dir() { count_files(&path)? } else { 1 };
    }
    Ok(n)
}

fn run() -> BenchResult<()> {
    let tmp = tempfile::tempdir()?;
    let rows = [
        measure("AV1", &["-c:v", "libsvtav1", "-preset", "12"], tmp.path())?,
        measure("H.264", &["-c:v", "libx264"], tmp.path())?,
    ];
    println!();
    println!("{EPISODES} episodes x {FRAMES} frames, {SIZE}x{SIZE}, one video file:");
    println!();
    println!("| codec | frames decoded/s | load (s) | QA dataset (s) | question images | import total (s) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            r.codec,
            r.frames_per_s,
            r.load_s,
            r.write_s,
            r.images,
            r.load_s + r.write_s
        );
    }
    Ok(())
}

fn main() {
    // `cargo test --benches` runs this binary without `--bench`: skip the measurement.
    if std::env::args().any(|a| a == "--bench")
        && let Err(e) = run()
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
