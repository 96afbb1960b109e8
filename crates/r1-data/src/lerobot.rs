//! LeRobot datasets, v2.x and v3.0, whose cameras are images stored in the parquet or videos.
//!
//! A dataset root holds `meta/info.json` (codebase version, fps, features with dtype, shape and
//! `names`, path templates), the task strings (`meta/tasks.jsonl` in v2.x, `meta/tasks.parquet`
//! in v3.0) and the frames under `data/` (one parquet file per episode in v2.x, several
//! episodes per file in v3.0). Each frame row carries `episode_index`, `frame_index`,
//! `timestamp`, `task_index`, the state feature and one column per `image` camera. Every
//! `*.parquet` file under `data/` is read; frames are grouped by `episode_index` and ordered by
//! `frame_index`, which must run 0, 1, ... without gaps.
//!
//! # From state entries to the episode model
//! The state feature (`observation.state` unless the [`StateMap`] names another) is a vector
//! whose entries are labelled by the feature's `names` in `info.json`. Entries named `x`, `y`,
//! `z`, `qx`, `qy`, `qz`, `qw`, `roll`, `pitch`, `yaw`, `gripper` (case-insensitive) give the
//! end-effector position, orientation and gripper. Orientation is the quaternion when all four
//! of `qx..qw` are present, else roll/pitch/yaw (radians, extrinsic x-y-z:
//! `R = Rz(yaw) Ry(pitch) Rx(roll)`) converted to a quaternion, else the identity (datasets that
//! record position only; Robot-R1's questions use position and gripper). Any other layout is an
//! error that lists the names found; [`StateMap`] (`--state-map`) maps entries explicitly.
//!
//! Gripper rule: the step's gripper is open when the gripper entry is above the threshold
//! (default [`DEFAULT_GRIPPER_THRESHOLD`], for the common 1 = open / 0 = closed encoding);
//! `open=below` in the state map flips it for datasets where larger means closed.
//!
//! Joint velocities come from the first of [`VELOCITY_FEATURES`] the dataset has (or the one
//! the state map names); without one, `joint_velocities` stays `None` and keypoint discovery
//! applies its finite-difference rule ([`crate::keypoints::velocities_from_positions`]).
//!
//! Cameras are the features of dtype `image` (PNG or JPEG bytes in a `{bytes, path}` struct)
//! or `video`, named by the feature key without its `observation.images.` prefix. LeRobot
//! records no calibration, so cameras have neither intrinsics nor extrinsics.
//!
//! # Video cameras
//! A `video` camera's frames live in MP4 files (AV1 by default, also H.264 or HEVC) found
//! through `info.json`'s `video_path` template:
//! * v3.0: several episodes per file, one after the other. `meta/episodes/**/*.parquet` gives
//!   per episode and camera `videos/<key>/chunk_index`, `file_index` (filling the template's
//!   `{video_key}`, `{chunk_index}`, `{file_index}`) and `from_timestamp`, the time of the
//!   episode's first frame in that file; data files and video files split independently.
//! * v2.x: one file per episode and camera (`{video_key}`, `{episode_chunk}` = episode index /
//!   `chunks_size`, `{episode_index}`), starting at 0 s.
//!
//! A step's frame is the one at `from_timestamp + timestamp` (the row's own `timestamp`), as
//! LeRobot's loader addresses it, returned as RGB at the feature's declared size (`shape`,
//! read through its `names` `height` and `width`). Reading a dataset only checks each video
//! file once (FFmpeg can open it and has a decoder for its codec, see [`crate::video`]); steps
//! hold [`ImageRef::Video`] references, and frames are decoded when the question images are
//! written, one FFmpeg run per episode and file. A file that cannot be decoded skips the
//! episodes that use it, with an error naming the file and codec; without FFmpeg the dataset
//! fails with an error saying what to install.
//!
//! The episode's task is the task string made a slug (`"Pick up the cube"` ->
//! `pick_up_the_cube`), its description the string itself, its variation 0. LeRobot states are
//! in the robot's own frame, not RLBench's scene, so the environment metadata names the state
//! frame's origin and takes the workspace bounds from the dataset: the box around every
//! recorded position, padded by [`WORKSPACE_PADDING`] of its extent on each side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;

use crate::episode::{Bounds, Camera, EnvMetadata, Episode, ImageRef, Pose, Step};
use crate::error::{DataError, Result};
use crate::video::{Video, VideoFrame};

/// The state feature read when the state map names none.
pub const DEFAULT_STATE_FEATURE: &str = "observation.state";
/// Joint-velocity features looked for, in order, when the state map names none.
pub const VELOCITY_FEATURES: [&str; 2] = ["observation.joint_velocities", "observation.velocity"];
/// Gripper entries above this value mean open (see the module docs).
pub const DEFAULT_GRIPPER_THRESHOLD: f64 = 0.5;
/// Fraction of the recorded extent added on each side of the workspace bounds.
pub const WORKSPACE_PADDING: f64 = 0.1;
const CAMERA_PREFIX: &str = "observation.images.";
/// The state-entry roles a name or a state-map key can take.
const ROLES: [&str; 11] = ["x", "y", "z", "qx", "qy", "qz", "qw", "roll", "pitch", "yaw", "gripper"];

/// True when `dir` is the root of a LeRobot dataset.
pub fn is_dataset_root(dir: &Path) -> bool {
    dir.join("meta").join("info.json").is_file()
}

/// One state entry, by position in the state vector or by its name in `info.json`.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Index(usize),
    Name(String),
}

/// Where joint velocities come from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Velocities {
    /// The first of [`VELOCITY_FEATURES`] present, else none.
    #[default]
    Auto,
    Feature(String),
    /// Ignore any velocity feature (keypoints then use finite differences).
    Off,
}

