//! GPU launches over tensors larger than one storage binding, split into parts. Tier: GPU.
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
//!   alignment, so the rows per part are rounded down to keep every cut aligned; when not
//!   even one aligned group of rows fits a binding, a part takes as many rows as fit, and
//!   an operand whose cut starts unaligned is staged through a scratch buffer, copied in
//!   (an input) or out (an output): a copy may start at any element.
//! - element-wise kernels read strided views that carry their own offset, so they cut their
//!   output's leading axis anywhere: each operand's window starts at the aligned element just
//!   before its first read, and the view's offset makes up the difference:
//!   [`for_each_row_part`]. Matrix products, whose views carry offsets too, cut the same way
//!   in [`matmul`] ([`window_at`], [`room_at`]), their dense output bound as a [`BoundRange`].
//! - reductions and batch norm, whose kernels reduce over what would be cut, combine pieces:
//!   batch norm composed of ops that run in parts ([`batch_norm`]), a reduction cut along
//!   its reduced axis ([`reduce`]).
//!
//! Below the limit either runs its launch once on the whole buffers, as before.
//!
//! A tensor larger than one buffer may be (max_buffer_size: 4 GiB on an H100) is stored in
//! chunks of whole rows of its leading axis (`GpuStorage`; [`gpu_alloc_rows`] makes them), a
//! power of two of rows each. Every cutter ends a part where a chunk ends, so each window lies
//! in one buffer; an operand that every part binds whole (a weight) is refused in chunks,
//! naming the limit.

pub(crate) mod batch_norm;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod reduce;

use std::sync::Arc;

use gpu::kernels::elementwise::View;
use gpu::kernels::Output;
use gpu::{BufferWindow, Context, GpuBuffer};

use crate::error::{gpu_err, Result, TensorError};
use crate::shape::{contiguous_strides, numel};
use crate::storage::GpuStorage;
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
/// elements per row on `ctx`: whether one row of each fits a binding.
pub(crate) fn splits_into_parts(ctx: &Context, row_lens: &[usize]) -> bool {
    row_lens.iter().all(|&r| r <= ctx.max_binding_len())
}

/// The window of `buf` from the aligned element at or before `first` to `first + len`, and
/// where `first` lies in it (a view's offset, rebased).
fn window_from<'b>(
    ctx: &Context,
    buf: &'b GpuBuffer,
    first: usize,
    len: usize,
) -> gpu::Result<(BufferWindow<'b>, usize)> {
    let base = first / ctx.window_alignment() * ctx.window_alignment();
    ctx.window(buf, base, first + len - base).map(|w| (w, first - base))
}

/// [`window_from`] in the chunk of `storage` that holds element `first` (the window must not
/// reach past that chunk: [`room_at`] says how far it may).
pub(crate) fn window_at<'s>(
    ctx: &Context,
    storage: &'s GpuStorage,
    first: usize,
    len: usize,
) -> gpu::Result<(BufferWindow<'s>, usize)> {
    let (chunk, local) = storage.locate(first);
    window_from(ctx, chunk, local, len)
}

/// How many elements from element `first` of `storage` one window can reach: to the end of
/// its chunk, and no further than a binding holds once the window starts at the aligned
/// element at or before `first`.
pub(crate) fn room_at(ctx: &Context, storage: &GpuStorage, first: usize) -> usize {
    let (chunk, local) = storage.locate(first);
    (chunk.len() - local).min(ctx.max_binding_len().saturating_sub(local % ctx.window_alignment()))
}

/// The most steps of `stride` elements (at most `upto`) from element `first` of `storage` whose
/// span, a `block` of elements from the last step on, lies in one window ([`room_at`]): 0 when
/// not even the first block does.
pub(crate) fn steps_in_one_window(
    ctx: &Context,
    storage: &GpuStorage,
    first: usize,
    stride: usize,
    block: usize,
    upto: usize,
) -> usize {
    match room_at(ctx, storage, first).checked_sub(block) {
        None => 0,
        Some(_) if stride == 0 => upto,
        Some(left) => (left / stride + 1).min(upto),
    }
}

