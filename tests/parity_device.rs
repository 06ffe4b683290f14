//! Devices themselves: moving tensors (`to_device`, `to_cpu`, the read-back points), the
//! errors a user can cause (an f64 tensor on the GPU, mixing devices in an op, CPU access to
//! GPU data, sizes and launches beyond the adapter's limits) and that ops only record work:
//! nothing is submitted or read back until a value is asked for.

mod common;

use std::sync::Mutex;

use common::parity::*;
use common::rng;
use tensor::ops::conv2d::{conv2d, Conv2dParams};
use tensor::ops::matmul::matmul;
use tensor::{DType, Device, DevicePreference, Tensor, TensorError};

/// Tests in this file share one GPU context; the batching test must not see another test's
/// read-back flush its pending work, so every test holds this lock (and the file is a test
/// binary of its own, not a module of `tests/integration.rs`, whose tests would not).
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn to_device_and_back_is_exact_and_views_read_back_only_their_elements() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed_cpu(&[7, 300], &mut r);
    let xg = x.to_device(&gpu).unwrap();
    assert_eq!(xg.device(), gpu);
    assert_eq!(xg.to_cpu().unwrap().to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
    let v = xg.narrow(1, 5, 3).unwrap().transpose(0, 1).unwrap();
    assert_eq!(v.to_vec_f32().unwrap(), x.narrow(1, 5, 3).unwrap().transpose(0, 1).unwrap().to_vec_f32().unwrap());
    assert_eq!(
        xg.narrow(0, 2, 1).unwrap().narrow(1, 7, 1).unwrap().item().unwrap(),
        x.to_vec_f64().unwrap()[2 * 300 + 7]
    );
    // f64 lives on the CPU: converting a GPU tensor reads it back.
    let d = xg.to_dtype(DType::F64).unwrap();
    assert!(!d.is_gpu());
    assert_eq!(d.to_vec_f64().unwrap(), x.to_vec_f64().unwrap());
    // Moving to the device it is on shares the storage.
    assert!(xg.to_device(&gpu).unwrap().shares_storage_with(&xg));
}

#[test]
fn tensors_read_together_come_back_as_read_alone_with_one_read_back() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed_cpu(&[7, 300], &mut r);
    let xg = x.to_device(&gpu).unwrap();
    let view = xg.narrow(1, 5, 3).unwrap().transpose(0, 1).unwrap();
    let (cpu, empty) = (signed_cpu(&[4], &mut r), Tensor::zeros(&[0], DType::F32).to_device(&gpu).unwrap());
    let scalar = xg.narrow(0, 2, 1).unwrap().narrow(1, 7, 1).unwrap();
    let tensors = [&xg, &view, &cpu, &empty, &scalar];
    let alone: Vec<Vec<f64>> = tensors.iter().map(|t| t.to_vec_f64().unwrap()).collect();
    let ctx = gpu.gpu_context().unwrap();
    let before = ctx.counters();
    assert_eq!(Tensor::to_vecs_f64(&tensors).unwrap(), alone);
    assert_eq!(ctx.counters().since(&before).reads, 1);
}

#[test]
fn constructors_on_a_device_and_zeros_like_keep_the_device() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let z = Tensor::zeros_on(&[3, 100], DType::F32, &gpu).unwrap();
    let f = Tensor::full_on(&[257], -2.5, DType::F32, &gpu).unwrap();
    let o = Tensor::ones_on(&[], DType::F32, &gpu).unwrap();
    assert!(z.is_gpu() && f.is_gpu() && o.is_gpu());
    assert_eq!(z.to_vec_f32().unwrap(), vec![0.0; 300]);
    assert_eq!(f.to_vec_f32().unwrap(), vec![-2.5; 257]);
    assert_eq!(o.item().unwrap(), 1.0);
    assert!(f.zeros_like().unwrap().is_gpu());
    assert_eq!(Tensor::zeros_on(&[2], DType::F64, &Device::Cpu).unwrap().dtype(), DType::F64);
}

#[test]
fn an_f64_tensor_cannot_move_to_the_gpu() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let x = Tensor::zeros(&[4], DType::F64);
    let err = x.to_device(&gpu).unwrap_err();
    assert!(matches!(err, TensorError::Device { op: "to_device", .. }), "{err}");
    assert!(err.to_string().contains("f32"), "{err}");
    assert!(Tensor::zeros_on(&[4], DType::F64, &gpu).is_err());
}

