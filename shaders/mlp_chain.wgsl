// A whole K-step Langevin chain of an MLP energy in one dispatch:
//   E(x) = W_L·act(…act(W_1·x + b_1)…) + b_L,  last width 1,
//   x ← clamp(x − step·clip(∇ₓE) + noise·ξ, lo, hi)   K times,
// with ξ exactly as in langevin.wgsl (counter (e / 4, chain_offset + chain, global_step + k, 0)).
//
// Layer by layer, every step costs ~2·layers dispatches and a round trip of every activation
// through device memory. Here a workgroup owns `p.chains` chains (8, or 4) for all K steps:
// their inputs, pre-activations and gradients live in workgroup memory, and only the weights
// (a few hundred KB at most, shared by all workgroups, so cache-resident) are read from
// device memory. Thread t owns output unit t of a layer (and t + WG, … for wider layers) for
// all the workgroup's chains at once: each weight read feeds 8 (or 4) multiply-adds. With 4
// chains a workgroup, a batch gets twice the workgroups: more of a large GPU's cores busy
// when the batch is small for it (1024 chains are 128 workgroups of 8).
//
// Workgroup memory layout: one array of vec4s, each holding one unit of 4 chains; unit i of
// a region is at region + i·2 (chains 0–3) and region + i·2 + 1 (chains 4–7, when the
// workgroup has 8).
// rng.wgsl is prepended to this file.

struct MlpChainParams {
    // Layer widths: input, hidden…, 1 (widths[0..layers + 1]).
    widths_lo: vec4<u32>,
    widths_hi: vec4<u32>,
    rows: u32,
    // Linear layers L; hidden layers L − 1.
    layers: u32,
    // Activation of hidden layer l in bits 4l..4l+3: 0 ReLU, 1 LeakyReLU, 2 SiLU, 3 tanh,
    // 4 sigmoid, 5 softplus, 6 square.
    activations: u32,
    slope: f32,
    steps: u32,
    step: f32,
    noise: f32,
    clip: f32,
    has_clip: u32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
    // MALA only: 1/T, and 1/(4ε) (the proposal densities' scale). For MALA `step` is the
    // drift ε/T and `noise` is √(2ε); `lo`, `hi` bound the box outside which a proposal is
    // rejected (no clamp).
    inv_temp: f32,
    mh_scale: f32,
    // Chains per workgroup: 8 (two vec4s per unit) or 4 (one; twice the workgroups, each
    // thread half the arithmetic). The sums per chain are the same either way, so are the
    // bits. MALA always takes 8.
    chains: u32,
}

var<immediate> p: MlpChainParams;

// The packed parameters [W_1, b_1, …, W_L, b_L] (PyTorch layout) and the chains [rows, dim].
@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// MALA only: the chains' ∇ₓE and E at x (read at the start, written at the end), and the
// per-chain acceptance statistics [rows accepted; rows Σ min(1, α)] (accumulated).
@group(0) @binding(2) var<storage, read_write> grad_state: array<f32>;
@group(0) @binding(3) var<storage, read_write> energy_state: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

const WG: u32 = 128u;
// The most chains per workgroup (two vec4s per unit; `p.chains` may ask for 4), and the
// limits the host checks before dispatch.
const CHAINS: u32 = 8u;
const MAX_WIDTH: u32 = 128u;
const MAX_HIDDEN: u32 = 4u;

const REGION: u32 = 256u; // MAX_WIDTH · 2 vec4s
const XS: u32 = 0u;
const BUF0: u32 = 256u;
const BUF1: u32 = 512u;
const PRE: u32 = 768u; // + l · REGION for hidden layer l

var<workgroup> mem: array<vec4<f32>, 1792>; // 28 KiB: XS, BUF0, BUF1, 4 × PRE
// The chains' energies, 4 chains a vec4: [0, 1] at x, [2, 3] at MALA's proposal x'.
var<workgroup> energies: array<vec4<f32>, 4>;
// MALA: whether chain c took its proposal at this step.
var<workgroup> accepted: array<u32, 8>;

fn width(i: u32) -> u32 {
    if i < 4u {
        return p.widths_lo[i];
    }
    return p.widths_hi[i - 4u];
}

