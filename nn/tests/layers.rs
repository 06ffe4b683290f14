//! Layer behaviour beyond gradients: output shapes, each activation's values, dropout's
//! train/eval semantics and seeding, and configuration errors.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use autograd::Var;
use nn::{
    AvgPool2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout, Flatten, GlobalAvgPool, Init,
    LeakyReLU, Linear, MaxPool2d, Module, Pool2dConfig, ReLU, Reshape, Sequential, SiLU, Sigmoid, Tanh, Upsample,
};
use tensor::{DType, Rng, Tensor};

fn ones(shape: &[usize]) -> Var {
    Var::constant(Tensor::ones(shape, DType::F32))
}

fn out_shape(m: &dyn Module, input: &[usize]) -> Vec<usize> {
    m.forward(&ones(input)).unwrap().shape()
}

#[test]
fn conv_layers_produce_pytorch_output_shapes() {
    let mut init = Init::new(0);
    let down = Conv2d::new(Conv2dConfig::new(3, 8, 3).stride(2).padding(1), &mut init).unwrap();
    assert_eq!(out_shape(&down, &[2, 3, 28, 28]), vec![2, 8, 14, 14]);
    let up = ConvTranspose2d::new(ConvTranspose2dConfig::new(8, 3, 4).stride(2).padding(1), &mut init).unwrap();
    assert_eq!(out_shape(&up, &[2, 8, 14, 14]), vec![2, 3, 28, 28]);
    let up_op =
        ConvTranspose2d::new(ConvTranspose2dConfig::new(8, 3, 3).stride(2).padding(1).output_padding(1), &mut init)
            .unwrap();
    assert_eq!(out_shape(&up_op, &[1, 8, 7, 7]), vec![1, 3, 14, 14]);
}

#[test]
fn pool_upsample_and_reshape_layers_produce_the_documented_shapes() {
    assert_eq!(out_shape(&MaxPool2d::new(Pool2dConfig::new(2)).unwrap(), &[2, 3, 8, 6]), vec![2, 3, 4, 3]);
    assert_eq!(
        out_shape(&AvgPool2d::new(Pool2dConfig::new(3).stride(1).padding(1)).unwrap(), &[1, 2, 5, 5]),
        vec![1, 2, 5, 5]
    );
    assert_eq!(out_shape(&GlobalAvgPool, &[4, 5, 3, 3]), vec![4, 5, 1, 1]);
    assert_eq!(out_shape(&Upsample::nearest(2).unwrap(), &[1, 2, 3, 4]), vec![1, 2, 6, 8]);
    assert_eq!(out_shape(&Upsample::bilinear(3).unwrap(), &[1, 2, 3, 4]), vec![1, 2, 9, 12]);
    assert_eq!(out_shape(&Flatten, &[4, 2, 3, 5]), vec![4, 30]);
    assert_eq!(out_shape(&Reshape::new(&[2, 3, 5]), &[4, 30]), vec![4, 2, 3, 5]);
}

#[test]
fn sequential_chains_layers_in_order() {
    let mut init = Init::new(0);
    let model = Sequential::new()
        .with(Flatten)
        .with(Linear::new(12, 5, &mut init).unwrap())
        .with(Tanh)
        .with(Linear::new(5, 1, &mut init).unwrap())
        .with(Sigmoid);
    let y = model.forward(&ones(&[3, 3, 4])).unwrap().value();
    assert_eq!(y.shape(), &[3, 1]);
    assert!(y.to_vec_f32().unwrap().iter().all(|&v| v > 0.0 && v < 1.0));
    assert_eq!(model.len(), 5);
}

/// A layer that records which of its forwards ran: 1 for `forward`, 2 for `forward_then_relu`.
struct Probe(Arc<AtomicU8>);

impl Module for Probe {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        self.0.store(1, Ordering::Relaxed);
        Ok(x.clone())
    }
    fn forward_then_relu(&self, x: &Var) -> nn::Result<Var> {
        self.0.store(2, Ordering::Relaxed);
        Ok(x.relu()?)
    }
}

#[test]
fn sequential_runs_a_layer_and_the_relu_after_it_as_one_call() {
    let (first, last) = (Arc::new(AtomicU8::new(0)), Arc::new(AtomicU8::new(0)));
    let model = Sequential::new().with(Probe(first.clone())).with(ReLU).with(Probe(last.clone()));
    let y = model.forward(&Var::constant(Tensor::from_vec(vec![-1.0f32, 2.0], &[2]).unwrap())).unwrap();
    assert_eq!(y.value().to_vec_f32().unwrap(), [0.0, 2.0], "the ReLU ran once, inside the first layer's call");
    assert_eq!((first.load(Ordering::Relaxed), last.load(Ordering::Relaxed)), (2, 1));
}

