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

// ---- tanh, sigmoid, softplus. Built on e^(−|x|) or e^(−2|x|), which lie in (0, 1]: nothing
// overflows, and the tails keep their relative accuracy (1 − tanh² or 1 − σ would cancel to
// 0 long before the true value underflows). The same formulas as src/backend/cpu/activation.rs.

// Below this |x| tanh is its odd Taylor series: (1 − e)/(1 + e) would cancel there.
const TANH_SERIES: f32 = 0.3;
// PyTorch's softplus threshold (β = 1): above it softplus(x) = x.
const SOFTPLUS_THRESHOLD: f32 = 20.0;

fn tanh_stable(v: f32) -> f32 {
    let a = abs(v);
    // x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835; the next term is < 2e-8 relative.
    let x2 = v * v;
    var s = 0.021869488;
    s = s * x2 - 0.053968254;
    s = s * x2 + 0.13333334;
    s = s * x2 - 0.33333334;
    let series = s * x2 * v + v;
    let e = exp(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    return select(select(t, -t, v < 0.0), series, a < TANH_SERIES);
}

// 1 − tanh², as 4e/(1 + e)² past the series range.
fn tanh_derivative(v: f32) -> f32 {
    let t = tanh_stable(v);
    let e = exp(-2.0 * abs(v));
    let d = 1.0 + e;
    return select(4.0 * e / (d * d), 1.0 - t * t, abs(v) < TANH_SERIES);
}

// σ(x): 1/(1 + e) for x ≥ 0, e/(1 + e) below, e = e^(−|x|).
fn sigmoid_stable(v: f32) -> f32 {
    let e = exp(-abs(v));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, v >= 0.0);
}

// σ(x)·σ(−x) = e/(1 + e)².
fn sigmoid_derivative(v: f32) -> f32 {
    let e = exp(-abs(v));
    let r = 1.0 / (1.0 + e);
    return e * r * r;
}

// ln(1 + t) for t in [0, 1]: the series t − t²/2 + … − t⁸/8 below 0.1, where 1 + t would
// round away t's digits; log elsewhere.
fn log1p_unit(t: f32) -> f32 {
    var s = -0.125;
    s = s * t + 0.14285715;
    s = s * t - 0.16666667;
    s = s * t + 0.2;
    s = s * t - 0.25;
    s = s * t + 0.33333334;
    s = s * t - 0.5;
    s = s * t + 1.0;
    return select(log(1.0 + t), s * t, t < 0.1);
}

fn softplus(v: f32) -> f32 {
    return select(max(v, 0.0) + log1p_unit(exp(-abs(v))), v, v > SOFTPLUS_THRESHOLD);
}

@compute @workgroup_size(256)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = tanh_stable(x[i]);
    }
}

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = sigmoid_stable(x[i]);
    }
}

@compute @workgroup_size(256)
fn softplus_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        y[i] = softplus(x[i]);
    }
}

@compute @workgroup_size(256)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        dx[i] = tanh_derivative(x[i]) * dy[i];
    }
}

@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        dx[i] = sigmoid_derivative(x[i]) * dy[i];
    }
}

@compute @workgroup_size(256)
fn softplus_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        let v = x[i];
        // d/dx softplus = σ(x), 1 above the threshold.
        dx[i] = select(sigmoid_stable(v), 1.0, v > SOFTPLUS_THRESHOLD) * dy[i];
    }
}

// ---- square: y = x², dy/dx = 2x (PyTorch's torch.square).

@compute @workgroup_size(256)
fn square_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        let v = x[i];
        y[i] = v * v;
    }
}

@compute @workgroup_size(256)
fn square_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.n {
        dx[i] = 2.0 * x[i] * dy[i];
    }
}
