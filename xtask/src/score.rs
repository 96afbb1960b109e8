//! `cargo xtask score`: per-token log-probs of a given completion after an image and a prompt.

use crate::generate::Input;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: Input,
    /// The assistant's reply to score, tokenised on its own without special tokens.
    #[arg(long)]
    completion: String,
    /// Print one JSON object: prompt_tokens, completion_ids, completion_logprobs.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (assets, model, prompt) = args.input.load()?;
    let ids = assets.tokenizer.encode(&args.completion, false)?;
    anyhow::ensure!(!ids.is_empty(), "--completion is empty: nothing to score");
    let logprobs = assets
        .score(&model, &[&prompt], &[&ids], 1.0)?
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read the log-probs: {e:?}"))?;
    if args.json {
        let value = serde_json::json!({
            "prompt_tokens": prompt.ids,
            "completion_ids": ids,
            "completion_logprobs": logprobs,
        });
        println!("{value}");
    } else {
        println!("prompt: {} tokens", prompt.ids.len());
        for (id, lp) in ids.iter().zip(&logprobs) {
            let piece = assets.tokenizer.decode(&[*id], false)?;
            println!("{id:>8} {lp:>10.4}  {piece:?}");
        }
        println!("total log-prob {:.4}", logprobs.iter().map(|&l| f64::from(l)).sum::<f64>());
    }
    Ok(())
}
