//! `cargo xtask merge`: folds the LoRA adapters of a run or checkpoint into its base model's
//! weights and writes an ordinary Hugging Face checkpoint, which any tool loads without peft.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use r1_model::{DeviceKind, checkpoint, lora};

#[derive(Parser)]
pub struct Args {
    /// A training run (its newest checkpoint), a checkpoint folder or a PEFT adapter folder.
    #[arg(long, value_name = "RUN_OR_CHECKPOINT")]
    pub model: PathBuf,
    /// Where the merged checkpoint goes (must not exist yet, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Device the merge runs on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let occupied = args.out.read_dir().map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if occupied {
        bail!("{} already exists and is not empty: choose another --out", args.out.display());
    }
    let resolved = r1_bench::report::resolve_model(&args.model)?;
    let device = args.device.device()?;
    let (assets, model) = checkpoint::load(&resolved.model_dir, &device)?;
    if !lora::has_adapters(&model) {
        bail!("{} holds no LoRA adapters: there is nothing to merge", resolved.model_dir.display());
    }
    let merged = lora::merge(model);
    checkpoint::save(&merged, &assets, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!("merged {} into {}", resolved.model_dir.display(), args.out.display());
    Ok(())
}
