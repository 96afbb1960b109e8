//! The `tiny` preset: tokenizer training, config, and a created checkpoint that loads back and
//! runs. Trained on a slice of the default dataset so the suite stays fast; `measure_tiny`
//! (ignored) prints the figures of the full preset:
//!
//! `cargo test --release -p r1-model --test tiny -- --ignored --nocapture measure_tiny`

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use proptest::prelude::*;
use r1_data::dataset::{Split, read_split};
use r1_data::qa::dataset_texts;
use r1_data::{Message, QaSample};
use r1_model::checkpoint::{self, Assets};
use r1_model::tiny::{SPECIAL_TOKENS, TAGS, TINY_VOCAB_SIZE, create_tiny, tiny_config, train_tokenizer};
use r1_model::tokenizer::Tokenizer;
use r1_model::{ModelError, Qwen2_5VlModel};

fn dataset_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

fn train_samples() -> Vec<QaSample> {
    read_split(&dataset_root(), Split::Train).expect("the default dataset is part of the repository")
}

/// A slice of the dataset's text covering every question type: enough for BPE to find
/// merges, small enough to train in milliseconds.
fn small_corpus() -> Vec<String> {
    let samples = train_samples();
    dataset_texts(&samples[..samples.len().min(60)])
}

fn small_tokenizer() -> Tokenizer {
    Tokenizer::new(train_tokenizer(&small_corpus(), 400).unwrap(), Path::new("tokenizer.json")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Byte-level BPE loses nothing: any (NFC) text decodes back to itself, tags included.
    #[test]
    fn tokenizer_round_trips_text(text in "[ -~\n\t]{0,120}", unicode in prop::sample::select(vec!["", "é", "中文", "🤖", "naïve café"])) {
        let tokenizer = small_tokenizer();
        let text = format!("{text}{unicode}<think>{text}</think>");
        let ids = tokenizer.encode(&text, false).unwrap();
        prop_assert_eq!(tokenizer.decode(&ids, false).unwrap(), text.clone());
        prop_assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
    }
}

#[test]
fn dataset_prompts_round_trip() {
    let tokenizer = small_tokenizer();
    for text in small_corpus().iter().take(20) {
        let ids = tokenizer.encode(text, false).unwrap();
        assert_eq!(&tokenizer.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn special_tokens_and_tags_are_single_ids() {
    let tokenizer = small_tokenizer();
    let bpe_size = tokenizer.inner().get_vocab_size(false);
    let all: Vec<&str> = SPECIAL_TOKENS.iter().chain(&TAGS).copied().collect();
    for (k, token) in all.iter().enumerate() {
        let ids = tokenizer.encode(&format!("a{token}b"), false).unwrap();
        let id = tokenizer.token_id(token).unwrap();
        assert_eq!(ids.len(), 3, "{token}: {ids:?}");
        assert_eq!(ids[1], id, "{token}");
        // After the BPE vocabulary, in the listed order (as in Qwen's tokenizer.json).
        assert_eq!(id as usize, bpe_size + k, "{token}");
    }
    // The reward parses the tags in completions decoded without special tokens.
    let reply = "<|im_start|>assistant\n<think> up </think> <answer> [[B]] </answer><|im_end|><|endoftext|>";
    let ids = tokenizer.encode(reply, false).unwrap();
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), "assistant\n<think> up </think> <answer> [[B]] </answer>");
}

#[test]
fn training_is_deterministic_and_sized() {
    let corpus = small_corpus();
    let a = train_tokenizer(&corpus, 400).unwrap().to_string(false).unwrap();
    let b = train_tokenizer(&corpus, 400).unwrap().to_string(false).unwrap();
    assert!(a == b, "two trainings on the same text differ");
    let tokenizer = train_tokenizer(&corpus, 400).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 400);
    let other = train_tokenizer(&corpus[1..], 400).unwrap().to_string(false).unwrap();
    assert!(a != other, "the text must matter");
}

#[test]
fn too_small_vocabularies_are_rejected() {
    let err = train_tokenizer(&small_corpus(), 200).unwrap_err();
    assert!(matches!(err, ModelError::Input(_)), "{err}");
    assert!(err.to_string().contains("at least 267"), "{err}");
}

#[test]
fn tiny_config_takes_its_ids_from_the_tokenizer() {
    let tokenizer = small_tokenizer();
    let config = tiny_config(&tokenizer).unwrap();
    assert_eq!(config.text.vocab_size, tokenizer.vocab_size());
    assert_eq!(config.image_token_id, tokenizer.special().image_pad);
    assert_eq!(config.vision_start_token_id, tokenizer.token_id("<|vision_start|>").unwrap());
    assert_eq!(config.eos_token_id, vec![tokenizer.special().im_end]);
    assert_eq!(config.text.head_dim(), 2 * config.text.mrope_section.iter().sum::<usize>());
    // The JSON form parses back to the same config (what load will read).
    let text = config.to_hf_json().to_string();
    assert_eq!(r1_model::Qwen2_5VlConfig::parse(&text, None).unwrap(), config);
}

/// Flattened weights in visiting order (names are the module paths).
fn weights(model: &Qwen2_5VlModel) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Flat(Vec<f32>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().try_into_vec_as::<f32>().unwrap());
        }
    }
    let mut flat = Flat(Vec::new());
    model.visit(&mut flat);
    flat.0
}