/// An explicit mapping from state entries to the end effector, overriding or completing what
/// the feature's `names` say.
///
/// Text form (`--state-map`): comma-separated `key=value` pairs.
/// * `x`, `y`, `z`, `qx`, `qy`, `qz`, `qw`, `roll`, `pitch`, `yaw`, `gripper` `=` an entry index
///   (`x=0`) or an entry name from `info.json` (`x=ee_pos_x`);
/// * `state=<feature>`: the state feature (default `observation.state`);
/// * `threshold=<number>`: the gripper threshold (default 0.5);
/// * `open=above|below`: which side of the threshold is open (default above);
/// * `velocities=<feature>|none`: the joint-velocity feature, or none.
///
/// Example: `x=0,y=1,z=2,roll=3,pitch=4,yaw=5,gripper=6,open=below`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateMap {
    pub feature: Option<String>,
    /// Role (one of the names above) to entry; these win over the feature's names.
    pub entries: BTreeMap<String, Entry>,
    pub gripper_threshold: Option<f64>,
    pub open_below: bool,
    pub velocities: Velocities,
}

impl FromStr for StateMap {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| DataError::Config(format!("--state-map {s:?}: {m}"));
        let mut map = StateMap::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
            match key {
                _ if ROLES.contains(&key) => {
                    let entry = value.parse().map(Entry::Index).unwrap_or_else(|_| Entry::Name(value.to_owned()));
                    map.entries.insert(key.to_owned(), entry);
                }
                "state" => map.feature = Some(value.to_owned()),
                "threshold" => {
                    let t = value.parse::<f64>().ok().filter(|t| t.is_finite());
                    map.gripper_threshold = Some(t.ok_or_else(|| bad(format!("threshold {value:?} is not a number")))?);
                }
                "open" => {
                    map.open_below = match value {
                        "above" => false,
                        "below" => true,
                        _ => return Err(bad(format!("open={value:?}: expected above or below"))),
                    }
                }
                "velocities" => {
                    map.velocities =
                        if value == "none" { Velocities::Off } else { Velocities::Feature(value.to_owned()) }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown key {key:?} (expected {}, state, threshold, open or velocities)",
                        ROLES.join(", ")
                    )));
                }
            }
        }
        Ok(map)
    }
}

/// How to read the orientation out of a state vector.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Orientation {
    Quaternion([usize; 4]),
    Euler([usize; 3]),
    Identity,
}

/// A state map resolved against one dataset: entry indices.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    position: [usize; 3],
    orientation: Orientation,
    gripper: usize,
    threshold: f64,
    open_below: bool,
}

impl Layout {
    /// Resolves roles from the feature's entry `names` (may be empty when `info.json` gives
    /// none) and the state map's explicit entries. `len` is the state vector's length.
    fn resolve(map: &StateMap, names: &[String], len: usize, feature: &str, info: &Path) -> Result<Self> {
        let mut roles: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(role) = ROLES.iter().find(|r| name.trim().eq_ignore_ascii_case(r)) {
                roles.insert(role, i);
            }
        }
        for (role, entry) in &map.entries {
            let index = match entry {
                Entry::Index(i) => *i,
                Entry::Name(n) => names.iter().position(|x| x == n).ok_or_else(|| {
                    DataError::Config(format!(
                        "--state-map: {feature} has no entry named {n:?} (names: [{}])",
                        names.join(", ")
                    ))
                })?,
            };
            if index >= len {
                return Err(DataError::Config(format!(
                    "--state-map: {role}={index} is out of range: {feature} has {len} entries"
                )));
            }
            roles.insert(role.as_str(), index);
        }
        let get = |keys: &[&str]| keys.iter().map(|k| roles.get(k).copied()).collect::<Option<Vec<usize>>>();
        let orientation = match (get(&["qx", "qy", "qz", "qw"]), get(&["roll", "pitch", "yaw"])) {
            (Some(q), _) => Some(Orientation::Quaternion([q[0], q[1], q[2], q[3]])),
            (None, Some(e)) => Some(Orientation::Euler([e[0], e[1], e[2]])),
            (None, None) if ["qx", "qy", "qz", "qw", "roll", "pitch", "yaw"].iter().any(|k| roles.contains_key(k)) => {
                None
            }
            (None, None) => Some(Orientation::Identity),
        };
        match (get(&["x", "y", "z"]), get(&["gripper"]), orientation) {
            (Some(p), Some(g), Some(orientation)) => Ok(Layout {
                position: [p[0], p[1], p[2]],
                orientation,
                gripper: g[0],
                threshold: map.gripper_threshold.unwrap_or(DEFAULT_GRIPPER_THRESHOLD),
                open_below: map.open_below,
            }),
            _ => Err(DataError::invalid(
                info,
                format!(
                    "cannot tell the end-effector layout of {feature} from its names [{}]: need x, y, z and \
                     gripper, and qx, qy, qz, qw or roll, pitch, yaw (or no orientation at all); map the \
                     entries with --state-map, e.g. x=0,y=1,z=2,roll=3,pitch=4,yaw=5,gripper=6",
                    names.join(", ")
                ),
            )),
        }
    }

    /// The pose and gripper flag of one state vector; `None` when it is too short.
    fn apply(&self, s: &[f64]) -> Option<(Pose, bool)> {
        let at = |i: usize| s.get(i).copied();
        let position = [at(self.position[0])?, at(self.position[1])?, at(self.position[2])?];
        let orientation = match self.orientation {
            Orientation::Quaternion(q) => [at(q[0])?, at(q[1])?, at(q[2])?, at(q[3])?],
            Orientation::Euler(e) => euler_to_quaternion(at(e[0])?, at(e[1])?, at(e[2])?),
            Orientation::Identity => [0.0, 0.0, 0.0, 1.0],
        };
        let g = at(self.gripper)?;
        let open = if self.open_below { g < self.threshold } else { g > self.threshold };
        Some((Pose { position, orientation }, open))
    }
}

