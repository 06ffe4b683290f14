//! Matrix products with an operand larger than one GPU binding, or lying in chunks (larger
//! than one buffer): the products cut into parts that each bind windows of their operands.
//! `crate::ops::matmul` launches once on whole buffers when everything fits, and hands the
//! rest to [`matmul_in_parts`].

use gpu::kernels::matmul::{matmul as gpu_matmul, MatView, MatmulArgs};
use gpu::{Context, GpuBuffer};

use super::{gcd, steps_in_one_window, window_at, BoundRange};
use crate::error::{gpu_err, Result, TensorError};
use crate::storage::GpuStorage;
use crate::tensor::Tensor;

/// A matmul operand on the GPU: strided matrices over a storage that may lie in chunks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredMat<'s> {
    pub(crate) storage: &'s GpuStorage,
    /// Element index of [0, 0, 0].
    offset: usize,
    /// Step between matrices (0 for a 2-D operand, shared by the batch).
    batch_stride: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'s> StoredMat<'s> {
    pub(crate) fn of(t: &'s Tensor) -> Result<Self> {
        let (l, r) = (t.layout(), t.rank());
        Ok(StoredMat {
            storage: t.gpu_storage("matmul")?,
            offset: l.offset,
            batch_stride: if r == 3 { l.strides[0] } else { 0 },
            row_stride: l.strides[r - 2],
            col_stride: l.strides[r - 1],
        })
    }

    /// The same matrices, read from `buf`: the view the kernel takes.
    pub(crate) fn on<'b>(&self, buf: &'b GpuBuffer) -> MatView<'b> {
        let StoredMat { offset, batch_stride, row_stride, col_stride, .. } = *self;
        MatView { buf, offset, batch_stride, row_stride, col_stride }
    }

    /// Element index of matrix `b`'s [row, col].
    fn at(&self, b: usize, row: usize, col: usize) -> usize {
        self.offset + b * self.batch_stride + row * self.row_stride + col * self.col_stride
    }

    /// Elements spanned from [0, 0] of one matrix by a [rows, cols] block (rows, cols ≥ 1).
    fn block(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride + 1
    }

    /// [`steps_in_one_window`] over this operand's storage.
    fn steps_in_one_window(&self, ctx: &Context, first: usize, stride: usize, block: usize, upto: usize) -> usize {
        steps_in_one_window(ctx, self.storage, first, stride, block, upto)
    }
}

