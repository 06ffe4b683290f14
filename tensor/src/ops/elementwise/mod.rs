//! Element-wise ops on tensors: the rows of `crate::elementwise_table` (unary functions and
//! their backward passes, broadcast binary arithmetic and comparisons), `where`, and the
//! method shorthands (`methods.rs`). Shape rule for binary ops: NumPy broadcasting.
//!
//! On the GPU every operand is read through its strides (broadcast axes have stride 0), so
//! no view is copied before an element-wise kernel.

use std::sync::{Arc, OnceLock};

use gpu::kernels::elementwise::{self as gpu_kernel, ElementwiseShader, OpCode, OpTable, View};
use gpu::pipeline_cache::KernelDef;

use crate::cpu::elementwise as kernel;
use crate::device::same_device;
use crate::dtype::{with_float_type, DType, Float};
pub use crate::elementwise_table::{BinaryOp, UnaryOp};
use crate::elementwise_table::{BINARY_OPS, UNARY_OPS};
use crate::error::{shape_err, Result, TensorError};
use crate::gpu_parts::{for_each_row_part, gpu_alloc_rows, StorageView};
use crate::ops::checks::same_dtype;
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::shape::broadcast_shapes;
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;

mod methods;

/// The GPU op kernels, assembled from the op table the first time one runs.
fn gpu_shader() -> &'static ElementwiseShader {
    static SHADER: OnceLock<ElementwiseShader> = OnceLock::new();
    SHADER.get_or_init(|| {
        let unary: Vec<&str> = UNARY_OPS.iter().map(|d| d.wgsl).collect();
        let unary_backward: Vec<&str> = UNARY_OPS.iter().map(|d| d.backward_wgsl).collect();
        let binary: Vec<&str> = BINARY_OPS.iter().map(|d| d.wgsl).collect();
        ElementwiseShader::new(&OpTable { unary: &unary, unary_backward: &unary_backward, binary: &binary })
    })
}

/// The shader's op code and f32 parameters of a unary op.
fn gpu_code(op: UnaryOp) -> OpCode {
    OpCode { code: op.def.code(), alpha: op.alpha as f32, beta: op.beta as f32 }
}

/// Applies `op` to every element. x: any shape → same shape.
pub fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, op.name(), x);
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            Ok(match x.dtype() {
                DType::F32 => Tensor::from_kernel(
                    (op.def.forward_f32)(x.cpu_slice()?, op.alpha as f32, op.beta as f32),
                    x.shape(),
                ),
                DType::F64 => Tensor::from_kernel((op.def.forward_f64)(x.cpu_slice()?, op.alpha, op.beta), x.shape()),
            })
        }
        Storage::Reference(_) => {
            let y = reference::values(x)?.into_iter().map(|x| (op.def.reference)(x, op.alpha, op.beta)).collect();
            Ok(reference::tensor(y, x.shape(), x.dtype()))
        }
        Storage::Gpu(_) => map_gpu("unary op", &[x], x.shape(), |ctx, views, out, shape| {
            gpu_shader().unary(ctx, gpu_code(op), &views[0], out, shape)
        }),
    }
}

/// The backward of a unary op: ∂L/∂x from g = ∂L/∂y and the value the op's row saves (x or
/// y; ignored when it saves nothing). g, saved: the op's shape → same shape.
pub fn unary_backward(g: &Tensor, saved: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, backward_name(op), g);
    let name = "unary backward";
    same_device(name, &[g.device(), saved.device()])?;
    same_dtype(name, &[g, saved])?;
    if g.shape() != saved.shape() {
        return shape_err(
            name,
            format!("gradient {:?} and saved value {:?} differ in shape", g.shape(), saved.shape()),
        );
    }
    match g.storage() {
        Storage::Cpu(_) => {
            let (g, s) = (g.contiguous()?, saved.contiguous()?);
            let (a, b) = (op.alpha, op.beta);
            Ok(match g.dtype() {
                DType::F32 => Tensor::from_kernel(
                    (op.def.backward_f32)(g.cpu_slice()?, s.cpu_slice()?, a as f32, b as f32),
                    g.shape(),
                ),
                DType::F64 => {
                    Tensor::from_kernel((op.def.backward_f64)(g.cpu_slice()?, s.cpu_slice()?, a, b), g.shape())
                }
            })
        }
        Storage::Reference(_) => {
            let (gv, sv) = (reference::values(g)?, reference::values(saved)?);
            let dx = gv.iter().zip(sv).map(|(&g, s)| (op.def.reference_backward)(g, s, op.alpha, op.beta)).collect();
            Ok(reference::tensor(dx, g.shape(), g.dtype()))
        }
        Storage::Gpu(_) => map_gpu(name, &[g, saved], g.shape(), |ctx, v, out, shape| {
            gpu_shader().unary_backward(ctx, gpu_code(op), &v[0], &v[1], out, shape)
        }),
    }
}

