//! Element-wise ops on tensors: unary functions, broadcast binary arithmetic and comparisons,
//! `where`, and scalar shorthands. Shape rule for binary ops: NumPy broadcasting.
//!
//! On the GPU every operand is read through its strides (broadcast axes have stride 0), so
//! no view is copied before an element-wise kernel.

use std::sync::Arc;

use gpu::kernels::elementwise::{self as gpu_kernel, View};

use crate::cpu::elementwise as kernel;
pub use crate::cpu::elementwise::{BinaryOp, UnaryOp};
use crate::device::same_device;
use crate::dtype::{DType, Float};
use crate::error::{gpu_err, Result, TensorError};
use crate::profile::{self, OpFamily};
use crate::shape::broadcast_shapes;
use crate::storage::Storage;
use crate::tensor::{gpu_alloc, Tensor};

fn check_dtypes(op: &'static str, a: &Tensor, b: &Tensor) -> Result<DType> {
    if a.dtype() != b.dtype() {
        return Err(TensorError::DType { op, expected: a.dtype(), got: b.dtype() });
    }
    Ok(a.dtype())
}

/// Applies `op` to every element. x: any shape → same shape.
pub fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, op.name(), x);
    fn run<T: Float>(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
        Ok(Tensor::from_kernel(kernel::unary(x.cpu_slice::<T>()?, op), x.shape()))
    }
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => run::<f32>(&x, op),
                DType::F64 => run::<f64>(&x, op),
            }
        }
        Storage::Gpu(_) => map_gpu("unary op", &[x], x.shape(), |ctx, views, out| {
            gpu_kernel::map(ctx, gpu_unary(op), &views[0], out, x.shape())
        }),
    }
}

/// The GPU kernel's spelling of a unary op (parameters in f32).
fn gpu_unary(op: UnaryOp) -> gpu_kernel::UnaryOp {
    use gpu_kernel::UnaryOp as G;
    match op {
        UnaryOp::Neg => G::Neg,
        UnaryOp::Exp => G::Exp,
        UnaryOp::Log => G::Log,
        UnaryOp::Sqrt => G::Sqrt,
        UnaryOp::Abs => G::Abs,
        UnaryOp::Relu => G::Relu,
        UnaryOp::Sigmoid => G::Sigmoid,
        UnaryOp::Tanh => G::Tanh,
        UnaryOp::Softplus => G::Softplus,
        UnaryOp::Recip => G::Recip,
        UnaryOp::Square => G::Square,
        UnaryOp::LeakyRelu(s) => G::LeakyRelu(s as f32),
        UnaryOp::Powf(e) => G::Powf(e as f32),
        UnaryOp::Clamp(lo, hi) => G::Clamp(lo as f32, hi as f32),
        UnaryOp::AddScalar(s) => G::AddScalar(s as f32),
        UnaryOp::MulScalar(s) => G::MulScalar(s as f32),
    }
}

/// The GPU kernel's spelling of a binary op.
fn gpu_binary(op: BinaryOp) -> gpu_kernel::BinaryOp {
    use gpu_kernel::BinaryOp as G;
    match op {
        BinaryOp::Add => G::Add,
        BinaryOp::Sub => G::Sub,
        BinaryOp::Mul => G::Mul,
        BinaryOp::Div => G::Div,
        BinaryOp::Max => G::Max,
        BinaryOp::Min => G::Min,
        BinaryOp::Gt => G::Gt,
        BinaryOp::Ge => G::Ge,
        BinaryOp::Lt => G::Lt,
        BinaryOp::Le => G::Le,
        BinaryOp::Eq => G::Eq,
        BinaryOp::ReluGrad => G::ReluGrad,
        BinaryOp::LeakyReluGrad(s) => G::LeakyReluGrad(s as f32),
        BinaryOp::SigmoidGrad => G::SigmoidGrad,
        BinaryOp::TanhGrad => G::TanhGrad,
        BinaryOp::AbsGrad => G::AbsGrad,
        BinaryOp::SoftplusGrad => G::SoftplusGrad,
        BinaryOp::ClampGrad(lo, hi) => G::ClampGrad(lo as f32, hi as f32),
    }
}

