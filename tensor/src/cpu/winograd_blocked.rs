//! Winograd's F(2×2, 3×3) in cache-sized blocks: the second step after `cpu::winograd`, whose
//! algebra it keeps (U = G·g·Gᵀ, V = Bᵀ·d·B, 16 GEMMs M_ξ = U_ξ·V_ξ, Y = Aᵀ·M·A).
//!
//! What changes is where the values live. The plain form writes V and M for hundreds of tiles
//! out whole, four times the input and the output, and reads them back from memory in the next
//! pass; on a Xeon (model 207) it never won a layer from the GEMM cuts. Here a block is a few
//! rows of tiles, across images when the planes are small, whose V and M fit in about a quarter
//! of a core's L2: each block transforms its input, runs its 16 GEMMs and transforms its
//! output while they are still in cache, and the blocks run in parallel, each on one thread
//! with every U_ξ packed once for all of them (as the nearest-upsampled convolution's own
//! transform does, `cpu::upsampled_conv`).
//!
//! The transforms run along whole rows of tiles rather than tile by tile: a tile row's four
//! input rows are split into their even and odd columns, so that each of the 16 rows of V is a
//! few contiguous differences and sums of those (likewise M back into two output rows), loops
//! the compiler turns into vector instructions.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::gemm::{gemm, gemm_serial_packed_a, pack_a_once, MatRef, SharedOut};
use crate::cpu::vectorized;
use crate::cpu::winograd;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// y = conv2d(x, w) + bias by F(2×2, 3×3) in blocks, for a geometry where
/// [`winograd::applies`] holds.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    let rows = block_rows::<T>(g.oh.div_ceil(2), g.ow.div_ceil(2), 16, g.c_in, g.c_out);
    in_blocks(x, w, bias, g, rows)
}

/// [`conv2d_forward`] in blocks of `rows` rows of tiles (the tests walk several).
fn in_blocks<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, rows: usize) -> Vec<T> {
    assert!(winograd::applies(g), "Winograd F(2×2, 3×3) computes 3×3 kernels at stride 1 without dilation, got {g:?}");
    let (c_in, c_out) = (g.c_in, g.c_out);
    let len = g.batch * c_out * g.out_plane();
    if len == 0 {
        return vec![];
    }
    let tiles = Tiles { per_image: g.oh.div_ceil(2), per_row: g.ow.div_ceil(2) };
    let u = kernel_transforms(w, c_out, c_in, &G);
    // SAFETY: every output row lies in one tile row, whose block's output pass writes all of
    // its columns.
    unsafe {
        run_blocks_into_new(
            len,
            &u,
            [c_in, c_out, 16],
            [g.batch * tiles.per_image, tiles.per_row, rows],
            || RowScratch::new(tiles.per_row),
            |block, v, scratch| vectorized::run(InputPass { x, g, tiles, block, v, scratch }),
            |block, m, scratch, out| vectorized::run(OutputPass { m, bias, g, tiles, block, out, scratch }),
        )
    }
}

/// [`run_blocks`] for a layer whose output, `len` values, is a new vector written into its
/// spare capacity, not zeroed first: `output_pass` gets where it starts. The three blocked
/// layers (F(2×2), F(4×4), the upsampled convolution) each write every output value once.
///
/// # Safety
/// Over all the blocks, `output_pass` writes each of the `len` values, and nothing past them.
pub(crate) unsafe fn run_blocks_into_new<T: Float, S>(
    len: usize,
    u: &[T],
    channels_and_values: [usize; 3],
    rows_and_blocks: [usize; 3],
    pass_scratch: impl Fn() -> S + Sync + Send,
    input_pass: impl Fn(Range<usize>, &mut [T], &mut S) + Sync + Send,
    output_pass: impl Fn(Range<usize>, &[T], &mut S, SharedOut<MaybeUninit<T>>) + Sync + Send,
) -> Vec<T> {
    let mut y = Vec::with_capacity(len);
    let out = SharedOut(y.spare_capacity_mut().as_mut_ptr());
    run_blocks(u, channels_and_values, rows_and_blocks, pass_scratch, input_pass, |block, m, scratch| {
        output_pass(block, m, scratch, out)
    });
    // SAFETY: the caller's contract: the output passes wrote all `len` values.
    unsafe { y.set_len(len) };
    y
}

