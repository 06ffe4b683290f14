//! BatchNorm running statistics against hand-computed values (momentum 0.1, unbiased batch
//! variance, as PyTorch), and the switch between batch and running statistics.

use crate::common;

use autograd::Var;
use common::{assert_close, own_gpu};
use nn::{BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Init, Module, ReLU, Sequential};
use tensor::{DType, Tensor};

fn f64_init() -> Init {
    Init::with_dtype(0, DType::F64)
}

/// x: [4, 2]; feature 0 = 1, 2, 3, 4 (mean 2.5, unbiased var 5/3); feature 1 = 0, 0, 2, 2
/// (mean 1, unbiased var 4/3).
fn batch() -> Var {
    Var::constant(Tensor::from_vec(vec![1.0, 0.0, 2.0, 0.0, 3.0, 2.0, 4.0, 2.0], &[4, 2]).unwrap())
}

#[test]
fn one_training_step_folds_batch_mean_and_unbiased_variance_with_momentum_point_one() {
    let bn = BatchNorm1d::new(2, &f64_init()).unwrap();
    bn.forward(&batch()).unwrap();
    // running_mean = 0.9·0 + 0.1·[2.5, 1]; running_var = 0.9·1 + 0.1·[5/3, 4/3].
    assert_close(&bn.running_mean.value().to_vec_f64().unwrap(), &[0.25, 0.1], 1e-15);
    assert_close(&bn.running_var.value().to_vec_f64().unwrap(), &[0.9 + 0.5 / 3.0, 0.9 + 0.4 / 3.0], 1e-15);
    assert_eq!(bn.num_batches_tracked.value().item().unwrap(), 1.0);
}

#[test]
fn two_training_steps_compound_the_running_averages() {
    let bn = BatchNorm1d::new(2, &f64_init()).unwrap();
    bn.forward(&batch()).unwrap();
    bn.forward(&batch()).unwrap();
    // mean: 0.9·0.25 + 0.25 = 0.475; var: 0.9·(0.9 + 1/6) + 1/6.
    assert_close(&bn.running_mean.value().to_vec_f64().unwrap(), &[0.475, 0.19], 1e-15);
    let v0 = 0.9 * (0.9 + 0.5 / 3.0) + 0.5 / 3.0;
    let v1 = 0.9 * (0.9 + 0.4 / 3.0) + 0.4 / 3.0;
    assert_close(&bn.running_var.value().to_vec_f64().unwrap(), &[v0, v1], 1e-15);
    assert_eq!(bn.num_batches_tracked.value().item().unwrap(), 2.0);
}

#[test]
fn batch_norm2d_statistics_pool_over_batch_and_both_spatial_axes() {
    // x: [2, 1, 1, 2] = 0, 2 | 4, 6: m = 4 values, mean 3, unbiased var (9+1+1+9)/3 = 20/3.
    let x = Var::constant(Tensor::from_vec(vec![0.0, 2.0, 4.0, 6.0], &[2, 1, 1, 2]).unwrap());
    let bn = BatchNorm2d::new(1, &f64_init()).unwrap();
    let y = bn.forward(&x).unwrap();
    assert_close(&bn.running_mean.value().to_vec_f64().unwrap(), &[0.3], 1e-15);
    assert_close(&bn.running_var.value().to_vec_f64().unwrap(), &[0.9 + 2.0 / 3.0], 1e-14);
    // Training output uses the biased variance 5: (x − 3)/√(5 + 1e-5).
    let s = (5.0f64 + 1e-5).sqrt();
    assert_close(&y.value().to_vec_f64().unwrap(), &[-3.0 / s, -1.0 / s, 1.0 / s, 3.0 / s], 1e-12);
}

#[test]
fn eval_mode_normalises_with_running_statistics_and_leaves_them_alone() {
    let bn = BatchNorm1d::new(2, &f64_init()).unwrap();
    bn.running_mean.set_value(Tensor::from_vec(vec![1.0, -1.0], &[2]).unwrap());
    bn.running_var.set_value(Tensor::from_vec(vec![4.0, 0.25], &[2]).unwrap());
    bn.weight.as_ref().unwrap().set_value(Tensor::from_vec(vec![2.0, 1.0], &[2]).unwrap());
    bn.bias.as_ref().unwrap().set_value(Tensor::from_vec(vec![0.5, 0.0], &[2]).unwrap());
    bn.set_training(false);
    let x = Var::constant(Tensor::from_vec(vec![3.0, 0.0], &[1, 2]).unwrap());
    let y = bn.forward(&x).unwrap().value().to_vec_f64().unwrap();
    // (3 − 1)/√(4 + eps)·2 + 0.5 and (0 + 1)/√(0.25 + eps).
    assert_close(&y, &[2.0 / (4.0f64 + 1e-5).sqrt() * 2.0 + 0.5, 1.0 / (0.25f64 + 1e-5).sqrt()], 1e-12);
    assert_eq!(bn.running_mean.value().to_vec_f64().unwrap(), vec![1.0, -1.0]);
    assert_eq!(bn.num_batches_tracked.value().item().unwrap(), 0.0);
}

