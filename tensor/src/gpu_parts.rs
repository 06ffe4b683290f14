//! GPU launches over tensors larger than one storage binding, split into parts.
//!
//! A kernel binds each operand as one storage binding, and a binding holds at most
//! max_storage_buffer_binding_size bytes (128 MiB on lavapipe, 2 GiB on an H100), while a
//! tensor may fill any buffer the device can create. So an op whose operand is larger than a
//! binding runs its kernel once per part, each part binding a window of the large buffers
//! (`gpu::Context::window`) that fits:
//! - ops with a batch axis (convolutions, pooling, interpolation) cut along it, the leading
//!   axis of their dense operands: [`run_gpu_in_parts`]. Weights and biases are bound whole;
//!   outputs summed over the batch (weight and bias gradients) are written by the first part
//!   and added to by the others. A window must start at a multiple of the device's offset
//!   alignment, so the rows per part are rounded down to keep every cut aligned.
//! - element-wise kernels read strided views that carry their own offset, so they cut their
//!   output's leading axis anywhere: each operand's window starts at the aligned element just
//!   before its first read, and the view's offset makes up the difference:
//!   [`for_each_row_part`]. Matrix products, whose views carry offsets too, cut the same way
//!   in `ops/matmul.rs` ([`window_from`]).
//! - reductions and batch norm, whose kernels reduce over what would be cut, combine pieces
//!   in their own files (`ops/reduce.rs`, `ops/batch_norm.rs`).
//!
//! Below the limit either runs its launch once on the whole buffers, as before.

use gpu::kernels::elementwise::View;
use gpu::kernels::Output;
use gpu::{BufferWindow, Context, GpuBuffer};

use crate::error::{gpu_err, Result, TensorError};
use crate::shape::numel;
use crate::tensor::{gpu_alloc, Tensor};

/// How an operand of [`run_gpu_in_parts`] is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The leading axis runs over the batch: each part gets its own rows.
    Rows,
    /// Every part binds all of it (a weight, a bias).
    Whole,
    /// An output summed over the batch (a weight gradient): the first part writes it
    /// (`Output::Overwrite`), the others add to it (`Output::Accumulate`).
    Sum,
}

/// Which part of a split launch one call of its `launch` closure makes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    /// Its first row.
    pub(crate) first: usize,
    /// How many rows it has.
    pub(crate) rows: usize,
    /// How its `Cut::Sum` outputs are written: overwritten by the first part, added to by the
    /// others.
    pub(crate) mode: Output,
}

/// The rows per part for operands of `row_lens` elements per row: as many as fit one
/// binding of `max_len` elements, rounded down so that every operand's cut starts at a
/// multiple of `align` elements. `None` when not even one aligned group of rows fits.
fn rows_per_part(row_lens: &[usize], max_len: usize, align: usize) -> Option<usize> {
    let fit = row_lens.iter().map(|&r| max_len / r.max(1)).min()?;
    // rows·r is a multiple of align when rows is a multiple of align / gcd(r, align).
    let step = row_lens.iter().fold(1, |acc, &r| lcm(acc, align / gcd(r.max(1), align)));
    let rows = fit / step * step;
    (rows > 0).then_some(rows)
}

/// Whether [`run_gpu_in_parts`] can split a launch whose cut operands have `row_lens`
/// elements per row on `ctx` (whether they fit one binding whole or an aligned group of rows
/// does).
pub(crate) fn splits_into_parts(ctx: &Context, rows: usize, row_lens: &[usize]) -> bool {
    let max_len = ctx.max_binding_len();
    row_lens.iter().all(|&r| r * rows <= max_len) || rows_per_part(row_lens, max_len, ctx.window_alignment()).is_some()
}

