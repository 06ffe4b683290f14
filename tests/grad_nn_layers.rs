//! Gradient checks of every nn layer as a whole, in f64: each layer is built with its
//! default initialisation, then rebuilt inside the checked function around gradcheck's own
//! vars (`from_parameters` / `with_parameters`), so input AND parameter gradients are
//! compared with finite differences (relative error ≤ 1e-6). Includes BatchNorm in training
//! mode and a residual block (conv → bn → relu → conv → bn, + skip, → relu).

use crate::common;
use crate::nn_common::{tr, ResidualBlock};

use autograd::Var;
use common::{away_from_zero, check, rng, uniform};
use nn::{
    AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Dropout,
    Flatten, GlobalAvgPool, Init, LeakyReLU, Linear, MaxPool2d, Module, Pool2dConfig, Reshape, Sequential, SiLU,
    Sigmoid, Tanh, Upsample,
};
use tensor::ops::conv2d::Conv2dParams;
use tensor::{DType, Rng, Tensor};

/// f64 parameters drawn from the test's generator.
fn f64_init(r: &mut Rng) -> Init {
    Init::from_rng(Rng::new(r.next_u64()), DType::F64)
}

fn value(p: &Option<Var>) -> Tensor {
    p.as_ref().map(|p| p.value()).unwrap_or_else(|| Tensor::zeros(&[0], DType::F64))
}

#[test]
fn linear_layer_input_weight_and_bias_match_finite_differences() {
    let mut r = rng();
    let layer = Linear::new(5, 3, &mut f64_init(&mut r)).unwrap();
    let inputs = [uniform(&[4, 5], -1.0, 1.0, &mut r), layer.weight.value(), value(&layer.bias)];
    check(|v| tr(Linear::from_parameters(v[1].clone(), Some(v[2].clone())).and_then(|l| l.forward(&v[0]))), &inputs);
}

#[test]
fn conv2d_layer_stride2_pad1_matches_finite_differences() {
    let mut r = rng();
    let config = Conv2dConfig::new(3, 4, 3).stride(2).padding(1);
    let layer = Conv2d::new(config, &mut f64_init(&mut r)).unwrap();
    let inputs = [uniform(&[2, 3, 6, 5], -1.0, 1.0, &mut r), layer.weight.value(), value(&layer.bias)];
    check(
        |v| tr(Conv2d::from_parameters(v[1].clone(), Some(v[2].clone()), config.params).and_then(|l| l.forward(&v[0]))),
        &inputs,
    );
}

#[test]
fn conv2d_layer_dilation2_without_bias_matches_finite_differences() {
    let mut r = rng();
    let config = Conv2dConfig::new(2, 3, 3).padding(2).dilation(2).bias(false);
    let layer = Conv2d::new(config, &mut f64_init(&mut r)).unwrap();
    assert!(layer.bias.is_none());
    let inputs = [uniform(&[2, 2, 5, 5], -1.0, 1.0, &mut r), layer.weight.value()];
    check(|v| tr(Conv2d::from_parameters(v[1].clone(), None, config.params).and_then(|l| l.forward(&v[0]))), &inputs);
}

#[test]
fn conv_transpose2d_layer_stride2_pad1_output_padding1_matches_finite_differences() {
    let mut r = rng();
    let config = ConvTranspose2dConfig::new(3, 2, 3).stride(2).padding(1).output_padding(1);
    let layer = ConvTranspose2d::new(config, &mut f64_init(&mut r)).unwrap();
    let inputs = [uniform(&[2, 3, 3, 4], -1.0, 1.0, &mut r), layer.weight.value(), value(&layer.bias)];
    check(
        |v| {
            tr(ConvTranspose2d::from_parameters(v[1].clone(), Some(v[2].clone()), config.params)
                .and_then(|l| l.forward(&v[0])))
        },
        &inputs,
    );
}

/// Non-trivial affine parameters (the defaults 1 and 0 would hide a γ or β routing bug).
fn gamma_beta(c: usize, r: &mut Rng) -> (Tensor, Tensor) {
    (uniform(&[c], 0.5, 1.5, r), uniform(&[c], -0.5, 0.5, r))
}

#[test]
fn batch_norm2d_training_mode_matches_finite_differences() {
    let mut r = rng();
    let init = f64_init(&mut r);
    let (g, b) = gamma_beta(3, &mut r);
    let x = uniform(&[2, 3, 3, 4], -2.0, 2.0, &mut r);
    check(
        |v| {
            let bn =
                BatchNorm2d::new(3, &init).and_then(|bn| bn.with_parameters(Some(v[1].clone()), Some(v[2].clone())));
            tr(bn.and_then(|bn| bn.forward(&v[0])))
        },
        &[x, g, b],
    );
}

#[test]
fn batch_norm1d_training_mode_on_rank2_and_rank3_matches_finite_differences() {
    let mut r = rng();
    let init = f64_init(&mut r);
    let (g, b) = gamma_beta(4, &mut r);
    for shape in [vec![5, 4], vec![3, 4, 3]] {
        let x = uniform(&shape, -2.0, 2.0, &mut r);
        check(
            |v| {
                let bn = BatchNorm1d::new(4, &init)
                    .and_then(|bn| bn.with_parameters(Some(v[1].clone()), Some(v[2].clone())));
                tr(bn.and_then(|bn| bn.forward(&v[0])))
            },
            &[x, g.clone(), b.clone()],
        );
    }
}

