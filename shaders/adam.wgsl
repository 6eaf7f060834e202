// One Adam step (PyTorch semantics) on a flat parameter tensor, in place.
// With global-norm clipping the gradient is first scaled by min(1, c / (‖g‖ + 1e-6)), where
// ‖g‖² is the sum of norms[0..norm_slots] written by reduce.wgsl's sum_squares. Every thread
// recomputes that scale from the few slots: cheaper than another dispatch and a barrier.

struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    // 1 − β₁ᵗ and 1 − β₂ᵗ, computed on the host.
    bias_correction1: f32,
    bias_correction2: f32,
    max_grad_norm: f32,
    has_clip: u32,
    norm_slots: u32,
}

var<immediate> p: AdamParams;

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> norms: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn adam_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.n {
        return;
    }
    var scale = 1.0;
    if p.has_clip != 0u {
        // Summed in slot order, as the CPU twin does.
        var sq = 0.0;
        for (var s = 0u; s < p.norm_slots; s++) {
            sq += norms[s];
        }
        scale = min(p.max_grad_norm / (sqrt(sq) + 1e-6), 1.0);
    }
    let g = grad[i] * scale;
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let m_hat = mi / p.bias_correction1;
    let v_hat = vi / p.bias_correction2;
    param[i] -= p.lr * m_hat / (sqrt(v_hat) + p.eps);
}
