// (workgroup_reduce.wgsl, prepended, has WG, `partial`, row_of and workgroup_sum.)
//
// Spectral normalisation of a weight W viewed as a [rows, cols] matrix (PyTorch's
// spectral_norm, dim 0, eps 1e-12) and its backward with u, v held constant.
//
// Forward, when iterating: sn_wtu (v = Wᵀu, one thread per column, rows summed in order),
// sn_normalize on v (one workgroup), sn_wv (t = W v, one workgroup per row, written to the
// first `rows` values of w_sn as scratch), sn_sigma (one workgroup: u ← t / max(‖t‖, eps) when
// iterating, then σ = Σ_r u[r]·t[r]), sn_scale (w_sn = W / σ, one thread per value).
// Backward: sn_row_dot (dw[r] = Σ_c g[r, c]·w_sn[r, c], one workgroup per row), sn_sum_rows
// (dw[0] = Σ_r dw[r], one workgroup), then sn_backward twice: every value but the first
// (reading the dot from dw[0]), then the first alone. Every sum has a fixed order: no float
// atomics, so results are deterministic. Workgroups past the last row still reach the
// barriers, which every thread of a workgroup must.

struct SnParams {
    rows: u32,
    cols: u32,
    // sn_sigma: 1 to normalise u first. sn_backward: the first element index written.
    flag: u32,
    // sn_normalize: the vector's length. sn_backward, sn_scale: values in the matrix.
    n: u32,
}

var<immediate> p: SnParams;

// W in the forward, g in the backward.
@group(0) @binding(0) var<storage, read> mat: array<f32>;
@group(0) @binding(1) var<storage, read> u_in: array<f32>;
@group(0) @binding(2) var<storage, read> v_in: array<f32>;
@group(0) @binding(3) var<storage, read> sigma_in: array<f32>;
// w_sn: the scratch t in sn_sigma, w_sn itself in sn_row_dot.
@group(0) @binding(4) var<storage, read> other: array<f32>;
// v in sn_wtu; the vector normalised in sn_normalize.
@group(0) @binding(5) var<storage, read_write> vec_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> u_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> sigma_out: array<f32>;
// w_sn in the forward (scratch t, then W / σ); dw in the backward.
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

const EPS: f32 = 1e-12;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    // The grid is 2D when there are more than 65535 workgroups.
    return gid.x + gid.y * nwg.x * WG;
}

// vec_out[c] = Σ_r W[r, c]·u[r], rows in order.
@compute @workgroup_size(256)
fn sn_wtu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = index(gid, nwg);
    if c >= p.cols {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        acc += mat[r * p.cols + c] * u_in[r];
    }
    vec_out[c] = acc;
}

// vec_out[..n] /= max(‖vec_out[..n]‖₂, eps), one workgroup.
@compute @workgroup_size(256)
fn sn_normalize(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let x = vec_out[i];
        acc += x * x;
    }
    let norm = max(sqrt(workgroup_sum(lid, acc)), EPS);
    for (var i = lid; i < p.n; i += WG) {
        vec_out[i] = vec_out[i] / norm;
    }
}

// out[r] = Σ_c W[r, c]·v[c], one workgroup per row.
@compute @workgroup_size(256)
fn sn_wv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_of(wid, nwg);
    let live = row < p.rows;
    let base = row * p.cols;
    var acc = 0.0;
    for (var c = lid; live && c < p.cols; c += WG) {
        acc += mat[base + c] * v_in[c];
    }
    let total = workgroup_sum(lid, acc);
    if live && lid == 0u {
        out[row] = total;
    }
}

// t = other[..rows] (W v). When flag: u ← t / max(‖t‖, eps). Then σ = Σ_r u[r]·t[r].
@compute @workgroup_size(256)
fn sn_sigma(@builtin(local_invocation_index) lid: u32) {
    if p.flag != 0u {
        var acc = 0.0;
        for (var r = lid; r < p.rows; r += WG) {
            let t = other[r];
            acc += t * t;
        }
        let norm = max(sqrt(workgroup_sum(lid, acc)), EPS);
        for (var r = lid; r < p.rows; r += WG) {
            u_out[r] = other[r] / norm;
        }
    }
    // Each thread reads back only the u values it wrote itself.
    var acc = 0.0;
    for (var r = lid; r < p.rows; r += WG) {
        acc += u_out[r] * other[r];
    }
    let sigma = workgroup_sum(lid, acc);
    if lid == 0u {
        sigma_out[0] = sigma;
    }
}

// out = W / σ
@compute @workgroup_size(256)
fn sn_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        out[i] = mat[i] / sigma_in[0];
    }
}

// out[r] = Σ_c g[r, c]·w_sn[r, c], one workgroup per row.
@compute @workgroup_size(256)
fn sn_row_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_of(wid, nwg);
    let live = row < p.rows;
    let base = row * p.cols;
    var acc = 0.0;
    for (var c = lid; live && c < p.cols; c += WG) {
        acc += mat[base + c] * other[base + c];
    }
    let total = workgroup_sum(lid, acc);
    if live && lid == 0u {
        out[row] = total;
    }
}

// out[0] = Σ_r out[r], one workgroup (the sum is complete before thread 0 writes).
@compute @workgroup_size(256)
fn sn_sum_rows(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var r = lid; r < p.rows; r += WG) {
        acc += out[r];
    }
    let total = workgroup_sum(lid, acc);
    if lid == 0u {
        out[0] = total;
    }
}

// out[i] = (g[i] − d·u[r]·v[c]) / σ for i in [flag, n), d = ⟨g, w_sn⟩ read from out[0]:
// dispatched once from 1 (out[0] untouched) and then for element 0 alone.
@compute @workgroup_size(256)
fn sn_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = p.flag + index(gid, nwg);
    if i < p.n {
        let r = i / p.cols;
        let c = i - r * p.cols;
        out[i] = (mat[i] - out[0] * u_in[r] * v_in[c]) / sigma_in[0];
    }
}
