//! Parameter initialisation with PyTorch's defaults, from a seeded generator so a model is
//! reproducible from its seed.
//!
//! PyTorch initialises Linear, Conv2d and ConvTranspose2d weights with
//! `kaiming_uniform_(w, a=√5)`: U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1 + a²)),
//! which for a = √5 is b = 1/√fan_in; and their biases with U(−1/√fan_in, 1/√fan_in).
//! fan_in comes from `_calculate_fan_in_and_fan_out`: weight dim 1 times the receptive field,
//! so for a ConvTranspose2d weight [C_in, C_out, kH, kW] it is C_out·kH·kW.

use tensor::{DType, Rng, Tensor};

use crate::error::{config_err, Result};

/// What a layer constructor needs to create its parameters: a seeded generator and the
/// float type (f32 normally; f64 for gradient checks).
#[derive(Clone, Debug)]
pub struct Init {
    /// The generator parameters are drawn from (advanced by every draw).
    pub rng: Rng,
    /// The float type of the parameters created.
    pub dtype: DType,
}

impl Init {
    /// f32 parameters from `seed`.
    pub fn new(seed: u64) -> Init {
        Init { rng: Rng::new(seed), dtype: DType::F32 }
    }

    /// Parameters of `dtype` from `seed`.
    pub fn with_dtype(seed: u64, dtype: DType) -> Init {
        Init { rng: Rng::new(seed), dtype }
    }

    /// Parameters of `dtype` drawn from an existing generator.
    pub fn from_rng(rng: Rng, dtype: DType) -> Init {
        Init { rng, dtype }
    }
}

/// The `a` PyTorch passes to `kaiming_uniform_` for layer weights.
pub const DEFAULT_KAIMING_A: f64 = 2.236_067_977_499_79; // √5

/// (fan_in, fan_out) of a weight exactly as PyTorch's `_calculate_fan_in_and_fan_out`:
/// fan_in = shape\[1\]·receptive field, fan_out = shape\[0\]·receptive field, where the receptive
/// field is the product of the dims after the first two.
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return config_err("init", format!("fan in and fan out need a weight of rank ≥ 2, got shape {shape:?}"));
    }
    let receptive_field: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive_field, shape[0] * receptive_field))
}

/// The bound b of `kaiming_uniform_(a, mode='fan_in', nonlinearity='leaky_relu')`:
/// gain = √(2/(1 + a²)), b = gain·√(3/fan_in).
pub fn kaiming_uniform_bound(a: f64, fan_in: usize) -> f64 {
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    gain * (3.0 / fan_in as f64).sqrt()
}

/// U(−bound, bound) samples of `shape`.
pub fn uniform(shape: &[usize], bound: f64, init: &mut Init) -> Tensor {
    Tensor::rand_uniform(shape, -bound, bound, init.dtype, &mut init.rng)
}

/// A weight of `shape` drawn like PyTorch's default for Linear/Conv weights:
/// kaiming_uniform with a = √5, so U(−1/√fan_in, 1/√fan_in).
pub fn default_weight(shape: &[usize], init: &mut Init) -> Result<Tensor> {
    let (fan_in, _) = fan_in_and_fan_out(shape)?;
    if fan_in == 0 {
        return config_err("init", format!("weight of shape {shape:?} has fan_in 0"));
    }
    Ok(uniform(shape, kaiming_uniform_bound(DEFAULT_KAIMING_A, fan_in), init))
}

/// A bias of `[len]` drawn like PyTorch's default: U(−1/√fan_in, 1/√fan_in) with the fan_in
/// of the layer's weight.
pub fn default_bias(len: usize, weight_shape: &[usize], init: &mut Init) -> Result<Tensor> {
    let (fan_in, _) = fan_in_and_fan_out(weight_shape)?;
    let bound = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
    Ok(uniform(&[len], bound, init))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_of_a_conv_transpose_weight_uses_dim_one() {
        // ConvTranspose2d(8 → 4, k=3): weight [8, 4, 3, 3], PyTorch fan_in = 4·9.
        assert_eq!(fan_in_and_fan_out(&[8, 4, 3, 3]).unwrap(), (36, 72));
        assert_eq!(fan_in_and_fan_out(&[10, 7]).unwrap(), (7, 10));
        assert!(fan_in_and_fan_out(&[5]).is_err());
    }

    #[test]
    fn kaiming_bound_with_a_sqrt5_is_one_over_sqrt_fan_in() {
        let b = kaiming_uniform_bound(DEFAULT_KAIMING_A, 27);
        assert!((b - 1.0 / 27f64.sqrt()).abs() < 1e-15, "{b}");
    }
}
