//! Keypoint discovery: the heuristic of ARM, reused by PerAct, RVT and Robot-R1.
//!
//! A frame `i` of an `N`-frame demonstration is a keypoint when the gripper flag changes
//! (`g[i] != g[i-1]`), when the arm comes to rest, or when it is the last frame. "At rest"
//! (`stopped(i)`) holds when all of:
//! * the refractory counter `buffer <= 0` (it is set to `refractory` on every stop and
//!   decremented on every other frame, so one dwell yields one keypoint);
//! * every velocity component satisfies `|v_j| <= velocity_threshold`;
//! * `i < N - 2` (so neither of the last two frames is a stop);
//! * the gripper flag is the same at `i - 2`, `i - 1`, `i` and `i + 1`.
//!
//! Frame 0 is never emitted. Afterwards, when the last two keypoints are consecutive frames,
//! the second-to-last is dropped (which also drops a gripper change at frame `N - 2`).
//!
//! Reference quirk, reproduced on purpose: at `i = 0` and `i = 1` the reference indexes
//! `g[i-1]` and `g[i-2]` with Python negative indices, i.e. it wraps to the end of the
//! episode. A robot at rest at frame 0 is then usually "stopped", which is not emitted but
//! arms the refractory counter, so frames 1 to `refractory` cannot be stops. Without the wrap
//! a spurious keypoint appears at frame 1. The golden tests in `tests/keypoints_golden.rs`
//! compare against a re-implementation of the reference Python
//! (`tests/fixtures/keypoints/gen_keypoints.py`).

use serde::{Deserialize, Serialize};

use crate::episode::Episode;

/// The two knobs of the heuristic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeypointConfig {
    /// A frame can be a stop only when every velocity component is at most this in absolute
    /// value (rad/s for joint velocities; see [`velocities_from_positions`] otherwise).
    pub velocity_threshold: f64,
    /// Frames after a stop during which no further stop is detected.
    pub refractory: i32,
}

impl Default for KeypointConfig {
    /// The reference values: `0.1` and `4`.
    fn default() -> Self {
        Self { velocity_threshold: 0.1, refractory: 4 }
    }
}

/// Keypoint frames of one demonstration, in strictly increasing order.
///
/// `gripper_open[i]` is the gripper flag of frame `i`; `velocities(i)` returns frame `i`'s
/// velocity components (any length; an empty slice counts as at rest). For `N >= 2` the last
/// frame `N - 1` is always a keypoint; for `N <= 1` the result is empty (the reference never
/// emits frame 0).
pub fn discover<'a>(
    gripper_open: &[bool],
    velocities: impl Fn(usize) -> &'a [f64],
    config: &KeypointConfig,
) -> Vec<usize> {
    let n = gripper_open.len();
    // Python's `g[i - k]` for k <= 2: negative indices wrap to the end.
    let back = |i: usize, k: usize| gripper_open[(i + n - k % n) % n];
    let mut keypoints = Vec::new();
    let mut buffer: i32 = 0;
    let mut prev = gripper_open.first().copied().unwrap_or(true);
    for (i, &g) in gripper_open.iter().enumerate() {
        let at_rest = velocities(i).iter().all(|v| v.abs() <= config.velocity_threshold);
        let gripper_steady = i + 2 < n && g == gripper_open[i + 1] && g == back(i, 1) && back(i, 2) == back(i, 1);
        let stopped = buffer <= 0 && at_rest && gripper_steady;
        buffer = if stopped { config.refractory } else { buffer - 1 };
        if i != 0 && (g != prev || i == n - 1 || stopped) {
            keypoints.push(i);
        }
        prev = g;
    }
    if let [.., a, b] = keypoints[..]
        && a + 1 == b
    {
        keypoints.remove(keypoints.len() - 2);
    }
    keypoints
}

/// Scale of the finite-difference rule: velocity components are end-effector displacements
/// in centimetres per step, so the default threshold `0.1` means "the tip moves less than
/// 1 mm per step along every axis".
pub const CENTIMETRES_PER_METRE: f64 = 100.0;

/// Pseudo-velocities for demonstrations that record no joint velocities (LeRobot datasets):
/// the centred difference of the end-effector position, in centimetres per step,
/// `v[i] = 100 * (p[i+1] - p[i-1]) / 2`, one-sided at the ends (`100 * (p[1] - p[0])` and
/// `100 * (p[N-1] - p[N-2])`); a single frame gets zero velocity. Shape: `N` positions in,
/// `N` three-component velocities out.
///
/// Per step rather than per second so that the rule needs no frame rate and a dwell of a
/// few frames at a waypoint reads as "stopped" at any recording rate.
pub fn velocities_from_positions(positions: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let n = positions.len();
    (0..n)
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(1), (i + 1).min(n - 1));
            let span = (hi - lo).max(1) as f64;
            std::array::from_fn(|a| CENTIMETRES_PER_METRE * (positions[hi][a] - positions[lo][a]) / span)
        })
        .collect()
}

