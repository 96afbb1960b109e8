//! `cargo xtask random-model`: a randomly initialised Qwen2.5-VL checkpoint, the tiny preset's
//! shape or a released model's widths and vocabulary at a chosen depth, with a tokenizer trained
//! on a dataset's text. It is what the benchmarks run on where no released weights are at hand
//! (nothing is ever downloaded); the weights say nothing, the shapes and timings are real.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use r1_data::dataset::{Split, read_split};
use r1_model::DeviceKind;
use r1_model::tiny::{Depth, Shape, create_random};

#[derive(Parser)]
pub struct Args {
    /// The architecture: the tiny preset's, or Qwen2.5-VL-3B's / 7B's `config.json`.
    #[arg(long, value_enum, default_value_t = Shape::Tiny)]
    pub shape: Shape,
    /// Decoder layers (default: the shape's own).
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Vision blocks (default: the shape's own).
    #[arg(long, value_name = "N")]
    pub vision_layers: Option<usize>,
    /// Where the checkpoint goes (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Dataset whose training split the tokenizer is trained on.
    #[arg(long, value_name = "DIR", default_value = "datasets/default")]
    pub data: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let samples = read_split(&args.data, Split::Train)?;
    let texts = r1_data::qa::dataset_texts(&samples);
    let depth = Depth { layers: args.layers, vision_layers: args.vision_layers };
    create_random(&args.out, &texts, args.shape, depth, args.seed, &DeviceKind::Flex.device()?)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let counts = r1_model::weights::parameter_counts(&args.out)?;
    println!(
        "{}: {} decoder + {} vision parameters, shape {}",
        args.out.display(),
        counts.text,
        counts.vision,
        args.shape
    );
    Ok(())
}
