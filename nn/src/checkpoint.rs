//! Checkpoints in the safetensors format, interchangeable with PyTorch.
//!
//! A model file holds every parameter and buffer under its PyTorch state_dict name, float
//! tensors in their own type (F32 for the f32 models this stack trains) and
//! `num_batches_tracked` as I64, so `safetensors.torch.save_file(model.state_dict(), f)`
//! from the equivalent PyTorch model loads here and ours loads into PyTorch
//! (`model.load_state_dict(safetensors.torch.load_file(f))`).
//!
//! A training checkpoint adds the optimizer's state under `optimizer.` (`optimizer.exp_avg.fc.weight`)
//! and, in the safetensors `__metadata__` map, the epoch, the step, the RNG state and the run
//! configuration (a JSON string).
//!
//! Writes are atomic ([`crate::atomic_file`]): a crash leaves the old file or the new one. The
//! same tensors and metadata always give the same bytes. Loads refuse NaN and infinite values
//! (a model holding one trains and predicts NaN while looking fine).
//! Loads check every tensor first and fail with one error listing every missing, unexpected
//! and misshaped tensor, changing nothing; a truncated or corrupted file is an error naming
//! the file.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};
use tensor::{DType, Tensor};

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result, ShapeMismatch, StateMismatch};
use crate::module::{BufferKind, Module, StateItem};
use crate::optim::Optimizer;

/// Name prefix of optimizer state tensors in a training checkpoint.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";

const KEY_FORMAT: &str = "format";
const KEY_KIND: &str = "checkpoint_kind";
const KIND_TRAINING: &str = "training";
const KEY_EPOCH: &str = "epoch";
const KEY_STEP: &str = "step";
const KEY_RNG: &str = "rng_state";
const KEY_CONFIG: &str = "config";
const EXTRA_PREFIX: &str = "extra.";

/// A tensor to write, with how to store it.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// The tensor's name in the file.
    pub name: String,
    /// The tensor to write.
    pub value: Tensor,
    /// `Float`: F32 or F64 as the tensor is; `Count`: I64.
    pub kind: BufferKind,
}

/// The contents of a safetensors file: tensors by name (integers read as f64) and the
/// `__metadata__` map.
#[derive(Clone, Debug, Default)]
pub struct SafetensorsContents {
    /// Every tensor, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The `__metadata__` string map (empty if the file has none).
    pub metadata: BTreeMap<String, String>,
}

/// Which of a file's tensors to load, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Only file tensors whose names start with this are read, and only model tensors under
    /// the (remapped) prefix are expected. `None`: the whole file and the whole model.
    pub prefix: Option<String>,
    /// (from, to): a file name starting with `from` loads into the model tensor named with
    /// `to` instead (`("encoder.", "encoder.")` is a no-op; `("", "backbone.")` nests).
    pub remap: Option<(String, String)>,
    /// When false, missing and unexpected tensors are reported in the `LoadReport` instead of
    /// failing the load. A shape mismatch always fails.
    pub strict: bool,
}

impl Default for LoadOptions {
    /// Everything, strictly.
    fn default() -> Self {
        LoadOptions { prefix: None, remap: None, strict: true }
    }
}

impl LoadOptions {
    /// Every tensor of the file into every tensor of the model; any difference is an error.
    pub fn strict() -> Self {
        LoadOptions::default()
    }

    /// Only the file's tensors under `prefix` (`"encoder."`), into the model's tensors under it.
    pub fn only_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// File names starting with `from` load into model names starting with `to`.
    pub fn remap_prefix(mut self, from: &str, to: &str) -> Self {
        self.remap = Some((from.to_string(), to.to_string()));
        self
    }

    /// Missing and unexpected tensors are listed in the report rather than failing the load.
    pub fn non_strict(mut self) -> Self {
        self.strict = false;
        self
    }

    /// The model name a file name loads into.
    fn target_name(&self, file_name: &str) -> String {
        match &self.remap {
            Some((from, to)) if file_name.starts_with(from.as_str()) => {
                format!("{to}{}", &file_name[from.len()..])
            }
            _ => file_name.to_string(),
        }
    }
}

/// What a load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model names that received a value.
    pub loaded: Vec<String>,
    /// Model names left untouched because the file lacks them (non-strict loads only).
    pub missing: Vec<String>,
    /// File names ignored because the model lacks them (non-strict loads only).
    pub unexpected: Vec<String>,
}

/// Where a training run stood when its checkpoint was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingState {
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// The data/noise generator's `Rng::state()`.
    pub rng_state: [u64; 4],
    /// The run configuration, a JSON document.
    pub config_json: String,
    /// Anything else the trainer wants back (early-stopping state, best metric, …).
    pub extra: BTreeMap<String, String>,
}