/// Roll, pitch, yaw (radians; `R = Rz(yaw) Ry(pitch) Rx(roll)`) to `[qx, qy, qz, qw]`: the
/// product `q_z(yaw) * q_y(pitch) * q_x(roll)` of the three axis rotations, expanded.
pub fn euler_to_quaternion(roll: f64, pitch: f64, yaw: f64) -> [f64; 4] {
    let (sr, cr) = (roll / 2.0).sin_cos();
    let (sp, cp) = (pitch / 2.0).sin_cos();
    let (sy, cy) = (yaw / 2.0).sin_cos();
    [sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy]
}

/// Makes a task string a task name: lowercase ASCII letters and digits, runs of anything else
/// become one `_`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() { "task".into() } else { out }
}

/// The columns to read from the data files.
struct Columns {
    state: String,
    velocity: Option<String>,
    cameras: Vec<CameraFeature>,
}

impl Columns {
    /// The cameras stored as images in the data files, whose columns are read.
    fn image_cameras(&self) -> impl Iterator<Item = &CameraFeature> {
        self.cameras.iter().filter(|c| c.video.is_none())
    }

    fn has_video(&self) -> bool {
        self.cameras.iter().any(|c| c.video.is_some())
    }
}

/// A selected camera feature.
struct CameraFeature {
    /// The feature key without its `observation.images.` prefix.
    name: String,
    key: String,
    /// The declared frame size `(width, height)` of a `video` feature; `None` for `image`.
    video: Option<(u32, u32)>,
}

/// One frame row.
struct Frame {
    frame: i64,
    task: i64,
    /// Seconds from the episode's start (`timestamp`); read only when a camera is video.
    timestamp: f64,
    state: Vec<f64>,
    velocity: Option<Vec<f64>>,
    /// One per image camera, in [`Columns::image_cameras`] order.
    images: Vec<Arc<[u8]>>,
}

/// The episodes of one dataset, each with the parquet file it came from. The outer error
/// concerns the whole dataset (unreadable `info.json`, unknown state layout, missing tasks,
/// video cameras without FFmpeg); an inner one a single episode or data file (or its video),
/// which a caller may skip.
///
/// `only` restricts reading to the data files at or below that path (absolute), e.g. one
/// v2.x episode file. `cameras` selects camera features by name (`front` or
/// `observation.images.front`); empty means all of them. Episodes are not validated here.
pub fn read_dataset(
    root: &Path,
    only: Option<&Path>,
    cameras: &[String],
    state_map: Option<&StateMap>,
) -> Result<Vec<(PathBuf, Result<Episode>)>> {
    let root = std::path::absolute(root).map_err(|e| DataError::io(root, e))?;
    let info_path = root.join("meta").join("info.json");
    let text = std::fs::read_to_string(&info_path).map_err(|e| DataError::io(&info_path, e))?;
    let info: Json =
        serde_json::from_str(&text).map_err(|source| DataError::Json { path: info_path.clone(), source })?;
    let version = info["codebase_version"].as_str().unwrap_or_default();
    if !(version.starts_with("v2.") || version.starts_with("v3.")) {
        return Err(DataError::invalid(
            &info_path,
            format!("unsupported LeRobot codebase_version {version:?}: r1 reads v2.x and v3.0 datasets"),
        ));
    }
    let features =
        info["features"].as_object().ok_or_else(|| DataError::invalid(&info_path, "no `features` object"))?;
    let default_map = StateMap::default();
    let map = state_map.unwrap_or(&default_map);

    let state = map.feature.clone().unwrap_or_else(|| DEFAULT_STATE_FEATURE.to_owned());
    let state_feature = features.get(&state).ok_or_else(|| {
        let names: Vec<&String> = features.keys().collect();
        DataError::invalid(
            &info_path,
            format!("no state feature {state:?} (features: {names:?}); name it with --state-map state=<feature>"),
        )
    })?;
    let names = entry_names(&state_feature["names"]);
    let len =
        state_feature["shape"].as_array().and_then(|s| s.first()).and_then(Json::as_u64).unwrap_or(names.len() as u64);
    let layout = Layout::resolve(map, &names, len as usize, &state, &info_path)?;

    let velocity = match &map.velocities {
        Velocities::Auto => VELOCITY_FEATURES.iter().find(|f| features.contains_key(**f)).map(|f| f.to_string()),
        Velocities::Feature(f) if features.contains_key(f) => Some(f.clone()),
        Velocities::Feature(f) => {
            return Err(DataError::invalid(&info_path, format!("no velocity feature {f:?}")));
        }
        Velocities::Off => None,
    };
    let columns = Columns { state, velocity, cameras: select_cameras(features, cameras, &info_path)? };

    let v2 = version.starts_with("v2.");
    let tasks = if v2 { tasks_v2(&root)? } else { tasks_v3(&root)? };
    let mut files = data_files(&root.join("data"))?;
    if let Some(only) = only {
        files.retain(|f| f.starts_with(only));
    }
    if files.is_empty() {
        let place = only.map_or_else(|| root.join("data"), Path::to_path_buf);
        return Err(DataError::invalid(place, "no LeRobot data files (parquet) here"));
    }

    let read: Vec<(PathBuf, Result<ByEpisode>)> =
        files.into_iter().map(|file| (file.clone(), read_frames(&file, &columns))).collect();
    let videos = if columns.has_video() {
        let indices = read.iter().filter_map(|(_, r)| r.as_ref().ok()).flat_map(|by_episode| by_episode.keys());
        Some(VideoIndex::new(&root, &info, &info_path, &columns, v2, indices.copied())?)
    } else {
        None
    };
    let mut out = Vec::new();
    for (file, frames) in read {
        match frames {
            Err(e) => out.push((file, Err(e))),
            Ok(by_episode) => {
                for (index, frames) in by_episode {
                    let episode = build_episode(&file, index, frames, &layout, &columns, &tasks, videos.as_ref());
                    out.push((file.clone(), episode));
                }
            }
        }
    }
    let metadata = dataset_metadata(out.iter().filter_map(|(_, e)| e.as_ref().ok()));
    for episode in out.iter_mut().filter_map(|(_, e)| e.as_mut().ok()) {
        episode.metadata = metadata.clone();
    }
    Ok(out)
}

