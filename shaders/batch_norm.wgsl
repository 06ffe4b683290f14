// batch_norm.wgsl — batch normalisation over an input viewed as [N, C, S] (f32; S = H·W for
// BatchNorm2d, 1 for BatchNorm1d): per-channel statistics, normalisation, backward.
//
// Memory layout: x[n, c, s] at (n·C + c)·S + s; per-channel vectors (mean, inv_std, var,
// gamma, beta, dgamma, dbeta) are dense [C]. Each channel's statistics run over its
// m = N·S elements; element j < m of channel c is x[(j / S)·C·S + c·S + j % S].
//
// Math:
//   stats      mean_c = Σ x / m,  var_c = Σ (x − mean_c)² / m (biased, two passes: no
//              cancellation), inv_std_c = 1/√(var_c + eps), var_unbiased_c = var_c·m/(m − 1)
//              (what PyTorch folds into running_var).
//   normalize  y = (x − mean_c)·inv_std_c·γ_c + β_c. Training passes the batch mean and
//              inv_std; eval passes running_mean and running_var with `stat_is_var` = 1,
//              and the kernel forms inv_std = 1/√(running_var + eps). A missing γ is 1, β 0.
//   backward   With x̂ = (x − μ)·σ⁻¹ and dx̂ = dy·γ, dβ = Σ dy and dγ = Σ dy·x̂. Training
//              (μ, σ depend on x):
//                dx = σ⁻¹/m · (m·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂)
//              since ∂x̂_i/∂x_j = σ⁻¹(δ_ij − 1/m) − x̂_i·x̂_j·σ⁻¹/m. With Σdx̂ = γ·dβ and
//              Σ dx̂·x̂ = γ·dγ it is computed as
//                dx = (dy − Σdy/m − (x − μ)·k)·σ⁻¹·γ,   k = Σ dy·(x − μ) · σ⁻² / m.
//              Eval (μ, σ constants): dx = dy·γ·σ⁻¹ (k and Σdy/m drop out).
//   update_running  running ← running·keep + batch·momentum (keep = 1 − momentum, from the
//              host), for the mean and the unbiased variance: PyTorch's running statistics.
// stats and backward run one workgroup of 256 per channel (strided loops, tree reductions
// in workgroup memory); normalize runs one invocation per element, update_running one per
// channel.
//
// The sliced rung of stats and backward, for few channels over many values (a workgroup per
// channel would leave most of a large GPU idle): each channel's m values are cut into
// p.slices contiguous ranges, and one workgroup per (channel, range) writes its partial sum at
// [range·C + channel]; a pass per channel adds the partials in range order, so every run gives
// the same bits.
//   stats:    stats_sum_slices (Σ x) → stats_square_slices (Σ (x − mean)², the mean from the
//             partials) → stats_finish_slices (mean, inv_std, var_unbiased)
//   backward: backward_sum_slices (Σ dy, Σ dy·(x − μ)) → backward_finish_slices (dγ, dβ) →
//             backward_dx (one invocation per element; Σ dy = dβ and Σ dy·(x − μ)·σ⁻¹ = dγ)

