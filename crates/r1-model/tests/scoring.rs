//! Teacher-forced scoring with shared prompts, on a tiny random checkpoint and real dataset
//! prompts: the prefix-shared path equals a plain forward over each whole sequence, on the
//! inference and the autodiff device, in value and in gradient, and generation's own
//! log-probs equal scoring's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use r1_data::dataset::{Split, read_split};
use r1_data::qa::dataset_texts;
use r1_model::checkpoint::{self, Assets, Prompt};
use r1_model::generate::{SamplingConfig, generate, generate_with};
use r1_model::tiny::create_tiny;
use r1_model::weights::gradients_by_path;
use r1_model::{Qwen2_5VlModel, completion_logprobs};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Scoring's tolerance against the reference computations (f32, different op orders).
const TOL: f32 = 1e-5;

fn dataset_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

/// A tiny random checkpoint and two dataset prompts of different lengths.
fn setup(dir: &Path, device: &Device) -> (Assets, Qwen2_5VlModel, Vec<Prompt>) {
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    create_tiny(dir, &dataset_texts(&samples[..60]), 3, &Device::flex()).unwrap();
    let (assets, model) = checkpoint::load(dir, device).unwrap();
    let prompts: Vec<Prompt> = [0, 7]
        .iter()
        .map(|&i| assets.encode_prompt(r1_data::qa::prompt_turns(&samples[i].messages), &dataset_root()).unwrap())
        .collect();
    assert_ne!(prompts[0].ids.len(), prompts[1].ids.len(), "prompts of different lengths exercise the grouping");
    (assets, model, prompts)
}

/// Completions of varied lengths (1 to 6 tokens) made of ordinary token ids.
fn completions(assets: &Assets) -> Vec<Vec<u32>> {
    let reply = assets.encode_reply("<think> move up </think> <answer> [[B]] </answer>").unwrap();
    [1, 4, 6, 2, 5, 3]
        .iter()
        .enumerate()
        .map(|(k, &n)| reply.iter().copied().cycle().skip(k).take(n).collect())
        .collect()
}

/// Reference: the log-probs `[C]` of `completion` after `prompt` from one forward over the
/// whole sequence, no cache, no padding.
fn whole_sequence(
    assets: &Assets,
    model: &Qwen2_5VlModel,
    prompt: &Prompt,
    completion: &[u32],
    device: &Device,
) -> Tensor<1> {
    let ids: Vec<i64> = prompt.ids.iter().chain(completion).map(|&i| i64::from(i)).collect();
    let (p, n, c) = (prompt.ids.len(), ids.len(), completion.len());
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), device);
    let images = assets.processor.to_input(&prompt.images, device);
    let logits = model.forward(input, Tensor::ones([1, n], device), Some(&images), None).unwrap();
    let targets: Vec<i64> = completion.iter().map(|&id| i64::from(id)).collect();
    let index = Tensor::<3, Int>::from_data(TensorData::new(targets, [1, c, 1]), device);
    log_softmax(logits.slice([0..1, p - 1..n - 1]), 2).gather(2, index).reshape([c])
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn rows(values: Tensor<2>) -> Vec<Vec<f32>> {
    let [b, t] = values.dims();
    let flat = values.into_data().try_into_vec_as::<f32>().unwrap();
    (0..b).map(|r| flat[r * t..(r + 1) * t].to_vec()).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    let diff = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < TOL, "{what}: max |diff| {diff}\n got  {got:?}\n want {want:?}");
}

/// Three completions per prompt, prompt-major: each prompt is prefilled once for its rows.
#[test]
fn shared_prefix_scoring_matches_whole_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (assets, model, prompts) = setup(&tmp.path().join("tiny"), &device);
    let completions = completions(&assets);
    let row_prompts: Vec<&Prompt> = (0..completions.len()).map(|i| &prompts[i / 3]).collect();
    let refs: Vec<&[u32]> = completions.iter().map(Vec::as_slice).collect();
    let pad = assets.tokenizer.special().endoftext;
    let want: Vec<Vec<f32>> =
        (0..refs.len()).map(|i| values(whole_sequence(&assets, &model, row_prompts[i], refs[i], &device))).collect();

    let scored = rows(completion_logprobs(&model, &assets.processor, &row_prompts, &refs, 1.0, pad).unwrap());
    let ad = device.clone().autodiff();
    let (_, ad_model) = checkpoint::load(&tmp.path().join("tiny"), &ad).unwrap();
    let tracked = completion_logprobs(&ad_model, &assets.processor, &row_prompts, &refs, 1.0, pad).unwrap();
    let tracked = rows(Tensor::from_data(tracked.into_data(), &device));
    for (i, w) in want.iter().enumerate() {
        assert_close(&scored[i][..w.len()], w, &format!("row {i}, inference"));
        assert_close(&tracked[i][..w.len()], w, &format!("row {i}, autodiff"));
    }
}

fn gradients(model: &Qwen2_5VlModel, loss: Tensor<1>) -> BTreeMap<String, Vec<f32>> {
    let grads = GradientsParams::from_grads(loss.backward(), model);
    gradients_by_path(model, &grads)
        .into_iter()
        .map(|(path, (_, g))| (path, g.try_into_vec_as::<f32>().unwrap()))
        .collect()
}