// Offset of W_l in `params`; b_l follows it.
fn weight_offset(l: u32) -> u32 {
    var off = 0u;
    for (var j = 0u; j < l; j++) {
        off += width(j) * width(j + 1u) + width(j + 1u);
    }
    return off;
}

fn activation_code(l: u32) -> u32 {
    return (p.activations >> (4u * l)) & 0xFu;
}

fn sigmoid(z: vec4<f32>) -> vec4<f32> {
    return 1.0 / (1.0 + exp(-z));
}

// tanh, sigmoid and softplus exactly as in activation.wgsl (see there), four lanes at a
// time: built on e^(−|z|) or e^(−2|z|) ≤ 1, so nothing overflows and the tails keep their
// digits.
const TANH_SERIES: f32 = 0.3;
const SOFTPLUS_THRESHOLD: f32 = 20.0;

fn tanh4(z: vec4<f32>) -> vec4<f32> {
    let a = abs(z);
    let x2 = z * z;
    var s = vec4<f32>(0.021869488);
    s = s * x2 - 0.053968254;
    s = s * x2 + 0.13333334;
    s = s * x2 - 0.33333334;
    let series = s * x2 * z + z;
    let e = exp(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    return select(select(t, -t, z < vec4<f32>(0.0)), series, a < vec4<f32>(TANH_SERIES));
}

fn tanh4_derivative(z: vec4<f32>) -> vec4<f32> {
    let t = tanh4(z);
    let e = exp(-2.0 * abs(z));
    let d = 1.0 + e;
    return select(4.0 * e / (d * d), 1.0 - t * t, abs(z) < vec4<f32>(TANH_SERIES));
}

fn sigmoid4_stable(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(z));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, z >= vec4<f32>(0.0));
}

fn sigmoid4_derivative(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(z));
    let r = 1.0 / (1.0 + e);
    return e * r * r;
}

fn log1p4_unit(t: vec4<f32>) -> vec4<f32> {
    var s = vec4<f32>(-0.125);
    s = s * t + 0.14285715;
    s = s * t - 0.16666667;
    s = s * t + 0.2;
    s = s * t - 0.25;
    s = s * t + 0.33333334;
    s = s * t - 0.5;
    s = s * t + 1.0;
    return select(log(1.0 + t), s * t, t < vec4<f32>(0.1));
}

fn softplus4(z: vec4<f32>) -> vec4<f32> {
    let above = z > vec4<f32>(SOFTPLUS_THRESHOLD);
    return select(max(z, vec4<f32>(0.0)) + log1p4_unit(exp(-abs(z))), z, above);
}

// Activation codes: 0 ReLU, 1 leaky ReLU, 2 SiLU (the default), 3 tanh, 4 sigmoid,
// 5 softplus, 6 square.
fn act(code: u32, z: vec4<f32>) -> vec4<f32> {
    switch code {
        case 0u: { return max(z, vec4<f32>(0.0)); }
        case 1u: { return select(p.slope * z, z, z > vec4<f32>(0.0)); }
        case 3u: { return tanh4(z); }
        case 4u: { return sigmoid4_stable(z); }
        case 5u: { return softplus4(z); }
        case 6u: { return z * z; }
        default: { return z * sigmoid(z); }
    }
}

fn act_derivative(code: u32, z: vec4<f32>) -> vec4<f32> {
    switch code {
        case 0u: { return select(vec4<f32>(0.0), vec4<f32>(1.0), z > vec4<f32>(0.0)); }
        case 1u: { return select(vec4<f32>(p.slope), vec4<f32>(1.0), z > vec4<f32>(0.0)); }
        case 3u: { return tanh4_derivative(z); }
        case 4u: { return sigmoid4_derivative(z); }
        case 5u: {
            let above = z > vec4<f32>(SOFTPLUS_THRESHOLD);
            return select(sigmoid4_stable(z), vec4<f32>(1.0), above);
        }
        case 6u: { return 2.0 * z; }
        default: {
            let s = sigmoid(z);
            return s * (1.0 + z * (1.0 - s));
        }
    }
}