struct Params {
    n: u32,
    c: u32,
    s: u32,
    eps: f32,
    has_gamma: u32,
    has_beta: u32,
    // 1: the second statistic buffer holds a variance (eval); 0: it holds inv_std.
    stat_is_var: u32,
    // backward: 1 for the training-mode formula, 0 for eval.
    training: u32,
    // update_running: the batch statistics' weight and the running ones'.
    momentum: f32,
    keep: f32,
    // the sliced rung: ranges per channel
    slices: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// stats: x → mean, inv_std, var_unbiased
@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_inv_std: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_var_unbiased: array<f32>;

// normalize: x, mean, stat, gamma, beta → y
@group(0) @binding(1) var<storage, read> nm_x: array<f32>;
@group(0) @binding(2) var<storage, read> nm_mean: array<f32>;
@group(0) @binding(3) var<storage, read> nm_stat: array<f32>;
@group(0) @binding(4) var<storage, read> nm_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> nm_beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> nm_y: array<f32>;

// backward: dy, x, mean, stat, gamma → dx, dgamma, dbeta
@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bw_x: array<f32>;
@group(0) @binding(3) var<storage, read> bw_mean: array<f32>;
@group(0) @binding(4) var<storage, read> bw_stat: array<f32>;
@group(0) @binding(5) var<storage, read> bw_gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> bw_dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> bw_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> bw_dbeta: array<f32>;

// update_running: running mean, running var, batch mean, batch var_unbiased → the new two
@group(0) @binding(1) var<storage, read> ur_running_mean: array<f32>;
@group(0) @binding(2) var<storage, read> ur_running_var: array<f32>;
@group(0) @binding(3) var<storage, read> ur_mean: array<f32>;
@group(0) @binding(4) var<storage, read> ur_var_unbiased: array<f32>;
@group(0) @binding(5) var<storage, read_write> ur_new_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> ur_new_var: array<f32>;

// stats_sum_slices: x → partial sums [slices·C]
@group(0) @binding(1) var<storage, read> ss_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> ss_part: array<f32>;

// stats_square_slices: x, partial sums → partial squared deviations [slices·C]
@group(0) @binding(1) var<storage, read> sq_x: array<f32>;
@group(0) @binding(2) var<storage, read> sq_sum: array<f32>;
@group(0) @binding(3) var<storage, read_write> sq_part: array<f32>;

// stats_finish_slices: partial sums, partial squared deviations → mean, inv_std, var_unbiased
@group(0) @binding(1) var<storage, read> sf_sum: array<f32>;
@group(0) @binding(2) var<storage, read> sf_sq: array<f32>;
@group(0) @binding(3) var<storage, read_write> sf_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> sf_inv_std: array<f32>;
@group(0) @binding(5) var<storage, read_write> sf_var_unbiased: array<f32>;

// backward_sum_slices: dy, x, mean → partials [2·slices·C]: Σ dy, then Σ dy·(x − μ)
@group(0) @binding(1) var<storage, read> bs_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bs_x: array<f32>;
@group(0) @binding(3) var<storage, read> bs_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> bs_part: array<f32>;

// backward_finish_slices: partials, stat → dgamma, dbeta
@group(0) @binding(1) var<storage, read> bf_part: array<f32>;
@group(0) @binding(2) var<storage, read> bf_stat: array<f32>;
@group(0) @binding(3) var<storage, read_write> bf_dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> bf_dbeta: array<f32>;

// backward_dx: dy, x, mean, stat, gamma, dgamma, dbeta → dx
@group(0) @binding(1) var<storage, read> bd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bd_x: array<f32>;
@group(0) @binding(3) var<storage, read> bd_mean: array<f32>;
@group(0) @binding(4) var<storage, read> bd_stat: array<f32>;
@group(0) @binding(5) var<storage, read> bd_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> bd_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> bd_dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> bd_dx: array<f32>;

var<workgroup> red0: array<f32, 256>;
var<workgroup> red1: array<f32, 256>;

// Index of element j (< N·S) of channel ch.
fn at(ch: u32, j: u32) -> u32 {
    return ((j / p.s) * p.c + ch) * p.s + j % p.s;
}

fn inv_std_of(stat: f32) -> f32 {
    if p.stat_is_var != 0u {
        return 1.0 / sqrt(stat + p.eps);
    }
    return stat;
}

// Sums red0 (and red1 when `both`) over the workgroup into slot 0.
fn tree(lid: u32, both: bool) {
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            red0[lid] += red0[lid + half];
            if both {
                red1[lid] += red1[lid + half];
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let ch = workgroup_index(wid, nwg);
    if ch >= p.c {
        return;
    }
    let m = p.n * p.s;
    var s = 0.0;
    for (var j = lid; j < m; j += WG) {
        s += st_x[at(ch, j)];
    }
    red0[lid] = s;
    workgroupBarrier();
    tree(lid, false);
    let mean = red0[0] / f32(m);
    workgroupBarrier(); // all have read red0[0]
    var q = 0.0;
    for (var j = lid; j < m; j += WG) {
        let d = st_x[at(ch, j)] - mean;
        q += d * d;
    }
    red0[lid] = q;
    workgroupBarrier();
    tree(lid, false);
    if lid == 0u {
        let var_b = red0[0] / f32(m);
        st_mean[ch] = mean;
        st_inv_std[ch] = 1.0 / sqrt(var_b + p.eps);
        st_var_unbiased[ch] = red0[0] / f32(m - 1u);
    }
}

@compute @workgroup_size(256)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n * p.c * p.s {
        return;
    }
    let ch = (i / p.s) % p.c;
    var scale = inv_std_of(nm_stat[ch]);
    if p.has_gamma != 0u {
        scale *= nm_gamma[ch];
    }
    var shift = 0.0;
    if p.has_beta != 0u {
        shift = nm_beta[ch];
    }
    nm_y[i] = (nm_x[i] - nm_mean[ch]) * scale + shift;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let ch = workgroup_index(wid, nwg);
    if ch >= p.c {
        return;
    }
    let m = p.n * p.s;
    let mu = bw_mean[ch];
    // Phase 1: Σ dy and Σ dy·(x − μ).
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var j = lid; j < m; j += WG) {
        let k = at(ch, j);
        let g = bw_dy[k];
        s_dy += g;
        s_dyx += g * (bw_x[k] - mu);
    }
    red0[lid] = s_dy;
    red1[lid] = s_dyx;
    workgroupBarrier();
    tree(lid, true);
    let sum_dy = red0[0];
    let sum_dyx = red1[0];
    let inv = inv_std_of(bw_stat[ch]);
    var gamma = 1.0;
    if p.has_gamma != 0u {
        gamma = bw_gamma[ch];
    }
    if lid == 0u {
        bw_dbeta[ch] = sum_dy;
        bw_dgamma[ch] = sum_dyx * inv;
    }
    // Phase 2: dx = (dy − mean_dy − (x − μ)·k)·σ⁻¹·γ.
    var mean_dy = 0.0;
    var k = 0.0;
    if p.training != 0u {
        mean_dy = sum_dy / f32(m);
        k = sum_dyx * inv * inv / f32(m);
    }
    let a = inv * gamma;
    for (var j = lid; j < m; j += WG) {
        let idx = at(ch, j);
        bw_dx[idx] = (bw_dy[idx] - mean_dy - (bw_x[idx] - mu) * k) * a;
    }
}

