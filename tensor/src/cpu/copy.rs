//! Strided copies: gathering any layout (permuted, narrowed, broadcast) into dense row-major
//! order, and scattering dense blocks into a larger tensor (concat).

use crate::dtype::Float;
use crate::shape::Layout;

/// The elements of `layout` over `data`, in row-major order of the layout's shape.
pub fn gather_layout<T: Float>(data: &[T], layout: &Layout) -> Vec<T> {
    let mut out = Vec::with_capacity(layout.numel());
    layout.for_each_index(|i| out.push(data[i]));
    out
}
