//! What an evaluation leaves behind (`results.json`, `records.jsonl`, `report.md`), how a
//! model path resolves to a checkpoint, and the side-by-side comparison of several runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use r1_model::checkpoint::run::{CONFIG_FILE, MODEL_DIR, checkpoint_dirs, checkpoint_step};
use r1_model::weights::CONFIG_FILE as MODEL_CONFIG;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result, write_atomic};
use crate::evaluate::{BenchRecord, QaRecord};
use crate::question::Category;
use crate::stats;

/// The results file inside an evaluation folder.
pub const RESULTS_FILE: &str = "results.json";
/// Every completion with its scores (and judge failures), one record per line.
pub const RECORDS_FILE: &str = "records.jsonl";
pub const REPORT_FILE: &str = "report.md";

/// A model path resolved to the checkpoint to load.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The Hugging Face-layout model folder (holds `config.json`).
    pub model_dir: PathBuf,
    /// The training run the checkpoint belongs to, when the path was a run.
    pub run: Option<PathBuf>,
    pub step: Option<u64>,
}

/// Resolves `path`: a model folder (holding `config.json`) is used as is; a checkpoint folder
/// (`checkpoint-<step>/` holding `model/config.json`) resolves to its model, within its run; a
/// training run folder resolves to its latest `checkpoint-<step>/` (the model inside it, or in
/// its `model/` subfolder). Anything else is an error that says what was expected.
pub fn resolve_model(path: &Path) -> Result<Resolved> {
    if path.join(MODEL_CONFIG).is_file() {
        return Ok(Resolved { model_dir: path.to_path_buf(), run: None, step: None });
    }
    if path.join(MODEL_DIR).join(MODEL_CONFIG).is_file() {
        let step = path.file_name().and_then(|n| checkpoint_step(&n.to_string_lossy()));
        let run = path.parent().filter(|r| r.join(CONFIG_FILE).is_file()).map(Path::to_path_buf);
        return Ok(Resolved { model_dir: path.join(MODEL_DIR), run, step });
    }
    if !path.is_dir() {
        return Err(BenchError::invalid(path, "no such model folder or training run"));
    }
    let Some((step, dir)) = checkpoint_dirs(path).map_err(|e| BenchError::io(path, e))?.pop() else {
        return Err(BenchError::invalid(
            path,
            "neither a model folder (no config.json) nor a training run (no checkpoint-<step> folder)",
        ));
    };
    let model_dir =
        [dir.clone(), dir.join(MODEL_DIR)].into_iter().find(|d| d.join(MODEL_CONFIG).is_file()).ok_or_else(|| {
            BenchError::invalid(&dir, "the latest checkpoint holds no model (no config.json, nor model/config.json)")
        })?;
    Ok(Resolved { model_dir, run: Some(path.to_path_buf()), step: Some(step) })
}

/// The configuration of a run with its seed removed (so runs that differ only by seed share
/// it), as canonical TOML; `None` when the run has no readable `config.toml`. A model path
/// inside the run itself (its own warm-up checkpoint) is derived, not chosen, and is removed
/// too.
pub fn config_group(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join(CONFIG_FILE)).ok()?;
    let mut table: toml::Table = text.parse().ok()?;
    table.remove("seed");
    if let Some(model) = table.get_mut("model").and_then(toml::Value::as_table_mut) {
        let own = |p: &str| {
            let p = Path::new(p);
            p.starts_with(run)
                || p.canonicalize().ok().zip(run.canonicalize().ok()).is_some_and(|(p, r)| p.starts_with(r))
        };
        if model.get("path").and_then(toml::Value::as_str).is_some_and(own) {
            model.remove("path");
        }
    }
    Some(table.to_string())
}

/// The seed a run's `config.toml` records.
pub fn config_seed(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join(CONFIG_FILE)).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table.get("seed")?.as_integer().and_then(|s| u64::try_from(s).ok())
}

/// `results.json`: what was evaluated, how, and the flat metrics of
/// [`crate::evaluate::summarise`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The path given on the command line.
    pub model: String,
    /// What answered: a checkpoint, or answers recorded elsewhere.
    #[serde(flatten)]
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// Runs with the same group differ only by seed (see [`config_group`]); a path otherwise.
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub samples: usize,
    pub metrics: BTreeMap<String, f64>,
    /// The blind baselines of the evaluated split, from its data card: what rules that see
    /// neither the image nor a model score on the same questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blind: Option<r1_data::blind::BlindBaselines>,
}

/// What produced the evaluated completions. Flattened into [`Results`], so `results.json` holds
/// either `model_dir` and `temperature` or `answers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Source {
    /// A checkpoint answered: the model folder actually loaded, sampled at `temperature`
    /// (0: greedy).
    Model { model_dir: String, temperature: f64 },
    /// A file of answers produced elsewhere (`eval answers`): how they were sampled is unknown.
    Answers { answers: String },
}

