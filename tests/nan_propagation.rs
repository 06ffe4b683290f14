//! NaN goes through the ops that pick or cut values, as in PyTorch (relu, leaky_relu, clamp,
//! maximum, minimum, max pooling), on the CPU and on the GPU alike. A NaN weight must show up as
//! a NaN loss, not be turned into 0 by the next relu and trained on silently.

use crate::common;

use common::parity::gpu;
use tensor::elementwise_table::{self as table, UnaryOp};
use tensor::ops::elementwise::{binary, unary};
use tensor::{DType, Device, Tensor};

/// [NaN, −2, −0.5, 0, 0.5, 2, NaN, 3] (odd positions of NaN; an awkward length of 8 + 1 below).
fn with_nans() -> Tensor {
    Tensor::from_vec(vec![f32::NAN, -2.0, -0.5, 0.0, 0.5, 2.0, f32::NAN, 3.0, 1.0], &[9]).unwrap()
}

fn nan_positions(t: &Tensor) -> Vec<usize> {
    t.to_vec_f32().unwrap().iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i).collect()
}

fn on(t: &Tensor, device: &Device) -> Tensor {
    t.to_device(device).unwrap()
}

fn unary_ops_propagate_nan_on(device: &Device) {
    let relu = UnaryOp::new(&table::RELU);
    let leaky = UnaryOp::with(&table::LEAKY_RELU, 0.1, 0.0);
    let (clamp, clamp_above) = (UnaryOp::with(&table::CLAMP, -1.0, 1.0), UnaryOp::with(&table::CLAMP, 0.0, 100.0));
    for op in [relu, leaky, clamp, clamp_above] {
        let y = unary(&on(&with_nans(), device), op).unwrap();
        assert_eq!(nan_positions(&y), [0, 6], "{op:?} on {}", device.name());
        // Everything else is the op's usual value: relu still cuts negatives.
        if std::ptr::eq(op.def, &table::RELU) {
            assert_eq!(y.to_vec_f32().unwrap()[1..6], [0.0, 0.0, 0.0, 0.5, 2.0]);
        }
    }
}

fn maximum_and_minimum_propagate_nan_from_either_side_on(device: &Device) {
    let a = with_nans();
    let b = Tensor::from_vec(vec![1.0f32, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN], &[9]).unwrap();
    for op in [&table::MAX, &table::MIN] {
        let y = binary(&on(&a, device), &on(&b, device), op).unwrap();
        assert_eq!(nan_positions(&y), [0, 1, 6, 8], "{op:?} on {}", device.name());
    }
}

fn max_pooling_propagates_nan_on(device: &Device) {
    let mut x = vec![0.5f32; 2 * 4 * 4];
    x[5] = f32::NAN; // plane 0, row 1, col 1: the first 2×2 window
    let x = Tensor::from_vec(x, &[1, 2, 4, 4]).unwrap();
    let (y, _) = tensor::ops::pool::max_pool2d(&on(&x, device), [2, 2], [2, 2], [0, 0]).unwrap();
    assert_eq!(nan_positions(&y), [0], "max_pool2d on {}", device.name());
}

/// A window holding two NaNs points at the later one, as PyTorch's
/// `max_pool2d(..., return_indices=True)` does (index 2 for [[NaN, 1], [NaN, 2]]): the
/// backward then sends the gradient where PyTorch's does.
fn max_pooling_points_at_the_last_nan_of_a_window_on(device: &Device) {
    let x = Tensor::from_vec(vec![f32::NAN, 1.0, f32::NAN, 2.0], &[1, 1, 2, 2]).unwrap();
    let (y, idx) = tensor::ops::pool::max_pool2d(&on(&x, device), [2, 2], [2, 2], [0, 0]).unwrap();
    assert_eq!(nan_positions(&y), [0], "max_pool2d on {}", device.name());
    assert_eq!(idx.to_vec().unwrap(), [2], "max_pool2d's index on {}", device.name());
}

