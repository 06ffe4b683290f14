//! conv2d's weight gradient as a direct convolution: every (input channel, tap) pair a column
//! of dW with its own accumulators, summed over the pixels. A cut the tuner may choose for
//! backward-weight, beside `cpu::indirect_weight`.
//!
//! dW(co, ci, ki, kj) = Σ_n Σ_(oy, ox) dy(n, co, oy, ox) · x(n, ci, oy·s + ki·d − p, ox·s + kj·d − p).
//!
//! For each output pixel, 16 output channels of dy are one AVX-512 vector load (two of AVX2)
//! from dy's channels-last row, and each column's x value, broadcast, multiplies them into that
//! column's accumulators; a block of columns by output channels (9 or 8 by 32 on AVX-512, 6 by
//! 16 on AVX2) stays in registers for a whole pass over an image's pixels. Nothing is unfolded
//! or packed, and x is read where it lies, in a copy of its planes with a zero border so that
//! padding needs no test. The GEMM cuts pay for the unfolded operand and its packing; with
//! three input channels they also multiply a 32×27 product whose tiles are a third empty, and
//! the indirect GEMM, which broadcasts 12 input channels at a time, would find 3 real. What
//! this costs instead is a pass for every block of columns, each reading the padding where
//! the GEMM cuts skip it: on planes of a few pixels (ResNet-18's 4×4 to 1×1) most of what it
//! multiplies is border.
//!
//! Images go in groups of `IMAGES_A_PARTIAL` (4), one task each, every group summing into its
//! own partial dWᵀ; the partials are added in group order, so the result does not depend on
//! the threads.

use rayon::prelude::*;

use crate::cpu::indirect::image_channels_last;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// Images summed into one partial dWᵀ by one task: fixed, so that the sums' order (and so
/// the bits) does not depend on the thread count; 64 images make 16 tasks, enough to balance
/// two to sixteen threads.
const IMAGES_A_PARTIAL: usize = 4;

/// Output channels an AVX-512 vector holds (two AVX2 vectors), and the unit dy's
/// channels-last rows are padded to, so that every load is a whole vector.
const LANES: usize = 16;

/// dW = ∂L/∂w (see the module docs): each group of images, in parallel, sums into its own
/// partial [columns, C_out padded to 16] (a column per input channel and tap); the partials are
/// added in order and transposed into dW.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let layout = Layout::new(g);
    let mut dw = vec![T::ZERO; g.weight_len()];
    if dw.is_empty() || g.batch == 0 || g.out_plane() == 0 {
        return dw;
    }
    let (x_image, y_image) = (g.c_in * g.h * g.w, g.c_out * g.out_plane());
    let partial_len = layout.offsets.len() * layout.c_pad;
    let partials: Vec<Vec<T>> = (0..g.batch.div_ceil(IMAGES_A_PARTIAL))
        .into_par_iter()
        .map(|group| {
            let images = group * IMAGES_A_PARTIAL..((group + 1) * IMAGES_A_PARTIAL).min(g.batch);
            let mut partial = vec![T::ZERO; partial_len];
            let mut x_padded = vec![T::ZERO; layout.padded_image()];
            let mut dy_rows = vec![T::ZERO; g.out_plane() * layout.c_pad];
            for n in images {
                layout.pad_image(&x[n * x_image..(n + 1) * x_image], g, &mut x_padded);
                let dy_n = &grad_y[n * y_image..(n + 1) * y_image];
                image_channels_last(dy_n, g.c_out, g.out_plane(), layout.c_pad, &mut dy_rows);
                accumulate_image(&x_padded, &dy_rows, &layout, &mut partial);
            }
            partial
        })
        .collect();
    // dW[co][column] = Σ_groups partial[column][co], the groups in order.
    let columns = layout.offsets.len();
    let mut sum = vec![T::ZERO; partial_len];
    for partial in &partials {
        sum.iter_mut().zip(partial).for_each(|(s, &p)| *s += p);
    }
    for (co, filter) in dw.chunks_exact_mut(columns).enumerate() {
        filter.iter_mut().enumerate().for_each(|(column, w)| *w = sum[column * layout.c_pad + co]);
    }
    dw
}

