//! LeRobot datasets whose cameras are `video` features, on the fixtures written by the official
//! `lerobot` package (`scripts/make_lerobot_video_fixtures.py`; committed, CI runs no Python).
//! The same demonstrations stored as images (`images/`) are the reference: decoded frames must
//! equal those images up to the codec's loss, and everything else (poses, keypoints, questions)
//! exactly. Needs FFmpeg's `ffmpeg` and `ffprobe` on PATH (`.ci/run` installs them).

use std::path::{Path, PathBuf};

use r1_data::dataset::{DatasetConfig, Split, split_path, write_dataset};
use r1_data::episode::{Episode, ImageRef};
use r1_data::keypoints::{KeypointConfig, episode_keypoints};
use r1_data::qa_build::QaConfig;
use r1_data::source::{LoadOptions, load_episodes};
use r1_data::video::{self, Video};
use serde_json::Value;

/// The largest mean absolute error per channel (0-255) allowed between a decoded frame and the
/// frame that was encoded. Measured on these fixtures (lerobot's CRF 30, 4:2:0 chroma): at most
/// 4.8 for AV1 (libsvtav1) on the 32x24 wrist camera and 2.4 on the 64x48 front one, 3.0 for
/// H.264 (libx264); the frame one step off is at least 12.8 away.
const CODEC_TOLERANCE: f64 = 6.0;

fn root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lerobot_video").join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root("expected.json")).unwrap()).unwrap()
}

