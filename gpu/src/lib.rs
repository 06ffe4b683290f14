//! (filled in by the GPU backend issue)
