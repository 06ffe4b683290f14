//! conv2d's kernels as implicit GEMMs whose B panels are plain copies out of the input's
//! stride phases: a rung of the CPU convolution ladder (`cpu::conv::ConvRung::PhaseGrid`), and
//! for the forward and the weight gradient a cut the tuner may choose.
//!
//! The one idea. im2col's row for tap (ci, ki, kj) is, output pixel by output pixel,
//!
//!   col[(ci, ki, kj), (oy, ox)] = x[ci, oy·sh + ki·dh − ph, ox·sw + kj·dw − pw]
//!
//! Split the zero-padded input into its sh·sw stride phases: phase (a, b) holds the rows
//! ≡ a (mod sh) and the columns ≡ b (mod sw). Writing ki·dh = sh·qi + a and kj·dw = sw·qj + b,
//! the tap reads phase (a, b) at row oy + qi, column ox + qj: the same plane for every output
//! pixel, shifted by (qi, qj). If the phase planes and the output are both `width` columns wide
//! (OW plus the qj of the rightmost tap), output pixel q = oy·width + ox reads element
//! q + qi·width + qj of its phase plane, so a run of consecutive output pixels reads a
//! contiguous run of the plane, across output rows. The extra `width − OW` columns of each
//! output row are junk: computed and dropped.
//!
//! So the GEMM Y = W · col needs no unfolded operand and no gather: each packed B panel is
//! `kc` contiguous copies of `nr` elements out of the phase planes, as cheap as packing a
//! stored matrix. What it costs instead: one pass that splits the input into phase planes
//! (about the input's size, where im2col writes kH·kW/(sh·sw) times it), the junk columns'
//! multiply-adds (1/9 of a stride-2 3×3 layer's on an 8×8 output, 1/5 of a stride-1 one's),
//! and one copy of the output that drops them. Several images sit side by side in one GEMM,
//! as in `cpu::conv`, so that deep layers' small planes still give the GEMM columns enough.
//!
//! Backward-data runs on the same grid, the other way round. dx's pixel iy = sh·u + r − ph
//! receives dy only through the taps ki ≡ r (mod sh), at oy = u − (ki − r)/sh: for each of the
//! sh·sw classes of pixels (r, r′), dx is a stride-1 correlation of dy with a sub-kernel of
//! ⌈kH/sh⌉×⌈kW/sw⌉ taps, whose B panels are copies out of dy padded once. Each pixel of dx
//! belongs to one class, so nothing is scatter-added as col2im does, and the zero taps a
//! transposed convolution's zero-stuffed input would carry never reach the GEMM. At stride 1
//! there is one class: the full correlation (`Conv2dGeometry::full_correlation`).
//!
//! The weight gradient runs on the forward's grid with no GEMM driver at all: dy and the
//! planes are written once in channel-blocked layouts (pixels outermost, channels innermost
//! in blocks of the micro-kernel's MR and NR), in which a run of pixels of one block *is* a
//! packed panel, so the micro-kernel (`gemm::MicroKernel`) reads them where they lie, each
//! tap's shift moving B's panel along the run. Measured against the other ways, the forward
//! and the weight gradient are cuts the tuner times, backward-data a way only at stride 1
//! (docs/cpu-gemm.md, "The phase grid").

use rayon::prelude::*;

use crate::cpu::conv::{add_strided, copy_strided, init_planes, min_groups_per_task};
use crate::cpu::gemm::{gemm_packing_b, BPanel, MatRef, MicroKernel};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// Where one image's phase planes lie and where each tap's window starts in them.
struct PhaseGrid {
    /// Columns of every phase plane and of the output grid: OW plus the rightmost tap's shift.
    width: usize,
    /// Rows of every phase plane: OH plus the lowest tap's shift.
    rows: usize,
    /// Elements from one phase plane to the next: rows·width, and the junk columns' overhang
    /// past the last row (zeros).
    plane_len: usize,
    /// Elements of one image's phase planes, [C_in, sh, sw, plane_len].
    image_len: usize,
    /// For each row (ci, ki, kj) of the unfolded operand, where its window starts within an
    /// image's phase planes.
    tap_offsets: Vec<usize>,
}

impl PhaseGrid {
    fn of(g: &Conv2dGeometry) -> PhaseGrid {
        let ([sh, sw], [dh, dw]) = (g.stride, g.dilation);
        let width = g.ow + (g.kw - 1) * dw / sw;
        let rows = g.oh + (g.kh - 1) * dh / sh;
        let plane_len = rows * width + (width - g.ow);
        let mut tap_offsets = Vec::with_capacity(g.col_rows());
        for ci in 0..g.c_in {
            for ki in 0..g.kh {
                let (qi, a) = (ki * dh / sh, ki * dh % sh);
                for kj in 0..g.kw {
                    let (qj, b) = (kj * dw / sw, kj * dw % sw);
                    tap_offsets.push(((ci * sh + a) * sw + b) * plane_len + qi * width + qj);
                }
            }
        }
        PhaseGrid { width, rows, plane_len, image_len: g.c_in * sh * sw * plane_len, tap_offsets }
    }

    /// Output columns of one image on the grid, junk included: OH·width.
    fn image_columns(&self, g: &Conv2dGeometry) -> usize {
        g.oh * self.width
    }

    /// Writes one image's phase planes. Each plane row is input row sh·r + a − ph, read at
    /// columns sw·c + b − pw; what falls outside the input, and the overhang after each plane,
    /// is zero. The planes are zeroed whole first: a zero fill per short row cost a quarter to
    /// a third of the split's time (B1's 32→64 layer, whose rows are 17 columns wide).
    // x: [C_in, H, W] (one image)   out: [C_in, sh, sw, plane_len]
    fn split<T: Float>(&self, x: &[T], g: &Conv2dGeometry, out: &mut [T]) {
        let ([sh, sw], [pad_h, pad_w]) = (g.stride, g.padding);
        out[..self.image_len].fill(T::ZERO);
        for (ci, planes) in out[..self.image_len].chunks_exact_mut(sh * sw * self.plane_len).enumerate() {
            let x_c = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for (phase, plane) in planes.chunks_exact_mut(self.plane_len).enumerate() {
                let (a, b) = (phase / sw, phase % sw);
                // Plane columns c with 0 ≤ sw·c + b − pw < W.
                let c_lo = (pad_w.saturating_sub(b)).div_ceil(sw).min(self.width);
                let c_hi = (g.w + pad_w).saturating_sub(b).div_ceil(sw).clamp(c_lo, self.width);
                for (r, row) in plane[..self.rows * self.width].chunks_exact_mut(self.width).enumerate() {
                    let iy = (sh * r + a).checked_sub(pad_h).filter(|&iy| iy < g.h);
                    if let Some(iy) = iy.filter(|_| c_lo < c_hi) {
                        let ix = sw * c_lo + b - pad_w;
                        copy_strided(&mut row[c_lo..c_hi], &x_c[iy * g.w + ix..(iy + 1) * g.w], sw);
                    }
                }
            }
        }
    }
}

