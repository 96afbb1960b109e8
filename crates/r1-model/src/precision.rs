//! The compute dtype: f32 everywhere (the CPU default), or bf16 weights and activations with
//! f32 kept where precision needs it, as transformers runs Qwen2.5-VL in bf16.
//!
//! The f32 islands live in the model code whatever the dtype: RMSNorm's statistics
//! ([`crate::layers::RmsNorm`]), the attention softmax ([`crate::attention`]), the vision
//! rotary embedding; the log-softmax of scoring casts the logits to f32 ([`crate::score`]).
//! Training keeps f32 master weights and AdamW moments: [`cast`] on an autodiff model records
//! one cast per parameter, so the gradients flow back to the f32 weights in f32.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};

use crate::model::Qwen2_5VlModel;

/// Dtype of weights and activations in the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[value(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout (the default; flex's fast path).
    #[default]
    F32,
    /// bfloat16 weights and activations, f32 islands (for GPU backends).
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// Bytes of one weight or activation element.
    pub fn bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::Bf16 => 2,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// `model` with every float parameter in `precision`'s dtype; parameters already in it are
/// shared, not copied. On an autodiff device the casts are part of the graph (parameter ids
/// kept), so `GradientsParams::from_grads(grads, &original)` finds f32 gradients for the f32
/// weights `model` was cast from.
pub fn cast(model: Qwen2_5VlModel, precision: Precision) -> Qwen2_5VlModel {
    model.map(&mut Caster { dtype: precision.dtype(), frozen_only: false })
}

/// `model` with the parameters that take no gradient stored in `precision`, the trained ones
/// left as they are: nothing updates a frozen weight, so it needs no f32 master copy (LoRA's
/// base in bf16 is half the memory, and the forward's cast of it is a no-op).
pub fn cast_frozen(model: Qwen2_5VlModel, precision: Precision) -> Qwen2_5VlModel {
    model.map(&mut Caster { dtype: precision.dtype(), frozen_only: true })
}

struct Caster {
    dtype: DType,
    frozen_only: bool,
}

impl ModuleMapper for Caster {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.dtype;
        if param.dtype() == dtype || (self.frozen_only && param.is_require_grad()) {
            return param;
        }
        param.map(|t| t.cast(dtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn names_read_and_print() {
        assert_eq!(serde_json::from_str::<Precision>("\"bf16\"").unwrap(), Precision::Bf16);
        assert_eq!(Precision::F32.to_string(), "f32");
        assert!(serde_json::from_str::<Precision>("\"fp16\"").is_err());
    }

    /// Every parameter changes dtype and keeps its id (what the optimiser keys moments by).
    #[test]
    fn cast_keeps_ids_and_changes_every_dtype() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gqa2_untied_windows");
        let (_, model) = crate::load_model(&fixture, &Device::flex()).unwrap();
        let ids = |m: &Qwen2_5VlModel| {
            let mut ids = Vec::new();
            m.visit(&mut IdDtypes(&mut ids));
            ids
        };
        let before = ids(&model);
        let after = ids(&cast(model, Precision::Bf16));
        assert_eq!(before.len(), after.len());
        for ((id0, d0), (id1, d1)) in before.iter().zip(&after) {
            assert_eq!(id0, id1);
            assert_eq!((*d0, *d1), (DType::F32, DType::BF16));
        }
    }

    struct IdDtypes<'a>(&'a mut Vec<(burn::module::ParamId, DType)>);

    impl burn::module::ModuleVisitor for IdDtypes<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id, param.val().dtype()));
        }
    }
}
