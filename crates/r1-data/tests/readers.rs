//! The RLBench and LeRobot readers and format detection, on the fixtures written by
//! `tests/fixtures/gen_rlbench.py` and `tests/fixtures/gen_lerobot.py` (committed; CI does not
//! run Python). Expected values come from the generators' `expected.json` files.

use std::path::{Path, PathBuf};

use r1_data::episode::{Episode, ImageRef};
use r1_data::lerobot::StateMap;
use r1_data::source::{LoadOptions, Loaded, load_episodes};
use r1_data::{DataError, native};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn expected(format: &str) -> Value {
    let path = fixtures().join(format).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn load(path: &Path, opts: &LoadOptions) -> Loaded {
    load_episodes(path, opts).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(loaded: &Loaded) -> Vec<String> {
    loaded.episodes.iter().map(|(_, e)| e.id()).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tolerance, "{what}: {actual:?} != {expected:?}");
    }
}

/// Checks an RLBench episode against the generator's record of its folder.
fn assert_rlbench_values(episode: &Episode, folder: &str) {
    let exp = &expected("rlbench")[folder];
    let poses = exp["poses"].as_array().unwrap();
    assert_eq!(episode.steps.len(), poses.len(), "{folder}");
    for (i, step) in episode.steps.iter().enumerate() {
        let pose: Vec<f64> = step.pose.position.iter().chain(&step.pose.orientation).copied().collect();
        // float64 all the way; the tolerance only covers serde_json's last-bit parsing.
        let what = format!("{folder} step {i}");
        assert_close(&pose, &floats(&poses[i]), 1e-12, &what);
        assert_eq!(step.gripper_open, exp["open"][i].as_bool().unwrap(), "{what}");
        assert_close(step.joint_velocities.as_deref().unwrap(), &floats(&exp["velocities"][i]), 1e-12, &what);
    }
}

fn rlbench(sub: &str) -> PathBuf {
    fixtures().join("rlbench").join(sub)
}

fn lerobot(sub: &str) -> PathBuf {
    fixtures().join("lerobot").join(sub)
}

/// The error of one skipped source, as text, found by a path suffix.
fn skipped_error(loaded: &Loaded, suffix: &str) -> String {
    let (_, e) = loaded
        .skipped
        .iter()
        .find(|(p, _)| p.ends_with(suffix))
        .unwrap_or_else(|| panic!("{suffix} not skipped: {:?}", loaded.skipped));
    e.to_string()
}

#[test]
fn rlbench_stock_layout_all_pickle_protocols() {
    let loaded = load(&rlbench("stock"), &LoadOptions::default());
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_eq!(ids(&loaded), ["close_jar/v0/e0", "close_jar/v0/e1", "close_jar/v1/e0", "close_jar/v1/e1"]);
    let (_, first) = &loaded.episodes[0];
    assert_eq!(first.descriptions, ["close the red jar", "screw on the red jar lid"]);
    assert_eq!(loaded.episodes[2].1.descriptions, ["close the blue jar"]);
    // Protocols 2, 3, 4 and 5 in that order.
    for ((_, episode), folder) in loaded.episodes.iter().zip([
        "stock/close_jar/variation0/episodes/episode0",
        "stock/close_jar/variation0/episodes/episode1",
        "stock/close_jar/variation1/episodes/episode0",
        "stock/close_jar/variation1/episodes/episode1",
    ]) {
        assert_rlbench_values(episode, folder);
        let step = episode.steps.len() - 1;
        let ImageRef::Path(image) = &episode.steps[step].images["front"] else { panic!("front image is a file") };
        assert!(image.is_absolute() && image.ends_with(format!("front_rgb/{step}.png")), "{image:?}");
    }
}

#[test]
fn rlbench_peract_layout_reads_variation_files_inside_the_episode() {
    let loaded = load(&rlbench("peract"), &LoadOptions::default());
    assert_eq!(ids(&loaded), ["open_drawer/v2/e0", "open_drawer/v0/e1"]);
    assert_eq!(loaded.episodes[0].1.descriptions, ["open the drawer number 2"]);
    assert_rlbench_values(&loaded.episodes[0].1, "peract/open_drawer/all_variations/episodes/episode0");
    assert_rlbench_values(&loaded.episodes[1].1, "peract/open_drawer/all_variations/episodes/episode1");
}

