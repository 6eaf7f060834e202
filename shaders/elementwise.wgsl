// Elementwise arithmetic for residual nets and classifier heads: sums, scalings and
// broadcasts of a per-row or per-channel scalar. One thread per element written, so no
// kernel reads what another writes; the grid is 2D past 65535 workgroups.

struct EltParams {
    // Elements written.
    n: u32,
    // Row length (broadcast_rows, scale_rows) or pixels per channel (channel_bias_add).
    cols: u32,
    // Channels (channel_bias_add).
    channels: u32,
    alpha: f32,
}

var<immediate> p: EltParams;

// add: a, b → y. axpy: a = x, y += α·x. scale: y *= α. broadcast_rows: a = s.
// scale_rows: a = x, b = s. channel_bias_add: a = bias, y += bias.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    // The grid is 2D when there are more than 65535 workgroups.
    return gid.x + gid.y * nwg.x * WG;
}

// y = a + b
@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = a[i] + b[i];
    }
}

// y += α·x
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = y[i] + p.alpha * a[i];
    }
}

// y *= α
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = p.alpha * y[i];
    }
}

// y[r, c] = α·s[r]
@compute @workgroup_size(256)
fn broadcast_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = p.alpha * a[i / p.cols];
    }
}

// y[r, c] = α·x[r, c]·s[r]
@compute @workgroup_size(256)
fn scale_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = p.alpha * a[i] * b[i / p.cols];
    }
}

// y[n, c, p] += bias[c]
@compute @workgroup_size(256)
fn channel_bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = y[i] + a[(i / p.cols) % p.channels];
    }
}