/// The blocks of a blocked Winograd layer, whichever its transforms: F(2×2, 3×3) here, 16
/// values a tile; F(4×4, 3×3) (`cpu::winograd_4x4`), 36; the nearest-upsampled convolution's
/// (`cpu::upsampled_conv`), 9 a small pixel. `u` is U[co][ξ][ci] ([`kernel_transforms`]); the
/// batch's `tile_rows` rows of `row_len` tiles go in blocks of `rows` rows, in parallel. Each
/// block's `input_pass` writes its V [C_in, values, tiles of the block], its GEMMs make
/// M_ξ = U_ξ·V_ξ, and its `output_pass` reads M [C_out, values, tiles of the block]; both
/// passes get `pass_scratch`'s value, made once per task. While there are at least as many
/// blocks as threads, each block runs on one thread with every U_ξ packed once for all of
/// them (the upsampled layers ran 13–15 % faster so at batch 16 and 32 on a Xeon, model 207);
/// otherwise each GEMM is spread over the threads.
fn run_blocks<T: Float, S>(
    u: &[T],
    [c_in, c_out, values]: [usize; 3],
    [tile_rows, row_len, rows]: [usize; 3],
    pass_scratch: impl Fn() -> S + Sync + Send,
    input_pass: impl Fn(Range<usize>, &mut [T], &mut S) + Sync + Send,
    output_pass: impl Fn(Range<usize>, &[T], &mut S) + Sync + Send,
) {
    let blocks = tile_rows.div_ceil(rows);
    let serial = blocks >= rayon::current_num_threads();
    let u_xi =
        |xi: usize| MatRef { data: &u[xi * c_in..], rows: c_out, cols: c_in, row_stride: values * c_in, col_stride: 1 };
    let u_packed: Vec<_> =
        if serial { (0..values).into_par_iter().map(|xi| pack_a_once(u_xi(xi))).collect() } else { vec![] };
    let scratch = || {
        let v = vec![T::ZERO; c_in * values * rows * row_len]; // V[ci][ξ][tile]
        let m = vec![T::ZERO; c_out * values * rows * row_len]; // M[co][ξ][tile]
        (v, m, pass_scratch())
    };
    (0..blocks).into_par_iter().for_each_init(scratch, |(v, m, pass_scratch), block_index| {
        let r0 = block_index * rows; // tile rows r0.. of the batch's, image after image
        let block = r0..(r0 + rows).min(tile_rows);
        let cols = block.len() * row_len;
        let v = &mut v[..c_in * values * cols];
        input_pass(block.clone(), v, pass_scratch);

        let m = &mut m[..c_out * values * cols];
        for xi in 0..values {
            let v_xi = MatRef { data: &v[xi * cols..], rows: c_in, cols, row_stride: values * cols, col_stride: 1 };
            if serial {
                gemm_serial_packed_a(&u_packed[xi], v_xi, &mut m[xi * cols..], values * cols, false);
            } else {
                gemm(u_xi(xi), v_xi, &mut m[xi * cols..], values * cols, false);
            }
        }
        output_pass(block, m, pass_scratch);
    });
}

/// G of F(2×2, 3×3), row by row (`cpu::winograd` has the algebra).
const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// How a blocked Winograd's output tiles (2×2 here, 4×4 in `cpu::winograd_4x4`) lie in each
/// image: `per_image` rows of `per_row` tiles.
#[derive(Clone, Copy)]
pub(crate) struct Tiles {
    pub(crate) per_image: usize,
    pub(crate) per_row: usize,
}

