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
pub static INDEX_SELECT: KernelDef =
    KernelDef { shader: &SHADER, entry: "index_select", inputs: 2, outputs: 1, constant: None };
/// Scatter-adds rows along the indexed axis (repeated indices accumulate).
pub static INDEX_ADD: KernelDef =
    KernelDef { shader: &SHADER, entry: "index_add", inputs: 3, outputs: 1, constant: None };

/// Mirrors `struct Params` in index.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Product of the axes before the indexed/reduced one.
    pub outer: u32,
    /// Length of the indexed axis in the input.
    pub n_in: u32,
    /// Length of the indexed axis in the output (number of indices).
    pub n_out: u32,
    /// Product of the axes after the indexed/reduced one.
    pub inner: u32,
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

    fn params(&self, kernel: &'static str) -> Result<Params> {
        if self.in_len().max(self.out_len()) > u32::MAX as usize {
            return Err(invalid(kernel, format!("{self:?} exceeds u32 indexing")));
        }
        Ok(Params {
            outer: self.outer as u32,
            n_in: self.n_in as u32,
            n_out: self.n_out as u32,
            inner: self.inner as u32,
        })
    }
}

/// out[o, j, k] = x[o, indices\[j\], k]. The caller has checked every index < `d.n_in`
/// (the shader does not: an index out of range would read another row).
// x: [outer, n_in, inner], indices: [n_out] (u32) → out: [outer, n_out, inner]
pub fn index_select(ctx: &Context, d: IndexDims, x: &GpuBuffer, indices: &GpuBuffer, out: &GpuBuffer) -> Result<()> {
    const K: &str = "index_select";
    let p = d.params(K)?;
    need(K, "x", x, d.in_len())?;
    need(K, "indices", indices, d.n_out)?;
    need(K, "out", out, d.out_len())?;
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
/// [`group_by_target`] (uploaded with `Context::upload_u32`). Overwrites out.
// src: [outer, n_in, inner], row_start: [n_out + 1], src_rows: [n_in] (u32)
//   → out: [outer, n_out, inner]
pub fn index_add(
    ctx: &Context,
    d: IndexDims,
    src: &GpuBuffer,
    row_start: &GpuBuffer,
    src_rows: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<()> {
    const K: &str = "index_add";
    let p = d.params(K)?;
    need(K, "src", src, d.in_len())?;
    need(K, "row_start", row_start, d.n_out + 1)?;
    need(K, "src_rows", src_rows, d.n_in)?;
    need(K, "out", out, d.out_len())?;
    let grid = ctx.grid_1d(K, (d.out_len() as u64).div_ceil(WG))?;
    ctx.dispatch(&INDEX_ADD, &p, &[src, row_start, src_rows], &[out], grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::wgsl_check;

    #[test]
    fn params_size_matches_wgsl() {
        assert_eq!(std::mem::size_of::<Params>() as u32, wgsl_check::struct_size(SHADER.name, SHADER.source, "Params"));
    }

    #[test]
    fn group_by_target_lists_sources_per_row_in_order() {
        let (start, rows) = group_by_target(&[2, 0, 2, 1, 2], 4).unwrap();
        assert_eq!(start, vec![0, 1, 2, 5, 5]);
        assert_eq!(rows, vec![1, 3, 0, 2, 4]);
        assert!(group_by_target(&[4], 4).is_err());
    }
}
