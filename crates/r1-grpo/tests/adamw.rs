//! AdamW against `torch.optim.AdamW` step by step (values from `scripts/adamw_golden.py`):
//! weight decay, bias correction, the global clip of `clip_grad_norm_`, a warm-up + cosine
//! learning rate and a frozen module, then the same run resumed from optimiser state saved
//! half way.

use std::ops::Range;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use r1_grpo::optim::{AdamW, AdamWConfig};
use r1_grpo::schedule::Schedule;
use serde::Deserialize;

/// Largest accepted `|got - want| / |want|`. The reference is float64 and r1 trains in float32
/// from the same float32 inputs, so the gap is float32 rounding over a few steps. Every parameter
/// in the fixture stays above 0.5 in magnitude, so no absolute floor is needed.
const REL_TOL: f64 = 1e-6;

#[derive(Deserialize)]
struct Golden {
    total_steps: u64,
    peak_lr: f64,
    warmup_ratio: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    max_grad_norm: f64,
    frozen_prefix: String,
    initial: Values,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    lr: f64,
    grad_norm: f64,
    grads: Values,
    params: Values,
}

/// One value per parameter of [`Net`], keyed by module path as in the fixture.
#[derive(Deserialize)]
struct Values {
    #[serde(rename = "layer.weight")]
    layer_weight: Vec<Vec<f64>>,
    #[serde(rename = "layer.bias")]
    layer_bias: Vec<f64>,
    #[serde(rename = "frozen.weight")]
    frozen_weight: Vec<Vec<f64>>,
}

#[derive(Module, Debug)]
struct Layer {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
struct Frozen {
    weight: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
struct Net {
    layer: Layer,
    frozen: Frozen,
}

fn golden() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adamw_golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn device() -> Device {
    Device::flex().autodiff()
}

/// The fixture's inputs are float32 values, so these casts are exact.
fn t2(rows: &[Vec<f64>], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

fn t1(xs: &[f64], device: &Device) -> Tensor<1> {
    let flat: Vec<f32> = xs.iter().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(flat, [xs.len()]), device)
}

/// Widened to f64, which is exact: equality here is bit-identity of the f32 values.
fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f64> {
    p.val().into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

impl Net {
    fn new(v: &Values, device: &Device) -> Self {
        Self {
            layer: Layer {
                weight: Param::from_tensor(t2(&v.layer_weight, device)),
                bias: Param::from_tensor(t1(&v.layer_bias, device)),
            },
            frozen: Frozen { weight: Param::from_tensor(t2(&v.frozen_weight, device)) },
        }
    }

    /// Gradients equal to `g`, through autodiff as in training: d/dp sum(p * g) = g exactly.
    /// The frozen parameter gets its gradient too, so that leaving it out is the optimiser's doing.
    fn gradients(&self, g: &Values, device: &Device) -> GradientsParams {
        let loss = (self.layer.weight.val() * t2(&g.layer_weight, device)).sum()
            + (self.layer.bias.val() * t1(&g.layer_bias, device)).sum()
            + (self.frozen.weight.val() * t2(&g.frozen_weight, device)).sum();
        GradientsParams::from_grads(loss.backward(), self)
    }
}

fn optimiser(g: &Golden) -> AdamW {
    AdamW::new(AdamWConfig {
        beta1: g.beta1,
        beta2: g.beta2,
        eps: g.eps,
        weight_decay: g.weight_decay,
        max_grad_norm: Some(g.max_grad_norm),
        frozen_prefixes: vec![g.frozen_prefix.clone()],
    })
}

/// Largest relative error of `got` against `want`, failing beyond [`REL_TOL`].
fn check(got: &[f64], want: &[f64], what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: f64 = 0.0;
    for (i, (a, e)) in got.iter().zip(want).enumerate() {
        let rel = (a - e).abs() / e.abs();
        assert!(rel <= REL_TOL, "{what}[{i}]: {a} vs torch {e} (relative error {rel:e})");
        worst = worst.max(rel);
    }
    worst
}

/// Runs the fixture's steps `range` from `net`, checking the learning rate, the reported norm
/// and every parameter after each step; returns the net and the largest relative error seen.
fn run(g: &Golden, optim: &mut AdamW, mut net: Net, range: Range<usize>, device: &Device) -> (Net, f64) {
    let schedule = Schedule::WarmupCosine { warmup_ratio: g.warmup_ratio };
    let frozen: Vec<f64> = g.initial.frozen_weight.iter().flatten().copied().collect();
    let mut worst: f64 = 0.0;
    for i in range {
        let step = &g.steps[i];
        let lr = schedule.lr(g.peak_lr, i as u64, g.total_steps);
        // Both sides evaluate the schedule in float64: only the last bits may differ.
        assert!((lr - step.lr).abs() <= 1e-12 * g.peak_lr, "step {i}: lr {lr} vs torch {}", step.lr);
        let grads = net.gradients(&step.grads, device);
        let (next, report) = optim.step(lr, net, grads).unwrap();
        net = next;
        assert!(report.applied, "step {i} skipped");
        worst = worst.max(check(&[report.grad_norm], &[step.grad_norm], &format!("step {i} grad_norm")));
        let weight: Vec<f64> = step.params.layer_weight.iter().flatten().copied().collect();
        worst = worst.max(check(&values(&net.layer.weight), &weight, &format!("step {i} layer.weight")));
        worst = worst.max(check(&values(&net.layer.bias), &step.params.layer_bias, &format!("step {i} layer.bias")));
        assert_eq!(values(&net.frozen.weight), frozen, "step {i}: frozen.weight moved");
    }
    (net, worst)
}

#[test]
fn every_step_matches_torch_adamw() {
    let g = golden();
    let device = device();
    let (_, worst) = run(&g, &mut optimiser(&g), Net::new(&g.initial, &device), 0..g.steps.len(), &device);
    println!("largest relative error against torch: {worst:e}");
}

#[test]
fn state_saved_half_way_resumes_exactly() {
    let g = golden();
    let device = device();
    let half = g.steps.len() / 2;
    let mut whole = optimiser(&g);
    let (net, _) = run(&g, &mut whole, Net::new(&g.initial, &device), 0..half, &device);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optimizer.safetensors");
    whole.save(&path).unwrap();
    let mut resumed = optimiser(&g);
    resumed.load(&path, &device).unwrap();

    let (continued, _) = run(&g, &mut whole, net.clone(), half..g.steps.len(), &device);
    let (reloaded, _) = run(&g, &mut resumed, net, half..g.steps.len(), &device);
    assert_eq!(values(&reloaded.layer.weight), values(&continued.layer.weight));
    assert_eq!(values(&reloaded.layer.bias), values(&continued.layer.bias));
}