#[test]
fn max_pooling_points_at_the_last_nan_of_a_window_on_the_cpu_and_the_reference_device() {
    max_pooling_points_at_the_last_nan_of_a_window_on(&Device::Cpu);
    max_pooling_points_at_the_last_nan_of_a_window_on(&Device::Reference);
}

#[test]
fn max_pooling_points_at_the_last_nan_of_a_window_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    max_pooling_points_at_the_last_nan_of_a_window_on(&gpu);
}

#[test]
fn relu_leaky_relu_and_clamp_propagate_nan_on_the_cpu() {
    unary_ops_propagate_nan_on(&Device::Cpu);
}

#[test]
fn maximum_and_minimum_propagate_nan_on_the_cpu() {
    maximum_and_minimum_propagate_nan_from_either_side_on(&Device::Cpu);
}

#[test]
fn max_pooling_propagates_nan_on_the_cpu() {
    max_pooling_propagates_nan_on(&Device::Cpu);
}

#[test]
fn relu_leaky_relu_and_clamp_propagate_nan_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    unary_ops_propagate_nan_on(&gpu);
}

#[test]
fn maximum_and_minimum_propagate_nan_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    maximum_and_minimum_propagate_nan_from_either_side_on(&gpu);
}

#[test]
fn max_pooling_propagates_nan_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    max_pooling_propagates_nan_on(&gpu);
}

#[test]
fn f64_relu_and_clamp_propagate_nan() {
    let x = with_nans().to_dtype(DType::F64).unwrap();
    for op in [UnaryOp::new(&table::RELU), UnaryOp::with(&table::CLAMP, -1.0, 1.0)] {
        let y = unary(&x, op).unwrap().to_vec_f64().unwrap();
        assert!(y[0].is_nan() && y[6].is_nan() && !y[1].is_nan(), "{op:?}: {y:?}");
    }
}

/// all_finite_each answers per tensor, for a mix of CPU and GPU tensors (the GPU ones in one
/// read-back): a NaN, +∞ or −∞ anywhere flags exactly its own tensor, also in a strided view.
#[test]
fn all_finite_each_flags_exactly_the_tensors_holding_nan_or_infinity_on_cpu_and_gpu() {
    let Some(gpu) = gpu() else { return };
    let clean = || Tensor::from_vec((0..37).map(|i| i as f32 - 18.0).collect(), &[37]).unwrap();
    let with = |bad: f32, at: usize| {
        let mut v: Vec<f32> = (0..37).map(|i| i as f32).collect();
        v[at] = bad;
        Tensor::from_vec(v, &[37]).unwrap()
    };
    let cases = [
        (clean(), true),
        (with(f32::NAN, 0), false),
        (with(f32::INFINITY, 36), false),
        (with(f32::NEG_INFINITY, 17), false),
        (Tensor::from_vec(vec![f32::MAX, -f32::MAX, 1e-45], &[3]).unwrap(), true),
        // a transposed (non-contiguous) view with the NaN off the diagonal
        (with(f32::NAN, 5).narrow(0, 0, 36).unwrap().reshape(&[6, 6]).unwrap().transpose(0, 1).unwrap(), false),
    ];
    for device in [Device::Cpu, gpu.clone()] {
        let tensors: Vec<Tensor> = cases.iter().map(|(t, _)| on(t, &device)).collect();
        // And both devices in one call: every other tensor back on the CPU.
        let mixed: Vec<Tensor> =
            tensors.iter().enumerate().map(|(i, t)| if i % 2 == 0 { on(t, &Device::Cpu) } else { t.clone() }).collect();
        let want: Vec<bool> = cases.iter().map(|(_, finite)| *finite).collect();
        for set in [&tensors, &mixed] {
            let refs: Vec<&Tensor> = set.iter().collect();
            assert_eq!(tensor::ops::finite::all_finite_each(&refs).unwrap(), want, "on {}", device.name());
        }
    }
}
