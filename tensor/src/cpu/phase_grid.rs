//! conv2d's kernels as implicit GEMMs whose B panels are plain copies out of the input's
//! stride phases: a rung of the CPU convolution ladder (`cpu::conv::ConvRung::PhaseGrid`), and
//! for the forward a cut the tuner may choose.
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
//! The weight gradient dW = Σ dy · colᵀ runs on the forward's grid: dy spread on it with its
//! junk columns zero, and colᵀ's panels written down their columns, each column (one tap) a
//! contiguous run of a phase plane. Measured against the other ways, the forward is a cut the
//! tuner times, backward-data only at stride 1, and the weight gradient only on the ladder
//! (docs/cpu-gemm.md, "The phase grid").

use rayon::prelude::*;

use crate::cpu::conv::{add_strided, copy_strided, init_planes, min_groups_per_task};
use crate::cpu::gemm::{gemm_packing_b, BPanel, MatRef};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{same_type_slice, same_type_slice_mut, Float};

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
    /// columns sw·c + b − pw; what falls outside the input is zero. The overhang after each
    /// plane is never written, so it keeps the zeros the buffer was made with.
    // x: [C_in, H, W] (one image)   out: [C_in, sh, sw, plane_len]
    fn split<T: Float>(&self, x: &[T], g: &Conv2dGeometry, out: &mut [T]) {
        let ([sh, sw], [pad_h, pad_w]) = (g.stride, g.padding);
        for (ci, planes) in out[..self.image_len].chunks_exact_mut(sh * sw * self.plane_len).enumerate() {
            let x_c = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            for (phase, plane) in planes.chunks_exact_mut(self.plane_len).enumerate() {
                let (a, b) = (phase / sw, phase % sw);
                // Plane columns c with 0 ≤ sw·c + b − pw < W.
                let c_lo = (pad_w.saturating_sub(b)).div_ceil(sw).min(self.width);
                let c_hi = (g.w + pad_w).saturating_sub(b).div_ceil(sw).clamp(c_lo, self.width);
                for (r, row) in plane[..self.rows * self.width].chunks_exact_mut(self.width).enumerate() {
                    let iy = (sh * r + a).checked_sub(pad_h).filter(|&iy| iy < g.h);
                    match iy {
                        Some(iy) if c_lo < c_hi => {
                            row[..c_lo].fill(T::ZERO);
                            row[c_hi..].fill(T::ZERO);
                            let ix = sw * c_lo + b - pad_w;
                            copy_strided(&mut row[c_lo..c_hi], &x_c[iy * g.w + ix..(iy + 1) * g.w], sw);
                        }
                        _ => row.fill(T::ZERO),
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

/// dW for y = conv2d(x, w): dW = Σ_images dy · colᵀ, on the phase grid. Per group of images
/// the input is split into its phases as for the forward, dy is laid out on the same grid (its
/// junk columns zero, so they add nothing), and dW += dy_grid · colᵀ runs with colᵀ's panels
/// read from the planes: a panel row is one grid pixel across a run of taps, so each panel
/// column (one tap) is a contiguous run of a plane, written down the column. The threads take
/// whole groups, each into a partial dW of its own, summed at the end.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let (k, out_img, in_img) = (g.col_rows(), g.out_image(), g.in_image());
    let mut dw = vec![T::ZERO; g.c_out * k];
    if dw.is_empty() || g.batch == 0 || g.oh * g.ow == 0 {
        return dw;
    }
    let grid = PhaseGrid::of(g);
    let image_columns = grid.image_columns(g);
    let group = images_per_group(g, 2048, image_columns, grid.image_len + g.c_out * image_columns);
    let groups = g.batch.div_ceil(group);
    let parts = groups.min(rayon::current_num_threads()).max(1);
    let per_part = groups.div_ceil(parts) * group;
    let partials: Vec<Vec<T>> = (0..g.batch.div_ceil(per_part))
        .into_par_iter()
        .map(|part| {
            let mut partial = vec![T::ZERO; g.c_out * k];
            let mut planes = vec![T::ZERO; group * grid.image_len];
            let mut dy_grid = vec![T::ZERO; group * g.c_out * image_columns];
            let end = ((part + 1) * per_part).min(g.batch);
            for n0 in (part * per_part..end).step_by(group) {
                let images = group.min(end - n0);
                for (i, planes_n) in planes.chunks_exact_mut(grid.image_len).take(images).enumerate() {
                    grid.split(&x[(n0 + i) * in_img..(n0 + i + 1) * in_img], g, planes_n);
                }
                let cols = images * image_columns;
                let dy_grid = &mut dy_grid[..g.c_out * cols];
                spread(&grad_y[n0 * out_img..(n0 + images) * out_img], g, &grid, images, dy_grid);
                let planes = &planes[..images * grid.image_len];
                let source = PanelSource { image_len: grid.image_len, image_columns, tap_offsets: &grid.tap_offsets };
                let pack = |panel: BPanel, out: &mut [T]| pack_transposed_panel(planes, source, panel, out);
                gemm_packing_b(MatRef::row_major(dy_grid, g.c_out, cols), k, &pack, &mut partial, k, true);
            }
            partial
        })
        .collect();
    dw.par_chunks_mut(k).enumerate().for_each(|(co, dw_co)| {
        for p in &partials {
            dw_co.iter_mut().zip(&p[co * k..(co + 1) * k]).for_each(|(d, v)| *d += *v);
        }
    });
    dw
}

/// dy laid out on the output grid, images side by side: grid[co, n·OH·width + oy·width + ox] =
/// dy[n, co, oy, ox] for ox < OW, and zero in the junk columns ox ≥ OW.
// dy: [images, C_out, OH, OW]   grid: [C_out, images·OH·width]
fn spread<T: Float>(dy: &[T], g: &Conv2dGeometry, grid: &PhaseGrid, images: usize, out: &mut [T]) {
    let (image_columns, ld) = (grid.image_columns(g), images * grid.image_columns(g));
    for (n, dy_n) in dy.chunks_exact(g.out_image()).take(images).enumerate() {
        for (co, dy_c) in dy_n.chunks_exact(g.out_plane()).enumerate() {
            let dst = &mut out[co * ld + n * image_columns..][..image_columns];
            for (dst_row, src_row) in dst.chunks_exact_mut(grid.width).zip(dy_c.chunks_exact(g.ow)) {
                dst_row[..g.ow].copy_from_slice(src_row);
                dst_row[g.ow..].fill(T::ZERO);
            }
        }
    }
}

/// One packed panel of colᵀ, the grid pixels of the images side by side down its rows and the
/// taps across: rows `p0..p0 + kc` (pixels) and columns `j0..j0 + cols` (taps), each row `nr`
/// long and zero past `cols`. Column j is tap j0 + j's window of its plane, so within one image
/// it is a contiguous run, written down the column.
// planes: [images, C_in, sh, sw, plane_len]   out: [kc, nr]
fn pack_transposed_panel<T: Float>(planes: &[T], layout: PanelSource, panel: BPanel, out: &mut [T]) {
    let BPanel { j0, cols, p0, kc, nr } = panel;
    if cols < nr {
        out[..kc * nr].chunks_exact_mut(nr).for_each(|row| row[cols..].fill(T::ZERO));
    }
    let taps = &layout.tap_offsets[j0..j0 + cols];
    for ImageRun { done, image, q, run } in layout.image_runs(planes, p0, kc) {
        let rows = &mut out[done * nr..(done + run) * nr];
        let mut j = 0;
        // Four taps at a time through 4×4 transposes: element by element, this copy took
        // most of the packing time (perf, B1's weight gradients).
        #[cfg(target_arch = "x86_64")]
        if let (Some(image), Some(rows)) = (same_type_slice::<T, f32>(image), same_type_slice_mut::<T, f32>(rows)) {
            while j + 4 <= cols {
                let src = |t: usize| &image[taps[j + t] + q..taps[j + t] + q + run];
                transpose_sse::columns_of_four([src(0), src(1), src(2), src(3)], rows, nr, j);
                j += 4;
            }
        }
        for (j, &offset) in taps.iter().enumerate().skip(j) {
            let src = &image[offset + q..offset + q + run];
            rows.chunks_exact_mut(nr).zip(src).for_each(|(row, &v)| row[j] = v);
        }
    }
}

/// 4×4 transposes with SSE (part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
mod transpose_sse {
    use crate::cpu::gemm::transpose_sse::transpose4;
    use std::arch::x86_64::*;

    /// rows\[i·nr + j + t\] = src\[t\]\[i\] for t < 4 and every i: four runs of equal length
    /// written down four adjacent columns of `rows` (rows of `nr`, as many as the runs are long).
    #[inline]
    pub(super) fn columns_of_four(src: [&[f32]; 4], rows: &mut [f32], nr: usize, j: usize) {
        let run = src[0].len();
        assert!(src.iter().all(|s| s.len() == run) && rows.len() >= run * nr && j + 4 <= nr);
        let full = run / 4 * 4;
        let base = rows.as_mut_ptr();
        for i in (0..full).step_by(4) {
            // SAFETY: SSE is part of x86-64; each run holds i + 4 ≤ run floats, and rows
            // i..i + 4 of `rows` hold columns j..j + 4 ≤ nr (asserted above).
            unsafe {
                let run_of = |t: usize| _mm_loadu_ps(src[t].as_ptr().add(i));
                let rows_out = transpose4([run_of(0), run_of(1), run_of(2), run_of(3)]);
                for (r, row) in rows_out.into_iter().enumerate() {
                    _mm_storeu_ps(base.add((i + r) * nr + j), row);
                }
            }
        }
        for i in full..run {
            for (t, s) in src.iter().enumerate() {
                rows[i * nr + j + t] = s[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::conv as reference;

    fn ramp(len: usize) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37).sin()).collect()
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
        let got = conv2d_forward(&x, &w, Some(&b), &g);
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (a, e)) in got.iter().zip(&want).enumerate() {
            assert!((a - e).abs() <= 1e-12 * scale, "element {i}: {a} vs {e}");
        }
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
            let got = conv2d_backward_data(&dy, &w, Some(&b), &g);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 1e-12 * scale, "{g:?}: element {i}: {a} vs {e}");
            }
            // In f32 the GEMM runs the SIMD micro-kernels on the copied panels.
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
            let got = conv2d_backward_data(&to32(&dy), &to32(&w), Some(&to32(&b)), &g);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((*a as f64 - e).abs() <= 1e-5 * scale, "f32, {g:?}: element {i}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn the_weight_gradient_with_images_side_by_side_matches_the_reference() {
        // Groups of several images whose panels cross from one image's pixels into the next
        // one's, junk columns that must add nothing, and f32 through the SIMD micro-kernels.
        for (x, w, s, p) in
            [([9, 3, 10, 11], [4, 3, 3, 3], [2, 2], [1, 1]), ([5, 2, 7, 6], [3, 2, 3, 5], [1, 1], [1, 2])]
        {
            let g = Conv2dGeometry::conv2d(x, w, s, p, [1, 1]).unwrap();
            let (dy, x) = (ramp(g.y_len()), ramp(g.x_len()).iter().map(|v| v * 0.5 + 0.1).collect::<Vec<_>>());
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let got = conv2d_backward_weight(&dy, &x, &g);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 1e-12 * scale, "{g:?}: element {i}: {a} vs {e}");
            }
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
            let got = conv2d_backward_weight(&to32(&dy), &to32(&x), &g);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((*a as f64 - e).abs() <= 1e-5 * scale, "f32, {g:?}: element {i}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn dy_spread_on_the_grid_overwrites_a_poisoned_buffer_with_zeros_in_the_junk_columns() {
        // A buffer left over from a group of another size holds anything in the junk columns.
        let g = Conv2dGeometry::conv2d([3, 2, 9, 9], [4, 2, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let grid = PhaseGrid::of(&g);
        let dy = ramp(g.y_len());
        let mut out = vec![f64::NAN; g.c_out * g.batch * grid.image_columns(&g)];
        spread(&dy, &g, &grid, g.batch, &mut out);
        let ld = g.batch * grid.image_columns(&g);
        for (i, v) in out.iter().enumerate() {
            let (co, column) = (i / ld, i % ld);
            let (n, pixel) = (column / grid.image_columns(&g), column % grid.image_columns(&g));
            let (oy, ox) = (pixel / grid.width, pixel % grid.width);
            let want = if ox < g.ow { dy[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] } else { 0.0 };
            assert_eq!(*v, want, "channel {co}, image {n}, grid pixel ({oy}, {ox})");
        }
    }
}
