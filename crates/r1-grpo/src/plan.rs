//! The memory plan of a GRPO run: what the configuration will hold on its device, estimated
//! from the model's shape and the configuration before anything is loaded, so a run that
//! cannot fit is refused with the numbers instead of dying hours in (`cargo xtask train
//! --dry-run` prints it and stops).
//!
//! Weights, gradients and AdamW's two moments are f32 whatever `model.dtype`; with `bf16` the
//! forward passes run on a bf16 copy of the weights (kept by the update's graph), and the
//! reference model, the KV cache and the activations are bf16, except the attention scores
//! and the logits' log-softmax, which stay f32. Weights, gradients, moments and the reference
//! model are exact counts. The generation KV cache is exact for the longest prompt
//! given. Training activations are an estimate of what autodiff keeps for one micro-batch:
//! per token and layer about `10 hidden + 4 intermediate` values (the inputs of every
//! projection, the MLP's gate, up and activation, the residual stream), the attention
//! probabilities (materialised under autodiff: scores and softmax, per head), the vision
//! tower's blocks the same way when it is trained, and the micro-batch's logits with their
//! log-softmax and its gradient (12 bytes per position and vocabulary entry, measured); less
//! with `model.gradient_checkpointing`, which recomputes the memory-bound ones.
//!
//! With LoRA (`[lora]`) only the adapters train: gradients and moments are counted for their
//! parameters alone (the frozen base gets no gradient at all), the reference model is the base
//! with the adapters off (no copy), and a vision tower without adapters keeps no activations.

use serde::Serialize;

use r1_model::Precision;
use r1_model::lora::LoraConfig;

use crate::config::TrainConfig;

const F32: u64 = 4;

/// What autodiff keeps, per token and layer in units of the hidden and the MLP width, and per
/// attention score and logit (see the module documentation).
struct Kept {
    hidden: u64,
    mlp: u64,
    /// Copies of the attention matrix: scores and probabilities.
    attention: u64,
    /// Bytes per logit position and vocabulary entry: logits, log-softmax, gradient.
    logit_bytes: u64,
}

const PLAIN: Kept = Kept { hidden: 10, mlp: 4, attention: 2, logit_bytes: 12 };
/// With burn's gradient checkpointing the outputs of memory-bound operations (norms,
/// activations, softmax, log-softmax) are recomputed, the matmuls' kept.
const CHECKPOINTED: Kept = Kept { hidden: 6, mlp: 2, attention: 1, logit_bytes: 8 };

/// What the plan needs to know of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelShape {
    pub text_params: u64,
    pub vision_params: u64,
    pub layers: u64,
    pub hidden: u64,
    pub intermediate: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab: u64,
    pub vision_layers: u64,
    pub vision_hidden: u64,
    pub vision_intermediate: u64,
    pub vision_heads: u64,
}

/// The prompts the plan is sized for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PromptShape {
    /// Tokens of the longest prompt, image tokens included.
    pub tokens: u64,
    /// Vision patches of that prompt's images (before merging).
    pub patches: u64,
}

/// One line of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanRow {
    pub what: &'static str,
    pub bytes: u64,
    /// How the figure was reached.
    pub how: String,
}

/// Memory per device, by what holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub rows: Vec<PlanRow>,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.bytes).sum()
    }

    /// The plan as a Markdown table, with the total.
    pub fn table(&self) -> String {
        let mut out = String::from("| memory | size | how |\n|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!("| {} | {} | {} |\n", r.what, human(r.bytes), r.how));
        }
        out.push_str(&format!("| total | {} | |\n", human(self.total())));
        out
    }
}

pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// `bytes` in MiB below a GiB, else in GiB: the tiny model's rows and a 7B model's both read.
pub fn human(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", gib(bytes))
    }
}

/// Parameters of the adapters `lora` puts on `model`: `r (in + out)` per adapted projection.
pub fn lora_parameters(lora: &LoraConfig, model: &ModelShape) -> u64 {
    let (h, i) = (model.hidden, model.intermediate);
    let (q, kv) = (model.heads * model.head_dim, model.kv_heads * model.head_dim);
    let (vh, vi) = (model.vision_hidden, model.vision_intermediate);
    let text = |kind: &str| match kind {
        "q_proj" => h + q,
        "k_proj" | "v_proj" => h + kv,
        "o_proj" => q + h,
        "gate_proj" | "up_proj" | "down_proj" => h + i,
        _ => 0,
    };
    let vision = |kind: &str| match kind {
        "qkv" => vh + 3 * vh,
        "proj" => 2 * vh,
        "gate_proj" | "up_proj" | "down_proj" => vh + vi,
        _ => 0,
    };
    lora.target_modules
        .iter()
        .map(|t| {
            let per_rank = model.layers * text(t) + if lora.vision { model.vision_layers * vision(t) } else { 0 };
            lora.r as u64 * per_rank
        })
        .sum()
}

