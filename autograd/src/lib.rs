//! Autograd (filled in next).