#[test]
fn a_linear_layer_fused_with_its_relu_keeps_its_values_and_its_parameter_names() {
    let mut init = Init::new(0);
    let model = Sequential::new()
        .with(Linear::new(12, 5, &mut init).unwrap())
        .with(ReLU)
        .with(Linear::new(5, 3, &mut init).unwrap());
    let x = Var::constant(Tensor::rand_uniform(&[4, 12], -1.0, 1.0, DType::F32, &mut Rng::new(1)));
    let fused = model.forward(&x).unwrap().value().to_vec_f32().unwrap();
    let mut h = x.clone();
    for i in 0..model.len() {
        h = model.get(i).unwrap().forward(&h).unwrap();
    }
    assert_eq!(fused, h.value().to_vec_f32().unwrap(), "bit for bit, layer by layer");
    let names: Vec<String> = model.state_dict().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
}

/// A layer that records the shape it was handed and how: 1 for `forward`, 3 for
/// `forward_nearest_upsampled` (the small image and the factor).
struct UpsampleProbe(Arc<std::sync::Mutex<(u8, Vec<usize>)>>);

impl Module for UpsampleProbe {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        *self.0.lock().unwrap() = (1, x.shape());
        Ok(x.clone())
    }
    fn forward_nearest_upsampled(&self, x: &Var, scale: usize) -> nn::Result<Var> {
        *self.0.lock().unwrap() = (3, [x.shape(), vec![scale]].concat());
        Ok(x.clone())
    }
}

#[test]
fn sequential_hands_the_small_image_to_the_layer_after_a_nearest_upsampling_only() {
    let seen = Arc::new(std::sync::Mutex::new((0, vec![])));
    let nearest = Sequential::new().with(Upsample::nearest(2).unwrap()).with(UpsampleProbe(seen.clone()));
    nearest.forward(&ones(&[1, 2, 3, 5])).unwrap();
    assert_eq!(*seen.lock().unwrap(), (3, vec![1, 2, 3, 5, 2]));
    let bilinear = Sequential::new().with(Upsample::bilinear(2).unwrap()).with(UpsampleProbe(seen.clone()));
    bilinear.forward(&ones(&[1, 2, 3, 5])).unwrap();
    assert_eq!(*seen.lock().unwrap(), (1, vec![1, 2, 6, 10]), "bilinear upsampling runs as its own layer");
}

#[test]
fn a_convolution_after_a_nearest_upsampling_keeps_its_values_and_its_parameter_names() {
    let mut rng = Rng::new(3);
    let mut draw = |shape: &[usize]| Var::parameter(Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, &mut rng));
    let conv = |w: &Var, b: &Var, p| Conv2d::from_parameters(w.clone(), Some(b.clone()), p).unwrap();
    let (w, b, x) = (draw(&[4, 3, 3, 3]), draw(&[4]), draw(&[2, 3, 5, 4]));
    for (params, fused) in [(tensor::ops::conv2d::Conv2dParams::new(1, 1), true), (Default::default(), false)] {
        let model = Sequential::new().with(Upsample::nearest(2).unwrap()).with(conv(&w, &b, params));
        let y = model.forward(&x).unwrap();
        let mut h = x.clone();
        for i in 0..model.len() {
            h = model.get(i).unwrap().forward(&h).unwrap();
        }
        let (y, h) = (y.value().to_vec_f64().unwrap(), h.value().to_vec_f64().unwrap());
        assert_eq!(y.len(), h.len());
        let close = y.iter().zip(&h).all(|(a, b)| (a - b).abs() <= 1e-12 * b.abs().max(1.0));
        assert!(close, "padding {:?}: the fused layers give the layers' values", params.padding);
        // The phase form sums weights before it multiplies, so its last bits differ somewhere;
        // without padding the layer is not the phase form and runs as written, bit for bit.
        assert_eq!(y == h, !fused, "padding {:?}: fused only at padding 1", params.padding);
        let names: Vec<String> = model.state_dict().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["1.weight", "1.bias"]);
    }
}

/// The layer's output at x = −2, 0, 1.5 (float64).
fn values_at_three_points(layer: &dyn Module) -> Vec<f64> {
    let x = Var::constant(Tensor::from_vec(vec![-2.0f64, 0.0, 1.5], &[3]).unwrap());
    layer.forward(&x).unwrap().value().to_vec_f64().unwrap()
}

/// `got` equals `want` (PyTorch float64) to 1e-15 per element.
fn assert_values(layer: &str, got: &[f64], want: [f64; 3]) {
    let close = got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-15 * w.abs().max(1.0));
    assert!(close, "{layer}: {got:?}, PyTorch {want:?}");
}

