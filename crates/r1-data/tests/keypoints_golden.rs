//! Keypoint discovery against the reference Python logic, run by
//! `tests/fixtures/keypoints/gen_keypoints.py` (regenerate with `python3 gen_keypoints.py`).

use r1_data::keypoints::{KeypointConfig, discover};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    velocity_threshold: f64,
    refractory: i32,
    gripper_open: Vec<bool>,
    joint_velocities: Vec<Vec<f64>>,
    keypoints: Vec<usize>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[test]
fn matches_the_reference_implementation() {
    let text = include_str!("fixtures/keypoints/keypoints_golden.json");
    let golden: Golden = serde_json::from_str(text).expect("fixture is valid JSON");
    assert!(golden.cases.len() >= 20, "the fixture should hold edge cases and scripted demos");
    for case in &golden.cases {
        let config = KeypointConfig { velocity_threshold: case.velocity_threshold, refractory: case.refractory };
        let found = discover(&case.gripper_open, |i| &case.joint_velocities[i], &config);
        assert_eq!(found, case.keypoints, "case {}", case.name);
    }
}
