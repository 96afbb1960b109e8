//! The `tiny` preset: a Qwen2.5-VL of the real architecture at toy sizes, with a byte-level
//! BPE tokenizer trained on the dataset's own text, so that `cargo xtask train` can run SFT and
//! GRPO end to end on two CPU cores in minutes.
//!
//! The directory written by [`create_tiny`] is an ordinary Hugging Face checkpoint (see
//! [`checkpoint`](crate::checkpoint)): `transformers` loads it with
//! `Qwen2_5_VLForConditionalGeneration.from_pretrained` and `AutoProcessor`
//! (`scripts/check_tiny_with_transformers.py` checks that).
//!
//! The tokenizer follows Qwen2's pipeline (NFC, the Qwen2 split regex, byte-level mapping, byte
//! level decoding), so everything the real tokenizer can encode this one can too: the 256 byte
//! symbols are always in the vocabulary. The Qwen special tokens come after the BPE vocabulary,
//! as in Qwen's own `tokenizer.json`, followed by the reasoning tags as ordinary (non-special)
//! added tokens: the reward parses `<think>`/`<answer>` in decoded completions, which are
//! decoded with `skip_special_tokens`, so the tags must be single tokens that survive it.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use r1_data::Message;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::{NFC, NormalizerWrapper};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::chat::{ChatTemplate, QWEN_VL_CHAT_TEMPLATE};
use crate::checkpoint::{self, Assets};
use crate::config::{Qwen2_5VlConfig, TextConfig, VisionConfig};
use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;
use crate::processor::{ImageProcessor, ImageProcessorConfig};
use crate::tokenizer::{ENDOFTEXT, IM_END, IM_START, IMAGE_PAD, Tokenizer, VIDEO_PAD, VISION_END, VISION_START};

/// The Qwen special tokens, in the order Qwen's `tokenizer.json` numbers them.
pub const SPECIAL_TOKENS: [&str; 7] = [ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD];

/// The reasoning/answer tags: single, non-special tokens (kept by `skip_special_tokens`).
pub const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

/// Largest tokenizer of the tiny preset (BPE tokens + special tokens + tags). The prompts spell
/// coordinates digit by digit (the Qwen2 split isolates every digit), so a larger vocabulary
/// would mostly buy rare words, while the embedding, the tied LM head and the softmax grow with
/// it. The default dataset's text runs out of pairs seen twice before the cap: it gives 770
/// tokens, and prompts of 272 to 464 tokens (mean 387, the 16 image tokens included).
pub const TINY_VOCAB_SIZE: usize = 1024;

/// Qwen2's pre-tokenizer regex (from its `tokenizer.json`): contractions, letter runs with one
/// leading non-letter, single digits, punctuation runs, newlines, spaces.
const QWEN2_SPLIT_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Byte symbols of the byte-level alphabet: the floor of any byte-level BPE vocabulary.
const BYTE_ALPHABET: usize = 256;

/// The tokenizer error of a tokenizer that exists only in memory so far.
fn tokenizer_error(message: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer { path: PathBuf::from("<tiny tokenizer>"), message: message.to_string() }
}

