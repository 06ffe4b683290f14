//! Shared helpers for the integration tests: seeded random inputs (fresh seed per run unless
//! `TEST_SEED` is set; the seed is printed so a failure can be replayed) and gradcheck glue.
#![allow(dead_code)]

pub mod parity;

use std::sync::atomic::{AtomicU64, Ordering};

use autograd::gradcheck::{gradcheck, GradcheckOptions};
use autograd::Var;
use tensor::{DType, Result, Rng, Tensor};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new generator: seeded from TEST_SEED or the clock, printed for replay.
pub fn rng() -> Rng {
    let base = std::env::var("TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let seed = base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    eprintln!("(random inputs from TEST_SEED={seed})");
    Rng::new(seed)
}

/// Uniform values in [lo, hi), f64.
pub fn uniform(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, DType::F64, rng)
}

/// Normal values kept at least `gap` away from 0, so kinks (relu, abs, max) are never within
/// a finite-difference step of an input.
pub fn away_from_zero(shape: &[usize], gap: f64, rng: &mut Rng) -> Tensor {
    let v: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|_| {
            let x = rng.normal();
            if x.abs() < gap {
                gap.copysign(x) + x
            } else {
                x
            }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Runs gradcheck with the project's default tolerance (relative error ≤ 1e-6) and panics
/// with the report's message on failure.
pub fn check(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    check_with(f, inputs, &GradcheckOptions::default());
}

pub fn check_with(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor], opts: &GradcheckOptions) {
    match gradcheck(f, inputs, opts) {
        Ok(report) => assert!(report.worst() <= opts.tol),
        Err(e) => panic!("{e}"),
    }
}
