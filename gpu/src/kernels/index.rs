//! Row-selection launchers (`shaders/index.wgsl`): index_select along one axis and its
//! adjoint index_add, with u32 index buffers built on the host.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};
use crate::kernels::{need, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/index.wgsl`.
pub static SHADER: Shader = Shader { name: "index.wgsl", source: include_str!("../../../shaders/index.wgsl") };
/// Gathers rows along the indexed axis.
pub static INDEX_SELECT: KernelDef = KernelDef::new(&SHADER, "index_select", 2, 1);
/// Scatter-adds rows along the indexed axis (repeated indices accumulate).
pub static INDEX_ADD: KernelDef = KernelDef::new(&SHADER, "index_add", 3, 1);

/// Mirrors `struct Params` in index.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Product of the axes before the indexed/reduced one.
    pub outer: u32,
    /// Rows of the indexed axis in the bound input.
    pub n_in: u32,
    /// Rows of the indexed axis in the bound output.
    pub n_out: u32,
    /// Product of the axes after the indexed/reduced one.
    pub inner: u32,
    /// [`IndexWindow::in_first`].
    pub in_first: u32,
    /// [`IndexWindow::out_first`].
    pub out_first: u32,
    /// [`IndexWindow::in_offset`].
    pub in_offset: u32,
    /// [`IndexWindow::out_offset`].
    pub out_offset: u32,
    /// [`IndexWindow::accumulate`], as 0 or 1.
    pub accumulate: u32,
    /// Padding to a multiple of 16 bytes.
    pub _pad: [u32; 3],
}

/// Which rows of the indexed axis a launch's bound buffers hold, for a tensor larger than one
/// binding launched a window at a time (see the header of `shaders/index.wgsl`). The default
/// is a launch on buffers bound whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexWindow {
    /// index_select: the index value of the bound input's first row (outputs whose index lies
    /// outside the window are left as they are); index_add: the source row of the bound
    /// input's first row (sources outside the window are skipped).
    pub in_first: usize,
    /// index_select: the position among the indices of the bound output's first row;
    /// index_add: the target row of the bound output's first row.
    pub out_first: usize,
    /// The element of the bound input where its first row starts.
    pub in_offset: usize,
    /// The element of the bound output where its first row starts.
    pub out_offset: usize,
    /// index_add: add the window's sources to what the output holds instead of overwriting it.
    pub accumulate: bool,
}

/// A dense tensor viewed as [outer, axis, inner] around the indexed axis: `n_in` is that
/// axis's length in the input, `n_out` in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexDims {
    /// Product of the axes before the indexed/reduced one.
    pub outer: usize,
    /// Length of the indexed axis in the input.
    pub n_in: usize,
    /// Length of the indexed axis in the output (number of indices).
    pub n_out: usize,
    /// Product of the axes after the indexed/reduced one.
    pub inner: usize,
}

impl IndexDims {
    /// Elements of the input: outer·n_in·inner.
    pub fn in_len(&self) -> usize {
        self.outer * self.n_in * self.inner
    }

    /// Elements of the output: outer·n_out·inner.
    pub fn out_len(&self) -> usize {
        self.outer * self.n_out * self.inner
    }

    fn params(&self, kernel: &'static str, w: IndexWindow) -> Result<Params> {
        let largest = [self.in_len() + w.in_offset, self.out_len() + w.out_offset, w.in_first + self.n_in];
        if largest.into_iter().chain([w.out_first + self.n_out]).max().unwrap_or(0) > u32::MAX as usize {
            return Err(invalid(kernel, format!("{self:?} at {w:?} exceeds u32 indexing")));
        }
        Ok(Params {
            outer: self.outer as u32,
            n_in: self.n_in as u32,
            n_out: self.n_out as u32,
            inner: self.inner as u32,
            in_first: w.in_first as u32,
            out_first: w.out_first as u32,
            in_offset: w.in_offset as u32,
            out_offset: w.out_offset as u32,
            accumulate: u32::from(w.accumulate),
            _pad: [0; 3],
        })
    }
}

/// out[o, j, k] = x[o, indices\[j\], k], on the rows `w` says the buffers hold (`d` counts
/// the bound rows). The caller has checked every index against the whole axis (the shader
/// only skips an index outside the bound window).
// x: [outer, n_in, inner], indices: [n_out] (u32) → out: [outer, n_out, inner]
pub fn index_select(
    ctx: &Context,
    d: IndexDims,
    w: IndexWindow,
    x: &GpuBuffer,
    indices: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<()> {
    const K: &str = "index_select";
    let p = d.params(K, w)?;
    need(K, "x", x, w.in_offset + d.in_len())?;
    need(K, "indices", indices, w.out_first + d.n_out)?;
    need(K, "out", out, w.out_offset + d.out_len())?;
    let grid = ctx.grid_1d(K, (d.out_len() as u64).div_ceil(WG))?;
    ctx.dispatch(&INDEX_SELECT, &p, &[x, indices], &[out], grid)
}

/// The CSR grouping [`index_add`] reads: for `indices` (target row of each source row j),
/// `row_start` [n_out + 1] and `src_rows` \[n_in\] such that the sources of target i are
/// `src_rows[row_start[i]..row_start[i + 1]]`, in increasing j. Errors on an index ≥ n_out.
pub fn group_by_target(indices: &[usize], n_out: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut count = vec![0u32; n_out + 1];
    for &i in indices {
        if i >= n_out {
            return Err(invalid("index_add", format!("index {i} is out of range for an axis of {n_out}")));
        }
        count[i + 1] += 1;
    }
    for i in 0..n_out {
        count[i + 1] += count[i];
    }
    let row_start = count.clone();
    let mut next = count;
    let mut src_rows = vec![0u32; indices.len()];
    for (j, &i) in indices.iter().enumerate() {
        src_rows[next[i] as usize] = j as u32;
        next[i] += 1;
    }
    Ok((row_start, src_rows))
}

/// out[o, i, k] = Σ_{j : indices\[j\] = i} src[o, j, k], with `row_start` and `src_rows` from
/// [`group_by_target`] (uploaded with `Context::upload_u32`), on the rows `w` says the buffers
/// hold: the sources in the bound window, overwriting out or, with `w.accumulate`, added to it.
// src: [outer, n_in, inner], row_start: [n_out + 1], src_rows: [n_in] (u32)
//   → out: [outer, n_out, inner]
pub fn index_add(
    ctx: &Context,
    d: IndexDims,
    w: IndexWindow,
    src: &GpuBuffer,
    row_start: &GpuBuffer,
    src_rows: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<()> {
    const K: &str = "index_add";
    let p = d.params(K, w)?;
    need(K, "src", src, w.in_offset + d.in_len())?;
    need(K, "row_start", row_start, w.out_first + d.n_out + 1)?;
    need(K, "src_rows", src_rows, w.in_first + d.n_in)?;
    need(K, "out", out, w.out_offset + d.out_len())?;
    let grid = ctx.grid_1d(K, (d.out_len() as u64).div_ceil(WG))?;
    ctx.dispatch(&INDEX_ADD, &p, &[src, row_start, src_rows], &[out], grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_target_lists_sources_per_row_in_order() {
        let (start, rows) = group_by_target(&[2, 0, 2, 1, 2], 4).unwrap();
        assert_eq!(start, vec![0, 1, 2, 5, 5]);
        assert_eq!(rows, vec![1, 3, 0, 2, 4]);
        assert!(group_by_target(&[4], 4).is_err());
    }
}