// Each activation layer's values, as torch.nn's layer gives them: a layer wired to the wrong
// op (SiLU calling tanh) passes its gradient check, but not these.

#[test]
fn relu_zeroes_negative_inputs() {
    assert_values("ReLU", &values_at_three_points(&ReLU), [0.0, 0.0, 1.5]);
}

#[test]
fn silu_is_x_times_sigmoid_x() {
    assert_values("SiLU", &values_at_three_points(&SiLU), [-0.2384058440442351, 0.0, 1.2263617142904655]);
}

#[test]
fn sigmoid_is_the_logistic_function() {
    assert_values("Sigmoid", &values_at_three_points(&Sigmoid), [0.11920292202211755, 0.5, 0.8175744761936437]);
}

#[test]
fn tanh_is_the_hyperbolic_tangent() {
    assert_values("Tanh", &values_at_three_points(&Tanh), [-0.9640275800758169, 0.0, 0.9051482536448664]);
}

#[test]
fn leaky_relu_scales_negative_inputs_by_the_slope() {
    let x = Var::constant(Tensor::from_vec(vec![-2.0f64, 3.0], &[2]).unwrap());
    assert_eq!(LeakyReLU::new(0.2).forward(&x).unwrap().value().to_vec_f64().unwrap(), vec![-0.4, 3.0]);
    assert_eq!(LeakyReLU::default().negative_slope, 0.01);
}

#[test]
fn dropout_zeroes_about_p_of_the_inputs_and_scales_survivors_by_one_over_one_minus_p() {
    let d = Dropout::with_rng(0.25, Rng::new(4)).unwrap();
    let y = d.forward(&ones(&[100, 100])).unwrap().value().to_vec_f32().unwrap();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.25).abs() < 0.02, "dropped fraction {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
}

#[test]
fn dropout_is_the_identity_in_eval_mode() {
    let d = Dropout::with_rng(0.5, Rng::new(4)).unwrap();
    d.set_training(false);
    let x = Var::constant(Tensor::rand_uniform(&[10, 10], -1.0, 1.0, DType::F32, &mut Rng::new(1)));
    assert_eq!(d.forward(&x).unwrap().value().to_vec_f32().unwrap(), x.value().to_vec_f32().unwrap());
}

#[test]
fn dropout_masks_repeat_for_the_same_seed_and_differ_between_calls() {
    let (a, b) = (Dropout::with_rng(0.5, Rng::new(9)).unwrap(), Dropout::with_rng(0.5, Rng::new(9)).unwrap());
    let first = a.forward(&ones(&[64])).unwrap().value().to_vec_f32().unwrap();
    assert_eq!(first, b.forward(&ones(&[64])).unwrap().value().to_vec_f32().unwrap());
    assert_ne!(first, a.forward(&ones(&[64])).unwrap().value().to_vec_f32().unwrap());
}

#[test]
fn dropout_with_p_one_outputs_zeros_and_rejects_p_outside_zero_one() {
    let d = Dropout::with_rng(1.0, Rng::new(0)).unwrap();
    assert!(d.forward(&ones(&[5])).unwrap().value().to_vec_f32().unwrap().iter().all(|&v| v == 0.0));
    assert!(Dropout::with_rng(1.5, Rng::new(0)).is_err());
    assert!(Dropout::with_rng(-0.1, Rng::new(0)).is_err());
}

#[test]
fn invalid_layer_configurations_are_config_errors() {
    let mut init = Init::new(0);
    assert!(matches!(Linear::new(0, 3, &mut init), Err(nn::Error::Config { .. })));
    assert!(matches!(Conv2d::new(Conv2dConfig::new(3, 4, 0), &mut init), Err(nn::Error::Config { .. })));
    assert!(matches!(Conv2d::new(Conv2dConfig::new(3, 4, 3).stride(0), &mut init), Err(nn::Error::Config { .. })));
    assert!(matches!(MaxPool2d::new(Pool2dConfig::new(2).padding(2)), Err(nn::Error::Config { .. })));
    assert!(matches!(Upsample::nearest(0), Err(nn::Error::Config { .. })));
}

#[test]
fn a_wrong_input_shape_is_a_tensor_error_not_a_panic() {
    let l = Linear::new(4, 2, &mut Init::new(0)).unwrap();
    let err = l.forward(&ones(&[3, 5])).unwrap_err();
    assert!(matches!(err, nn::Error::Tensor(_)), "{err}");
    let c = Conv2d::new(Conv2dConfig::new(3, 4, 3), &mut Init::new(0)).unwrap();
    assert!(c.forward(&ones(&[1, 2, 8, 8])).is_err());
    assert!(Reshape::new(&[7]).forward(&ones(&[2, 6])).is_err());
}