/// Conv2d(2 → 3, 3×3, padding 1) then a BatchNorm2d whose running statistics, γ and β are
/// not the defaults.
fn conv_then_batch_norm(bias: bool) -> Sequential {
    let mut init = f64_init();
    let conv = Conv2d::new(Conv2dConfig::new(2, 3, 3).padding(1).bias(bias), &mut init).unwrap();
    let bn = BatchNorm2d::new(3, &init).unwrap();
    let set = |v: &[f64]| Tensor::from_vec(v.to_vec(), &[3]).unwrap();
    bn.running_mean.set_value(set(&[0.5, -0.25, 2.0]));
    bn.running_var.set_value(set(&[4.0, 0.5, 0.01]));
    bn.weight.as_ref().unwrap().set_value(set(&[1.5, -0.5, 2.0]));
    bn.bias.as_ref().unwrap().set_value(set(&[0.25, 1.0, -3.0]));
    Sequential::new().with(conv).with(bn)
}

#[test]
fn a_batch_norm_in_eval_mode_folds_into_the_convolution_before_it_and_the_output_stays() {
    let x = Var::constant(Tensor::rand_uniform(&[2, 2, 5, 5], -1.0, 1.0, DType::F64, &mut tensor::Rng::new(4)));
    for bias in [false, true] {
        let mut net = conv_then_batch_norm(bias).with(ReLU);
        net.set_training(false);
        let before = net.forward(&x).unwrap().value().to_vec_f64().unwrap();
        assert_eq!(net.fold_batch_norms().unwrap(), 1, "bias {bias}");
        assert_eq!(net.len(), 2, "the batch norm's place is gone");
        let after = net.forward(&x).unwrap().value().to_vec_f64().unwrap();
        assert_close(&after, &before, 1e-12);
    }
}

#[test]
fn a_batch_norm_in_training_mode_is_not_folded() {
    let mut net = conv_then_batch_norm(true);
    assert_eq!(net.fold_batch_norms().unwrap(), 0);
    assert_eq!(net.len(), 2);
}

#[test]
fn a_custom_momentum_weights_the_new_batch_by_it() {
    let config = BatchNormConfig { momentum: 0.5, ..BatchNormConfig::default() };
    let bn = BatchNorm1d::with_config(2, config, &f64_init()).unwrap();
    bn.forward(&batch()).unwrap();
    assert_close(&bn.running_mean.value().to_vec_f64().unwrap(), &[1.25, 0.5], 1e-15);
}

#[test]
fn training_on_a_single_value_per_channel_is_an_error_not_a_division_by_zero() {
    let bn = BatchNorm1d::new(2, &f64_init()).unwrap();
    let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap());
    assert!(bn.forward(&x).is_err());
    assert_eq!(bn.num_batches_tracked.value().item().unwrap(), 0.0);
}

#[test]
fn a_wrong_channel_count_is_an_error_naming_the_shape() {
    let bn = BatchNorm2d::new(3, &f64_init()).unwrap();
    let x = Var::constant(Tensor::zeros(&[2, 4, 2, 2], DType::F64));
    let msg = bn.forward(&x).unwrap_err().to_string();
    assert!(msg.contains("[2, 4, 2, 2]") && msg.contains("C = 3"), "{msg}");
}

#[test]
fn running_statistics_take_no_part_in_the_gradient_graph() {
    let bn = BatchNorm1d::new(2, &f64_init()).unwrap();
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 0.0, 2.0, 0.0, 3.0, 2.0, 4.0, 2.0], &[4, 2]).unwrap());
    bn.forward(&x).unwrap().square().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(x.grad().is_some());
    assert!(bn.weight.as_ref().unwrap().grad().is_some());
}

#[test]
fn a_training_forward_on_the_gpu_is_three_launches_and_updates_the_running_statistics_as_on_the_cpu() {
    let Some(gpu) = own_gpu() else { return };
    let x = Tensor::rand_uniform(&[4, 3, 5, 5], -1.0, 2.0, DType::F32, &mut tensor::Rng::new(7));
    let init = Init::with_dtype(0, DType::F32);
    let (on_cpu, on_gpu) = (BatchNorm2d::new(3, &init).unwrap(), BatchNorm2d::new(3, &init).unwrap());
    on_gpu.to_device(&gpu).unwrap();
    on_cpu.forward(&Var::constant(x.clone())).unwrap();
    let counters = || gpu.gpu_context().unwrap().counters();
    let before = counters();
    on_gpu.forward(&Var::constant(x.to_device(&gpu).unwrap())).unwrap();
    // Statistics, normalisation, and the running mean and variance together (the batch count,
    // an integer buffer, stays on the CPU).
    assert_eq!(counters().since(&before).dispatches, 3);
    for (name, got, want) in [
        ("running_mean", &on_gpu.running_mean, &on_cpu.running_mean),
        ("running_var", &on_gpu.running_var, &on_cpu.running_var),
    ] {
        let got = got.value().to_device(&tensor::Device::Cpu).unwrap().to_vec_f64().unwrap();
        for (g, w) in got.iter().zip(want.value().to_vec_f64().unwrap()) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}: {got:?} against {w}");
        }
    }
}