/// One line of `records.jsonl`.
#[derive(Serialize)]
#[serde(untagged)]
enum Record<'a> {
    Qa(&'a QaRecord),
    Bench(&'a BenchRecord),
}

/// Writes `results.json`, `records.jsonl` and `report.md` into `dir`, each atomically.
pub fn write(dir: &Path, results: &Results, qa: &[QaRecord], bench: &[BenchRecord]) -> Result<()> {
    let path = dir.join(RESULTS_FILE);
    let json = serde_json::to_vec_pretty(results).map_err(|source| BenchError::Json {
        path: path.clone(),
        line: None,
        source,
    })?;
    write_atomic(&path, &json)?;
    let mut lines = String::new();
    for record in qa.iter().map(Record::Qa).chain(bench.iter().map(Record::Bench)) {
        let path = dir.join(RECORDS_FILE);
        lines += &serde_json::to_string(&record).map_err(|source| BenchError::Json { path, line: None, source })?;
        lines.push('\n');
    }
    write_atomic(&dir.join(RECORDS_FILE), lines.as_bytes())?;
    write_atomic(&dir.join(REPORT_FILE), markdown(results).as_bytes())?;
    Ok(())
}

/// Reads the results of an evaluation folder, or of a run whose evaluation went to its
/// default place (`<run>/eval/`).
pub fn read_results(path: &Path) -> Result<Results> {
    let file = [path.join(RESULTS_FILE), path.join("eval").join(RESULTS_FILE)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            BenchError::invalid(
                path,
                format!("no {RESULTS_FILE} here nor in eval/ (run `cargo xtask eval model` first)"),
            )
        })?;
    let text = std::fs::read_to_string(&file).map_err(|e| BenchError::io(&file, e))?;
    serde_json::from_str(&text).map_err(|source| BenchError::Json { path: file, line: None, source })
}

fn cell(m: &BTreeMap<String, f64>, key: &str) -> String {
    m.get(key).map_or("–".into(), |v| format!("{v:.3}"))
}

fn count(m: &BTreeMap<String, f64>, key: &str) -> String {
    m.get(key).map_or("0".into(), |v| format!("{v:.0}"))
}

const MC_TYPES: [&str; 3] = ["waypoint", "current_state", "movement"];