// E and ∇ₓE of this workgroup's `p.chains` chains whose inputs are at region `xs` of `mem`:
// forward through the hidden layers (pre-activations kept), the energies into
// energies[en] (chains 0–3) and, with 8 chains, energies[en + 1] (chains 4–7), then
// backward. Returns the region of `mem` that holds ∇ₓE.
fn energy_and_gradient(t: u32, xs: u32, en: u32) -> u32 {
    let hidden = p.layers - 1u;
    // Forward through the hidden layers: PRE[l] = W·a + b, a ← act(PRE[l]).
    for (var l = 0u; l < hidden; l++) {
        let n_in = width(l);
        let n_out = width(l + 1u);
        let w_off = weight_offset(l);
        var src = xs;
        if l > 0u {
            src = select(BUF0, BUF1, (l - 1u) % 2u == 1u);
        }
        let dst = select(BUF0, BUF1, l % 2u == 1u);
        let code = activation_code(l);
        for (var o = t; o < n_out; o += WG) {
            let bias = params[w_off + n_out * n_in + o];
            let row = w_off + o * n_in;
            let pre = PRE + l * REGION + o * 2u;
            // The same loop for one or two vec4s of chains (a branch outside it, not in it).
            if p.chains == CHAINS {
                var acc0 = vec4<f32>(bias);
                var acc1 = vec4<f32>(bias);
                for (var i = 0u; i < n_in; i++) {
                    let w = params[row + i];
                    acc0 += w * mem[src + i * 2u];
                    acc1 += w * mem[src + i * 2u + 1u];
                }
                mem[pre] = acc0;
                mem[pre + 1u] = acc1;
                mem[dst + o * 2u] = act(code, acc0);
                mem[dst + o * 2u + 1u] = act(code, acc1);
            } else {
                var acc0 = vec4<f32>(bias);
                for (var i = 0u; i < n_in; i++) {
                    acc0 += params[row + i] * mem[src + i * 2u];
                }
                mem[pre] = acc0;
                mem[dst + o * 2u] = act(code, acc0);
            }
        }
        workgroupBarrier();
    }

    // The energies E = W_L·a + b_L of the chains (thread 0, and thread 1 with 8 chains: four
    // chains each), before the backward pass reuses the buffers.
    let n_last = width(hidden);
    let last = weight_offset(hidden);
    var a_src = xs;
    if hidden > 0u {
        a_src = select(BUF0, BUF1, (hidden - 1u) % 2u == 1u);
    }
    if t < p.chains / 4u {
        var acc = vec4<f32>(params[last + n_last]);
        for (var i = 0u; i < n_last; i++) {
            acc += params[last + i] * mem[a_src + i * 2u + t];
        }
        energies[en + t] = acc;
    }
    workgroupBarrier();

    // dE/d(last hidden output) = the last weight row, times act' of that layer.
    for (var i = t; i < n_last; i += WG) {
        for (var part = 0u; part < p.chains / 4u; part++) {
            var g = vec4<f32>(params[last + i]);
            if hidden > 0u {
                let pre = PRE + (hidden - 1u) * REGION + i * 2u + part;
                g *= act_derivative(activation_code(hidden - 1u), mem[pre]);
            }
            mem[BUF0 + i * 2u + part] = g;
        }
    }
    workgroupBarrier();

    // Back through the hidden layers: g_in = (g·W) ⊙ act'(PRE[l − 1]).
    var g_src = BUF0;
    for (var l = hidden; l > 0u; l--) {
        let layer = l - 1u;
        let n_in = width(layer);
        let n_out = width(layer + 1u);
        let w_off = weight_offset(layer);
        let g_dst = select(BUF0, BUF1, g_src == BUF0);
        // The pre-activations of the layer below, where there is one (not for the input).
        let below = PRE + max(layer, 1u) * REGION - REGION;
        for (var i = t; i < n_in; i += WG) {
            let pre = below + i * 2u;
            var acc0 = vec4<f32>(0.0);
            if p.chains == CHAINS {
                var acc1 = vec4<f32>(0.0);
                for (var o = 0u; o < n_out; o++) {
                    let w = params[w_off + o * n_in + i];
                    acc0 += w * mem[g_src + o * 2u];
                    acc1 += w * mem[g_src + o * 2u + 1u];
                }
                if layer > 0u {
                    acc1 *= act_derivative(activation_code(layer - 1u), mem[pre + 1u]);
                }
                mem[g_dst + i * 2u + 1u] = acc1;
            } else {
                for (var o = 0u; o < n_out; o++) {
                    acc0 += params[w_off + o * n_in + i] * mem[g_src + o * 2u];
                }
            }
            if layer > 0u {
                acc0 *= act_derivative(activation_code(layer - 1u), mem[pre]);
            }
            mem[g_dst + i * 2u] = acc0;
        }
        workgroupBarrier();
        g_src = g_dst;
    }
    return g_src;
}

