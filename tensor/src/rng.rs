//! A small, seeded, reproducible random generator (xoshiro256**, seeded through SplitMix64),
//! with uniform and normal (Box–Muller) samples. Its state can be saved and restored so
//! training resumes exactly.

/// Uniform in [0, 1) with 53 random bits, from 64 ([`Rng::next_f64`]'s mapping).
fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The standard normal sample [`Rng::normal`] makes from its two draws (Box–Muller).
pub fn normal_from_bits([a, b]: [u64; 2]) -> f64 {
    let u1 = 1.0 - unit_f64(a); // (0, 1]: ln is finite
    let u2 = unit_f64(b);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A xoshiro256** generator: seeded, reproducible, with a savable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` (expanded to 256 bits by SplitMix64).
    pub fn new(seed: u64) -> Self {
        // SplitMix64 spreads a small seed over all 256 bits of state.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { state: [next(), next(), next(), next()] }
    }

    /// The full generator state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// A generator restored from [`Rng::state`].
    pub fn from_state(state: [u64; 4]) -> Self {
        Rng { state }
    }

    /// The next 64 uniformly random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        unit_f64(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Standard normal sample (Box–Muller; the second value of each pair is discarded so the
    /// generator has no hidden state beyond `state`).
    pub fn normal(&mut self) -> f64 {
        let bits = self.normal_bits();
        normal_from_bits(bits)
    }

    /// The two draws [`Rng::normal`] makes, to be turned into the sample later by
    /// [`normal_from_bits`] (on another thread: the draws are sequential, the transform is not).
    pub fn normal_bits(&mut self) -> [u64; 2] {
        [self.next_u64(), self.next_u64()]
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand_normal_holds_the_sequential_normal_draws_and_leaves_the_generator_as_they_do() {
        for (n, dtype) in [(1usize, crate::DType::F64), (10_007, crate::DType::F64), (10_007, crate::DType::F32)] {
            let (mut a, mut b) = (Rng::new(11), Rng::new(11));
            let t = crate::Tensor::rand_normal(&[n], 0.5, 2.0, dtype, &mut a);
            let want: Vec<f64> = (0..n).map(|_| 0.5 + 2.0 * b.normal()).collect();
            let want: Vec<f64> = match dtype {
                crate::DType::F64 => want,
                crate::DType::F32 => want.iter().map(|&x| x as f32 as f64).collect(),
            };
            assert_eq!(t.to_vec_f64().unwrap(), want, "n = {n}, {dtype:?}");
            assert_eq!(a, b, "the generator's state after {n} samples");
        }
    }

    #[test]
    fn same_seed_gives_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn restored_state_continues_the_stream() {
        let mut a = Rng::new(3);
        a.next_u64();
        let mut b = Rng::from_state(a.state());
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
