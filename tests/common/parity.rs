//! Helpers of the parity tests: the GPU device (or a printed skip), random f32 inputs that are
//! never zero, and the comparison with relative error ≤ 1e-4.
//!
//! The oracle is the reference device: [`signed`] and [`uniform32`] make their tensors there,
//! so the result a test computes from them before moving them [`up`] to the GPU is the plain
//! definition's (`tensor/src/reference/`). The tests of tensors larger than one GPU binding
//! or buffer (`parity_large`, `parity_chunked`) and of the device plumbing (`parity_device`)
//! take theirs on the CPU ([`signed_cpu`], [`uniform32_cpu`]): at their sizes the plain loops
//! would take minutes, and what they check is that a split launch computes what one launch
//! does; the CPU kernels they compare with are held to the reference device here and in
//! `tests/reference_tier.rs`.

use std::sync::Once;

use tensor::{DType, Device, DevicePreference, Rng, Tensor};

/// Relative tolerance of every parity comparison.
pub const TOL: f64 = 1e-4;

/// The GPU device (any adapter, software included), or `None` after printing why, so the
/// test returns early: a skip. With `VAE_REQUIRE_GPU=1` (CI) a missing GPU fails instead.
pub fn gpu() -> Option<Device> {
    static SAID: Once = Once::new();
    match Device::from_preference(DevicePreference::Gpu) {
        Ok(d) => {
            SAID.call_once(|| eprintln!("parity tests on {}", d.describe()));
            Some(d)
        }
        Err(e) => {
            if std::env::var("VAE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("VAE_REQUIRE_GPU=1 but no GPU: {e}");
            }
            SAID.call_once(|| eprintln!("skipping GPU parity tests: {e} (set VAE_REQUIRE_GPU=1 to fail instead)"));
            None
        }
    }
}

/// Bytes a kernel of [`small_binding_gpu`] binds at most: 512 Ki f32.
pub const SMALL_BINDING_BYTES: u64 = 2 << 20;

/// A GPU device whose kernels bind at most [`SMALL_BINDING_BYTES`] (`gpu::Context::
/// with_binding_limit`): tensors of several MB there take the paths that tensors beyond the
/// device's own limit take (128 MiB on lavapipe, 2 GiB on an H100), in a fraction of the time,
/// on any adapter. `None` after printing why, as [`gpu`].
pub fn small_binding_gpu() -> Option<Device> {
    static DEVICE: std::sync::OnceLock<Option<Device>> = std::sync::OnceLock::new();
    DEVICE.get_or_init(|| gpu_with(|pref| gpu::Context::with_binding_limit(pref, SMALL_BINDING_BYTES))).clone()
}

/// Bytes a buffer of [`small_buffer_gpu`] holds at most: 1 Mi f32.
pub const SMALL_BUFFER_BYTES: u64 = 4 << 20;

/// A GPU device whose buffers hold at most [`SMALL_BUFFER_BYTES`] and whose kernels bind at
/// most [`SMALL_BINDING_BYTES`] (`gpu::Context::with_buffer_limit`): a tensor of several MB
/// there lies in chunks, as a tensor beyond the device's own max_buffer_size does (4 GiB on an
/// H100), and each chunk is bound in parts. `None` after printing why, as [`gpu`].
pub fn small_buffer_gpu() -> Option<Device> {
    static DEVICE: std::sync::OnceLock<Option<Device>> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| gpu_with(|pref| gpu::Context::with_buffer_limit(pref, SMALL_BUFFER_BYTES, SMALL_BINDING_BYTES)))
        .clone()
}

/// `gpu` (a device with a lowered limit; `None` as [`gpu`]), once checked that a tensor of
/// `shape` exceeds the `limit` of its context there, in f32: a test of the split paths whose
/// tensor fits would pass without reaching them.
pub fn exceeding(gpu: Option<Device>, limit: fn(&gpu::Context) -> usize, shape: &[usize]) -> Option<Device> {
    let gpu = gpu?;
    let len = limit(gpu.gpu_context().expect("a GPU device"));
    assert!(shape.iter().product::<usize>() > len, "{shape:?} fits {len} f32");
    Some(gpu)
}

/// A GPU context of the test's own, so that its counters (launches, read-backs) are the
/// test's alone; `None` after printing why, as [`gpu`].
pub fn own_gpu() -> Option<Device> {
    gpu_with(gpu::Context::new)
}

/// A device on a GPU context of its own that `open` makes (with limits lowered, say); `None`
/// after printing why when there is no GPU at all, as [`gpu`]. A context that does not open
/// on a device that did is a failure.
pub fn gpu_with(open: impl FnOnce(gpu::AdapterPreference) -> gpu::Result<gpu::Context>) -> Option<Device> {
    gpu()?;
    match open(gpu::AdapterPreference::AnyIncludingSoftware) {
        Ok(ctx) => Some(Device::from_context(std::sync::Arc::new(ctx))),
        Err(e) => panic!("a GPU device opened but a second context on it did not: {e}"),
    }
}

/// f32 values with |x| in [0.1, 1) and a random sign: never zero, O(1); on the reference
/// device, the oracle.
pub fn signed(shape: &[usize], rng: &mut Rng) -> Tensor {
    signed_cpu(shape, rng).to_device(&Device::Reference).unwrap()
}