impl Tiles {
    /// The image and the row within it of the batch's tile row `r`.
    pub(crate) fn image_and_row(self, r: usize) -> (usize, usize) {
        (r / self.per_image, r % self.per_image)
    }
}

/// One task's rows between the transforms, each split into its even and odd columns.
struct RowScratch<T> {
    /// The four input rows a tile row reads.
    d: [[Vec<T>; 2]; 4],
    /// One row of Bᵀ·d, or of Aᵀ·M·A.
    t: [Vec<T>; 2],
    /// One row of Aᵀ·M for each column of the tiles.
    q: [Vec<T>; 4],
    /// One input row with its padding, before it is split.
    padded: Vec<T>,
}

impl<T: Float> RowScratch<T> {
    fn new(tile_cols: usize) -> RowScratch<T> {
        let half = tile_cols + 1;
        let split = |_| [vec![T::ZERO; half], vec![T::ZERO; half]];
        RowScratch {
            d: std::array::from_fn(split),
            t: split(0),
            q: std::array::from_fn(|_| vec![T::ZERO; tile_cols]),
            padded: vec![T::ZERO; 2 * half],
        }
    }
}

/// V = Bᵀ·d·B of every tile in the tile rows `block`, for every input channel.
// x: [N, C_in, H, W] → v: [C_in, 16, tiles of the block]
#[inline(always)]
fn transform_input<T: Float>(
    x: &[T],
    g: &Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    v: &mut [T],
    scratch: &mut RowScratch<T>,
) {
    let (plane, cols, per_row) = (g.h * g.w, block.len() * tiles.per_row, tiles.per_row);
    let RowScratch { d, t, padded, .. } = scratch;
    for (ci, v_ci) in v.chunks_exact_mut(16 * cols).enumerate() {
        for (r, tile_row) in block.clone().enumerate() {
            let (image, ty) = tiles.image_and_row(tile_row);
            let x_plane = &x[(image * g.c_in + ci) * plane..][..plane];
            // Tile row ty reads input rows 2ty … 2ty + 3 (less the padding): the last two
            // of them are the first two of the next tile row.
            let first_new = if r > 0 && ty > 0 {
                d.swap(0, 2);
                d.swap(1, 3);
                2
            } else {
                0
            };
            for (k, [even, odd]) in d.iter_mut().enumerate().skip(first_new) {
                let iy = (2 * ty + k).checked_sub(g.padding[0]).filter(|&iy| iy < g.h);
                split_input_row(iy.map(|iy| &x_plane[iy * g.w..][..g.w]), g.padding[1], padded, even, odd);
            }
            for a in 0..4 {
                // Row a of Bᵀ·d, down the columns: d0 − d2, d1 + d2, d2 − d1, d1 − d3 ...
                for (part, t_part) in t.iter_mut().enumerate() {
                    let [d0, d1, d2, d3] = [&d[0][part], &d[1][part], &d[2][part], &d[3][part]];
                    match a {
                        0 => subtract(t_part, d0, d2),
                        1 => add(t_part, d1, d2),
                        2 => subtract(t_part, d2, d1),
                        _ => subtract(t_part, d1, d3),
                    }
                }
                // ... then ·B along the row: tile j reads columns 2j … 2j + 3, the even
                // e_j, e_j+1 and the odd o_j, o_j+1.
                let [even, odd] = &*t;
                let at = |b: usize| (4 * a + b) * cols + r * per_row;
                subtract(&mut v_ci[at(0)..][..per_row], &even[..per_row], &even[1..]);
                add(&mut v_ci[at(1)..][..per_row], &odd[..per_row], &even[1..]);
                subtract(&mut v_ci[at(2)..][..per_row], &even[1..], &odd[..per_row]);
                subtract(&mut v_ci[at(3)..][..per_row], &odd[..per_row], &odd[1..]);
            }
        }
    }
}