/// The whole of a CPU storage as a slice of `T` (a strided kernel reads it through a layout).
fn whole<'a, T: Float>(s: &'a CpuStorage, op: &'static str) -> Result<&'a [T]> {
    T::slice(s).ok_or(TensorError::DType { op, expected: T::DTYPE, got: s.dtype() })
}

/// "relu_backward" for relu: the profile's name of a row's backward, built once per row so
/// the per-op table keeps forward and backward apart.
fn backward_name(op: UnaryOp) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| UNARY_OPS.iter().map(|d| format!("{}_backward", d.name)).collect());
    &names[op.def.code() as usize]
}

/// The GPU arm shared by the element-wise ops: each operand as a strided view at `shape`
/// (broadcast through stride-0 axes), a dense output of `shape`, and `launch` recording the
/// kernel on the operands' context, once, or once per part of the leading axis when a buffer
/// is larger than one binding (`launch` gets the part's views and shape).
fn map_gpu(
    op: &'static str,
    operands: &[&Tensor],
    shape: &[usize],
    launch: impl Fn(&gpu::Context, &[View], &View, &[usize]) -> gpu::Result<()>,
) -> Result<Tensor> {
    let ctx = Arc::clone(operands[0].gpu_storage(op)?.context());
    let views = operands
        .iter()
        .map(|t| {
            let l = t.layout().broadcast_to(shape)?;
            Ok(StorageView { storage: t.gpu_storage(op)?, strides: l.strides, offset: l.offset })
        })
        .collect::<Result<Vec<StorageView>>>()?;
    let out = gpu_alloc_rows(&ctx, shape, op)?;
    for_each_row_part(&ctx, op, &views, &StorageView::dense(&out, shape), shape, launch)?;
    Ok(Tensor::from_gpu_storage(out, shape))
}

/// Applies `op` to a and b broadcast together. a, b: broadcastable → broadcast shape.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, op.name, a);
    let name = "binary op";
    same_device(name, &[a.device(), b.device()])?;
    let dtype = same_dtype(name, &[a, b])?;
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    match (a.storage(), b.storage()) {
        (Storage::Cpu(sa), Storage::Cpu(sb)) => {
            if a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() {
                return Ok(match dtype {
                    DType::F32 => Tensor::from_kernel((op.dense_f32)(a.cpu_slice()?, b.cpu_slice()?), &shape),
                    DType::F64 => Tensor::from_kernel((op.dense_f64)(a.cpu_slice()?, b.cpu_slice()?), &shape),
                });
            }
            // Read in place through the broadcast layouts (the whole storages, not copies).
            let (la, lb) = (a.layout().broadcast_to(&shape)?, b.layout().broadcast_to(&shape)?);
            Ok(match dtype {
                DType::F32 => {
                    Tensor::from_kernel((op.strided_f32)(whole(sa, name)?, &la, whole(sb, name)?, &lb), &shape)
                }
                DType::F64 => {
                    Tensor::from_kernel((op.strided_f64)(whole(sa, name)?, &la, whole(sb, name)?, &lb), &shape)
                }
            })
        }
        (Storage::Reference(_), _) => {
            let (av, bv) = (reference::values(&a.broadcast_to(&shape)?)?, reference::values(&b.broadcast_to(&shape)?)?);
            Ok(reference::tensor(av.iter().zip(bv).map(|(&a, b)| (op.reference)(a, b)).collect(), &shape, dtype))
        }
        _ => map_gpu(name, &[a, b], &shape, |ctx, v, out, shape| {
            gpu_shader().binary(ctx, op.code(), &v[0], &v[1], out, shape)
        }),
    }
}

/// The VAE's sample z = μ + e^{½·log σ²}·ε (the reparameterisation trick) as one op, where
/// written out it is four (`mul_scalar`, `exp`, `mul`, `add`): on the GPU one launch instead of
/// four, and its backward one instead of three. On the CPU the same operations in the same
/// order, so z is bit for bit the four ops' (a test holds the two equal).
// mu, logvar, eps: the same shape (e.g. [N, z]) → z: that shape
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, "reparameterize", mu);
    map3(
        "reparameterize",
        [mu, logvar, eps],
        |m, lv, e| m + (0.5 * lv).exp() * e,
        kernel::reparameterize,
        kernel::reparameterize,
        &gpu_kernel::REPARAMETERIZE,
    )
}

