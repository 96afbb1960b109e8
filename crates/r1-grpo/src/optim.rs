//! AdamW with PyTorch's semantics and global gradient-norm clipping, over any burn module.
//!
//! Written here rather than taken from burn because (1) burn's clipping is per tensor while the
//! peers clip the global norm over all parameters, and (2) burn keys optimiser state by
//! `ParamId`, which changes when a model is reloaded from a Hugging Face checkpoint; this state
//! is keyed by the parameter's module path (`layers.0.mlp.up_proj.weight`), so resuming from a
//! checkpoint restores it exactly.
//!
//! One step, for each trainable parameter `p` with gradient `g` (PyTorch `torch.optim.AdamW`,
//! `clip_grad_norm_`):
//! * `n = sqrt(sum over all parameters of sum(g^2))`, `g <- g * min(1, max_norm / (n + 1e-6))`;
//! * `p <- p (1 - lr wd)`; `m <- b1 m + (1 - b1) g`; `v <- b2 v + (1 - b2) g^2`;
//! * `p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
//!
//! Two kinds of parameters are left alone: those under `frozen_prefixes` (`freeze_vision`: their
//! gradients are computed, then dropped here), and those without a gradient at all. The second is
//! how LoRA freezes its base: the base requires no gradient, so autodiff neither computes nor
//! keeps one (a prefix list would still pay for a full-size gradient per step), and only the
//! adapters reach this optimiser, in the norm and the update alike.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{GrpoError, Result};
use crate::fsio;

/// Added to the norm before dividing, as `torch.nn.utils.clip_grad_norm_` does.
const CLIP_EPS: f64 = 1e-6;

/// Hyper-parameters of AdamW (the learning rate comes from the schedule at each step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm bound; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
    /// Parameters under one of these module paths (`model.visual` covers `model.visual.*`, not
    /// `model.visual_extra`) are neither updated nor counted in the gradient norm (for example
    /// the vision tower).
    #[serde(default)]
    pub frozen_prefixes: Vec<String>,
}

impl Default for AdamWConfig {
    /// PyTorch's betas and epsilon, EasyR1's weight decay and clip.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
            max_grad_norm: Some(1.0),
            frozen_prefixes: Vec::new(),
        }
    }
}

/// The moments of one parameter, flattened to one dimension.
struct Moments {
    step: u64,
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

/// What one call to [`AdamW::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// False when the norm was not finite: nothing was updated.
    pub applied: bool,
}

/// AdamW over a module's parameters, state keyed by parameter path.
pub struct AdamW {
    config: AdamWConfig,
    moments: HashMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, moments: HashMap::new() }
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Applies one update with learning rate `lr`. A non-finite gradient norm updates nothing
    /// (the caller counts the skipped step). With a finite norm the moments stay finite, so an
    /// update can only make a weight non-finite through an absurd rate or weight decay; that is
    /// an error, and the caller keeps its model from before the step (so no checkpoint ever
    /// holds such a weight).
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> Result<(M, StepReport)> {
        let mut norm =
            NormVisitor { grads: &grads, frozen: &self.config.frozen_prefixes, path: Vec::new(), total: None };
        model.visit(&mut norm);
        let grad_norm = norm.total.map_or(0.0, |t| t.into_scalar::<f32>() as f64).sqrt();
        if !grad_norm.is_finite() {
            return Ok((model, StepReport { grad_norm, applied: false }));
        }
        let scale = match self.config.max_grad_norm {
            Some(max) => (max / (grad_norm + CLIP_EPS)).min(1.0),
            None => 1.0,
        };
        let mut mapper = UpdateMapper { optim: self, grads, lr, scale, path: Vec::new(), poison: None };
        let model = model.map(&mut mapper);
        if mapper.poison.is_some_and(|p| !p.into_scalar::<f32>().is_finite()) {
            return Err(GrpoError::Stopped(format!(
                "the update at learning rate {lr:e} made weights non-finite (gradient norm {grad_norm:.3e}); \
                 lower the learning rate or the weight decay"
            )));
        }
        Ok((model, StepReport { grad_norm, applied: true }))
    }

    /// Writes the moments and per-parameter step counts as safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut buffers: BTreeMap<String, (Vec<u8>, usize)> = BTreeMap::new();
        let mut steps: BTreeMap<&str, u64> = BTreeMap::new();
        for (name, m) in &self.moments {
            steps.insert(name, m.step);
            for (kind, t) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                let values = t.to_data().try_to_vec::<f32>().map_err(|e| GrpoError::file(path, format!("{e:?}")))?;
                let len = values.len();
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                buffers.insert(format!("{kind}.{name}"), (bytes, len));
            }
        }
        let views = buffers
            .iter()
            .map(|(k, (bytes, len))| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], bytes).map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| GrpoError::file(path, e))?;
        let meta = HashMap::from([(
            "steps".to_string(),
            serde_json::to_string(&steps).map_err(|e| GrpoError::file(path, e))?,
        )]);
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| GrpoError::file(path, e))?;
        fsio::write_atomic(path, &bytes)
    }

    /// Replaces the state with the one saved at `path`, placing the moments on `device`.
    pub fn load(&mut self, path: &Path, device: &Device) -> Result<()> {
        let bytes = fsio::read(path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| GrpoError::file(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| GrpoError::file(path, e))?;
        let steps_json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .ok_or_else(|| GrpoError::file(path, "no `steps` entry in the metadata: not an r1 optimiser state"))?;
        let steps: BTreeMap<String, u64> = serde_json::from_str(steps_json).map_err(|e| GrpoError::file(path, e))?;
        let tensor = |name: String| -> Result<Tensor<1>> {
            let view = st.tensor(&name).map_err(|e| GrpoError::file(path, format!("{name}: {e}")))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape().len() != 1 {
                return Err(GrpoError::file(path, format!("{name}: expected a 1-D f32 tensor")));
            }
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let len = values.len();
            Ok(Tensor::from_data(TensorData::new(values, [len]), device))
        };
        let mut moments = HashMap::new();
        for (name, step) in steps {
            let exp_avg = tensor(format!("exp_avg.{name}"))?;
            let exp_avg_sq = tensor(format!("exp_avg_sq.{name}"))?;
            moments.insert(name, Moments { step, exp_avg, exp_avg_sq });
        }
        self.moments = moments;
        Ok(())
    }
}

