//! `cargo xtask keypoints`: the keypoints the ARM/PerAct heuristic finds in demonstrations.

use std::path::PathBuf;

use r1_data::keypoints::{KeypointConfig, episode_keypoints};
use r1_data::source::{LoadOptions, load_episodes};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Demonstrations: an episode folder, a task folder or a dataset root (any supported format).
    path: PathBuf,
    /// Print JSON (`{"episodes": [...]}`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Stop at the first broken episode instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Velocity threshold (joint velocities, or the documented finite-difference rule).
    #[arg(long, value_name = "V", default_value_t = 0.1)]
    velocity_threshold: f64,
    /// Refractory length in frames.
    #[arg(long, value_name = "FRAMES", default_value_t = 4)]
    refractory: i32,
}

#[derive(Serialize)]
struct Row {
    id: String,
    task: String,
    episode: u32,
    frames: usize,
    keypoints: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waypoints: Option<Vec<usize>>,
}

#[derive(Serialize)]
struct Report {
    episodes: Vec<Row>,
}

fn join(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(" ")
}

/// Loads the demonstrations below `path` and finds their keypoints; broken episodes are
/// reported on standard error (or stop everything with `strict`).
fn report(path: &std::path::Path, strict: bool, config: &KeypointConfig) -> anyhow::Result<Report> {
    let loaded = load_episodes(path, &LoadOptions { strict, ..Default::default() })?;
    for (path, error) in &loaded.skipped {
        eprintln!("warning: skipped {}: {error}", path.display());
    }
    if !loaded.skipped.is_empty() {
        eprintln!("{} broken episodes skipped", loaded.skipped.len());
    }
    let episodes = loaded
        .episodes
        .iter()
        .map(|(_, e)| Row {
            id: e.id(),
            task: e.task.clone(),
            episode: e.episode,
            frames: e.steps.len(),
            keypoints: episode_keypoints(e, config),
            waypoints: e.waypoints.clone(),
        })
        .collect();
    Ok(Report { episodes })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = KeypointConfig { velocity_threshold: args.velocity_threshold, refractory: args.refractory };
    let report = report(&args.path, args.strict, &config)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let width = report.episodes.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    println!("{:<width$}  {:>6}  keypoints", "id", "frames");
    for r in &report.episodes {
        println!("{:<width$}  {:>6}  {}", r.id, r.frames, join(&r.keypoints));
        if let Some(w) = &r.waypoints {
            println!("{:<width$}  {:>6}  {} (recorded waypoints)", "", "", join(w));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_report_lists_keypoints_and_recorded_waypoints() {
        let tmp = tempfile::tempdir().unwrap();
        let sim =
            r1_sim::SimConfig { tasks: vec!["push_button".into()], episodes_per_task: 2, seed: 3, image_size: 32 };
        for e in r1_sim::simulate(&sim, |_, _| {}).unwrap() {
            r1_data::native::write_episode(&e, &tmp.path().join(format!("e{}", e.episode))).unwrap();
        }
        let found = report(tmp.path(), true, &KeypointConfig::default()).unwrap();
        let json: serde_json::Value = serde_json::to_value(&found).unwrap();
        let episodes = json["episodes"].as_array().unwrap();
        assert_eq!(episodes.len(), 2);
        for e in episodes {
            assert_eq!(e["task"], "push_button");
            let frames = e["frames"].as_u64().unwrap();
            let kps: Vec<u64> = e["keypoints"].as_array().unwrap().iter().map(|k| k.as_u64().unwrap()).collect();
            assert_eq!(kps.last(), Some(&(frames - 1)));
            // The simulator's experts dwell at every waypoint: the heuristic finds them.
            assert_eq!(e["waypoints"], e["keypoints"], "{e}");
            assert!(e["id"].as_str().unwrap().starts_with("push_button/"));
        }
        assert!(report(&tmp.path().join("missing"), false, &KeypointConfig::default()).is_err());
    }
}
