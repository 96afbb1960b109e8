//! `cargo xtask generate`: one completion from a Qwen2.5-VL checkpoint for an image and a
//! prompt.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use r1_data::Message;
use r1_model::checkpoint::{self, Assets, Prompt};
use r1_model::generate::SamplingConfig;
use r1_model::{DeviceKind, Qwen2_5VlModel};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// What both `generate` and `score` take: a checkpoint, an image and the user's text.
#[derive(clap::Args)]
pub struct Input {
    /// Hugging Face Qwen2.5-VL directory, a training run (its newest checkpoint) or a checkpoint.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Image shown before the prompt.
    #[arg(long, value_name = "IMG")]
    pub image: PathBuf,
    /// The user's text.
    #[arg(long)]
    pub prompt: String,
    /// Device the model runs on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
}

impl Input {
    /// Loads the checkpoint for inference and encodes the prompt: one user turn, the image first
    /// and the text second, rendered with the generation prompt.
    pub fn load(&self) -> anyhow::Result<(Assets, Qwen2_5VlModel, Prompt)> {
        let (assets, model) = load(&self.model, self.device)?;
        let image =
            self.image.to_str().with_context(|| format!("{}: the path is not valid UTF-8", self.image.display()))?;
        let prompt = assets.encode_prompt(&[Message::user_with_image(image, &self.prompt)], Path::new("."))?;
        Ok((assets, model.valid(), prompt))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: Input,
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_new_tokens: usize,
    /// 0 decodes greedily.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    top_p: f64,
    /// 0: no limit.
    #[arg(long, value_name = "K", default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object (text, ids, log-probs) instead of the text.
    #[arg(long)]
    json: bool,
}

/// Loads the checkpoint behind `path` for inference on `device`.
pub fn load(path: &Path, device: DeviceKind) -> anyhow::Result<(Assets, Qwen2_5VlModel)> {
    let resolved = r1_bench::report::resolve_model(path)?;
    let device = device.device()?;
    Ok(checkpoint::load(&resolved.model_dir, &device)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (assets, model, prompt) = args.input.load()?;
    let config = SamplingConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (out, text) =
        assets.sample(&model, &[&prompt], 1, &config, &mut rng)?.pop().context("generation returned nothing")?;
    if args.json {
        let value = serde_json::json!({
            "text": text,
            "ids": out.ids,
            "logprobs": out.logprobs,
            "stopped": out.stopped,
            "prompt_tokens": prompt.ids,
        });
        println!("{value}");
    } else {
        println!("{text}");
    }
    Ok(())
}