#[test]
fn episode_task_and_file_paths_are_detected() {
    let opts = LoadOptions::default();
    let episode = rlbench("stock/close_jar/variation0/episodes/episode1");
    assert_eq!(ids(&load(&episode, &opts)), ["close_jar/v0/e1"]);
    assert_eq!(ids(&load(&episode.join("low_dim_obs.pkl"), &opts)), ["close_jar/v0/e1"]);
    assert_eq!(load(&rlbench("stock/close_jar"), &opts).episodes.len(), 4);
    assert_eq!(ids(&load(&rlbench("stock/close_jar/variation1"), &opts)), ["close_jar/v1/e0", "close_jar/v1/e1"]);
    assert_eq!(
        ids(&load(&rlbench("peract/open_drawer/all_variations/episodes/episode1"), &opts)),
        ["open_drawer/v0/e1"]
    );
    assert_eq!(load(&lerobot("v30"), &opts).episodes.len(), 3);
    // Paths inside an episode or a dataset.
    assert_eq!(ids(&load(&episode.join("front_rgb"), &opts)), ["close_jar/v0/e1"]);
    assert_eq!(ids(&load(&episode.join("front_rgb/0.png"), &opts)), ["close_jar/v0/e1"]);
    let file = lerobot("v21/data/chunk-000/episode_000001.parquet");
    assert_eq!(ids(&load(&file, &opts)), ["pick_up_the_red_cube/v0/e1"]);
    let chunk = lerobot("v30/data/chunk-000");
    assert_eq!(load(&chunk, &opts).episodes.len(), 3);
    let error = load_episodes(&lerobot("v30/meta"), &opts).unwrap_err().to_string();
    assert!(error.contains("v30/meta: no LeRobot data files (parquet) here"), "{error}");
}

/// The generator painted one red pixel where PerAct's `point_to_pixel_index` puts the gripper
/// tip with RLBench's own (negative focal length) calibration; the converted OpenCV camera
/// must project the tip onto it.
#[test]
fn rlbench_cameras_are_converted_to_the_opencv_convention() {
    let loaded = load(&rlbench("stock/close_jar/variation0"), &LoadOptions::default());
    let (_, episode) = &loaded.episodes[0];
    let camera = &episode.cameras[0];
    assert_eq!((camera.name.as_str(), camera.width, camera.height), ("front", 32, 32));
    let k = camera.intrinsics.unwrap();
    assert!(k[0][0] > 0.0 && k[1][1] > 0.0);
    for (i, step) in episode.steps.iter().enumerate() {
        let [u, v] = camera.project(step.pose.position).unwrap();
        let image = step.images["front"].load_rgb(Path::new("/")).unwrap();
        let (px, py) = image.enumerate_pixels().find(|(_, _, p)| p.0 == [255, 0, 0]).map(|(x, y, _)| (x, y)).unwrap();
        // PerAct truncates to an integer pixel: within one pixel of the exact projection.
        assert!(
            (f64::from(px) - u).abs() <= 1.0 && (f64::from(py) - v).abs() <= 1.0,
            "step {i}: ({u}, {v}) vs ({px}, {py})"
        );
    }
}

#[test]
fn rlbench_camera_selection_and_moving_cameras() {
    let opts = LoadOptions { cameras: vec!["front".into(), "wrist_rgb".into()], ..Default::default() };
    let loaded = load(&rlbench("stock/close_jar/variation1"), &opts);
    let episode = &loaded.episodes[0].1;
    let names: Vec<&str> = episode.cameras.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["front", "wrist"]);
    assert!(episode.cameras[0].extrinsics.is_some());
    // The wrist camera moves with the gripper: no single extrinsic matrix.
    assert!(episode.cameras[1].extrinsics.is_none() && episode.cameras[1].intrinsics.is_some());
    assert_eq!(episode.steps[0].images.len(), 2);

    let opts = LoadOptions { cameras: vec!["overhead".into()], strict: true, ..Default::default() };
    let error = load_episodes(&rlbench("stock/close_jar/variation1"), &opts).unwrap_err().to_string();
    assert!(error.contains("episode0: no images for camera \"overhead\" (cameras found: [front, wrist])"), "{error}");
}