#[test]
fn batch_norm2d_eval_mode_matches_finite_differences() {
    let mut r = rng();
    let init = f64_init(&mut r);
    let (g, b) = gamma_beta(3, &mut r);
    let (mean, var) = (uniform(&[3], -0.5, 0.5, &mut r), uniform(&[3], 0.5, 2.0, &mut r));
    let x = uniform(&[2, 3, 2, 3], -2.0, 2.0, &mut r);
    check(
        |v| {
            let bn =
                tr(BatchNorm2d::new(3, &init)
                    .and_then(|bn| bn.with_parameters(Some(v[1].clone()), Some(v[2].clone()))))?;
            bn.running_mean.set_value(mean.clone());
            bn.running_var.set_value(var.clone());
            bn.set_training(false);
            tr(bn.forward(&v[0]))
        },
        &[x, g, b],
    );
}

#[test]
fn pooling_layers_match_finite_differences() {
    let mut r = rng();
    // Distinct values keep every max-pool window's argmax stable under a 1e-6 nudge.
    let x = away_from_zero(&[2, 2, 6, 5], 1e-3, &mut r);
    let max = MaxPool2d::new(Pool2dConfig::new(3).stride(2).padding(1)).unwrap();
    check(|v| tr(max.forward(&v[0])), std::slice::from_ref(&x));
    let avg = AvgPool2d::new(Pool2dConfig::new(3).stride(2).padding(1)).unwrap();
    check(|v| tr(avg.forward(&v[0])), std::slice::from_ref(&x));
    check(|v| tr(GlobalAvgPool.forward(&v[0])), &[x]);
}

#[test]
fn upsample_layers_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[2, 2, 3, 4], -1.0, 1.0, &mut r);
    check(|v| tr(Upsample::nearest(2).and_then(|u| u.forward(&v[0]))), std::slice::from_ref(&x));
    check(|v| tr(Upsample::bilinear(2).and_then(|u| u.forward(&v[0]))), std::slice::from_ref(&x));
    check(|v| tr(Upsample::bilinear(3).and_then(|u| u.forward(&v[0]))), &[x]);
}

#[test]
fn activation_layers_match_finite_differences() {
    let mut r = rng();
    let x = away_from_zero(&[3, 7], 1e-3, &mut r);
    check(|v| tr(LeakyReLU::new(0.2).forward(&v[0])), std::slice::from_ref(&x));
    check(|v| tr(Sigmoid.forward(&v[0])), std::slice::from_ref(&x));
    check(|v| tr(SiLU.forward(&v[0])), std::slice::from_ref(&x));
    check(|v| tr(Tanh.forward(&v[0])), &[x]);
}

#[test]
fn dropout_layer_with_a_fixed_mask_matches_finite_differences() {
    let mut r = rng();
    let seed = r.next_u64();
    // A fresh layer with the same seed per call, so every evaluation draws the same mask.
    check(
        |v| tr(Dropout::with_rng(0.4, Rng::new(seed)).and_then(|d| d.forward(&v[0]))),
        &[uniform(&[4, 6], -1.0, 1.0, &mut r)],
    );
}

#[test]
fn sequential_mlp_with_flatten_and_reshape_matches_finite_differences() {
    let mut r = rng();
    let mut init = f64_init(&mut r);
    let (l1, l2) = (Linear::new(6, 5, &mut init).unwrap(), Linear::new(5, 6, &mut init).unwrap());
    let inputs = [
        uniform(&[3, 2, 3], -1.0, 1.0, &mut r),
        l1.weight.value(),
        value(&l1.bias),
        l2.weight.value(),
        value(&l2.bias),
    ];
    check(
        |v| {
            let model = Sequential::new()
                .with(Flatten)
                .with(tr(Linear::from_parameters(v[1].clone(), Some(v[2].clone())))?)
                .with(Tanh)
                .with(tr(Linear::from_parameters(v[3].clone(), Some(v[4].clone())))?)
                .with(Reshape::new(&[3, 2]));
            tr(model.forward(&v[0]))
        },
        &inputs,
    );
}

#[test]
fn residual_block_in_training_mode_matches_finite_differences() {
    let mut r = rng();
    let mut init = f64_init(&mut r);
    let config = Conv2dConfig::new(3, 3, 3).padding(1).bias(false);
    let (c1, c2) = (Conv2d::new(config, &mut init).unwrap(), Conv2d::new(config, &mut init).unwrap());
    let (g1, b1) = gamma_beta(3, &mut r);
    let (g2, b2) = gamma_beta(3, &mut r);
    let x = uniform(&[2, 3, 4, 4], -1.0, 1.0, &mut r);
    let inputs = [x, c1.weight.value(), g1, b1, c2.weight.value(), g2, b2];
    check(
        |v| {
            let bn = |g: &Var, b: &Var| {
                tr(BatchNorm2d::new(3, &init).and_then(|bn| bn.with_parameters(Some(g.clone()), Some(b.clone()))))
            };
            let block = ResidualBlock {
                conv1: tr(Conv2d::from_parameters(v[1].clone(), None, Conv2dParams::new(1, 1)))?,
                bn1: bn(&v[2], &v[3])?,
                conv2: tr(Conv2d::from_parameters(v[4].clone(), None, Conv2dParams::new(1, 1)))?,
                bn2: bn(&v[5], &v[6])?,
            };
            assert_eq!(block.named_parameters().len(), 6);
            tr(block.forward(&v[0]))
        },
        &inputs,
    );
}