@compute @workgroup_size(256)
fn update_running(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let ch = linear_id(wid, nwg, lid);
    if ch >= p.c {
        return;
    }
    ur_new_mean[ch] = ur_running_mean[ch] * p.keep + ur_mean[ch] * p.momentum;
    ur_new_var[ch] = ur_running_var[ch] * p.keep + ur_var_unbiased[ch] * p.momentum;
}

// The range [start, end) of a channel's m values that slice r of p.slices covers.
fn slice_range(r: u32) -> vec2<u32> {
    let m = p.n * p.s;
    let len = (m + p.slices - 1u) / p.slices;
    return vec2<u32>(min(r * len, m), min((r + 1u) * len, m));
}

// Σ v over the workgroup (every invocation gets it; call from uniform control flow).
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    red0[lid] = v;
    workgroupBarrier();
    tree(lid, false);
    return red0[0];
}

// The channel's mean from its partial sums, added in range order.
fn mean_of_slices(ch: u32) -> f32 {
    var total = 0.0;
    for (var r = 0u; r < p.slices; r++) {
        total += sq_sum[r * p.c + ch];
    }
    return total / f32(p.n * p.s);
}

@compute @workgroup_size(256)
fn stats_sum_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let g = workgroup_index(wid, nwg);
    if g >= p.c * p.slices {
        return;
    }
    let ch = g % p.c;
    let range = slice_range(g / p.c);
    var s = 0.0;
    for (var j = range.x + lid; j < range.y; j += WG) {
        s += ss_x[at(ch, j)];
    }
    let total = workgroup_sum(lid, s);
    if lid == 0u {
        ss_part[g] = total;
    }
}

