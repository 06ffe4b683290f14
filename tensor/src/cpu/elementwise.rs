//! Element-wise kernels: unary maps, binary maps (same shape or broadcast through strided
//! layouts), and the kernels each row of `crate::elementwise_table` is instantiated with.
//! Beyond the plain loop of the definition, three things here are about speed: outputs are
//! written into uninitialised capacity (no zeroing pass), f32 eˣ, σ(x) and tanh(x) are
//! computed from arithmetic only so their loops vectorise (`exp_f32`, `sigmoid_f32`,
//! `tanh_f32`), and the maps' loops are compiled for the widest vectors the CPU has
//! (`cpu::vectorized`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::vectorized;
use crate::dtype::Float;
use crate::elementwise_table::{BinaryFormula, Relu, UnaryFormula};
use crate::shape::Layout;

/// Below this many elements a kernel runs on one thread: rayon's fork/join costs more.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

/// f64 sigmoid, branching on the sign of x so that exp never overflows; libm's exp keeps the
/// gradient checks' reference exact.
#[inline(always)]
pub fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// f32 sigmoid without a branch or a libm call, so a loop over it vectorises (4 lanes as the
/// crate is built, for baseline x86-64; 16 through [`map`]'s AVX-512 path): with 4, about 3×
/// faster than calling `expf` per element
/// (docs/notebooks/performance.md). As in [`sigmoid_f64`], e^−|x| never
/// overflows: σ(x) = 1 / (1 + e) for x ≥ 0 and e / (1 + e) below, chosen with a select that
/// compiles to a blend. Error: within 3 ulp of the f64 value, denormal results included.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

/// f32 tanh without a libm call, so a loop over it vectorises as [`sigmoid_f32`]'s does (libm's
/// `tanhf` per element is about 4× slower). Cephes' tanhf, branch-free: below |x| = 0.625 the
/// odd polynomial x + x³·P(x²) (no cancellation near 0), above it (1 − e) / (1 + e) with
/// e = e^−2|x| from [`exp_f32`] (never overflows; ±1 from |x| ≈ 9 on), the sign put back with
/// `copysign` (so −0 stays −0). Error: within 2 ulp of the f64 value; NaN stays NaN.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let e = exp_f32(-2.0 * ax);
    let far = (1.0 - e) / (1.0 + e);
    let z = x * x;
    let p = (((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1;
    let near = p * z * x + x;
    // A NaN x fails the comparison and takes `far`, which is NaN too.
    if ax < 0.625 {
        near.copysign(x)
    } else {
        far.copysign(x)
    }
}

/// eˣ in f32 from arithmetic only (Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
/// polynomial for eʳ, then the exponent bits for 2ⁿ), within 2 ulp over the whole range;
/// +∞ above 88.72, denormals and then 0 below −87.3, NaN stays NaN. Written so LLVM can
/// vectorise a loop of it (no branch, no call): plain arithmetic and bit casts.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: n·LN2_HI is exact for |n| ≤ 2⁹, so r keeps its low bits.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Beyond these e^x is +∞ or rounds to 0 anyway; clamping keeps n in [−152, 128].
    let x = x.clamp(-105.0, 88.73);
    // n = round(x·log2 e) by the 1.5·2²³ trick: adding it leaves n in the low mantissa bits
    // (no `round`/`floor`, which are libm calls without SSE4.1, and no float→int conversion).
    const SHIFTER: f32 = 12_582_912.0;
    let t = x * LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 5e-1)
        * r2
        + r
        + 1.0;
    // 2ⁿ as two factors, each a normal float, so results in the denormal range round once.
    // (A NaN x leaves p NaN whatever n is.)
    let n = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let (n1, n2) = (n >> 1, n - (n >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * pow2(n1) * pow2(n2)
}

/// out\[i\] = f(x\[i\]), in parallel for large inputs, each chunk's loop compiled for the widest
/// vectors (`cpu::vectorized`): as built, SSE's four lanes left f32's sigmoid (arithmetic only,
/// `sigmoid_f32`) at about five cycles an element.
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    // The output is written straight into the new vector's spare capacity: a `vec![0; n]`
    // first would be a second pass over memory (and a memset on every reused block).
    let spare = &mut out.spare_capacity_mut()[..x.len()];
    if x.len() < PARALLEL_THRESHOLD {
        vectorized::run(MapChunk { x, out: spare, f: &f });
    } else {
        spare.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(out, x)| {
            vectorized::run(MapChunk { x, out, f: &f });
        });
    }
    // SAFETY: the loops above wrote every one of the first x.len() elements (the zips pair
    // `spare`, which is exactly x.len() long, with x element for element).
    unsafe { out.set_len(x.len()) };
    out
}

