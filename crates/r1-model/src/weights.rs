//! Hugging Face checkpoint directories: `config.json` plus safetensors weights, single file
//! (`model.safetensors`) or sharded (`model.safetensors.index.json` naming the shards).
//!
//! Two key layouts exist: the original release (`visual.*`, `model.layers.*`,
//! `model.embed_tokens`, `model.norm`, `lm_head`) and the nested one of transformers 4.5x
//! exports (`model.visual.*`, `model.language_model.*`, `lm_head`); both load. Weights are
//! converted to f32 whatever their dtype on disk (f32, bf16, f16). PyTorch stores `Linear`
//! weights `[out, in]` and burn `[in, out]`: they are transposed on the way in and out; the
//! Conv3d patch-embedding kernel `[hidden, C, T, P, P]` is flattened to the equivalent matmul.
//!
//! Shards are read one at a time, so the peak memory is the model plus one shard.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::Value;

use crate::config::Qwen2_5VlConfig;
use crate::error::ModelError;
use crate::model::Qwen2_5VlModel;

/// The single-file weights name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The shard index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The config name.
pub const CONFIG_FILE: &str = "config.json";

/// Which key layout a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `visual.*`, `model.*`, `lm_head.*`.
    Original,
    /// `model.visual.*`, `model.language_model.*`, `lm_head.*`.
    Nested,
}

impl Layout {
    fn detect<'a>(mut names: impl Iterator<Item = &'a str>) -> Self {
        if names.any(|n| n.starts_with("model.language_model.") || n.starts_with("model.visual.")) {
            Self::Nested
        } else {
            Self::Original
        }
    }

    /// Original key -> key in this layout.
    fn key_for(self, key: &str) -> String {
        match self {
            Self::Original => key.to_string(),
            Self::Nested => {
                if key.starts_with("visual.") {
                    format!("model.{key}")
                } else if let Some(rest) = key.strip_prefix("model.") {
                    format!("model.language_model.{rest}")
                } else {
                    key.to_string()
                }
            }
        }
    }
}

/// A burn module path (`visual.merger.mlp_0.weight`) -> the original checkpoint key
/// (`visual.merger.mlp.0.weight`). The struct fields are named after the keys; only the
/// merger's `nn.Sequential` indices cannot be Rust field names.
fn original_key(burn_path: &str) -> String {
    burn_path.replace("merger.mlp_0.", "merger.mlp.0.").replace("merger.mlp_2.", "merger.mlp.2.")
}

/// The key of the patch-embedding kernel, stored 5-D on disk.
const PATCH_EMBED_KEY: &str = "visual.patch_embed.proj.weight";

/// How a parameter is laid out on disk relative to burn.
#[derive(Debug, Clone, PartialEq)]
enum DiskForm {
    /// Same shape, same order.
    Same,
    /// burn `[in, out]`, disk `[out, in]`.
    Transposed,
    /// burn `[in, out]`, disk `[out, ...kernel]` with `in = prod(kernel)`.
    Conv(Vec<usize>),
}

impl DiskForm {
    fn disk_shape(&self, burn_shape: &[usize]) -> Vec<usize> {
        match self {
            Self::Same => burn_shape.to_vec(),
            Self::Transposed => burn_shape.iter().rev().copied().collect(),
            Self::Conv(shape) => shape.clone(),
        }
    }
}

/// Tracks the module path during a traversal: (field name, type of the struct holding it).
#[derive(Default)]
struct PathStack(Vec<(String, String)>);

