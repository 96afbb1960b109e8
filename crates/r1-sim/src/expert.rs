//! The scripted expert: a path through the task's waypoints, timed so that ARM's keypoint
//! heuristic (r1-data's `keypoints`, |v| <= 0.1 rad/s with a refractory of 4 frames) finds
//! exactly the expert's waypoints.
//!
//! Timing of one waypoint reached at frame `a` (velocities are forward differences,
//! `v[i] = (p[i+1] - p[i]) / DT`, so `v[a]` is zero as soon as the arm holds still):
//! * a waypoint without a gripper change holds for [`HOLD`] = 4 frames: `v` is zero at
//!   `a..a+2`; the heuristic stops at `a` and its refractory period covers `a+1..a+4`;
//! * a waypoint whose gripper flag flips (at frame `a` itself) holds for 3 frames: the flip
//!   is the keypoint, and the heuristic's "gripper unchanged over i-2..i+1" test keeps `a+1`
//!   from being a stop;
//! * the last waypoint is reached at frame `N - 2` and held one frame, so the heuristic's
//!   "last frame" rule reports it at `N - 1` (stops need `i < N - 2`), which is the frame
//!   recorded as ground truth;
//! * every motion takes at least [`MIN_FRAMES`] = 2 frames, so an arrival comes at least
//!   `HOLD - 1 + 2 = 5` frames after the previous stop, past its refractory period;
//! * waypoints lie at least a centimetre apart: with the speed profile below, every moving
//!   frame then covers at least 5 mm (0.1 m/s), and [`JOINT_MAP`] turns that into a joint
//!   speed of at least 0.13 rad/s, above the 0.1 rad/s threshold.

use crate::geom::{Vec3, dot, lerp, norm, sub};
use crate::world::Event;

/// Seconds per recorded frame (20 Hz).
pub const DT: f64 = 0.05;
/// Nominal distance covered per frame at cruise speed (metres).
const CRUISE_STEP: f64 = 0.02;
const MIN_FRAMES: usize = 2;
const HOLD: usize = 4;
const HOLD_AFTER_GRIPPER: usize = 3;

/// Joint velocities from the tip velocity: a fixed 7x3 map (rad per metre) standing for the
/// pseudo-inverse Jacobian of a 7-joint arm about its home posture. The simulator has no arm
/// kinematics; this keeps the seven values consistent with the motion (zero exactly when the
/// tip rests, and, for any direction, at least one joint faster than `1.3 |v_tip|`).
const JOINT_MAP: [[f64; 3]; 7] = [
    [0.0, 3.0, 0.0],
    [3.0, 0.0, -1.0],
    [0.0, 1.0, 0.0],
    [-2.0, 0.0, 3.0],
    [0.0, -0.5, 0.0],
    [1.0, 0.0, 3.0],
    [0.0, 0.0, 0.0],
];

/// One target of the expert: reach `position`, set the gripper, apply `events`.
#[derive(Clone, Debug, PartialEq)]
pub struct Waypoint {
    /// The named subtask this waypoint completes, e.g. "grasp the red cup".
    pub subtask: String,
    pub position: Vec3,
    /// Gripper flag from the arrival frame on.
    pub gripper_open: bool,
    pub events: Vec<Event>,
}

impl Waypoint {
    pub fn new(subtask: impl Into<String>, position: Vec3, gripper_open: bool) -> Self {
        Self { subtask: subtask.into(), position, gripper_open, events: Vec::new() }
    }

    pub fn with(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }
}

/// The expert's motion, one entry per recorded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    pub tips: Vec<Vec3>,
    pub gripper_open: Vec<bool>,
    /// Index of the waypoint each frame is working towards (or holding at).
    pub subtask: Vec<usize>,
    /// Frame at which waypoint `k` is reached (its events apply there).
    pub arrivals: Vec<usize>,
    /// Ground-truth keyframes: the arrivals, with the last one moved to the last frame.
    pub waypoint_frames: Vec<usize>,
}

/// Fractions of a motion covered after each of its `k` frames: a trapezoidal speed profile
/// (half speed on the first and last frame, full speed between), so `k >= 2` values rising
/// strictly to exactly 1.
pub fn profile(k: usize) -> Vec<f64> {
    let speeds: Vec<f64> = (0..k).map(|i| if i == 0 || i + 1 == k { 0.5 } else { 1.0 }).collect();
    let total: f64 = speeds.iter().sum();
    let mut covered = 0.0;
    let mut out: Vec<f64> = speeds
        .iter()
        .map(|s| {
            covered += s;
            covered / total
        })
        .collect();
    if let Some(last) = out.last_mut() {
        *last = 1.0;
    }
    out
}