/// Trains a Qwen2-style byte-level BPE tokenizer of `vocab_size` tokens in all (BPE tokens,
/// then [`SPECIAL_TOKENS`], then [`TAGS`]) on `texts`.
///
/// The result may be smaller than `vocab_size` when the texts hold too few distinct pairs
/// seen at least twice. Training is deterministic: the BPE trainer breaks count ties by token
/// ids, which only depend on the texts, so equal texts give a byte-identical `tokenizer.json`.
///
/// Fails when `vocab_size` cannot hold the byte alphabet and the added tokens.
pub fn train_tokenizer(texts: &[String], vocab_size: usize) -> Result<tokenizers::Tokenizer, ModelError> {
    let added = SPECIAL_TOKENS.len() + TAGS.len();
    if vocab_size < BYTE_ALPHABET + added {
        return Err(ModelError::Input(format!(
            "a byte-level tokenizer needs a vocabulary of at least {} tokens ({BYTE_ALPHABET} bytes + {added} added tokens), got {vocab_size}",
            BYTE_ALPHABET + added
        )));
    }
    let split = Split::new(SplitPattern::Regex(QWEN2_SPLIT_PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(tokenizer_error)?;
    // Qwen2 maps bytes after its own split, so the byte-level step neither splits nor adds a
    // prefix space; its post-processor and decoder are byte-level too (offsets untrimmed).
    let byte_level = ByteLevel::new(false, false, false);
    let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
    tokenizer
        .with_normalizer(Some(NormalizerWrapper::NFC(NFC)))
        .map_err(tokenizer_error)?
        .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Split(split),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ]))))
        .with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)))
        .with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size - added)
        // A merge seen once teaches nothing and only bloats the vocabulary with rare strings.
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // The added tokens are matched before BPE at encoding time, so BPE never sees them: they
    // are cut out of the training text too, lest merges be spent on their pieces.
    let cleaned: Vec<String> = texts.iter().map(|t| strip_added_tokens(t)).collect();
    tokenizer
        .train(&mut TrainerWrapper::from(trainer), cleaned.iter())
        .map_err(|e| tokenizer_error(format!("training failed: {e}")))?;
    // Added after training so that their ids follow the BPE vocabulary instead of clashing
    // with it. `normalized(false)`: matched on the raw text, as in Qwen's tokenizer.json.
    tokenizer
        .add_special_tokens(SPECIAL_TOKENS.map(|t| AddedToken::from(t, true).normalized(false)))
        .and_then(|_| tokenizer.add_tokens(TAGS.map(|t| AddedToken::from(t, false).normalized(false))))
        .map_err(|e| tokenizer_error(format!("cannot add the special tokens: {e}")))?;
    Ok(tokenizer)
}

/// `text` with every special token and tag replaced by a space (so the words around it stay
/// apart, as they are at encoding time).
fn strip_added_tokens(text: &str) -> String {
    SPECIAL_TOKENS.iter().chain(&TAGS).fold(text.to_owned(), |t, token| t.replace(token, " "))
}

/// The image processor of the tiny preset: every image is resized to about 112x112 pixels,
/// so a 224x224 image gives 8x8 patches, i.e. 16 image tokens after the 2x2 merge.
pub fn tiny_processor_config() -> ImageProcessorConfig {
    ImageProcessorConfig { min_pixels: 112 * 112, max_pixels: 112 * 112, ..ImageProcessorConfig::default() }
}

/// The tiny Qwen2.5-VL: the real architecture (windowed vision attention with one full
/// attention block, 2x2 patch merger, GQA decoder with M-RoPE, tied embeddings) at sizes that
/// train on a CPU. The embedding has one row per token of `tokenizer`, and the special token
/// ids come from it.
///
/// Fails when the tokenizer lacks one of the vision tokens.
pub fn tiny_config(tokenizer: &Tokenizer) -> Result<Qwen2_5VlConfig, ModelError> {
    let id = |token: &str| {
        tokenizer.token_id(token).ok_or_else(|| tokenizer_error(format!("the special token {token} is missing")))
    };
    let text_hidden = 128;
    let config = Qwen2_5VlConfig {
        text: TextConfig {
            vocab_size: tokenizer.vocab_size(),
            hidden_size: text_hidden,
            intermediate_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rms_norm_eps: 1e-6,
            // Prompts are a few hundred tokens: a small base keeps all 16 frequencies useful
            // at that range (Qwen's 1e6 is tuned for 32k contexts).
            rope_theta: 10_000.0,
            // Sums to head_dim / 2 = 16, split like Qwen's [16, 24, 24] of 64.
            mrope_section: [4, 6, 6],
            max_position_embeddings: 4096,
        },
        vision: VisionConfig {
            depth: 2,
            hidden_size: 64,
            intermediate_size: 128,
            num_heads: 4,
            in_channels: 3,
            out_hidden_size: text_hidden,
            patch_size: 14,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            // 112 px = 4x4 merged tokens per window, as in Qwen2.5-VL; a 112x112 image is one
            // window, larger ones exercise the window reordering.
            window_size: 112,
            fullatt_block_indexes: vec![1],
            tokens_per_second: 2.0,
        },
        tie_word_embeddings: true,
        image_token_id: id(IMAGE_PAD)?,
        video_token_id: id(VIDEO_PAD)?,
        vision_start_token_id: id(VISION_START)?,
        vision_end_token_id: id(VISION_END)?,
        bos_token_id: Some(id(ENDOFTEXT)?),
        eos_token_id: vec![id(IM_END)?],
    };
    config.validate().map_err(|message| ModelError::Config { path: PathBuf::from("<tiny config>"), message })?;
    Ok(config)
}

