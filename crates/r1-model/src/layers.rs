//! Building blocks shared by the vision tower and the decoder: RMSNorm computed in f32, the
//! gated SiLU MLP, linear layers initialised like transformers, and the masked-score value.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{DType, Device, Tensor};

use crate::lora::LoraLinear;

/// The score of a masked key where attention forms its scores explicitly (under autodiff).
/// Finite (unlike `-inf`) so a row with every key masked (a left-padding query) stays finite
/// instead of becoming NaN and poisoning the next layer through `0 * NaN`; large enough that
/// `exp` underflows to exactly 0 in f32.
pub const MASK_VALUE: f32 = -1.0e9;

/// A linear layer with transformers' initialisation: weights N(0, 0.02), bias zero.
pub fn linear(d_input: usize, d_output: usize, bias: bool, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(d_input, d_output)
        .with_bias(bias)
        .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
        .init(device);
    layer.bias = layer.bias.map(|_| Initializer::Zeros.init([d_output], device));
    layer
}

/// Root-mean-square normalisation, `weight * x / sqrt(mean(x²) + eps)`, computed in f32
/// whatever the input dtype (as Qwen2RMSNorm does) and cast back before the scale.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Per-channel scale `[d]`.
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// A norm over `d` channels with unit scale.
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self { weight: Initializer::Ones.init([d], device), eps }
    }

    /// `[.., d]` -> `[.., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let inv_rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt().recip();
        (x * inv_rms).cast(dtype) * self.weight.val().unsqueeze()
    }
}

/// Gated MLP `down(silu(gate(x)) * up(x))`; the vision tower uses biases, the decoder not. Each
/// projection may carry a LoRA adapter.
#[derive(Module, Debug)]
pub struct GatedMlp {
    /// `d -> inner`, through SiLU.
    pub gate_proj: LoraLinear,
    /// `d -> inner`.
    pub up_proj: LoraLinear,
    /// `inner -> d`.
    pub down_proj: LoraLinear,
}

impl GatedMlp {
    /// A randomly initialised MLP.
    pub fn new(d: usize, inner: usize, bias: bool, device: &Device) -> Self {
        Self {
            gate_proj: linear(d, inner, bias, device).into(),
            up_proj: linear(d, inner, bias, device).into(),
            down_proj: linear(inner, d, bias, device).into(),
        }
    }

    /// `[.., d]` -> `[.., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
