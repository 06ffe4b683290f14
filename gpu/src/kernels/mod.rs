//! Typed launchers, one file per shader family in `shaders/`. Each file holds the family's
//! `#[repr(C)]` `Params` struct (mirroring the WGSL `struct Params`), its `KernelDef`s and
//! launch functions taking typed argument structs.

pub mod adam;
pub mod batch_norm;
pub mod conv2d;
pub mod elementwise;
pub mod index;
pub mod interpolate;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod winograd;

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};

/// Threads per workgroup of every 1-D kernel (a multiple of every vendor's SIMD width).
pub const WG: u64 = 256;

/// Whether the sliced forms of the long sums pay on this adapter (a reduction's rows cut into
/// slices, a bias gradient through the reductions, batch norm's channels cut into ranges: more
/// workgroups, each with its own barriers). They exist to fill the many multiprocessors of a
/// hardware GPU; a software adapter runs as many workgroups at once as it has cores, which a
/// workgroup per output already fills, and pays for every workgroup's barriers: on lavapipe
/// (2 cores) B1's sliced bias gradients took four times the plain kernel's 30 ms a step.
pub fn slices_pay(ctx: &Context) -> bool {
    !ctx.is_software()
}

/// Whether a kernel overwrites its output or adds to it (gradients accumulate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// out = result.
    Overwrite,
    /// out += result.
    Accumulate,
}

/// The output tile of the tiled GEMMs (`matmul.wgsl`, and the 64-row-or-more GEMMs of
/// `conv2d.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmTile {
    /// 64×64 per workgroup, 4×4 per invocation: many workgroups on small products.
    Square64,
    /// 128×128 per workgroup, 8×8 per invocation, double-buffered k-steps: half the
    /// workgroup-memory loads per multiply-add, a quarter as many workgroups.
    Wide128,
}

impl GemmTile {
    /// Side of the square tile.
    pub fn side(self) -> usize {
        match self {
            GemmTile::Square64 => 64,
            GemmTile::Wide128 => 128,
        }
    }

    /// The tile for `layers` GEMMs of [m, n] outputs (batch entries or K slices): the size
    /// rule's ([`GemmTile::by_size`]), unless the context forces one
    /// ([`Context::with_gemm_tile`]) or times both ([`Context::enable_tuning`]).
    pub fn for_gemm(ctx: &Context, m: usize, n: usize, layers: usize) -> Self {
        if let Some(tile) = ctx.forced_gemm_tile() {
            return tile;
        }
        let rule = Self::by_size(m, n, layers);
        if let Some(tuner) = ctx.tuner() {
            let time = crate::tuning::time_gemm_tiles(ctx, m, n, layers);
            match tuner.gemm_tile(m, n, layers, rule, time) {
                Ok(tile) => return tile,
                Err(e) => eprintln!("warning: timing the GEMM tiles failed ({e}); using the size rule"),
            }
        }
        rule
    }

    /// The size rule: the wide tile when M fills more than one square tile's rows and the wide
    /// tiles still make at least [`WIDE_MIN_WORKGROUPS`] workgroups.
    pub fn by_size(m: usize, n: usize, layers: usize) -> Self {
        let wide_groups = layers * m.div_ceil(128) * n.div_ceil(128);
        if m > 64 && wide_groups >= WIDE_MIN_WORKGROUPS {
            GemmTile::Wide128
        } else {
            GemmTile::Square64
        }
    }
}

/// Workgroups of the 128×128 tile a GEMM must fill before [`GemmTile::for_gemm`] picks it. On
/// an H100 (132 multiprocessors) the wide tile is ahead from 64 workgroups on (matmul 1024³:
/// 9.6 against 8.4 TFLOP/s, docs/notebooks/performance.md); below that the square tile's four times as
/// many workgroups keep more of the GPU busy.
pub const WIDE_MIN_WORKGROUPS: usize = 64;

/// Checks that `buf` holds at least `need` elements.
pub(crate) fn need(kernel: &'static str, what: &str, buf: &GpuBuffer, need: usize) -> Result<()> {
    if buf.len() < need {
        return Err(invalid(kernel, format!("{what} needs {need} elements, its buffer holds {}", buf.len())));
    }
    Ok(())
}

/// The most elements an element-wise launch over flat buffers (fill, the optimizers) binds per
/// buffer: one binding, rounded down to the window alignment so that every window after the
/// first starts aligned.
pub(crate) fn window_len(ctx: &Context) -> usize {
    ctx.max_binding_len() / ctx.window_alignment() * ctx.window_alignment()
}

/// (start, len) of the windows of [`window_len`] that cover `n` elements.
pub(crate) fn windows(ctx: &Context, n: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = window_len(ctx);
    (0..n).step_by(step).map(move |start| (start, step.min(n - start)))
}

/// Test helpers shared by the family modules: parse and validate a shader with naga (no
/// GPU needed) and measure a WGSL struct's size under uniform-buffer layout rules.
#[cfg(test)]
pub(crate) mod wgsl_check {
    use wgpu::naga;

    /// Parses and validates `src`, panicking with naga's message on error.
    pub fn module(name: &str, src: &str) -> naga::Module {
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        module
    }

    /// Size in bytes of the struct named `ty` in `src`.
    pub fn struct_size(name: &str, src: &str, ty: &str) -> u32 {
        let module = module(name, src);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(ty))
            .unwrap_or_else(|| panic!("{name} has no struct {ty}"));
        layouter[handle].size
    }
}

/// Every launcher's `Params` struct is the size its shader's `struct` has under the uniform
/// layout rules: a field added on one side only would shift every field after it.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline_cache::Shader;
    use std::mem::size_of;

    #[test]
    fn every_params_struct_has_its_shaders_size() {
        let structs: [(&Shader, &str, usize); 12] = [
            (&adam::SHADER, "AdamParams", size_of::<adam::AdamParams>()),
            (&adam::SHADER, "SgdParams", size_of::<adam::SgdParams>()),
            (&batch_norm::SHADER, "Params", size_of::<batch_norm::Params>()),
            (&conv2d::SHADER, "Params", size_of::<conv2d::Params>()),
            (&elementwise::STRIDED, "Params", size_of::<elementwise::Params>()),
            (&index::SHADER, "Params", size_of::<index::Params>()),
            (&interpolate::SHADER, "Params", size_of::<interpolate::Params>()),
            (&matmul::SHADER, "Params", size_of::<matmul::Params>()),
            (&reduce::SHADER, "FlagParams", size_of::<reduce::FlagParams>()),
            (&pool::SHADER, "Params", size_of::<pool::Params>()),
            (&reduce::SHADER, "Params", size_of::<reduce::Params>()),
            (&winograd::SHADER, "Params", size_of::<winograd::Params>()),
        ];
        for (shader, ty, size) in structs {
            assert_eq!(
                size as u32,
                wgsl_check::struct_size(shader.name, &shader.compiled_source(), ty),
                "{} {ty}",
                shader.name
            );
        }
    }
}
