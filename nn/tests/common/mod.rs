//! Helpers shared by the nn integration tests: the example residual block (a custom module
//! written in plain Rust), seeded inputs, and glue from nn results to gradcheck.
#![allow(dead_code)]

use autograd::Var;
use nn::{BatchNorm2d, Conv2d, Conv2dConfig, Init, Module};
use tensor::{DType, Rng, Tensor, TensorError};

/// A ResNet basic block: conv → bn → relu → conv → bn, plus the input, → relu.
/// x: [N, C, H, W] → [N, C, H, W].
pub struct ResidualBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
}

impl ResidualBlock {
    pub fn new(channels: usize, init: &mut Init) -> nn::Result<ResidualBlock> {
        let conv = || Conv2dConfig::new(channels, channels, 3).padding(1).bias(false);
        Ok(ResidualBlock {
            conv1: Conv2d::new(conv(), init)?,
            bn1: BatchNorm2d::new(channels, init)?,
            conv2: Conv2d::new(conv(), init)?,
            bn2: BatchNorm2d::new(channels, init)?,
        })
    }
}

impl Module for ResidualBlock {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let h = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let h = self.bn2.forward(&self.conv2.forward(&h)?)?;
        Ok(h.add(x)?.relu()?)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("conv1", &self.conv1);
        visit("bn1", &self.bn1);
        visit("conv2", &self.conv2);
        visit("bn2", &self.bn2);
    }
}

/// A generator from TEST_SEED or the clock, printed so a failure can be replayed.
pub fn rng() -> Rng {
    let seed = std::env::var("TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("(random inputs from TEST_SEED={seed})");
    Rng::new(seed)
}

pub fn uniform(shape: &[usize], lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, dtype, rng)
}

/// An nn result as a tensor result (gradcheck's closure type).
pub fn tr<T>(r: nn::Result<T>) -> tensor::Result<T> {
    r.map_err(|e| match e {
        nn::Error::Tensor(t) => t,
        other => TensorError::Invalid { op: "nn", msg: other.to_string() },
    })
}

/// A one-element-per-row tensor as f64 values.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "element {i}: got {g}, want {w} (tol {tol}); all: {got:?} vs {want:?}");
    }
}

/// A GPU context of the test's own, so that its launch counts are the test's alone; `None`
/// (a skip, said why) without an adapter unless VAE_REQUIRE_GPU=1.
pub fn own_gpu() -> Option<tensor::Device> {
    match gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware) {
        Ok(ctx) => Some(tensor::Device::from_context(std::sync::Arc::new(ctx))),
        Err(e) if std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
        Err(e) => panic!("VAE_REQUIRE_GPU=1 but no GPU: {e}"),
    }
}