// ---------------------------------------------------------------- safetensors bytes

/// A tensor in safetensors' little-endian byte form.
struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_raw(entry: &TensorEntry) -> Result<RawTensor> {
    let t = &entry.value;
    let shape = t.shape().to_vec();
    let (dtype, bytes) = match (entry.kind, t.dtype()) {
        (BufferKind::Count, _) => {
            (Dtype::I64, t.to_vec_f64()?.iter().flat_map(|&x| (x.round() as i64).to_le_bytes()).collect())
        }
        (BufferKind::Float, DType::F32) => (Dtype::F32, t.to_vec_f32()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
        (BufferKind::Float, DType::F64) => (Dtype::F64, t.to_vec_f64()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    Ok(RawTensor { dtype, shape, bytes })
}

/// Decodes little-endian elements of `N` bytes each (the length was validated by safetensors).
fn decode<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
}

fn from_raw(path: &Path, name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    let t = match dtype {
        Dtype::F32 => Tensor::from_vec(decode::<4, f32>(bytes, f32::from_le_bytes), shape),
        Dtype::F64 => Tensor::from_vec(decode::<8, f64>(bytes, f64::from_le_bytes), shape),
        Dtype::I64 => Tensor::from_vec(decode::<8, f64>(bytes, |b| i64::from_le_bytes(b) as f64), shape),
        Dtype::I32 => Tensor::from_vec(decode::<4, f64>(bytes, |b| i32::from_le_bytes(b) as f64), shape),
        other => {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor {name} has dtype {other:?}; supported are F32, F64, I64 and I32"),
            })
        }
    };
    t.map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: format!("tensor {name}: {e}") })
}

/// Writes tensors and metadata to a safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[TensorEntry], metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut seen = BTreeSet::new();
    if let Some(dup) = tensors.iter().find(|e| !seen.insert(e.name.as_str())) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!("tensor name {} appears twice", dup.name),
        });
    }
    let raw: Vec<(String, RawTensor)> =
        tensors.iter().map(|e| Ok((e.name.clone(), to_raw(e)?))).collect::<Result<_>>()?;
    let views: Vec<(&str, &RawTensor)> = raw.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: format!("cannot serialize: {e}") })?;
    let bytes = with_sorted_header(&bytes)
        .map_err(|msg| Error::Checkpoint { path: path.to_path_buf(), msg: format!("cannot serialize: {msg}") })?;
    write_atomic(path, &bytes).map_err(|(path, source)| Error::Io { path, source })
}

/// The same safetensors file with its JSON header's keys sorted. The crate writes the
/// `__metadata__` map in hash order, which differs from one call to the next; sorted, the same
/// model and state always give the same bytes (a checkpoint's hash identifies its contents).
/// Tensor offsets are explicit in the header, so reordering its keys moves no data.
fn with_sorted_header(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let length_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or("no header length")?;
    let header_end = usize::try_from(u64::from_le_bytes(length_bytes))
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or("header length past the end")?;
    // serde_json's map is a BTreeMap (no `preserve_order`): parsing and printing sorts the keys.
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..header_end]).map_err(|e| e.to_string())?;
    let mut text = serde_json::to_string(&header).map_err(|e| e.to_string())?.into_bytes();
    // The data starts 8-byte aligned, as the crate pads it: with spaces.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - header_end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[header_end..]);
    Ok(out)
}

/// Reads every tensor and the metadata of a safetensors file. A truncated or corrupted file
/// is an `Error::Checkpoint` naming it.
pub fn read_safetensors(path: &Path) -> Result<SafetensorsContents> {
    let bytes = fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let corrupt = |e: safetensors::SafeTensorError| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("not a valid safetensors file (truncated or corrupted?): {e}"),
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let metadata: BTreeMap<String, String> =
        header.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        tensors.insert(name.to_string(), from_raw(path, name, view.dtype(), view.shape(), view.data())?);
    }
    Ok(SafetensorsContents { tensors, metadata })
}

// ---------------------------------------------------------------- models

/// Every parameter and buffer of `model` as entries to write.
fn model_entries(model: &dyn Module) -> Vec<TensorEntry> {
    model
        .named_state()
        .into_iter()
        .map(|(name, item)| TensorEntry { kind: item.kind(), value: item.value(), name })
        .collect()
}

/// Saves a model's parameters and buffers under their PyTorch state_dict names.
pub fn save_model(path: &Path, model: &dyn Module) -> Result<()> {
    let metadata = BTreeMap::from([(KEY_FORMAT.to_string(), "pt".to_string())]);
    write_safetensors(path, &model_entries(model), &metadata)
}