/// The entry names of a feature: a list of strings, or a dict holding one (`{"motors": [..]}`).
fn entry_names(v: &Json) -> Vec<String> {
    let list = match v {
        Json::Array(a) => Some(a),
        Json::Object(o) if o.len() == 1 => o.values().next().and_then(Json::as_array),
        _ => None,
    };
    list.map(|l| l.iter().map(|n| n.as_str().map(str::to_owned).unwrap_or_else(|| n.to_string())).collect())
        .unwrap_or_default()
}

/// The selected camera features (all of them when `wanted` is empty).
fn select_cameras(
    features: &serde_json::Map<String, Json>,
    wanted: &[String],
    info: &Path,
) -> Result<Vec<CameraFeature>> {
    let all: Vec<(String, String, &Json)> = features
        .iter()
        .filter(|(_, f)| matches!(f["dtype"].as_str(), Some("image" | "video")))
        .map(|(key, f)| (key.strip_prefix(CAMERA_PREFIX).unwrap_or(key).to_owned(), key.clone(), f))
        .collect();
    let chosen: Vec<&(String, String, &Json)> = if wanted.is_empty() {
        all.iter().collect()
    } else {
        wanted
            .iter()
            .map(|w| {
                all.iter().find(|(name, key, _)| name == w || key == w).ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|c| c.0.as_str()).collect();
                    DataError::invalid(info, format!("no camera {w:?} (cameras: [{}])", names.join(", ")))
                })
            })
            .collect::<Result<_>>()?
    };
    chosen
        .into_iter()
        .map(|(name, key, feature)| {
            let video = match feature["dtype"].as_str() {
                Some("video") => Some(declared_size(feature).ok_or_else(|| {
                    DataError::invalid(
                        info,
                        format!(
                            "video feature {key:?}: no frame size (`shape` with height and width) in its declaration"
                        ),
                    )
                })?),
                _ => None,
            };
            Ok(CameraFeature { name: name.clone(), key: key.clone(), video })
        })
        .collect()
}

/// A video feature's declared `(width, height)`: its `shape` indexed by the positions of
/// `height` and `width` in its `names`, else read as LeRobot's default `[height, width, channels]`.
fn declared_size(feature: &Json) -> Option<(u32, u32)> {
    let shape: Vec<u32> = feature["shape"]
        .as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()))
        .collect::<Option<_>>()?;
    let names = entry_names(&feature["names"]);
    let at = |name: &str, default: usize| {
        let i = names.iter().position(|n| n == name).unwrap_or(default);
        shape.get(i).copied().filter(|&d| d > 0)
    };
    Some((at("width", 1)?, at("height", 0)?))
}

/// The frames of one data file, by episode index.
type ByEpisode = BTreeMap<i64, Vec<Frame>>;

/// One episode's video for one camera: the opened (probed) file and the time of the episode's
/// first frame in it, or why it cannot be had.
type Located = std::result::Result<(Arc<Video>, f64), String>;

/// Where each episode's frames are in the video files.
struct VideoIndex {
    /// Per episode index, per video camera (in [`Columns::cameras`] order).
    episodes: BTreeMap<i64, Vec<Located>>,
}

impl VideoIndex {
    /// Locates the episodes `indices` in the video files: v3.0 through `meta/episodes`
    /// (`videos/<key>/chunk_index`, `file_index`, `from_timestamp`) and the `video_path`
    /// template, v2.x through the template alone (one file per episode, starting at 0 s).
    /// Each file is opened once; a file that cannot be decoded fails only its episodes,
    /// missing FFmpeg fails the dataset.
    fn new(
        root: &Path,
        info: &Json,
        info_path: &Path,
        columns: &Columns,
        v2: bool,
        indices: impl Iterator<Item = i64>,
    ) -> Result<Self> {
        let fps = info["fps"].as_f64().filter(|f| f.is_finite() && *f > 0.0);
        let fps = fps.ok_or_else(|| DataError::invalid(info_path, "video features need a positive `fps`"))?;
        let template = info["video_path"]
            .as_str()
            .ok_or_else(|| DataError::invalid(info_path, "video features but no `video_path` template"))?;
        let chunks_size = info["chunks_size"].as_i64().filter(|c| *c > 0).unwrap_or(1000);
        let cameras: Vec<(&CameraFeature, (u32, u32))> =
            columns.cameras.iter().filter_map(|c| c.video.map(|size| (c, size))).collect();
        let located = if v2 { None } else { Some(episodes_v3(root, &cameras)?) };
        let mut opened = BTreeMap::new();
        let mut episodes = BTreeMap::new();
        for index in indices {
            let mut per_camera = Vec::with_capacity(cameras.len());
            for (c, (camera, (width, height))) in cameras.iter().enumerate() {
                let key = || Placeholder::Text(&camera.key);
                let place = match &located {
                    None => fill_template(
                        template,
                        &[
                            ("video_key", key()),
                            ("episode_chunk", Placeholder::Number(index / chunks_size)),
                            ("episode_index", Placeholder::Number(index)),
                        ],
                    )
                    .map(|rel| (rel, 0.0)),
                    Some(located) => located
                        .get(&index)
                        .ok_or_else(|| format!("episode {index} is not listed in meta/episodes"))
                        .and_then(|places| {
                            let (chunk, file, from) = places[c];
                            let values = [
                                ("video_key", key()),
                                ("chunk_index", Placeholder::Number(chunk)),
                                ("file_index", Placeholder::Number(file)),
                            ];
                            fill_template(template, &values).map(|rel| (rel, from))
                        }),
                };
                let entry = match place {
                    Ok((rel, from)) => open_once(&mut opened, root.join(rel), *width, *height, fps)?.map(|v| (v, from)),
                    Err(e) => Err(e),
                };
                per_camera.push(entry.map_err(|e| format!("camera {:?}: {e}", camera.name)));
            }
            episodes.insert(index, per_camera);
        }
        Ok(VideoIndex { episodes })
    }
}