#[test]
fn broken_rlbench_episodes_are_skipped_with_file_and_step() {
    let loaded = load(&rlbench("broken"), &LoadOptions::default());
    assert_eq!(ids(&loaded), ["push_button/v0/e0"]);
    assert_rlbench_values(&loaded.episodes[0].1, "broken/push_button/variation0/episodes/episode0");
    assert_eq!(loaded.skipped.len(), 6);
    let cases = [
        ("episode1", "episode1/low_dim_obs.pkl: cannot unpickle (truncated or not a pickle?)"),
        ("episode2", "episode2/low_dim_obs.pkl: not an RLBench Demo: no `_observations` (found keys: name, weights)"),
        ("episode3", "episode3/front_rgb/2.png (step 2): missing image (3 images for 4 steps)"),
        ("episode4", "episode4/front_rgb/4.png (step 4): extra image: the episode has 4 steps (5 images)"),
        ("episode5", "episode5/low_dim_obs.pkl (step 1): pose is not finite"),
        ("episode6", "episode6/low_dim_obs.pkl: episode has no steps"),
    ];
    for (episode, message) in cases {
        let error = skipped_error(&loaded, episode);
        assert!(error.contains(message), "{episode}: {error}");
    }
    // Strict: the first broken episode stops the import.
    let strict = LoadOptions { strict: true, ..Default::default() };
    let error = load_episodes(&rlbench("broken"), &strict).unwrap_err().to_string();
    assert!(error.contains("episode1/low_dim_obs.pkl: cannot unpickle"), "{error}");
}

#[test]
fn lerobot_v30_quaternion_state_with_velocities() {
    let loaded = load(&lerobot("v30"), &LoadOptions::default());
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_eq!(ids(&loaded), ["pick_up_the_red_cube/v0/e0", "stack_the_blocks/v0/e1", "pick_up_the_red_cube/v0/e2"]);
    let exp = &expected("lerobot")["v30"];
    for (path, episode) in &loaded.episodes {
        let file = if episode.episode < 2 { "file-000.parquet" } else { "file-001.parquet" };
        assert!(path.ends_with(file), "{path:?}");
        let frames = exp[episode.episode.to_string()].as_array().unwrap();
        assert_eq!(episode.steps.len(), frames.len());
        assert_eq!(episode.cameras.len(), 1);
        assert_eq!((episode.cameras[0].name.as_str(), episode.cameras[0].width), ("front", 32));
        for (f, (step, frame)) in episode.steps.iter().zip(frames).enumerate() {
            // float32 in the parquet.
            assert_close(&step.pose.position, &floats(&frame["position"]), 1e-6, "position");
            assert_close(&step.pose.orientation, &floats(&frame["quaternion"]), 1e-6, "orientation");
            assert_eq!(step.gripper_open, frame["open"].as_bool().unwrap());
            assert_close(step.joint_velocities.as_deref().unwrap(), &[0.05 * f as f64; 7], 1e-6, "velocity");
            assert!(episode.metadata.workspace.contains(step.pose.position));
            // The generator marks pixel (frame, episode) white.
            let image = step.images["front"].load_rgb(Path::new("/")).unwrap();
            assert_eq!(image.get_pixel(f as u32, episode.episode).0, [255, 255, 255]);
        }
    }
    assert_eq!(loaded.episodes[1].1.descriptions, ["stack the blocks"]);
}

#[test]
fn lerobot_v21_euler_state_without_velocities() {
    let loaded = load(&lerobot("v21"), &LoadOptions::default());
    assert_eq!(ids(&loaded), ["pick_up_the_red_cube/v0/e0", "pick_up_the_red_cube/v0/e1"]);
    let exp = &expected("lerobot")["v21"];
    for (_, episode) in &loaded.episodes {
        let names: Vec<&str> = episode.cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["front", "wrist"]);
        for (step, frame) in episode.steps.iter().zip(exp[episode.episode.to_string()].as_array().unwrap()) {
            assert_close(&step.pose.position, &floats(&frame["position"]), 1e-6, "position");
            // q and -q are the same rotation.
            let q = floats(&frame["quaternion"]);
            let dot: f64 = step.pose.orientation.iter().zip(&q).map(|(a, b)| a * b).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-6, "{:?} vs {q:?}", step.pose.orientation);
            assert_eq!(step.gripper_open, frame["open"].as_bool().unwrap());
            assert!(step.joint_velocities.is_none());
        }
    }
    let opts = LoadOptions { cameras: vec!["observation.images.wrist".into()], ..Default::default() };
    let wrist = load(&lerobot("v21"), &opts);
    assert_eq!(wrist.episodes[0].1.cameras[0].name, "wrist");
    assert_eq!(wrist.episodes[0].1.steps[0].images.keys().collect::<Vec<_>>(), ["wrist"]);
}

/// Video datasets themselves are tested in `lerobot_video.rs`; this one lacks the episodes'
/// video metadata.
#[test]
fn lerobot_video_without_video_metadata_names_the_file_and_column() {
    let strict = LoadOptions { strict: true, ..Default::default() };
    let error = load_episodes(&lerobot("video"), &strict).unwrap_err().to_string();
    assert!(
        error.contains(
            "video/meta/episodes/chunk-000/file-000.parquet: no column \"videos/observation.images.front/chunk_index\""
        ),
        "{error}"
    );
}

