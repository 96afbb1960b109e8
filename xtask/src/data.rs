//! `cargo xtask data`: import demonstrations (or simulate them) and write a Robot-R1 QA
//! dataset; `--export easyr1 DIR` also writes it for EasyR1, and with `--dataset` exports an
//! existing one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use r1_data::dataset::{DatasetConfig, SplitConfig, write_dataset};
use r1_data::export::export_easyr1;
use r1_data::keypoints::KeypointConfig;
use r1_data::movement::NEGLIGIBLE_M;
use r1_data::prompts::{PromptOptions, Template};
use r1_data::qa_build::{DistractorStyle, QaConfig};
use r1_data::source::{LoadOptions, load_episodes};
use r1_data::{EnvMetadata, Episode, QaType};

use crate::progress;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["from", "sim", "dataset"])))]
pub struct Args {
    /// Demonstrations to import: a native episode folder, an RLBench or LeRobot dataset, a
    /// task folder, or any folder above them.
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Simulate the demonstrations with r1-sim instead of importing them.
    #[arg(long)]
    sim: bool,
    /// An existing QA dataset (written by this command) to export with --export, instead of
    /// building one.
    #[arg(long, value_name = "DIR", requires = "export", conflicts_with = "out")]
    dataset: Option<PathBuf>,
    /// Output dataset folder (must not exist unless --overwrite).
    #[arg(long, value_name = "DIR", required_unless_present = "dataset")]
    out: Option<PathBuf>,
    /// Also write the dataset for another trainer: `easyr1` (parquet splits, a reward function
    /// applying r1's rules, a README with the EasyR1 settings) to the folder DIR.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "DIR"])]
    export: Option<Vec<String>>,
    /// Replace existing output folders (only once the new ones are complete).
    #[arg(long)]
    overwrite: bool,

    /// [--from] Stop at the first broken episode instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// [--from] LeRobot state layout, e.g. `x=0,y=1,z=2,roll=3,pitch=4,yaw=5,gripper=6`.
    #[arg(long, value_name = "MAP")]
    state_map: Option<String>,

    /// [--sim] Comma-separated task names, or `all`.
    #[arg(long, value_name = "LIST", default_value = "all")]
    tasks: String,
    /// [--sim] Episodes per task.
    #[arg(long, value_name = "N", default_value_t = 10)]
    episodes_per_task: usize,
    /// [--sim] Side of the square front-camera images, in pixels.
    #[arg(long, value_name = "PX", default_value_t = 224)]
    image_size: u32,
    /// [--sim] Also write a montage of the first frame of one episode per task.
    #[arg(long, value_name = "FILE.png")]
    montage: Option<PathBuf>,
    /// [--sim] Also write the simulated episodes in the native format to this folder.
    #[arg(long, value_name = "DIR")]
    episodes_out: Option<PathBuf>,