/// Y = Aᵀ·M·A + bias of every tile in the tile rows `block`, for every output channel,
/// written into the output rows they cover.
// m: [C_out, 16, tiles of the block] → y: [N, C_out, OH, OW]
#[inline(always)]
fn transform_output<T: Float>(
    m: &[T],
    bias: Option<&[T]>,
    g: &Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    out: SharedOut<MaybeUninit<T>>,
    scratch: &mut RowScratch<T>,
) {
    let (cols, per_row) = (block.len() * tiles.per_row, tiles.per_row);
    let RowScratch { t, q, .. } = scratch;
    for (co, m_co) in m.chunks_exact(16 * cols).enumerate() {
        let b = bias.map_or(T::ZERO, |b| b[co]);
        for (r, tile_row) in block.clone().enumerate() {
            let (image, ty) = tiles.image_and_row(tile_row);
            let m_row = |xi: usize| &m_co[xi * cols + r * per_row..][..per_row];
            for oy in 0..(g.oh - 2 * ty).min(2) {
                // Row oy of Aᵀ·M, one row for each column b of the tiles: M_0b + M_1b + M_2b,
                // or M_1b − M_2b − M_3b ...
                for (xb, q_b) in q.iter_mut().enumerate() {
                    let [m0, m1, m2, m3] = [m_row(xb), m_row(4 + xb), m_row(8 + xb), m_row(12 + xb)];
                    if oy == 0 {
                        sum_of_three(q_b, m0, m1, m2);
                    } else {
                        first_less_two(q_b, m1, m2, m3);
                    }
                }
                // ... then ·A along the row, the tiles' even and odd columns.
                let [even, odd] = &mut *t;
                sum_of_three(&mut even[..per_row], &q[0], &q[1], &q[2]);
                first_less_two(&mut odd[..per_row], &q[1], &q[2], &q[3]);
                // SAFETY: output row 2ty + oy of (image, co) lies within y, and no other
                // block writes it: each tile row belongs to one block.
                let y_row = unsafe { out.slice(((image * g.c_out + co) * g.oh + 2 * ty + oy) * g.ow, g.ow) };
                let mut pairs = y_row.chunks_exact_mut(2);
                for (pair, (&e, &o)) in pairs.by_ref().zip(even.iter().zip(odd.iter())) {
                    pair[0].write(e + b);
                    pair[1].write(o + b);
                }
                // An odd output width: the last tile's first column.
                if let [last] = pairs.into_remainder() {
                    last.write(even[per_row - 1] + b);
                }
            }
        }
    }
}

/// [`transform_input`]'s arguments, for [`vectorized::run`].
struct InputPass<'a, T> {
    x: &'a [T],
    g: &'a Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    v: &'a mut [T],
    scratch: &'a mut RowScratch<T>,
}

impl<T: Float> vectorized::Work for InputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let InputPass { x, g, tiles, block, v, scratch } = self;
        transform_input(x, g, tiles, block, v, scratch);
    }
}

/// [`transform_output`]'s arguments, for [`vectorized::run`].
struct OutputPass<'a, T> {
    m: &'a [T],
    bias: Option<&'a [T]>,
    g: &'a Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    out: SharedOut<MaybeUninit<T>>,
    scratch: &'a mut RowScratch<T>,
}

impl<T: Float> vectorized::Work for OutputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let OutputPass { m, bias, g, tiles, block, out, scratch } = self;
        transform_output(m, bias, g, tiles, block, out, scratch);
    }
}

