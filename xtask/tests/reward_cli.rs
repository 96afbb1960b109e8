//! `cargo xtask reward` end to end: the built binary on a temporary JSONL file.

use std::path::Path;
use std::process::{Command, Output};

fn reward(input: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("reward")
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .expect("the xtask binary runs")
}

fn write(dir: &tempfile::TempDir, lines: &str) -> std::path::PathBuf {
    let path = dir.path().join("completions.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

const LINES: &str = concat!(
    r#"{"id": "a", "qa_type": "current_state", "completion": "<think>x</think><answer>(A)</answer>", "options": {"A": "[0, 0, 1]", "B": "[1, 0, 0]"}, "answer": "A"}"#,
    "\n",
    r#"{"id": "b", "qa_type": "waypoint_open", "completion": "<think>x</think><answer>[0, 0, 0.75]</answer>", "target": [0, 0, 1]}"#,
    "\n",
);

#[test]
fn writes_each_line_back_with_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir, LINES);
    let out = reward(&input, &["--weights", "answer=2", "--format", "paper", "--position", "l1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["rewards"], serde_json::json!({"format": 1.0, "answer": 1.0, "total": 3.0}));
    assert_eq!(lines[1]["id"], "b");
    assert_eq!(lines[1]["rewards"], serde_json::json!({"format": 1.0, "answer": 0.75, "total": 2.5}));
}

#[test]
fn reports_the_malformed_line_and_bad_weights() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&dir, &format!("{LINES}{{\"qa_type\": \"waypoint\"}}\n"));
    let out = reward(&input, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&format!("{}:3", input.display())) && stderr.contains("completion"), "{stderr}");

    let out = reward(&input, &["--weights", "format=1,answer=much"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--weights") && stderr.contains("\"much\" is not a number"), "{stderr}");
}
