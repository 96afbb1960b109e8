//! RLBench demonstrations on disk.
//!
//! Two layouts are read (RLBench's own dataset generator writes the first, PerAct's the second):
//! * stock: `<task>/variation<V>/episodes/episode<E>/`, with the variation's phrasings in
//!   `<task>/variation<V>/variation_descriptions.pkl`;
//! * PerAct's: `<task>/all_variations/episodes/episode<E>/`, with `variation_number.pkl` and
//!   `variation_descriptions.pkl` inside each episode folder.
//!
//! An episode folder holds `low_dim_obs.pkl` (a pickled `rlbench.demo.Demo` whose
//! `_observations` is a list of `Observation` objects) and one folder of PNGs per camera stream,
//! `<cam>_rgb/<step>.png`. Only RGB streams are imported; depth and mask folders are ignored.
//!
//! Camera calibration comes from each observation's `misc` dict. RLBench (PyRep) writes
//! CoppeliaSim's convention: negative focal lengths, i.e. the camera's x and y axes point the
//! opposite way of OpenCV's. [`opencv_camera`] converts to the convention of
//! [`crate::episode`]: `K' = K * diag(-1, -1, 1)` (positive focal lengths) and
//! `E' = E * diag(-1, -1, 1, 1)` (negated camera x and y axes), which leaves every projected
//! pixel where PerAct's `point_to_pixel_index` puts it. A camera that moves during the episode
//! (the wrist camera) has no single extrinsic matrix, so its extrinsics are left `None`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::episode::{Camera, EnvMetadata, Episode, ImageRef, Pose, Step};
use crate::error::{DataError, Result};

/// The file that marks an RLBench episode folder.
pub const LOW_DIM_FILE: &str = "low_dim_obs.pkl";
const DESCRIPTIONS_FILE: &str = "variation_descriptions.pkl";
const VARIATION_FILE: &str = "variation_number.pkl";
/// The camera imported when none is named (the view Robot-R1 trains on).
pub const DEFAULT_CAMERA: &str = "front";
/// Two extrinsic matrices closer than this (entry-wise) describe the same static camera.
const STATIC_CAMERA_TOLERANCE: f64 = 1e-9;

/// True when `dir` is an RLBench episode folder.
pub fn is_episode_dir(dir: &Path) -> bool {
    dir.join(LOW_DIM_FILE).is_file()
}

/// Reads one episode folder of either layout. `cameras` names the RGB streams to import
/// (`front`, `wrist`, ...; the folder name `front_rgb` works too); empty means
/// [`DEFAULT_CAMERA`]. Image files are referenced by
/// absolute path, not decoded; only the first image of each camera is opened, for its size.
///
/// The episode is not validated here (callers run [`Episode::validate`] with the
/// `low_dim_obs.pkl` path).
pub fn read_episode(dir: &Path, cameras: &[String]) -> Result<Episode> {
    let dir = std::path::absolute(dir).map_err(|e| DataError::io(dir, e))?;
    let location = locate(&dir)?;
    let pkl = dir.join(LOW_DIM_FILE);
    let observations = demo_observations(read_pickle(&pkl)?, &pkl)?;
    if observations.is_empty() {
        return Err(DataError::invalid(&pkl, "episode has no steps"));
    }
    let (steps, misc) = parse_observations(observations, &pkl)?;

    let names: Vec<&str> = if cameras.is_empty() {
        vec![DEFAULT_CAMERA]
    } else {
        cameras.iter().map(|c| c.strip_suffix("_rgb").unwrap_or(c)).collect()
    };
    let mut episode_cameras = Vec::with_capacity(names.len());
    let mut steps = steps;
    for name in names {
        let images = camera_images(&dir, name, steps.len())?;
        let (width, height) = image::image_dimensions(&images[0])
            .map_err(|source| DataError::Image { path: images[0].clone(), source })?;
        let calibration = calibration(&misc, name).map_err(|(step, m)| DataError::invalid_step(&pkl, step, m))?;
        let (intrinsics, extrinsics) = match calibration {
            Some((k, e)) => {
                let (k, e) = opencv_camera(k, e);
                (Some(k), e)
            }
            None => (None, None),
        };
        episode_cameras.push(Camera { name: name.to_owned(), width, height, intrinsics, extrinsics });
        for (step, image) in steps.iter_mut().zip(images) {
            step.images.insert(name.to_owned(), ImageRef::Path(image));
        }
    }

    Ok(Episode {
        task: location.task,
        variation: location.variation,
        episode: location.episode,
        descriptions: location.descriptions,
        metadata: EnvMetadata::default(),
        cameras: episode_cameras,
        steps,
        waypoints: None,
        plan: None,
    })
}