    /// Seed of the simulator, the questions (distractors, shuffles, descriptions) and the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Camera whose images the questions show (default: `front`, else the first camera).
    #[arg(long)]
    camera: Option<String>,
    /// Every N-th frame is a current frame.
    #[arg(long, value_name = "N", default_value_t = 10)]
    every: usize,
    /// Comma-separated question types: waypoint, current_state, movement, waypoint_open, or `all`.
    #[arg(long, value_name = "LIST", default_value = "all")]
    types: String,
    /// Distractors: `balanced` (drawn from the episode, so that rules ignoring the image stay
    /// near chance) or `paper` (the paper's: uniform in the workspace, adjacent movements).
    #[arg(long, default_value = "balanced")]
    distractors: DistractorStyle,
    /// Minimum distance in metres of a position distractor from the answer and from the others.
    #[arg(long, value_name = "M", default_value_t = 0.05)]
    min_distance: f64,
    /// Maximum distance in metres of a position distractor from the answer (harder questions).
    #[arg(long, value_name = "M")]
    max_distance: Option<f64>,
    /// Per-axis displacement in metres below which a movement label ignores the axis.
    #[arg(long, value_name = "M", default_value_t = NEGLIGIBLE_M)]
    negligible: f64,
    /// Prompt template: `paper` or `compact`.
    #[arg(long, default_value = "paper")]
    template: Template,
    /// Add the orientation quaternion to the robot state in the prompts.
    #[arg(long)]
    include_rotation: bool,
    /// Add the gripper's open/closed flag to the robot state in the prompts.
    #[arg(long)]
    include_gripper: bool,
    /// Keypoint velocity threshold (joint velocities, or the documented finite-difference rule).
    #[arg(long, value_name = "V", default_value_t = 0.1)]
    velocity_threshold: f64,
    /// Keypoint refractory length in frames.
    #[arg(long, value_name = "FRAMES", default_value_t = 4)]
    refractory: i32,
    /// Comma-separated tasks that go to the test split only ("Out"); `none` for no task. With
    /// --sim the default is the simulator's held-out tasks.
    #[arg(long, value_name = "LIST")]
    held_out: Option<String>,
    /// Fraction of each task's episodes for validation.
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    val: f64,
    /// Fraction of each task's episodes for test.
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    test: f64,
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

fn qa_types(s: &str) -> anyhow::Result<Vec<QaType>> {
    if s == "all" {
        return Ok(QaType::ALL.to_vec());
    }
    list(s).iter().map(|t| t.parse::<QaType>().map_err(anyhow::Error::msg)).collect()
}

/// The folder of `--export FORMAT DIR`, once FORMAT is known.
fn export_dir(export: &[String]) -> anyhow::Result<&Path> {
    match export {
        [format, dir] if format == "easyr1" => Ok(Path::new(dir)),
        [format, _] => anyhow::bail!("--export: unknown format {format:?} (expected easyr1)"),
        _ => anyhow::bail!("--export takes a format and a folder"),
    }
}

/// Writes the EasyR1 export of the dataset at `dataset` to `out` and says what it wrote.
fn export(dataset: &Path, out: &Path, overwrite: bool) -> anyhow::Result<()> {
    let summary = export_easyr1(dataset, out, overwrite)?;
    println!("wrote {} (EasyR1; settings in its README.md)", out.display());
    for (split, rows) in &summary.rows {
        println!("  {split:>5}: {rows:>7} rows  {split}.parquet");
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Checked before anything is built, so that a typo costs nothing.
    let export_to = args.export.as_deref().map(export_dir).transpose()?;
    if let Some(dataset) = &args.dataset {
        let out = export_to.context("--dataset needs --export")?;
        return export(dataset, out, args.overwrite);
    }
    let out = args.out.as_deref().context("--out is required with --from or --sim")?;
    let types = qa_types(&args.types).context("--types")?;
    let (episodes, source, default_held_out) = if args.sim { simulate(&args)? } else { import(&args)? };
    let held_out = match args.held_out.as_deref() {
        Some("none") => Vec::new(),
        Some(l) => list(l),
        None => default_held_out,
    };
    let config = DatasetConfig {
        source,
        qa: QaConfig {
            every: args.every,
            qa_types: types,
            camera: args.camera.clone(),
            min_distractor_distance: args.min_distance,
            max_distractor_distance: args.max_distance,
            distractors: args.distractors,
            negligible_movement: args.negligible,
            prompt: PromptOptions {
                template: args.template,
                include_rotation: args.include_rotation,
                include_gripper: args.include_gripper,
            },
            keypoints: KeypointConfig { velocity_threshold: args.velocity_threshold, refractory: args.refractory },
            seed: args.seed,
        },
        split: SplitConfig {
            val_fraction: args.val,
            test_fraction: args.test,
            held_out_tasks: held_out,
            seed: args.seed,
        },
        overwrite: args.overwrite,
    };
    let bar = progress::bar(episodes.len() as u64, "questions");
    let card = write_dataset(&episodes, out, &config, || bar.inc(1))?;
    bar.finish_and_clear();
    let metadata: HashMap<(&str, u32, u32), &EnvMetadata> =
        episodes.iter().map(|e| ((e.task.as_str(), e.variation, e.episode), &e.metadata)).collect();
    eprintln!("training the text-only blind baseline on the train split");
    let card = r1_bench::text_only::add_to_card(
        out,
        card,
        |s| metadata[&(s.task.as_str(), s.variation, s.episode)],
        args.seed,
    )?;
    println!("wrote {}", out.display());
    for (split, sc) in &card.splits {
        let tasks: Vec<&str> = sc.tasks.keys().map(String::as_str).collect();
        println!("  {split:>5}: {:>5} episodes {:>7} questions  tasks: {}", sc.episodes, sc.samples, tasks.join(", "));
        if sc.episodes == 0 {
            eprintln!(
                "warning: the {split} split is empty: too few episodes per task for --val {} / --test {}",
                args.val, args.test
            );
        }
    }
    if let Some(dir) = export_to {
        export(out, dir, args.overwrite)?;
    }
    Ok(())
}

/// Loads `--from`, reporting skipped episodes: `(episodes, source description, no default
/// held-out tasks)`.
fn import(args: &Args) -> anyhow::Result<(Vec<Episode>, String, Vec<String>)> {
    let from = args.from.as_deref().context("--from or --sim is required")?;
    let opts = LoadOptions {
        strict: args.strict,
        cameras: args.camera.iter().cloned().collect(),
        state_map: args.state_map.as_deref().map(str::parse).transpose()?,
    };
    eprintln!("loading {}", from.display());
    let loaded = load_episodes(from, &opts)?;
    for (path, error) in &loaded.skipped {
        eprintln!("warning: skipped {}: {error}", path.display());
    }
    eprintln!("loaded {} episodes, skipped {} broken ones", loaded.episodes.len(), loaded.skipped.len());
    let episodes = loaded.episodes.into_iter().map(|(_, e)| e).collect();
    Ok((episodes, format!("imported from {}", from.display()), Vec::new()))
}

/// Runs the simulator: `(episodes, source description, the simulator's held-out tasks)`.
fn simulate(args: &Args) -> anyhow::Result<(Vec<Episode>, String, Vec<String>)> {
    let tasks = if args.tasks == "all" { Vec::new() } else { list(&args.tasks) };
    let cfg = r1_sim::SimConfig {
        tasks,
        episodes_per_task: args.episodes_per_task,
        seed: args.seed,
        image_size: args.image_size,
    };
    let bar = progress::bar(0, "simulating");
    let episodes = r1_sim::simulate(&cfg, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if let Some(path) = &args.montage {
        r1_sim::montage(&episodes, path)?;
        eprintln!("wrote montage {}", path.display());
    }
    if let Some(dir) = &args.episodes_out {
        write_native(&episodes, dir)?;
    }
    let mut held_out: Vec<String> = Vec::new();
    for e in &episodes {
        if r1_sim::is_held_out(&e.task) && !held_out.contains(&e.task) {
            held_out.push(e.task.clone());
        }
    }
    let source = format!(
        "r1-sim, tasks {}, {} episodes per task, seed {}, {}x{} px images",
        args.tasks, args.episodes_per_task, args.seed, args.image_size, args.image_size
    );
    Ok((episodes, source, held_out))
}

/// Writes episodes as native folders `<dir>/<task>/v<variation>/e<episode>`.
fn write_native(episodes: &[Episode], dir: &Path) -> anyhow::Result<()> {
    let bar = progress::bar(episodes.len() as u64, "episodes");
    for e in episodes {
        let path = dir.join(&e.task).join(format!("v{}", e.variation)).join(format!("e{}", e.episode));
        r1_data::native::write_episode(e, &path)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("wrote {} episodes to {}", episodes.len(), dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use r1_data::dataset::{Split, read_split};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    fn run(args: &[&str]) -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("data").chain(args.iter().copied()))?;
        super::run(cli.args)
    }

    #[test]
    fn simulated_and_reimported_episodes_give_the_same_questions() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |name: &str| tmp.path().join(name).to_string_lossy().into_owned();
        let (sim, episodes, imported) = (p("sim"), p("episodes"), p("imported"));
        run(&[
            "--sim",
            "--tasks",
            "pick_up_cup,stack_blocks",
            "--episodes-per-task",
            "3",
            "--image-size",
            "32",
            "--out",
            &sim,
            "--episodes-out",
            &episodes,
        ])
        .unwrap();
        // stack_blocks is one of the simulator's held-out tasks: test split only.
        let train = read_split(sim.as_ref(), Split::Train).unwrap();
        assert!(!train.is_empty() && train.iter().all(|s| s.task == "pick_up_cup"));
        assert!(read_split(sim.as_ref(), Split::Test).unwrap().iter().any(|s| s.task == "stack_blocks"));

        run(&["--from", &episodes, "--out", &imported, "--held-out", "stack_blocks"]).unwrap();
        for split in Split::ALL {
            assert_eq!(
                read_split(sim.as_ref(), split).unwrap(),
                read_split(imported.as_ref(), split).unwrap(),
                "{split}"
            );
        }
        let err = run(&["--from", &episodes, "--out", &imported]).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let err = run(&["--from", &p("nowhere"), "--out", &p("x")]).unwrap_err().to_string();
        assert!(err.contains("nowhere"), "{err}");
        assert!(run(&["--sim", "--from", &episodes, "--out", &p("x")]).is_err());
        assert!(run(&["--sim", "--types", "waypoint,bogus", "--out", &p("x")]).is_err());
        assert!(!tmp.path().join("x").exists());
    }

    #[test]
    fn exports_for_easyr1_when_building_or_from_an_existing_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |name: &str| tmp.path().join(name).to_string_lossy().into_owned();
        let sim = ["--sim", "--tasks", "pick_up_cup,stack_blocks", "--episodes-per-task", "3", "--image-size", "32"];
        let (dataset, built, exported) = (p("ds"), p("built"), p("exported"));
        run(&[&sim[..], &["--out", &dataset, "--export", "easyr1", &built]].concat()).unwrap();
        run(&["--dataset", &dataset, "--export", "easyr1", &exported]).unwrap();
        // Three episodes per task leave val empty: it gets no file.
        for name in ["train.parquet", "test.parquet", "reward_function/r1.py", "README.md"] {
            let read = |dir: &str| std::fs::read(std::path::Path::new(dir).join(name)).unwrap();
            assert!(read(&built) == read(&exported), "{name} differs");
        }
        assert!(!std::path::Path::new(&built).join("val.parquet").exists());

        let err = run(&["--dataset", &dataset, "--export", "easyr1", &exported]).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        run(&["--dataset", &dataset, "--export", "easyr1", &exported, "--overwrite"]).unwrap();
        // An unknown format fails before anything is simulated or written.
        let err =
            run(&[&sim[..], &["--out", &p("x"), "--export", "easyr2", &p("y")]].concat()).unwrap_err().to_string();
        assert!(err.contains("\"easyr2\"") && err.contains("expected easyr1"), "{err}");
        // --dataset only exports: it needs --export and takes no --out.
        assert!(run(&["--dataset", &dataset]).is_err());
        assert!(run(&["--dataset", &dataset, "--out", &p("x"), "--export", "easyr1", &p("y")]).is_err());
        assert!(!tmp.path().join("x").exists() && !tmp.path().join("y").exists());
    }
}
