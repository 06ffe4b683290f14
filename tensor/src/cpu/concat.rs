//! Joining and selecting rows along an axis. Every tensor is viewed as [outer, axis, inner]
//! (`inner` the product of the dims after the axis), so one "row" is `inner` contiguous values
//! and each kernel copies (or adds) whole rows, one outer block per task.

use rayon::prelude::*;

use crate::dtype::Float;

/// Concatenation along the axis: `parts[p]` is [outer, n_p, inner] given as (data, n_p·inner);
/// the output is [outer, Σ n_p, inner] with `row = Σ n_p·inner` values per outer block.
pub fn cat<T: Float>(parts: &[(&[T], usize)], outer: usize, row: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; outer * row];
    if row > 0 {
        out.par_chunks_mut(row).enumerate().for_each(|(o, dst)| {
            let mut col = 0;
            for (src, w) in parts {
                dst[col..col + w].copy_from_slice(&src[o * w..(o + 1) * w]);
                col += w;
            }
        });
    }
    out
}

/// out[o, j, :] = x[o, indices\[j\], :]. x: [outer, n_in, inner] → [outer, indices.len(), inner].
/// Indices must be below n_in (the op layer checks).
pub fn index_select<T: Float>(x: &[T], outer: usize, n_in: usize, inner: usize, indices: &[usize]) -> Vec<T> {
    let n_out = indices.len();
    let mut out = vec![T::ZERO; outer * n_out * inner];
    if inner > 0 && n_out > 0 {
        out.par_chunks_mut(n_out * inner).enumerate().for_each(|(o, dst)| {
            for (j, &i) in indices.iter().enumerate() {
                let s = (o * n_in + i) * inner;
                dst[j * inner..(j + 1) * inner].copy_from_slice(&x[s..s + inner]);
            }
        });
    }
    out
}

/// The adjoint of [`index_select`]: zeros of [outer, n_out, inner] plus src[o, j, :] added at
/// row indices\[j\] (repeated indices accumulate). src: [outer, indices.len(), inner].
pub fn index_add_zeros<T: Float>(src: &[T], outer: usize, n_out: usize, inner: usize, indices: &[usize]) -> Vec<T> {
    let n_src = indices.len();
    let mut out = vec![T::ZERO; outer * n_out * inner];
    if inner > 0 && n_out > 0 {
        out.par_chunks_mut(n_out * inner).enumerate().for_each(|(o, dst)| {
            for (j, &i) in indices.iter().enumerate() {
                let from = &src[(o * n_src + j) * inner..(o * n_src + j + 1) * inner];
                dst[i * inner..(i + 1) * inner].iter_mut().zip(from).for_each(|(d, &v)| *d += v);
            }
        });
    }
    out
}