/// A video file opened (probed), or why it cannot be.
type Opened = std::result::Result<Arc<Video>, String>;

/// The video at `path`, opened (probed) the first time it is asked for. Missing FFmpeg is the
/// outer error: no video of the dataset can be decoded.
fn open_once(
    opened: &mut BTreeMap<PathBuf, Opened>,
    path: PathBuf,
    width: u32,
    height: u32,
    fps: f64,
) -> Result<Opened> {
    if let Some(video) = opened.get(&path) {
        return Ok(video.clone());
    }
    let video = match Video::open(&path, width, height, fps) {
        Ok(v) => Ok(Arc::new(v)),
        Err(e @ DataError::FfmpegMissing { .. }) => return Err(e),
        Err(e) => Err(e.to_string()),
    };
    opened.insert(path, video.clone());
    Ok(video)
}

/// A v3.0 episode's video for one camera: chunk index, file index, start time in seconds.
type VideoPlace = (i64, i64, f64);

/// `meta/episodes/**/*.parquet` of a v3.0 dataset: per episode index, per camera of
/// `cameras`, its video's chunk index, file index and start time (`from_timestamp`, seconds).
fn episodes_v3(root: &Path, cameras: &[(&CameraFeature, (u32, u32))]) -> Result<BTreeMap<i64, Vec<VideoPlace>>> {
    let mut out = BTreeMap::new();
    for path in data_files(&root.join("meta").join("episodes"))? {
        let keys: Vec<[String; 3]> = cameras
            .iter()
            .map(|(c, _)| ["chunk_index", "file_index", "from_timestamp"].map(|k| format!("videos/{}/{k}", c.key)))
            .collect();
        let mut names = vec!["episode_index"];
        names.extend(keys.iter().flatten().map(String::as_str));
        for batch in read_batches(&path, Some(&names))? {
            let wrong = |c: &str| DataError::invalid(&path, format!("column {c:?} has an unexpected type"));
            let episode = int_column(&batch, "episode_index").ok_or_else(|| wrong("episode_index"))?;
            let columns = keys
                .iter()
                .map(|[chunk, file, from]| {
                    Ok((
                        int_column(&batch, chunk).ok_or_else(|| wrong(chunk))?,
                        int_column(&batch, file).ok_or_else(|| wrong(file))?,
                        batch
                            .column_by_name(from)
                            .and_then(|c| cast(c, &DataType::Float64).ok())
                            .ok_or_else(|| wrong(from))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let places = columns
                    .iter()
                    .map(|(chunk, file, from)| {
                        (
                            chunk.as_primitive::<Int64Type>().value(row),
                            file.as_primitive::<Int64Type>().value(row),
                            from.as_primitive::<Float64Type>().value(row),
                        )
                    })
                    .collect();
                out.insert(episode.as_primitive::<Int64Type>().value(row), places);
            }
        }
    }
    Ok(out)
}

/// A value for a path template placeholder.
enum Placeholder<'a> {
    Text(&'a str),
    Number(i64),
}

/// Fills a LeRobot path template (`videos/{video_key}/chunk-{chunk_index:03d}/...`): each
/// `{name}` or `{name:0Nd}` is replaced by its value (numbers zero-padded to N digits).
fn fill_template(template: &str, values: &[(&str, Placeholder)]) -> std::result::Result<String, String> {
    let bad = |m: String| format!("video_path template {template:?}: {m}");
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| bad("unclosed `{`".into()))? + open;
        let field = &rest[open + 1..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| bad(format!("unknown placeholder {name:?}")))?;
        match (value, spec) {
            (Placeholder::Text(t), "") => out.push_str(t),
            (Placeholder::Number(n), "") | (Placeholder::Number(n), "d") => out.push_str(&n.to_string()),
            (Placeholder::Number(n), spec) => {
                let width = spec
                    .strip_prefix('0')
                    .and_then(|w| w.strip_suffix('d'))
                    .and_then(|w| w.parse::<usize>().ok())
                    .ok_or_else(|| bad(format!("unsupported format {spec:?} for {name:?}")))?;
                out.push_str(&format!("{n:0width$}"));
            }
            (Placeholder::Text(_), spec) => return Err(bad(format!("unsupported format {spec:?} for {name:?}"))),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn tasks_v2(root: &Path) -> Result<BTreeMap<i64, String>> {
    let path = root.join("meta").join("tasks.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let mut tasks = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Json = serde_json::from_str(line).map_err(|source| DataError::Json { path: path.clone(), source })?;
        match (v["task_index"].as_i64(), v["task"].as_str()) {
            (Some(index), Some(task)) => tasks.insert(index, task.to_owned()),
            _ => {
                return Err(DataError::invalid(&path, format!("line {}: expected task_index and task", i + 1)));
            }
        };
    }
    Ok(tasks)
}

/// `meta/tasks.parquet`: `task_index` and the task string, stored by pandas as the frame's
/// index (a column named `task` or `__index_level_0__`).
fn tasks_v3(root: &Path) -> Result<BTreeMap<i64, String>> {
    let path = root.join("meta").join("tasks.parquet");
    let mut tasks = BTreeMap::new();
    for batch in read_batches(&path, None)? {
        let text = ["task", "__index_level_0__"]
            .iter()
            .find_map(|n| batch.column_by_name(n))
            .and_then(|c| cast(c, &DataType::Utf8).ok());
        let (Some(index), Some(text)) = (int_column(&batch, "task_index"), text) else {
            return Err(DataError::invalid(&path, "expected columns task_index and task (or __index_level_0__)"));
        };
        let text = text.as_string::<i32>();
        for row in 0..batch.num_rows() {
            tasks.insert(index.as_primitive::<Int64Type>().value(row), text.value(row).to_owned());
        }
    }
    Ok(tasks)
}

/// Every `*.parquet` file under `dir`, in natural order.
fn data_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| DataError::io(&d, e))? {
            let path = entry.map_err(|e| DataError::io(&d, e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a parquet file, restricted to the named top-level columns when given.
fn read_batches(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let parquet_error =
        |e: parquet::errors::ParquetError| DataError::invalid(path, format!("unreadable parquet file: {e}"));
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    if let Some(columns) = columns {
        let fields = builder.schema().fields();
        let roots = columns
            .iter()
            .map(|c| {
                fields
                    .iter()
                    .position(|f| f.name() == c)
                    .ok_or_else(|| DataError::invalid(path, format!("no column {c:?}")))
            })
            .collect::<Result<Vec<usize>>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(parquet_error)?;
    reader.map(|b| b.map_err(|e| DataError::invalid(path, format!("unreadable parquet file: {e}")))).collect()
}

fn int_column(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    batch.column_by_name(name).and_then(|c| cast(c, &DataType::Int64).ok())
}

/// A column of numbers or number lists as `List<Float64>`.
fn float_lists(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    batch.column_by_name(name).and_then(|c| cast(c, &target).ok())
}

fn floats_at(lists: &ArrayRef, row: usize) -> Option<Vec<f64>> {
    let lists = lists.as_list::<i32>();
    if lists.is_null(row) {
        return None;
    }
    let values = lists.value(row);
    let values = values.as_primitive::<Float64Type>();
    // A null entry becomes NaN so validation reports the step.
    Some((0..values.len()).map(|i| if values.is_null(i) { f64::NAN } else { values.value(i) }).collect())
}

/// The frames of a data file, grouped by episode index.
fn read_frames(path: &Path, columns: &Columns) -> Result<ByEpisode> {
    let mut names = vec!["episode_index", "frame_index", "task_index", columns.state.as_str()];
    names.extend(columns.velocity.as_deref());
    names.extend(columns.image_cameras().map(|c| c.key.as_str()));
    if columns.has_video() {
        names.push("timestamp");
    }
    let mut episodes: BTreeMap<i64, Vec<Frame>> = BTreeMap::new();
    for batch in read_batches(path, Some(&names))? {
        let wrong = |c: &str| DataError::invalid(path, format!("column {c:?} has an unexpected type"));
        let episode = int_column(&batch, "episode_index").ok_or_else(|| wrong("episode_index"))?;
        let frame = int_column(&batch, "frame_index").ok_or_else(|| wrong("frame_index"))?;
        let task = int_column(&batch, "task_index").ok_or_else(|| wrong("task_index"))?;
        let state = float_lists(&batch, &columns.state).ok_or_else(|| wrong(&columns.state))?;
        let velocity = match &columns.velocity {
            Some(v) => Some(float_lists(&batch, v).ok_or_else(|| wrong(v))?),
            None => None,
        };
        let timestamp = match columns.has_video() {
            true => Some(
                batch
                    .column_by_name("timestamp")
                    .and_then(|c| cast(c, &DataType::Float64).ok())
                    .ok_or_else(|| wrong("timestamp"))?,
            ),
            false => None,
        };
        let images = columns
            .image_cameras()
            .map(|CameraFeature { key, .. }| {
                batch
                    .column_by_name(key)
                    .and_then(|c| c.as_struct_opt())
                    .and_then(|s| s.column_by_name("bytes"))
                    .and_then(|b| cast(b, &DataType::Binary).ok())
                    .ok_or_else(|| wrong(key))
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let (episode, frame, task) =
            (episode.as_primitive::<Int64Type>(), frame.as_primitive::<Int64Type>(), task.as_primitive::<Int64Type>());
        for row in 0..batch.num_rows() {
            let f = frame.value(row);
            let step = usize::try_from(f).unwrap_or(usize::MAX);
            let state = floats_at(&state, row).ok_or_else(|| DataError::invalid_step(path, step, "no state"))?;
            let velocity = match &velocity {
                Some(v) => Some(floats_at(v, row).ok_or_else(|| DataError::invalid_step(path, step, "no velocity"))?),
                None => None,
            };
            let timestamp = match &timestamp {
                Some(t) if t.is_null(row) => return Err(DataError::invalid_step(path, step, "no timestamp")),
                Some(t) => t.as_primitive::<Float64Type>().value(row),
                None => 0.0,
            };
            let images = images
                .iter()
                .zip(columns.image_cameras())
                .map(|(bytes, CameraFeature { name: camera, .. })| {
                    let bytes = bytes.as_binary::<i32>();
                    if bytes.is_null(row) || bytes.value(row).is_empty() {
                        return Err(DataError::invalid_step(
                            path,
                            step,
                            format!("no image bytes for camera {camera:?}"),
                        ));
                    }
                    Ok(Arc::from(bytes.value(row)))
                })
                .collect::<Result<Vec<_>>>()?;
            episodes.entry(episode.value(row)).or_default().push(Frame {
                frame: f,
                task: task.value(row),
                timestamp,
                state,
                velocity,
                images,
            });
        }
    }
    Ok(episodes)
}

fn build_episode(
    path: &Path,
    index: i64,
    mut frames: Vec<Frame>,
    layout: &Layout,
    columns: &Columns,
    tasks: &BTreeMap<i64, String>,
    videos: Option<&VideoIndex>,
) -> Result<Episode> {
    let episode =
        u32::try_from(index).map_err(|_| DataError::invalid(path, format!("invalid episode_index {index}")))?;
    frames.sort_by_key(|f| f.frame);
    if let Some(i) = frames.iter().enumerate().position(|(i, f)| f.frame != i as i64) {
        return Err(DataError::invalid_step(
            path,
            i,
            format!(
                "episode {index}: frame_index {} where {i} was expected (missing or repeated frames)",
                frames[i].frame
            ),
        ));
    }
    let task = tasks.get(&frames[0].task).ok_or_else(|| {
        DataError::invalid_step(
            path,
            0,
            format!("episode {index}: task_index {} is not in the task list", frames[0].task),
        )
    })?;
    // Per camera: where its image of each step comes from.
    enum Source {
        /// Position in `Frame::images`.
        Image(usize),
        /// The video and the episode's start time in it.
        Video(Arc<Video>, f64),
    }
    let mut located = videos.and_then(|v| v.episodes.get(&index)).into_iter().flatten();
    let mut cameras = Vec::with_capacity(columns.cameras.len());
    let mut sources = Vec::with_capacity(columns.cameras.len());
    let mut image_index = 0;
    for camera in &columns.cameras {
        let name = &camera.name;
        let ((width, height), source) = match camera.video {
            None => {
                let size = image::ImageReader::new(std::io::Cursor::new(&frames[0].images[image_index][..]))
                    .with_guessed_format()
                    .map_err(|e| DataError::io(path, e))?
                    .into_dimensions()
                    .map_err(|e| DataError::invalid_step(path, 0, format!("episode {index}: camera {name:?}: {e}")))?;
                image_index += 1;
                (size, Source::Image(image_index - 1))
            }
            Some(size) => match located.next() {
                Some(Ok((video, from))) => (size, Source::Video(video.clone(), *from)),
                Some(Err(e)) => return Err(DataError::invalid(path, format!("episode {index}: {e}"))),
                None => return Err(DataError::invalid(path, format!("episode {index}: camera {name:?}: no video"))),
            },
        };
        cameras.push(Camera { name: name.clone(), width, height, intrinsics: None, extrinsics: None });
        sources.push(source);
    }
    let steps = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let (pose, gripper_open) = layout.apply(&f.state).ok_or_else(|| {
                DataError::invalid_step(
                    path,
                    i,
                    format!("episode {index}: state has {} entries, too few for the mapping", f.state.len()),
                )
            })?;
            let images = columns
                .cameras
                .iter()
                .zip(&sources)
                .map(|(camera, source)| {
                    let image = match source {
                        Source::Image(c) => ImageRef::Encoded(f.images[*c].clone()),
                        Source::Video(video, from) => {
                            ImageRef::Video(VideoFrame { video: video.clone(), timestamp: from + f.timestamp })
                        }
                    };
                    (camera.name.clone(), image)
                })
                .collect();
            Ok(Step { pose, gripper_open, joint_velocities: f.velocity, images, subtask: None, scene: Vec::new() })
        })
        .collect::<Result<Vec<Step>>>()?;
    Ok(Episode {
        task: slug(task),
        variation: 0,
        episode,
        descriptions: vec![task.clone()],
        metadata: EnvMetadata::default(),
        cameras,
        steps,
        waypoints: None,
        plan: None,
    })
}

/// Environment metadata for a LeRobot dataset (see the module docs): the state frame's
/// origin, and the padded bounding box of every finite recorded position as the workspace.
fn dataset_metadata<'a>(episodes: impl Iterator<Item = &'a Episode>) -> EnvMetadata {
    let mut min = [f64::INFINITY; 3];
    let mut max = [f64::NEG_INFINITY; 3];
    for p in episodes.flat_map(|e| &e.steps).map(|s| s.pose.position).filter(|p| p.iter().all(|v| v.is_finite())) {
        for k in 0..3 {
            min[k] = min[k].min(p[k]);
            max[k] = max[k].max(p[k]);
        }
    }
    let mut metadata = EnvMetadata {
        origin: [0.0; 3],
        origin_description: "the origin of the robot's state frame".into(),
        ..EnvMetadata::default()
    };
    if min[0].is_finite() {
        let pad: [f64; 3] = std::array::from_fn(|k| WORKSPACE_PADDING * (max[k] - min[k]));
        metadata.workspace =
            Bounds { min: std::array::from_fn(|k| min[k] - pad[k]), max: std::array::from_fn(|k| max[k] + pad[k]) };
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn rotate(q: [f64; 4], v: [f64; 3]) -> [f64; 3] {
        // v' = v + 2w (u x v) + 2 u x (u x v), u = (qx, qy, qz).
        let [x, y, z, w] = q;
        let cross = |a: [f64; 3], b: [f64; 3]| {
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
        };
        let t = cross([x, y, z], v).map(|c| 2.0 * c);
        let u = cross([x, y, z], t);
        std::array::from_fn(|k| v[k] + w * t[k] + u[k])
    }

    #[test]
    fn state_map_text_form_parses() {
        let map: StateMap =
            "x=0, y=ee_y ,z=2,gripper=6,state=obs.ee,threshold=0.02,open=below,velocities=none".parse().unwrap();
        assert_eq!(map.entries["x"], Entry::Index(0));
        assert_eq!(map.entries["y"], Entry::Name("ee_y".into()));
        assert_eq!(map.feature.as_deref(), Some("obs.ee"));
        assert_eq!(map.gripper_threshold, Some(0.02));
        assert!(map.open_below);
        assert_eq!(map.velocities, Velocities::Off);
        for bad in ["x", "speed=3", "threshold=abc", "open=sideways"] {
            assert!(matches!(bad.parse::<StateMap>(), Err(DataError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn layouts_resolve_from_names_and_overrides() {
        let info = Path::new("info.json");
        let quat = Layout::resolve(
            &StateMap::default(),
            &names(&["x", "y", "z", "qx", "qy", "qz", "qw", "Gripper"]),
            8,
            "s",
            info,
        )
        .unwrap();
        assert_eq!(quat.orientation, Orientation::Quaternion([3, 4, 5, 6]));
        assert_eq!(quat.gripper, 7);
        let position_only =
            Layout::resolve(&StateMap::default(), &names(&["gripper", "x", "y", "z"]), 4, "s", info).unwrap();
        assert_eq!((position_only.position, position_only.orientation), ([1, 2, 3], Orientation::Identity));
        // A partial orientation is ambiguous.
        let partial = Layout::resolve(&StateMap::default(), &names(&["x", "y", "z", "yaw", "gripper"]), 5, "s", info);
        assert!(partial.unwrap_err().to_string().contains("[x, y, z, yaw, gripper]"));
        let map: StateMap = "gripper=j6,x=0,y=1,z=2".parse().unwrap();
        let mapped = Layout::resolve(&map, &names(&["a", "b", "c", "j6"]), 4, "s", info).unwrap();
        assert_eq!(mapped.gripper, 3);
        assert!(Layout::resolve(&"x=9".parse().unwrap(), &[], 4, "s", info).is_err());
    }

    #[test]
    fn gripper_rule_follows_threshold_and_side() {
        let mut layout =
            Layout::resolve(&StateMap::default(), &names(&["x", "y", "z", "gripper"]), 4, "s", Path::new("i")).unwrap();
        assert!(layout.apply(&[0.0, 0.0, 0.0, 0.9]).unwrap().1);
        assert!(!layout.apply(&[0.0, 0.0, 0.0, 0.5]).unwrap().1);
        layout.open_below = true;
        assert!(layout.apply(&[0.0, 0.0, 0.0, 0.1]).unwrap().1);
        assert!(layout.apply(&[0.0, 0.0, 0.0]).is_none());
    }

    #[test]
    fn path_templates_fill_and_refuse() {
        let values = [
            ("video_key", Placeholder::Text("observation.images.front")),
            ("chunk_index", Placeholder::Number(1)),
            ("file_index", Placeholder::Number(12)),
        ];
        let template = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
        assert_eq!(fill_template(template, &values).unwrap(), "videos/observation.images.front/chunk-001/file-012.mp4");
        assert_eq!(fill_template("e{file_index}.mp4", &values).unwrap(), "e12.mp4");
        for bad in ["{episode_index}", "{chunk_index:x}", "{video_key:03d}", "open{"] {
            assert!(fill_template(bad, &values).unwrap_err().starts_with("video_path template"), "{bad}");
        }
    }

    #[test]
    fn declared_sizes_follow_the_names() {
        let size = |v: Json| declared_size(&v);
        assert_eq!(
            size(serde_json::json!({"shape": [480, 640, 3], "names": ["height", "width", "channels"]})),
            Some((640, 480))
        );
        assert_eq!(
            size(serde_json::json!({"shape": [3, 480, 640], "names": ["channels", "height", "width"]})),
            Some((640, 480))
        );
        assert_eq!(size(serde_json::json!({"shape": [48, 64, 3]})), Some((64, 48)));
        assert_eq!(size(serde_json::json!({"shape": [0, 64, 3]})), None);
        assert_eq!(size(serde_json::json!({})), None);
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Pick up the red cube."), "pick_up_the_red_cube");
        assert_eq!(slug("  --  "), "task");
    }

    proptest! {
        /// Slugs are non-empty runs of `[a-z0-9]` joined by single underscores, and stable.
        #[test]
        fn slugs_are_clean_names(text in "\\PC{0,40}") {
            let s = slug(&text);
            prop_assert!(!s.is_empty() && !s.starts_with('_') && !s.ends_with('_') && !s.contains("__"));
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            prop_assert_eq!(slug(&s), s.clone());
        }

        /// The quaternion is a unit quaternion that rotates like Rz(yaw) Ry(pitch) Rx(roll):
        /// checked on the x and z axes against the matrix columns.
        #[test]
        fn euler_quaternion_matches_rotation_matrix(r in -3.1f64..3.1, p in -1.5f64..1.5, y in -3.1f64..3.1) {
            let q = euler_to_quaternion(r, p, y);
            prop_assert!((q.iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-12);
            let (sr, cr, sp, cp, sy, cy) = (r.sin(), r.cos(), p.sin(), p.cos(), y.sin(), y.cos());
            // First and last columns of Rz Ry Rx.
            let col_x = [cy * cp, sy * cp, -sp];
            let col_z = [cy * sp * cr + sy * sr, sy * sp * cr - cy * sr, cp * cr];
            let (rx, rz) = (rotate(q, [1.0, 0.0, 0.0]), rotate(q, [0.0, 0.0, 1.0]));
            for k in 0..3 {
                prop_assert!((rx[k] - col_x[k]).abs() < 1e-9 && (rz[k] - col_z[k]).abs() < 1e-9);
            }
        }
    }
}
