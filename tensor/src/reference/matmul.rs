//! Matrix product, by its definition.

/// c\[i, j\] = Σ_k a\[i, k\] · b\[k, j\].
// a: [m, k], b: [k, n] → c: [m, n]
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}