/// The window of `buf` from the aligned element at or before `first` to `first + len`, and
/// where `first` lies in it (a view's offset, rebased).
pub(crate) fn window_from<'b>(
    ctx: &Context,
    buf: &'b GpuBuffer,
    first: usize,
    len: usize,
) -> gpu::Result<(BufferWindow<'b>, usize)> {
    let base = first / ctx.window_alignment() * ctx.window_alignment();
    ctx.window(buf, base, first + len - base).map(|w| (w, first - base))
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

/// A GPU launch of `op` over `rows` independent rows (the batch, or N·C planes): makes the
/// inputs dense on the device, each with its [`Cut`] (a `Rows` input's leading `rows` share
/// its elements evenly), allocates one output per (shape, cut) and wraps the outputs as
/// contiguous tensors. `launch` gets its [`Part`] and the buffers (windows when split); it
/// must build its kernel's geometry from the part's rows. The first input must be present
/// (it names the context).
pub(crate) fn run_gpu_in_parts<const N: usize>(
    op: &'static str,
    rows: usize,
    inputs: &[(Option<&Tensor>, Cut)],
    outputs: [(&[usize], Cut); N],
    launch: impl Fn(&Context, Part, &[Option<&GpuBuffer>], [&GpuBuffer; N]) -> gpu::Result<()>,
) -> Result<[Tensor; N]> {
    let Some((Some(first), _)) = inputs.first() else {
        return crate::error::invalid(op, "a GPU launch needs its first operand");
    };
    let ctx = std::sync::Arc::clone(first.gpu_storage(op)?.context());
    let dense =
        inputs.iter().map(|(t, _)| t.map(|t| t.gpu_dense(op)).transpose()).collect::<Result<Vec<Option<Tensor>>>>()?;
    let in_bufs = dense
        .iter()
        .map(|t| t.as_ref().map(|t| t.gpu_buffer(op)).transpose())
        .collect::<Result<Vec<Option<&GpuBuffer>>>>()?;
    let out_bufs = outputs.iter().map(|(s, _)| gpu_alloc(&ctx, numel(s), op)).collect::<Result<Vec<GpuBuffer>>>()?;
    let row_len = |len: usize| len / rows.max(1);
    let cut_lens: Vec<usize> = inputs
        .iter()
        .zip(&in_bufs)
        .filter(|((_, cut), b)| *cut == Cut::Rows && b.is_some())
        .map(|((t, _), _)| t.map_or(0, |t| t.numel()))
        .chain(outputs.iter().filter(|(_, cut)| *cut == Cut::Rows).map(|(s, _)| numel(s)))
        .collect();
    let max_len = ctx.max_binding_len();
    // A dense input may be a prefix of a larger buffer (a narrowed tensor): then it is bound
    // as a window of its own elements even when it needs no cutting.
    let buffers_fit = in_bufs.iter().flatten().copied().chain(&out_bufs).all(|b| b.len() <= max_len);
    if rows == 0 || buffers_fit {
        let whole = Part { first: 0, rows, mode: Output::Overwrite };
        launch(&ctx, whole, &in_bufs, std::array::from_fn(|i| &out_bufs[i])).map_err(gpu_err(op))?;
    } else {
        let row_lens: Vec<usize> = cut_lens.iter().map(|&len| row_len(len)).collect();
        let all_rows = cut_lens.iter().all(|&len| len <= max_len).then_some(rows);
        let part = all_rows.or_else(|| rows_per_part(&row_lens, max_len, ctx.window_alignment())).ok_or_else(|| {
            TensorError::Limit {
                op,
                msg: format!(
                    "no aligned part of its rows ({} f32 elements each) fits the {max_len} one GPU binding \
                     holds (max_storage_buffer_binding_size), so it cannot be split along its batch",
                    row_lens.iter().max().unwrap_or(&0)
                ),
            }
        })?;
        for start in (0..rows).step_by(part) {
            let n = part.min(rows - start);
            let ins = inputs
                .iter()
                .zip(&dense)
                .zip(&in_bufs)
                .map(|(((_, cut), t), b)| match (cut, b, t) {
                    (Cut::Rows, Some(b), Some(t)) => {
                        let r = row_len(t.numel());
                        ctx.window(b, start * r, n * r).map(Some)
                    }
                    (_, Some(b), Some(t)) => ctx.window(b, 0, t.numel()).map(Some),
                    _ => Ok(None),
                })
                .collect::<gpu::Result<Vec<_>>>()
                .map_err(gpu_err(op))?;
            let outs = outputs
                .iter()
                .zip(&out_bufs)
                .map(|((s, cut), b)| match cut {
                    Cut::Rows => {
                        let r = row_len(numel(s));
                        ctx.window(b, start * r, n * r)
                    }
                    _ => ctx.window(b, 0, b.len()),
                })
                .collect::<gpu::Result<Vec<_>>>()
                .map_err(gpu_err(op))?;
            let in_refs: Vec<Option<&GpuBuffer>> = ins.iter().map(|w| w.as_deref()).collect();
            let mode = if start == 0 { Output::Overwrite } else { Output::Accumulate };
            let part = Part { first: start, rows: n, mode };
            launch(&ctx, part, &in_refs, std::array::from_fn(|i| &*outs[i])).map_err(gpu_err(op))?;
        }
    }
    let mut tensors =
        out_bufs.into_iter().zip(outputs).map(|(b, (s, _))| Tensor::from_gpu(b, std::sync::Arc::clone(&ctx), s));
    Ok(std::array::from_fn(|_| tensors.next().expect("one buffer per output shape")))
}

/// Runs an element-wise `launch` over the iteration `shape`: strided `inputs` (broadcast
/// through stride-0 axes) and an `output` view, all of `shape`. When a buffer is larger than
/// one binding, the launch runs once per part, each view rebased onto a window of its buffer
/// that covers what the part reads; `launch` gets the part's views and shape.
pub(crate) fn for_each_row_part(
    ctx: &Context,
    op: &'static str,
    inputs: &[View],
    output: &View,
    shape: &[usize],
    launch: impl Fn(&Context, &[View], &View, &[usize]) -> gpu::Result<()>,
) -> Result<()> {
    let max_len = ctx.max_binding_len();
    let fits = inputs.iter().chain(std::iter::once(output)).all(|v| v.buf.len() <= max_len);
    if shape.is_empty() || numel(shape) == 0 || fits {
        return launch(ctx, inputs, output, shape).map_err(gpu_err(op));
    }
    let mut views: Vec<View> = inputs.to_vec();
    views.push(output.clone());
    launch_in_parts(ctx, op, &views, shape, &launch)
}

/// [`for_each_row_part`] once split: parts of `shape`'s leading axis when one row fits a
/// binding (with room for an aligned window start); else each index of the leading axis on
/// its own, cut along the next axis (a permuted view can span most of its buffer in one
/// row). `views` holds the inputs, then the output.
fn launch_in_parts(
    ctx: &Context,
    op: &'static str,
    views: &[View],
    shape: &[usize],
    launch: &impl Fn(&Context, &[View], &View, &[usize]) -> gpu::Result<()>,
) -> Result<()> {
    let (max_len, align) = (ctx.max_binding_len(), ctx.window_alignment());
    // Elements a view spans within one row (all axes but the leading one), less one.
    let row_span = |v: &View| shape[1..].iter().zip(&v.strides[1..]).map(|(&n, &s)| (n - 1) * s).sum::<usize>();
    // A part of n rows spans (n − 1)·s0 + row_span + 1 elements, plus up to align − 1 before
    // its first for the aligned window start: the largest n that keeps that within max_len.
    let rows = views
        .iter()
        .map(|v| {
            let room = max_len.checked_sub(row_span(v) + align)?;
            Some(room.checked_div(v.strides[0]).map_or(shape[0], |rows| rows + 1))
        })
        .try_fold(shape[0], |rows, fit| fit.map(|f| rows.min(f)));
    let Some(rows) = rows.filter(|&r| r > 0) else {
        if shape.len() == 1 {
            return Err(TensorError::Limit {
                op,
                msg: format!("an element-wise launch cannot be split to fit one GPU binding of {max_len} f32"),
            });
        }
        for i in 0..shape[0] {
            let sub: Vec<View> =
                views.iter().map(|v| View::strided(v.buf, &v.strides[1..], v.offset + i * v.strides[0])).collect();
            launch_in_parts(ctx, op, &sub, &shape[1..], launch)?;
        }
        return Ok(());
    };
    for start in (0..shape[0]).step_by(rows) {
        let n = rows.min(shape[0] - start);
        let mut part_shape = shape.to_vec();
        part_shape[0] = n;
        // Each view's window: from the aligned element at or before its first read to its last.
        let windows = views
            .iter()
            .map(|v| {
                let first = v.offset + start * v.strides[0];
                window_from(ctx, v.buf, first, (n - 1) * v.strides[0] + row_span(v) + 1)
            })
            .collect::<gpu::Result<Vec<_>>>()
            .map_err(gpu_err(op))?;
        let part_views: Vec<View> =
            windows.iter().zip(views).map(|((w, offset), v)| View::strided(w, &v.strides, *offset)).collect();
        let (part_out, part_in) = part_views.split_last().expect("the output view is last");
        launch(ctx, part_in, part_out, &part_shape).map_err(gpu_err(op))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rows_per_part;

    #[test]
    fn parts_hold_as_many_rows_as_fit_one_binding() {
        // Rows of 64 elements are aligned whatever their count: 15 fit in 1000.
        assert_eq!(rows_per_part(&[64], 1000, 8), Some(15));
        // lavapipe's binding (2^25 f32) and a [N, 3, 67, 65] input: 2568 rows fit.
        assert_eq!(rows_per_part(&[13065], 1 << 25, 8), Some(2568));
    }

    #[test]
    fn parts_round_their_rows_down_so_every_operand_is_cut_at_an_aligned_element() {
        // 13065 is odd: only multiples of 8 rows end on an 8-element boundary; 17420 needs 2.
        // The larger rows fit 1926 times; 1920 is the multiple of 8 below.
        assert_eq!(rows_per_part(&[13065, 17420], 1 << 25, 8), Some(1920));
        assert_eq!(rows_per_part(&[17420], 1 << 25, 8), Some(1926));
        // Alignment 1 (a device without one) keeps every row that fits.
        assert_eq!(rows_per_part(&[13065, 17420], 1 << 25, 1), Some(1926));
    }

    #[test]
    fn no_part_when_not_one_aligned_group_of_rows_fits() {
        // 7 odd rows fit, but 8 are needed to end aligned.
        assert_eq!(rows_per_part(&[13065], 100_000, 8), None);
        assert_eq!(rows_per_part(&[200], 100, 8), None);
    }
}
