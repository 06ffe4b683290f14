//! The index ops (index_select, index_add) on the GPU: one launch on whole buffers, parts of
//! the outer axis when operands are larger than one binding, and windows of the indexed axis
//! when one outer row is.

use std::sync::Arc;

use gpu::kernels::index::{IndexDims, IndexWindow};
use gpu::GpuBuffer;

use super::{gpu_alloc_rows, room_at, run_gpu_in_parts, splits_into_parts, window_at, Cut};
use crate::dtype::DType;
use crate::error::{gpu_err, Result, TensorError};
use crate::storage::GpuStorage;
use crate::tensor::Tensor;

/// The GPU launches of an index op (`input` [outer, n_in, inner] → [outer, n_out, inner] of
/// `out_shape`): once on whole buffers; in parts of `outer` when operands are larger than one
/// binding (each part binds its rows, as the convolutions' batch); and when one outer row is
/// larger than a binding, a window of rows of the indexed axis at a time, for one outer index
/// after another: each window of the output against each window of the input, in order
/// (`IndexWindow` says which rows a launch holds; see `shaders/index.wgsl`).
pub(crate) fn run_index_gpu(
    op: &'static str,
    input: &Tensor,
    d: IndexDims,
    out_shape: &[usize],
    launch: impl Fn(&gpu::Context, IndexDims, IndexWindow, &GpuBuffer, &GpuBuffer) -> gpu::Result<()>,
) -> Result<Tensor> {
    let ctx = Arc::clone(input.gpu_storage(op)?.context());
    let (in_row, out_row) = (d.n_in * d.inner, d.n_out * d.inner);
    if splits_into_parts(&ctx, &[in_row, out_row]) {
        let inputs = [(Some(input), Cut::Rows)];
        let [y] = run_gpu_in_parts(op, d.outer, &inputs, [(out_shape, Cut::Rows)], |ctx, part, i, [o]| {
            launch(ctx, IndexDims { outer: part.rows, ..d }, IndexWindow::default(), i[0].expect("input"), o)
        })?;
        return Ok(y);
    }
    if d.n_in == 0 {
        // Nothing to select from or to add: no window of the input would write the output.
        return Tensor::zeros_on(out_shape, DType::F32, &input.device());
    }
    let x = input.gpu_dense(op)?;
    let x = x.gpu_storage(op)?;
    let out = gpu_alloc_rows(&ctx, out_shape, op)?;
    for o in 0..d.outer {
        let in_windows = windows_of_rows(&ctx, op, x, o * d.n_in, d.n_in, d.inner)?;
        for (out_first, n_out) in windows_of_rows(&ctx, op, &out, o * d.n_out, d.n_out, d.inner)? {
            let out_at = (o * d.n_out + out_first) * d.inner;
            let (ow, out_offset) = window_at(&ctx, &out, out_at, n_out * d.inner).map_err(gpu_err(op))?;
            for (n, &(in_first, n_in)) in in_windows.iter().enumerate() {
                let x_at = (o * d.n_in + in_first) * d.inner;
                let (xw, in_offset) = window_at(&ctx, x, x_at, n_in * d.inner).map_err(gpu_err(op))?;
                let w = IndexWindow { in_first, out_first, in_offset, out_offset, accumulate: n > 0 };
                launch(&ctx, IndexDims { outer: 1, n_in, n_out, inner: d.inner }, w, &xw, &ow).map_err(gpu_err(op))?;
            }
        }
    }
    Ok(Tensor::from_gpu_storage(out, out_shape))
}

/// `rows` rows of `inner` elements of `storage`, from row `first`, cut into windows that each
/// lie in one chunk and fit one binding with room for an aligned start: (first row, rows) of
/// each, counted from `first`.
fn windows_of_rows(
    ctx: &gpu::Context,
    op: &'static str,
    storage: &GpuStorage,
    first: usize,
    rows: usize,
    inner: usize,
) -> Result<Vec<(usize, usize)>> {
    let mut windows = Vec::new();
    let mut start = 0;
    while start < rows {
        let n = (room_at(ctx, storage, (first + start) * inner) / inner.max(1)).min(rows - start);
        if n == 0 {
            return Err(TensorError::Limit {
                op,
                msg: format!(
                    "a row of {inner} f32 along the indexed axis does not fit one GPU binding of {} f32 \
                     (max_storage_buffer_binding_size)",
                    ctx.max_binding_len()
                ),
            });
        }
        windows.push((start, n));
        start += n;
    }
    Ok(windows)
}