/// [`signed`] on the CPU.
pub fn signed_cpu(shape: &[usize], rng: &mut Rng) -> Tensor {
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            let m = rng.uniform(0.1, 1.0) as f32;
            if rng.next_f64() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// f32 values uniform in [lo, hi), on the reference device, the oracle.
pub fn uniform32(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
    uniform32_cpu(shape, lo, hi, rng).to_device(&Device::Reference).unwrap()
}

/// [`uniform32`] on the CPU.
pub fn uniform32_cpu(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, DType::F32, rng)
}

/// The same tensor on the GPU.
pub fn up(t: &Tensor, gpu: &Device) -> Tensor {
    let g = t.to_device(gpu).unwrap();
    assert!(g.is_gpu());
    g
}

/// Asserts that `gpu` (a GPU tensor) equals the oracle's result `cpu` (the reference device's,
/// or the CPU's in the tests of tensors larger than one binding) element-wise:
/// |g − c| ≤ TOL·max(|c|, scale_i), where `scale` (same shape, on the host) is the natural magnitude
/// of each element: for a sum of products, the same op on |inputs|, so that cancellation
/// does not turn rounding into a large relative error. `None` means 1 (element-wise maps).
pub fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor, scale: Option<&Tensor>) {
    assert!(gpu.is_gpu(), "{what}: the GPU result is on {}", gpu.device().name());
    assert_within_tolerance(what, gpu, cpu, scale);
}

/// [`assert_close`] for a result on any device against an oracle in host memory (the CPU's
/// or the reference device's).
pub fn assert_within_tolerance(what: &str, got: &Tensor, oracle: &Tensor, scale: Option<&Tensor>) {
    assert!(!oracle.is_gpu(), "{what}: the oracle is on the GPU");
    assert_eq!(got.shape(), oracle.shape(), "{what}: shape");
    let (g, c) = (got.to_vec_f64().unwrap(), oracle.to_vec_f64().unwrap());
    let s = scale.map(|s| s.to_vec_f64().unwrap()).unwrap_or_else(|| vec![1.0; c.len()]);
    assert_eq!(s.len(), c.len(), "{what}: scale shape");
    let mut bad = vec![];
    let mut worst: f64 = 0.0;
    for i in 0..c.len() {
        let err = (g[i] - c[i]).abs() / c[i].abs().max(s[i].abs()).max(1e-30);
        worst = worst.max(if err.is_nan() { f64::INFINITY } else { err });
        if err.is_nan() || err > TOL {
            bad.push(format!("[{i}] got {} oracle ({}) {} (rel err {err:.2e})", g[i], oracle.device(), c[i]));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} elements differ (shape {:?}):\n  {}",
        bad.len(),
        c.len(),
        oracle.shape(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n  ")
    );
    assert!(worst <= TOL);
}

/// |t| on the CPU (for scale tensors).
pub fn abs(t: &Tensor) -> Tensor {
    t.abs().unwrap()
}

/// `scale` for [`assert_close`] on a result whose elements may cancel (a gradient): 1 % of
/// the tensor's largest magnitude, everywhere. An element that sums to near zero is then
/// compared at that scale instead of its own tiny value.
pub fn tensor_scale(t: &Tensor) -> Tensor {
    let m = t.to_vec_f64().unwrap().iter().fold(0.0f64, |a, &x| a.max(x.abs()));
    Tensor::full(t.shape(), 0.01 * m, DType::F32)
}

/// Runs `f` on parameters made from `inputs` on the reference device (the oracle: every op
/// by its plain definition), on the CPU and on the GPU, back-propagates L = mean((out + 1)²)
/// (a non-uniform upstream gradient, so a backward that ignores it fails), and holds the
/// CPU's and the GPU's outputs and gradients to the reference device's.
pub fn assert_backward_parity(
    what: &str,
    gpu: &Device,
    inputs: &[Tensor],
    f: impl Fn(&[autograd::Var]) -> tensor::Result<autograd::Var>,
) {
    let run = |ts: Vec<Tensor>| {
        let vars: Vec<autograd::Var> = ts.into_iter().map(autograd::Var::parameter).collect();
        let out = f(&vars).unwrap();
        let loss = out.add_scalar(1.0).unwrap().square().unwrap().mean_all().unwrap();
        loss.backward().unwrap();
        let grads: Vec<Tensor> = vars.iter().map(|v| v.grad().expect("a gradient")).collect();
        (out.value(), grads)
    };
    let (out_r, grads_r) = run(inputs.iter().map(|t| t.to_device(&Device::Reference).unwrap()).collect());
    let (out_c, grads_c) = run(inputs.iter().map(|t| t.to_cpu().unwrap()).collect());
    let (out_g, grads_g) = run(inputs.iter().map(|t| up(t, gpu)).collect());
    for (device, out, grads) in [("gpu", &out_g, &grads_g), ("cpu", &out_c, &grads_c)] {
        let what = format!("{what} on the {device}");
        assert_within_tolerance(&format!("{what}: output"), out, &out_r, Some(&tensor_scale(&out_r)));
        for (i, (g, r)) in grads.iter().zip(&grads_r).enumerate() {
            assert_eq!(g.device().is_gpu(), device == "gpu", "{what}: gradient {i} was computed on {}", g.device());
            assert_within_tolerance(&format!("{what}: gradient of input {i}"), g, r, Some(&tensor_scale(r)));
        }
    }
}
