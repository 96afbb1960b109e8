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
use r1_data::names::parse_name;
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
    #[arg(long, value_enum, default_value_t = DistractorStyle::Balanced)]
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
    /// Prompt template.
    #[arg(long, value_enum, default_value_t = Template::Paper)]
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
    list(s).iter().map(|t| parse_name(t, "question type").map_err(anyhow::Error::msg)).collect()
}

/// The dataset that ships in `datasets/default`, which `train` regenerates when it is absent.
/// datasets/README.md gives the same settings as a command line (`cargo xtask data --sim --tasks
/// all --episodes-per-task 20 --seed 0 --image-size 224 --test 0.25`), which a test checks.
pub(crate) fn default_dataset() -> (r1_sim::SimConfig, DatasetConfig) {
    let sim = r1_sim::SimConfig { tasks: Vec::new(), episodes_per_task: 20, seed: 0, image_size: 224 };
    let config = DatasetConfig {
        source: sim_source(&sim),
        qa: QaConfig { seed: sim.seed, ..QaConfig::default() },
        split: SplitConfig {
            test_fraction: 0.25,
            held_out_tasks: sim_held_out(&sim),
            seed: sim.seed,
            ..Default::default()
        },
        overwrite: false,
    };
    (sim, config)
}

/// The data card's description of simulated demonstrations.
fn sim_source(sim: &r1_sim::SimConfig) -> String {
    let tasks = if sim.tasks.is_empty() { "all".to_string() } else { sim.tasks.join(",") };
    format!(
        "r1-sim, tasks {tasks}, {} episodes per task, seed {}, {}x{} px images",
        sim.episodes_per_task, sim.seed, sim.image_size, sim.image_size
    )
}

/// The simulator's held-out tasks among those `sim` simulates, in its order.
fn sim_held_out(sim: &r1_sim::SimConfig) -> Vec<String> {
    let tasks = if sim.tasks.is_empty() {
        r1_sim::task_names().into_iter().map(String::from).collect()
    } else {
        sim.tasks.clone()
    };
    tasks.into_iter().filter(|t| r1_sim::is_held_out(t)).collect()
}

impl Args {
    /// The dataset settings of the flags, with `default_held_out` unless `--held-out` is given.
    fn dataset_config(&self, source: String, default_held_out: Vec<String>) -> anyhow::Result<DatasetConfig> {
        let held_out = match self.held_out.as_deref() {
            Some("none") => Vec::new(),
            Some(l) => list(l),
            None => default_held_out,
        };
        Ok(DatasetConfig {
            source,
            qa: QaConfig {
                every: self.every,
                qa_types: qa_types(&self.types).context("--types")?,
                camera: self.camera.clone(),
                min_distractor_distance: self.min_distance,
                max_distractor_distance: self.max_distance,
                distractors: self.distractors,
                negligible_movement: self.negligible,
                prompt: PromptOptions {
                    template: self.template,
                    include_rotation: self.include_rotation,
                    include_gripper: self.include_gripper,
                },
                keypoints: KeypointConfig { velocity_threshold: self.velocity_threshold, refractory: self.refractory },
                seed: self.seed,
            },
            split: SplitConfig {
                val_fraction: self.val,
                test_fraction: self.test,
                held_out_tasks: held_out,
                seed: self.seed,
            },
            overwrite: self.overwrite,
        })
    }

    /// What `--sim` simulates and the dataset it writes.
    fn sim_dataset(&self) -> anyhow::Result<(r1_sim::SimConfig, DatasetConfig)> {
        let tasks = if self.tasks == "all" { Vec::new() } else { list(&self.tasks) };
        let sim = r1_sim::SimConfig {
            tasks,
            episodes_per_task: self.episodes_per_task,
            seed: self.seed,
            image_size: self.image_size,
        };
        let config = self.dataset_config(sim_source(&sim), sim_held_out(&sim))?;
        Ok((sim, config))
    }
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
    if args.sim {
        let (sim, config) = args.sim_dataset()?;
        write_simulated(&sim, &config, out, args.montage.as_deref(), args.episodes_out.as_deref())?;
    } else {
        let mut config = args.dataset_config(String::new(), Vec::new())?;
        let (episodes, source) = import(&args)?;
        config.source = source;
        write(&episodes, out, &config)?;
    }
    if let Some(dir) = export_to {
        export(out, dir, args.overwrite)?;
    }
    Ok(())
}

