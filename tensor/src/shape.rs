//! Shapes, strides and layouts: how an n-dimensional index maps to a position in storage,
//! and the NumPy broadcasting rule.

use crate::error::{Result, TensorError};

/// The size of each dimension, outermost first (row-major).
pub type Shape = Vec<usize>;

/// Number of elements of a shape (1 for a scalar of rank 0).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C-contiguous) strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Resolves a possibly negative axis (`-1` is the last) against a rank.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(TensorError::Axis { op, axis, rank });
    }
    Ok(a as usize)
}

/// The shape two operands broadcast to under NumPy's rule: align from the right; each pair of
/// sizes must be equal or one of them 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(TensorError::Shape {
                op,
                msg: format!("shapes {a:?} and {b:?} cannot be broadcast together (dimension {i}: {da} vs {db})"),
            });
        };
    }
    Ok(out)
}

/// Where a tensor's elements live inside its storage: shape, strides (in elements) and the
/// offset of element [0, 0, ...]. A stride of 0 repeats an element (a broadcast view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size of each axis.
    pub shape: Shape,
    /// Step between neighbours along each axis, in elements (not bytes); 0 for a broadcast axis.
    pub strides: Vec<usize>,
    /// Position of the first element in the storage, in elements.
    pub offset: usize,
}

impl Layout {
    /// A row-major layout of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// True when the elements are stored densely in row-major order (offset allowed).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// The layout with dimensions reordered: output dim i is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(TensorError::Shape {
                op: "permute",
                msg: format!("{perm:?} is not a permutation of the {rank} axes of shape {:?}", self.shape),
            });
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// A view of `target` shape that repeats this layout's size-1 (or missing leading) dims.
    pub fn broadcast_to(&self, target: &[usize]) -> Result<Layout> {
        if target.len() < self.rank() {
            return Err(TensorError::Shape {
                op: "broadcast_to",
                msg: format!("cannot broadcast shape {:?} to the lower-rank shape {target:?}", self.shape),
            });
        }
        let lead = target.len() - self.rank();
        let mut strides = vec![0; target.len()];
        for i in 0..self.rank() {
            let (s, t) = (self.shape[i], target[lead + i]);
            if s == t {
                strides[lead + i] = self.strides[i];
            } else if s != 1 {
                return Err(TensorError::Shape {
                    op: "broadcast_to",
                    msg: format!("cannot broadcast shape {:?} to {target:?} (dimension {i}: {s} vs {t})", self.shape),
                });
            }
        }
        Ok(Layout { shape: target.to_vec(), strides, offset: self.offset })
    }

    /// Calls `f(storage_index)` for every element in row-major order of this layout.
    /// The innermost dimension runs as a tight loop so strided copies stay fast.
    pub fn for_each_index(&self, mut f: impl FnMut(usize)) {
        let (inner, inner_stride) = self.inner_row();
        self.for_each_row(|base| {
            for j in 0..inner {
                f(base + j * inner_stride);
            }
        });
    }

    /// The innermost dimension's length and stride (1 and 0 for a scalar): the rows that
    /// [`Layout::for_each_row`] walks.
    pub fn inner_row(&self) -> (usize, usize) {
        match (self.shape.last(), self.strides.last()) {
            (Some(&len), Some(&stride)) => (len, stride),
            _ => (1, 0),
        }
    }

    /// Calls `f(storage_index)` with the first element of every innermost row, in row-major
    /// order (a row is [`Layout::inner_row`] long; nothing for an empty layout).
    pub fn for_each_row(&self, mut f: impl FnMut(usize)) {
        if self.numel() == 0 {
            return;
        }
        let outer = self.rank().saturating_sub(1);
        let mut idx = vec![0usize; outer];
        let mut base = self.offset;
        loop {
            f(base);
            // Odometer increment over the outer dims.
            let mut d = outer;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                base -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        assert_eq!(broadcast_shapes("t", &[3, 1, 5], &[4, 1]).unwrap(), vec![3, 4, 5]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast_shapes("t", &[3, 2], &[3]).is_err());
    }

    #[test]
    fn transposed_layout_iterates_in_transposed_order() {
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]).unwrap();
        let mut seen = vec![];
        l.for_each_index(|i| seen.push(i));
        assert_eq!(seen, vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn broadcast_view_repeats_with_zero_stride() {
        let l = Layout::contiguous(&[3, 1]).broadcast_to(&[2, 3, 2]).unwrap();
        let mut seen = vec![];
        l.for_each_index(|i| seen.push(i));
        assert_eq!(seen, vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
    }
}