/// How many images share one GEMM: enough for `target_columns` grid columns, at most
/// `MAX_ELEMENTS` of planes and output grid per group, and at least one group per thread (the
/// planes are written on the group's thread).
fn images_per_group(g: &Conv2dGeometry, target_columns: usize, columns: usize, elements: usize) -> usize {
    const MAX_ELEMENTS: usize = 1 << 22;
    let by_columns = target_columns.div_ceil(columns.max(1));
    let by_memory = MAX_ELEMENTS / elements.max(1);
    let by_threads = g.batch.div_ceil(rayon::current_num_threads());
    by_columns.min(by_memory).min(by_threads).max(1)
}

/// y = conv2d(x, w) + bias on the phase grid (see the module docs): for each group of images,
/// split them into phase planes, run Y = W · col with B's panels copied from the planes, and
/// copy Y's real columns out.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    let (k, out_img, in_img) = (g.col_rows(), g.out_image(), g.in_image());
    let mut y = vec![T::ZERO; g.batch * out_img];
    if y.is_empty() {
        return y;
    }
    if k == 0 {
        init_planes(&mut y, bias, g.out_plane());
        return y;
    }
    let grid = PhaseGrid::of(g);
    let w_mat = MatRef::row_major(w, g.c_out, k); // [C_out, K]
    let image_columns = grid.image_columns(g);
    let group = images_per_group(g, 512, image_columns, grid.image_len + g.c_out * image_columns);
    let tasks = min_groups_per_task(g.batch, group);
    y.par_chunks_mut(group * out_img).enumerate().with_min_len(tasks).for_each_init(
        || (vec![T::ZERO; group * grid.image_len], vec![T::ZERO; group * g.c_out * image_columns]),
        |(planes, y_grid), (gi, y_g)| {
            let (n0, images) = (gi * group, y_g.len() / out_img);
            for (i, planes_n) in planes.chunks_exact_mut(grid.image_len).take(images).enumerate() {
                grid.split(&x[(n0 + i) * in_img..(n0 + i + 1) * in_img], g, planes_n);
            }
            let cols = images * image_columns;
            let planes = &planes[..images * grid.image_len];
            let source = PanelSource { image_len: grid.image_len, image_columns, tap_offsets: &grid.tap_offsets };
            let pack = |panel: BPanel, out: &mut [T]| pack_panel(planes, source, panel, out);
            let y_grid = &mut y_grid[..g.c_out * cols];
            gemm_packing_b(w_mat, cols, &pack, y_grid, cols, false);
            crop(y_grid, g, &grid, images, bias, y_g);
        },
    );
    y
}

/// Where B's rows lie in the planes of a group of images (see [`pack_panel`]).
#[derive(Clone, Copy)]
struct PanelSource<'a> {
    /// Elements of one image's planes.
    image_len: usize,
    /// B's columns per image: the output grid's pixels, junk included.
    image_columns: usize,
    /// Where each row of B starts within an image's planes.
    tap_offsets: &'a [usize],
}

impl<'a> PanelSource<'a> {
    /// Grid pixels `start..start + len` of the images side by side, cut where one image ends:
    /// for each piece, its place in the range, the image's planes and the pixel it starts at.
    fn image_runs<T>(self, planes: &'a [T], start: usize, len: usize) -> impl Iterator<Item = ImageRun<'a, T>> {
        let mut done = 0;
        std::iter::from_fn(move || {
            (done < len).then(|| {
                let (n, q) = ((start + done) / self.image_columns, (start + done) % self.image_columns);
                let run = (self.image_columns - q).min(len - done);
                let piece = ImageRun { done, image: &planes[n * self.image_len..(n + 1) * self.image_len], q, run };
                done += run;
                piece
            })
        })
    }
}

/// One piece of [`PanelSource::image_runs`]: `run` grid pixels from pixel `q` of `image`, at
/// offset `done` of the range.
struct ImageRun<'a, T> {
    done: usize,
    image: &'a [T],
    q: usize,
    run: usize,
}

/// One packed B panel: rows `p0..p0 + kc` (taps) and columns `j0..j0 + cols` (grid pixels of
/// the images side by side), each row `nr` long and zero past `cols`. Within one image a
/// panel row is one contiguous run of a phase plane, so the panel is copied a run of columns
/// (one image's) at a time, every row of it.
// planes: [images, C_in, sh, sw, plane_len]   out: [kc, nr]
fn pack_panel<T: Float>(planes: &[T], layout: PanelSource, panel: BPanel, out: &mut [T]) {
    let BPanel { j0, cols, p0, kc, nr } = panel;
    let offsets = &layout.tap_offsets[p0..p0 + kc];
    if cols < nr {
        out[..kc * nr].chunks_exact_mut(nr).for_each(|row| row[cols..].fill(T::ZERO));
    }
    for ImageRun { done, image, q, run } in layout.image_runs(planes, j0, cols) {
        let rows = out[..kc * nr].chunks_exact_mut(nr).zip(offsets);
        // A whole row of the usual widths is copied at a width the compiler knows: as a call
        // to memmove per row, packing took a quarter of B1's 64→128 forward (perf, Xeon).
        match run {
            32 => rows.for_each(|(row, &offset)| copy_fixed::<T, 32>(&mut row[done..], &image[offset + q..])),
            16 => rows.for_each(|(row, &offset)| copy_fixed::<T, 16>(&mut row[done..], &image[offset + q..])),
            8 => rows.for_each(|(row, &offset)| copy_fixed::<T, 8>(&mut row[done..], &image[offset + q..])),
            _ => rows.for_each(|(row, &offset)| row[done..done + run].copy_from_slice(&image[offset + q..][..run])),
        }
    }
}

