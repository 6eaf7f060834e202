// Per-row work on a [rows, cols] matrix (workgroup_reduce.wgsl, prepended, has WG, `partial`,
// row_of and workgroup_sum): reductions (sum, log-sum-exp, softmax) and the
// column gather and scatter of a classifier head; plus the per-channel sum of a
// [batch, channels, pixels] tensor, a reduction of the same shape with a stride.
//
// The reductions run one workgroup per row (or channel): each thread sums a strided slice
// in a fixed order, then a tree in workgroup memory adds the 256 partial sums. The order
// is fixed, so results are deterministic (no float atomics), and a row of 10⁵ values is
// read by 256 threads with coalesced loads instead of one thread looping over all of it.
// Workgroups past the last row (the tail of a 2D grid) compute nothing and store nothing;
// they still reach the barriers, which every thread of a workgroup must.

struct RowParams {
    // Rows of the matrix; channels for channel_sum.
    rows: u32,
    // Row length; batch · pixels (the values summed per channel) for channel_sum.
    cols: u32,
    // Values per channel and sample (channel_sum only).
    pixels: u32,
    alpha: f32,
}

var<immediate> p: RowParams;

// row_sum, row_logsumexp, row_softmax, channel_sum: src → dst.
// gather_cols: src = x, index → dst = y. scatter_cols: src = dy, index → dst = dx.
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> index: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// The most negative finite f32: the identity of max that needs no infinity literal. A row
// of −∞ still gives −∞ (log of a zero sum).
const LOWEST: f32 = -3.40282347e38;

// Tree maximum of every thread's `v`, returned to all threads.
fn workgroup_max(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] = max(partial[lid], partial[lid + half]);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// The row's maximum m and Σ exp(x − m), for log-sum-exp and softmax.
fn row_max_and_sum(row: u32, live: bool, lid: u32) -> vec2<f32> {
    let base = row * p.cols;
    var m = LOWEST;
    for (var c = lid; live && c < p.cols; c += WG) {
        m = max(m, src[base + c]);
    }
    m = workgroup_max(lid, m);
    var s = 0.0;
    for (var c = lid; live && c < p.cols; c += WG) {
        s += exp(src[base + c] - m);
    }
    s = workgroup_sum(lid, s);
    return vec2<f32>(m, s);
}

// y[r] = α·Σ_c x[r, c]
@compute @workgroup_size(256)
fn row_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_of(wid, nwg);
    let live = row < p.rows;
    let base = row * p.cols;
    var acc = 0.0;
    for (var c = lid; live && c < p.cols; c += WG) {
        acc += src[base + c];
    }
    let total = workgroup_sum(lid, acc);
    if live && lid == 0u {
        dst[row] = p.alpha * total;
    }
}

// y[r] = m + log Σ_c exp(x[r, c] − m), m the row's maximum: no exp ever overflows.
@compute @workgroup_size(256)
fn row_logsumexp(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_of(wid, nwg);
    let live = row < p.rows;
    let ms = row_max_and_sum(row, live, lid);
    if live && lid == 0u {
        dst[row] = ms.x + log(ms.y);
    }
}

// y[r, c] = exp(x[r, c] − m) / Σ_c' exp(x[r, c'] − m)
@compute @workgroup_size(256)
fn row_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_of(wid, nwg);
    let live = row < p.rows;
    let ms = row_max_and_sum(row, live, lid);
    let base = row * p.cols;
    for (var c = lid; live && c < p.cols; c += WG) {
        dst[base + c] = exp(src[base + c] - ms.x) / ms.y;
    }
}

// db[c] = Σ_n Σ_q dy[n, c, q]: one workgroup per channel, its threads striding over the
// batch · pixels values of that channel (long for a conv layer's bias, one per sample for
// a dense one's).
@compute @workgroup_size(256)
fn channel_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let channel = row_of(wid, nwg);
    let live = channel < p.rows;
    var acc = 0.0;
    for (var j = lid; live && j < p.cols; j += WG) {
        let n = j / p.pixels;
        let q = j - n * p.pixels;
        acc += src[(n * p.rows + channel) * p.pixels + q];
    }
    let total = workgroup_sum(lid, acc);
    if live && lid == 0u {
        dst[channel] = total;
    }
}

// The column an index names: `index[r]` must be an exact integer in [0, cols).
fn named_column(k: f32) -> bool {
    return k >= 0.0 && k < f32(p.cols) && floor(k) == k;
}

// y[r] = x[r, index[r]]; NaN for an index that names no column, so that the health check
// (flag_non_finite) catches a bad label instead of a silently wrong loss.
@compute @workgroup_size(256)
fn gather_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * WG;
    if r >= p.rows {
        return;
    }
    let k = index[r];
    // Clamped so that even a bad index reads inside x (the value is then not used); with 0
    // columns, element 0 of the (never empty) buffer.
    let c = select(0u, min(u32(max(k, 0.0)), p.cols - 1u), p.cols > 0u);
    let nan = bitcast<f32>(0x7fc00000u | (r & 0u));
    dst[r] = select(nan, src[r * p.cols + c], named_column(k));
}

// dx[r, c] = α·dy[r] where c == index[r], else 0: one thread per element of dx, so every
// value is written and no two threads write the same one.
@compute @workgroup_size(256)
fn scatter_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.rows * p.cols {
        return;
    }
    let r = i / p.cols;
    let c = i - r * p.cols;
    dst[i] = select(0.0, p.alpha * src[r], f32(c) == index[r]);
}
