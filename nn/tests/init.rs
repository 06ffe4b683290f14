//! PyTorch's default initialisation: bounds per layer type, the uniform distribution inside
//! them, and reproducibility by seed.

use nn::{BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Init, Linear, Module};
use tensor::{DType, Tensor};

/// max |x|, and the variance of x (U(−b, b) has variance b²/3).
fn max_abs_and_var(t: &Tensor) -> (f64, f64) {
    let v = t.to_vec_f64().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (v.iter().fold(0.0f64, |m, x| m.max(x.abs())), var)
}

/// Samples lie in [−bound, bound), reach near it, and have the uniform variance bound²/3.
fn assert_uniform_within(t: &Tensor, bound: f64) {
    let (max, var) = max_abs_and_var(t);
    assert!(max <= bound, "max |x| {max} exceeds the bound {bound}");
    assert!(max > 0.95 * bound, "max |x| {max} is far inside the bound {bound}: wrong bound?");
    let want = bound * bound / 3.0;
    assert!((var - want).abs() < 0.15 * want, "variance {var}, uniform gives {want}");
}

#[test]
fn linear_weight_and_bias_are_uniform_within_one_over_sqrt_fan_in() {
    let l = Linear::new(50, 60, &mut Init::new(1)).unwrap();
    let bound = 1.0 / 50f64.sqrt();
    assert_uniform_within(&l.weight.value(), bound);
    assert!(max_abs_and_var(&l.bias.as_ref().unwrap().value()).0 <= bound);
    assert_eq!(l.weight.dtype(), DType::F32);
}

#[test]
fn conv2d_fan_in_is_in_channels_times_kernel_area() {
    let c = Conv2d::new(Conv2dConfig::new(6, 40, 3), &mut Init::new(2)).unwrap();
    assert_eq!(c.weight.shape(), vec![40, 6, 3, 3]);
    assert_uniform_within(&c.weight.value(), 1.0 / 54f64.sqrt());
    assert!(max_abs_and_var(&c.bias.as_ref().unwrap().value()).0 <= 1.0 / 54f64.sqrt());
}

#[test]
fn conv_transpose2d_fan_in_uses_weight_dim_one_like_pytorch() {
    // weight [in 40, out 6, 3, 3]: PyTorch's fan_in = 6·9 = 54 (not 40·9).
    let c = ConvTranspose2d::new(ConvTranspose2dConfig::new(40, 6, 3), &mut Init::new(3)).unwrap();
    assert_eq!(c.weight.shape(), vec![40, 6, 3, 3]);
    assert_uniform_within(&c.weight.value(), 1.0 / 54f64.sqrt());
    assert_eq!(c.bias.as_ref().unwrap().shape(), vec![6]);
    assert!(max_abs_and_var(&c.bias.as_ref().unwrap().value()).0 <= 1.0 / 54f64.sqrt());
}

#[test]
fn batch_norm_starts_as_identity_with_unit_running_variance() {
    let bn = BatchNorm2d::new(3, &Init::with_dtype(0, DType::F64)).unwrap();
    assert_eq!(bn.weight.as_ref().unwrap().value().to_vec_f64().unwrap(), vec![1.0; 3]);
    assert_eq!(bn.bias.as_ref().unwrap().value().to_vec_f64().unwrap(), vec![0.0; 3]);
    assert_eq!(bn.running_mean.value().to_vec_f64().unwrap(), vec![0.0; 3]);
    assert_eq!(bn.running_var.value().to_vec_f64().unwrap(), vec![1.0; 3]);
    assert_eq!(bn.num_batches_tracked.value().item().unwrap(), 0.0);
}

#[test]
fn the_same_seed_gives_the_same_parameters_and_another_seed_different_ones() {
    let build = |seed| {
        let mut init = Init::new(seed);
        let a = Linear::new(4, 5, &mut init).unwrap();
        let b = Conv2d::new(Conv2dConfig::new(2, 3, 3), &mut init).unwrap();
        let mut v: Vec<f32> = vec![];
        for (_, p) in a.named_parameters().into_iter().chain(b.named_parameters()) {
            v.extend(p.value().to_vec_f32().unwrap());
        }
        v
    };
    assert_eq!(build(7), build(7));
    assert_ne!(build(7), build(8));
}

#[test]
fn init_dtype_f64_builds_f64_parameters() {
    let l = Linear::new(3, 2, &mut Init::with_dtype(0, DType::F64)).unwrap();
    assert_eq!(l.weight.dtype(), DType::F64);
    assert_eq!(l.bias.unwrap().dtype(), DType::F64);
}
