//! The command line on a tiny model created here: a quiet `--device wgpu` run, and the README's
//! check of a checkpoint against transformers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo;
use r1_data::dataset::{Split, read_split};

/// A tiny model (as `cargo xtask train` creates it) in `dir`, and the image of the dataset's
/// first training question.
fn tiny_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = repo().join("datasets/default");
    let samples = read_split(&data, Split::Train).expect("the default dataset is part of the repository");
    let model = dir.join("tiny");
    let texts = r1_data::qa::dataset_texts(&samples);
    r1_model::tiny::create_tiny(&model, &texts, 0, &r1_model::parse_device("flex").unwrap()).unwrap();
    let image = samples[0].messages.iter().flat_map(|m| m.images()).next().expect("a question shows an image");
    (model, data.join(image))
}

/// Without a usable XDG_RUNTIME_DIR (a container, `sudo`, a plain ssh session), Mesa's Vulkan
/// device-select layer made libwayland print "error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment." four times per run; the command line turns the layer off there. Needs a
/// Vulkan adapter (lavapipe on CI, as for `wgpu_smoke`).
#[test]
fn wgpu_run_without_a_runtime_dir_prints_no_wayland_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, image) = tiny_model(tmp.path());
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(["generate", "--device", "wgpu", "--max-new-tokens", "2", "--prompt", "Where is the gripper?"]);
    command.arg("--model").arg(&model).arg("--image").arg(&image);
    for name in [
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "WAYLAND_SOCKET",
        "NODEVICE_SELECT",
        "MESA_VK_DEVICE_SELECT",
        "DRI_PRIME",
    ] {
        command.env_remove(name);
    }
    let out = command.output().expect("the xtask binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

/// The Python that has torch and transformers: `$R1_PYTHON`, else the README's `.venv`.
fn python_with_transformers() -> Option<PathBuf> {
    let python = std::env::var_os("R1_PYTHON").map_or_else(|| repo().join(".venv/bin/python"), PathBuf::from);
    let ok =
        Command::new(&python).args(["-c", "import torch, transformers"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// `python crates/r1-model/scripts/check_tiny_with_transformers.py DIR`, as the README gives
/// it, prints how far r1's log-probs are from transformers' and passes. Ignored by default
/// because CI installs no torch (`-- --ignored` runs it).
#[test]
#[ignore = "needs a Python with torch and transformers ($R1_PYTHON or .venv)"]
fn transformers_check_prints_the_comparison() {
    let python = python_with_transformers()
        .expect("no Python with torch and transformers: set R1_PYTHON or create .venv (see README)");
    let tmp = tempfile::tempdir().unwrap();
    let (model, _) = tiny_model(tmp.path());
    let out = Command::new(python)
        .arg(repo().join("crates/r1-model/scripts/check_tiny_with_transformers.py"))
        .arg(&model)
        .args(["--xtask", env!("CARGO_BIN_EXE_xtask")])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("token ids: identical in r1 and transformers"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("reply log-probs, r1 vs transformers"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let max: f64 =
        line.split("max |difference| ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).unwrap();
    assert!(max < 1e-5, "{line}");
}
