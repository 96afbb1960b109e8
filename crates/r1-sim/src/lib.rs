//! r1-sim: a deterministic tabletop suite with scripted experts, rendered like RLBench.
//!
//! RLBench cannot be installed here and no demonstrations can be downloaded, so r1 makes its
//! own: ten tasks ([`task_names`]; five mirror Robot-R1's training tasks, five are held out,
//! [`is_held_out`]) in RLBench's frame and with its environment metadata, scripted experts
//! that dwell at every waypoint so that ARM's keypoint heuristic recovers them, and a
//! software rasteriser for the front camera. [`simulate`] returns episodes in r1-data's
//! model; r1-data writes them and builds the question sets. The same [`SimConfig`] gives
//! byte-identical episodes on any machine.
//!
//! Modules: [`world`] (objects, attachment), [`tasks`] (the suite), [`expert`] (timing and
//! joint velocities), [`render`] (camera and rasteriser), [`episode`] (one demonstration),
//! [`montage`] (a labelled contact sheet).

pub mod episode;
pub mod error;
pub mod expert;
pub mod geom;
pub mod montage;
pub mod render;
pub mod rng;
pub mod tasks;
pub mod world;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use r1_data::Episode;

pub use error::SimError;
pub use montage::montage;
pub use render::FRONT_CAMERA;
use tasks::{TASKS, Task};

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Task names; empty means every task of the suite.
    pub tasks: Vec<String>,
    pub episodes_per_task: usize,
    /// Dataset seed: episode `e` of task `t` depends only on `(seed, t, e)`.
    pub seed: u64,
    /// Side of the square front-camera images, in pixels.
    pub image_size: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { tasks: Vec::new(), episodes_per_task: 10, seed: 0, image_size: 224 }
    }
}

/// Largest accepted image side: beyond it a frame no longer fits the "small images" the
/// pipeline is built for, and memory grows quickly with 50+ frames per episode.
const MAX_IMAGE_SIZE: u32 = 1024;

/// The task names of the suite, training tasks first.
pub fn task_names() -> Vec<&'static str> {
    TASKS.iter().map(|t| t.name).collect()
}

/// True for the five tasks held out from training (the default "Out" set of the question
/// sets); false for training tasks and for names outside the suite.
pub fn is_held_out(task: &str) -> bool {
    TASKS.iter().any(|t| t.name == task && t.held_out)
}

/// The tasks a config selects, in the config's order.
fn selected(cfg: &SimConfig) -> Result<Vec<&'static Task>, SimError> {
    if cfg.tasks.is_empty() {
        return Ok(TASKS.iter().collect());
    }
    let mut out: Vec<&'static Task> = Vec::new();
    for name in &cfg.tasks {
        let task = TASKS
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| SimError::UnknownTask { name: name.clone(), known: task_names() })?;
        if out.iter().any(|t| t.name == task.name) {
            return Err(SimError::Config(format!("task {name:?} is listed twice")));
        }
        out.push(task);
    }
    Ok(out)
}

/// Simulates `episodes_per_task` episodes of every selected task, task by task, on all
/// cores. Each episode is rendered on one thread and results are put back in order, so the
/// output does not depend on the number of threads. `on_episode(done, total)` is called on
/// the caller's thread after each finished episode (for a progress bar).
pub fn simulate(cfg: &SimConfig, mut on_episode: impl FnMut(usize, usize)) -> Result<Vec<Episode>, SimError> {
    let tasks = selected(cfg)?;
    if cfg.episodes_per_task == 0 {
        return Err(SimError::Config("episodes_per_task must be at least 1".into()));
    }
    if !(16..=MAX_IMAGE_SIZE).contains(&cfg.image_size) {
        return Err(SimError::Config(format!(
            "image_size must be between 16 and {MAX_IMAGE_SIZE}, got {}",
            cfg.image_size
        )));
    }
    let episodes_per_task = u32::try_from(cfg.episodes_per_task)
        .map_err(|_| SimError::Config(format!("episodes_per_task {} is too large", cfg.episodes_per_task)))?;
    let jobs: Vec<(&Task, u32)> = tasks.iter().flat_map(|&t| (0..episodes_per_task).map(move |e| (t, e))).collect();
    let total = jobs.len();
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(total);
    let next = AtomicUsize::new(0);
    let mut done: Vec<Option<Episode>> = vec![None; total];
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers {
            let (tx, next, jobs) = (tx.clone(), &next, &jobs);
            scope.spawn(move || {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(task, e)) = jobs.get(j) else { break };
                    // The receiver is gone only when the caller stopped on an error.
                    if tx.send((j, episode::simulate_episode(task, cfg.seed, e, cfg.image_size))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (count, (j, result)) in rx.iter().enumerate() {
            done[j] = Some(result?);
            on_episode(count + 1, total);
        }
        Ok::<(), SimError>(())
    })?;
    Ok(done.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(tasks: &[&str]) -> SimConfig {
        SimConfig {
            tasks: tasks.iter().map(|s| s.to_string()).collect(),
            episodes_per_task: 1,
            seed: 3,
            image_size: 32,
        }
    }

    #[test]
    fn unknown_tasks_list_the_known_ones() {
        let err = simulate(&cfg(&["pick_up_cup", "fly"]), |_, _| {}).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"fly\"") && msg.contains("reach_target") && msg.contains("pick_up_cup"), "{msg}");
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(matches!(simulate(&cfg(&["push_button", "push_button"]), |_, _| {}), Err(SimError::Config(_))));
        let mut c = cfg(&[]);
        c.image_size = 4;
        assert!(matches!(simulate(&c, |_, _| {}), Err(SimError::Config(_))));
        c.image_size = 32;
        c.episodes_per_task = 0;
        assert!(matches!(simulate(&c, |_, _| {}), Err(SimError::Config(_))));
    }

    #[test]
    fn held_out_tasks_are_the_second_five() {
        let names = task_names();
        assert_eq!(names.len(), 10);
        assert!(names[..5].iter().all(|t| !is_held_out(t)) && names[5..].iter().all(|t| is_held_out(t)));
        assert!(!is_held_out("no_such_task"));
    }

    #[test]
    fn progress_is_reported_per_episode_in_order() {
        let mut seen = Vec::new();
        let mut c = cfg(&["reach_target", "push_button"]);
        c.episodes_per_task = 2;
        let eps = simulate(&c, |d, t| seen.push((d, t))).unwrap();
        assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
        let ids: Vec<_> = eps.iter().map(|e| (e.task.as_str(), e.episode)).collect();
        assert_eq!(ids, vec![("reach_target", 0), ("reach_target", 1), ("push_button", 0), ("push_button", 1)]);
    }
}