/// x\[i\] = relu(x\[i\]) on the calling thread, element for element the table's ReLU (NaN
/// passing through): the epilogue of a kernel task whose part of the output a ReLU follows,
/// applied while that part is still in cache.
pub fn relu_in_place<T: Float>(x: &mut [T]) {
    x.iter_mut().for_each(|v| *v = relu_scalar(*v));
}

/// The table's ReLU of one value: for a kernel that applies it as it stores each output.
#[inline(always)]
pub fn relu_scalar<T: Float>(v: T) -> T {
    Relu::forward(v, T::ZERO, T::ZERO)
}

/// [`relu_in_place`] over the whole of `x`, in parallel: the epilogue of a kernel that has no
/// task boundary to apply it at. One pass over x in place, where the ReLU as its own op reads
/// x and writes a second buffer.
pub fn relu_in_place_parallel<T: Float>(x: &mut [T]) {
    x.par_chunks_mut(CHUNK).for_each(relu_in_place);
}

/// out\[i\] = f(a\[i\], b\[i\]) for equal-length inputs; compiled for the widest vectors, as
/// [`map`].
pub fn zip_map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "zip_map takes equal-length inputs");
    let mut out = Vec::with_capacity(a.len());
    // Written in place, as in `map`.
    let spare = &mut out.spare_capacity_mut()[..a.len()];
    if a.len() < PARALLEL_THRESHOLD {
        vectorized::run(ZipMapChunk { a, b, out: spare, f: &f });
    } else {
        spare.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((out, a), b)| {
            vectorized::run(ZipMapChunk { a, b, out, f: &f });
        });
    }
    // SAFETY: every one of the first a.len() elements was written: `spare` is a.len() long and
    // a, b are as long (asserted), so the zips cover it element for element.
    unsafe { out.set_len(a.len()) };
    out
}

/// One chunk of [`map`], for [`vectorized::run`].
struct MapChunk<'a, T, F> {
    x: &'a [T],
    out: &'a mut [MaybeUninit<T>],
    f: &'a F,
}

impl<T: Float, F: Fn(T) -> T> vectorized::Work for MapChunk<'_, T, F> {
    #[inline(always)]
    fn run(self) {
        for (o, &v) in self.out.iter_mut().zip(self.x) {
            o.write((self.f)(v));
        }
    }
}

/// One chunk of [`zip_map`], for [`vectorized::run`].
struct ZipMapChunk<'a, T, F> {
    a: &'a [T],
    b: &'a [T],
    out: &'a mut [MaybeUninit<T>],
    f: &'a F,
}

impl<T: Float, F: Fn(T, T) -> T> vectorized::Work for ZipMapChunk<'_, T, F> {
    #[inline(always)]
    fn run(self) {
        for ((o, &x), &y) in self.out.iter_mut().zip(self.a).zip(self.b) {
            o.write((self.f)(x, y));
        }
    }
}