impl PathStack {
    fn enter(&mut self, name: &str, container: &str) {
        self.0.push((name.to_string(), container.to_string()));
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    fn key(&self) -> String {
        original_key(&self.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join("."))
    }

    /// Whether the path runs through a LoRA adapter: adapters are not part of a Hugging Face
    /// checkpoint (they live in PEFT's files, see [`crate::lora`]).
    fn in_adapter(&self) -> bool {
        self.0.iter().any(|(n, c)| n == "lora" && c == "Struct:LoraLinear")
    }

    /// The disk form of the parameter at the top of the stack.
    fn form(&self, key: &str, conv_shape: &[usize]) -> DiskForm {
        let in_linear = matches!(self.0.last(),
            Some((n, c)) if n == "weight" && (c == "Struct:Linear" || c == "Struct:LoraLinear"));
        if key == PATCH_EMBED_KEY {
            DiskForm::Conv(conv_shape.to_vec())
        } else if in_linear {
            DiskForm::Transposed
        } else {
            DiskForm::Same
        }
    }
}

/// Lists every parameter of a model with its original key, burn shape and disk form.
struct Inventory {
    path: PathStack,
    conv_shape: Vec<usize>,
    params: BTreeMap<String, (Vec<usize>, DiskForm)>,
}

impl ModuleVisitor for Inventory {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.in_adapter() {
            return;
        }
        let key = self.path.key();
        let form = self.path.form(&key, &self.conv_shape);
        self.params.insert(key, (param.lazy_shape().to_vec(), form));
    }
}

/// Replaces the parameters found in one safetensors file.
struct Loader<'a> {
    path: PathStack,
    conv_shape: Vec<usize>,
    file: &'a Path,
    tensors: &'a SafeTensors<'a>,
    layout: Layout,
    loaded: &'a mut BTreeSet<String>,
    error: Option<ModelError>,
}

/// Decodes a little-endian f32 / bf16 / f16 / f64 buffer to f32.
pub(crate) fn to_f32(view: &TensorView<'_>, name: &str, file: &Path) -> Result<Vec<f32>, ModelError> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => {
            data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32).collect()
        }
        other => {
            return Err(ModelError::Safetensors {
                path: file.to_path_buf(),
                message: format!("tensor {name} has dtype {other:?}; expected F32, BF16, F16 or F64"),
            });
        }
    })
}

impl Loader<'_> {
    fn tensor<const D: usize>(
        &self,
        key: &str,
        burn_shape: &[usize],
        device: &Device,
    ) -> Result<Option<Tensor<D>>, ModelError> {
        let name = self.layout.key_for(key);
        let Ok(view) = self.tensors.tensor(&name) else {
            return Ok(None);
        };
        let form = self.path.form(key, &self.conv_shape);
        let expected = form.disk_shape(burn_shape);
        if view.shape() != expected.as_slice() {
            return Err(ModelError::ShapeMismatch {
                path: self.file.to_path_buf(),
                name,
                expected,
                found: view.shape().to_vec(),
            });
        }
        let values = to_f32(&view, &name, self.file)?;
        let values = match form {
            DiskForm::Same => values,
            // Transposed on the host: a transposed view would be copied back to contiguous
            // memory by every `Linear::forward` that reads it.
            DiskForm::Transposed | DiskForm::Conv(_) => transpose(&values, burn_shape[1], burn_shape[0]),
        };
        Ok(Some(Tensor::<D>::from_data(TensorData::new(values, burn_shape.to_vec()), device)))
    }
}

/// Row-major `[rows, cols]` values -> row-major `[cols, rows]`.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(values.len(), rows * cols);
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() || self.path.in_adapter() {
            return param;
        }
        let key = self.path.key();
        let shape = param.lazy_shape().to_vec();
        match self.tensor::<D>(&key, &shape, &param.lazy_device()) {
            Ok(Some(tensor)) => {
                self.loaded.insert(key);
                let id = param.id;
                param.transform_for_load(tensor, id)
            }
            Ok(None) => param,
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}

/// The weight files of a checkpoint directory: the shards named by the index, or the single
/// file.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json { path: index.clone(), source })?;
        let map = value
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ModelError::Config { path: index.clone(), message: "no weight_map object".into() })?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file.as_str().filter(|f| !f.contains('/') && !f.contains('\\')).ok_or_else(|| {
                ModelError::Config { path: index.clone(), message: format!("weight_map[{name:?}] is not a file name") }
            })?;
            files.insert(dir.join(file));
        }
        return Ok(files.into_iter().collect());
    }
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(ModelError::io(
        single,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {WEIGHTS_FILE} nor {INDEX_FILE} in the checkpoint"),
        ),
    ))
}

