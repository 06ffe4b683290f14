//! The profiler bills each op family with the GPU work its ops recorded, and not with the
//! waits the profiler itself adds to time them. (A test binary of its own, not a module of
//! `tests/integration.rs`: the profiler's totals are process-wide, and other tests running
//! beside this one would add to them.)

mod common;

use common::parity::gpu;
use tensor::profile::{self, OpFamily};
use tensor::{DType, Rng, Tensor};

#[test]
fn a_gpu_op_bills_its_launches_to_its_family_and_not_the_profilers_waits() {
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