/// The gradient of [`reparameterize`] with respect to log σ², from the upstream gradient g:
/// ½·g·ε·e^{½·log σ²} (with respect to μ it is g itself).
// grad_z, logvar, eps: the same shape → grad_logvar: that shape
pub fn reparameterize_backward(grad_z: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, "reparameterize_backward", grad_z);
    map3(
        "reparameterize_backward",
        [grad_z, logvar, eps],
        |g, lv, e| g * e * (0.5 * lv).exp() * 0.5,
        kernel::reparameterize_backward,
        kernel::reparameterize_backward,
        &gpu_kernel::REPARAMETERIZE_BACKWARD,
    )
}

/// The gradient of the `squared_difference` row's (a − b)² with respect to a, from the
/// upstream gradient g: g·(a − b)·2 in one pass (with respect to b it is the negation). On the
/// CPU bit for bit what `sub` then `square` give backward.
// grad, a, b: the same shape → grad_a: that shape
pub fn squared_difference_backward(grad: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Elementwise, "squared_difference_backward", grad);
    map3(
        "squared_difference_backward",
        [grad, a, b],
        |g, a, b| g * (a - b) * 2.0,
        kernel::squared_difference_backward,
        kernel::squared_difference_backward,
        &gpu_kernel::SQUARED_DIFFERENCE_BACKWARD,
    )
}

/// A CPU kernel of three same-length slices into a new one.
type Map3Kernel<T> = fn(&[T], &[T], &[T]) -> Vec<T>;

/// Runs an element-wise map of three same-shape tensors on their device: `reference` (its
/// definition, in f64) on the reference device, the f32 or f64 CPU kernel, or the GPU kernel
/// (one of `strided.wgsl`'s three-operand maps, launched by `gpu::kernels::elementwise::map3`).
fn map3(
    name: &'static str,
    [a, b, c]: [&Tensor; 3],
    reference: fn(f64, f64, f64) -> f64,
    f32_kernel: Map3Kernel<f32>,
    f64_kernel: Map3Kernel<f64>,
    gpu_map: &'static KernelDef,
) -> Result<Tensor> {
    same_device(name, &[a.device(), b.device(), c.device()])?;
    let dtype = same_dtype(name, &[a, b, c])?;
    if a.shape() != b.shape() || a.shape() != c.shape() {
        return shape_err(
            name,
            format!("its three operands must have one shape, got {:?}, {:?} and {:?}", a.shape(), b.shape(), c.shape()),
        );
    }
    let shape = a.shape().to_vec();
    match a.storage() {
        Storage::Cpu(_) => {
            let [a, b, c] = [a, b, c].map(Tensor::contiguous);
            let (a, b, c) = (a?, b?, c?);
            match dtype {
                DType::F32 => Ok(Tensor::from_kernel(
                    f32_kernel(a.cpu_slice::<f32>()?, b.cpu_slice::<f32>()?, c.cpu_slice::<f32>()?),
                    &shape,
                )),
                DType::F64 => Ok(Tensor::from_kernel(
                    f64_kernel(a.cpu_slice::<f64>()?, b.cpu_slice::<f64>()?, c.cpu_slice::<f64>()?),
                    &shape,
                )),
            }
        }
        Storage::Reference(_) => {
            let (a, b, c) = (reference::values(a)?, reference::values(b)?, reference::values(c)?);
            let out = a.iter().zip(&b).zip(&c).map(|((&a, &b), &c)| reference(a, b, c)).collect();
            Ok(reference::tensor(out, &shape, dtype))
        }
        Storage::Gpu(_) => map_gpu(name, &[a, b, c], &shape, |ctx, v, out, shape| {
            gpu_kernel::map3(ctx, gpu_map, [&v[0], &v[1], &v[2]], out, shape)
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
    let dtype = same_dtype(name, &[a, b])?;
    same_dtype(name, &[a, cond])?;
    let shape = broadcast_shapes(name, &broadcast_shapes(name, cond.shape(), a.shape())?, b.shape())?;
    match a.storage() {
        Storage::Cpu(_) => with_float_type!(dtype, T => run::<T>(cond, a, b, &shape)),
        Storage::Reference(_) => {
            let [c, a, b] = [cond, a, b].map(|t| t.broadcast_to(&shape).and_then(|t| reference::values(&t)));
            let out = c?.iter().zip(a?).zip(b?).map(|((&c, a), b)| if c != 0.0 { a } else { b }).collect();
            Ok(reference::tensor(out, &shape, dtype))
        }
        Storage::Gpu(_) => map_gpu(name, &[cond, a, b], &shape, |ctx, v, out, shape| {
            gpu_kernel::where_select(ctx, &v[0], &v[1], &v[2], out, shape)
        }),
    }
}