/// Fails, naming the file and every offending tensor, when any of `tensors` holds a NaN or an
/// infinity: loading one would train and predict NaN while every shape looks right.
fn refuse_non_finite<'a>(path: &Path, tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Result<()> {
    let mut offenders = vec![];
    for (name, t) in tensors {
        let values = t.to_vec::<f64>()?;
        let count = values.iter().filter(|v| !v.is_finite()).count();
        if count > 0 {
            offenders.push(format!("{name} ({count} of {})", values.len()));
        }
    }
    if offenders.is_empty() {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("holds non-finite values (NaN or infinity) in {}; refusing to load it", offenders.join(", ")),
    })
}

/// Matches file tensors to model tensors; returns the assignments, or every mismatch.
fn plan_model_load(
    path: &Path,
    file: &BTreeMap<String, Tensor>,
    model: &dyn Module,
    options: &LoadOptions,
) -> Result<(Vec<(StateItem, Tensor)>, LoadReport)> {
    let slots: BTreeMap<String, StateItem> = model.named_state().into_iter().collect();
    let target_prefix = options.prefix.as_deref().map(|p| options.target_name(p));
    let expected: BTreeSet<&str> = slots
        .keys()
        .map(String::as_str)
        .filter(|n| target_prefix.as_deref().is_none_or(|p| n.starts_with(p)))
        .collect();
    let mut mismatch = StateMismatch::default();
    let mut report = LoadReport::default();
    let mut assignments = vec![];
    let mut provided = BTreeSet::new();
    for (file_name, t) in file {
        if options.prefix.as_deref().is_some_and(|p| !file_name.starts_with(p)) {
            continue;
        }
        let target = options.target_name(file_name);
        let Some(slot) = slots.get(&target) else {
            mismatch.unexpected.push(file_name.clone());
            continue;
        };
        provided.insert(target.clone());
        let model_shape = slot.value().shape().to_vec();
        if t.shape() != model_shape.as_slice() {
            mismatch.shape_mismatches.push(ShapeMismatch {
                name: target,
                file: t.shape().to_vec(),
                model: model_shape,
            });
            continue;
        }
        // Loaded on the CPU; the value goes where the model's slot lives.
        let current = slot.value();
        let value = t.to_dtype(current.dtype())?.contiguous_copy()?.to_device(&current.device())?;
        assignments.push((slot.clone(), value));
        report.loaded.push(target);
    }
    mismatch.missing = expected.iter().filter(|n| !provided.contains(**n)).map(|n| n.to_string()).collect();
    if !options.strict {
        report.missing = std::mem::take(&mut mismatch.missing);
        report.unexpected = std::mem::take(&mut mismatch.unexpected);
    }
    if !mismatch.is_empty() {
        return Err(Error::Mismatch { path: path.to_path_buf(), mismatch });
    }
    Ok((assignments, report))
}

fn apply(assignments: Vec<(StateItem, Tensor)>) {
    for (slot, value) in assignments {
        slot.set_value(value);
    }
}

/// The file's tensors that belong to the model: all but the optimizer state of a training
/// checkpoint.
fn model_tensors(contents: &SafetensorsContents) -> BTreeMap<String, Tensor> {
    let training = contents.metadata.get(KEY_KIND).is_some_and(|k| k == KIND_TRAINING);
    contents
        .tensors
        .iter()
        .filter(|(n, _)| !(training && n.starts_with(OPTIMIZER_PREFIX)))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

/// Loads a model (or part of it, per `options`) from a safetensors file written by
/// `save_model`, by PyTorch, or as a training checkpoint. Nothing changes unless every
/// selected tensor matches.
pub fn load_model(path: &Path, model: &dyn Module, options: &LoadOptions) -> Result<LoadReport> {
    let contents = read_safetensors(path)?;
    let tensors = model_tensors(&contents);
    refuse_non_finite(
        path,
        tensors.iter().filter(|(n, _)| options.prefix.as_deref().is_none_or(|p| n.starts_with(p))),
    )?;
    let (assignments, report) = plan_model_load(path, &tensors, model, options)?;
    apply(assignments);
    Ok(report)
}

// ---------------------------------------------------------------- training checkpoints

/// Saves model, optimizer state and training position in one file.
pub fn save_training_checkpoint(
    path: &Path,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    state: &TrainingState,
) -> Result<()> {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&state.config_json) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!("the run configuration is not JSON: {e}"),
        });
    }
    let mut entries = model_entries(model);
    entries.extend(optimizer.state_tensors().into_iter().map(|s| TensorEntry {
        name: format!("{OPTIMIZER_PREFIX}{}", s.name),
        value: s.value,
        kind: s.kind,
    }));
    let rng = state.rng_state.iter().map(|w| format!("{w:016x}")).collect::<Vec<_>>().join(",");
    let mut metadata = BTreeMap::from([
        (KEY_FORMAT.to_string(), "pt".to_string()),
        (KEY_KIND.to_string(), KIND_TRAINING.to_string()),
        (KEY_EPOCH.to_string(), state.epoch.to_string()),
        (KEY_STEP.to_string(), state.step.to_string()),
        (KEY_RNG.to_string(), rng),
        (KEY_CONFIG.to_string(), state.config_json.clone()),
    ]);
    metadata.extend(state.extra.iter().map(|(k, v)| (format!("{EXTRA_PREFIX}{k}"), v.clone())));
    write_safetensors(path, &entries, &metadata)
}