/// Where things lie for [`accumulate_image`]: x's planes with a zero border, dy's rows, and
/// each column's offset into the bordered planes.
struct Layout {
    /// The bordered planes' rows and columns: every row and column a tap reads, padding
    /// included, from 0.
    padded: [usize; 2],
    /// Input channels.
    c_in: usize,
    /// [`Conv2dGeometry::padding`]: where x's first row and column lie in a bordered plane.
    padding: [usize; 2],
    /// Output rows and columns.
    out: [usize; 2],
    /// The bordered planes' values between two output pixels side by side (the column
    /// stride) and between two output rows.
    steps: [usize; 2],
    /// C_out rounded up to [`LANES`]: the length of a channels-last dy row.
    c_pad: usize,
    /// For each column (ci, ki, kj) of dW, in dW's order: where its value for the output pixel
    /// (0, 0) lies in the bordered planes. The pixel (oy, ox) adds oy·steps\[1\] + ox·steps\[0\].
    offsets: Vec<usize>,
}

impl Layout {
    fn new(g: &Conv2dGeometry) -> Layout {
        let reach = |axis: usize, out: usize, k: usize| {
            (out.max(1) - 1) * g.stride[axis] + (k.max(1) - 1) * g.dilation[axis] + 1
        };
        let padded = [reach(0, g.oh, g.kh), reach(1, g.ow, g.kw)];
        let plane = padded[0] * padded[1];
        let mut offsets = Vec::with_capacity(g.c_in * g.kh * g.kw);
        for ci in 0..g.c_in {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    offsets.push(ci * plane + ki * g.dilation[0] * padded[1] + kj * g.dilation[1]);
                }
            }
        }
        Layout {
            padded,
            c_in: g.c_in,
            padding: g.padding,
            out: [g.oh, g.ow],
            steps: [g.stride[1], g.stride[0] * padded[1]],
            c_pad: g.c_out.div_ceil(LANES) * LANES,
            offsets,
        }
    }

    /// Values of one image's bordered planes.
    fn padded_image(&self) -> usize {
        self.c_in * self.padded[0] * self.padded[1]
    }

    /// Copies one image x_n [C_in, H, W] into `out`'s bordered planes; what lies outside x
    /// (the border, and nothing else) stays zero across calls, as the first call found it.
    fn pad_image<T: Float>(&self, x_n: &[T], g: &Conv2dGeometry, out: &mut [T]) {
        let [rows, cols] = self.padded;
        let [top, left] = self.padding;
        // x's rows and columns that some tap reads: those inside the bordered plane.
        let (h, w) = (g.h.min(rows.saturating_sub(top)), g.w.min(cols.saturating_sub(left)));
        for (plane, x_plane) in out.chunks_exact_mut(rows * cols).zip(x_n.chunks_exact(g.h * g.w)) {
            for (iy, x_row) in x_plane.chunks_exact(g.w).take(h).enumerate() {
                plane[(top + iy) * cols + left..][..w].copy_from_slice(&x_row[..w]);
            }
        }
    }
}

/// Whether the direct weight gradient runs a vector kernel for `T`: f32, where the GEMM runs an
/// AVX-512 or an AVX2 kernel (so a process that pins the GEMM's kernel gets the matching one).
/// Elsewhere only the plain loop runs, which is there to define the result, and the tuner does
/// not time it.
pub(crate) fn has_vector_kernel<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    return x86::vector_kernel::<T>().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// partial\[column·c_pad + co\] += Σ over the image's output pixels (oy, ox) of
/// x_padded\[offsets\[column\] + oy·steps\[1\] + ox·steps\[0\]\] · dy_rows\[(oy·OW + ox)·c_pad + co\].
fn accumulate_image<T: Float>(x_padded: &[T], dy_rows: &[T], layout: &Layout, partial: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(kernel), Some(x), Some(dy), Some(out)) = (
        x86::vector_kernel::<T>(),
        crate::dtype::same_type_slice::<T, f32>(x_padded),
        crate::dtype::same_type_slice::<T, f32>(dy_rows),
        crate::dtype::same_type_slice_mut::<T, f32>(partial),
    ) {
        return x86::accumulate_image(kernel, x, dy, layout, out);
    }
    accumulate_image_plain(x_padded, dy_rows, layout, partial)
}