/// Simulates `sim`'s demonstrations and writes the dataset `config` describes to `out`; also
/// the montage of the first frame of one episode per task, and the episodes in the native
/// format, where asked.
pub(crate) fn write_simulated(
    sim: &r1_sim::SimConfig,
    config: &DatasetConfig,
    out: &Path,
    montage: Option<&Path>,
    episodes_out: Option<&Path>,
) -> anyhow::Result<()> {
    let bar = progress::bar(0, "simulating");
    let episodes = r1_sim::simulate(sim, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if let Some(path) = montage {
        r1_sim::montage(&episodes, path)?;
        eprintln!("wrote montage {}", path.display());
    }
    if let Some(dir) = episodes_out {
        write_native(&episodes, dir)?;
    }
    write(&episodes, out, config)
}

/// Writes the dataset of `episodes` to `out`, adds the text-only blind baseline to its card
/// and says what it wrote.
fn write(episodes: &[Episode], out: &Path, config: &DatasetConfig) -> anyhow::Result<()> {
    let bar = progress::bar(episodes.len() as u64, "questions");
    let card = write_dataset(episodes, out, config, || bar.inc(1))?;
    bar.finish_and_clear();
    let metadata: HashMap<(&str, u32, u32), &EnvMetadata> =
        episodes.iter().map(|e| ((e.task.as_str(), e.variation, e.episode), &e.metadata)).collect();
    eprintln!("training the text-only blind baseline on the train split");
    let card = r1_bench::text_only::add_to_card(
        out,
        card,
        |s| metadata[&(s.task.as_str(), s.variation, s.episode)],
        config.qa.seed,
    )?;
    println!("wrote {}", out.display());
    for (split, sc) in &card.splits {
        let tasks: Vec<&str> = sc.tasks.keys().map(String::as_str).collect();
        println!("  {split:>5}: {:>5} episodes {:>7} questions  tasks: {}", sc.episodes, sc.samples, tasks.join(", "));
        if sc.episodes == 0 {
            eprintln!(
                "warning: the {split} split is empty: too few episodes per task for --val {} / --test {}",
                config.split.val_fraction, config.split.test_fraction
            );
        }
    }
    Ok(())
}

/// Loads `--from`, reporting skipped episodes: `(episodes, source description)`.
fn import(args: &Args) -> anyhow::Result<(Vec<Episode>, String)> {
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
    Ok((episodes, format!("imported from {}", from.display())))
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

    /// `train` regenerates datasets/default from [`super::default_dataset`]; datasets/README.md
    /// documents the command line that regenerates it. Both give the settings the committed
    /// dataset was written with.
    #[test]
    fn the_documented_command_and_train_build_the_committed_default_dataset() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let readme = std::fs::read_to_string(root.join("datasets/README.md")).unwrap();
        let command = readme
            .split("```sh\n")
            .filter_map(|block| block.split("```").next())
            .find(|block| block.contains("--out datasets/default"))
            .expect("datasets/README.md shows the command that regenerates default/")
            .replace("\\\n", " ");
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[..3], ["cargo", "xtask", "data"], "{command}");
        let cli = Cli::try_parse_from(words[2..].iter().copied()).unwrap();
        assert_eq!(cli.args.out.as_deref(), Some(std::path::Path::new(crate::train::DEFAULT_DATA)));
        let (sim, mut config) = cli.args.sim_dataset().unwrap();
        // The documented command replaces the committed folder; `train` writes an absent one.
        assert!(config.overwrite);
        config.overwrite = false;
        let (default_sim, default_config) = super::default_dataset();
        assert_eq!((&sim, &config), (&default_sim, &default_config));
        let card = r1_data::dataset::read_card(&root.join(crate::train::DEFAULT_DATA)).unwrap();
        assert_eq!(card.config, default_config);
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
