//! Inverted dropout: in training each element is zeroed with probability p and the survivors
//! are scaled by 1/(1 − p), so evaluation (the identity) needs no rescaling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use autograd::Var;
use tensor::{DType, Rng, Tensor};

use crate::error::{config_err, Result};
use crate::init::Init;
use crate::module::Module;

/// Any shape → same shape. The mask comes from the layer's own seeded generator.
#[derive(Debug)]
pub struct Dropout {
    /// Probability of zeroing an element, in [0, 1].
    pub p: f64,
    rng: Mutex<Rng>,
    training: AtomicBool,
}

impl Dropout {
    /// Dropout with probability `p` in [0, 1]; its generator is seeded from `init.rng`.
    pub fn new(p: f64, init: &mut Init) -> Result<Dropout> {
        Dropout::with_rng(p, Rng::new(init.rng.next_u64()))
    }

    /// Dropout with probability `p` drawing its masks from `rng`.
    pub fn with_rng(p: f64, rng: Rng) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return config_err("Dropout", format!("p must be in [0, 1], got {p}"));
        }
        Ok(Dropout { p, rng: Mutex::new(rng), training: AtomicBool::new(true) })
    }

    /// The generator's state (to checkpoint and resume a run exactly).
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).state()
    }

    /// Restores the generator from [`Dropout::rng_state`].
    pub fn set_rng_state(&self, state: [u64; 4]) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(state);
    }

    /// 1/(1 − p) where a uniform draw is ≥ p, else 0, shaped like the input.
    fn mask(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let keep_scale = 1.0 / (1.0 - self.p);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let m: Vec<f64> = (0..n).map(|_| if rng.next_f64() >= self.p { keep_scale } else { 0.0 }).collect();
        Ok(Tensor::from_vec(m, shape)?.to_dtype(dtype)?)
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> Result<Var> {
        if !self.training.load(Ordering::Relaxed) || self.p == 0.0 {
            return Ok(x.clone());
        }
        if self.p == 1.0 {
            // Everything dropped (PyTorch returns zeros rather than dividing by 0).
            let zeros = Tensor::zeros_on(&x.shape(), x.dtype(), &x.value().device())?;
            return Ok(x.mul(&Var::constant(zeros))?);
        }
        // Drawn on the host from the layer's own generator (so a seed gives the same mask on
        // every device), then moved to the input's device.
        let mask = self.mask(&x.shape(), x.dtype())?.to_device(&x.value().device())?;
        let mask = Var::constant(mask);
        Ok(x.mul(&mask)?)
    }

    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
