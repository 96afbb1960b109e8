//! The episode model: one demonstration, as every reader produces it and every writer
//! consumes it.
//!
//! Conventions (documented once, here, and relied on by every crate):
//! * World frame as in RLBench: metres, x toward the front camera positive, y right positive,
//!   z up positive. Poses are the gripper tip.
//! * Orientation quaternions are `[qx, qy, qz, qw]` (RLBench / scipy order).
//! * Cameras follow the OpenCV pinhole convention: the camera frame has x right, y down and
//!   z forward (the viewing direction); `intrinsics` has positive focal lengths, so a point
//!   `p_cam` lands on pixel `(u, v) = (fx * x / z + cx, fy * y / z + cy)`, u to the right and
//!   v downward from the top-left corner. `extrinsics` is the 4x4 camera-to-world transform.
//!   RLBench's CoppeliaSim convention (negative focal lengths) is converted on import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::video::VideoFrame;

/// End-effector pose in the world frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// `[x, y, z]` in metres.
    pub position: [f64; 3],
    /// Unit quaternion `[qx, qy, qz, qw]`.
    pub orientation: [f64; 4],
}

/// Where a step's image lives: a file on disk (absolute, or relative to the episode folder
/// in the native format), encoded PNG/JPEG bytes held in memory (images stored inside a
/// LeRobot parquet file, frames rendered by r1-sim), or a frame of a video file (LeRobot
/// `video` features), decoded only when it is read. Writers turn all three into PNG files
/// ([`crate::fsutil::write_pngs`] decodes a video's frames in one run).
#[derive(Clone, Debug, PartialEq)]
pub enum ImageRef {
    Path(PathBuf),
    Encoded(Arc<[u8]>),
    Video(VideoFrame),
}

impl ImageRef {
    /// Decodes the image to 8-bit RGB. `base` resolves relative paths.
    pub fn load_rgb(&self, base: &Path) -> Result<image::RgbImage> {
        match self {
            ImageRef::Path(p) => {
                let path = base.join(p);
                let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
                image::load_from_memory(&bytes).map(|i| i.to_rgb8()).map_err(|source| DataError::Image { path, source })
            }
            ImageRef::Encoded(bytes) => image::load_from_memory(bytes)
                .map(|i| i.to_rgb8())
                .map_err(|source| DataError::Image { path: PathBuf::from("<in-memory image>"), source }),
            ImageRef::Video(frame) => frame.decode(),
        }
    }
}

impl Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ImageRef::Path(p) => p.serialize(s),
            ImageRef::Encoded(_) | ImageRef::Video(_) => Err(serde::ser::Error::custom(
                "an in-memory image or video frame has no path: write the episode with the native writer",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        PathBuf::deserialize(d).map(ImageRef::Path)
    }
}

/// One object of a rendered scene, for questions about what the camera sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneObject {
    /// Unique name within the scene, e.g. `"red cup"`.
    pub name: String,
    /// Shape kind, e.g. `"box"`, `"cylinder"`, `"plate"`, `"container"`, `"button"`.
    pub shape: String,
    /// Colour name, e.g. `"red"`.
    pub colour: String,
    /// Centre in the world frame, metres.
    pub position: [f64; 3],
    /// Extent along x, y, z in metres.
    pub size: [f64; 3],
    /// True while the gripper holds it.
    #[serde(default)]
    pub held: bool,
}

/// One recorded time step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub pose: Pose,
    pub gripper_open: bool,
    /// Seven joint velocities (rad/s) when the source records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint_velocities: Option<Vec<f64>>,
    /// Camera name to image.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRef>,
    /// The named subtask of the expert's plan active at this step, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtask: Option<String>,
    /// Scene description at this step, when known (simulated episodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scene: Vec<SceneObject>,
}

/// A calibrated camera (see the module docs for the convention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Row-major 3x3 pinhole matrix, positive focal lengths; `None` when uncalibrated
    /// (LeRobot datasets rarely record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intrinsics: Option<[[f64; 3]; 3]>,
    /// Row-major 4x4 camera-to-world transform; `None` when uncalibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrinsics: Option<[[f64; 4]; 4]>,
}

impl Camera {
    /// Projects a world point to `(u, v)` pixel coordinates, or `None` when it is behind the
    /// camera or the camera is uncalibrated.
    pub fn project(&self, world: [f64; 3]) -> Option<[f64; 2]> {
        let (e, k) = (self.extrinsics.as_ref()?, self.intrinsics.as_ref()?);
        let d = [world[0] - e[0][3], world[1] - e[1][3], world[2] - e[2][3]];
        // The inverse of a rotation is its transpose.
        let cam: [f64; 3] = std::array::from_fn(|c| e[0][c] * d[0] + e[1][c] * d[1] + e[2][c] * d[2]);
        if cam[2] <= 0.0 {
            return None;
        }
        Some([k[0][0] * cam[0] / cam[2] + k[0][1] * cam[1] / cam[2] + k[0][2], k[1][1] * cam[1] / cam[2] + k[1][2]])
    }
}

