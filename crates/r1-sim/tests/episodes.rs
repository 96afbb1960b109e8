//! Whole episodes: what r1-data and the trainers rely on.

use std::path::Path;

use r1_data::keypoints::{KeypointConfig, episode_keypoints};
use r1_data::{Episode, ImageRef};
use r1_sim::episode::simulate_episode;
use r1_sim::tasks::TASKS;
use r1_sim::{FRONT_CAMERA, SimConfig, simulate, task_names};

fn episodes(per_task: usize, image_size: u32, seed: u64) -> Vec<Episode> {
    let cfg = SimConfig { tasks: Vec::new(), episodes_per_task: per_task, seed, image_size };
    simulate(&cfg, |_, _| {}).unwrap()
}

#[test]
fn the_keypoint_heuristic_recovers_the_expert_waypoints() {
    let eps = episodes(12, 16, 11);
    assert_eq!(eps.len(), 10 * 12);
    let config = KeypointConfig::default();
    let misses: Vec<String> =
        eps.iter().filter(|e| Some(episode_keypoints(e, &config)) != e.waypoints).map(|e| e.id()).collect();
    // The issue asks for 95%; the expert's timing is designed to give every episode.
    assert!(misses.len() * 20 <= eps.len(), "heuristic misses the waypoints of {misses:?}");
    assert!(misses.is_empty(), "{misses:?}");
}

#[test]
fn episodes_are_complete_and_consistent() {
    for e in episodes(3, 24, 5) {
        e.validate(Path::new(&e.id())).unwrap();
        let (plan, wps) = (e.plan.as_ref().unwrap(), e.waypoints.as_ref().unwrap());
        assert_eq!(plan.len(), wps.len(), "{}", e.id());
        assert!(e.descriptions.len() >= 3);
        assert_eq!(e.cameras.len(), 1);
        assert_eq!((e.cameras[0].name.as_str(), e.cameras[0].width, e.cameras[0].height), (FRONT_CAMERA, 24, 24));
        for (i, s) in e.steps.iter().enumerate() {
            assert!(e.metadata.workspace.contains(s.pose.position), "{} step {i}", e.id());
            assert!(plan.contains(s.subtask.as_ref().unwrap()));
            // Joint speeds are (near) zero exactly when the tip does not move to the next frame.
            let v = s.joint_velocities.as_ref().unwrap();
            assert_eq!(v.len(), 7);
            let resting = e.steps.get(i + 1).is_none_or(|n| n.pose.position == s.pose.position);
            let fastest = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(if resting { fastest == 0.0 } else { fastest > 0.1 }, "{} step {i}: {fastest}", e.id());
            // Only a closed gripper holds anything, and only one object at a time.
            let held = s.scene.iter().filter(|o| o.held).count();
            assert!(held == 0 || (!s.gripper_open && held == 1), "{} step {i}", e.id());
            let ImageRef::Encoded(png) = &s.images[FRONT_CAMERA] else { panic!("frames are in memory") };
            let img = image::load_from_memory(png).unwrap();
            assert_eq!((img.width(), img.height()), (24, 24));
        }
        // The plan's subtasks are visited in order.
        let mut seen: Vec<&String> = e.steps.iter().map(|s| s.subtask.as_ref().unwrap()).collect();
        seen.dedup();
        assert_eq!(seen, plan.iter().collect::<Vec<_>>(), "{}", e.id());
    }
}

#[test]
fn grasped_objects_are_carried() {
    let cfg = SimConfig {
        tasks: vec!["pick_up_cup".into(), "put_rubbish_in_bin".into()],
        episodes_per_task: 2,
        seed: 1,
        image_size: 16,
    };
    for e in simulate(&cfg, |_, _| {}).unwrap() {
        let wps = e.waypoints.as_ref().unwrap();
        let name = &e.steps[0].scene[0].name;
        let at = |frame: usize| e.steps[frame].scene.iter().find(|o| &o.name == name).unwrap().clone();
        // Grasped at the second waypoint, lifted at the third.
        let (grasped, lifted) = (at(wps[1]), at(wps[2]));
        assert!(grasped.held && lifted.held, "{}", e.id());
        assert!(lifted.position[2] > grasped.position[2] + 0.1, "{}", e.id());
        let first = &e.steps[0].scene[0];
        assert!(!first.held && (first.position[2] - grasped.position[2]).abs() < 1e-12);
        if e.task == "put_rubbish_in_bin" {
            // Released over the bin, the rubbish ends inside it.
            let (rubbish, bin) = (at(e.steps.len() - 1), e.steps[0].scene[1].clone());
            assert!(!rubbish.held);
            for a in 0..2 {
                assert!((rubbish.position[a] - bin.position[a]).abs() < bin.size[a] / 2.0);
            }
            assert!(rubbish.position[2] < bin.position[2] + bin.size[2] / 2.0);
        }
    }
}

/// FNV-1a over every frame, pose and scene value: a fingerprint of the generated data.
fn fingerprint(eps: &[Episode]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for e in eps {
        for s in &e.steps {
            let ImageRef::Encoded(png) = &s.images[FRONT_CAMERA] else { unreachable!() };
            eat(png);
            for x in s.pose.position.iter().chain(s.scene.iter().flat_map(|o| &o.position)) {
                eat(&x.to_le_bytes());
            }
        }
    }
    h
}

#[test]
fn output_is_pinned_and_independent_of_threads() {
    let cfg = SimConfig {
        tasks: vec!["take_lid_off_saucepan".into(), "open_drawer".into()],
        episodes_per_task: 2,
        seed: 42,
        image_size: 48,
    };
    let parallel = simulate(&cfg, |_, _| {}).unwrap();
    let sequential: Vec<Episode> = cfg
        .tasks
        .iter()
        .flat_map(|name| {
            let task = TASKS.iter().find(|t| t.name == name).unwrap();
            (0..2).map(move |e| simulate_episode(task, 42, e, 48).unwrap())
        })
        .collect();
    assert_eq!(parallel, sequential);
    // A change of this value changes every dataset generated from a seed: update it only
    // together with the committed dataset (see datasets/README.md).
    assert_eq!(fingerprint(&parallel), PINNED, "fingerprint {:#018x}", fingerprint(&parallel));
}

const PINNED: u64 = 0xf025_e7fe_681f_c605;

#[test]
fn seeds_change_the_scenes() {
    let a = episodes(1, 16, 1);
    let b = episodes(1, 16, 2);
    assert_eq!(a.len(), task_names().len());
    let differ = a.iter().zip(&b).filter(|(x, y)| x.steps[0].scene != y.steps[0].scene).count();
    assert_eq!(differ, a.len());
}
