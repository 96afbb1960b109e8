//! The native on-disk format: one folder per episode.
//!
//! ```text
//! <episode>/
//!   episode.json        the Episode (see `episode.rs`) as JSON
//!   <camera>/<step>.png one 8-bit PNG per camera and step, steps numbered from 0
//! ```
//! In `episode.json` every step's `images` maps a camera name to the image's path relative to
//! the episode folder, always `"<camera>/<step>.png"`; `cameras` lists the same camera names.
//! Every other field is the serde form of [`Episode`]: `task`, `variation`, `episode`,
//! `descriptions`, `metadata` (origin, axes, gripper dimensions, workspace), `cameras`
//! (intrinsics and extrinsics, OpenCV convention), `steps` (`pose` with `position` and
//! `orientation` `[qx, qy, qz, qw]`, `gripper_open`, optional `joint_velocities`, `subtask`,
//! `scene`), optional `waypoints` and `plan`.
//!
//! [`read_episode`] resolves image paths to absolute ones, validates the episode
//! ([`Episode::validate`]) and checks that each camera folder holds exactly one image per
//! step. [`write_episode`] builds the folder under a temporary sibling and renames it into
//! place, replacing an existing episode folder only once the new one is complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::episode::{Episode, ImageRef};
use crate::error::{DataError, Result};
use crate::fsutil::{StagedDir, create_dir, write_pngs};

/// Name of the JSON file of a native episode folder.
pub const EPISODE_FILE: &str = "episode.json";

/// True when `dir` looks like a native episode folder.
pub fn is_native_episode(dir: &Path) -> bool {
    dir.join(EPISODE_FILE).is_file()
}

/// The relative path of a step's image inside a native episode folder.
pub fn image_path(camera: &str, step: usize) -> PathBuf {
    Path::new(camera).join(format!("{step}.png"))
}

/// Reads and validates the native episode in `dir`.
pub fn read_episode(dir: &Path) -> Result<Episode> {
    let json = dir.join(EPISODE_FILE);
    let text = std::fs::read_to_string(&json).map_err(|e| DataError::io(&json, e))?;
    let mut episode: Episode =
        serde_json::from_str(&text).map_err(|source| DataError::Json { path: json.clone(), source })?;
    episode.validate(&json)?;
    for (i, step) in episode.steps.iter_mut().enumerate() {
        for image in step.images.values_mut() {
            if let ImageRef::Path(p) = image {
                let full = dir.join(&*p);
                if !full.is_file() {
                    return Err(DataError::invalid_step(&json, i, format!("image {} is missing", full.display())));
                }
                *p = full;
            }
        }
    }
    for camera in &episode.cameras {
        let folder = dir.join(&camera.name);
        let count = std::fs::read_dir(&folder)
            .map_err(|e| DataError::io(&folder, e))?
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count();
        if count != episode.steps.len() {
            return Err(DataError::invalid(&folder, format!("holds {count} images for {} steps", episode.steps.len())));
        }
    }
    Ok(episode)
}

