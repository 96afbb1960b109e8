//! The checkpoint's `tokenizer.json`, through the `tokenizers` crate, with the Qwen special
//! tokens the model code needs resolved once.
//!
//! The embedding may have more rows than the tokenizer has tokens (152064 vs 151665 for
//! Qwen2.5-VL), so nothing here is sized from the other.

use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// End of text; also the padding token of Qwen checkpoints.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// Starts a chat turn.
pub const IM_START: &str = "<|im_start|>";
/// Ends a chat turn: the end-of-generation token of instruct models.
pub const IM_END: &str = "<|im_end|>";
/// Opens an image's token run.
pub const VISION_START: &str = "<|vision_start|>";
/// Closes an image's token run.
pub const VISION_END: &str = "<|vision_end|>";
/// One image feature slot.
pub const IMAGE_PAD: &str = "<|image_pad|>";
/// One video feature slot.
pub const VIDEO_PAD: &str = "<|video_pad|>";

/// Ids of the special tokens generation and prompt building rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|endoftext|>`.
    pub endoftext: u32,
    /// `<|im_start|>`.
    pub im_start: u32,
    /// `<|im_end|>`.
    pub im_end: u32,
    /// `<|image_pad|>`.
    pub image_pad: u32,
}

/// A loaded tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    path: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("path", &self.path).field("special", &self.special).finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`; fails naming the file when it is unreadable or lacks one of the
    /// Qwen special tokens.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Tokenizer { path: path.to_path_buf(), message: "file not found".into() });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
        Self::new(inner, path)
    }

    /// Wraps an in-memory tokenizer; `path` is where it lives or will live (for messages).
    pub fn new(inner: tokenizers::Tokenizer, path: &Path) -> Result<Self, ModelError> {
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| ModelError::Tokenizer {
                path: path.to_path_buf(),
                message: format!("the special token {token} is missing"),
            })
        };
        let special = SpecialTokens {
            endoftext: id(ENDOFTEXT)?,
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            image_pad: id(IMAGE_PAD)?,
        };
        Ok(Self { inner, special, path: path.to_path_buf() })
    }

    /// The special token ids.
    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// The underlying `tokenizers` object (to save it, or for anything not wrapped here).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Tokens including added ones (not the embedding size).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`...) are matched
    /// as single tokens before BPE; `add_special_tokens` applies the post-processor (Qwen's
    /// adds nothing, but other tokenizers may add a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| ModelError::Tokenizer { path: self.path.clone(), message: format!("encoding failed: {e}") })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, optionally without special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, ModelError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer { path: self.path.clone(), message: format!("decoding failed: {e}") })
    }

    /// Tokens that end a completion: `<|im_end|>` and `<|endoftext|>`.
    pub fn stop_ids(&self) -> Vec<u32> {
        vec![self.special.im_end, self.special.endoftext]
    }
}

/// Replaces the `k`-th `<|image_pad|>` of `ids` by `counts[k]` copies of it, so each image's
/// single placeholder becomes one slot per image feature (`t * h * w / m²`).
///
/// Fails when the number of placeholders differs from the number of images.
pub fn expand_image_pads(ids: &[u32], image_pad: u32, counts: &[usize]) -> Result<Vec<u32>, ModelError> {
    let found = ids.iter().filter(|&&id| id == image_pad).count();
    if found != counts.len() {
        return Err(ModelError::Input(format!(
            "the prompt has {found} image placeholders (<|image_pad|>) but {} images were given",
            counts.len()
        )));
    }
    let mut counts = counts.iter();
    let mut out = Vec::with_capacity(ids.len() + counts.clone().sum::<usize>());
    for &id in ids {
        if id == image_pad {
            let n = *counts.next().expect("counted above");
            out.extend(std::iter::repeat_n(image_pad, n));
        } else {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Expansion keeps the other tokens in order and yields `sum(counts)` pads.
        #[test]
        fn expansion_preserves_text_and_counts(
            text in proptest::collection::vec(0u32..5, 0..20),
            counts in proptest::collection::vec(1usize..6, 0..4),
        ) {
            let pad = 9;
            let mut ids = text.clone();
            for (k, _) in counts.iter().enumerate() {
                ids.insert((k * 3).min(ids.len()), pad);
            }
            let out = expand_image_pads(&ids, pad, &counts).unwrap();
            prop_assert_eq!(out.iter().filter(|&&i| i == pad).count(), counts.iter().sum::<usize>());
            let others: Vec<u32> = out.into_iter().filter(|&i| i != pad).collect();
            prop_assert_eq!(others, text);
        }
    }

    #[test]
    fn placeholder_count_mismatch_is_an_error() {
        let err = expand_image_pads(&[1, 9, 2], 9, &[4, 4]).unwrap_err().to_string();
        assert!(err.contains("1 image placeholders") && err.contains("2 images"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    }
}