/// Whether `path` is one of the `frozen` module paths or lies under one.
fn is_frozen(frozen: &[String], path: &str) -> bool {
    frozen.iter().any(|p| path.strip_prefix(p.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')))
}

/// Sums the squared gradients of every trainable parameter (one device-side scalar, read once).
struct NormVisitor<'a> {
    grads: &'a GradientsParams,
    frozen: &'a [String],
    path: Vec<String>,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for NormVisitor<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if is_frozen(self.frozen, &self.path.join(".")) {
            return;
        }
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

struct UpdateMapper<'a> {
    optim: &'a mut AdamW,
    grads: GradientsParams,
    lr: f64,
    scale: f64,
    path: Vec<String>,
    /// Sum of `0 x w` over the updated weights: 0 when all are finite, NaN as soon as one is
    /// not (`0 x inf` is NaN), and unlike a sum of the weights it cannot overflow.
    poison: Option<Tensor<1>>,
}

impl UpdateMapper<'_> {
    fn update(&mut self, path: String, param: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        let c = &self.optim.config;
        let grad = if self.scale < 1.0 { grad * self.scale } else { grad };
        let m = self.optim.moments.remove(&path).unwrap_or_else(|| Moments {
            step: 0,
            exp_avg: grad.zeros_like(),
            exp_avg_sq: grad.zeros_like(),
        });
        let step = m.step + 1;
        let exp_avg = m.exp_avg * c.beta1 + grad.clone() * (1.0 - c.beta1);
        let exp_avg_sq = m.exp_avg_sq * c.beta2 + grad.square() * (1.0 - c.beta2);
        let bias1 = 1.0 - c.beta1.powi(step as i32);
        let bias2 = 1.0 - c.beta2.powi(step as i32);
        let denom = (exp_avg_sq.clone().sqrt() / bias2.sqrt()) + c.eps;
        let decayed = if c.weight_decay == 0.0 { param } else { param * (1.0 - self.lr * c.weight_decay) };
        let updated = decayed - exp_avg.clone() / denom * (self.lr / bias1);
        self.optim.moments.insert(path, Moments { step, exp_avg, exp_avg_sq });
        updated
    }
}

impl ModuleMapper for UpdateMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let path = self.path.join(".");
        let grad = if is_frozen(&self.optim.config.frozen_prefixes, &path) { None } else { self.grads.remove::<D>(id) };
        let tensor = match grad {
            None => tensor,
            Some(grad) => {
                let autodiff = tensor.is_autodiff();
                let require_grad = tensor.is_require_grad();
                let dims = tensor.dims();
                let n = tensor.shape().num_elements();
                let flat = self.update(path, tensor.inner().reshape([n]), grad.inner().reshape([n]));
                let zero = (flat.clone() * 0.0).sum();
                self.poison = Some(match self.poison.take() {
                    Some(p) => p + zero,
                    None => zero,
                });
                let updated: Tensor<D> = flat.reshape(dims);
                let updated = if autodiff { updated.autodiff() } else { updated };
                if require_grad { updated.require_grad() } else { updated }
            }
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}