fn episodes(path: &Path) -> Vec<Episode> {
    let loaded = load_episodes(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    loaded.episodes.into_iter().map(|(_, e)| e).collect()
}

/// Mean absolute error per channel.
fn channel_error(a: &image::RgbImage, b: &image::RgbImage) -> [f64; 3] {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut sum = [0.0; 3];
    for (p, q) in a.pixels().zip(b.pixels()) {
        for (s, (x, y)) in sum.iter_mut().zip(p.0.iter().zip(q.0)) {
            *s += f64::from(x.abs_diff(y));
        }
    }
    sum.map(|s| s / f64::from(a.width() * a.height()))
}

fn worst(error: [f64; 3]) -> f64 {
    error.into_iter().fold(0.0, f64::max)
}

/// Decodes every frame of `episode`'s `camera` in one run per video.
fn decode_all(episode: &Episode, camera: &str) -> Vec<image::RgbImage> {
    let frames: Vec<_> = episode
        .steps
        .iter()
        .map(|s| match &s.images[camera] {
            ImageRef::Video(frame) => frame.clone(),
            other => panic!("{camera} is not a video frame: {other:?}"),
        })
        .collect();
    let timestamps: Vec<f64> = frames.iter().map(|f| f.timestamp).collect();
    let mut out = vec![None; frames.len()];
    video::decode(&frames[0].video, &timestamps, |i, image| {
        out[i] = Some(image);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out.into_iter().map(Option::unwrap).collect()
}

#[test]
fn episodes_are_located_in_the_files_lerobot_wrote() {
    let expected = expected();
    for name in ["av1", "h264", "v21"] {
        let episodes = episodes(&root(name));
        assert_eq!(episodes.len(), 4, "{name}");
        for episode in &episodes {
            let places = &expected[name][episode.episode.to_string()];
            let cameras = places.as_object().unwrap();
            assert_eq!(episode.cameras.len(), cameras.len(), "{name}");
            for camera in &episode.cameras {
                let place = &places[&camera.name];
                let size = if camera.name == "front" { (64, 48) } else { (32, 24) };
                assert_eq!((camera.width, camera.height), size, "{name} {}", camera.name);
                for (f, step) in episode.steps.iter().enumerate() {
                    let ImageRef::Video(frame) = &step.images[&camera.name] else { panic!("a video frame") };
                    assert!(frame.video.path.ends_with(place["file"].as_str().unwrap()), "{:?}", frame.video.path);
                    assert_eq!(frame.video.codec, place["codec"].as_str().unwrap());
                    let t = place["from_timestamp"].as_f64().unwrap() + f as f64 / 10.0;
                    assert!(
                        (frame.timestamp - t).abs() < 1e-6,
                        "{name} e{} f{f}: {}",
                        episode.episode,
                        frame.timestamp
                    );
                }
            }
        }
    }
}

#[test]
fn decoded_frames_equal_the_encoded_images_up_to_codec_loss() {
    let reference = episodes(&root("images"));
    for name in ["av1", "h264", "v21"] {
        let mut largest = [0.0f64; 3];
        let mut nearest_neighbour = f64::INFINITY;
        for (episode, original) in episodes(&root(name)).iter().zip(&reference) {
            assert_eq!(episode.id(), original.id());
            for camera in &episode.cameras {
                let decoded = decode_all(episode, &camera.name);
                let images: Vec<_> =
                    original.steps.iter().map(|s| s.images[&camera.name].load_rgb(Path::new("")).unwrap()).collect();
                for (f, frame) in decoded.iter().enumerate() {
                    let error = channel_error(frame, &images[f]);
                    let what = format!("{name} e{} {} frame {f}: {error:?}", episode.episode, camera.name);
                    assert!(worst(error) <= CODEC_TOLERANCE, "{what}");
                    // Frame accuracy: the neighbours are much further away.
                    for g in [f.wrapping_sub(1), f + 1].into_iter().filter(|&g| g < images.len()) {
                        let off = worst(channel_error(frame, &images[g]));
                        nearest_neighbour = nearest_neighbour.min(off);
                        assert!(off > 1.5 * CODEC_TOLERANCE, "{what} vs {g}");
                    }
                    largest = std::array::from_fn(|c| largest[c].max(error[c]));
                }
            }
        }
        eprintln!(
            "{name}: largest mean absolute error per channel {largest:.2?}, nearest neighbour {nearest_neighbour:.2}"
        );
    }
}

#[test]
fn one_frame_alone_decodes_as_in_a_batch() {
    let episodes = episodes(&root("av1"));
    let episode = &episodes[2];
    let batch = decode_all(episode, "front");
    for f in [0, 5, episode.steps.len() - 1] {
        let alone = episode.steps[f].images["front"].load_rgb(Path::new("")).unwrap();
        assert_eq!(alone, batch[f], "frame {f}");
    }
}

#[test]
fn poses_and_keypoints_equal_those_of_the_image_dataset() {
    let reference = episodes(&root("images"));
    for name in ["av1", "h264", "v21"] {
        let episodes = episodes(&root(name));
        assert_eq!(episodes.len(), reference.len());
        for (episode, original) in episodes.iter().zip(&reference) {
            assert_eq!((&episode.task, episode.episode), (&original.task, original.episode));
            assert_eq!(episode.metadata, original.metadata);
            let poses = |e: &Episode| e.steps.iter().map(|s| (s.pose, s.gripper_open)).collect::<Vec<_>>();
            assert_eq!(poses(episode), poses(original));
            let config = KeypointConfig::default();
            let keypoints = episode_keypoints(episode, &config);
            assert!(keypoints.len() >= 2, "{keypoints:?}");
            assert_eq!(keypoints, episode_keypoints(original, &config), "{name} e{}", episode.episode);
        }
    }
}

/// The question set made from the video dataset is the one made from the images, but for the
/// images' codec loss.
#[test]
fn question_images_equal_the_encoded_frames() {
    let dir = tempfile::tempdir().unwrap();
    let config = DatasetConfig {
        qa: QaConfig { every: 3, ..Default::default() },
        split: Default::default(),
        source: "fixture".into(),
        overwrite: false,
    };
    let write = |name: &str| {
        let out = dir.path().join(name);
        write_dataset(&episodes(&root(name)), &out, &config, || ()).unwrap_or_else(|e| panic!("{e}"));
        out
    };
    let (video, images) = (write("av1"), write("images"));
    for split in [Split::Train, Split::Val, Split::Test] {
        let text = |root: &Path| std::fs::read_to_string(split_path(root, split)).unwrap();
        assert_eq!(text(&video), text(&images), "{split:?}");
    }
    let mut count = 0;
    for entry in walk(&images.join("images")) {
        let rel = entry.strip_prefix(&images).unwrap();
        let (a, b) = (image::open(&entry).unwrap().to_rgb8(), image::open(video.join(rel)).unwrap().to_rgb8());
        assert!(worst(channel_error(&a, &b)) <= CODEC_TOLERANCE, "{rel:?}");
        count += 1;
    }
    assert!(count >= 12, "{count} images");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

/// Copies a fixture dataset to a temporary folder for breaking.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let dest = to.join(path.file_name().unwrap());
            if path.is_dir() { copy_dir(&path, &dest) } else { std::fs::copy(&path, &dest).map(drop).unwrap() }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(name);
    copy_dir(&root(name), &dest);
    (dir, dest)
}

#[test]
fn broken_or_missing_videos_skip_their_episodes_with_file_and_codec() {
    let (_dir, dataset) = copy("av1");
    // Episode 3's front camera: its own file, here neither video nor present.
    let broken = dataset.join("videos/observation.images.front/chunk-001/file-000.mp4");
    std::fs::write(&broken, b"not a video").unwrap();
    std::fs::remove_file(dataset.join("videos/observation.images.wrist/chunk-000/file-000.mp4")).unwrap();
    let loaded = load_episodes(&dataset, &LoadOptions::default()).unwrap_err().to_string();
    // Every episode lost its wrist camera (file-000) or its front one (chunk-001).
    assert!(loaded.contains("observation.images.wrist/chunk-000/file-000.mp4"), "{loaded}");

    let front = LoadOptions { cameras: vec!["front".into()], ..Default::default() };
    let loaded = load_episodes(&dataset, &front).unwrap();
    assert_eq!(loaded.episodes.iter().map(|(_, e)| e.episode).collect::<Vec<_>>(), [0, 1, 2]);
    let error = loaded.skipped[0].1.to_string();
    assert!(error.contains("episode 3: camera \"front\""), "{error}");
    assert!(
        error.contains("chunk-001/file-000.mp4: cannot decode the video (codec unknown): not a readable video file"),
        "{error}"
    );
}

#[test]
fn frames_the_file_lacks_are_errors_naming_file_and_codec() {
    let path = root("h264/videos/observation.images.front/chunk-000/file-000.mp4");
    let video = Video::open(&path, 64, 48, 10.0).unwrap();
    assert_eq!(video.codec, "h264");
    let error = video::decode(&video, &[0.0, 99.0], |_, _| Ok(())).unwrap_err().to_string();
    assert!(error.contains("file-000.mp4: cannot decode the video (codec h264): decoded 1 of the 2 frames"), "{error}");
    // Declared sizes win over the stream's.
    let small = Video { width: 16, height: 12, ..video };
    let mut sizes = Vec::new();
    video::decode(&small, &[0.3, 0.3], |i, image| {
        sizes.push((i, image.dimensions()));
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes, [(0, (16, 12)), (1, (16, 12))]);
}

/// More separate frames than one FFmpeg run can select (every other frame of 200) decode as
/// they do in one contiguous run.
#[test]
fn sparse_requests_over_many_ranges_decode_like_a_contiguous_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        // Brightness steps with the frame number N, so that every frame differs.
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("nullsrc=s=32x32:r=10:d=20,geq=lum='mod(N*13+X,256)':cb=128:cr=128")
        .args(["-c:v", "libx264", "-g", "2", "-crf", "30", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let video = Video::open(&path, 32, 32, 10.0).unwrap();
    let decode = |timestamps: &[f64]| {
        let mut out = vec![None; timestamps.len()];
        video::decode(&video, timestamps, |i, image| {
            out[i] = Some(image);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        out.into_iter().map(Option::unwrap).collect::<Vec<_>>()
    };
    let all = decode(&(0..200).map(|f| f as f64 / 10.0).collect::<Vec<_>>());
    // Reversed, to check that answers follow the requests' order.
    let odd: Vec<usize> = (1..200).step_by(2).rev().collect();
    let sparse = decode(&odd.iter().map(|&f| f as f64 / 10.0).collect::<Vec<_>>());
    for (image, &f) in sparse.iter().zip(&odd) {
        assert!(*image == all[f], "frame {f}");
    }
    assert!(all.windows(2).all(|w| w[0] != w[1]));
}