@compute @workgroup_size(128)
fn mlp_langevin_chain(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // The grid is 2D when there are more than 65535 workgroups.
    let first = (wid.x + wid.y * nwg.x) * p.chains;
    let dim = width(0u);

    // Load this workgroup's chains; missing chains (past `rows`) are zeros, never stored.
    for (var e = t; e < dim * p.chains; e += WG) {
        let i = e / p.chains;
        let c = e % p.chains;
        var v = 0.0;
        if first + c < p.rows {
            v = x[(first + c) * dim + i];
        }
        mem[XS + i * 2u + c / 4u][c % 4u] = v;
    }
    workgroupBarrier();

    for (var k = 0u; k < p.steps; k++) {
        let g_src = energy_and_gradient(t, XS, 0u);

        // The Langevin update: one Philox call per (4-element block, chain), as langevin.wgsl.
        let blocks = (dim + 3u) / 4u;
        for (var e = t; e < blocks * p.chains; e += WG) {
            let block = e / p.chains;
            let c = e % p.chains;
            if first + c < p.rows {
                let w = philox4x32_10(
                    vec4<u32>(block, p.chain_offset + first + c, p.global_step + k, 0u),
                    vec2<u32>(p.seed_lo, p.seed_hi),
                );
                let xi = normals_from_words(w);
                for (var j = 0u; j < 4u; j++) {
                    let i = block * 4u + j;
                    if i < dim {
                        var g = mem[g_src + i * 2u + c / 4u][c % 4u];
                        if p.has_clip != 0u {
                            g = clamp(g, -p.clip, p.clip);
                        }
                        let xv = mem[XS + i * 2u + c / 4u][c % 4u];
                        mem[XS + i * 2u + c / 4u][c % 4u] =
                            clamp(xv - p.step * g + p.noise * xi[j], p.lo, p.hi);
                    }
                }
            }
        }
        workgroupBarrier();
    }

    for (var e = t; e < dim * p.chains; e += WG) {
        let i = e / p.chains;
        let c = e % p.chains;
        if first + c < p.rows {
            x[(first + c) * dim + i] = mem[XS + i * 2u + c / 4u][c % 4u];
        }
    }
}

// MALA's layout in `mem` for inputs of at most MALA_MAX_DIM values: the chains x, the
// proposals x' and ∇ₓE(x), 64 vec4s each, inside the Langevin chain's XS region.
const MALA_MAX_DIM: u32 = 32u;
const M_XS: u32 = 0u;
const M_XP: u32 = 64u;
const M_GX: u32 = 128u;