/// [`accumulate_image`] as the formula reads: the definition the vector kernels are tested
/// against, and what runs for f64 and on CPUs without AVX2.
fn accumulate_image_plain<T: Float>(x_padded: &[T], dy_rows: &[T], layout: &Layout, partial: &mut [T]) {
    let [oh, ow] = layout.out;
    for oy in 0..oh {
        for ox in 0..ow {
            let dy = &dy_rows[(oy * ow + ox) * layout.c_pad..][..layout.c_pad];
            let pixel = oy * layout.steps[1] + ox * layout.steps[0];
            for (&offset, column) in layout.offsets.iter().zip(partial.chunks_exact_mut(layout.c_pad)) {
                let v = x_padded[pixel + offset];
                column.iter_mut().zip(dy).for_each(|(c, &d)| *c += v * d);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Layout, LANES};
    use crate::dtype::Float;
    use std::arch::x86_64::*;

    /// The vector kernels: AVX-512's blocks of 32 output channels (two vectors of 16), and
    /// AVX2's of 16 (two vectors of 8).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) enum VectorKernel {
        Avx512,
        Avx2,
    }

    /// The kernel for `T` on this CPU: the instruction set the GEMM runs, for f32.
    pub(super) fn vector_kernel<T: Float>() -> Option<VectorKernel> {
        if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() {
            return None;
        }
        match crate::cpu::gemm::f32_instruction_set() {
            "avx512" if is_x86_feature_detected!("avx512f") => Some(VectorKernel::Avx512),
            "avx2" if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => Some(VectorKernel::Avx2),
            _ => None,
        }
    }

    /// Columns of dW an AVX-512 block keeps in registers, by two vectors of 16 output channels:
    /// 9 (a 3×3 kernel's taps of one input channel) make 18 accumulators, and each pixel loads
    /// two vectors of dy for 18 multiply-adds; 8 where that leaves fewer columns empty in the
    /// last block (a 4×4 kernel's 16 a channel: B1's 3→32 k4 took 0.61–0.65 ms in blocks of 9,
    /// 0.56–0.57 in blocks of 8 or 12, and 12 were no faster than 9 elsewhere).
    fn avx512_block_width(columns: usize) -> usize {
        [9, 8].into_iter().min_by_key(|&w| columns.div_ceil(w) * w).unwrap_or(9)
    }

    /// Columns of an AVX2 block: 6 by two vectors of 8 output channels are 12 accumulators, with
    /// the two vectors of dy and a broadcast, 15 of the 16 registers.
    const AVX2_BLOCK_WIDTH: usize = 6;

    /// [`super::accumulate_image`] with `kernel`'s blocks in registers, a pass over the image's
    /// pixels for each block.
    pub(super) fn accumulate_image(
        kernel: VectorKernel,
        x_padded: &[f32],
        dy_rows: &[f32],
        layout: &Layout,
        partial: &mut [f32],
    ) {
        let operands = (x_padded, dy_rows, layout, partial);
        match kernel {
            VectorKernel::Avx512 => match avx512_block_width(layout.offsets.len()) {
                8 => in_blocks::<8>(operands, 2 * LANES, avx512_block::<2, 8>, avx512_block::<1, 8>),
                _ => in_blocks::<9>(operands, 2 * LANES, avx512_block::<2, 9>, avx512_block::<1, 9>),
            },
            VectorKernel::Avx2 => {
                let block = avx2_block::<AVX2_BLOCK_WIDTH>;
                in_blocks::<AVX2_BLOCK_WIDTH>(operands, LANES, block, block)
            }
        }
    }

    /// A block's kernel: `block(x, dy, offsets, real, layout, out)` adds the block's columns
    /// (x at `offsets`) times the output channels from `dy` (a row's first channel of the
    /// block) into `out` (the block's first column and channel; columns `c_pad` apart), of
    /// which the first `real` are stored.
    ///
    /// # Safety
    /// The kernel's instruction set, and the reads and writes of [`in_blocks`]'s assertion.
    type BlockFn<const WIDTH: usize> = unsafe fn(*const f32, *const f32, &[usize; WIDTH], usize, &Layout, *mut f32);

    /// The blocks of `WIDTH` columns by `channels` output channels, `full` for each, `half` for
    /// a last one of `channels` / 2. A last block of fewer columns reads the first column's x
    /// again for the rest and leaves them out when it stores.
    fn in_blocks<const WIDTH: usize>(
        (x_padded, dy_rows, layout, partial): (&[f32], &[f32], &Layout, &mut [f32]),
        channels: usize,
        full: BlockFn<WIDTH>,
        half: BlockFn<WIDTH>,
    ) {
        let [oh, ow] = layout.out;
        let columns = layout.offsets.len();
        let last_pixel = (oh - 1) * layout.steps[1] + (ow - 1) * layout.steps[0];
        assert!(
            layout.offsets.iter().all(|&o| o + last_pixel < x_padded.len())
                && oh * ow * layout.c_pad <= dy_rows.len()
                && layout.c_pad.is_multiple_of(LANES)
                && channels.is_multiple_of(LANES)
                && columns * layout.c_pad <= partial.len(),
            "the direct weight gradient reads and writes inside its planes, rows and partial"
        );
        for first_column in (0..columns).step_by(WIDTH) {
            let real = WIDTH.min(columns - first_column);
            let offsets: [usize; WIDTH] =
                std::array::from_fn(|i| layout.offsets[first_column + if i < real { i } else { 0 }]);
            for co0 in (0..layout.c_pad).step_by(channels) {
                let out = &mut partial[first_column * layout.c_pad + co0..];
                let block = if co0 + channels <= layout.c_pad { full } else { half };
                // SAFETY: `vector_kernel` found the block's instruction set. Every x read is an
                // offset of this block plus at most `last_pixel`, inside `x_padded`; every dy
                // read is one of the `channels` (or, last, half of them) from co0 < c_pad of a
                // row below oh·ow, inside c_pad since both are multiples of 16; the stores are
                // the block's `real` columns' channels co0.. of `partial`, inside it (all
                // asserted above).
                unsafe { block(x_padded.as_ptr(), dy_rows.as_ptr().add(co0), &offsets, real, layout, out.as_mut_ptr()) }
            }
        }
    }

    /// One AVX-512 block: `VECTORS` vectors of 16 output channels by the block's columns.
    ///
    /// # Safety
    /// AVX-512F, and the reads and writes of [`in_blocks`]'s assertion.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_block<const VECTORS: usize, const WIDTH: usize>(
        x: *const f32,
        dy: *const f32,
        offsets: &[usize; WIDTH],
        real: usize,
        layout: &Layout,
        out: *mut f32,
    ) {
        let [oh, ow] = layout.out;
        let c_pad = layout.c_pad;
        let mut acc = [[_mm512_setzero_ps(); VECTORS]; WIDTH];
        for oy in 0..oh {
            // SAFETY (the loop): the caller's contract.
            unsafe {
                let mut x_pixel = x.add(oy * layout.steps[1]);
                let mut dy_row = dy.add(oy * ow * c_pad);
                for _ in 0..ow {
                    let d: [__m512; VECTORS] = std::array::from_fn(|v| _mm512_loadu_ps(dy_row.add(v * 16)));
                    for (acc_c, &offset) in acc.iter_mut().zip(offsets) {
                        let v = _mm512_set1_ps(*x_pixel.add(offset));
                        for (a, &d) in acc_c.iter_mut().zip(&d) {
                            *a = _mm512_fmadd_ps(v, d, *a);
                        }
                    }
                    x_pixel = x_pixel.add(layout.steps[0]);
                    dy_row = dy_row.add(c_pad);
                }
            }
        }
        for (c, acc_c) in acc.iter().enumerate().take(real) {
            for (v, a) in acc_c.iter().enumerate() {
                // SAFETY: the caller's contract, for the block's real columns.
                unsafe {
                    let at = out.add(c * c_pad + v * 16);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), *a));
                }
            }
        }
    }

    /// One AVX2 block: two vectors of 8 output channels by the block's columns.
    ///
    /// # Safety
    /// AVX2 and FMA, and the reads and writes of [`in_blocks`]'s assertion.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_block<const WIDTH: usize>(
        x: *const f32,
        dy: *const f32,
        offsets: &[usize; WIDTH],
        real: usize,
        layout: &Layout,
        out: *mut f32,
    ) {
        let [oh, ow] = layout.out;
        let c_pad = layout.c_pad;
        let mut acc = [[_mm256_setzero_ps(); 2]; WIDTH];
        for oy in 0..oh {
            // SAFETY (the loop): the caller's contract.
            unsafe {
                let mut x_pixel = x.add(oy * layout.steps[1]);
                let mut dy_row = dy.add(oy * ow * c_pad);
                for _ in 0..ow {
                    let d = [_mm256_loadu_ps(dy_row), _mm256_loadu_ps(dy_row.add(8))];
                    for (acc_c, &offset) in acc.iter_mut().zip(offsets) {
                        let v = _mm256_set1_ps(*x_pixel.add(offset));
                        for (a, &d) in acc_c.iter_mut().zip(&d) {
                            *a = _mm256_fmadd_ps(v, d, *a);
                        }
                    }
                    x_pixel = x_pixel.add(layout.steps[0]);
                    dy_row = dy_row.add(c_pad);
                }
            }
        }
        for (c, acc_c) in acc.iter().enumerate().take(real) {
            for (v, a) in acc_c.iter().enumerate() {
                // SAFETY: the caller's contract, for the block's real columns.
                unsafe {
                    let at = out.add(c * c_pad + v * 8);
                    _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), *a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, odd_geometries, ramp, to_f32};
    use crate::reference::conv as reference;

    /// Three input channels as the tuner meets them, and odd ones: one channel; 5×5 and 1×1
    /// kernels (columns that fill a block, leave part of one, and fill none); 17 and 40 output
    /// channels (a lone vector, and a pair with a partial one); stride 2 and 3, dilation,
    /// padding beyond the kernel's reach; an input wider than the taps reach; a batch that
    /// leaves the last group short.
    fn direct_geometries() -> Vec<Conv2dGeometry> {
        [
            ([5, 3, 9, 11], [32, 3, 3, 3], [2, 2], [1, 1], [1, 1]),
            ([3, 3, 8, 8], [17, 3, 4, 4], [2, 2], [1, 1], [1, 1]),
            ([2, 1, 7, 6], [40, 1, 5, 5], [1, 1], [2, 2], [1, 1]),
            ([6, 2, 10, 9], [16, 2, 3, 3], [3, 2], [4, 1], [2, 1]),
            ([9, 3, 6, 7], [33, 3, 1, 1], [2, 2], [0, 0], [1, 1]),
            ([1, 3, 12, 12], [64, 3, 7, 7], [2, 2], [3, 3], [1, 1]),
        ]
        .into_iter()
        .map(|(x, w, s, p, d)| Conv2dGeometry::conv2d(x, w, s, p, d).expect("the kernel fits"))
        .chain(odd_geometries())
        .collect()
    }

    #[test]
    fn the_direct_weight_gradient_matches_the_reference() {
        for g in direct_geometries() {
            let (dy, x) = (ramp(g.y_len()), ramp(g.x_len()).into_iter().map(|v| v + 0.25).collect::<Vec<_>>());
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            assert_within(&format!("{g:?}"), conv2d_backward_weight(&dy, &x, &g).into_iter(), &want, 1e-12);
            let got = conv2d_backward_weight(&to_f32(&dy), &to_f32(&x), &g);
            assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| f64::from(a)), &want, 1e-5);
        }
    }

    #[test]
    fn every_vector_kernel_this_cpu_has_adds_what_the_plain_one_adds() {
        // Onto a partial that already holds values, as the second image of a group finds it;
        // the f32 sums in another order, so within f32 rounding, not bit for bit. Each kernel
        // the CPU can run, whichever the GEMM runs.
        #[cfg(target_arch = "x86_64")]
        {
            use x86::VectorKernel;
            let kernels: Vec<VectorKernel> = [
                (VectorKernel::Avx512, is_x86_feature_detected!("avx512f")),
                (VectorKernel::Avx2, is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")),
            ]
            .into_iter()
            .filter_map(|(kernel, runs)| runs.then_some(kernel))
            .collect();
            if kernels.is_empty() {
                eprintln!("skipped: this CPU has neither AVX-512 nor AVX2 with FMA");
            }
            for kernel in kernels {
                for g in direct_geometries() {
                    let layout = Layout::new(&g);
                    let x_padded: Vec<f32> = to_f32(&ramp(layout.padded_image()));
                    let dy_rows: Vec<f32> = to_f32(&ramp(g.out_plane() * layout.c_pad + 3)).split_off(3);
                    // Two columns more than dW's, to see that nothing is written past it.
                    let before = to_f32(&ramp((layout.offsets.len() + 2) * layout.c_pad + 7)).split_off(7);
                    let (mut plain, mut fast) = (before.clone(), before.clone());
                    accumulate_image_plain(&x_padded, &dy_rows, &layout, &mut plain);
                    x86::accumulate_image(kernel, &x_padded, &dy_rows, &layout, &mut fast);
                    let columns = layout.offsets.len() * layout.c_pad;
                    let want: Vec<f64> = plain[..columns].iter().map(|&v| f64::from(v)).collect();
                    let what = format!("{kernel:?}, {g:?}");
                    assert_within(&what, fast[..columns].iter().map(|&v| f64::from(v)), &want, 1e-5);
                    assert_eq!(fast[columns..], before[columns..], "{what}: columns past dW's are left alone");
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        eprintln!("skipped: the vector kernels are x86-64's");
    }
}