/// dst[..N] = src[..N], N known at compile time.
#[inline(always)]
fn copy_fixed<T: Float, const N: usize>(dst: &mut [T], src: &[T]) {
    let (dst, src): (&mut [T; N], &[T; N]) =
        ((&mut dst[..N]).try_into().expect("N elements"), (&src[..N]).try_into().expect("N elements"));
    *dst = *src;
}

/// Copies the real columns of the output grid into y, adding the bias: y[n, co, oy, ox] =
/// Y[co, n·OH·width + oy·width + ox] (+ bias[co]) for ox < OW.
// y_grid: [C_out, images·OH·width]   y: [images, C_out, OH, OW]
fn crop<T: Float>(y_grid: &[T], g: &Conv2dGeometry, grid: &PhaseGrid, images: usize, bias: Option<&[T]>, y: &mut [T]) {
    let (image_columns, ld) = (grid.image_columns(g), images * grid.image_columns(g));
    for (n, y_n) in y.chunks_exact_mut(g.out_image()).take(images).enumerate() {
        for (co, y_c) in y_n.chunks_exact_mut(g.out_plane()).enumerate() {
            let src = &y_grid[co * ld + n * image_columns..][..image_columns];
            let b = bias.map_or(T::ZERO, |b| b[co]);
            for (dst, src) in y_c.chunks_exact_mut(g.ow).zip(src.chunks(grid.width)) {
                if bias.is_some() {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s + b);
                } else {
                    dst.copy_from_slice(&src[..g.ow]);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------ backward-data

/// Whether [`conv2d_backward_data`] computes this geometry: any kernel, stride and padding,
/// without dilation.
pub fn backward_data_applies(g: &Conv2dGeometry) -> bool {
    g.dilation == [1, 1]
}

/// One class of dx's pixels for backward-data: the rows ≡ rh and columns ≡ rw (mod the
/// stride, counted from the padded origin). Pixel (iy, ix) = (sh·u + rh − ph, sw·v + rw − pw)
/// of the class takes dy[oy, ox] · w[ki, kj] only from the taps ki = rh + mi·sh,
/// kj = rw + mj·sw, at oy = u − mi, ox = v − mj: a stride-1 correlation of dy with that
/// sub-kernel, which runs on the grid of the zero-padded dy as the forward runs on a phase.
struct SubPixelClass<T> {
    rh: usize,
    rw: usize,
    /// The class's pixels: rows u in u0..u0 + rows, columns v in v0..v0 + cols.
    u0: usize,
    rows: usize,
    v0: usize,
    cols: usize,
    /// The sub-kernel as the GEMM's A: [C_in, C_out·taps_h·taps_w], the taps in (co, mi, mj) order.
    weight: Vec<T>,
    /// For each row (co, mi, mj) of B, where its window starts within an image's dy planes.
    tap_offsets: Vec<usize>,
}

/// The zero-padded dy planes every class reads: `top` rows and `left` columns of zeros before
/// dy (the most taps any class has along that axis, less one), zeros after it to the last row
/// and column a class reaches, and an overhang for the junk columns.
struct DyPlanes {
    top: usize,
    left: usize,
    width: usize,
    rows: usize,
    plane_len: usize,
}

/// The pixels u of one axis in class r: those with 0 ≤ s·u + r − pad < input, as u0..u1.
fn class_range(input: usize, stride: usize, pad: usize, r: usize) -> (usize, usize) {
    let u0 = pad.saturating_sub(r).div_ceil(stride);
    let u1 = (input + pad).saturating_sub(r).div_ceil(stride).max(u0);
    (u0, u1)
}

/// The classes of `g` that receive a tap, and the dy planes they read.
fn sub_pixel_classes<T: Float>(w: &[T], g: &Conv2dGeometry) -> (Vec<SubPixelClass<T>>, DyPlanes) {
    let ([sh, sw], [ph, pw]) = (g.stride, g.padding);
    let taps = |k: usize, s: usize, r: usize| if r < k { (k - r).div_ceil(s) } else { 0 };
    let top = (0..sh).map(|rh| taps(g.kh, sh, rh)).max().unwrap_or(1).saturating_sub(1);
    let left = (0..sw).map(|rw| taps(g.kw, sw, rw)).max().unwrap_or(1).saturating_sub(1);
    let (mut last_row, mut last_col, mut overhang) = (g.oh, g.ow, 0);
    for r in 0..sh {
        last_row = last_row.max(class_range(g.h, sh, ph, r).1);
    }
    for r in 0..sw {
        let (v0, v1) = class_range(g.w, sw, pw, r);
        last_col = last_col.max(v1);
        overhang = overhang.max(v0 + left);
    }
    let (rows, width) = (last_row + top, last_col + left);
    let planes = DyPlanes { top, left, width, rows, plane_len: rows * width + overhang };
    let mut classes = Vec::new();
    for rh in 0..sh {
        for rw in 0..sw {
            let (taps_h, taps_w) = (taps(g.kh, sh, rh), taps(g.kw, sw, rw));
            let ((u0, u1), (v0, v1)) = (class_range(g.h, sh, ph, rh), class_range(g.w, sw, pw, rw));
            if taps_h * taps_w == 0 || u1 == u0 || v1 == v0 {
                continue;
            }
            let mut weight = Vec::with_capacity(g.c_in * g.c_out * taps_h * taps_w);
            for ci in 0..g.c_in {
                for co in 0..g.c_out {
                    for mi in 0..taps_h {
                        for mj in 0..taps_w {
                            let (ki, kj) = (rh + mi * sh, rw + mj * sw);
                            weight.push(w[((co * g.c_in + ci) * g.kh + ki) * g.kw + kj]);
                        }
                    }
                }
            }
            let mut tap_offsets = Vec::with_capacity(g.c_out * taps_h * taps_w);
            for co in 0..g.c_out {
                for mi in 0..taps_h {
                    for mj in 0..taps_w {
                        tap_offsets.push(co * planes.plane_len + (u0 + top - mi) * width + v0 + left - mj);
                    }
                }
            }
            classes.push(SubPixelClass { rh, rw, u0, rows: u1 - u0, v0, cols: v1 - v0, weight, tap_offsets });
        }
    }
    (classes, planes)
}

impl DyPlanes {
    /// Writes one image's padded dy planes; the overhang keeps the buffer's zeros.
    // dy: [C_out, OH, OW] (one image)   out: [C_out, plane_len]
    fn fill<T: Float>(&self, dy: &[T], g: &Conv2dGeometry, out: &mut [T]) {
        for (co, plane) in out[..g.c_out * self.plane_len].chunks_exact_mut(self.plane_len).enumerate() {
            let dy_c = &dy[co * g.oh * g.ow..(co + 1) * g.oh * g.ow];
            for (t, row) in plane[..self.rows * self.width].chunks_exact_mut(self.width).enumerate() {
                match t.checked_sub(self.top).filter(|&oy| oy < g.oh) {
                    Some(oy) => {
                        row[..self.left].fill(T::ZERO);
                        row[self.left..self.left + g.ow].copy_from_slice(&dy_c[oy * g.ow..(oy + 1) * g.ow]);
                        row[self.left + g.ow..].fill(T::ZERO);
                    }
                    None => row.fill(T::ZERO),
                }
            }
        }
    }
}

/// dx for y = conv2d(x, w), plus `bias`\[ci\] on every pixel of channel ci (conv_transpose2d's
/// forward is this with its bias), for any stride without dilation: for each group of images,
/// pad dy once, then for each sub-pixel class run dx_class = W_class · B on dy's grid (B's
/// panels copied from the padded planes, as the forward's from its phases) and write the
/// class's real pixels into dx. Every pixel of dx belongs to one class, so nothing is
/// scatter-added as col2im does; at stride 1 there is one class and this is the full
/// correlation (`Conv2dGeometry::full_correlation`). The multiply-adds are the definition's,
/// plus the junk columns: the zero taps a transposed convolution's input would have between
/// its pixels never reach the GEMM.
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   bias: [C_in]   ->   dx: [N, C_in, H, W]
pub fn conv2d_backward_data<T: Float>(grad_y: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    assert!(backward_data_applies(g), "the phase grid's backward-data needs dilation 1, got {:?}", g.dilation);
    let (in_img, out_img) = (g.in_image(), g.out_image());
    let mut dx = vec![T::ZERO; g.batch * in_img];
    if dx.is_empty() {
        return dx;
    }
    init_planes(&mut dx, bias, g.h * g.w);
    if g.c_out == 0 || g.oh * g.ow == 0 {
        return dx;
    }
    let (classes, planes) = sub_pixel_classes(w, g);
    let image_len = g.c_out * planes.plane_len;
    let widest = classes.iter().map(|c| c.rows * planes.width).max().unwrap_or(0);
    let narrowest = classes.iter().map(|c| c.rows * planes.width).min().unwrap_or(1).max(1);
    // A class's GEMM has only C_in rows and packs its A (the sub-kernel) on every call, so
    // groups are wider than the forward's: 2,048 columns ran B1's 64→128 4×4 layer in 9.0 ms
    // against 10.4 at 512, one run each (Xeon model 207).
    let group = images_per_group(g, 2048, narrowest, image_len + g.c_in * widest);
    let tasks = min_groups_per_task(g.batch, group);
    dx.par_chunks_mut(group * in_img).enumerate().with_min_len(tasks).for_each_init(
        || (vec![T::ZERO; group * image_len], vec![T::ZERO; group * g.c_in * widest]),
        |(dy_planes, dx_grid), (gi, dx_g)| {
            let (n0, images) = (gi * group, dx_g.len() / in_img);
            for (i, plane_n) in dy_planes.chunks_exact_mut(image_len).take(images).enumerate() {
                planes.fill(&grad_y[(n0 + i) * out_img..(n0 + i + 1) * out_img], g, plane_n);
            }
            let dy_planes = &dy_planes[..images * image_len];
            for class in &classes {
                let image_columns = class.rows * planes.width;
                let cols = images * image_columns;
                let source = PanelSource { image_len, image_columns, tap_offsets: &class.tap_offsets };
                let pack = |panel: BPanel, out: &mut [T]| pack_panel(dy_planes, source, panel, out);
                let a = MatRef::row_major(&class.weight, g.c_in, class.tap_offsets.len());
                let dx_grid = &mut dx_grid[..g.c_in * cols];
                gemm_packing_b(a, cols, &pack, dx_grid, cols, false);
                add_class(dx_grid, g, class, planes.width, images, dx_g);
            }
        },
    );
    dx
}

/// dx[n, ci, sh·u + rh − ph, sw·v + rw − pw] += grid[ci, n·rows·width + (u − u0)·width + v − v0]
/// over the class's real pixels.
// grid: [C_in, images·rows·width]   dx: [images, C_in, H, W]
fn add_class<T: Float>(
    grid: &[T],
    g: &Conv2dGeometry,
    class: &SubPixelClass<T>,
    width: usize,
    images: usize,
    dx: &mut [T],
) {
    let ([sh, sw], [ph, pw]) = (g.stride, g.padding);
    let image_columns = class.rows * width;
    let ld = images * image_columns;
    let ix0 = sw * class.v0 + class.rw - pw;
    for (n, dx_n) in dx.chunks_exact_mut(g.in_image()).take(images).enumerate() {
        for (ci, dx_c) in dx_n.chunks_exact_mut(g.h * g.w).enumerate() {
            let src = &grid[ci * ld + n * image_columns..][..image_columns];
            for (u, src_row) in src.chunks_exact(width).enumerate() {
                let iy = sh * (class.u0 + u) + class.rh - ph;
                add_strided(&mut dx_c[iy * g.w + ix0..(iy + 1) * g.w], &src_row[..class.cols], sw);
            }
        }
    }
}

// ------------------------------------------------------------------------ backward-weight

/// dW for y = conv2d(x, w) on the phase grid, with both operands in channel-blocked layouts
/// that the GEMM's micro-kernel reads as its packed panels, so nothing is unfolded or packed.
///
/// For tap (ki, kj), whose window starts at `shift` in phase plane `phase` (the forward's
/// grid), dW[:, :, ki, kj] = Σ_q dy_grid[:, q] · planes[:, phase, q + shift]ᵀ over the grid
/// pixels q of every image: a GEMM of depth "pixels" whose A operand is dy (output channels
/// down) and whose B operand is the planes (input channels across). Laid out with the pixel
/// outermost and the channels in blocks of the micro-kernel's MR (dy) and NR (the planes)
/// innermost, a run of `kc` pixels of one channel block *is* a packed panel: kc groups of MR
/// (or NR) contiguous values. The tap's shift moves B's panel along the run, so one blocked
/// copy of the planes serves every tap of its phase. The images of a group sit one after the
/// other, `plane_len` pixels apart in both operands, so one run crosses them all: dy is zero
/// in the junk columns and past each image's last output row, and those pixels add nothing.
/// What it costs: one pass that writes dy and the planes blocked (about their own size, where
/// im2col writes kH·kW/(sh·sw) times the input, and the GEMM packs it again), the junk
/// pixels' multiply-adds, and channels padded to whole blocks (C_out = 64 in blocks of 14 is
/// 70 rows). The threads take whole groups of images, each into a partial dW of its own,
/// summed at the end.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let (k, out_img, in_img) = (g.col_rows(), g.out_image(), g.in_image());
    let mut dw = vec![T::ZERO; g.c_out * k];
    if dw.is_empty() || g.batch == 0 || g.oh * g.ow == 0 {
        return dw;
    }
    let kernel = MicroKernel::<T>::in_use();
    let grid = PhaseGrid::of(g);
    let taps: Vec<(usize, usize)> = grid.tap_offsets[..g.kh * g.kw]
        .iter()
        .map(|&offset| (offset / grid.plane_len, offset % grid.plane_len))
        .collect();
    let parts = rayon::current_num_threads().min(g.batch).max(1);
    let per_part = g.batch.div_ceil(parts);
    let group = Blocks::images_per_group(g, &grid, kernel.tile).min(per_part);
    let blocks = Blocks::of(g, &grid, kernel.tile, group);
    let partials: Vec<Vec<T>> = (0..g.batch.div_ceil(per_part))
        .into_par_iter()
        .map(|part| {
            let mut partial = vec![T::ZERO; taps.len() * blocks.rows * blocks.columns];
            let mut dy_blocked = vec![T::ZERO; blocks.dy_len()];
            let mut x_blocked = vec![T::ZERO; blocks.x_len()];
            let end = ((part + 1) * per_part).min(g.batch);
            for n0 in (part * per_part..end).step_by(group) {
                let images = group.min(end - n0);
                blocks.block_dy(&grad_y[n0 * out_img..(n0 + images) * out_img], g, &grid, images, &mut dy_blocked);
                for (i, x_n) in x[n0 * in_img..(n0 + images) * in_img].chunks_exact(in_img).enumerate() {
                    blocks.block_image(x_n, g, &grid, i, &mut x_blocked);
                }
                // Up to the last image's last output row: the pixels after it are zero in dy.
                let depth = (images - 1) * grid.plane_len + g.oh * grid.width;
                blocks.accumulate(&kernel, &taps, depth, &dy_blocked, &x_blocked, &mut partial);
            }
            partial
        })
        .collect();
    // partial: [taps, rows, columns], of which [tap, co, ci] is dW[co, ci, tap].
    let taps_n = taps.len();
    dw.par_chunks_mut(k).enumerate().for_each(|(co, dw_co)| {
        for p in &partials {
            for (ci, dw_ci) in dw_co.chunks_exact_mut(taps_n).enumerate() {
                for (tap, d) in dw_ci.iter_mut().enumerate() {
                    *d += p[(tap * blocks.rows + co) * blocks.columns + ci];
                }
            }
        }
    });
    dw
}

/// Whether [`conv2d_backward_weight`] is worth timing at `g`: every tap reads the input (the
/// grid has no dead taps to skip) and at least half of each micro-kernel tile is real
/// channels (not B1's 3-channel input layer, 3 of a tile's 32 columns).
pub fn weight_gradient_applies<T: Float>(g: &Conv2dGeometry) -> bool {
    let [mr, nr] = MicroKernel::<T>::in_use().tile;
    let padded = g.c_out.div_ceil(mr) * mr * g.c_in.div_ceil(nr) * nr;
    g.live_taps().is_none() && 2 * g.c_out * g.c_in >= padded
}

/// The channel-blocked operands of the weight gradient for a group of `images`: dy's output
/// channels in blocks of MR, the planes' input channels in blocks of NR, each block a run of
/// pixels (`positions`) with the block's channels innermost; the last block of each is padded
/// with zero channels.
struct Blocks {
    /// [MR, NR]: the micro-kernel's tile.
    tile: [usize; 2],
    /// Output channels padded to whole blocks of MR: the rows of each tap's part of dW.
    rows: usize,
    /// Input channels padded to whole blocks of NR: its columns.
    columns: usize,
    /// Stride phases, sh·sw.
    phases: usize,
    /// Pixels of one block: `images · plane_len`, one plane's length per image.
    positions: usize,
    /// One phase plane's length: pixels from one image to the next in both operands.
    plane_len: usize,
}

impl Blocks {
    fn of(g: &Conv2dGeometry, grid: &PhaseGrid, [mr, nr]: [usize; 2], images: usize) -> Blocks {
        Blocks {
            tile: [mr, nr],
            rows: g.c_out.div_ceil(mr) * mr,
            columns: g.c_in.div_ceil(nr) * nr,
            phases: g.stride[0] * g.stride[1],
            positions: images * grid.plane_len,
            plane_len: grid.plane_len,
        }
    }

    /// How many images one group blocks at a time: as many as keep both blocked operands
    /// within about 1 MiB of f32, so that they are still in L2 when the micro-kernel reads them.
    fn images_per_group(g: &Conv2dGeometry, grid: &PhaseGrid, tile: [usize; 2]) -> usize {
        const MAX_ELEMENTS: usize = 1 << 18;
        let one = Blocks::of(g, grid, tile, 1);
        (MAX_ELEMENTS / (one.dy_len() + one.x_len()).max(1)).max(1)
    }

    fn dy_len(&self) -> usize {
        self.rows * self.positions
    }

    fn x_len(&self) -> usize {
        self.columns * self.phases * self.positions
    }

    /// dy of `images` images into blocks of MR output channels on the grid:
    /// out[b][n·plane_len + oy·width + ox][r] = dy[n, b·MR + r, oy, ox], and zero at every
    /// other pixel (the junk columns, the pixels past OH·width) and padding channel.
    // dy: [images, C_out, OH, OW]   out: [rows / MR, positions, MR]
    fn block_dy<T: Float>(&self, dy: &[T], g: &Conv2dGeometry, grid: &PhaseGrid, images: usize, out: &mut [T]) {
        let mr = self.tile[0];
        out.fill(T::ZERO);
        for (n, dy_n) in dy.chunks_exact(g.out_image()).take(images).enumerate() {
            for (block, out_block) in out.chunks_exact_mut(self.positions * mr).enumerate() {
                let channels = mr.min(g.c_out - block * mr);
                for oy in 0..g.oh {
                    let run = |r: usize| &dy_n[((block * mr + r) * g.oh + oy) * g.ow..][..g.ow];
                    let first = n * self.plane_len + oy * grid.width;
                    interleave(&mut out_block[first * mr..(first + g.ow) * mr], mr, channels, 1, run);
                }
            }
        }
    }

    /// Image `i`'s phase planes (the forward's `PhaseGrid::split`), written straight into
    /// blocks of NR input channels: out[b][phase][i·plane_len + pixel][c] = planes[b·NR + c,
    /// phase, pixel], zero at the padding and in the padding channels. Input row iy is plane
    /// row (iy + ph) / sh of the phases a = (iy + ph) mod sh, and its columns ≡ ρ (mod sw) are
    /// a run of plane columns of phase b = (ρ + pw) mod sw: each run is read once, at stride sw.
    // x: [C_in, H, W] (one image)   out: [columns / NR, phases, positions, NR]
    fn block_image<T: Float>(&self, x: &[T], g: &Conv2dGeometry, grid: &PhaseGrid, i: usize, out: &mut [T]) {
        let ([sh, sw], [pad_h, pad_w], nr) = (g.stride, g.padding, self.tile[1]);
        let image = |block_phase: usize| ((block_phase * self.positions) + i * self.plane_len) * nr;
        for block_phase in 0..self.columns / nr * self.phases {
            out[image(block_phase)..][..self.plane_len * nr].fill(T::ZERO);
        }
        for iy in 0..g.h {
            let (a, r) = ((iy + pad_h) % sh, (iy + pad_h) / sh);
            for rho in (0..sw.min(g.w)).filter(|_| r < grid.rows) {
                let (b, c0) = ((rho + pad_w) % sw, (rho + pad_w) / sw);
                let n = (g.w - rho).div_ceil(sw).min(grid.width.saturating_sub(c0));
                for block in 0..self.columns / nr {
                    let first = image(block * self.phases + a * sw + b) + (r * grid.width + c0) * nr;
                    let run = |c: usize| {
                        &x[((block * nr + c) * g.h + iy) * g.w + rho..((block * nr + c) * g.h + iy + 1) * g.w]
                    };
                    interleave(&mut out[first..first + n * nr], nr, nr.min(g.c_in - block * nr), sw, run);
                }
            }
        }
    }

    /// partial[tap] += Σ over the first `depth` pixels of dy_blocked · x_blocked shifted by the
    /// tap: the micro-kernel on `kc` pixels at a time, each run of pixels read once from L2 and
    /// reused from L1 by every tap and output block.
    // partial: [taps, rows, columns]
    fn accumulate<T: Float>(
        &self,
        kernel: &MicroKernel<T>,
        taps: &[(usize, usize)],
        depth: usize,
        dy_blocked: &[T],
        x_blocked: &[T],
        partial: &mut [T],
    ) {
        let [mr, nr] = self.tile;
        for start in (0..depth).step_by(kernel.kc) {
            let kc = kernel.kc.min(depth - start);
            for column_block in 0..self.columns / nr {
                for (tap, &(phase, shift)) in taps.iter().enumerate() {
                    let b = (column_block * self.phases + phase) * self.positions + start + shift;
                    let b_panel = &x_blocked[b * nr..(b + kc) * nr];
                    for row_block in 0..self.rows / mr {
                        let a = row_block * self.positions + start;
                        let tile = (tap * self.rows + row_block * mr) * self.columns + column_block * nr;
                        kernel.accumulate(
                            kc,
                            &dy_blocked[a * mr..(a + kc) * mr],
                            b_panel,
                            &mut partial[tile..],
                            self.columns,
                        );
                    }
                }
            }
        }
    }
}

/// rows[i·width + c] = run(c)[i·stride] for c < `lanes` and i < rows.len() / width: runs read
/// at `stride`, written down the first `lanes` columns of `rows`; the other columns are left
/// as they are. Four runs at a time through 4×4 transposes in f32 at stride 1 or 2: element
/// by element, these stores took about as long as the multiply-adds of B1's 32→64 weight
/// gradient.
pub(crate) fn interleave<'a, T: Float>(
    rows: &mut [T],
    width: usize,
    lanes: usize,
    stride: usize,
    run: impl Fn(usize) -> &'a [T],
) {
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if let (Some(rows), true) = (crate::dtype::same_type_slice_mut::<T, f32>(rows), stride <= 2) {
        let f32_run = |c: usize| crate::dtype::same_type_slice::<T, f32>(run(c)).expect("T is f32");
        while c + 4 <= lanes {
            let four = [f32_run(c), f32_run(c + 1), f32_run(c + 2), f32_run(c + 3)];
            transpose_sse::columns_of_four(four, stride, rows, width, c);
            c += 4;
        }
    }
    for c in c..lanes {
        rows.chunks_exact_mut(width).zip(run(c).iter().step_by(stride)).for_each(|(row, &v)| row[c] = v);
    }
}

/// 4×4 transposes with SSE (part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
mod transpose_sse {
    use crate::cpu::gemm::transpose_sse::transpose4;
    use std::arch::x86_64::*;

    /// rows\[i·width + j + t\] = src\[t\]\[i·stride\] for t < 4 and i < rows.len() / width:
    /// four runs read at stride 1 or 2, written down four adjacent columns of `rows`. At stride 2
    /// two loads and a shuffle take four elements of a run, as `conv::copy_strided` does.
    #[inline]
    pub(super) fn columns_of_four(src: [&[f32]; 4], stride: usize, rows: &mut [f32], width: usize, j: usize) {
        let n = rows.len() / width;
        assert!(
            n == 0 || src.iter().all(|s| s.len() > (n - 1) * stride) && j + 4 <= width && (1..=2).contains(&stride)
        );
        // Chunks of four outputs whose loads stay inside every run.
        let shortest = src.iter().map(|s| s.len()).min().unwrap_or(0);
        let full = (shortest / (4 * stride)).min(n / 4) * 4;
        let base = rows.as_mut_ptr();
        for i in (0..full).step_by(4) {
            // SAFETY: SSE is part of x86-64; each run holds (i + 4)·stride ≤ `shortest` floats,
            // and rows i..i + 4 < n of `rows` hold columns j..j + 4 ≤ width (asserted above).
            unsafe {
                let four = |t: usize| {
                    let at = src[t].as_ptr().add(i * stride);
                    if stride == 1 {
                        _mm_loadu_ps(at)
                    } else {
                        _mm_shuffle_ps::<0b10_00_10_00>(_mm_loadu_ps(at), _mm_loadu_ps(at.add(4)))
                    }
                };
                let rows_out = transpose4([four(0), four(1), four(2), four(3)]);
                for (r, row) in rows_out.into_iter().enumerate() {
                    _mm_storeu_ps(base.add((i + r) * width + j), row);
                }
            }
        }
        for i in full..n {
            for (t, s) in src.iter().enumerate() {
                rows[i * width + j + t] = s[i * stride];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn interleave_writes_every_run_down_its_column_at_stride_one_and_two() {
        // Four-column groups and a remainder, rows not a multiple of four, and runs exactly as
        // long as the rows need (the last loads must not run past them).
        let (rows_n, width, lanes) = (135, 11, 10);
        for stride in [1, 2] {
            let runs: Vec<Vec<f32>> =
                (0..lanes).map(|c| (0..(rows_n - 1) * stride + 1).map(|i| (1000 * c + i) as f32).collect()).collect();
            let mut rows = vec![-1.0f32; rows_n * width];
            interleave(&mut rows, width, lanes, stride, |c| &runs[c]);
            for (i, row) in rows.chunks_exact(width).enumerate() {
                let want: Vec<f32> = (0..width).map(|c| if c < lanes { runs[c][i * stride] } else { -1.0 }).collect();
                assert_eq!(row, &want[..], "stride {stride}, row {i}");
            }
        }
    }

    #[test]
    fn every_tap_window_of_the_phase_planes_is_im2col_s_row_on_the_real_columns() {
        // Stride 2 by 3, dilation 2 by 1, padding 2 by 1: every phase and shift is exercised.
        let g = Conv2dGeometry::conv2d([1, 2, 9, 11], [1, 2, 3, 4], [2, 3], [2, 1], [2, 1]).unwrap();
        let grid = PhaseGrid::of(&g);
        let x = ramp(g.x_len());
        let mut planes = vec![0.0; grid.image_len];
        grid.split(&x, &g, &mut planes);
        // im2col by the definition: col[k, pixel] for the one image and output channel.
        let plane = g.out_plane();
        let mut col = vec![0.0; g.col_rows() * plane];
        reference::for_each_tap(&g, |pixel, xi, k| col[k * plane + pixel] = x[xi]);
        for (k, &offset) in grid.tap_offsets.iter().enumerate() {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (got, want) = (planes[offset + oy * grid.width + ox], col[k * plane + oy * g.ow + ox]);
                    assert_eq!(got, want, "row {k} of im2col at ({oy}, {ox})");
                }
            }
        }
    }

    #[test]
    fn the_junk_columns_read_inside_the_planes() {
        // The last tap's window over the whole grid, junk included, ends within the image.
        for (x, w, s, p, d) in [
            ([1, 3, 8, 8], [2, 3, 3, 3], [2, 2], [1, 1], [1, 1]),
            ([1, 1, 5, 7], [1, 1, 3, 5], [1, 1], [0, 2], [1, 2]),
            ([1, 2, 4, 4], [1, 2, 1, 1], [3, 3], [0, 0], [1, 1]),
        ] {
            let g = Conv2dGeometry::conv2d(x, w, s, p, d).unwrap();
            let grid = PhaseGrid::of(&g);
            let last = grid.tap_offsets.iter().max().unwrap() + grid.image_columns(&g);
            assert!(last <= grid.image_len, "{g:?}: reads to {last} of {}", grid.image_len);
        }
    }

    #[test]
    fn the_forward_with_images_side_by_side_and_a_bias_matches_the_reference() {
        // 9 images of 5×6 outputs (42-column grid): groups of several images, panels that
        // cross from one image into the next.
        let g = Conv2dGeometry::conv2d([9, 3, 10, 11], [4, 3, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let (x, w, b) = (ramp(g.x_len()), ramp(g.weight_len()), ramp(g.c_out));
        let want = reference::conv2d(&x, &w, Some(&b), &g);
        assert_within("the forward", conv2d_forward(&x, &w, Some(&b), &g).into_iter(), &want, 1e-12);
    }

    #[test]
    fn backward_data_by_sub_pixel_classes_matches_the_reference_at_any_stride() {
        // B1's transposed 4×4 layer, a 1×1 kernel at stride 2 (three classes get no tap, so
        // their pixels hold the bias alone), and strides 3 by 2 with padding that cuts taps.
        for (x, w, s, p) in [
            ([5, 3, 9, 10], [4, 3, 4, 4], [2, 2], [1, 1]),
            ([3, 2, 7, 8], [3, 2, 1, 1], [2, 2], [0, 0]),
            ([2, 3, 11, 9], [2, 3, 3, 5], [3, 2], [2, 1]),
        ] {
            let g = Conv2dGeometry::conv2d(x, w, s, p, [1, 1]).unwrap();
            let (dy, w, b) = (ramp(g.y_len()), ramp(g.weight_len()), ramp(g.c_in));
            let want = reference::conv_transpose2d(&dy, &w, Some(&b), &g.transposed());
            assert_within(&format!("{g:?}"), conv2d_backward_data(&dy, &w, Some(&b), &g).into_iter(), &want, 1e-12);
            // In f32 the GEMM runs the SIMD micro-kernels on the copied panels.
            let got = conv2d_backward_data(&to_f32(&dy), &to_f32(&w), Some(&to_f32(&b)), &g);
            assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| a as f64), &want, 1e-5);
        }
    }

    /// The weight gradient at `g` against the reference, in f64 and in f32 (the SIMD paths).
    fn weight_gradient_matches_the_reference(g: Conv2dGeometry) {
        let (dy, x) = (ramp(g.y_len()), ramp(g.x_len()).iter().map(|v| v * 0.5 + 0.1).collect::<Vec<_>>());
        let want = reference::conv2d_backward_weight(&dy, &x, &g);
        assert_within(&format!("{g:?}"), conv2d_backward_weight(&dy, &x, &g).into_iter(), &want, 1e-12);
        let got = conv2d_backward_weight(&to_f32(&dy), &to_f32(&x), &g);
        assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| a as f64), &want, 1e-5);
    }

    #[test]
    fn the_weight_gradient_with_images_side_by_side_matches_the_reference() {
        // Groups of several images whose panels cross from one image's pixels into the next
        // one's, junk columns that must add nothing, and f32 through the SIMD micro-kernels.
        for (x, w, s, p) in
            [([9, 3, 10, 11], [4, 3, 3, 3], [2, 2], [1, 1]), ([5, 2, 7, 6], [3, 2, 3, 5], [1, 1], [1, 2])]
        {
            weight_gradient_matches_the_reference(Conv2dGeometry::conv2d(x, w, s, p, [1, 1]).unwrap());
        }
    }

    #[test]
    fn every_image_blocked_holds_its_split_planes_with_the_channels_innermost() {
        // Strides 1, 2 (the SSE paths, which take four channels at a time) and 3 (element by
        // element); 11 channels in blocks of 8: a full block, and one of 3 channels and 5 of
        // padding. A poisoned buffer: every element of the image's part must be written.
        for (s, p, d) in [([1, 1], [1, 2], [1, 1]), ([2, 2], [1, 1], [1, 1]), ([3, 2], [2, 0], [2, 1])] {
            let g = Conv2dGeometry::conv2d([2, 11, 13, 14], [3, 11, 3, 3], s, p, d).unwrap();
            let grid = PhaseGrid::of(&g);
            let blocks = Blocks::of(&g, &grid, [4, 8], g.batch);
            let x = ramp(g.x_len());
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let (mut out, mut out32) = (vec![f64::NAN; blocks.x_len()], vec![f32::NAN; blocks.x_len()]);
            let mut planes = vec![0.0; grid.image_len];
            for (i, x_n) in x.chunks_exact(g.in_image()).enumerate() {
                blocks.block_image(x_n, &g, &grid, i, &mut out);
                blocks.block_image(&x32[i * g.in_image()..(i + 1) * g.in_image()], &g, &grid, i, &mut out32);
            }
            for (i, x_n) in x.chunks_exact(g.in_image()).enumerate() {
                grid.split(x_n, &g, &mut planes);
                for (at, (&v, &v32)) in out.iter().zip(&out32).enumerate() {
                    let (block_phase, position, c) = (at / (blocks.positions * 8), at / 8 % blocks.positions, at % 8);
                    let (block, phase) = (block_phase / blocks.phases, block_phase % blocks.phases);
                    if position / grid.plane_len != i {
                        continue;
                    }
                    let (ci, pixel) = (block * 8 + c, position % grid.plane_len);
                    let want =
                        if ci < g.c_in { planes[(ci * blocks.phases + phase) * grid.plane_len + pixel] } else { 0.0 };
                    let place = format!("{g:?}: image {i}, channel {ci}, phase {phase}, pixel {pixel}");
                    assert_eq!(v, want, "{place}");
                    assert_eq!(v32, want as f32, "f32, {place}");
                }
            }
        }
    }

    #[test]
    fn the_weight_gradient_with_channels_in_several_blocks_matches_the_reference() {
        // 17 output channels (two blocks of MR = 14 in f32's AVX-512 kernel, five of the
        // portable 4×4) and 9 input channels (the transposes' four at a time, then one):
        // strides 1 and 2.
        for (x, w, s) in [([3, 9, 10, 11], [17, 9, 3, 3], [1, 1]), ([5, 9, 12, 9], [17, 9, 4, 4], [2, 2])] {
            weight_gradient_matches_the_reference(Conv2dGeometry::conv2d(x, w, s, [1, 1], [1, 1]).unwrap());
        }
    }

    #[test]
    fn dy_blocked_overwrites_a_poisoned_buffer_with_zeros_off_the_real_pixels_and_channels() {
        // A buffer left over from an earlier group holds anything: the junk columns, the
        // pixels past each image's last output row and the padding channels must read zero.
        let g = Conv2dGeometry::conv2d([3, 2, 9, 9], [5, 2, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let grid = PhaseGrid::of(&g);
        let mr = 4;
        let blocks = Blocks::of(&g, &grid, [mr, 8], g.batch);
        let dy = ramp(g.y_len());
        let mut out = vec![f64::NAN; blocks.dy_len()];
        blocks.block_dy(&dy, &g, &grid, g.batch, &mut out);
        for (i, v) in out.iter().enumerate() {
            let (block, position, r) = (i / (blocks.positions * mr), i / mr % blocks.positions, i % mr);
            let (n, pixel) = (position / grid.plane_len, position % grid.plane_len);
            let (co, oy, ox) = (block * mr + r, pixel / grid.width, pixel % grid.width);
            let real = co < g.c_out && oy < g.oh && ox < g.ow;
            let want = if real { dy[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] } else { 0.0 };
            assert_eq!(*v, want, "channel {co}, image {n}, grid pixel {pixel}");
        }
    }
}