/// One input row (`None` in the padding) as the even and odd columns of the padded row a tile
/// row reads: column c of `even` is the row's column 2c − pad, of `odd` 2c + 1 − pad.
#[inline(always)]
fn split_input_row<T: Float>(row: Option<&[T]>, pad: usize, padded: &mut [T], even: &mut [T], odd: &mut [T]) {
    let Some(row) = row else {
        even.fill(T::ZERO);
        odd.fill(T::ZERO);
        return;
    };
    // The padded row is 2·(tiles a row + 1) ≥ OW + 2 = W + 2·pad columns long.
    let (before, rest) = padded.split_at_mut(pad.min(padded.len()));
    before.fill(T::ZERO);
    let (inside, after) = rest.split_at_mut(row.len().min(rest.len()));
    inside.copy_from_slice(&row[..inside.len()]);
    after.fill(T::ZERO);
    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(padded.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// U = G·g·Gᵀ of every 3×3 kernel g, for a G of `ROWS` rows (4 for F(2×2, 3×3), 6 for
/// F(4×4, 3×3), 3 for the nearest-upsampled convolution's transform), as U[co][ξ][ci] with
/// ξ = ROWS·a + b: U_ξ is the [C_out, C_in] matrix of row stride ROWS²·C_in.
///
/// For each output channel the kernels' nine taps are first laid out as nine rows over the
/// input channels, so that G applies to whole rows and each row of U is written in one sweep.
/// Kernel by kernel, U's values lie C_in apart, and those scattered stores took a third of a
/// 512-channel layer's time in F(4×4, 3×3).
// w: [C_out, C_in, 3, 3] → u: [C_out, ROWS², C_in]
pub(crate) fn kernel_transforms<T: Float, const ROWS: usize>(
    w: &[T],
    c_out: usize,
    c_in: usize,
    g: &[[f64; 3]; ROWS],
) -> Vec<T> {
    let mut u = vec![T::ZERO; c_out * ROWS * ROWS * c_in];
    let scratch = || vec![T::ZERO; (9 + 3 * ROWS) * c_in];
    u.par_chunks_mut(ROWS * ROWS * c_in).zip(w.par_chunks(9 * c_in)).for_each_init(scratch, |scratch, (u_co, w_co)| {
        vectorized::run(KernelPass { w_co, u_co, scratch, c_in, g });
    });
    u
}

/// [`kernel_transforms`] for one output channel.
struct KernelPass<'a, T, const ROWS: usize> {
    /// [C_in, 3, 3]
    w_co: &'a [T],
    /// [ROWS², C_in]
    u_co: &'a mut [T],
    /// The taps [9, C_in], then G·g down the kernels' columns [ROWS, 3, C_in].
    scratch: &'a mut [T],
    c_in: usize,
    g: &'a [[f64; 3]; ROWS],
}

impl<T: Float, const ROWS: usize> vectorized::Work for KernelPass<'_, T, ROWS> {
    #[inline(always)]
    fn run(self) {
        let KernelPass { w_co, u_co, scratch, c_in, g } = self;
        let (taps, columns) = scratch.split_at_mut(9 * c_in);
        for (ci, kernel) in w_co.chunks_exact(9).enumerate() {
            for (tap, &value) in kernel.iter().enumerate() {
                taps[tap * c_in + ci] = value;
            }
        }
        let tap = |k: usize| &taps[k * c_in..][..c_in];
        for (a, g_row) in g.iter().enumerate() {
            for column in 0..3 {
                let out = &mut columns[(3 * a + column) * c_in..][..c_in];
                combine_three(out, tap(column), tap(3 + column), tap(6 + column), g_row.map(T::from_f64));
            }
        }
        let column = |a: usize, column: usize| &columns[(3 * a + column) * c_in..][..c_in];
        for (a, u_rows) in u_co.chunks_exact_mut(ROWS * c_in).enumerate() {
            for (g_row, u_row) in g.iter().zip(u_rows.chunks_exact_mut(c_in)) {
                combine_three(u_row, column(a, 0), column(a, 1), column(a, 2), g_row.map(T::from_f64));
            }
        }
    }
}

/// out = c0·a + c1·b + c2·c, element by element.
#[inline(always)]
fn combine_three<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T], [c0, c1, c2]: [T; 3]) {
    let values = a.iter().zip(b).zip(c);
    out.iter_mut().zip(values).for_each(|(o, ((&a, &b), &c))| *o = c0 * a + c1 * b + c2 * c);
}

