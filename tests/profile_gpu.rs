//! The profiler bills each op family with the GPU work its ops recorded, and not with the
//! waits the profiler itself adds to time them; what it counts also shows which GPU work an op
//! records. (A test binary of its own, not a module of `tests/integration.rs`: the profiler's
//! totals are process-wide, and other tests running beside these would add to them.)

mod common;

use std::sync::Mutex;

use common::parity::gpu;
use tensor::profile::{self, OpFamily};
use tensor::{DType, Rng, Tensor};

/// The profiler's totals are process-wide: its tests take turns.
static PROFILER: Mutex<()> = Mutex::new(());

#[test]
fn a_gpu_op_bills_its_launches_to_its_family_and_not_the_profilers_waits() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(3);
    let x = Tensor::rand_uniform(&[1000], -1.0, 1.0, DType::F32, &mut rng).to_device(&gpu).unwrap();
    let a = Tensor::rand_uniform(&[33, 17], -1.0, 1.0, DType::F32, &mut rng).to_device(&gpu).unwrap();
    let b = Tensor::rand_uniform(&[17, 9], -1.0, 1.0, DType::F32, &mut rng).to_device(&gpu).unwrap();
    profile::reset();
    profile::set_enabled(true);
    let _y = x.relu().unwrap();
    let _c = tensor::ops::matmul::matmul(&a, &b).unwrap();
    profile::set_enabled(false);
    let report = profile::snapshot();
    let (elementwise, matmul) = (report.gpu_counters(OpFamily::Elementwise), report.gpu_counters(OpFamily::Matmul));
    assert_eq!(elementwise.dispatches, 1, "{elementwise:?}");
    assert_eq!(matmul.dispatches, 1, "{matmul:?}");
    assert!(elementwise.workgroups >= 1 && matmul.workgroups >= 1);
    // Each scope waited for the GPU twice to time its op; neither wait is billed.
    assert_eq!((elementwise.waits, matmul.waits, elementwise.reads), (0, 0, 0));
    assert_eq!(report.gpu_counters(OpFamily::Conv), tensor::profile::GpuCounters::ZERO);
}

#[test]
fn gathering_contiguous_parts_along_the_first_axis_copies_without_a_launch() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    // The loss terms' gather: scalars reshaped to [1], one after another.
    let parts: Vec<Tensor> =
        (0..3).map(|_| Tensor::rand_uniform(&[1], -1.0, 1.0, DType::F32, &mut rng).to_device(&gpu).unwrap()).collect();
    let refs: Vec<&Tensor> = parts.iter().collect();
    profile::reset();
    profile::set_enabled(true);
    let out = tensor::ops::concat::cat(&refs, 0).unwrap();
    profile::set_enabled(false);
    let copies = profile::snapshot().gpu_counters(OpFamily::Copy);
    assert_eq!((copies.dispatches, copies.copies), (0, 3), "{copies:?}");
    let want: Vec<f32> = parts.iter().map(|p| p.to_vec::<f32>().unwrap()[0]).collect();
    assert_eq!(out.to_vec::<f32>().unwrap(), want);
}

#[test]
fn a_linear_layer_with_its_bias_and_relu_is_one_launch_on_the_gpu() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    let mut draw = |shape: &[usize]| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut rng).to_device(&gpu);
    let (x, w, b) = (draw(&[33, 17]).unwrap(), draw(&[9, 17]).unwrap(), draw(&[9]).unwrap());
    profile::reset();
    profile::set_enabled(true);
    let y = tensor::ops::matmul::linear(&x, &w, Some(&b), true).unwrap();
    profile::set_enabled(false);
    let report = profile::snapshot();
    let matmul = report.gpu_counters(OpFamily::Matmul);
    assert_eq!(matmul.dispatches, 1, "{matmul:?}");
    assert_eq!(report.gpu_counters(OpFamily::Elementwise), tensor::profile::GpuCounters::ZERO);
    // The values are the written-out ops' (on the CPU): x·Wᵀ + b, then ReLU.
    let cpu = |t: &Tensor| t.to_device(&tensor::Device::Cpu).unwrap();
    let want = tensor::ops::matmul::matmul(&cpu(&x), &cpu(&w).transpose(0, 1).unwrap())
        .and_then(|p| p.add(&cpu(&b)))
        .and_then(|p| p.relu())
        .unwrap();
    for (got, want) in y.to_vec::<f32>().unwrap().iter().zip(want.to_vec::<f32>().unwrap()) {
        assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{got} against {want}");
    }
}