/// The plan of `config` for `model` and prompts up to `prompt`: weights, the reference copy
/// (with a KL term), gradients and AdamW moments of the trained parameters, the KV cache of
/// one generation batch, and the activations of one training micro-batch.
pub fn memory_plan(config: &TrainConfig, model: &ModelShape, prompt: PromptShape) -> MemoryPlan {
    let base = model.text_params + model.vision_params;
    let adapters = config.lora.as_ref().map_or(0, |l| lora_parameters(l, model));
    let params = base + adapters;
    let trainable = match &config.lora {
        Some(_) => adapters,
        None if config.model.freeze_vision => model.text_params,
        None => params,
    };
    let dtype = config.model.dtype;
    let elem = dtype.bytes();
    // Under LoRA the frozen base is stored in the forward dtype; only trained weights need f32.
    let (stored, how, cast) = match config.lora {
        Some(_) => (
            base * elem + adapters * F32,
            format!("{base} frozen parameters in {dtype} + {adapters} of LoRA adapters in f32"),
            adapters,
        ),
        None => (params * F32, format!("{params} parameters, f32"), params),
    };
    let mut rows = vec![PlanRow { what: "weights", bytes: stored, how }];
    if dtype != Precision::F32 {
        rows.push(PlanRow {
            what: "forward weights",
            bytes: cast * elem,
            how: format!("the f32 weights cast to {dtype} for the forward passes"),
        });
    }
    if config.algorithm.loss.kl_coef > 0.0 {
        rows.push(match config.lora {
            Some(_) => PlanRow {
                what: "reference model",
                bytes: 0,
                how: "the base with the LoRA adapters off: no copy".into(),
            },
            None => PlanRow {
                what: "reference model",
                bytes: params * elem,
                how: format!("a second copy in {dtype} (kl_coef > 0)"),
            },
        });
    }
    rows.push(PlanRow { what: "gradients", bytes: trainable * F32, how: format!("{trainable} trained parameters") });
    rows.push(PlanRow { what: "AdamW moments", bytes: 2 * trainable * F32, how: "two per trained parameter".into() });

    let r = &config.rollout;
    let group = r.group_size as u64;
    let chunk = r.generation_chunks().iter().map(|c| c.len() as u64).max().unwrap_or(0);
    let sequences = chunk * group;
    let length = prompt.tokens + r.max_response_tokens as u64;
    let kv = sequences * length * model.layers * 2 * model.kv_heads * model.head_dim * elem;
    rows.push(PlanRow {
        what: "generation KV cache",
        bytes: kv,
        how: format!("{chunk} prompts x G {group} = {sequences} sequences x {length} tokens"),
    });

    let kept = if config.model.gradient_checkpointing { CHECKPOINTED } else { PLAIN };
    let micro = config.update.micro_batch_size as u64;
    let t = r.max_response_tokens as u64;
    // Completions of one prompt share its forward (shared-prefix scoring).
    let prompts = micro.div_ceil(group);
    let tokens = prompts * prompt.tokens + micro * t;
    let per_token = kept.hidden * model.hidden + kept.mlp * model.intermediate;
    let attention = model.heads * (prompts * prompt.tokens.pow(2) + micro * t * (prompt.tokens + t));
    let decoder = model.layers * (tokens * per_token * elem + kept.attention * attention * F32);
    let logits = micro * t * model.vocab * kept.logit_bytes;
    // A tower without gradients (frozen by LoRA) records no graph; `freeze_vision` only drops
    // its gradients at the optimiser, so its activations are still kept.
    let vision_untrained = config.lora.as_ref().is_some_and(|l| !l.vision);
    let vision = if config.model.freeze_vision || vision_untrained {
        0
    } else {
        let patches = prompts * prompt.patches;
        let per_patch = kept.hidden * model.vision_hidden + kept.mlp * model.vision_intermediate;
        // Full attention over each image: the window blocks hold less, so this is an upper bound.
        let attention = model.vision_heads * prompts * prompt.patches.pow(2);
        model.vision_layers * (patches * per_patch * elem + kept.attention * attention * F32)
    };
    rows.push(PlanRow {
        what: "training activations",
        bytes: decoder + logits + vision,
        how: format!(
            "one micro-batch ({micro} completions of {t} tokens after {prompts} prompts): decoder {}, logits {}, \
             vision {} (estimate)",
            human(decoder),
            human(logits),
            human(vision)
        ),
    });
    MemoryPlan { rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ModelShape {
        ModelShape {
            text_params: 1000,
            vision_params: 200,
            layers: 2,
            hidden: 8,
            intermediate: 16,
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            vocab: 50,
            vision_layers: 1,
            vision_hidden: 4,
            vision_intermediate: 8,
            vision_heads: 1,
        }
    }

    fn bytes(plan: &MemoryPlan, what: &str) -> u64 {
        plan.rows.iter().find(|r| r.what == what).map_or(0, |r| r.bytes)
    }

    #[test]
    fn exact_rows_follow_the_configuration() {
        let mut c = TrainConfig::tiny();
        let prompt = PromptShape { tokens: 10, patches: 16 };
        let plan = memory_plan(&c, &shape(), prompt);
        assert_eq!(bytes(&plan, "weights"), 1200 * 4);
        assert_eq!(bytes(&plan, "reference model"), 1200 * 4);
        assert_eq!(bytes(&plan, "AdamW moments"), 2 * 1200 * 4);
        // 4 prompts x G 4 x (10 + 32) tokens x 2 layers x (k, v) x 1 head x 4 wide x 4 bytes.
        assert_eq!(bytes(&plan, "generation KV cache"), 16 * 42 * 2 * 2 * 4 * 4);

        c.model.freeze_vision = true;
        c.algorithm.loss.kl_coef = 0.0;
        c.rollout.generation_batch_prompts = Some(1);
        let plan = memory_plan(&c, &shape(), prompt);
        assert_eq!(bytes(&plan, "reference model"), 0);
        assert_eq!(bytes(&plan, "gradients"), 1000 * 4);
        assert_eq!(bytes(&plan, "generation KV cache"), 4 * 42 * 2 * 2 * 4 * 4);
        assert_eq!(plan.total(), plan.rows.iter().map(|r| r.bytes).sum::<u64>());
    }

    /// Under LoRA only the adapters have gradients and moments, and the reference costs nothing.
    #[test]
    fn lora_trains_the_adapters_only() {
        let mut c = TrainConfig::tiny();
        c.lora = Some(LoraConfig { r: 2, ..LoraConfig::default() });
        let plan = memory_plan(&c, &shape(), PromptShape { tokens: 10, patches: 16 });
        // 2 layers x rank 2 x (q 8+8, k 8+4, v 8+4, o 8+8, gate/up/down 3 x (8+16) = 128).
        let adapters = 2 * 2 * 128;
        assert_eq!(lora_parameters(c.lora.as_ref().unwrap(), &shape()), adapters);
        assert_eq!(bytes(&plan, "weights"), (1200 + adapters) * 4);
        assert_eq!(bytes(&plan, "reference model"), 0);
        assert_eq!(bytes(&plan, "gradients"), adapters * 4);
        assert_eq!(bytes(&plan, "AdamW moments"), 2 * adapters * 4);
        let full = memory_plan(&TrainConfig::tiny(), &shape(), PromptShape { tokens: 10, patches: 16 });
        assert!(bytes(&plan, "training activations") < bytes(&full, "training activations"), "no vision graph");
    }

    /// What LoRA saves on Qwen2.5-VL-7B's shape (the README's figures): rank 16 on the seven
    /// decoder projections is 40.4M parameters, and the 8.29B-parameter model's weights,
    /// reference, gradients and moments shrink from 20 to about 4 bytes per parameter in f32,
    /// 2 in bf16 (the frozen base stored in bf16).
    #[test]
    fn lora_on_the_7b_shape() {
        let qwen7b = ModelShape {
            text_params: 7_615_616_512,
            vision_params: 676_550_144,
            layers: 28,
            hidden: 3584,
            intermediate: 18944,
            heads: 28,
            kv_heads: 4,
            head_dim: 128,
            vocab: 152_064,
            vision_layers: 32,
            vision_hidden: 1280,
            vision_intermediate: 3420,
            vision_heads: 16,
        };
        let mut c = TrainConfig::paper();
        c.lora = Some(LoraConfig { r: 16, ..LoraConfig::default() });
        let adapters = lora_parameters(c.lora.as_ref().unwrap(), &qwen7b);
        assert_eq!(adapters, 16 * 28 * (2 * (3584 + 3584) + 2 * (3584 + 512) + 3 * (3584 + 18944)));
        let prompt = PromptShape { tokens: 400, patches: 1024 };
        let fixed = |plan: &MemoryPlan| {
            ["weights", "forward weights", "reference model", "gradients", "AdamW moments"]
                .iter()
                .map(|w| bytes(plan, w))
                .sum::<u64>()
        };
        let lora = fixed(&memory_plan(&c, &qwen7b, prompt));
        c.model.dtype = Precision::F32;
        let lora_f32 = fixed(&memory_plan(&c, &qwen7b, prompt));
        let full = fixed(&memory_plan(&TrainConfig::paper(), &qwen7b, prompt));
        println!(
            "7B, LoRA r 16: adapters {adapters}, fixed {:.1} GiB in bf16, {:.1} GiB in f32; full fine-tuning {:.1} GiB",
            gib(lora),
            gib(lora_f32),
            gib(full)
        );
        assert!(gib(full) > 150.0 && gib(lora_f32) < 32.0 && gib(lora) < 17.0);
    }

    /// bf16 halves what only the forward passes read (the reference, the KV cache) and adds
    /// the bf16 copy of the weights; the f32 master weights, gradients and moments stay.
    #[test]
    fn bf16_halves_the_forward_state_not_the_master_state() {
        let mut c = TrainConfig::tiny();
        let prompt = PromptShape { tokens: 10, patches: 16 };
        let f32 = memory_plan(&c, &shape(), prompt);
        c.model.dtype = Precision::Bf16;
        let bf16 = memory_plan(&c, &shape(), prompt);
        for what in ["weights", "gradients", "AdamW moments"] {
            assert_eq!(bytes(&bf16, what), bytes(&f32, what), "{what}");
        }
        assert_eq!(bytes(&f32, "forward weights"), 0);
        assert_eq!(bytes(&bf16, "forward weights"), 1200 * 2);
        for what in ["reference model", "generation KV cache"] {
            assert_eq!(2 * bytes(&bf16, what), bytes(&f32, what), "{what}");
        }
        let activations = |p: &MemoryPlan| bytes(p, "training activations");
        assert!(activations(&bf16) < activations(&f32) && 2 * activations(&bf16) > activations(&f32));

        c.lora = Some(LoraConfig { r: 2, ..LoraConfig::default() });
        let lora = memory_plan(&c, &shape(), prompt);
        let adapters = lora_parameters(c.lora.as_ref().unwrap(), &shape());
        assert_eq!(bytes(&lora, "weights"), 1200 * 2 + adapters * 4, "the frozen base in bf16");
        assert_eq!(bytes(&lora, "forward weights"), adapters * 2);
    }

    #[test]
    fn checkpointing_lowers_the_activations_only() {
        let mut c = TrainConfig::tiny();
        let prompt = PromptShape { tokens: 10, patches: 16 };
        let plain = memory_plan(&c, &shape(), prompt);
        c.model.gradient_checkpointing = true;
        let checkpointed = memory_plan(&c, &shape(), prompt);
        for (a, b) in plain.rows.iter().zip(&checkpointed.rows) {
            if a.what == "training activations" {
                assert!(b.bytes < a.bytes);
            } else {
                assert_eq!(a.bytes, b.bytes, "{}", a.what);
            }
        }
    }

    #[test]
    fn activations_grow_with_the_micro_batch_and_the_vocabulary() {
        let c = TrainConfig::tiny();
        let prompt = PromptShape { tokens: 10, patches: 16 };
        let base = bytes(&memory_plan(&c, &shape(), prompt), "training activations");
        let mut wide = shape();
        wide.vocab *= 10;
        assert!(bytes(&memory_plan(&c, &wide, prompt), "training activations") > base);
        let mut bigger = c.clone();
        bigger.update.micro_batch_size *= 2;
        bigger.update.prompts_per_update *= 2;
        bigger.rollout.prompts_per_rollout *= 2;
        assert!(bytes(&memory_plan(&bigger, &shape(), prompt), "training activations") > base);
    }
}