#[test]
fn lerobot_unknown_state_layout_lists_names_and_can_be_mapped() {
    let strict = LoadOptions { strict: true, ..Default::default() };
    let error = load_episodes(&lerobot("unknown"), &strict).unwrap_err().to_string();
    assert!(error.contains("unknown/meta/info.json"), "{error}");
    assert!(
        error.contains("[ee_pos_x, ee_pos_y, ee_pos_z, ee_roll, ee_pitch, ee_yaw, gripper_width]")
            && error.contains("--state-map"),
        "{error}"
    );

    let map: StateMap =
        "x=ee_pos_x,y=ee_pos_y,z=ee_pos_z,roll=ee_roll,pitch=ee_pitch,yaw=ee_yaw,gripper=6,threshold=0.02"
            .parse()
            .unwrap();
    let opts = LoadOptions { state_map: Some(map), strict: true, ..Default::default() };
    let loaded = load(&lerobot("unknown"), &opts);
    let steps = &loaded.episodes[0].1.steps;
    // The generator stores millimetres here: x = 10 * frame, gripper 0.04 (open) for the first half.
    assert_close(&steps.iter().map(|s| s.pose.position[0]).collect::<Vec<_>>(), &[0.0, 10.0, 20.0, 30.0], 1e-3, "x");
    assert_eq!(steps.iter().map(|s| s.gripper_open).collect::<Vec<_>>(), [true, true, false, false]);
}

#[test]
fn broken_lerobot_episodes_are_skipped_with_file_and_step() {
    let loaded = load(&lerobot("broken"), &LoadOptions::default());
    assert_eq!(ids(&loaded), ["pick_up_the_red_cube/v0/e0"]);
    let cases = [
        ("episode_000001.parquet", "episode_000001.parquet (step 2): pose is not finite"),
        ("episode_000002.parquet", "episode_000002.parquet: unreadable parquet file"),
        ("episode_000003.parquet", "episode_000003.parquet (step 1): no image bytes for camera \"front\""),
    ];
    assert_eq!(loaded.skipped.len(), cases.len());
    for (file, message) in cases {
        let error = skipped_error(&loaded, file);
        assert!(error.contains(message), "{file}: {error}");
    }
    let strict = LoadOptions { strict: true, ..Default::default() };
    assert!(load_episodes(&lerobot("broken"), &strict).is_err());
}

#[test]
fn duplicate_episode_ids_are_skipped() {
    // v21 and v30 both hold episodes 0 and 1 of "pick up the red cube".
    let loaded = load(&lerobot(""), &LoadOptions::default());
    let duplicates = loaded.skipped.iter().filter(|(_, e)| e.to_string().contains("was already loaded from")).count();
    assert!(duplicates >= 2, "{:?}", loaded.skipped);
    let mut ids = ids(&loaded);
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

#[test]
fn native_episodes_are_detected_and_cameras_selected() {
    let opts = LoadOptions { cameras: vec!["front".into(), "wrist".into()], ..Default::default() };
    let (_, episode) = load(&rlbench("stock/close_jar/variation1"), &opts).episodes.remove(0);
    let dir = tempfile::tempdir().unwrap();
    native::write_episode(&episode, &dir.path().join("close_jar_0")).unwrap();

    let loaded = load(dir.path(), &LoadOptions::default());
    assert_eq!(ids(&loaded), ["close_jar/v1/e0"]);
    assert_eq!(loaded.episodes[0].1.steps.len(), episode.steps.len());
    assert_eq!(loaded.episodes[0].1.cameras.len(), 2);

    let front = LoadOptions { cameras: vec!["front".into()], ..Default::default() };
    let only_front = load(dir.path(), &front);
    assert_eq!(only_front.episodes[0].1.cameras.len(), 1);
    assert!(only_front.episodes[0].1.steps.iter().all(|s| s.images.keys().eq(["front"])));
    let missing = LoadOptions { cameras: vec!["overhead".into()], ..Default::default() };
    let error = load_episodes(dir.path(), &missing).unwrap_err().to_string();
    assert!(error.contains("no camera \"overhead\" (cameras: [front, wrist])"), "{error}");
}

#[test]
fn empty_folders_and_missing_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let error = load_episodes(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(error.to_string().contains("no demonstrations found"), "{error}");
    let missing = dir.path().join("nope");
    assert!(matches!(load_episodes(&missing, &LoadOptions::default()), Err(DataError::Io { .. })));
}
