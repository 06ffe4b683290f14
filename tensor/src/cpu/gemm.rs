//! General matrix multiply, C = A·B (+ C), over strided operands so that transposed inputs
//! cost nothing: a transpose is just swapped strides.

use crate::dtype::Float;

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A dense row-major [rows, cols] matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride }
    }
}

/// C[m, n] = A[m, k] · B[k, n], or C += A·B when `accumulate`.
/// `c` is row-major with row stride `ldc` (≥ n).
pub fn gemm<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(k, b.rows);
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        if !accumulate {
            row.iter_mut().for_each(|x| *x = T::ZERO);
        }
        for p in 0..k {
            let aip = a.data[i * a.row_stride + p * a.col_stride];
            for (j, cj) in row.iter_mut().enumerate() {
                *cj += aip * b.data[p * b.row_stride + j * b.col_stride];
            }
        }
    }
}
