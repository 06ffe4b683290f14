//! Joining and selecting along an axis, by definition. Each tensor is viewed as
//! [outer, n, inner] around the axis (outer: the axes before it, inner: the axes after it).

/// out[o, offset_t + j, i] = t[o, j, i] for each part t in turn, offset_t the rows before it.
// parts: ([outer, n_t, inner], n_t) → out: [outer, Σ n_t, inner]
pub fn cat(parts: &[(&[f64], usize)], outer: usize, inner: usize) -> Vec<f64> {
    let rows: usize = parts.iter().map(|(_, n)| n).sum();
    let mut out = vec![0.0; outer * rows * inner];
    let mut offset = 0;
    for (t, n) in parts {
        for o in 0..outer {
            for j in 0..*n {
                for i in 0..inner {
                    out[(o * rows + offset + j) * inner + i] = t[(o * n + j) * inner + i];
                }
            }
        }
        offset += n;
    }
    out
}

/// out[o, j, i] = x[o, indices\[j\], i].
// x: [outer, n, inner] → out: [outer, indices.len(), inner]
pub fn index_select(x: &[f64], [outer, n, inner]: [usize; 3], indices: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; outer * indices.len() * inner];
    for o in 0..outer {
        for (j, &row) in indices.iter().enumerate() {
            for i in 0..inner {
                out[(o * indices.len() + j) * inner + i] = x[(o * n + row) * inner + i];
            }
        }
    }
    out
}

/// The adjoint of index_select: out[o, indices\[j\], i] += src[o, j, i], from zeros.
// src: [outer, indices.len(), inner] → out: [outer, n, inner]
pub fn index_add_zeros(src: &[f64], [outer, n, inner]: [usize; 3], indices: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; outer * n * inner];
    for o in 0..outer {
        for (j, &row) in indices.iter().enumerate() {
            for i in 0..inner {
                out[(o * n + row) * inner + i] += src[(o * indices.len() + j) * inner + i];
            }
        }
    }
    out
}
