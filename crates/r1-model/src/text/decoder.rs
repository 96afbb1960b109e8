//! The Qwen2 decoder: pre-norm blocks with grouped-query attention (q/k/v biases, M-RoPE) and
//! a SwiGLU MLP, then a final RMSNorm.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Tensor};

use crate::config::TextConfig;
use crate::layers::{GatedMlp, RmsNorm, linear};
use crate::rope::apply_rotary;
use crate::text::cache::LayerKv;

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct Attention {
    /// `hidden -> heads * head_dim`, with bias.
    pub q_proj: Linear,
    /// `hidden -> kv_heads * head_dim`, with bias.
    pub k_proj: Linear,
    /// `hidden -> kv_heads * head_dim`, with bias.
    pub v_proj: Linear,
    /// `heads * head_dim -> hidden`, no bias.
    pub o_proj: Linear,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
}

/// The per-forward inputs every layer shares.
pub struct LayerContext {
    /// Rotary cosines `[B, 1, T, head_dim]`.
    pub cos: Tensor<4>,
    /// Rotary sines `[B, 1, T, head_dim]`.
    pub sin: Tensor<4>,
    /// Additive attention mask `[B, 1, T, S]` (0 or `MASK_VALUE`), S = cached + new tokens.
    pub bias: Tensor<4>,
}

impl Attention {
    /// `x [B, T, hidden]` -> (`[B, T, hidden]`, keys/values `[B, kv_heads, S, head_dim]`
    /// including `past`).
    fn forward(&self, x: Tensor<3>, ctx: &LayerContext, past: Option<&LayerKv>) -> (Tensor<3>, LayerKv) {
        let [b, t, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let dtype = x.dtype();
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, head_dim]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        let q = apply_rotary(q, ctx.cos.clone(), ctx.sin.clone());
        let k = apply_rotary(k, ctx.cos.clone(), ctx.sin.clone());
        let (k, v) = match past {
            None => (k, v),
            Some(p) => (Tensor::cat(vec![p.k.clone(), k], 2), Tensor::cat(vec![p.v.clone(), v], 2)),
        };
        let kv = LayerKv { k: k.clone(), v: v.clone() };
        let s = k.dims()[2];
        let groups = self.num_heads / self.num_kv_heads;
        // Head h reads kv head h / groups (transformers' repeat_kv).
        let repeat = |y: Tensor<4>| {
            if groups == 1 {
                y
            } else {
                y.unsqueeze_dim::<5>(2)
                    .expand([b, self.num_kv_heads, groups, s, head_dim])
                    .reshape([b, self.num_heads, s, head_dim])
            }
        };
        let scale = (head_dim as f64).powf(-0.5);
        let scores = q.matmul(repeat(k).swap_dims(2, 3)).mul_scalar(scale) + ctx.bias.clone();
        let probs = softmax(scores.cast(DType::F32), 3).cast(dtype);
        let out = probs.matmul(repeat(v)).swap_dims(1, 2).reshape([b, t, hidden]);
        (self.o_proj.forward(out), kv)
    }
}

/// One pre-norm decoder block.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Grouped-query attention.
    pub self_attn: Attention,
    /// SwiGLU MLP without biases.
    pub mlp: GatedMlp,
    /// Before attention.
    pub input_layernorm: RmsNorm,
    /// Before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn forward(&self, x: Tensor<3>, ctx: &LayerContext, past: Option<&LayerKv>) -> (Tensor<3>, LayerKv) {
        let (attn, kv) = self.self_attn.forward(self.input_layernorm.forward(x.clone()), ctx, past);
        let x = x + attn;
        let x = x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x));
        (x, kv)
    }
}

/// Embedding, decoder layers and final norm (`model.*` / `model.language_model.*`).
#[derive(Module, Debug)]
pub struct TextModel {
    /// Token embedding `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
}

impl TextModel {
    /// A randomly initialised decoder.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let head_dim = config.head_dim();
        let kv = config.num_key_value_heads * head_dim;
        let eps = config.rms_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: linear(hidden, hidden, true, device),
                    k_proj: linear(hidden, kv, true, device),
                    v_proj: linear(hidden, kv, true, device),
                    o_proj: linear(hidden, hidden, false, device),
                    num_heads: config.num_attention_heads,
                    num_kv_heads: config.num_key_value_heads,
                },
                mlp: GatedMlp::new(hidden, config.intermediate_size, false, device),
                input_layernorm: RmsNorm::new(hidden, eps, device),
                post_attention_layernorm: RmsNorm::new(hidden, eps, device),
            })
            .collect();
        Self {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, hidden)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
                .init(device),
            layers,
            norm: RmsNorm::new(hidden, eps, device),
        }
    }

    /// `embeds [B, T, hidden]` -> final hidden states `[B, T, hidden]` (after the norm), and
    /// the keys/values of every layer including `past` (empty slice: no cache yet).
    pub fn forward(&self, embeds: Tensor<3>, ctx: &LayerContext, past: &[LayerKv]) -> (Tensor<3>, Vec<LayerKv>) {
        let mut x = embeds;
        let mut kvs = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let (y, kv) = layer.forward(x, ctx, past.get(i));
            x = y;
            kvs.push(kv);
        }
        (self.norm.forward(x), kvs)
    }
}