/// The Markdown report of one evaluation.
pub fn markdown(r: &Results) -> String {
    let m = &r.metrics;
    // With several completions per question every mean has a best-of-N companion
    // (`<prefix>.best_of_n`): each table gets a column for it, the open-ended line a figure.
    let best = r.samples > 1;
    let best_header = if best { " best of N |" } else { "" };
    let best_rule = if best { "---|" } else { "" };
    let best_cell =
        |prefix: &str| if best { format!(" {} |", cell(m, &format!("{prefix}.best_of_n"))) } else { String::new() };
    let mut s = format!("# Evaluation of `{}`\n\n", r.model);
    match &r.source {
        Source::Model { model_dir, temperature } => {
            s += &format!("Model folder: `{model_dir}`");
            if let Some(step) = r.step {
                s += &format!(" (step {step})");
            }
            s += &format!("; {} completion(s) per question at temperature {temperature}.", r.samples);
        }
        Source::Answers { answers } => {
            s += &format!("Answers file: `{answers}`; {} completion(s) per question.", r.samples);
        }
    }
    s += &format!(
        "\n\n## Multiple choice\n\n| question | accuracy | n | In | Out |{best_header}\n|---|---|---|---|---|{best_rule}\n"
    );
    for t in MC_TYPES {
        s += &format!(
            "| {t} | {} | {} | {} | {} |{}\n",
            cell(m, &format!("mcqa.{t}.accuracy")),
            count(m, &format!("mcqa.{t}.n")),
            cell(m, &format!("mcqa.{t}.in.accuracy")),
            cell(m, &format!("mcqa.{t}.out.accuracy")),
            best_cell(&format!("mcqa.{t}")),
        );
    }
    s += &format!(
        "\nFormat rate {}; mean completion length {} tokens; the most common answer is {} of the multiple-choice answers.\n\nOpen-ended waypoint: reward {}{}, L1 error {} m (n = {}, positions parsed {}).\n",
        cell(m, "mcqa.format_rate"),
        m.get("mcqa.completion_tokens.mean").map_or("–".into(), |v| format!("{v:.1}")),
        cell(m, "mcqa.modal_answer_share"),
        cell(m, "open.waypoint.reward"),
        if best { format!(" (best of N {})", cell(m, "open.waypoint.best_of_n")) } else { String::new() },
        cell(m, "open.waypoint.l1"),
        count(m, "open.waypoint.n"),
        cell(m, "open.waypoint.parsed_rate"),
    );
    if let Some(blind) = &r.blind {
        s += "\nBlind baselines of the whole split (no image, no model; from the data card; chance 25%):\n\n";
        s += &blind.to_markdown();
    }
    let tasks: std::collections::BTreeSet<&str> =
        m.keys().filter_map(|k| k.strip_prefix("mcqa.")?.split_once(".task.")?.1.strip_suffix(".accuracy")).collect();
    if !tasks.is_empty() {
        s += "\n### Per task\n\n| task |";
        s += &MC_TYPES.iter().map(|t| format!(" {t} |")).collect::<String>();
        s += "\n|---|---|---|---|\n";
        for task in tasks {
            s += &format!("| {task} |");
            s += &MC_TYPES
                .iter()
                .map(|t| format!(" {} |", cell(m, &format!("mcqa.{t}.task.{task}.accuracy"))))
                .collect::<String>();
            s += "\n";
        }
    }
    if !m.keys().any(|k| k.starts_with("bench.")) {
        return s; // the bench was not evaluated (--no-bench)
    }
    let judged = m.contains_key("bench.judge.failed");
    s += &format!("\n## Robot-R1 Bench (0-3)\n\n| category | rule-based | n | In | Out |{best_header}");
    s += if judged { " judge | judged n |" } else { "" };
    s += &format!("\n|---|---|---|---|---|{best_rule}{}\n", if judged { "---|---|" } else { "" });
    let names: Vec<String> = Category::ALL.iter().map(Category::to_string).chain(["overall".into()]).collect();
    for c in names {
        s += &format!(
            "| {c} | {} | {} | {} | {} |{}",
            cell(m, &format!("bench.{c}.score")),
            count(m, &format!("bench.{c}.n")),
            cell(m, &format!("bench.{c}.in.score")),
            cell(m, &format!("bench.{c}.out.score")),
            best_cell(&format!("bench.{c}")),
        );
        if judged {
            s += &format!(
                " {} | {} |",
                cell(m, &format!("bench.judge.{c}.score")),
                count(m, &format!("bench.judge.{c}.n"))
            );
        }
        s += "\n";
    }
    if judged {
        s += &format!(
            "\nJudge failures (excluded from the judge's averages): {}. Agreement with the rule-based scorer over {} answers: Pearson {}, exact {}, mean |difference| {}.\n",
            count(m, "bench.judge.failed"),
            count(m, "bench.agreement.n"),
            cell(m, "bench.agreement.pearson"),
            cell(m, "bench.agreement.exact"),
            cell(m, "bench.agreement.mean_abs_diff"),
        );
    }
    s
}

/// The columns of the comparison table: header and metric key.
const COMPARE_COLUMNS: [(&str, &str); 12] = [
    ("waypoint", "mcqa.waypoint.accuracy"),
    ("state", "mcqa.current_state.accuracy"),
    ("movement", "mcqa.movement.accuracy"),
    ("MC In", "mcqa.in.accuracy"),
    ("MC Out", "mcqa.out.accuracy"),
    ("open L1", "open.waypoint.l1"),
    ("planning", "bench.planning.score"),
    ("high-level", "bench.high_level_action.score"),
    ("b. movement", "bench.movement.score"),
    ("spatial", "bench.spatial.score"),
    ("bench In", "bench.overall.in.score"),
    ("bench Out", "bench.overall.out.score"),
];