#[test]
fn created_tiny_loads_back_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, twin) = (tmp.path().join("tiny"), tmp.path().join("twin"));
    let device = Device::flex();
    let corpus = small_corpus();
    // burn's random generator is one per backend: this is the only test here that draws from
    // it, so nothing interleaves with the two creations.
    create_tiny(&dir, &corpus, 7, &device).unwrap();
    create_tiny(&twin, &corpus, 7, &device).unwrap();
    for file in ["model.safetensors", "tokenizer.json", "config.json"] {
        assert!(
            std::fs::read(dir.join(file)).unwrap() == std::fs::read(twin.join(file)).unwrap(),
            "{file} differs between two creations with the same seed"
        );
    }
    let err = create_tiny(&dir, &corpus, 7, &device).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "staging directories left behind: {leftovers:?}");

    let (assets, model) = checkpoint::load(&dir, &device).unwrap();
    assert_eq!(assets.tokenizer.vocab_size(), model.vocab_size());
    // The parameter counts read from the headers alone (what a memory plan uses, without loading
    // a model) are the loaded model's, split between the vision tower and the rest.
    let counts = r1_model::weights::parameter_counts(&dir).unwrap();
    assert_eq!(counts.vision, burn::module::Module::num_params(&model.visual) as u64);
    assert_eq!(counts.text + counts.vision, burn::module::Module::num_params(&model) as u64);
    // Saved and loaded weights are equal: save the loaded model again and compare bytes.
    let again = tmp.path().join("again");
    checkpoint::save(&model, &assets, &again).unwrap();
    assert!(
        std::fs::read(dir.join("model.safetensors")).unwrap()
            == std::fs::read(again.join("model.safetensors")).unwrap()
    );
    let w = weights(&model);
    assert!(w.iter().all(|v| v.is_finite()) && w.iter().any(|&v| v != 0.0));

    let sample = &train_samples()[0];
    let logits = prompt_logits(&assets, &model, &sample.messages, 1, &device);
    let [b, t, v] = logits.dims();
    assert_eq!((b, v), (1, model.vocab_size()));
    let values = logits.into_data().try_into_vec_as::<f32>().unwrap();
    assert_eq!(values.len(), t * v);
    assert!(values.iter().all(|x| x.is_finite()), "non-finite logits");
    assert!(values.iter().any(|&x| x != values[0]), "constant logits");
}

/// Logits `[batch, T, vocab]` of `messages` (with its image) repeated `batch` times.
fn prompt_logits(
    assets: &Assets,
    model: &Qwen2_5VlModel,
    messages: &[Message],
    batch: usize,
    device: &Device,
) -> Tensor<3> {
    let prompt = assets.encode_prompt(messages, &dataset_root()).unwrap();
    assert_eq!(prompt.images.len(), 1);
    assert_eq!(prompt.images[0].grid_thw, [1, 8, 8], "224x224 is resized to 112x112");
    let n_pads = prompt.ids.iter().filter(|&&id| id == assets.config.image_token_id).count();
    assert_eq!(n_pads, 16);
    let t = prompt.ids.len();
    let ids: Vec<i64> = (0..batch).flat_map(|_| prompt.ids.iter().map(|&i| i64::from(i))).collect();
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, t]), device);
    let mask = Tensor::<2, Int>::ones([batch, t], device);
    let images: Vec<_> = (0..batch).map(|_| prompt.images[0].clone()).collect();
    let input = assets.processor.to_input(&images, device);
    model.forward(input_ids, mask, Some(&input), None).unwrap()
}

/// The figures of the full preset on the whole train split (run explicitly, see the module
/// docs; prints, asserts nothing about time).
#[test]
#[ignore]
fn measure_tiny() {
    let samples = train_samples();
    let texts = dataset_texts(&samples);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let device = Device::flex();
    let start = Instant::now();
    let tokenizer = train_tokenizer(&texts, TINY_VOCAB_SIZE).unwrap();
    println!(
        "tokenizer: {} tokens, trained in {:.2?} on {} texts",
        tokenizer.get_vocab_size(true),
        start.elapsed(),
        texts.len()
    );
    let start = Instant::now();
    create_tiny(&dir, &texts, 0, &device).unwrap();
    println!("create_tiny: {:.2?}", start.elapsed());
    let (assets, model) = checkpoint::load(&dir, &device).unwrap();
    println!("parameters: {}", burn::module::Module::num_params(&model));
    let lengths: Vec<usize> =
        samples.iter().map(|s| assets.encode_prompt(&s.messages, &dataset_root()).unwrap().ids.len()).collect();
    let chars: usize = samples.iter().map(|s| s.messages.iter().map(|m| m.joined_text().len()).sum::<usize>()).sum();
    println!(
        "prompt tokens (16 image tokens included): mean {:.1}, min {}, max {}; mean prompt text {:.0} chars",
        lengths.iter().sum::<usize>() as f64 / lengths.len() as f64,
        lengths.iter().min().unwrap(),
        lengths.iter().max().unwrap(),
        chars as f64 / samples.len() as f64
    );
    for batch in [1, 16] {
        let _ = prompt_logits(&assets, &model, &samples[0].messages, batch, &device).into_data();
        let start = Instant::now();
        let logits = prompt_logits(&assets, &model, &samples[0].messages, batch, &device);
        let _ = logits.into_data();
        println!("forward of a batch of {batch} prompts: {:.2?}", start.elapsed());
    }
}
