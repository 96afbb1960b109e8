//! The Qwen2 decoder: pre-norm blocks with grouped-query attention (q/k/v biases, M-RoPE) and
//! a SwiGLU MLP, then a final RMSNorm.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Bool, Device, Tensor};

use crate::attention::attention;
use crate::config::TextConfig;
use crate::layers::{GatedMlp, RmsNorm, linear};
use crate::lora::LoraLinear;
use crate::rope::apply_rotary;
use crate::text::cache::LayerKv;

/// Grouped-query self-attention; each projection may carry a LoRA adapter.
#[derive(Module, Debug)]
pub struct Attention {
    /// `hidden -> heads * head_dim`, with bias.
    pub q_proj: LoraLinear,
    /// `hidden -> kv_heads * head_dim`, with bias.
    pub k_proj: LoraLinear,
    /// `hidden -> kv_heads * head_dim`, with bias.
    pub v_proj: LoraLinear,
    /// `heads * head_dim -> hidden`, no bias.
    pub o_proj: LoraLinear,
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
    /// Attention mask over the cache buffers, `[B, 1, G * T, capacity]`, true where a query
    /// does not read a key (see [`crate::attention::group_mask`]).
    pub mask: Tensor<4, Bool>,
    /// Tokens cached before this forward.
    pub past_len: usize,
    /// Positions of the cache buffers once this forward's tokens are written.
    pub capacity: usize,
}

impl Attention {
    /// `x [B, T, hidden]` -> (`[B, T, hidden]`, the layer's cache with this forward's keys and
    /// values written at `past_len..past_len + T`, `[B, kv_heads, capacity, head_dim]`).
    fn forward(&self, x: Tensor<3>, ctx: &LayerContext, past: Option<LayerKv>) -> (Tensor<3>, LayerKv) {
        let [b, t, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, head_dim]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        let q = apply_rotary(q, ctx.cos.clone(), ctx.sin.clone());
        let k = apply_rotary(k, ctx.cos.clone(), ctx.sin.clone());
        let kv = LayerKv::append(past, k, v, ctx.past_len, ctx.capacity);
        let out = attention(q, kv.k.clone(), kv.v.clone(), Some(ctx.mask.clone()));
        let out = out.swap_dims(1, 2).reshape([b, t, hidden]);
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
    fn forward(&self, x: Tensor<3>, ctx: &LayerContext, past: Option<LayerKv>) -> (Tensor<3>, LayerKv) {
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
                    q_proj: linear(hidden, hidden, true, device).into(),
                    k_proj: linear(hidden, kv, true, device).into(),
                    v_proj: linear(hidden, kv, true, device).into(),
                    o_proj: linear(hidden, hidden, false, device).into(),
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
    /// the keys/values of every layer including `past` (empty: no cache yet). The cache is
    /// taken by value so that each layer can write into its buffers in place.
    pub fn forward(&self, embeds: Tensor<3>, ctx: &LayerContext, past: Vec<LayerKv>) -> (Tensor<3>, Vec<LayerKv>) {
        let mut x = embeds;
        let mut kvs = Vec::with_capacity(self.layers.len());
        let mut past = past.into_iter();
        for layer in &self.layers {
            let (y, kv) = layer.forward(x, ctx, past.next());
            x = y;
            kvs.push(kv);
        }
        (self.norm.forward(x), kvs)
    }
}