/// Whether the chunks of `storage` (holding `len` elements over `rows` rows) each hold whole
/// rows, as cutting it along its rows needs; one buffer always does.
fn holds_whole_rows(storage: &GpuStorage, len: usize, rows: usize) -> bool {
    storage.single_buffer().is_some() || storage.chunk_len().is_multiple_of((len / rows.max(1)).max(1))
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

/// A GPU storage for a contiguous tensor of `shape`: one buffer when it fits one, else chunks
/// of whole rows of its leading axis ([`chunk_len_for`]).
pub(crate) fn gpu_alloc_rows(ctx: &Arc<Context>, shape: &[usize], op: &'static str) -> Result<GpuStorage> {
    let len = numel(shape);
    let chunk_len = chunk_len_for(ctx, shape, op)?;
    if len == chunk_len {
        return Ok(GpuStorage::new(gpu_alloc(ctx, len, op)?, Arc::clone(ctx)));
    }
    let chunks = (0..len)
        .step_by(chunk_len)
        .map(|start| gpu_alloc(ctx, chunk_len.min(len - start), op))
        .collect::<Result<Vec<GpuBuffer>>>()?;
    Ok(GpuStorage::chunked(chunks, chunk_len, Arc::clone(ctx)))
}

/// Elements per chunk of a fresh contiguous tensor of `shape` on `ctx`: all of them when they
/// fit one buffer, else a power of two of whole rows of its leading axis (so that where one
/// tensor's chunks end, a tensor with larger chunks ends a part too, and parts stay aligned).
/// A `Limit` error when a single row is larger than one buffer may be.
pub(crate) fn chunk_len_for(ctx: &Context, shape: &[usize], op: &'static str) -> Result<usize> {
    let len = numel(shape);
    let max_len = ctx.max_buffer_len();
    if len <= max_len {
        return Ok(len);
    }
    let row = len / shape[0];
    if row > max_len {
        return Err(TensorError::Limit {
            op,
            msg: format!(
                "a tensor of shape {shape:?} is larger than one GPU buffer ({max_len} f32, max_buffer_size), and so is \
                 each of its rows ({row} f32), so it cannot be spread over several buffers"
            ),
        });
    }
    Ok((1usize << (max_len / row).ilog2()) * row)
}

/// A GPU launch of `op` over `rows` independent rows (the batch, or N·C planes): makes the
/// inputs dense on the device, each with its [`Cut`] (a `Rows` input's leading `rows` share
/// its elements evenly), allocates one output per (shape, cut) and wraps the outputs as
/// contiguous tensors. `launch` gets its [`Part`] and the buffers (windows when split); it
/// must build its kernel's geometry from the part's rows. The first input must be present
/// (it names the context). A `Rows` operand may lie in chunks (a `Rows` output does when it
/// is larger than one buffer): parts end where chunks do. The other operands are one buffer.
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
    let ctx = Arc::clone(first.gpu_storage(op)?.context());
    // Dense inputs; a `Rows` input in chunks that end inside its rows (a reshaped view) is
    // copied into chunks of its own rows first.
    let dense = inputs
        .iter()
        .map(|&(t, cut)| {
            let Some(t) = t.map(|t| t.gpu_dense(op)).transpose()? else { return Ok(None) };
            if cut == Cut::Rows && !holds_whole_rows(t.gpu_storage(op)?, t.numel(), rows) {
                return t.gpu_copy(op).map(Some);
            }
            Ok(Some(t))
        })
        .collect::<Result<Vec<Option<Tensor>>>>()?;
    let in_stores = dense
        .iter()
        .map(|t| t.as_ref().map(|t| t.gpu_storage(op)).transpose())
        .collect::<Result<Vec<Option<&GpuStorage>>>>()?;
    let out_stores = outputs
        .iter()
        .map(|(s, cut)| match cut {
            Cut::Rows => gpu_alloc_rows(&ctx, s, op),
            _ => Ok(GpuStorage::new(gpu_alloc(&ctx, numel(s), op)?, Arc::clone(&ctx))),
        })
        .collect::<Result<Vec<GpuStorage>>>()?;
    // Every operand with its cut and its length (a dense input may be a prefix of its
    // storage), the inputs first.
    let in_lens: Vec<usize> = dense.iter().map(|t| t.as_ref().map_or(0, Tensor::numel)).collect();
    let operands: Vec<(&GpuStorage, Cut, usize)> = in_stores
        .iter()
        .zip(inputs)
        .zip(&in_lens)
        .filter_map(|((s, (_, cut)), &len)| s.map(|s| (s, *cut, len)))
        .chain(out_stores.iter().zip(&outputs).map(|(s, (shape, cut))| (s, *cut, numel(shape))))
        .collect();
    let row_len = |len: usize| len / rows.max(1);
    let max_len = ctx.max_binding_len();
    // A dense input may be a prefix of a larger buffer (a narrowed tensor): then it is bound
    // as a window of its own elements even when it needs no cutting.
    let whole = operands.iter().all(|(s, ..)| s.single_buffer().is_some_and(|b| b.len() <= max_len));
    if rows == 0 || whole {
        let ins = in_stores.iter().map(|s| s.map(|s| s.buffer(op)).transpose()).collect::<Result<Vec<_>>>()?;
        let outs = out_stores.iter().map(|s| s.buffer(op)).collect::<Result<Vec<_>>>()?;
        let part = Part { first: 0, rows, mode: Output::Overwrite };
        launch(&ctx, part, &ins, std::array::from_fn(|i| outs[i])).map_err(gpu_err(op))?;
    } else {
        // A storage in chunks must be cut along rows that its chunks hold whole.
        for &(s, cut, len) in &operands {
            if cut != Cut::Rows || !holds_whole_rows(s, len, rows) {
                s.buffer(op)?;
            }
        }
        let cut: Vec<(&GpuStorage, usize)> =
            operands.iter().filter(|(_, cut, _)| *cut == Cut::Rows).map(|&(s, _, len)| (s, row_len(len))).collect();
        let row_lens: Vec<usize> = cut.iter().map(|&(_, r)| r).collect();
        let all_rows = cut.iter().all(|&(s, r)| s.single_buffer().is_some() && r * rows <= max_len);
        // As many rows as fit one binding, rounded so that every cut starts aligned; when not
        // even one aligned group fits, as many as fit, unaligned cuts staged (`BoundRange`).
        let aligned = all_rows.then_some(rows).or_else(|| rows_per_part(&row_lens, max_len, ctx.window_alignment()));
        let fit = row_lens.iter().map(|&r| max_len / r.max(1)).min().unwrap_or(rows);
        let part = aligned.unwrap_or(fit);
        if part == 0 {
            return Err(TensorError::Limit {
                op,
                msg: format!(
                    "one of its rows ({} f32 elements) is larger than the {max_len} one GPU binding holds \
                     (max_storage_buffer_binding_size), so it cannot be split along its batch",
                    row_lens.iter().max().unwrap_or(&0)
                ),
            });
        }
        let mut start = 0;
        while start < rows {
            // As many rows as fit one binding, ending where a chunk of any operand ends.
            let n = cut
                .iter()
                .map(|&(s, r)| {
                    let (chunk, local) = s.locate(start * r);
                    (chunk.len() - local) / r.max(1)
                })
                .fold(part.min(rows - start), usize::min);
            let at = [start, n, rows];
            let ins = in_stores
                .iter()
                .zip(inputs)
                .zip(&in_lens)
                .map(|((s, (_, cut)), &len)| s.map(|s| part_operand(&ctx, s, *cut, len, at, true)).transpose())
                .collect::<gpu::Result<Vec<_>>>()
                .map_err(gpu_err(op))?;
            let outs = out_stores
                .iter()
                .zip(&outputs)
                .map(|(s, (shape, cut))| part_operand(&ctx, s, *cut, numel(shape), at, false))
                .collect::<gpu::Result<Vec<_>>>()
                .map_err(gpu_err(op))?;
            let in_refs: Vec<Option<&GpuBuffer>> = ins.iter().map(|w| w.as_ref().map(BoundRange::bound)).collect();
            let mode = if start == 0 { Output::Overwrite } else { Output::Accumulate };
            let part = Part { first: start, rows: n, mode };
            launch(&ctx, part, &in_refs, std::array::from_fn(|i| outs[i].bound())).map_err(gpu_err(op))?;
            for out in &outs {
                out.write_back(&ctx).map_err(gpu_err(op))?;
            }
            start += n;
        }
    }
    let mut tensors = out_stores.into_iter().zip(outputs).map(|(s, (shape, _))| Tensor::from_gpu_storage(s, shape));
    Ok(std::array::from_fn(|_| tensors.next().expect("one storage per output shape")))
}