/// Axis-aligned bounds in the world frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl Bounds {
    pub fn contains(&self, p: [f64; 3]) -> bool {
        (0..3).all(|i| p[i] >= self.min[i] && p[i] <= self.max[i])
    }
}

/// Gripper dimensions in metres, the scale reference the prompts give the model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GripperDims {
    /// Along x.
    pub width: f64,
    /// Along y.
    pub length: f64,
    /// Along z.
    pub height: f64,
    pub finger_length: f64,
}

/// The names of the negative and positive direction of one world axis, as seen from the
/// front camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisNames {
    pub negative: String,
    pub positive: String,
}

/// The environment facts a prompt states: where the origin is, which way the axes point,
/// how big the gripper is, and the reachable workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvMetadata {
    /// A reference point and what it is, e.g. `[0.25, 0, 0.752]`, "the center of the table
    /// surface".
    pub origin: [f64; 3],
    pub origin_description: String,
    /// Axis names for x, y and z.
    pub axes: [AxisNames; 3],
    pub gripper: GripperDims,
    pub workspace: Bounds,
}

impl Default for EnvMetadata {
    /// RLBench's front view, as the Robot-R1 paper states it, with ARM's scene bounds.
    fn default() -> Self {
        let axis = |n: &str, p: &str| AxisNames { negative: n.into(), positive: p.into() };
        Self {
            origin: [0.25, 0.0, 0.752],
            origin_description: "the center of the table surface".into(),
            axes: [axis("back", "front"), axis("left", "right"), axis("down", "up")],
            gripper: GripperDims { width: 0.06, length: 0.2, height: 0.09, finger_length: 0.04 },
            workspace: Bounds { min: [-0.3, -0.5, 0.6], max: [0.7, 0.5, 1.6] },
        }
    }
}

/// One demonstration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub task: String,
    pub variation: u32,
    pub episode: u32,
    /// Natural-language phrasings of the task (one is drawn per question).
    pub descriptions: Vec<String>,
    #[serde(default)]
    pub metadata: EnvMetadata,
    #[serde(default)]
    pub cameras: Vec<Camera>,
    pub steps: Vec<Step>,
    /// Ground-truth waypoint frames, when the source knows them (r1-sim's experts do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoints: Option<Vec<usize>>,
    /// The task's plan as named subtasks in order, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<String>>,
}

impl Episode {
    /// A stable identifier: `task/variation/episode`.
    pub fn id(&self) -> String {
        format!("{}/v{}/e{}", self.task, self.variation, self.episode)
    }

    /// Per-step gripper flags.
    pub fn gripper_open(&self) -> Vec<bool> {
        self.steps.iter().map(|s| s.gripper_open).collect()
    }

    /// Checks what every consumer relies on; `path` is the file the episode came from and is
    /// named in the error. Rejects empty episodes, non-finite poses or velocities, velocity
    /// vectors of differing lengths, and steps whose images do not match the camera list.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.steps.is_empty() {
            return Err(DataError::invalid(path, "episode has no steps"));
        }
        if self.descriptions.is_empty() {
            return Err(DataError::invalid(path, "episode has no task description"));
        }
        let velocity_len = self.steps[0].joint_velocities.as_ref().map(Vec::len);
        for (i, step) in self.steps.iter().enumerate() {
            let p = &step.pose;
            if !p.position.iter().chain(&p.orientation).all(|v| v.is_finite()) {
                return Err(DataError::invalid_step(path, i, "pose is not finite (NaN or infinite)"));
            }
            match (&step.joint_velocities, velocity_len) {
                (Some(v), Some(n)) if v.len() == n => {
                    if !v.iter().all(|x| x.is_finite()) {
                        return Err(DataError::invalid_step(path, i, "joint velocities are not finite"));
                    }
                }
                (None, None) => {}
                _ => {
                    return Err(DataError::invalid_step(
                        path,
                        i,
                        "joint velocities are present on some steps only, or differ in length",
                    ));
                }
            }
            for cam in &self.cameras {
                if !step.images.contains_key(&cam.name) {
                    return Err(DataError::invalid_step(path, i, format!("missing image for camera {:?}", cam.name)));
                }
            }
            if let Some(extra) = step.images.keys().find(|k| !self.cameras.iter().any(|c| &c.name == *k)) {
                return Err(DataError::invalid_step(path, i, format!("image for unknown camera {extra:?}")));
            }
        }
        if let Some(w) = &self.waypoints
            && (w.windows(2).any(|p| p[0] >= p[1]) || w.last().is_some_and(|&l| l >= self.steps.len()))
        {
            return Err(DataError::invalid(path, "waypoints must increase strictly and lie within the episode"));
        }
        Ok(())
    }
}