/// The architecture of a randomly initialised checkpoint: the tiny preset's, or a released
/// Qwen2.5-VL's (its `config.json` values) for benchmarks of its real widths, vocabulary
/// included, at a chosen depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Tiny,
    #[value(name = "qwen2.5-vl-3b")]
    Qwen2_5Vl3b,
    #[value(name = "qwen2.5-vl-7b")]
    Qwen2_5Vl7b,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// Decoder layers and vision blocks of a [`Shape`] built shallower than released (`None`: as
/// released).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    pub layers: Option<usize>,
    pub vision_layers: Option<usize>,
}

impl Shape {
    /// The configuration for `tokenizer`'s special tokens. The released shapes keep their own
    /// vocabulary size (the tokenizer's ids are a prefix of it) and their image processor's
    /// defaults; the vision blocks with full attention are those of the released model that
    /// remain, or the last one.
    fn config(self, tokenizer: &Tokenizer, depth: Depth) -> Result<Qwen2_5VlConfig, ModelError> {
        let mut config = tiny_config(tokenizer)?;
        let (t, v) = (&mut config.text, &mut config.vision);
        match self {
            Self::Tiny => {}
            Self::Qwen2_5Vl3b | Self::Qwen2_5Vl7b => {
                let is_7b = self == Self::Qwen2_5Vl7b;
                t.vocab_size = if is_7b { 152_064 } else { 151_936 };
                t.hidden_size = if is_7b { 3584 } else { 2048 };
                t.intermediate_size = if is_7b { 18_944 } else { 11_008 };
                t.num_hidden_layers = if is_7b { 28 } else { 36 };
                t.num_attention_heads = if is_7b { 28 } else { 16 };
                t.num_key_value_heads = if is_7b { 4 } else { 2 };
                t.rope_theta = 1_000_000.0;
                t.mrope_section = [16, 24, 24];
                t.max_position_embeddings = 128_000;
                *v = VisionConfig {
                    depth: 32,
                    hidden_size: 1280,
                    intermediate_size: 3420,
                    num_heads: 16,
                    out_hidden_size: t.hidden_size,
                    fullatt_block_indexes: vec![7, 15, 23, 31],
                    ..v.clone()
                };
                config.tie_word_embeddings = !is_7b;
            }
        }
        if let Some(layers) = depth.layers {
            t.num_hidden_layers = layers;
        }
        if let Some(blocks) = depth.vision_layers {
            v.depth = blocks;
            v.fullatt_block_indexes.retain(|&i| i < blocks);
            if v.fullatt_block_indexes.is_empty() && blocks > 0 {
                v.fullatt_block_indexes.push(blocks - 1);
            }
        }
        config.validate().map_err(|message| ModelError::Config { path: PathBuf::from("<random config>"), message })?;
        Ok(config)
    }

    fn processor(self) -> ImageProcessorConfig {
        match self {
            Self::Tiny => tiny_processor_config(),
            Self::Qwen2_5Vl3b | Self::Qwen2_5Vl7b => ImageProcessorConfig::default(),
        }
    }
}

/// Creates the tiny checkpoint directory `dir` ([`create_random`] of [`Shape::Tiny`]).
pub fn create_tiny(dir: &Path, texts: &[String], seed: u64, device: &Device) -> Result<(), ModelError> {
    create_random(dir, texts, Shape::Tiny, Depth::default(), seed, device)
}

