//! Shape ops on vars: reshape, permute, narrow, broadcast, cat, stack, index_select, and
//! pixel_unshuffle, composed of them. Their backward passes only move gradient values around;
//! none does arithmetic except summing over broadcast axes and accumulating repeated indices.

use tensor::ops::concat::{cat as cat_tensors, index_add_zeros, index_select as select_tensor};
use tensor::ops::reduce::sum_to_shape;
use tensor::shape::normalize_axis;
use tensor::{Result, Tensor};

use crate::var::Var;

/// Same elements in a new shape (same element count); the gradient is reshaped back.
pub fn reshape(x: &Var, shape: &[usize]) -> Result<Var> {
    let out = x.value().reshape(shape)?;
    let orig = x.shape();
    Ok(Var::from_op("reshape", out, &[x], move |g| Ok(vec![Some(g.reshape(&orig)?)])))
}

/// Reorders the axes: output axis i is input axis `perm[i]`.
pub fn permute(x: &Var, perm: &[usize]) -> Result<Var> {
    let out = x.value().permute(perm)?;
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(Var::from_op("permute", out, &[x], move |g| Ok(vec![Some(g.permute(&inverse)?)])))
}

/// Swaps axes `a` and `b` (negative counts from the end).
pub fn transpose(x: &Var, a: isize, b: isize) -> Result<Var> {
    let rank = x.shape().len();
    let (a, b) = (normalize_axis("transpose", a, rank)?, normalize_axis("transpose", b, rank)?);
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(a, b);
    permute(x, &perm)
}

/// The slice `start..start + len` along `axis`; the gradient is zero outside it.
pub fn narrow(x: &Var, axis: isize, start: usize, len: usize) -> Result<Var> {
    let xv = x.value();
    let out = xv.narrow(axis, start, len)?;
    let shape = x.shape();
    let a = normalize_axis("narrow", axis, shape.len())?;
    // The slice's gradient sits between zeros for the rows that were cut away.
    Ok(Var::from_op("narrow", out, &[x], move |g| {
        let mut parts = vec![];
        let zeros = |n: usize| {
            let mut s = shape.clone();
            s[a] = n;
            Tensor::zeros_on(&s, g.dtype(), &g.device())
        };
        let (before, after) = (zeros(start)?, zeros(shape[a] - start - len)?);
        if start > 0 {
            parts.push(&before);
        }
        parts.push(g);
        if shape[a] > start + len {
            parts.push(&after);
        }
        Ok(vec![Some(cat_tensors(&parts, a as isize)?)])
    }))
}

/// Broadcasts to `shape` (materialised); the gradient is summed back over the broadcast axes.
pub fn broadcast_to(x: &Var, shape: &[usize]) -> Result<Var> {
    let out = x.value().broadcast_to(shape)?.contiguous()?;
    let orig = x.shape();
    Ok(Var::from_op("broadcast_to", out, &[x], move |g| Ok(vec![Some(sum_to_shape(g, &orig)?)])))
}

/// Concatenates along `axis`; all other dims must match.
pub fn cat(xs: &[&Var], axis: isize) -> Result<Var> {
    let values: Vec<Tensor> = xs.iter().map(|x| x.value()).collect();
    let out = cat_tensors(&values.iter().collect::<Vec<_>>(), axis)?;
    let a = normalize_axis("cat", axis, out.rank())?;
    let sizes: Vec<usize> = values.iter().map(|v| v.shape()[a]).collect();
    // Each input's gradient is its own slice of g.
    Ok(Var::from_op("cat", out, xs, move |g| {
        let mut start = 0;
        let mut grads = vec![];
        for &n in &sizes {
            grads.push(Some(g.narrow(a as isize, start, n)?.contiguous()?));
            start += n;
        }
        Ok(grads)
    }))
}

/// Stacks equal-shaped vars along a new axis `axis` (0 ≤ axis ≤ rank).
pub fn stack(xs: &[&Var], axis: usize) -> Result<Var> {
    let expanded = xs
        .iter()
        .map(|x| {
            let mut s = x.shape();
            if axis > s.len() {
                return Err(tensor::TensorError::Axis { op: "stack", axis: axis as isize, rank: s.len() });
            }
            s.insert(axis, 1);
            reshape(x, &s)
        })
        .collect::<Result<Vec<_>>>()?;
    cat(&expanded.iter().collect::<Vec<_>>(), axis as isize)
}

/// Picks `indices` along `axis` (repeats allowed; their gradients accumulate).
pub fn index_select(x: &Var, axis: isize, indices: &[usize]) -> Result<Var> {
    let out = select_tensor(&x.value(), axis, indices)?;
    let (shape, idx) = (x.shape(), indices.to_vec());
    // Rows picked several times accumulate their gradients.
    Ok(Var::from_op("index_select", out, &[x], move |g| Ok(vec![Some(index_add_zeros(g, axis, &idx, &shape)?)])))
}

/// [N, d1, d2, ...] → [N, d1·d2·...] (from `start` on).
pub fn flatten_from(x: &Var, start: usize) -> Result<Var> {
    let s = x.shape();
    if start > s.len() {
        return Err(tensor::TensorError::Axis { op: "flatten", axis: start as isize, rank: s.len() });
    }
    let mut shape = s[..start].to_vec();
    shape.push(s[start..].iter().product());
    reshape(x, &shape)
}

/// Space to depth (PyTorch's `F.pixel_unshuffle`): each r×r block of a plane becomes r² channels,
/// out[n, c·r² + i·r + j, h, w] = x[n, c, h·r + i, w·r + j]. A pure layout op, so it is
/// composed of views and one copy: no kernel of its own on any device, and its backward comes
/// from theirs.
// x: [N, C, H·r, W·r] → [N, C·r², H, W]
pub fn pixel_unshuffle(x: &Var, r: usize) -> Result<Var> {
    let op = "pixel_unshuffle";
    let [n, c, hr, wr] = <[usize; 4]>::try_from(x.shape().as_slice()).map_err(|_| tensor::TensorError::Shape {
        op,
        msg: format!("input must be [N, C, H, W], got {:?}", x.shape()),
    })?;
    if r == 0 || hr % r != 0 || wr % r != 0 {
        let msg = format!("the factor {r} must be positive and divide the height and width of {:?}", x.shape());
        return Err(tensor::TensorError::Shape { op, msg });
    }
    let (h, w) = (hr / r, wr / r);
    x.reshape(&[n, c, h, r, w, r])?.permute(&[0, 1, 3, 5, 2, 4])?.reshape(&[n, c * r * r, h, w])
}

impl Var {
    /// Same elements in a new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        reshape(self, shape)
    }
    /// Reorders the axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        permute(self, perm)
    }
    /// Swaps axes `a` and `b`.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Var> {
        transpose(self, a, b)
    }
    /// The slice `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        narrow(self, axis, start, len)
    }
    /// Broadcasts to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var> {
        broadcast_to(self, shape)
    }
    /// Picks `indices` along `axis`.
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Var> {
        index_select(self, axis, indices)
    }
    /// Flattens axes `start..` into one: `[N, d1, d2, ...]` → `[N, d1·d2·...]` for start = 1.
    pub fn flatten_from(&self, start: usize) -> Result<Var> {
        flatten_from(self, start)
    }
    /// Space to depth: `[N, C, H·r, W·r]` → `[N, C·r², H, W]` ([`pixel_unshuffle`]).
    pub fn pixel_unshuffle(&self, r: usize) -> Result<Var> {
        pixel_unshuffle(self, r)
    }
}