/// out = a − b, element by element.
#[inline(always)]
pub(crate) fn subtract<T: Float>(out: &mut [T], a: &[T], b: &[T]) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = a - b);
}

/// out = a + b, element by element.
#[inline(always)]
pub(crate) fn add<T: Float>(out: &mut [T], a: &[T], b: &[T]) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = a + b);
}

/// out = a + b + c, element by element.
#[inline(always)]
fn sum_of_three<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T]) {
    out.iter_mut().zip(a.iter().zip(b).zip(c)).for_each(|(o, ((&a, &b), &c))| *o = a + b + c);
}

/// out = a − b − c, element by element.
#[inline(always)]
fn first_less_two<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T]) {
    out.iter_mut().zip(a.iter().zip(b).zip(c)).for_each(|(o, ((&a, &b), &c))| *o = a - b - c);
}

/// Rows a block of a blocked Winograd transform takes (of `rows_per_image` rows of
/// `row_len` tiles each, `values` transformed values per tile and channel): its V and M
/// within about `BLOCK_BYTES`, but at least `BLOCK_MIN_TILES` tiles, for GEMMs wide enough
/// to run at speed; whole images when it holds more than one.
pub(crate) fn block_rows<T>(rows_per_image: usize, row_len: usize, values: usize, c_in: usize, c_out: usize) -> usize {
    let per_tile = values * (c_in + c_out) * std::mem::size_of::<T>();
    let tiles = (BLOCK_BYTES / per_tile.max(1)).max(BLOCK_MIN_TILES);
    let rows = (tiles / row_len.max(1)).max(1);
    if rows > rows_per_image && rows_per_image > 0 {
        rows - rows % rows_per_image
    } else {
        rows
    }
}

/// See [`block_rows`]: a quarter of one core's L2 (for the upsampled convolution, 512 KiB ran
/// faster than 1 and 2 MiB).
const BLOCK_BYTES: usize = 1 << 19;
/// See [`block_rows`].
const BLOCK_MIN_TILES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, check_blocks_against_reference, ramp};
    use crate::reference::conv as reference;

    #[test]
    fn blocks_of_tile_rows_equal_the_reference_in_f64_and_f32() {
        check_blocks_against_reference(2, in_blocks::<f64>, in_blocks::<f32>);
    }

    #[test]
    fn it_gives_the_plain_forms_values_on_a_deep_layer() {
        // 256 channels in, 9×9 planes (odd: half tiles), two images: one block of tile rows
        // across both, as the deep layers of the residual decoders run.
        let g = Conv2dGeometry::conv2d([2, 256, 9, 9], [16, 256, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let drawn = ramp(g.x_len() + g.weight_len());
        let (x, k) = drawn.split_at(g.x_len());
        let want = reference::conv2d(x, k, None, &g);
        assert_within("blocked", conv2d_forward(x, k, None, &g).into_iter(), &want, 1e-12);
        assert_within("plain", winograd::conv2d_forward(x, k, None, &g).into_iter(), &want, 1e-12);
    }

    #[test]
    fn blocks_hold_whole_images_once_they_hold_more_than_one() {
        // 4×4 tiles of 512 channels in and out: 16 tiles an image, 64 tiles are four images.
        assert_eq!(block_rows::<f32>(4, 4, 16, 512, 512), 16);
        // 32 tiles a row of 64 channels in and out: 512 KiB of V and M are two rows.
        assert_eq!(block_rows::<f32>(32, 32, 16, 64, 64), 2);
        // Few channels on three-row planes: many images, so a multiple of three rows.
        assert_eq!(block_rows::<f32>(3, 1, 16, 1, 1) % 3, 0);
        // The upsampled convolution's nine values a small pixel: 32×32 planes of 128 channels
        // in and 64 out hold about 512 KiB in two rows.
        assert_eq!(block_rows::<f32>(32, 32, 9, 128, 64), 2);
    }
}
