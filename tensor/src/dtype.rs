//! The element types a tensor can hold, and the `Float` trait that makes every CPU kernel
//! generic over them: f32 for real work, f64 so gradient checks can be tight.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::storage::CpuStorage;

/// Element type of a tensor. The GPU holds only `F32`; `F64` exists on the CPU for gradient checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float; the only type on the GPU.
    F32,
    /// 64-bit float (CPU only).
    F64,
}

impl DType {
    /// Bytes per element: 4 or 8.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// A floating-point element type the CPU kernels can run on.
///
/// This is the one generic in the tensor crate: kernels are written once as
/// `fn kernel<T: Float>(...)` and instantiated for f32 and f64.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + PartialEq
    + Sum
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// The [`DType`] tag of this type.
    const DTYPE: DType;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// +∞.
    const INFINITY: Self;
    /// −∞.
    const NEG_INFINITY: Self;

    /// Converts from f64 (rounding for f32).
    fn from_f64(v: f64) -> Self;
    /// Converts to f64 (exact).
    fn to_f64(self) -> f64;
    /// Converts a count or index to this type.
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    /// eˣ.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate for small x.
    fn ln_1p(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// Hyperbolic tangent (see `cpu::elementwise::tanh_f32` for why f32 has its own).
    fn tanh(self) -> Self;
    /// The logistic function 1 / (1 + e⁻ˣ) (see `cpu::elementwise::sigmoid_f32` for why f32
    /// has its own).
    fn sigmoid(self) -> Self;
    /// xᵉ.
    fn powf(self, e: Self) -> Self;
    /// The larger of the two.
    fn max(self, other: Self) -> Self;
    /// The smaller of the two.
    fn min(self, other: Self) -> Self;
    /// Largest integer ≤ x.
    fn floor(self) -> Self;
    /// False for NaN and ±∞.
    fn is_finite(self) -> bool;
    /// self·a + b with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;

    /// Wraps a vector of this type into CPU storage.
    fn into_storage(v: Vec<Self>) -> CpuStorage;
    /// Borrows CPU storage as a slice of this type, if it holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// Mutably borrows CPU storage as a slice of this type, if it holds this type.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

/// Evaluates `$body` with `$T` naming the Rust type of `$dtype` (f32 or f64): how a CPU arm
/// calls a kernel generic over [`Float`] once for both dtypes, where a `match` would write the
/// call twice.
/// `with_float_type!(x.dtype(), T => Tensor::from_kernel(kernel::relu(x.cpu_slice::<T>()?), shape))`
macro_rules! with_float_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::dtype::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::dtype::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_float_type;

macro_rules! impl_float {
    ($t:ty, $dtype:expr, $variant:ident, $sigmoid:path, $tanh:path) => {
        impl Float for $t {
            const DTYPE: DType = $dtype;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = <$t>::INFINITY;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn into_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

// The one macro in the crate: two identical impls that differ only in the type name.
impl_float!(f32, DType::F32, F32, crate::cpu::elementwise::sigmoid_f32, crate::cpu::elementwise::tanh_f32);
impl_float!(f64, DType::F64, F64, crate::cpu::elementwise::sigmoid_f64, f64::tanh);

/// `s` as a slice of `U` when `T` is `U` (a generic kernel's way into a type-specific fast
/// path), else `None`.
pub(crate) fn same_type_slice<T: 'static, U: 'static>(s: &[T]) -> Option<&[U]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<U>() {
        return None;
    }
    // SAFETY: T and U are the same type, so this is the identity on the slice.
    Some(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) })
}

/// [`same_type_slice`] for a mutable slice.
pub(crate) fn same_type_slice_mut<T: 'static, U: 'static>(s: &mut [T]) -> Option<&mut [U]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<U>() {
        return None;
    }
    // SAFETY: T and U are the same type, so this is the identity on the slice.
    Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<U>(), s.len()) })
}
