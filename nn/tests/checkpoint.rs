//! Safetensors checkpoints: exact round trips, PyTorch's on-disk layout, errors for damaged
//! files, mismatch reports listing every problem, partial loads, and training checkpoints
//! that resume to the same numbers.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use autograd::Var;
use common::ResidualBlock;
use nn::checkpoint::{
    load_model, load_training_checkpoint, read_safetensors, read_training_state, save_model, save_training_checkpoint,
    write_safetensors, LoadOptions, TensorEntry, TrainingState,
};
use nn::optim::Optimizer;
use nn::{
    Adam, AdamConfig, BatchNorm2d, BufferKind, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Init, Linear, Module,
    ReLU, Sequential,
};
use tensor::{DType, Rng, Tensor};

/// A fresh directory for one test's files, removed when the guard drops.
fn temp_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("nn-checkpoint-{test}-")).tempdir().unwrap()
}

/// conv → bn → relu → residual block → pool → flatten → linear: x [N, 1, 6, 6] → [N, 3].
fn small_cnn(seed: u64) -> Sequential {
    let mut init = Init::new(seed);
    Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut init).unwrap())
        .with(BatchNorm2d::new(4, &init).unwrap())
        .with(ReLU)
        .with(ResidualBlock::new(4, &mut init).unwrap())
        .with(GlobalAvgPool)
        .with(Flatten)
        .with(Linear::new(4, 3, &mut init).unwrap())
}

fn input(seed: u64) -> Var {
    Var::constant(Tensor::rand_uniform(&[2, 1, 6, 6], -1.0, 1.0, DType::F32, &mut Rng::new(seed)))
}

fn eval_output(model: &dyn Module, x: &Var) -> Vec<f32> {
    model.set_training(false);
    let y = model.forward(x).unwrap().value().to_vec_f32().unwrap();
    model.set_training(true);
    y
}

#[test]
fn save_then_load_reproduces_eval_outputs_bit_for_bit() {
    let scratch = temp_dir("roundtrip");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let a = small_cnn(1);
    a.forward(&input(5)).unwrap(); // a training step moves the running statistics off their init
    save_model(&path, &a).unwrap();
    let b = small_cnn(2);
    assert_ne!(eval_output(&a, &input(6)), eval_output(&b, &input(6)));
    let report = load_model(&path, &b, &LoadOptions::strict()).unwrap();
    assert_eq!(report.loaded.len(), a.state_dict().len());
    assert_eq!(eval_output(&a, &input(6)), eval_output(&b, &input(6)));
    for ((na, ta), (nb, tb)) in a.state_dict().into_iter().zip(b.state_dict()) {
        assert_eq!(na, nb);
        assert_eq!(ta.to_vec_f64().unwrap(), tb.to_vec_f64().unwrap(), "{na}");
    }
}

/// The JSON header of a safetensors file.
fn header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

#[test]
fn files_use_pytorch_names_f32_weights_and_i64_num_batches_tracked() {
    let scratch = temp_dir("layout");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let model = small_cnn(1);
    model.forward(&input(5)).unwrap();
    save_model(&path, &model).unwrap();
    let h = header(&path);
    assert_eq!(h["0.weight"]["dtype"], "F32");
    assert_eq!(h["0.weight"]["shape"], serde_json::json!([4, 1, 3, 3]));
    assert_eq!(h["3.bn2.running_var"]["dtype"], "F32");
    assert_eq!(h["1.num_batches_tracked"]["dtype"], "I64");
    assert_eq!(h["1.num_batches_tracked"]["shape"], serde_json::json!([]));
    assert_eq!(h["__metadata__"]["format"], "pt");
    let contents = read_safetensors(&path).unwrap();
    assert_eq!(contents.tensors["1.num_batches_tracked"].item().unwrap(), 1.0);
}

#[test]
fn writes_leave_no_temporary_file_and_replace_the_old_file() {
    let scratch = temp_dir("atomic");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    save_model(&path, &small_cnn(1)).unwrap();
    save_model(&path, &small_cnn(2)).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, vec!["model.safetensors"]);
    let b = small_cnn(3);
    load_model(&path, &b, &LoadOptions::strict()).unwrap();
    assert_eq!(eval_output(&b, &input(1)), eval_output(&small_cnn(2), &input(1)));
}