/// Creates a randomly initialised checkpoint directory `dir`: trains the tokenizer on `texts`
/// plus the chat template's own text, builds `shape`'s configuration at `depth`, initialises
/// the model from `seed`, and saves weights, config, tokenizer, chat template and image
/// processor.
///
/// The directory appears whole or not at all: everything is written to a sibling staging
/// directory that is then renamed, so a caller that creates the model "if absent" never finds
/// a half-written one. Fails if `dir` already exists.
///
/// The weights are reproducible for a given seed as long as nothing else draws from the
/// backend's random generator meanwhile (burn seeds it per backend, not per call).
pub fn create_random(
    dir: &Path,
    texts: &[String],
    shape: Shape,
    depth: Depth,
    seed: u64,
    device: &Device,
) -> Result<(), ModelError> {
    if dir.exists() {
        return Err(ModelError::io(dir, std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists")));
    }
    let template_path = dir.join("chat_template.jinja");
    let template = ChatTemplate::new(QWEN_VL_CHAT_TEMPLATE, &template_path)?;
    // The role names and the default system prompt appear in every prompt: let BPE learn them.
    let scaffold = template.render(&[Message::text("user", "")], true)?;
    let corpus: Vec<String> = texts.iter().cloned().chain(std::iter::once(scaffold)).collect();
    let tokenizer = Tokenizer::new(train_tokenizer(&corpus, TINY_VOCAB_SIZE)?, &dir.join("tokenizer.json"))?;
    let config = shape.config(&tokenizer, depth)?;
    device.seed(seed);
    // Parameters are initialised lazily, on first use: `checkpoint::save` visits them in a
    // fixed order right after seeding, which fixes the draws.
    let model = Qwen2_5VlModel::new(&config, device);
    let assets = Assets {
        config,
        tokenizer,
        template,
        processor: ImageProcessor::new(shape.processor()),
        tokenizer_config: None,
    };
    let staging = staging_dir(dir);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| ModelError::io(&staging, e))?;
    }
    let saved = checkpoint::save(&model, &assets, &staging)
        .and_then(|()| std::fs::rename(&staging, dir).map_err(|e| ModelError::io(dir, e)));
    if saved.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = std::fs::remove_dir_all(&staging);
    }
    saved
}

/// `.NAME.partial-PID` next to `dir`: same filesystem (so the rename is atomic), unique per
/// process, hidden from listings.
fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "tiny".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No special token or tag survives stripping, and other text is untouched.
        #[test]
        fn stripping_removes_exactly_the_added_tokens(words in proptest::collection::vec("[a-z <>|/_]{0,8}", 0..6), pick in 0usize..11) {
            let all: Vec<&str> = SPECIAL_TOKENS.iter().chain(&TAGS).copied().collect();
            let text = words.join(all[pick]);
            let stripped = strip_added_tokens(&text);
            // The replacement is a space and no token holds one, so none can be formed anew.
            for token in &all {
                prop_assert!(!stripped.contains(token), "{token} left in {stripped:?}");
            }
            if !all.iter().any(|t| text.contains(t)) {
                prop_assert_eq!(stripped, text);
            }
        }
    }

    /// A released shape keeps its vocabulary (every tokenizer id below it) and widths at any
    /// depth; a shallower vision tower keeps the full-attention blocks that remain, or makes
    /// its last block one.
    #[test]
    fn released_shapes_at_reduced_depth() {
        let texts = vec!["pick up the red cup and put it on the plate".to_string(); 4];
        let tokenizer = Tokenizer::new(train_tokenizer(&texts, 300).unwrap(), Path::new("tokenizer.json")).unwrap();
        let depth = |layers, vision_layers| Depth { layers: Some(layers), vision_layers: Some(vision_layers) };
        let c = Shape::Qwen2_5Vl3b.config(&tokenizer, depth(4, 9)).unwrap();
        assert_eq!((c.text.vocab_size, c.text.hidden_size, c.text.num_hidden_layers), (151_936, 2048, 4));
        assert!(c.image_token_id < c.text.vocab_size as u32 && c.tie_word_embeddings);
        assert_eq!((c.vision.depth, c.vision.fullatt_block_indexes.clone()), (9, vec![7]));
        let c = Shape::Qwen2_5Vl7b.config(&tokenizer, depth(2, 3)).unwrap();
        assert_eq!((c.text.hidden_size, c.vision.out_hidden_size, c.tie_word_embeddings), (3584, 3584, false));
        assert_eq!(c.vision.fullatt_block_indexes, vec![2]);
        let full = Shape::Qwen2_5Vl7b.config(&tokenizer, Depth::default()).unwrap();
        assert_eq!((full.text.num_hidden_layers, full.vision.depth), (28, 32));
    }

    #[test]
    fn staging_dir_is_a_hidden_sibling() {
        let staging = staging_dir(Path::new("/a/b/model"));
        assert_eq!(staging.parent(), Some(Path::new("/a/b")));
        assert!(staging.file_name().unwrap().to_string_lossy().starts_with(".model.partial-"));
    }
}