/// Paper-style tables side by side: a row per evaluated model (`(name, results)`), columns
/// for multiple-choice accuracy per question type and In/Out, open-ended L1, and bench score
/// per category and In/Out. With `seeds`, runs of the same [`Results::group`] share a row
/// showing `mean ± std` (sample standard deviation) over them and the number of seeds.
pub fn compare(runs: &[(String, Results)], seeds: bool) -> String {
    let mut rows: Vec<(String, Vec<&Results>)> = Vec::new();
    for (name, r) in runs {
        match rows.iter_mut().find(|(_, g)| seeds && g[0].group == r.group) {
            Some((_, g)) => g.push(r),
            None => rows.push((name.clone(), vec![r])),
        }
    }
    let mut s = String::from("| model | seeds |");
    s += &COMPARE_COLUMNS.iter().map(|(h, _)| format!(" {h} |")).collect::<String>();
    s += "\n|---|---|";
    s += &"---|".repeat(COMPARE_COLUMNS.len());
    s += "\n";
    for (name, group) in rows {
        s += &format!("| {name} | {} |", group.len());
        for (_, key) in COMPARE_COLUMNS {
            let values: Vec<f64> = group.iter().filter_map(|r| r.metrics.get(key).copied()).collect();
            s += &match (stats::mean(&values), stats::std_dev(&values), values.len()) {
                (Some(m), _, 1) => format!(" {m:.3} |"),
                (Some(m), Some(sd), k) => {
                    format!(" {m:.3} ± {sd:.3}{} |", if k < group.len() { format!(" ({k})") } else { String::new() })
                }
                _ => " – |".into(),
            };
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(group: &str, waypoint: f64) -> Results {
        Results {
            model: "m".into(),
            source: Source::Model { model_dir: "m".into(), temperature: 0.0 },
            step: None,
            group: group.into(),
            seed: None,
            samples: 1,
            metrics: BTreeMap::from([("mcqa.waypoint.accuracy".into(), waypoint), ("bench.spatial.score".into(), 1.5)]),
            blind: None,
        }
    }

    #[test]
    fn resolves_models_and_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        assert_eq!(resolve_model(&model).unwrap().model_dir, model);

        let run = tmp.path().join("run");
        for (step, nested) in [(5, false), (40, true), (9, false)] {
            let d = run.join(format!("checkpoint-{step}"));
            let m = if nested { d.join("model") } else { d.clone() };
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("config.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(run.join("checkpoint-x")).unwrap();
        let r = resolve_model(&run).unwrap();
        assert_eq!((r.step, r.model_dir), (Some(40), run.join("checkpoint-40").join("model")));
        // A checkpoint folder is its model, within its run when the run records a config.
        std::fs::write(run.join("config.toml"), "seed = 1\n").unwrap();
        let c = resolve_model(&run.join("checkpoint-40")).unwrap();
        assert_eq!(c, Resolved { model_dir: run.join("checkpoint-40/model"), run: Some(run.clone()), step: Some(40) });

        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = resolve_model(&empty).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("checkpoint-<step>"), "{err}");
        std::fs::create_dir_all(empty.join("checkpoint-3")).unwrap();
        let err = resolve_model(&empty).unwrap_err().to_string();
        assert!(err.contains("checkpoint-3") && err.contains("no model"), "{err}");
        assert!(resolve_model(&tmp.path().join("missing")).is_err());
    }

    #[test]
    fn groups_runs_by_config_without_seed() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, seed, lr) in [("a", 1, "1e-6"), ("b", 2, "1e-6"), ("c", 1, "1e-5")] {
            std::fs::create_dir_all(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join("config.toml"), format!("seed = {seed}\n[optim]\nlr = {lr}\n"))
                .unwrap();
        }
        let g = |n: &str| config_group(&tmp.path().join(n)).unwrap();
        assert_eq!(g("a"), g("b"));
        assert_ne!(g("a"), g("c"));
        // Each run's own warm-up checkpoint is derived, not chosen: it does not split the group;
        // a model chosen from elsewhere does.
        for (name, seed, model) in [
            ("w1", 1, "w1/warmup/checkpoint-60/model"),
            ("w2", 2, "w2/warmup/checkpoint-60/model"),
            ("x", 3, "models/x"),
        ] {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let model = tmp.path().join(model);
            std::fs::write(
                dir.join("config.toml"),
                format!("seed = {seed}\n[model]\npath = {:?}\n", model.to_str().unwrap()),
            )
            .unwrap();
        }
        assert_eq!(g("w1"), g("w2"));
        assert_ne!(g("w1"), g("x"));
        assert_eq!(config_seed(&tmp.path().join("b")), Some(2));
        assert_eq!(config_group(&tmp.path().join("none")), None);
    }

    #[test]
    fn compares_with_mean_and_std_over_seeds() {
        let runs = vec![
            ("grpo-s1".to_string(), results("g", 0.5)),
            ("grpo-s2".to_string(), results("g", 0.7)),
            ("sft".to_string(), results("h", 0.4)),
        ];
        let table = compare(&runs, true);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[2].starts_with("| grpo-s1 | 2 | 0.600 ± 0.141 |"), "{table}");
        assert!(lines[3].starts_with("| sft | 1 | 0.400 |"), "{table}");
        assert_eq!(compare(&runs, false).lines().count(), 5, "without --seeds a row per run");
    }

    #[test]
    fn writes_and_reads_results() {
        let tmp = tempfile::tempdir().unwrap();
        let r = results("g", 0.5);
        write(tmp.path(), &r, &[], &[]).unwrap();
        assert_eq!(read_results(tmp.path()).unwrap(), r);
        let report = std::fs::read_to_string(tmp.path().join(REPORT_FILE)).unwrap();
        assert!(report.contains("| waypoint | 0.500 |") && report.contains("| spatial | 1.500 |"), "{report}");
        let err = read_results(&tmp.path().join("nothing")).unwrap_err().to_string();
        assert!(err.contains("results.json"), "{err}");
    }
}