#[test]
fn mixing_devices_is_an_error_naming_the_op_and_both_devices() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (a, b) = (signed_cpu(&[4, 4], &mut r), signed_cpu(&[4, 4], &mut r));
    let bg = up(&b, &gpu);
    let gpu_name = gpu.name();
    let check = |op: &str, e: TensorError| {
        let msg = e.to_string();
        assert!(matches!(e, TensorError::Device { .. }), "{op}: {msg}");
        assert!(msg.contains(op) && msg.contains("cpu") && msg.contains(&gpu_name), "{op}: {msg}");
    };
    check("binary op", a.add(&bg).unwrap_err());
    check("matmul", matmul(&a, &bg).unwrap_err());
    check("cat", tensor::ops::concat::cat(&[&a, &bg], 0).unwrap_err());
    let x = signed_cpu(&[1, 4, 5, 5], &mut r);
    check(
        "conv2d",
        conv2d(&x, &up(&signed_cpu(&[2, 4, 3, 3], &mut r), &gpu), None, &Conv2dParams::default()).unwrap_err(),
    );
    // Host access to GPU data is an error too, not a panic.
    let e = bg.cpu_slice::<f32>().unwrap_err();
    assert!(matches!(e, TensorError::Device { op: "cpu_slice", .. }), "{e}");
}

#[test]
fn sizes_and_launches_beyond_the_adapter_limits_are_refused_naming_the_limit() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let limits = *gpu.gpu_context().unwrap().limits();
    // A tensor whose rows are each larger than the largest buffer the device creates (a
    // larger tensor of smaller rows lies in several buffers: tests/parity_chunked.rs; one
    // larger than a single binding is fine: tests/parity_large.rs).
    let too_many = (limits.max_buffer_size / 4 + 1) as usize;
    let e = Tensor::zeros_on(&[2, too_many], DType::F32, &gpu).unwrap_err();
    assert!(matches!(e, TensorError::Limit { .. }), "{e}");
    assert!(e.to_string().contains("max_buffer_size"), "{e}");
    // A broadcast view is free; materialising it past the limit is refused the same way.
    let one = Tensor::ones_on(&[1], DType::F32, &gpu).unwrap();
    let huge = one.broadcast_to(&[2, too_many]).unwrap();
    let e = huge.contiguous().unwrap_err();
    assert!(e.to_string().contains("max_buffer_size"), "{e}");
    let e = huge.exp().unwrap_err();
    assert!(matches!(e, TensorError::Limit { op: "unary op", .. }), "{e}");
    // A launch grid past max_compute_workgroups_per_dimension: a batch of tiny matmuls.
    let batch = limits.max_compute_workgroups_per_dimension as usize + 1;
    let a = Tensor::ones_on(&[batch, 1, 1], DType::F32, &gpu).unwrap();
    let b = Tensor::ones_on(&[1, 1], DType::F32, &gpu).unwrap();
    let e = matmul(&a, &b).unwrap_err();
    assert!(matches!(e, TensorError::Limit { op: "matmul", .. }), "{e}");
    assert!(e.to_string().contains("max_compute_workgroups_per_dimension"), "{e}");
    // One-dimensional launches are split over two grid axes instead: an element-wise op on
    // more elements than 65535 workgroups of 256 cover still runs.
    let n = limits.max_compute_workgroups_per_dimension as usize * 256 + 1000;
    let big = Tensor::full_on(&[n], 2.0, DType::F32, &gpu).unwrap().mul_scalar(3.0).unwrap();
    let tail = big.narrow(0, n - 3, 3).unwrap().to_vec_f32().unwrap();
    assert_eq!(tail, vec![6.0; 3]);
}

#[test]
fn ops_record_without_submitting_until_a_value_is_read() {
    let _l = lock();
    let Some(gpu) = gpu() else { return };
    let ctx = gpu.gpu_context().unwrap().clone();
    let mut r = rng();
    let x = up(&signed_cpu(&[64, 64], &mut r), &gpu);
    ctx.flush().unwrap();
    // x·xᵀ (the transpose read in place), exp, a row sum: three launches.
    let y = matmul(&x, &x.transpose(0, 1).unwrap()).unwrap().exp().unwrap().sum(&[1], false).unwrap();
    assert!(ctx.pending_dispatches() >= 3, "{} dispatches pending", ctx.pending_dispatches());
    let _ = y.to_vec_f32().unwrap();
    assert_eq!(ctx.pending_dispatches(), 0, "a read-back submits the pending work");
}

#[test]
fn device_choice_follows_the_preference_and_describes_itself() {
    let _l = lock();
    assert_eq!(Device::from_preference(DevicePreference::Cpu).unwrap(), Device::Cpu);
    assert!(Device::Cpu.describe().starts_with("cpu"));
    let Some(gpu) = gpu() else { return };
    let info = gpu.gpu_context().unwrap().info().clone();
    assert!(gpu.describe().contains(&info.name), "{}", gpu.describe());
    eprintln!("gpu: {}", gpu.describe());
    let auto = Device::from_preference(DevicePreference::Auto).unwrap();
    eprintln!("auto: {}", auto.describe());
    if info.is_software() {
        // A software rasteriser is slower at compute than the CPU kernels: auto skips it.
        assert_eq!(auto, Device::Cpu);
    } else {
        assert_eq!(auto, gpu);
    }
    // The GPU is one process-wide context: asking again gives the same device.
    assert_eq!(Device::gpu().unwrap(), gpu);
}