/// out\[i\] = f(a\[ia\], b\[ib\]) where ia, ib walk `la` and `lb`, two layouts already broadcast
/// to the same shape (stride 0 on broadcast dims). Rows of the last dimension run tight.
pub fn zip_map_strided<T: Float>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Vec<T> {
    let shape = &la.shape;
    let n = la.numel();
    let mut out = vec![T::ZERO; n];
    if n == 0 {
        return out;
    }
    let rank = shape.len();
    if rank == 0 {
        out[0] = f(a[la.offset], b[lb.offset]);
        return out;
    }
    let inner = shape[rank - 1];
    let (sa, sb) = (la.strides[rank - 1], lb.strides[rank - 1]);
    let row_base = |mut row: usize| {
        // Decompose the row number over the outer dims into storage offsets.
        let (mut oa, mut ob) = (la.offset, lb.offset);
        for d in (0..rank - 1).rev() {
            let i = row % shape[d];
            row /= shape[d];
            oa += i * la.strides[d];
            ob += i * lb.strides[d];
        }
        (oa, ob)
    };
    let do_row = |row: usize, o: &mut [T]| {
        let (oa, ob) = row_base(row);
        for (j, o) in o.iter_mut().enumerate() {
            *o = f(a[oa + j * sa], b[ob + j * sb]);
        }
    };
    if inner == 0 {
        return out;
    }
    if n < PARALLEL_THRESHOLD {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    } else {
        out.par_chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    }
    out
}

/// The forward kernel of a unary table row: out\[i\] = F(x\[i\]), one loop per op and type.
pub fn unary_kernel<T: Float, F: UnaryFormula>(x: &[T], alpha: T, beta: T) -> Vec<T> {
    map(x, move |v| F::forward(v, alpha, beta))
}

/// The backward kernel of a unary table row: grad_in\[i\] = F'(g\[i\], saved\[i\]).
pub fn unary_backward_kernel<T: Float, F: UnaryFormula>(g: &[T], saved: &[T], alpha: T, beta: T) -> Vec<T> {
    zip_map(g, saved, move |g, s| F::backward(g, s, alpha, beta))
}

/// The dense kernel of a binary table row: out\[i\] = F(a\[i\], b\[i\]).
pub fn binary_kernel<T: Float, F: BinaryFormula>(a: &[T], b: &[T]) -> Vec<T> {
    zip_map(a, b, F::apply)
}