@compute @workgroup_size(256)
fn stats_square_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let g = workgroup_index(wid, nwg);
    if g >= p.c * p.slices {
        return;
    }
    let ch = g % p.c;
    let mean = mean_of_slices(ch);
    let range = slice_range(g / p.c);
    var q = 0.0;
    for (var j = range.x + lid; j < range.y; j += WG) {
        let d = sq_x[at(ch, j)] - mean;
        q += d * d;
    }
    let total = workgroup_sum(lid, q);
    if lid == 0u {
        sq_part[g] = total;
    }
}

@compute @workgroup_size(256)
fn stats_finish_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let ch = linear_id(wid, nwg, lid);
    if ch >= p.c {
        return;
    }
    let m = p.n * p.s;
    var total = 0.0;
    var q = 0.0;
    for (var r = 0u; r < p.slices; r++) {
        total += sf_sum[r * p.c + ch];
        q += sf_sq[r * p.c + ch];
    }
    sf_mean[ch] = total / f32(m);
    sf_inv_std[ch] = 1.0 / sqrt(q / f32(m) + p.eps);
    sf_var_unbiased[ch] = q / f32(m - 1u);
}

@compute @workgroup_size(256)
fn backward_sum_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let g = workgroup_index(wid, nwg);
    if g >= p.c * p.slices {
        return;
    }
    let ch = g % p.c;
    let mu = bs_mean[ch];
    let range = slice_range(g / p.c);
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var j = range.x + lid; j < range.y; j += WG) {
        let k = at(ch, j);
        let dy = bs_dy[k];
        s_dy += dy;
        s_dyx += dy * (bs_x[k] - mu);
    }
    red0[lid] = s_dy;
    red1[lid] = s_dyx;
    workgroupBarrier();
    tree(lid, true);
    if lid == 0u {
        bs_part[g] = red0[0];
        bs_part[p.slices * p.c + g] = red1[0];
    }
}

@compute @workgroup_size(256)
fn backward_finish_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let ch = linear_id(wid, nwg, lid);
    if ch >= p.c {
        return;
    }
    var sum_dy = 0.0;
    var sum_dyx = 0.0;
    for (var r = 0u; r < p.slices; r++) {
        sum_dy += bf_part[r * p.c + ch];
        sum_dyx += bf_part[(p.slices + r) * p.c + ch];
    }
    bf_dbeta[ch] = sum_dy;
    bf_dgamma[ch] = sum_dyx * inv_std_of(bf_stat[ch]);
}

@compute @workgroup_size(256)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n * p.c * p.s {
        return;
    }
    let ch = (i / p.s) % p.c;
    let inv = inv_std_of(bd_stat[ch]);
    var gamma = 1.0;
    if p.has_gamma != 0u {
        gamma = bd_gamma[ch];
    }
    var mean_dy = 0.0;
    var k = 0.0;
    if p.training != 0u {
        let m = f32(p.n * p.s);
        mean_dy = bd_dbeta[ch] / m;
        // Σ dy·(x − μ)·σ⁻² / m, with dγ = Σ dy·(x − μ)·σ⁻¹
        k = bd_dgamma[ch] * inv / m;
    }
    bd_dx[i] = (bd_dy[i] - mean_dy - (bd_x[i] - bd_mean[ch]) * k) * inv * gamma;
}