/// Keypoints of an episode: from its joint velocities when it records them, otherwise from
/// [`velocities_from_positions`] on its end-effector positions.
pub fn episode_keypoints(episode: &Episode, config: &KeypointConfig) -> Vec<usize> {
    let gripper = episode.gripper_open();
    if episode.steps.iter().all(|s| s.joint_velocities.is_some()) {
        discover(&gripper, |i| episode.steps[i].joint_velocities.as_deref().unwrap_or(&[]), config)
    } else {
        let positions: Vec<[f64; 3]> = episode.steps.iter().map(|s| s.pose.position).collect();
        let velocities = velocities_from_positions(&positions);
        discover(&gripper, |i| &velocities[i], config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(gripper: &[bool], vel: &[f64]) -> Vec<usize> {
        let v: Vec<[f64; 1]> = vel.iter().map(|&x| [x]).collect();
        discover(gripper, |i| &v[i], &KeypointConfig::default())
    }

    #[test]
    fn dwell_and_gripper_change_are_keypoints() {
        // Moving frames 1-5, dwell at 6-7, moving 8-11 with a gripper close at 9.
        let vel = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let mut g = vec![true; vel.len()];
        g[9..].iter_mut().for_each(|x| *x = false);
        assert_eq!(run(&g, &vel), vec![6, 9, 13]);
    }

    #[test]
    fn wrap_around_arms_the_refractory_counter_at_frame_zero() {
        // At rest for the first frames: frame 0 is a (silent) stop, so frames 1-4 cannot be
        // stops and the first emitted stop is frame 5.
        let vel = [0.0; 12];
        let g = vec![true; 12];
        assert_eq!(run(&g, &vel), vec![5, 11]);
    }

    #[test]
    fn a_gripper_change_at_frame_one_defeats_the_wrapped_stop() {
        // g[N-1] differs from g[0], so the wrapped comparison at frame 0 fails: no stop is
        // armed at 0 and frame 1 (the gripper change) is a keypoint anyway.
        let vel = [0.0; 8];
        let g = [true, false, false, false, false, false, false, false];
        assert_eq!(run(&g, &vel), vec![1, 3, 7]);
    }

    #[test]
    fn final_pruning_drops_the_second_to_last_keypoint() {
        let vel = [1.0; 6];
        let g = [true, true, true, true, false, false];
        // Change at 4, last at 5: consecutive, so 4 is dropped.
        assert_eq!(run(&g, &vel), vec![5]);
    }

    #[test]
    fn short_episodes() {
        assert_eq!(run(&[], &[]), Vec::<usize>::new());
        assert_eq!(run(&[true], &[0.0]), Vec::<usize>::new());
        assert_eq!(run(&[true, true], &[0.0, 0.0]), vec![1]);
    }

    #[test]
    fn finite_differences_are_centred_and_one_sided_at_the_ends() {
        let p = [[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.03, 0.0, -0.02]];
        let v = velocities_from_positions(&p);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(v[0][0], 1.0) && close(v[1][0], 1.5) && close(v[2][0], 2.0));
        assert!(close(v[1][2], -1.0) && close(v[2][2], -2.0));
        assert_eq!(velocities_from_positions(&[[1.0, 2.0, 3.0]]), vec![[0.0; 3]]);
        assert!(velocities_from_positions(&[]).is_empty());
    }

    fn episode_strategy() -> impl Strategy<Value = (Vec<bool>, Vec<f64>)> {
        (2usize..60).prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::bool::weighted(0.9), n),
                proptest::collection::vec(prop_oneof![Just(0.0), -0.2f64..0.2, -2.0f64..2.0], n),
            )
        })
    }

    proptest! {
        #[test]
        fn keypoint_invariants((flags, vel) in episode_strategy()) {
            // Build gripper flags with few changes: toggle at frames where `flags` is false.
            let mut g = Vec::with_capacity(flags.len());
            let mut state = true;
            for &keep in &flags {
                if !keep { state = !state; }
                g.push(state);
            }
            let n = g.len();
            let kps = run(&g, &vel);
            prop_assert_eq!(kps.last().copied(), Some(n - 1));
            prop_assert!(kps.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(kps.iter().all(|&k| k >= 1 && k < n));
            for i in 1..n {
                // The only gripper change that may be missing is at N-2, pruned because the
                // last frame follows it.
                if g[i] != g[i - 1] && i != n - 2 {
                    prop_assert!(kps.contains(&i), "gripper change at {} missing from {:?}", i, kps);
                }
            }
        }

        #[test]
        fn finite_differences_vanish_exactly_on_dwells(
            p in proptest::collection::vec(proptest::array::uniform3(-1.0f64..1.0), 3..30),
            dwell in 1usize..28,
        ) {
            let mut p = p;
            let d = dwell.min(p.len() - 2);
            // Hold the position for three frames: the middle one has zero velocity.
            p[d + 1] = p[d];
            p[d - 1] = p[d];
            let v = velocities_from_positions(&p);
            prop_assert_eq!(v.len(), p.len());
            prop_assert_eq!(v[d], [0.0; 3]);
        }
    }
}
