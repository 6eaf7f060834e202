// Pointwise nonlinearities: forward y = act(x), backward dx = act'(x)·dy.
// One entry point per activation and direction, so no kernel branches on the kind.

struct ActParams {
    n: u32,
    // LeakyReLU's negative slope (unused by the others).
    slope: f32,
}

var<immediate> p: ActParams;

@group(0) @binding(0) var<storage, read> x: array<f32>;
// Forward uses bindings 0 (x) and 1 (y); backward uses 0 (x), 2 (dy) and 3 (dx).
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    // The grid is 2D when there are more than 65535 workgroups.
    return gid.x + gid.y * nwg.x * WG;
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

@compute @workgroup_size(256)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(256)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        let v = x[i];
        y[i] = select(p.slope * v, v, v > 0.0);
    }
}

@compute @workgroup_size(256)
fn silu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        let v = x[i];
        y[i] = v * sigmoid(v);
    }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        dx[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}

@compute @workgroup_size(256)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        dx[i] = select(p.slope, 1.0, x[i] > 0.0) * dy[i];
    }
}

@compute @workgroup_size(256)
fn silu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        let v = x[i];
        let s = sigmoid(v);
        // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x)))
        dx[i] = s * (1.0 + v * (1.0 - s)) * dy[i];
    }
}