/// Parameters of a checkpoint, from its weight files' headers (no tensor is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCounts {
    /// The decoder, its embedding and LM head.
    pub text: u64,
    /// The vision tower and its merger (`visual.*`).
    pub vision: u64,
}

/// Counts the parameters of the checkpoint in `dir` by reading only the safetensors headers,
/// so a memory plan for a 7B model costs kilobytes of reading. A tied checkpoint that also
/// stores `lm_head.weight` (some exporters copy the embedding) counts it once.
pub fn parameter_counts(dir: &Path) -> Result<ParameterCounts, ModelError> {
    use std::io::Read;
    let config = Qwen2_5VlConfig::from_file(&dir.join(CONFIG_FILE))?;
    let mut counts = ParameterCounts { text: 0, vision: 0 };
    for file in weight_files(dir)? {
        let bad = |message: String| ModelError::Safetensors { path: file.clone(), message };
        let mut f = std::fs::File::open(&file).map_err(|e| ModelError::io(&file, e))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(|e| ModelError::io(&file, e))?;
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| bad("header length out of range".into()))?;
        // The header is JSON; a multi-gigabyte one is a corrupt file, not a checkpoint.
        if len > 100 << 20 {
            return Err(bad(format!("header of {len} bytes")));
        }
        let mut header = vec![0u8; len];
        f.read_exact(&mut header).map_err(|e| ModelError::io(&file, e))?;
        let header: BTreeMap<String, Value> =
            serde_json::from_slice(&header).map_err(|source| ModelError::Json { path: file.clone(), source })?;
        for (name, entry) in header.iter().filter(|(name, _)| *name != "__metadata__") {
            if config.tie_word_embeddings && name == "lm_head.weight" {
                continue;
            }
            let shape = entry
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|dims| dims.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
                .ok_or_else(|| bad(format!("tensor {name}: no shape")))?;
            let n: u64 = shape.iter().product();
            if name.starts_with("visual.") || name.starts_with("model.visual.") {
                counts.vision += n;
            } else {
                counts.text += n;
            }
        }
    }
    Ok(counts)
}

fn conv_shape(config: &Qwen2_5VlConfig) -> Vec<usize> {
    let v = &config.vision;
    vec![v.hidden_size, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size]
}

fn inventory(model: &Qwen2_5VlModel, config: &Qwen2_5VlConfig) -> BTreeMap<String, (Vec<usize>, DiskForm)> {
    let mut inv = Inventory { path: PathStack::default(), conv_shape: conv_shape(config), params: BTreeMap::new() };
    model.visit(&mut inv);
    inv.params
}

/// Loads `dir/config.json` and the weights beside it onto `device`, in f32.
///
/// Every tensor the model needs must be present with the shape the config implies; a tensor
/// the model does not have is an error too (except `lm_head.weight` in a tied checkpoint,
/// which some exporters write as a copy of the embedding).
pub fn load_model(dir: &Path, device: &Device) -> Result<(Qwen2_5VlConfig, Qwen2_5VlModel), ModelError> {
    let config = Qwen2_5VlConfig::from_file(&dir.join(CONFIG_FILE))?;
    let files = weight_files(dir)?;
    let mut model = Qwen2_5VlModel::new(&config, device);
    let expected = inventory(&model, &config);
    let mut loaded = BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut layout = Layout::Original;
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| ModelError::io(file, e))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: file.clone(),
            message: format!("not a valid safetensors file: {e}"),
        })?;
        layout = Layout::detect(tensors.names().into_iter());
        for name in tensors.names() {
            let known = expected.keys().any(|k| layout.key_for(k) == name);
            if !(known || config.tie_word_embeddings && name == "lm_head.weight") {
                unexpected.push(name.to_string());
            }
        }
        let mut loader = Loader {
            path: PathStack::default(),
            conv_shape: conv_shape(&config),
            file,
            tensors: &tensors,
            layout,
            loaded: &mut loaded,
            error: None,
        };
        model = model.map(&mut loader);
        if let Some(e) = loader.error {
            return Err(e);
        }
    }
    let missing: Vec<String> = expected.keys().filter(|k| !loaded.contains(*k)).map(|k| layout.key_for(k)).collect();
    if !missing.is_empty() {
        return Err(ModelError::MissingTensors { dir: dir.to_path_buf(), names: missing });
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(ModelError::UnexpectedTensors { dir: dir.to_path_buf(), names: unexpected });
    }
    Ok((config, model))
}

