// grid.wgsl — the launch grid the kernels share, defined once. The pipeline cache compiles it
// in front of every shader (`Shader::compiled_source`), so a compiler message's line numbers
// count from this file's first line.
//
// A 1-D launch may hold more workgroups than one dimension allows (65,535), so the host splits
// it over x and y (`Context::grid_1d`); the kernels read their place back as one number.

// Invocations per workgroup, for the kernels of one invocation per element.
const WG: u32 = 256u;

// The workgroup's place in the 1-D grid: for the kernels that run a workgroup per channel,
// per row or per slice.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The invocation's place in the same grid: for the kernels that run one per element.
fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * WG + lid;
}