/// The GPU arm shared by the element-wise ops: each operand as a strided view at `shape`
/// (broadcast through stride-0 axes), a dense output of `shape`, and `launch` recording the
/// kernel on the operands' context.
fn map_gpu(
    op: &'static str,
    operands: &[&Tensor],
    shape: &[usize],
    launch: impl FnOnce(&gpu::Context, &[View], &View) -> gpu::Result<()>,
) -> Result<Tensor> {
    let ctx = Arc::clone(operands[0].gpu_storage(op)?.context());
    let views = operands
        .iter()
        .map(|t| {
            let l = t.layout().broadcast_to(shape)?;
            Ok(View::strided(t.gpu_storage(op)?.buffer(), &l.strides, l.offset))
        })
        .collect::<Result<Vec<View>>>()?;
    let out = gpu_alloc(&ctx, shape.iter().product(), op)?;
    launch(&ctx, &views, &View::dense(&out, shape)).map_err(gpu_err(op))?;
    Ok(Tensor::from_gpu(out, ctx, shape))
}

/// Applies `op` to a and b broadcast together. a, b: broadcastable → broadcast shape.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, op.name(), a);
    fn run<T: Float>(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Result<Tensor> {
        if a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() {
            let out = kernel::binary(a.cpu_slice::<T>()?, b.cpu_slice::<T>()?, op);
            return Ok(Tensor::from_kernel(out, shape));
        }
        let (la, lb) = (a.layout().broadcast_to(shape)?, b.layout().broadcast_to(shape)?);
        let (Storage::Cpu(sa), Storage::Cpu(sb)) = (a.storage(), b.storage()) else {
            return Err(TensorError::Device { op: "binary op", msg: "CPU kernel given a GPU operand".into() });
        };
        let (da, db) = (
            T::slice(sa).ok_or(TensorError::DType { op: "binary", expected: T::DTYPE, got: sa.dtype() })?,
            T::slice(sb).ok_or(TensorError::DType { op: "binary", expected: T::DTYPE, got: sb.dtype() })?,
        );
        let out = match op {
            BinaryOp::Add => kernel::zip_map_strided(da, &la, db, &lb, |x, y| x + y),
            BinaryOp::Mul => kernel::zip_map_strided(da, &la, db, &lb, |x, y| x * y),
            _ => kernel::zip_map_strided(da, &la, db, &lb, kernel::binary_fn(op)),
        };
        Ok(Tensor::from_kernel(out, shape))
    }
    let name = "binary op";
    same_device(name, &[a.device(), b.device()])?;
    let dtype = check_dtypes(name, a, b)?;
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    match a.storage() {
        Storage::Cpu(_) => match dtype {
            DType::F32 => run::<f32>(a, b, op, &shape),
            DType::F64 => run::<f64>(a, b, op, &shape),
        },
        Storage::Gpu(_) => map_gpu(name, &[a, b], &shape, |ctx, v, out| {
            gpu_kernel::binary(ctx, gpu_binary(op), &v[0], &v[1], out.buf, &shape)
        }),
    }
}