/// Collects every parameter as (original key, disk shape, f32 values in disk order).
struct Collector {
    path: PathStack,
    conv_shape: Vec<usize>,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let key = self.path.key();
        let form = self.path.form(&key, &self.conv_shape);
        let tensor = param.val();
        let shape = form.disk_shape(&tensor.dims());
        let tensor = if form == DiskForm::Same { tensor } else { tensor.transpose() };
        let values = tensor.into_data().try_into_vec_as::<f32>().expect("converted to f32");
        self.tensors.push((key, shape, values));
    }
}

/// Every parameter's gradient in `grads` by module path (`model.layers.0.mlp.up_proj.weight`),
/// with the parameter's own dtype, for comparing two ways of computing a gradient parameter by
/// parameter. Parameters without a gradient are left out.
pub fn gradients_by_path(module: &impl Module, grads: &GradientsParams) -> BTreeMap<String, (DType, TensorData)> {
    struct Grads<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        found: BTreeMap<String, (DType, TensorData)>,
    }
    impl ModuleVisitor for Grads<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.found.insert(self.path.join("."), (param.val().dtype(), g.into_data()));
            }
        }
    }
    let mut visitor = Grads { grads, path: Vec::new(), found: BTreeMap::new() };
    module.visit(&mut visitor);
    visitor.found
}

/// Writes `bytes` to `path` atomically (see [`r1_data::fsutil::write_file_atomic`]), so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    r1_data::fsutil::write_atomic(path, bytes).map_err(|e| ModelError::io(path, e))
}

/// Saves `model` as a Hugging Face checkpoint directory: `config.json` and a single f32
/// `model.safetensors` with the original keys (what transformers and [`load_model`] read).
/// A tied model writes no `lm_head.weight`. Each file is written atomically. A model carrying
/// LoRA adapters is refused rather than saved without them: merge them first
/// ([`crate::lora::merge`]) or save them on their own ([`crate::lora::save_adapters`]).
pub fn save_model(model: &Qwen2_5VlModel, config: &Qwen2_5VlConfig, dir: &Path) -> Result<(), ModelError> {
    if crate::lora::has_adapters(model) {
        return Err(ModelError::Lora {
            path: dir.to_path_buf(),
            message: "the model carries adapters, which a full checkpoint would leave out: merge them first".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut collector = Collector { path: PathStack::default(), conv_shape: conv_shape(config), tensors: Vec::new() };
    model.visit(&mut collector);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = collector
        .tensors
        .into_iter()
        .map(|(key, shape, values)| (key, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(key, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (key.clone(), v)).map_err(|e| {
                ModelError::Safetensors { path: dir.join(WEIGHTS_FILE), message: format!("tensor {key}: {e}") }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
    let weights = safetensors::serialize(views, metadata).map_err(|e| ModelError::Safetensors {
        path: dir.join(WEIGHTS_FILE),
        message: format!("cannot serialise: {e}"),
    })?;
    write_atomic(&dir.join(WEIGHTS_FILE), &weights)?;
    write_config(config, dir)
}

/// Writes `dir/config.json` in Hugging Face's form, atomically.
pub fn write_config(config: &Qwen2_5VlConfig, dir: &Path) -> Result<(), ModelError> {
    let config_text = serde_json::to_string_pretty(&config.to_hf_json()).expect("JSON values serialise");
    write_atomic(&dir.join(CONFIG_FILE), format!("{config_text}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Element (r, c) lands at (c, r), and transposing back restores the values.
        #[test]
        fn transpose_moves_every_element(rows in 1usize..7, cols in 1usize..7) {
            let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&values, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(t[c * rows + r], values[r * cols + c]);
                }
            }
            prop_assert_eq!(transpose(&t, cols, rows), values);
        }
    }
}