/// What one part of [`run_gpu_in_parts`] binds of an operand: rows `first..first + n` of a
/// `Rows` operand of `len` elements over `rows` rows; all of any other. An `input`'s rows,
/// when staged, are copied in.
fn part_operand<'s>(
    ctx: &Context,
    s: &'s GpuStorage,
    cut: Cut,
    len: usize,
    [first, n, rows]: [usize; 3],
    input: bool,
) -> gpu::Result<BoundRange<'s>> {
    if cut != Cut::Rows {
        return ctx.window(s.locate(0).0, 0, len).map(BoundRange::Window);
    }
    let r = len / rows.max(1);
    BoundRange::new(ctx, s, first * r, n * r, input)
}

/// A dense range of a storage's elements, lying in one chunk, as one kernel binding: a
/// window of the chunk, or, where the range starts at an element no binding may start at
/// (the offset alignment), a scratch buffer holding it, copied in when the kernel reads it
/// and back out when it writes it (copies may start at any element).
pub(crate) enum BoundRange<'s> {
    Window(BufferWindow<'s>),
    Staged { scratch: GpuBuffer, chunk: &'s GpuBuffer, start: usize },
}

impl<'s> BoundRange<'s> {
    /// Elements `first..first + len` of `s`; `copy_in` fills a scratch buffer with them.
    pub(crate) fn new(ctx: &Context, s: &'s GpuStorage, first: usize, len: usize, copy_in: bool) -> gpu::Result<Self> {
        let (chunk, start) = s.locate(first);
        if start.is_multiple_of(ctx.window_alignment()) {
            return ctx.window(chunk, start, len).map(BoundRange::Window);
        }
        let scratch = ctx.alloc(len)?;
        if copy_in {
            ctx.copy_range(chunk, start, &scratch, 0, len)?;
        }
        Ok(BoundRange::Staged { scratch, chunk, start })
    }

    /// The buffer the kernel binds.
    pub(crate) fn bound(&self) -> &GpuBuffer {
        match self {
            BoundRange::Window(w) => w,
            BoundRange::Staged { scratch, .. } => scratch,
        }
    }

    /// For a staged range the kernel wrote: its elements copied from the scratch buffer into
    /// place.
    pub(crate) fn write_back(&self, ctx: &Context) -> gpu::Result<()> {
        match self {
            BoundRange::Window(_) => Ok(()),
            BoundRange::Staged { scratch, chunk, start } => ctx.copy_range(scratch, 0, chunk, *start, scratch.len()),
        }
    }
}

/// A strided view of a GPU storage that may lie in several buffers: what
/// [`for_each_row_part`] cuts into views of one buffer each.
#[derive(Clone, Debug)]
pub(crate) struct StorageView<'a> {
    /// The storage viewed.
    pub(crate) storage: &'a GpuStorage,
    /// One stride per iteration axis, in elements.
    pub(crate) strides: Vec<usize>,
    /// Element index of position (0, …, 0).
    pub(crate) offset: usize,
}