/// A GPU matmul with an operand larger than one binding or lying in chunks (larger than one
/// buffer): parts of the batch; where one product does not fit one window, parts of its
/// rows; where B's matrix does not either, parts of K, added into C (Xᵀ·dY, a weight
/// gradient, whose rows each span most of X). Each part binds windows of A and B covering
/// what it reads (their views rebased on them), each inside one chunk, and its dense range of
/// C (`BoundRange`: staged where no window may start). Counts of C's rows are rounded to the
/// offset alignment's step when that leaves any, so that windows of C rarely need staging.
/// `sizes`: [batch, m, k, n].
pub(crate) fn matmul_in_parts(
    ctx: &Context,
    a: StoredMat,
    b: StoredMat,
    c: &GpuStorage,
    sizes: [usize; 4],
) -> Result<()> {
    const OP: &str = "matmul";
    let [batch, m, k, n] = sizes;
    if batch * m * n == 0 {
        return Ok(());
    }
    if k == 0 {
        // Sums over nothing (a narrowed view of a large buffer can get here).
        return c.chunks().iter().try_for_each(|chunk| ctx.clear(chunk)).map_err(gpu_err(OP));
    }
    let c_mat = StoredMat { storage: c, offset: 0, batch_stride: m * n, row_stride: n, col_stride: 1 };
    let align = ctx.window_alignment();
    let aligned = |count: usize, elems_per: usize| {
        let step = align / gcd(elems_per, align);
        if count >= step {
            count / step * step
        } else {
            count
        }
    };
    // One part: products `b0..b0 + nb`, rows `m0..m0 + nm` of each, K `k0..k0 + nk`, added to
    // C when `accumulate` (a part of K after the first). C's range is dense: nb = 1 or nm = m.
    let launch = |[b0, nb]: [usize; 2], [m0, nm]: [usize; 2], [k0, nk]: [usize; 2], accumulate: bool| {
        let (a_first, b_first) = (a.at(b0, m0, k0), b.at(b0, k0, 0));
        let a_span = (nb - 1) * a.batch_stride + a.block(nm, nk);
        let b_span = (nb - 1) * b.batch_stride + b.block(nk, n);
        let (wa, at_a) = window_at(ctx, a.storage, a_first, a_span)?;
        let (wb, at_b) = window_at(ctx, b.storage, b_first, b_span)?;
        let out = BoundRange::new(ctx, c, (b0 * m + m0) * n, nb * nm * n, accumulate)?;
        let part = MatmulArgs {
            a: StoredMat { offset: at_a, ..a }.on(&wa),
            b: StoredMat { offset: at_b, ..b }.on(&wb),
            c: out.bound(),
            batch: nb,
            m: nm,
            n,
            k: nk,
            accumulate,
            epilogue: Default::default(),
        };
        gpu_matmul(ctx, &part)?;
        out.write_back(ctx)
    };
    let mut b0 = 0;
    while b0 < batch {
        let left = batch - b0;
        let whole_products = [
            a.steps_in_one_window(ctx, a.at(b0, 0, 0), a.batch_stride, a.block(m, k), left),
            b.steps_in_one_window(ctx, b.at(b0, 0, 0), b.batch_stride, b.block(k, n), left),
            c_mat.steps_in_one_window(ctx, c_mat.at(b0, 0, 0), m * n, m * n, left),
        ];
        let nb = aligned(whole_products.into_iter().fold(left, usize::min), m * n);
        if nb > 0 {
            launch([b0, nb], [0, m], [0, k], false).map_err(gpu_err(OP))?;
            b0 += nb;
            continue;
        }
        // Product b0 in parts of its rows, B's matrix whole where it fits one window.
        let b_whole = b.steps_in_one_window(ctx, b.at(b0, 0, 0), 0, b.block(k, n), 1) == 1;
        let mut m0 = 0;
        while m0 < m {
            let c_rows = aligned(c_mat.steps_in_one_window(ctx, c_mat.at(b0, m0, 0), n, n, m - m0), n);
            let a_rows = if b_whole {
                a.steps_in_one_window(ctx, a.at(b0, m0, 0), a.row_stride, a.block(1, k), m - m0)
            } else {
                0
            };
            let nm = aligned(c_rows.min(a_rows), n);
            if nm > 0 {
                launch([b0, 1], [m0, nm], [0, k], false).map_err(gpu_err(OP))?;
                m0 += nm;
                continue;
            }
            // Rows of C that fit one window, in parts of K added up.
            let nm = c_rows;
            let mut k0 = 0;
            while k0 < k && nm > 0 {
                let nk = a
                    .steps_in_one_window(ctx, a.at(b0, m0, k0), a.col_stride, a.block(nm, 1), k - k0)
                    .min(b.steps_in_one_window(ctx, b.at(b0, k0, 0), b.row_stride, b.block(1, n), k - k0));
                if nk == 0 {
                    break;
                }
                launch([b0, 1], [m0, nm], [k0, nk], k0 > 0).map_err(gpu_err(OP))?;
                k0 += nk;
            }
            if k0 < k {
                return Err(TensorError::Limit {
                    op: OP,
                    msg: format!(
                        "[{m}, {k}]·[{k}, {n}] cannot be split into parts that each fit one GPU binding of {} f32 \
                         (max_storage_buffer_binding_size) within one buffer",
                        ctx.max_binding_len()
                    ),
                });
            }
            m0 += nm;
        }
        b0 += 1;
    }
    Ok(())
}