// K steps of MALA (src/sampler/mlp_chain/mala.rs) for CHAINS chains, exactly as
// src/sampler/mala.rs does them layer by layer: the proposal x' = x − (ε/T)∇E + √(2ε)ξ (ξ
// as langevin.wgsl's, stream 0), E and ∇E at x' by the fused passes above, and the test of
// metropolis.wgsl's mala_accept (the uniform from stream 5, a proposal outside [lo, hi]
// rejected). The chains' E and ∇E come in from, and go back to, the sampler's state.
@compute @workgroup_size(128)
fn mlp_mala_chain(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let first = (wid.x + wid.y * nwg.x) * CHAINS;
    let dim = width(0u);
    let key = vec2<u32>(p.seed_lo, p.seed_hi);

    for (var e = t; e < dim * CHAINS; e += WG) {
        let i = e / CHAINS;
        let c = e % CHAINS;
        var v = 0.0;
        var g = 0.0;
        if first + c < p.rows {
            v = x[(first + c) * dim + i];
            g = grad_state[(first + c) * dim + i];
        }
        mem[M_XS + i * 2u + c / 4u][c % 4u] = v;
        mem[M_GX + i * 2u + c / 4u][c % 4u] = g;
    }
    if t < CHAINS {
        var e = 0.0;
        if first + t < p.rows {
            e = energy_state[first + t];
        }
        energies[t / 4u][t % 4u] = e;
    }
    workgroupBarrier();

    // Thread c < CHAINS tests chain c at every step and keeps its statistics.
    var count = 0.0;
    var prob_sum = 0.0;
    for (var k = 0u; k < p.steps; k++) {
        let blocks = (dim + 3u) / 4u;
        for (var e = t; e < blocks * CHAINS; e += WG) {
            let block = e / CHAINS;
            let c = e % CHAINS;
            var xi = vec4<f32>(0.0);
            if first + c < p.rows {
                xi = normals_from_words(philox4x32_10(
                    vec4<u32>(block, p.chain_offset + first + c, p.global_step + k, 0u),
                    key,
                ));
            }
            for (var j = 0u; j < 4u; j++) {
                let i = block * 4u + j;
                if i < dim {
                    let at = i * 2u + c / 4u;
                    let xv = mem[M_XS + at][c % 4u];
                    let g = mem[M_GX + at][c % 4u];
                    mem[M_XP + at][c % 4u] = xv - p.step * g + p.noise * xi[j];
                }
            }
        }
        workgroupBarrier();
        let g_src = energy_and_gradient(t, M_XP, 2u);

        if t < CHAINS {
            let c = t;
            var s = 0.0;
            var out = false;
            for (var i = 0u; i < dim; i++) {
                let at = i * 2u + c / 4u;
                let xv = mem[M_XS + at][c % 4u];
                let xp = mem[M_XP + at][c % 4u];
                let forward = xp - xv + p.step * mem[M_GX + at][c % 4u];
                let backward = xv - xp + p.step * mem[g_src + at][c % 4u];
                s += forward * forward - backward * backward;
                out = out || !in_box(xp, p.lo, p.hi);
            }
            let e_now = energies[c / 4u][c % 4u];
            let e_prop = energies[2u + c / 4u][c % 4u];
            let log_alpha = -(e_prop - e_now) * p.inv_temp + s * p.mh_scale;
            let w = philox4x32_10(vec4<u32>(0u, p.chain_offset + first + c, p.global_step + k, 5u), key);
            let live = first + c < p.rows;
            // A proposal with no number for log α is rejected (tested on the bits, as in
            // metropolis.wgsl).
            let valid = live && !out && !is_nan(log_alpha);
            let take = valid && log(uniform_from_word(w.x)) < log_alpha;
            accepted[c] = select(0u, 1u, take);
            if live {
                count += select(0.0, 1.0, take);
                prob_sum += select(0.0, exp(min(log_alpha, 0.0)), valid);
            }
        }
        workgroupBarrier();

        for (var e = t; e < dim * CHAINS; e += WG) {
            let i = e / CHAINS;
            let c = e % CHAINS;
            if accepted[c] == 1u {
                let at = i * 2u + c / 4u;
                mem[M_XS + at][c % 4u] = mem[M_XP + at][c % 4u];
                mem[M_GX + at][c % 4u] = mem[g_src + at][c % 4u];
            }
        }
        if t < CHAINS && accepted[t] == 1u {
            energies[t / 4u][t % 4u] = energies[2u + t / 4u][t % 4u];
        }
        workgroupBarrier();
    }

    for (var e = t; e < dim * CHAINS; e += WG) {
        let i = e / CHAINS;
        let c = e % CHAINS;
        if first + c < p.rows {
            let at = i * 2u + c / 4u;
            x[(first + c) * dim + i] = mem[M_XS + at][c % 4u];
            grad_state[(first + c) * dim + i] = mem[M_GX + at][c % 4u];
        }
    }
    if t < CHAINS && first + t < p.rows {
        energy_state[first + t] = energies[t / 4u][t % 4u];
        stats[first + t] += count;
        stats[p.rows + first + t] += prob_sum;
    }
}