/// What the folder names and the side files say about an episode.
struct Location {
    task: String,
    variation: u32,
    episode: u32,
    descriptions: Vec<String>,
}

/// Reads task, variation, episode number and descriptions from the episode folder's place in
/// either layout. `dir` is absolute.
fn locate(dir: &Path) -> Result<Location> {
    let layout_error = || {
        DataError::invalid(
            dir,
            "not inside an RLBench layout: expected <task>/variation<V>/episodes/episode<E> or \
             <task>/all_variations/episodes/episode<E>",
        )
    };
    let name = |p: Option<&Path>| p.and_then(Path::file_name).and_then(|n| n.to_str()).map(str::to_owned);
    let episode = name(Some(dir))
        .and_then(|n| n.strip_prefix("episode").and_then(|n| n.parse::<u32>().ok()))
        .ok_or_else(layout_error)?;
    let episodes_dir =
        dir.parent().filter(|p| name(Some(p)).as_deref() == Some("episodes")).ok_or_else(layout_error)?;
    let variation_dir = episodes_dir.parent().ok_or_else(layout_error)?;
    let variation_name = name(Some(variation_dir)).ok_or_else(layout_error)?;
    let task = name(variation_dir.parent()).ok_or_else(layout_error)?;

    let variation = if variation_name == "all_variations" {
        let file = dir.join(VARIATION_FILE);
        match read_pickle(&file)? {
            Value::I64(v) => u32::try_from(v).ok(),
            _ => None,
        }
        .ok_or_else(|| DataError::invalid(&file, "expected a non-negative integer variation number"))?
    } else {
        variation_name.strip_prefix("variation").and_then(|v| v.parse().ok()).ok_or_else(layout_error)?
    };
    // PerAct keeps the phrasings beside each episode; the stock layout once per variation.
    let inside = dir.join(DESCRIPTIONS_FILE);
    let file = if inside.is_file() { inside } else { variation_dir.join(DESCRIPTIONS_FILE) };
    let descriptions = match read_pickle(&file)? {
        Value::List(items) | Value::Tuple(items) => items.into_iter().map(text).collect::<Option<Vec<_>>>(),
        _ => None,
    }
    .ok_or_else(|| DataError::invalid(&file, "expected a list of strings"))?;
    Ok(Location { task, variation, episode, descriptions })
}

/// A Python `str`, or `bytes` as Python 2 pickles wrote them.
fn text(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Bytes(b) => String::from_utf8(b).ok(),
        _ => None,
    }
}

/// Unpickles a file into a generic value tree. Classes RLBench and numpy define cannot be
/// resolved here; objects come back as their `__dict__`, arrays as the argument or state
/// tuples of numpy's reconstructors (see [`f64_array`]).
fn read_pickle(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let options = DeOptions::new().replace_unresolved_globals().keep_restore_state();
    serde_pickle::value_from_slice(&bytes, options)
        .map_err(|e| DataError::invalid(path, format!("cannot unpickle (truncated or not a pickle?): {e}")))
}

type Dict = BTreeMap<HashableValue, Value>;

fn get<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    dict.get(&HashableValue::String(key.to_owned()))
}