impl<'a> StorageView<'a> {
    /// All of `storage` as a dense row-major array of `shape`.
    pub(crate) fn dense(storage: &'a GpuStorage, shape: &[usize]) -> Self {
        StorageView { storage, strides: contiguous_strides(shape), offset: 0 }
    }

    /// Elements a view spans within one index of the leading axis of `shape`, less one.
    fn row_span(&self, shape: &[usize]) -> usize {
        shape[1..].iter().zip(&self.strides[1..]).map(|(&n, &s)| (n - 1) * s).sum()
    }

    /// The view as one buffer's [`View`], when it lies in one buffer.
    fn single(&self) -> Option<View<'a>> {
        Some(View::strided(self.storage.single_buffer()?, &self.strides, self.offset))
    }
}

/// Runs an element-wise `launch` over the iteration `shape`: strided `inputs` (broadcast
/// through stride-0 axes) and an `output` view, all of `shape`. When a storage is larger than
/// one binding, or lies in chunks, the launch runs once per part, each view rebased onto a
/// window of one buffer that covers what the part reads; `launch` gets the part's views and
/// shape.
pub(crate) fn for_each_row_part(
    ctx: &Context,
    op: &'static str,
    inputs: &[StorageView],
    output: &StorageView,
    shape: &[usize],
    launch: impl Fn(&Context, &[View], &View, &[usize]) -> gpu::Result<()>,
) -> Result<()> {
    let max_len = ctx.max_binding_len();
    let all: Vec<&StorageView> = inputs.iter().chain(std::iter::once(output)).collect();
    let singles: Option<Vec<View>> = all.iter().map(|v| v.single()).collect();
    if let Some(singles) = singles {
        if shape.is_empty() || numel(shape) == 0 || singles.iter().all(|v| v.buf.len() <= max_len) {
            let (out, ins) = singles.split_last().expect("the output view is last");
            return launch(ctx, ins, out, shape).map_err(gpu_err(op));
        }
    }
    if numel(shape) == 0 {
        return Ok(());
    }
    // A single element (rank 0) of a storage in chunks: as a one-element axis, to cut.
    let (shape, views): (&[usize], Vec<StorageView>) = if shape.is_empty() {
        (&[1], all.into_iter().map(|v| StorageView { strides: vec![1], ..v.clone() }).collect())
    } else {
        (shape, all.into_iter().cloned().collect())
    };
    launch_in_parts(ctx, op, &views, shape, &launch)
}