/// where(cond, a, b): a where cond ≠ 0, else b; all three broadcast together.
pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, "where_cond", a);
    fn run<T: Float>(c: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let (c, a, b) = (
            c.broadcast_to(shape)?.contiguous()?,
            a.broadcast_to(shape)?.contiguous()?,
            b.broadcast_to(shape)?.contiguous()?,
        );
        let out = kernel::where_select(c.cpu_slice::<T>()?, a.cpu_slice::<T>()?, b.cpu_slice::<T>()?);
        Ok(Tensor::from_kernel(out, shape))
    }
    let name = "where";
    same_device(name, &[cond.device(), a.device(), b.device()])?;
    let dtype = check_dtypes(name, a, b)?;
    check_dtypes(name, a, cond)?;
    let shape = broadcast_shapes(name, &broadcast_shapes(name, cond.shape(), a.shape())?, b.shape())?;
    match a.storage() {
        Storage::Cpu(_) => match dtype {
            DType::F32 => run::<f32>(cond, a, b, &shape),
            DType::F64 => run::<f64>(cond, a, b, &shape),
        },
        Storage::Gpu(_) => map_gpu(name, &[cond, a, b], &shape, |ctx, v, out| {
            gpu_kernel::where_select(ctx, &v[0], &v[1], &v[2], out.buf, &shape)
        }),
    }
}

/// Method shorthands, so model code reads `x.mul(&w)?.add(&b)?.relu()?`.
impl Tensor {
    /// self + other, broadcasting both to a common shape.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Add)
    }
    /// self − other, with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Sub)
    }
    /// self · other, with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Mul)
    }
    /// self / other, with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Div)
    }
    /// Element-wise max(self, other), with broadcasting.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Max)
    }
    /// Element-wise min(self, other), with broadcasting.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Min)
    }
    /// 1 where self > other, else 0 (same dtype), with broadcasting.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Gt)
    }
    /// 1 where self < other, else 0, with broadcasting.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Lt)
    }
    /// 1 where self = other, else 0, with broadcasting.
    pub fn eq_elementwise(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinaryOp::Eq)
    }
    /// −self.
    pub fn neg(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Neg)
    }
    /// e^self.
    pub fn exp(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Log)
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sqrt)
    }
    /// Absolute value.
    pub fn abs(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Abs)
    }
    /// max(self, 0).
    pub fn relu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Relu)
    }
    /// self where positive, slope·self elsewhere.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        unary(self, UnaryOp::LeakyRelu(slope))
    }
    /// Logistic sigmoid 1 / (1 + e^−self).
    pub fn sigmoid(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Tanh)
    }
    /// ln(1 + e^self), computed without overflow.
    pub fn softplus(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Softplus)
    }
    /// self².
    pub fn square(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Square)
    }
    /// 1 / self.
    pub fn recip(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Recip)
    }
    /// self^p for a scalar exponent p.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        unary(self, UnaryOp::Powf(p))
    }
    /// Clamped to `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        unary(self, UnaryOp::Clamp(lo, hi))
    }
    /// self + s for a scalar s.
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        unary(self, UnaryOp::AddScalar(s))
    }
    /// self · s for a scalar s.
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        unary(self, UnaryOp::MulScalar(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }

    #[test]
    fn add_broadcasts_row_and_column() {
        let a = t(&[1.0, 2.0, 3.0], &[1, 3]);
        let b = t(&[10.0, 20.0], &[2, 1]);
        let c = a.add(&b).unwrap();
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.to_vec_f64().unwrap(), vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    }

    #[test]
    fn binary_on_transposed_view_reads_through_strides() {
        let a = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).transpose(0, 1).unwrap();
        let b = t(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], &[3, 2]);
        assert_eq!(a.sub(&b).unwrap().to_vec_f64().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn mismatched_shapes_are_an_error_naming_both() {
        let err = t(&[1.0; 6], &[2, 3]).add(&t(&[1.0; 4], &[4])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("[2, 3]") && msg.contains("[4]"), "{msg}");
    }

    #[test]
    fn mixed_dtypes_are_an_error() {
        let a = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
        let b = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
        assert!(matches!(a.add(&b), Err(TensorError::DType { .. })));
    }

    #[test]
    fn where_selects_by_condition() {
        let c = t(&[1.0, 0.0, 1.0], &[3]);
        let out = where_cond(&c, &t(&[1.0, 2.0, 3.0], &[3]), &t(&[-1.0], &[1])).unwrap();
        assert_eq!(out.to_vec_f64().unwrap(), vec![1.0, -1.0, 3.0]);
    }
}