/// Frames a motion of `distance` metres takes: cruise at [`CRUISE_STEP`] per frame, never
/// fewer than [`MIN_FRAMES`].
fn frames_for(distance: f64) -> usize {
    ((distance / CRUISE_STEP).ceil() as usize + 1).max(MIN_FRAMES)
}

/// The expert's path from `home` (gripper flag `open`) through `waypoints`.
pub fn trajectory(home: Vec3, open: bool, waypoints: &[Waypoint]) -> Trajectory {
    let mut t = Trajectory {
        tips: vec![home],
        gripper_open: vec![open],
        subtask: vec![0],
        arrivals: Vec::new(),
        waypoint_frames: Vec::new(),
    };
    let (mut at, mut flag) = (home, open);
    for (k, w) in waypoints.iter().enumerate() {
        for f in profile(frames_for(norm(sub(w.position, at)))) {
            // The last frame lands on the waypoint exactly (`lerp` at 1 may be off by an
            // ulp), so that the hold that follows has exactly zero velocity.
            t.tips.push(if f == 1.0 { w.position } else { lerp(at, w.position, f) });
            t.gripper_open.push(flag);
            t.subtask.push(k);
        }
        let last = k + 1 == waypoints.len();
        let hold = if last {
            2
        } else if w.gripper_open != flag {
            HOLD_AFTER_GRIPPER
        } else {
            HOLD
        };
        t.arrivals.push(t.tips.len() - 1);
        // The arrival frame already shows the new gripper state.
        *t.gripper_open.last_mut().expect("the motion has frames") = w.gripper_open;
        (at, flag) = (w.position, w.gripper_open);
        for _ in 1..hold {
            t.tips.push(at);
            t.gripper_open.push(flag);
            t.subtask.push((k + 1).min(waypoints.len() - 1));
        }
    }
    t.waypoint_frames = t.arrivals.clone();
    if let Some(last) = t.waypoint_frames.last_mut() {
        *last = t.tips.len() - 1;
    }
    t
}

/// Seven joint velocities per frame (rad/s) from forward differences of the tip path; the
/// last frame is at rest.
pub fn joint_velocities(tips: &[Vec3]) -> Vec<Vec<f64>> {
    (0..tips.len())
        .map(|i| {
            let v = match tips.get(i + 1) {
                Some(&next) => sub(next, tips[i]).map(|d| d / DT),
                None => [0.0; 3],
            };
            JOINT_MAP.iter().map(|row| dot(*row, v)).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use r1_data::keypoints::{KeypointConfig, discover};

    proptest! {
        #[test]
        fn profiles_rise_strictly_to_one(k in 2usize..80) {
            let p = profile(k);
            prop_assert_eq!(p.len(), k);
            prop_assert!(p[0] > 0.0 && p.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(p[k - 1], 1.0);
        }

        #[test]
        fn the_joint_map_never_hides_motion(d in proptest::array::uniform3(-1.0f64..1.0)) {
            prop_assume!(norm(d) > 1e-3);
            let v = joint_velocities(&[[0.0; 3], d]);
            let fastest = v[0].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            prop_assert!(fastest >= 1.3 * norm(d) / DT, "{} vs {}", fastest, norm(d) / DT);
            prop_assert!(v[1].iter().all(|&x| x == 0.0));
        }

        /// Random waypoint sequences (at least 1 cm apart, random gripper flips): the keypoint
        /// heuristic returns exactly the recorded waypoint frames.
        #[test]
        fn the_heuristic_recovers_every_waypoint(
            steps in proptest::collection::vec((proptest::array::uniform3(-0.3f64..0.3), proptest::bool::weighted(0.3)), 1..8),
            open: bool,
        ) {
            let mut at = [0.2, 0.0, 1.2];
            let mut flag = open;
            let mut wps = Vec::new();
            for (d, flip) in steps {
                let mut next = [at[0] + d[0], at[1] + d[1], at[2] + d[2]];
                if norm(sub(next, at)) < 0.01 { next = [at[0], at[1], at[2] + 0.012]; }
                flag ^= flip;
                wps.push(Waypoint::new("s", next, flag));
                at = next;
            }
            let t = trajectory([0.2, 0.0, 1.2], open, &wps);
            let vel = joint_velocities(&t.tips);
            let found = discover(&t.gripper_open, |i| &vel[i], &KeypointConfig::default());
            prop_assert_eq!(found, t.waypoint_frames.clone());
            prop_assert_eq!(t.tips.len(), t.subtask.len());
            prop_assert_eq!(t.arrivals.len(), wps.len());
            for (k, &a) in t.arrivals.iter().enumerate() {
                prop_assert_eq!(t.tips[a], wps[k].position);
                prop_assert_eq!(t.subtask[a], k);
            }
        }
    }
}