/// Training differentiates through the shared prompt: the summed log-probs of completions
/// scored against one prefill have the gradient, in every parameter, of the same completions
/// each run after its own copy of the prompt. (Equal values alone would not show it: a prompt
/// cache cut from the graph still scores the same, but only the prompt's last position would
/// learn from the completions.)
#[test]
fn shared_prefix_gradients_match_whole_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex().autodiff();
    let (assets, model, prompts) = setup(&tmp.path().join("tiny"), &device);
    let completions = completions(&assets);
    let row_prompts: Vec<&Prompt> = (0..completions.len()).map(|i| &prompts[i / 3]).collect();
    let refs: Vec<&[u32]> = completions.iter().map(Vec::as_slice).collect();
    let pad = assets.tokenizer.special().endoftext;

    let whole = refs.iter().zip(&row_prompts).map(|(c, p)| whole_sequence(&assets, &model, p, c, &device).sum());
    let want = gradients(&model, Tensor::cat(whole.collect(), 0).sum());
    let logp = completion_logprobs(&model, &assets.processor, &row_prompts, &refs, 1.0, pad).unwrap();
    let [b, t] = logp.dims();
    let mask: Vec<f32> = refs.iter().flat_map(|c| (0..t).map(move |j| if j < c.len() { 1.0 } else { 0.0 })).collect();
    let got = gradients(&model, (logp * Tensor::from_data(TensorData::new(mask, [b, t]), &device)).sum());

    assert_eq!(got.len(), want.len());
    for (path, w) in &want {
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        let diff = got[path].iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-4 * scale, "{path}: max |diff| {diff} against a largest gradient of {scale}");
    }
}

/// Sampling at temperature T without truncation reports the log-probs that scoring the same
/// tokens at T computes, so a trainer can take them as the old log-probs.
#[test]
fn generation_logprobs_are_the_scoring_logprobs() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (assets, model, prompts) = setup(&tmp.path().join("tiny"), &device);
    let refs: Vec<&Prompt> = prompts.iter().collect();
    let pad = assets.tokenizer.special().endoftext;
    for temperature in [1.0, 0.7] {
        let config = SamplingConfig { max_new_tokens: 8, temperature, top_p: 1.0, top_k: 0 };
        let mut rng = StdRng::seed_from_u64(5);
        let group = 3;
        let generated = generate(&model, &assets.processor, &refs, group, &config, &[], pad, &mut rng).unwrap();
        let row_prompts: Vec<&Prompt> = (0..generated.len()).map(|i| refs[i / group]).collect();
        let ids: Vec<&[u32]> = generated.iter().map(|g| g.ids.as_slice()).collect();
        let scored =
            rows(completion_logprobs(&model, &assets.processor, &row_prompts, &ids, temperature, pad).unwrap());
        for (i, g) in generated.iter().enumerate() {
            assert_eq!(g.ids.len(), 8);
            assert_close(&g.logprobs, &scored[i][..g.ids.len()], &format!("row {i} at temperature {temperature}"));
        }
    }
}

/// `generate_with` reports every row's tokens in order as they are drawn, and a row its
/// caller ends stops there, unstopped, while the other rows decode exactly as without it.
#[test]
fn generate_with_reports_tokens_and_ends_rows_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (assets, model, prompts) = setup(&tmp.path().join("tiny"), &device);
    let refs: Vec<&Prompt> = prompts.iter().collect();
    let pad = assets.tokenizer.special().endoftext;
    // Greedy and no stop token: every row runs the full 6 tokens unless it is ended.
    let config = SamplingConfig::greedy(6);
    let full = generate(&model, &assets.processor, &refs, 2, &config, &[], pad, &mut StdRng::seed_from_u64(0)).unwrap();
    let mut seen = vec![Vec::new(); full.len()];
    let cut = generate_with(
        &model,
        &assets.processor,
        &refs,
        2,
        &config,
        &[],
        pad,
        &mut StdRng::seed_from_u64(0),
        |row, token| {
            seen[row].push(token);
            !(row == 1 && seen[row].len() == 2)
        },
    )
    .unwrap();
    assert_eq!(cut.len(), 4);
    for (row, (f, c)) in full.iter().zip(&cut).enumerate() {
        assert_eq!(seen[row], c.ids, "row {row}: the callback saw each token once, in order");
        assert!(!c.stopped, "row {row}");
        let want = if row == 1 { &f.ids[..2] } else { &f.ids[..] };
        assert_eq!(c.ids, want, "row {row}");
        assert_eq!(c.logprobs.len(), c.ids.len(), "row {row}");
    }
}

/// Prompts of different lengths generated together (prefilled in groups of one length, their
/// caches joined and put back in prompt order) decode as each prompt does alone.
#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (assets, model, _) = setup(&tmp.path().join("tiny"), &device);
    let samples = read_split(&dataset_root(), Split::Train).unwrap();
    let prompts: Vec<Prompt> = [7, 0, 30, 12, 0]
        .iter()
        .map(|&i| assets.encode_prompt(r1_data::qa::prompt_turns(&samples[i].messages), &dataset_root()).unwrap())
        .collect();
    let lengths: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let groups = r1_model::batch::same_length_groups(&lengths);
    assert!(groups.len() > 1 && groups.len() < lengths.len(), "{lengths:?}: one batch, and several");
    let refs: Vec<&Prompt> = prompts.iter().collect();
    let pad = assets.tokenizer.special().endoftext;
    let config = SamplingConfig::greedy(6);
    let group = 2;
    let mut rng = StdRng::seed_from_u64(0);
    let together = generate(&model, &assets.processor, &refs, group, &config, &[], pad, &mut rng).unwrap();
    for (p, prompt) in refs.iter().enumerate() {
        let alone = generate(&model, &assets.processor, &[prompt], group, &config, &[], pad, &mut rng).unwrap();
        for (i, g) in alone.iter().enumerate() {
            let row = &together[p * group + i];
            assert_eq!(row.ids, g.ids, "prompt {p} sample {i}");
            assert_close(&row.logprobs, &g.logprobs, &format!("prompt {p} sample {i}"));
        }
    }
}