/// The broadcasting kernel of a binary table row (see [`zip_map_strided`]).
pub fn binary_strided_kernel<T: Float, F: BinaryFormula>(a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<T> {
    zip_map_strided(a, la, b, lb, F::apply)
}

/// where(cond, a, b) on dense, same-length inputs: a where cond ≠ 0, else b.
pub fn where_select<T: Float>(cond: &[T], a: &[T], b: &[T]) -> Vec<T> {
    cond.iter().zip(a).zip(b).map(|((&c, &x), &y)| if c != T::ZERO { x } else { y }).collect()
}

/// The VAE's sample z = μ + e^{½·log σ²}·ε on dense, same-length inputs: the operations of
/// `mu.add(logvar.mul_scalar(0.5).exp().mul(eps))` in their order, so z is bit for bit what
/// those four ops give (the element-wise table's `mul_scalar`, `exp`, `mul`, `add`).
pub fn reparameterize<T: Float>(mu: &[T], logvar: &[T], eps: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    mu.iter().zip(logvar).zip(eps).map(|((&m, &lv), &e)| m + (lv * half).exp() * e).collect()
}

/// [`reparameterize`]'s gradient with respect to log σ² from the upstream gradient g:
/// ((g·ε)·σ)·½, the backwards of `mul`, `exp` and `mul_scalar` in the order autograd runs them.
pub fn reparameterize_backward<T: Float>(g: &[T], logvar: &[T], eps: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    g.iter().zip(logvar).zip(eps).map(|((&g, &lv), &e)| g * e * (lv * half).exp() * half).collect()
}

/// The gradient of (a − b)² with respect to a from the upstream gradient g: g·(a − b)·2, the
/// `square` row's backward at the rounded difference, so it is `sub` then `square`'s bit for bit.
pub fn squared_difference_backward<T: Float>(g: &[T], a: &[T], b: &[T]) -> Vec<T> {
    let two = T::from_f64(2.0);
    g.iter().zip(a).zip(b).map(|((&g, &a), &b)| g * (a - b) * two).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_zip_map_compiled_for_wide_vectors_give_the_bits_of_the_plain_loops() {
        // Shorter than one chunk, and longer than the parallel threshold with a ragged last
        // chunk; values across the functions' branches and ranges.
        for len in [1, 13, 1000, PARALLEL_THRESHOLD + 37] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.731).sin() * 20.0 - 1.5).collect();
            let y: Vec<f32> = (0..len).map(|i| (i as f32 * 0.297).cos()).collect();
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let unaries = [
                ("sigmoid", sigmoid_f32 as fn(f32) -> f32),
                ("tanh", tanh_f32),
                ("exp", exp_f32),
                ("relu", relu_scalar),
            ];
            for (name, f) in unaries {
                let plain: Vec<f32> = x.iter().map(|&v| f(v)).collect();
                assert_eq!(bits(&map(&x, f)), bits(&plain), "{name} over {len}");
            }
            // A multiply and then an add: fused into one FMA, the sum would round once, not twice.
            let multiply_add = |a: f32, b: f32| a * b + 0.3;
            let plain: Vec<f32> = x.iter().zip(&y).map(|(&a, &b)| multiply_add(a, b)).collect();
            assert_eq!(bits(&zip_map(&x, &y, multiply_add)), bits(&plain), "a·b + c over {len}");
        }
    }

    #[test]
    fn exp_f32_is_within_2_ulp_of_the_exact_value_over_its_range() {
        let mut worst = 0.0f64;
        // Every 997th float bit pattern between −104 and 88.7 (plus the ends): ~2M points.
        let (lo, hi) = ((-104.0f32).to_bits(), 88.7f32.to_bits());
        let positives = (0..=hi).step_by(997);
        let negatives = (0x8000_0000u32..=lo).step_by(997);
        for x in positives.chain(negatives).map(f32::from_bits) {
            let exact = (x as f64).exp();
            let got = exp_f32(x) as f64;
            // One ulp of the exact value in f32 (denormals: the fixed spacing 2⁻¹⁴⁹).
            let ulp = ((exact as f32).abs().max(f32::MIN_POSITIVE) as f64) * f32::EPSILON as f64;
            worst = worst.max((got - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "exp_f32 is {worst} ulp off somewhere");
    }

    #[test]
    fn exp_f32_handles_the_special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(-100.0) > 0.0, "denormal results are kept");
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_f32_is_within_2_ulp_of_the_f64_tanh_over_its_range() {
        let mut worst = (0.0f64, 0.0f32);
        // Every 97th float bit pattern from 0 to 12 (beyond, tanh is ±1 in f32), both signs.
        for bits in (0..=12.0f32.to_bits()).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let exact = (x as f64).tanh();
                // One ulp of the exact value in f32 (denormals: the fixed spacing 2⁻¹⁴⁹).
                let ulp = ((exact as f32).abs().max(f32::MIN_POSITIVE) as f64) * f32::EPSILON as f64;
                let off = (tanh_f32(x) as f64 - exact).abs() / ulp;
                if off > worst.0 {
                    worst = (off, x);
                }
            }
        }
        assert!(worst.0 <= 2.0, "tanh_f32 is {} ulp off at {}", worst.0, worst.1);
    }

    #[test]
    fn tanh_f32_handles_the_special_values() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits(), "the sign of zero is kept");
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e4), 1.0);
        assert_eq!(tanh_f32(1e-30), 1e-30, "tanh x = x to the last bit for tiny x");
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_f32_matches_the_f64_sigmoid_within_3_ulp() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.005; // −100 … 100
            let exact = sigmoid_f64(x as f64);
            let got = sigmoid_f32(x) as f64;
            // One ulp of the exact value in f32 (denormals: the fixed spacing 2⁻¹⁴⁹).
            let ulp = ((exact as f32).max(f32::MIN_POSITIVE) as f64) * f32::EPSILON as f64;
            assert!((got - exact).abs() <= 3.0 * ulp, "sigmoid_f32({x}) = {got}, exact {exact}");
        }
        assert_eq!(sigmoid_f32(-1000.0), 0.0);
        assert_eq!(sigmoid_f32(1000.0), 1.0);
    }

    #[test]
    fn strided_zip_broadcasts_a_column_over_rows() {
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        let b = [10.0f64, 20.0]; // [2, 1]
        let la = Layout::contiguous(&[2, 3]);
        let lb = Layout::contiguous(&[2, 1]).broadcast_to(&[2, 3]).unwrap();
        let out = zip_map_strided(&a, &la, &b, &lb, |x, y| x + y);
        assert_eq!(out, vec![11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
    }
}
