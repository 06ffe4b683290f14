// grid.wgsl — the launch grid the kernels share, and two helpers (`is_nan`, `activate`), defined
// once; the pipeline cache compiles it in front of every shader (`Shader::compiled_source`), so a
// compiler message's line numbers count from this file's first line. A 1-D launch may hold more
// workgroups than one dimension allows (65,535): the host splits it over x and y
// (`Context::grid_1d`) and the kernels read their place back as one number.

// Invocations per workgroup, for the kernels of one invocation per element.
const WG: u32 = 256u;

// The workgroup's place in the 1-D grid (kernels of a workgroup per channel, row or slice).
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The invocation's place in the same grid: for the kernels that run one per element.
fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return workgroup_index(wid, nwg) * WG + lid;
}

// True for every NaN, tested on the bits: a compiler may fold `x != x` to false.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// A product's epilogue activation: `relu` 1 is the element-wise table's ReLU (NaN passes), 0 none.
fn activate(v: f32, relu: u32) -> f32 {
    return select(v, 0.0, relu == 1u && !(v > 0.0) && !is_nan(v));
}