/// Writes `episode` as a native episode folder at `dir` (replacing an existing one).
/// In-memory images are written as PNG, image files copied (converted to PNG when they are
/// not); relative image paths resolve against the working directory.
pub fn write_episode(episode: &Episode, dir: &Path) -> Result<()> {
    episode.validate(dir)?;
    let staged = StagedDir::new(dir)?;
    for camera in &episode.cameras {
        create_dir(&staged.path().join(&camera.name))?;
    }
    let mut writes = Vec::new();
    let mut stored = episode.clone();
    for ((i, step), original) in stored.steps.iter_mut().enumerate().zip(&episode.steps) {
        let mut images = BTreeMap::new();
        for (camera, image) in &original.images {
            let rel = image_path(camera, i);
            writes.push((image, staged.path().join(&rel)));
            images.insert(camera.clone(), ImageRef::Path(rel));
        }
        step.images = images;
    }
    write_pngs(&writes, Path::new(""))?;
    let json = staged.path().join(EPISODE_FILE);
    let text = serde_json::to_string(&stored).map_err(|source| DataError::Json { path: json.clone(), source })?;
    std::fs::write(&json, text).map_err(|e| DataError::io(&json, e))?;
    staged.commit(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::episode::{Camera, EnvMetadata, Pose, Step};
    use std::sync::Arc;

    fn png(w: u32, h: u32, shade: u8) -> Arc<[u8]> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([shade, x as u8, y as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner().into()
    }

    fn sample(steps: usize) -> Episode {
        Episode {
            task: "pick_up_cup".into(),
            variation: 0,
            episode: 3,
            descriptions: vec!["pick up the red cup".into()],
            metadata: EnvMetadata::default(),
            cameras: vec![Camera {
                name: "front".into(),
                width: 4,
                height: 3,
                intrinsics: Some([[2.0, 0.0, 2.0], [0.0, 2.0, 1.5], [0.0, 0.0, 1.0]]),
                extrinsics: None,
            }],
            steps: (0..steps)
                .map(|i| Step {
                    pose: Pose { position: [0.1 * i as f64, -0.2, 0.9], orientation: [0.0, 1.0, 0.0, 0.0] },
                    gripper_open: i < 2,
                    joint_velocities: Some(vec![0.5; 7]),
                    images: [("front".to_string(), ImageRef::Encoded(png(4, 3, i as u8)))].into(),
                    subtask: Some("reach".into()),
                    scene: vec![],
                })
                .collect(),
            waypoints: Some(vec![1, steps - 1]),
            plan: Some(vec!["reach".into(), "grasp".into()]),
        }
    }

    #[test]
    fn round_trip_preserves_everything_but_image_locations() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("episode3");
        let original = sample(4);
        write_episode(&original, &dir).unwrap();
        let back = read_episode(&dir).unwrap();
        for (i, (a, b)) in original.steps.iter().zip(&back.steps).enumerate() {
            let ImageRef::Path(p) = &b.images["front"] else { panic!("read images are paths") };
            assert_eq!(p, &dir.join(format!("front/{i}.png")));
            assert_eq!(
                a.images["front"].load_rgb(Path::new("")).unwrap(),
                b.images["front"].load_rgb(Path::new("")).unwrap()
            );
        }
        let strip = |e: &Episode| {
            let mut e = e.clone();
            e.steps.iter_mut().for_each(|s| s.images.clear());
            e
        };
        assert_eq!(strip(&original), strip(&back));
        // Writing what was read (path images) elsewhere gives the same episode again.
        let copy = tmp.path().join("copy");
        write_episode(&back, &copy).unwrap();
        assert_eq!(strip(&read_episode(&copy).unwrap()), strip(&original));
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary folders left: {leftovers:?}");
    }

    #[test]
    fn rewriting_replaces_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ep");
        write_episode(&sample(5), &dir).unwrap();
        write_episode(&sample(3), &dir).unwrap();
        assert_eq!(read_episode(&dir).unwrap().steps.len(), 3);
        assert!(!dir.join("front/4.png").exists());
    }

    #[test]
    fn invalid_episode_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ep = sample(3);
        ep.steps[1].pose.position[2] = f64::NAN;
        let err = write_episode(&ep, &tmp.path().join("ep")).unwrap_err().to_string();
        assert!(err.contains("step 1") && err.contains("not finite"), "{err}");
        ep.steps[1].pose.position[2] = 0.9;
        ep.steps[2].images.insert("front".into(), ImageRef::Encoded(Arc::from(&b"not an image"[..])));
        assert!(write_episode(&ep, &tmp.path().join("ep")).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_folders_are_reported_with_file_and_step() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ep");
        write_episode(&sample(3), &dir).unwrap();

        std::fs::remove_file(dir.join("front/2.png")).unwrap();
        let err = read_episode(&dir).unwrap_err().to_string();
        assert!(err.contains("episode.json (step 2)") && err.contains("missing"), "{err}");

        write_episode(&sample(3), &dir).unwrap();
        std::fs::write(dir.join("front/7.png"), b"x").unwrap();
        let err = read_episode(&dir).unwrap_err().to_string();
        assert!(err.contains("holds 4 images for 3 steps"), "{err}");

        std::fs::write(dir.join(EPISODE_FILE), "{\"task\": ").unwrap();
        let err = read_episode(&dir).unwrap_err().to_string();
        assert!(err.contains("episode.json: invalid JSON"), "{err}");

        let err = read_episode(&tmp.path().join("nowhere")).unwrap_err().to_string();
        assert!(err.contains("nowhere/episode.json"), "{err}");
    }
}
