//! Reduction kernels (filled in next).