/// [`for_each_row_part`] once split: from each index of `shape`'s leading axis, as many as
/// every view holds in one window (one binding, one chunk); an index whose row alone does not
/// fit (a permuted view can span most of its storage in one row, a reshaped one can cross a
/// chunk's end) is cut along the next axis. `views` holds the inputs, then the output.
fn launch_in_parts(
    ctx: &Context,
    op: &'static str,
    views: &[StorageView],
    shape: &[usize],
    launch: &impl Fn(&Context, &[View], &View, &[usize]) -> gpu::Result<()>,
) -> Result<()> {
    // The rows from `start` a view holds in one window.
    let rows_in_one_window = |v: &StorageView, start: usize| {
        let first = v.offset + start * v.strides[0];
        steps_in_one_window(ctx, v.storage, first, v.strides[0], v.row_span(shape) + 1, usize::MAX)
    };
    let mut start = 0;
    while start < shape[0] {
        let n = views.iter().map(|v| rows_in_one_window(v, start)).fold(shape[0] - start, usize::min);
        if n == 0 {
            if shape.len() == 1 {
                return Err(TensorError::Limit {
                    op,
                    msg: format!(
                        "an element-wise launch cannot be split to fit one GPU binding of {} f32",
                        ctx.max_binding_len()
                    ),
                });
            }
            let row: Vec<StorageView> = views
                .iter()
                .map(|v| StorageView {
                    storage: v.storage,
                    strides: v.strides[1..].to_vec(),
                    offset: v.offset + start * v.strides[0],
                })
                .collect();
            launch_in_parts(ctx, op, &row, &shape[1..], launch)?;
            start += 1;
            continue;
        }
        let mut part_shape = shape.to_vec();
        part_shape[0] = n;
        let windows = views
            .iter()
            .map(|v| {
                window_at(
                    ctx,
                    v.storage,
                    v.offset + start * v.strides[0],
                    (n - 1) * v.strides[0] + v.row_span(shape) + 1,
                )
            })
            .collect::<gpu::Result<Vec<_>>>()
            .map_err(gpu_err(op))?;
        let part_views: Vec<View> =
            windows.iter().zip(views).map(|((w, offset), v)| View::strided(w, &v.strides, *offset)).collect();
        let (part_out, part_in) = part_views.split_last().expect("the output view is last");
        launch(ctx, part_in, part_out, &part_shape).map_err(gpu_err(op))?;
        start += n;
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
