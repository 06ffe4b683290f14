//! The Module tree: PyTorch state_dict names for nested custom modules, training-mode
//! propagation, freezing and parameter counts.

use crate::common;

use autograd::Var;
use common::ResidualBlock;
use nn::{BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten, GlobalAvgPool, Init, Linear, Module, ReLU, Sequential};
use tensor::{DType, Tensor};

/// encoder.stem (conv) → encoder.layer1 (two residual blocks in a Sequential) → head.
struct Encoder {
    stem: Conv2d,
    layer1: Sequential,
}

impl Module for Encoder {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        self.layer1.forward(&self.stem.forward(x)?.relu()?)
    }
    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("stem", &self.stem);
        visit("layer1", &self.layer1);
    }
}

struct Classifier {
    encoder: Encoder,
    pool: GlobalAvgPool,
    head: Sequential,
}

impl Module for Classifier {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        self.head.forward(&self.pool.forward(&self.encoder.forward(x)?)?)
    }
    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("encoder", &self.encoder);
        visit("pool", &self.pool);
        visit("head", &self.head);
    }
}

fn classifier(init: &mut Init) -> Classifier {
    let stem = Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), init).unwrap();
    let layer1 =
        Sequential::new().with(ResidualBlock::new(4, init).unwrap()).with(ResidualBlock::new(4, init).unwrap());
    let head = Sequential::new()
        .with(Flatten)
        .with(Linear::new(4, 8, init).unwrap())
        .with(ReLU)
        .with(Dropout::new(0.5, init).unwrap())
        .with(Linear::new(8, 3, init).unwrap());
    Classifier { encoder: Encoder { stem, layer1 }, pool: GlobalAvgPool, head }
}

fn block_names(prefix: &str) -> Vec<String> {
    let mut names = vec![];
    for (conv, bn) in [("conv1", "bn1"), ("conv2", "bn2")] {
        names.push(format!("{prefix}.{conv}.weight"));
        for n in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] {
            names.push(format!("{prefix}.{bn}.{n}"));
        }
    }
    names
}

#[test]
fn state_dict_of_a_nested_model_uses_pytorch_names_in_pytorch_order() {
    let model = classifier(&mut Init::new(0));
    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
    let mut want = vec!["encoder.stem.weight".to_string(), "encoder.stem.bias".to_string()];
    want.extend(block_names("encoder.layer1.0"));
    want.extend(block_names("encoder.layer1.1"));
    want.extend(["head.1.weight", "head.1.bias", "head.4.weight", "head.4.bias"].map(String::from));
    assert_eq!(names, want);
}

#[test]
fn named_parameters_and_named_buffers_split_the_state_dict() {
    let model = classifier(&mut Init::new(0));
    let params: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let buffers: Vec<String> = model.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert!(params.contains(&"encoder.layer1.1.bn2.weight".to_string()));
    assert!(!params.iter().any(|n| n.contains("running")));
    assert_eq!(buffers.len(), 2 * 2 * 3);
    assert_eq!(buffers[0], "encoder.layer1.0.bn1.running_mean");
    assert_eq!(buffers[2], "encoder.layer1.0.bn1.num_batches_tracked");
    assert_eq!(params.len() + buffers.len(), model.state_dict().len());
}

#[test]
fn state_dict_shapes_follow_pytorch_layouts() {
    let model = classifier(&mut Init::new(0));
    let shapes: std::collections::BTreeMap<String, Vec<usize>> =
        model.state_dict().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    assert_eq!(shapes["encoder.stem.weight"], vec![4, 1, 3, 3]);
    assert_eq!(shapes["head.4.weight"], vec![3, 8]);
    assert_eq!(shapes["encoder.layer1.0.bn1.running_var"], vec![4]);
    assert_eq!(shapes["encoder.layer1.0.bn1.num_batches_tracked"], Vec::<usize>::new());
}

#[test]
fn set_training_false_reaches_batch_norm_and_dropout_deep_in_the_tree() {
    let model = classifier(&mut Init::new(0));
    let x = Var::constant(Tensor::rand_uniform(&[2, 1, 5, 5], -1.0, 1.0, DType::F32, &mut tensor::Rng::new(3)));
    model.set_training(false);
    let a = model.forward(&x).unwrap().value().to_vec_f32().unwrap();
    let b = model.forward(&x).unwrap().value().to_vec_f32().unwrap();
    // Eval: dropout is the identity and batch norm uses (unchanged) running statistics.
    assert_eq!(a, b);
    for (_, buf) in model.named_buffers() {
        if buf.kind() == nn::BufferKind::Count {
            assert_eq!(buf.value().item().unwrap(), 0.0);
        }
    }
    model.set_training(true);
    model.forward(&x).unwrap();
    let tracked = model.named_buffers().into_iter().find(|(n, _)| n.ends_with("num_batches_tracked")).unwrap().1;
    assert_eq!(tracked.value().item().unwrap(), 1.0);
}

#[test]
fn parameter_counts_add_up_scalars_and_exclude_frozen_ones() {
    let model = classifier(&mut Init::new(0));
    // stem 4·1·9 + 4; per block 2·(4·4·9) + 2·(4 + 4); head 4·8 + 8 + 8·3 + 3.
    let block = 2 * 4 * 4 * 9 + 2 * 8;
    let total = 36 + 4 + 2 * block + 32 + 8 + 24 + 3;
    assert_eq!(model.parameter_counts(), nn::ParameterCounts { total, trainable: total });
    model.encoder.set_requires_grad(false);
    let frozen = 36 + 4 + 2 * block;
    assert_eq!(model.parameter_counts(), nn::ParameterCounts { total, trainable: total - frozen });
}

#[test]
fn freezing_by_prefix_touches_only_matching_parameters() {
    let model = classifier(&mut Init::new(0));
    let matched = model.set_requires_grad_by_prefix("encoder.layer1.1.", false);
    assert_eq!(matched, 6);
    for (name, p) in model.named_parameters() {
        assert_eq!(p.requires_grad(), !name.starts_with("encoder.layer1.1."), "{name}");
    }
    model.set_requires_grad_by_prefix("encoder.", true);
    assert!(model.parameters().iter().all(|p| p.requires_grad()));
}

#[test]
fn a_frozen_parameter_gets_no_gradient() {
    let mut init = Init::new(1);
    let model = Sequential::new()
        .with(Linear::new(3, 4, &mut init).unwrap())
        .with(ReLU)
        .with(Linear::new(4, 1, &mut init).unwrap());
    model.set_requires_grad_by_prefix("0.", false);
    let x = Var::constant(Tensor::ones(&[2, 3], DType::F32));
    model.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let grads: Vec<(String, bool)> =
        model.named_parameters().into_iter().map(|(n, p)| (n, p.grad().is_some())).collect();
    assert_eq!(
        grads,
        vec![("0.weight".into(), false), ("0.bias".into(), false), ("2.weight".into(), true), ("2.bias".into(), true)]
    );
}

#[test]
fn batch_norm_layer_constructor_rejects_zero_features() {
    assert!(matches!(BatchNorm2d::new(0, &Init::new(0)), Err(nn::Error::Config { .. })));
}
