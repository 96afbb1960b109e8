//! One demonstration: draw the task instance, script the expert, replay it in the world and
//! render every frame.

use std::collections::BTreeMap;
use std::sync::Arc;

use r1_data::{EnvMetadata, Episode, ImageRef, Pose, Step};

use crate::error::SimError;
use crate::expert::{joint_velocities, trajectory};
use crate::geom::Mesh;
use crate::render::{FRONT_CAMERA, Renderer, View};
use crate::rng::Rng;
use crate::tasks::Task;
use crate::world::{World, push_gripper};

/// The gripper points straight down: a half turn about the world y axis, so its fingers
/// close along world y and it approaches along world -z. `[qx, qy, qz, qw]`.
const TOP_DOWN: [f64; 4] = [0.0, 1.0, 0.0, 0.0];

/// A stable 64-bit key for a task name (FNV-1a), so that an episode's random stream depends
/// on its task's name and not on the task's position in the suite.
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Simulates episode `index` of `task` for the dataset seed `seed`, rendering the front
/// camera at `image_size` x `image_size`.
pub fn simulate_episode(task: &Task, seed: u64, index: u32, image_size: u32) -> Result<Episode, SimError> {
    let mut rng = Rng::derive(seed, &[name_key(task.name), index as u64]);
    let setup = task.build(&mut rng);
    let home = [0.3 + rng.range(-0.03, 0.03), rng.range(-0.03, 0.03), 1.2 + rng.range(-0.03, 0.03)];
    let path = trajectory(home, setup.gripper_open, &setup.waypoints);
    let velocities = joint_velocities(&path.tips);
    let renderer = Renderer::new(View::front(image_size));
    let mut episode = Episode {
        task: task.name.into(),
        variation: setup.variation,
        episode: index,
        descriptions: setup.descriptions,
        metadata: EnvMetadata::default(),
        cameras: vec![renderer.view().camera(FRONT_CAMERA)],
        steps: Vec::with_capacity(path.tips.len()),
        waypoints: Some(path.waypoint_frames.clone()),
        plan: Some(setup.waypoints.iter().map(|w| w.subtask.clone()).collect()),
    };
    let mut world = World::new(setup.objects);
    let mut arrivals = path.arrivals.iter().zip(&setup.waypoints).peekable();
    for (i, (&tip, joint)) in path.tips.iter().zip(velocities).enumerate() {
        world.follow(tip);
        if let Some((_, w)) = arrivals.next_if(|(a, _)| **a == i) {
            for event in &w.events {
                world.apply(event, tip);
            }
        }
        let open = path.gripper_open[i];
        let mut mesh = Mesh::default();
        for o in &world.objects {
            o.mesh(&mut mesh);
        }
        push_gripper(&mut mesh, tip, open, world.grip_half_width());
        let png = renderer.render(&mesh).png().map_err(|source| SimError::Encode {
            episode: episode.id(),
            step: i,
            source,
        })?;
        episode.steps.push(Step {
            pose: Pose { position: tip, orientation: TOP_DOWN },
            gripper_open: open,
            joint_velocities: Some(joint),
            images: BTreeMap::from([(FRONT_CAMERA.to_string(), ImageRef::Encoded(Arc::from(png)))]),
            subtask: Some(setup.waypoints[path.subtask[i]].subtask.clone()),
            scene: world.scene(),
        });
    }
    Ok(episode)
}
