//! Element-wise kernels (filled in next).