/// Reads where a training checkpoint stands (its [`TrainingState`]) from the file's header alone,
/// without reading its tensors: what a scheduler asks of a run before deciding to resume it.
pub fn read_training_state(path: &Path) -> Result<TrainingState> {
    use std::io::Read;
    let corrupt = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = fs::File::open(path).map_err(io)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|e| corrupt(format!("not a safetensors file (no header length): {e}")))?;
    let length = u64::from_le_bytes(length);
    // safetensors' own bound on a header: a larger one is a corrupted length, not a header.
    const MAX_HEADER: u64 = 100_000_000;
    if length > MAX_HEADER || length > file.metadata().map_err(io)?.len() {
        return Err(corrupt(format!("not a safetensors file (a header of {length} bytes)")));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).map_err(|e| corrupt(format!("truncated header: {e}")))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("a header that is not JSON: {e}")))?;
    let metadata: BTreeMap<String, String> = header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    parse_training_state(path, &metadata)
}

fn parse_training_state(path: &Path, metadata: &BTreeMap<String, String>) -> Result<TrainingState> {
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    if metadata.get(KEY_KIND).map(String::as_str) != Some(KIND_TRAINING) {
        return Err(bad("not a training checkpoint (no optimizer state or run position)".into()));
    }
    let get = |key: &str| metadata.get(key).ok_or_else(|| bad(format!("metadata lacks {key:?}")));
    let number = |key: &str| -> Result<u64> {
        let v = get(key)?;
        v.parse().map_err(|_| bad(format!("metadata {key:?} = {v:?} is not a count")))
    };
    let rng_text = get(KEY_RNG)?;
    let words: Vec<u64> = rng_text.split(',').filter_map(|w| u64::from_str_radix(w, 16).ok()).collect();
    let rng_state: [u64; 4] =
        words.try_into().map_err(|_| bad(format!("metadata {KEY_RNG:?} = {rng_text:?} is not 4 hex words")))?;
    let extra =
        metadata.iter().filter_map(|(k, v)| k.strip_prefix(EXTRA_PREFIX).map(|k| (k.to_string(), v.clone()))).collect();
    Ok(TrainingState {
        epoch: number(KEY_EPOCH)?,
        step: number(KEY_STEP)?,
        rng_state,
        config_json: get(KEY_CONFIG)?.clone(),
        extra,
    })
}

/// Restores model, optimizer state and training position from `save_training_checkpoint`'s
/// file. Everything is checked before anything changes.
pub fn load_training_checkpoint(
    path: &Path,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<TrainingState> {
    let contents = read_safetensors(path)?;
    let state = parse_training_state(path, &contents.metadata)?;
    refuse_non_finite(path, &contents.tensors)?;
    let (assignments, _) = plan_model_load(path, &model_tensors(&contents), model, &LoadOptions::strict())?;
    let optimizer_tensors: BTreeMap<String, Tensor> = contents
        .tensors
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(OPTIMIZER_PREFIX).map(|n| (n.to_string(), t.clone())))
        .collect();
    optimizer.load_state_tensors(&optimizer_tensors).map_err(|m| {
        let prefixed = |v: Vec<String>| v.into_iter().map(|n| format!("{OPTIMIZER_PREFIX}{n}")).collect();
        Error::Mismatch {
            path: path.to_path_buf(),
            mismatch: StateMismatch {
                missing: prefixed(m.missing),
                unexpected: prefixed(m.unexpected),
                shape_mismatches: m
                    .shape_mismatches
                    .into_iter()
                    .map(|s| ShapeMismatch { name: format!("{OPTIMIZER_PREFIX}{}", s.name), ..s })
                    .collect(),
            },
        }
    })?;
    apply(assignments);
    Ok(state)
}
