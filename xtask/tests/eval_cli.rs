//! `cargo xtask eval answers` end to end: the built binary on answers written here, against
//! the committed default dataset and bench.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).arg("eval").args(args).output().expect("the xtask binary runs")
}

/// The ids of the first `n` lines of a JSONL file.
fn first_ids(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().take(n).map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].clone()).collect()
}

#[test]
fn answers_are_reported_as_a_file_with_best_of_n() {
    let tmp = tempfile::tempdir().unwrap();
    let answers = tmp.path().join("answers.jsonl");
    let ids = [
        first_ids(&repo().join("datasets/default/qa/test.jsonl"), 3),
        first_ids(&repo().join("datasets/bench/bench.jsonl"), 3),
    ];
    let lines: String = ids
        .iter()
        .flatten()
        .map(|id| {
            format!(
                "{}\n",
                serde_json::json!({"id": id, "completions": ["<think>a</think> <answer>[[A]]</answer>", "no"]})
            )
        })
        .collect();
    std::fs::write(&answers, lines).unwrap();
    let out = tmp.path().join("eval");
    let (data, bench) = (repo().join("datasets/default"), repo().join("datasets/bench"));
    let args = [
        "answers",
        answers.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--bench",
        bench.to_str().unwrap(),
        "--limit",
        "3",
        "--samples",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = eval(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // How long the whole takes is said once the first question is answered.
    assert!(stderr.contains("the first question took") && stderr.contains("for all 6 at that pace"), "{stderr}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains(&format!("Answers file: `{}`; 2 completion(s) per question.", answers.display())),
        "{report}"
    );
    assert!(!report.contains("Model folder") && !report.contains("temperature"), "{report}");
    assert!(report.contains("| question | accuracy | n | In | Out | best of N |"), "{report}");
    assert!(report.contains("| category | rule-based | n | In | Out | best of N |"), "{report}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["answers"], answers.display().to_string());
    assert!(results.get("temperature").is_none(), "{results}");

    // A temperature says nothing about answers made elsewhere: it is refused, not ignored.
    let run = eval(&[&args[..], &["--temperature", "1.0"]].concat());
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unexpected argument '--temperature'"), "{stderr}");
}