fn key_list(dict: &Dict) -> String {
    let keys: Vec<String> = dict
        .keys()
        .map(|k| match k {
            HashableValue::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    keys.join(", ")
}

/// The observation list of a pickled `Demo` (an object with `_observations`).
fn demo_observations(value: Value, path: &Path) -> Result<Vec<Value>> {
    match value {
        Value::Dict(mut dict) => match dict.remove(&HashableValue::String("_observations".into())) {
            Some(Value::List(observations)) => Ok(observations),
            Some(_) => Err(DataError::invalid(path, "`_observations` of the Demo is not a list")),
            None => Err(DataError::invalid(
                path,
                format!("not an RLBench Demo: no `_observations` (found keys: {})", key_list(&dict)),
            )),
        },
        other => Err(DataError::invalid(path, format!("not an RLBench Demo: found {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an integer",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "an object or dict",
    }
}

/// Turns observations into steps (pose, gripper, velocities; images are added later) and
/// keeps each step's `misc` dict for the camera calibration.
fn parse_observations(observations: Vec<Value>, path: &Path) -> Result<(Vec<Step>, Vec<Dict>)> {
    let mut steps = Vec::with_capacity(observations.len());
    let mut miscs = Vec::with_capacity(observations.len());
    for (i, obs) in observations.into_iter().enumerate() {
        let Value::Dict(mut obs) = obs else {
            return Err(DataError::invalid_step(path, i, format!("expected an Observation, found {}", kind(&obs))));
        };
        let (step, misc) = parse_observation(&mut obs).map_err(|m| DataError::invalid_step(path, i, m))?;
        steps.push(step);
        miscs.push(misc);
    }
    Ok((steps, miscs))
}

fn parse_observation(obs: &mut Dict) -> std::result::Result<(Step, Dict), String> {
    let field = |name: &str| get(obs, name).ok_or_else(|| format!("Observation has no `{name}`"));
    let (shape, pose) = f64_array(field("gripper_pose")?).map_err(|m| format!("gripper_pose: {m}"))?;
    if pose.len() != 7 {
        return Err(format!("gripper_pose has shape {shape:?}, expected [7] (x, y, z, qx, qy, qz, qw)"));
    }
    let gripper = match f64_array(field("gripper_open")?) {
        Ok((_, v)) if v.len() == 1 => v[0],
        _ => return Err("gripper_open is not a number".into()),
    };
    let joint_velocities = match get(obs, "joint_velocities") {
        None | Some(Value::None) => None,
        Some(v) => Some(f64_array(v).map_err(|m| format!("joint_velocities: {m}"))?.1),
    };
    let misc = match obs.remove(&HashableValue::String("misc".into())) {
        Some(Value::Dict(misc)) => misc,
        None | Some(Value::None) => Dict::new(),
        Some(other) => return Err(format!("misc is {}, expected a dict", kind(&other))),
    };
    let step = Step {
        pose: Pose { position: [pose[0], pose[1], pose[2]], orientation: [pose[3], pose[4], pose[5], pose[6]] },
        // RLBench records 1.0 (open) or 0.0 (closed).
        gripper_open: gripper > 0.5,
        joint_velocities,
        images: BTreeMap::new(),
        subtask: None,
        scene: Vec::new(),
    };
    Ok((step, misc))
}

/// Decodes a pickled numpy array (or a Python number or list of numbers) to its shape and
/// row-major float values.
///
/// serde-pickle cannot run numpy's reconstructors; with `keep_restore_state` it leaves what
/// they were given. Protocols 2-4 pickle `_reconstruct(...)` followed by
/// `__setstate__((version, shape, dtype, is_fortran, raw_bytes))`, which leaves that state
/// tuple; protocol 5 pickles `_frombuffer(raw_bytes, dtype, shape, order)`, which leaves its
/// argument tuple. The dtype object is opaque (at most its byte-order character survives), so
/// the item size is inferred as `len(raw_bytes) / product(shape)`: 8 bytes are float64 (what
/// RLBench stores), 4 bytes float32.
fn f64_array(v: &Value) -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
    match v {
        Value::F64(x) => Ok((vec![], vec![*x])),
        Value::I64(x) => Ok((vec![], vec![*x as f64])),
        Value::Bool(b) => Ok((vec![], vec![f64::from(u8::from(*b))])),
        Value::List(items) => {
            let values = items
                .iter()
                .map(|x| match x {
                    Value::F64(x) => Some(*x),
                    Value::I64(x) => Some(*x as f64),
                    _ => None,
                })
                .collect::<Option<Vec<f64>>>()
                .ok_or("a list that is not all numbers")?;
            Ok((vec![values.len()], values))
        }
        Value::Tuple(state) if state.len() == 5 => {
            let fortran = matches!(state[3], Value::Bool(true));
            decode_raw(&state[1], &state[2], fortran, &state[4])
        }
        Value::Tuple(args) if args.len() == 4 && matches!(args[0], Value::Bytes(_)) => {
            let fortran = matches!(&args[3], Value::String(o) if o == "F");
            decode_raw(&args[2], &args[1], fortran, &args[0])
        }
        // serde-pickle memoizes an object before its `__setstate__` runs, so a second reference
        // to one array object is only the `_reconstruct(ndarray, (0,), b'b')` call.
        Value::Tuple(args) if args.len() == 3 => Err("a second reference to an array pickled \
                                                      earlier in the file, which cannot be decoded"
            .into()),
        other => Err(format!("expected a numpy array, found {}", kind(other))),
    }
}

/// Decodes raw array bytes (see [`f64_array`]); `dtype` is only consulted for big-endian data.
fn decode_raw(
    shape: &Value,
    dtype: &Value,
    fortran: bool,
    raw: &Value,
) -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
    let (Value::Tuple(dims), Value::Bytes(raw)) = (shape, raw) else {
        return Err("not a numpy array".into());
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            Value::I64(d) => usize::try_from(*d).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or("numpy array with an invalid shape")?;
    let count: usize = shape.iter().product();
    let big_endian = matches!(dtype, Value::Tuple(d) if matches!(d.get(1), Some(Value::String(o)) if o == ">"));
    let item = raw.len().checked_div(count).unwrap_or(8);
    if count * item != raw.len() || !(item == 8 || item == 4) {
        return Err(format!("numpy array of shape {shape:?} with {} bytes is not a float32/float64 array", raw.len()));
    }
    if fortran && shape.len() > 2 {
        return Err(format!("Fortran-ordered array of shape {shape:?} (at most 2 dimensions are supported)"));
    }
    let mut values: Vec<f64> = raw
        .chunks_exact(item)
        .map(|c| match (item, big_endian) {
            (8, false) => f64::from_le_bytes(c.try_into().expect("8-byte chunk")),
            (8, true) => f64::from_be_bytes(c.try_into().expect("8-byte chunk")),
            (_, false) => f64::from(f32::from_le_bytes(c.try_into().expect("4-byte chunk"))),
            (_, true) => f64::from(f32::from_be_bytes(c.try_into().expect("4-byte chunk"))),
        })
        .collect();
    if fortran && shape.len() == 2 {
        // Column-major bytes.
        let (rows, cols) = (shape[0], shape[1]);
        values = (0..rows * cols).map(|k| values[(k % cols) * rows + k / cols]).collect();
    }
    Ok((shape, values))
}

fn matrix<const R: usize, const C: usize>(v: &Value) -> std::result::Result<[[f64; C]; R], String> {
    let (shape, values) = f64_array(v)?;
    if shape != [R, C] {
        return Err(format!("shape {shape:?}, expected [{R}, {C}]"));
    }
    Ok(std::array::from_fn(|r| std::array::from_fn(|c| values[r * C + c])))
}

/// A camera's intrinsics and, when it is static, extrinsics (row-major).
type Calibration = ([[f64; 3]; 3], Option<[[f64; 4]; 4]>);

/// The camera's CoppeliaSim-convention calibration from the steps' `misc` dicts; `None` when
/// the episode records none for it. Errors carry the step they concern.
fn calibration(miscs: &[Dict], camera: &str) -> std::result::Result<Option<Calibration>, (usize, String)> {
    let (k_key, e_key) = (format!("{camera}_camera_intrinsics"), format!("{camera}_camera_extrinsics"));
    let (Some(k), Some(e)) = (get(&miscs[0], &k_key), get(&miscs[0], &e_key)) else {
        return Ok(None);
    };
    let k = matrix::<3, 3>(k).map_err(|m| (0, format!("misc[{k_key:?}]: {m}")))?;
    let first = matrix::<4, 4>(e).map_err(|m| (0, format!("misc[{e_key:?}]: {m}")))?;
    let mut is_static = true;
    for (i, misc) in miscs.iter().enumerate().skip(1) {
        let e = get(misc, &e_key).ok_or_else(|| (i, format!("misc has no {e_key:?}")))?;
        let e = matrix::<4, 4>(e).map_err(|m| (i, format!("misc[{e_key:?}]: {m}")))?;
        let same =
            e.iter().flatten().zip(first.iter().flatten()).all(|(a, b)| (a - b).abs() <= STATIC_CAMERA_TOLERANCE);
        is_static &= same;
    }
    Ok(Some((k, is_static.then_some(first))))
}

/// Converts CoppeliaSim calibration (negative focal lengths) to the OpenCV convention of
/// [`crate::episode`]: focal lengths `|fx|, |fy|`, and the camera x and y axes negated,
/// `E' = E * diag(-1, -1, 1, 1)`. For a camera point `(x, y, z)` CoppeliaSim's pixel is
/// `u = cx + fx * x / z` with `fx < 0`; in the flipped frame `x' = -x`, so
/// `u = cx + |fx| * x' / z`: the same pixel.
pub fn opencv_camera(k: [[f64; 3]; 3], e: Option<[[f64; 4]; 4]>) -> Calibration {
    let mut k_cv = k;
    k_cv[0][0] = k[0][0].abs();
    k_cv[1][1] = k[1][1].abs();
    let e_cv = e.map(|mut e| {
        for row in &mut e {
            row[0] = -row[0];
            row[1] = -row[1];
        }
        e
    });
    (k_cv, e_cv)
}

/// The RGB stream folders (`<cam>_rgb`) of an episode, by camera name.
fn available_cameras(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix("_rgb")).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The image paths `<cam>_rgb/0.png .. <steps-1>.png`; every step must have exactly one.
fn camera_images(dir: &Path, camera: &str, steps: usize) -> Result<Vec<PathBuf>> {
    let folder = dir.join(format!("{camera}_rgb"));
    if !folder.is_dir() {
        return Err(DataError::invalid(
            dir,
            format!("no images for camera {camera:?} (cameras found: [{}])", available_cameras(dir).join(", ")),
        ));
    }
    let mut present = vec![false; steps];
    let mut extra = Vec::new();
    for entry in std::fs::read_dir(&folder).map_err(|e| DataError::io(&folder, e))? {
        let entry = entry.map_err(|e| DataError::io(&folder, e))?;
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(|n| n.strip_suffix(".png")).and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        match present.get_mut(index) {
            Some(p) => *p = true,
            None => extra.push(index),
        }
    }
    let count = present.iter().filter(|p| **p).count() + extra.len();
    if let Some(i) = present.iter().position(|p| !p) {
        return Err(DataError::invalid_step(
            folder.join(format!("{i}.png")),
            i,
            format!("missing image ({count} images for {steps} steps)"),
        ));
    }
    if let Some(&i) = extra.iter().min() {
        return Err(DataError::invalid_step(
            folder.join(format!("{i}.png")),
            i,
            format!("extra image: the episode has {steps} steps ({count} images)"),
        ));
    }
    Ok((0..steps).map(|i| folder.join(format!("{i}.png"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pickled_array(shape: &[i64], values: &[f64], fortran: bool) -> Value {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Value::Tuple(vec![
            Value::I64(1),
            Value::Tuple(shape.iter().map(|&d| Value::I64(d)).collect()),
            Value::Tuple(vec![Value::I64(3), Value::String("<".into())]),
            Value::Bool(fortran),
            Value::Bytes(raw),
        ])
    }

    #[test]
    fn fortran_arrays_are_transposed_to_row_major() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let v = pickled_array(&[2, 3], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], true);
        assert_eq!(f64_array(&v).unwrap(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }

    #[test]
    fn arrays_of_other_item_sizes_are_rejected() {
        let v = Value::Tuple(vec![
            Value::I64(1),
            Value::Tuple(vec![Value::I64(3)]),
            Value::None,
            Value::Bool(false),
            Value::Bytes(vec![0; 6]),
        ]);
        assert!(f64_array(&v).unwrap_err().contains("not a float32/float64"));
    }

    #[test]
    fn shared_array_references_are_named() {
        // What a memoized `_reconstruct(ndarray, (0,), b'b')` resolves to.
        let v = Value::Tuple(vec![Value::None, Value::Tuple(vec![Value::I64(0)]), Value::Bytes(b"b".to_vec())]);
        assert!(f64_array(&v).unwrap_err().contains("second reference"));
    }

    proptest! {
        /// Decoding the raw bytes of a C-order float64 array gives back the values.
        #[test]
        fn c_order_arrays_round_trip(values in prop::collection::vec(-1e6f64..1e6, 1..24)) {
            let v = pickled_array(&[values.len() as i64], &values, false);
            prop_assert_eq!(f64_array(&v).unwrap(), (vec![values.len()], values));
        }

        /// The conversion keeps every projected pixel where CoppeliaSim's convention puts it:
        /// `u = cx + fx * x / z` with negative `fx` in the original camera frame.
        #[test]
        fn opencv_conversion_preserves_pixels(
            f in 10.0f64..500.0, c in 0.0f64..300.0,
            yaw in -3.0f64..3.0, t in prop::array::uniform3(-2.0f64..2.0),
            p in prop::array::uniform3(-1.0f64..1.0), depth in 0.5f64..3.0,
        ) {
            let (s, co) = yaw.sin_cos();
            // Camera looking along world +x after a yaw about z; columns are camera axes.
            let e = [[0.0, -s, co, t[0]], [0.0, co, s, t[1]], [-1.0, 0.0, 0.0, t[2]], [0.0, 0.0, 0.0, 1.0]];
            let k = [[-f, 0.0, c], [0.0, -f, c], [0.0, 0.0, 1.0]];
            let cam = [p[0], p[1], depth];
            let world: [f64; 3] = std::array::from_fn(|r| e[r][0] * cam[0] + e[r][1] * cam[1] + e[r][2] * cam[2] + e[r][3]);
            let (k_cv, e_cv) = opencv_camera(k, Some(e));
            let camera = Camera { name: "front".into(), width: 1, height: 1, intrinsics: Some(k_cv), extrinsics: e_cv };
            let [u, v] = camera.project(world).unwrap();
            prop_assert!((u - (c - f * cam[0] / cam[2])).abs() < 1e-6);
            prop_assert!((v - (c - f * cam[1] / cam[2])).abs() < 1e-6);
        }
    }
}