#[test]
fn writing_into_a_missing_directory_is_an_io_error_naming_the_path() {
    let scratch = temp_dir("nodir");
    let path = scratch.path().join("absent").join("model.safetensors");
    let err = save_model(&path, &small_cnn(1)).unwrap_err();
    assert!(matches!(err, nn::Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn a_truncated_file_is_an_error_naming_it() {
    let scratch = temp_dir("truncated");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    save_model(&path, &small_cnn(1)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for keep in [0, 5, 8, 40, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = load_model(&path, &small_cnn(1), &LoadOptions::strict()).unwrap_err();
        assert!(matches!(err, nn::Error::Checkpoint { .. }), "{keep} bytes: {err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
}

#[test]
fn a_corrupted_header_is_an_error_not_a_panic() {
    let scratch = temp_dir("corrupt");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    save_model(&path, &small_cnn(1)).unwrap();
    let good = std::fs::read(&path).unwrap();
    // Garbage inside the JSON, an absurd header length, and offsets pointing past the data.
    let mut garbled = good.clone();
    garbled[10..30].copy_from_slice(b"#####garbage#######!");
    let mut huge_len = good.clone();
    huge_len[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let text = String::from_utf8_lossy(&good[8..]).replace("\"data_offsets\":[0,", "\"data_offsets\":[9999999,");
    let mut bad_offsets = good[..8].to_vec();
    bad_offsets.extend(text.as_bytes());
    for (what, bytes) in [("garbled", garbled), ("huge length", huge_len), ("bad offsets", bad_offsets)] {
        std::fs::write(&path, &bytes).unwrap();
        let err = load_model(&path, &small_cnn(1), &LoadOptions::strict()).unwrap_err();
        assert!(matches!(err, nn::Error::Checkpoint { .. }), "{what}: {err}");
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let scratch = temp_dir("missing");
    let path = scratch.path().join("nothing.safetensors");
    let err = load_model(&path, &small_cnn(1), &LoadOptions::strict()).unwrap_err();
    assert!(matches!(err, nn::Error::Io { .. }) && err.to_string().contains("nothing.safetensors"), "{err}");
}

/// The model's entries with one dropped, one added and one reshaped.
fn damaged_entries(model: &dyn Module) -> Vec<TensorEntry> {
    let mut entries: Vec<TensorEntry> = model
        .named_state()
        .into_iter()
        .filter(|(n, _)| n != "0.bias")
        .map(|(name, item)| TensorEntry { kind: item.kind(), value: item.value(), name })
        .collect();
    entries.push(TensorEntry { name: "x.y".into(), value: Tensor::zeros(&[2], DType::F32), kind: BufferKind::Float });
    let w = entries.iter_mut().find(|e| e.name == "0.weight").unwrap();
    w.value = Tensor::zeros(&[4, 3, 3, 3], DType::F32);
    entries
}

#[test]
fn a_mismatched_file_fails_with_one_error_listing_every_problem_and_changes_nothing() {
    let scratch = temp_dir("mismatch");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let model = small_cnn(1);
    write_safetensors(&path, &damaged_entries(&model), &BTreeMap::new()).unwrap();
    let target = small_cnn(2);
    let before = eval_output(&target, &input(1));
    let err = load_model(&path, &target, &LoadOptions::strict()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("missing: 0.bias"), "{msg}");
    assert!(msg.contains("unexpected: x.y"), "{msg}");
    assert!(msg.contains("shape mismatch: 0.weight file [4, 3, 3, 3] vs model [4, 1, 3, 3]"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert_eq!(eval_output(&target, &input(1)), before);
}

#[test]
fn a_non_strict_load_reports_missing_and_unexpected_but_still_rejects_shapes() {
    let scratch = temp_dir("nonstrict");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let model = small_cnn(1);
    let mut entries = damaged_entries(&model);
    entries.iter_mut().find(|e| e.name == "0.weight").unwrap().value = model.state_dict()[0].1.clone();
    write_safetensors(&path, &entries, &BTreeMap::new()).unwrap();
    let report = load_model(&path, &small_cnn(2), &LoadOptions::strict().non_strict()).unwrap();
    assert_eq!(report.missing, vec!["0.bias"]);
    assert_eq!(report.unexpected, vec!["x.y"]);
    write_safetensors(&path, &damaged_entries(&model), &BTreeMap::new()).unwrap();
    assert!(load_model(&path, &small_cnn(2), &LoadOptions::strict().non_strict()).is_err());
}

/// A classifier: encoder (conv → bn → relu) then head; and a model that reuses such an
/// encoder under another name.
struct TwoPart {
    first: Sequential,
    second: Linear,
    names: [&'static str; 2],
}

impl Module for TwoPart {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        self.second.forward(&self.first.forward(x)?.mean(&[2, 3], false)?)
    }
    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit(self.names[0], &self.first);
        visit(self.names[1], &self.second);
    }
}

fn two_part(seed: u64, names: [&'static str; 2], out: usize) -> TwoPart {
    let mut init = Init::new(seed);
    let first = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(1, 4, 3), &mut init).unwrap())
        .with(BatchNorm2d::new(4, &init).unwrap())
        .with(ReLU);
    TwoPart { first, second: Linear::new(4, out, &mut init).unwrap(), names }
}

fn values_under(model: &dyn Module, prefix: &str) -> Vec<Vec<f64>> {
    model
        .state_dict()
        .into_iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(_, t)| t.to_vec_f64().unwrap())
        .collect()
}

#[test]
fn a_partial_load_by_prefix_fills_only_that_part() {
    let scratch = temp_dir("prefix");
    let dir = scratch.path();
    let path = dir.join("classifier.safetensors");
    let classifier = two_part(1, ["encoder", "head"], 10);
    save_model(&path, &classifier).unwrap();
    // Same encoder, a head of another shape: a full load would fail on head.weight.
    let other = two_part(2, ["encoder", "head"], 3);
    assert!(load_model(&path, &other, &LoadOptions::strict()).is_err());
    let head_before = values_under(&other, "head.");
    let report = load_model(&path, &other, &LoadOptions::strict().only_prefix("encoder.")).unwrap();
    assert_eq!(report.loaded.len(), 7);
    assert_eq!(values_under(&other, "encoder."), values_under(&classifier, "encoder."));
    assert_eq!(values_under(&other, "head."), head_before);
}

#[test]
fn a_prefix_remap_loads_a_classifier_encoder_into_a_differently_named_part() {
    let scratch = temp_dir("remap");
    let dir = scratch.path();
    let path = dir.join("classifier.safetensors");
    let classifier = two_part(1, ["encoder", "head"], 10);
    save_model(&path, &classifier).unwrap();
    let vae = two_part(2, ["backbone", "mu"], 2);
    let options = LoadOptions::strict().only_prefix("encoder.").remap_prefix("encoder.", "backbone.");
    let report = load_model(&path, &vae, &options).unwrap();
    assert!(report.loaded.iter().all(|n| n.starts_with("backbone.")), "{report:?}");
    assert_eq!(values_under(&vae, "backbone."), values_under(&classifier, "encoder."));
}

#[test]
fn a_partial_load_still_requires_every_tensor_under_the_prefix() {
    let scratch = temp_dir("prefix-missing");
    let dir = scratch.path();
    let path = dir.join("partial.safetensors");
    let classifier = two_part(1, ["encoder", "head"], 10);
    let entries: Vec<TensorEntry> = classifier
        .named_state()
        .into_iter()
        .filter(|(n, _)| n != "encoder.1.running_var")
        .map(|(name, item)| TensorEntry { kind: item.kind(), value: item.value(), name })
        .collect();
    write_safetensors(&path, &entries, &BTreeMap::new()).unwrap();
    let err = load_model(&path, &two_part(2, ["encoder", "head"], 10), &LoadOptions::strict().only_prefix("encoder."))
        .unwrap_err();
    assert!(err.to_string().contains("missing: encoder.1.running_var"), "{err}");
}

#[test]
fn f64_and_integer_tensors_in_a_file_convert_to_the_model_types() {
    let scratch = temp_dir("convert");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let model = small_cnn(1);
    let entries: Vec<TensorEntry> = model
        .named_state()
        .into_iter()
        .map(|(name, item)| TensorEntry { kind: item.kind(), value: item.value().to_dtype(DType::F64).unwrap(), name })
        .collect();
    write_safetensors(&path, &entries, &BTreeMap::new()).unwrap();
    assert_eq!(header(&path)["0.weight"]["dtype"], "F64");
    let b = small_cnn(2);
    load_model(&path, &b, &LoadOptions::strict()).unwrap();
    assert_eq!(b.state_dict()[0].1.dtype(), DType::F32);
    assert_eq!(eval_output(&b, &input(1)), eval_output(&model, &input(1)));
}

/// One Adam step on a squared-output loss.
fn train_step(model: &dyn Module, opt: &mut dyn Optimizer, x: &Var) {
    opt.zero_grad();
    model.forward(x).unwrap().square().unwrap().mean_all().unwrap().backward().unwrap();
    opt.step().unwrap();
}

#[test]
fn a_training_checkpoint_resumes_to_the_same_parameters_and_position() {
    let scratch = temp_dir("training");
    let dir = scratch.path();
    let path = dir.join("train.safetensors");
    let model = small_cnn(1);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    for i in 0..3 {
        train_step(&model, &mut opt, &input(i));
    }
    let mut rng = Rng::new(99);
    rng.next_u64();
    let state = TrainingState {
        epoch: 2,
        step: 3,
        rng_state: rng.state(),
        config_json: r#"{"lr": 0.01, "model": "small_cnn"}"#.into(),
        extra: BTreeMap::from([("best_val_loss".to_string(), "0.25".to_string())]),
    };
    save_training_checkpoint(&path, &model, &opt, &state).unwrap();
    train_step(&model, &mut opt, &input(3));

    let resumed = small_cnn(7);
    let mut resumed_opt = Adam::new(resumed.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let loaded = load_training_checkpoint(&path, &resumed, &mut resumed_opt).unwrap();
    assert_eq!(loaded, state);
    train_step(&resumed, &mut resumed_opt, &input(3));
    for ((name, a), (_, b)) in model.state_dict().into_iter().zip(resumed.state_dict()) {
        assert_eq!(a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap(), "{name}");
    }
    let h = header(&path);
    assert_eq!(h["optimizer.step.0.weight"]["dtype"], "I64");
    assert_eq!(h["optimizer.exp_avg.6.weight"]["shape"], serde_json::json!([3, 4]));
    // The model part of a training checkpoint loads like a model file.
    load_model(&path, &small_cnn(8), &LoadOptions::strict()).unwrap();
}

#[test]
fn a_training_checkpoints_position_reads_from_its_header_alone() {
    let scratch = temp_dir("state-only");
    let path = scratch.path().join("train.safetensors");
    let model = small_cnn(1);
    let opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let state = TrainingState {
        epoch: 4,
        step: 9,
        rng_state: [1, 2, 3, u64::MAX],
        config_json: r#"{"epochs": 5}"#.into(),
        extra: BTreeMap::from([("batch_in_epoch".to_string(), "9".to_string())]),
    };
    save_training_checkpoint(&path, &model, &opt, &state).unwrap();
    assert_eq!(read_training_state(&path).unwrap(), state);
    // The tensors are not read: a file cut after its header still tells where it stood.
    let bytes = std::fs::read(&path).unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    std::fs::write(&path, &bytes[..header_end]).unwrap();
    assert_eq!(read_training_state(&path).unwrap(), state);
    std::fs::write(&path, &bytes[..header_end - 1]).unwrap();
    let err = read_training_state(&path).unwrap_err().to_string();
    assert!(err.contains("train.safetensors") && err.contains("safetensors"), "{err}");
    save_model(&path, &model).unwrap();
    assert!(read_training_state(&path).unwrap_err().to_string().contains("not a training checkpoint"));
}

#[test]
fn a_hostile_header_is_an_error_naming_the_file_never_a_huge_allocation_or_a_panic() {
    let scratch = temp_dir("hostile-header");
    let path = scratch.path().join("x.safetensors");
    let header = |length: u64, text: &[u8]| [&length.to_le_bytes()[..], text].concat();
    for (what, bytes) in [
        ("an exabyte header", header(1 << 60, b"{}")),
        ("a length past the end", header(64, b"{}")),
        ("not JSON", header(4, b"{{{{")),
        ("a metadata value that is not a string", header(28, b"{\"__metadata__\":{\"epoch\":1}}")),
        ("no header length", vec![1, 2, 3]),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let err = read_training_state(&path).expect_err(what).to_string();
        assert!(err.contains("x.safetensors"), "{what}: {err}");
    }
}

#[test]
fn a_model_file_is_not_a_training_checkpoint() {
    let scratch = temp_dir("not-training");
    let dir = scratch.path();
    let path = dir.join("model.safetensors");
    let model = small_cnn(1);
    save_model(&path, &model).unwrap();
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let err = load_training_checkpoint(&path, &model, &mut opt).unwrap_err();
    assert!(err.to_string().contains("not a training checkpoint"), "{err}");
}

#[test]
fn a_run_configuration_that_is_not_json_is_refused_before_writing() {
    let scratch = temp_dir("bad-config");
    let dir = scratch.path();
    let path = dir.join("train.safetensors");
    let model = small_cnn(1);
    let opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let state = TrainingState { config_json: "{lr: ".into(), ..TrainingState::default() };
    assert!(save_training_checkpoint(&path, &model, &opt, &state).is_err());
    assert!(!path.exists());
}

#[test]
fn the_same_model_and_state_give_byte_identical_checkpoint_files() {
    let scratch = temp_dir("byte-identical");
    let dir = scratch.path();
    let model = small_cnn(1);
    let opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let extra: BTreeMap<String, String> = (0..12).map(|i| (format!("key{i}"), format!("value{i}"))).collect();
    let state = TrainingState { config_json: r#"{"b": 1, "a": 2}"#.into(), extra, ..TrainingState::default() };
    let (first, second) = (dir.join("first.safetensors"), dir.join("second.safetensors"));
    save_training_checkpoint(&first, &model, &opt, &state).unwrap();
    save_training_checkpoint(&second, &model, &opt, &state).unwrap();
    assert!(std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap(), "the two files differ");
    // The canonical header is still a valid safetensors file with every entry.
    assert_eq!(read_safetensors(&first).unwrap().metadata.get("extra.key7").map(String::as_str), Some("value7"));
}

/// The model's entries with one value of `name` replaced by `value`.
fn entries_with(model: &dyn Module, name: &str, value: f32) -> Vec<TensorEntry> {
    model
        .named_state()
        .into_iter()
        .map(|(n, item)| {
            let mut v = item.value();
            if n == name {
                let mut data = v.to_vec_f32().unwrap();
                data[0] = value;
                v = Tensor::from_vec(data, v.shape()).unwrap();
            }
            TensorEntry { name: n, value: v, kind: item.kind() }
        })
        .collect()
}

#[test]
fn a_model_file_holding_nan_or_infinity_is_refused_naming_the_tensor_and_changes_nothing() {
    let scratch = temp_dir("non-finite");
    let dir = scratch.path();
    for (bad, label) in [(f32::NAN, "nan"), (f32::INFINITY, "inf")] {
        let path = dir.join(format!("{label}.safetensors"));
        write_safetensors(&path, &entries_with(&small_cnn(1), "6.weight", bad), &BTreeMap::new()).unwrap();
        let model = small_cnn(2);
        let before = model.state_dict().into_iter().map(|(_, t)| t.to_vec_f32().unwrap()).collect::<Vec<_>>();
        let err = load_model(&path, &model, &LoadOptions::strict()).unwrap_err().to_string();
        assert!(
            err.contains("6.weight") && err.contains("non-finite") && err.contains(&path.display().to_string()),
            "{err}"
        );
        let after = model.state_dict().into_iter().map(|(_, t)| t.to_vec_f32().unwrap()).collect::<Vec<_>>();
        assert_eq!(before, after, "a refused load changed the model");
    }
}

#[test]
fn a_training_checkpoint_with_non_finite_optimizer_state_is_refused() {
    let scratch = temp_dir("non-finite-optimizer");
    let dir = scratch.path();
    let path = dir.join("train.safetensors");
    let model = small_cnn(1);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(0.01)).unwrap();
    train_step(&model, &mut opt, &input(0));
    let state = TrainingState { config_json: "{}".into(), ..TrainingState::default() };
    save_training_checkpoint(&path, &model, &opt, &state).unwrap();
    let mut contents = read_safetensors(&path).unwrap();
    let name = "optimizer.exp_avg_sq.6.weight";
    let t = contents.tensors[name].clone();
    let mut data = t.to_vec_f32().unwrap();
    data[1] = f32::NAN;
    contents.tensors.insert(name.into(), Tensor::from_vec(data, t.shape()).unwrap());
    let entries: Vec<TensorEntry> = contents
        .tensors
        .into_iter()
        .map(|(n, value)| {
            let kind = if n.starts_with("optimizer.step.") || n.ends_with("num_batches_tracked") {
                BufferKind::Count
            } else {
                BufferKind::Float
            };
            TensorEntry { name: n, value, kind }
        })
        .collect();
    write_safetensors(&path, &entries, &contents.metadata).unwrap();
    let fresh = small_cnn(1);
    let mut fresh_opt = Adam::new(fresh.named_parameters(), AdamConfig::new(0.01)).unwrap();
    let err = load_training_checkpoint(&path, &fresh, &mut fresh_opt).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("non-finite"), "{err}");
}
