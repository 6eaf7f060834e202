// The Metropolis–Hastings tests of the exact samplers (src/sampler/metropolis.rs, its CPU
// twin; docs/ARCHITECTURE.md, Samplers), for a target p(x) ∝ exp(−E(x)/T) on the box
// [lo, hi]^dim, on the device and with no readback:
//   mala_accept   MALA: the proposal x' = x − (ε/T)∇E(x) + √(2ε)ξ is accepted with
//                 log α = −(E' − E)/T + (‖x' − x + (ε/T)g‖² − ‖x − x' + (ε/T)g'‖²) / (4ε),
//                 the ratio of the two Gaussian proposal densities;
//   hmc_momentum  HMC: fresh momenta p₀ ~ N(0, I) (Philox stream 6);
//   hmc_accept    HMC after L leapfrog steps: log α = −(E' − E)/T + (‖p₀‖² − ‖p_L‖²)/2,
//                 p₀ drawn again from its Philox counter rather than stored.
// A proposal with any element outside [lo, hi] is rejected (the target is 0 there), as is one
// whose log α is not a number. An accepted chain takes x', ∇E(x') and E(x'); a rejected one
// keeps its own. The uniform u of chain r at step s is the first word of Philox counter
// (0, chain_offset + r, s, stream 5); accept iff log u < log α.
// One thread per chain (row), walking its row in 4-element blocks (the Philox normals come in
// fours): the test is a few operations per element, small beside the energy's forward and
// backward pass, and needs no workgroup reduction. rng.wgsl is prepended to this file.

struct MetropolisParams {
    rows: u32,
    dim: u32,
    // ceil(dim / 4).
    blocks_per_row: u32,
    // MALA's ε (unused by HMC, whose ε only moves the chains).
    eps: f32,
    // 1/T.
    inv_temp: f32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
}

var<immediate> p: MetropolisParams;

// The chains' state, updated where a proposal is accepted.
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> energy: array<f32>;
// [rows] accepted proposals per chain, then [rows] Σ min(1, α) per chain: accumulated.
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
// The proposal: x', ∇E(x'), E(x').
@group(0) @binding(4) var<storage, read> x_prop: array<f32>;
@group(0) @binding(5) var<storage, read> grad_prop: array<f32>;
@group(0) @binding(6) var<storage, read> energy_prop: array<f32>;
// HMC: the momenta at the end of the trajectory.
@group(0) @binding(7) var<storage, read> momentum_end: array<f32>;
// hmc_momentum's output.
@group(0) @binding(8) var<storage, read_write> momentum: array<f32>;

const METROPOLIS_STREAM: u32 = 5u;
const MOMENTUM_STREAM: u32 = 6u;

fn key() -> vec2<u32> {
    return vec2<u32>(p.seed_lo, p.seed_hi);
}

const WG: u32 = 256u;

// Whether any element of the row's proposal block lies outside [lo, hi] (or is NaN).
fn outside(base: u32, n: u32) -> bool {
    var out = false;
    for (var k = 0u; k < n; k++) {
        out = out || !in_box(x_prop[base + k], p.lo, p.hi);
    }
    return out;
}

// The test itself: accept or keep chain `row`, and add to the statistics. `log_ratio` is
// log α without the energy term; `out` is 1 if the proposal left the box.
fn decide(row: u32, log_ratio: f32, out: bool) {
    let log_alpha = -(energy_prop[row] - energy[row]) * p.inv_temp + log_ratio;
    let w = philox4x32_10(
        vec4<u32>(0u, p.chain_offset + row, p.global_step, METROPOLIS_STREAM),
        key(),
    );
    let u = uniform_from_word(w.x);
    // A proposal with no number for log α is rejected (tested on the bits: a compiler may
    // assume floats are finite and fold a NaN comparison away).
    let valid = !out && !is_nan(log_alpha);
    let accept = valid && log(u) < log_alpha;
    let prob = select(0.0, exp(min(log_alpha, 0.0)), valid);
    if accept {
        for (var j = 0u; j < p.dim; j++) {
            let i = row * p.dim + j;
            x[i] = x_prop[i];
            grad[i] = grad_prop[i];
        }
        energy[row] = energy_prop[row];
    }
    stats[row] += select(0.0, 1.0, accept);
    stats[p.rows + row] += prob;
}

// The row a thread tests (the grid is 2D when there are more than 65535 workgroups).
fn row_of_thread(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(256)
fn mala_accept(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = row_of_thread(gid, nwg);
    if row >= p.rows {
        return;
    }
    let drift = p.eps * p.inv_temp;
    var s = 0.0;
    var out = false;
    for (var b = 0u; b < p.blocks_per_row; b++) {
        let base = row * p.dim + b * 4u;
        let n = min(4u, p.dim - b * 4u);
        for (var k = 0u; k < n; k++) {
            let i = base + k;
            let forward = x_prop[i] - x[i] + drift * grad[i];
            let backward = x[i] - x_prop[i] + drift * grad_prop[i];
            s += forward * forward - backward * backward;
        }
        out = out || outside(base, n);
    }
    decide(row, s / (4.0 * p.eps), out);
}

@compute @workgroup_size(256)
fn hmc_accept(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = row_of_thread(gid, nwg);
    if row >= p.rows {
        return;
    }
    var s = 0.0;
    var out = false;
    for (var b = 0u; b < p.blocks_per_row; b++) {
        let base = row * p.dim + b * 4u;
        let n = min(4u, p.dim - b * 4u);
        let p0 = normals_from_words(philox4x32_10(
            vec4<u32>(b, p.chain_offset + row, p.global_step, MOMENTUM_STREAM),
            key(),
        ));
        for (var k = 0u; k < n; k++) {
            let pl = momentum_end[base + k];
            s += p0[k] * p0[k] - pl * pl;
        }
        out = out || outside(base, n);
    }
    decide(row, 0.5 * s, out);
}

// p₀ ~ N(0, I): the normals of Philox counter (block, chain_offset + row, global_step,
// stream 6), one thread per 4-element block.
@compute @workgroup_size(256)
fn hmc_momentum(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let t = row_of_thread(gid, nwg);
    if t >= p.rows * p.blocks_per_row {
        return;
    }
    let row = t / p.blocks_per_row;
    let b = t % p.blocks_per_row;
    let z = normals_from_words(philox4x32_10(
        vec4<u32>(b, p.chain_offset + row, p.global_step, MOMENTUM_STREAM),
        key(),
    ));
    let base = row * p.dim + b * 4u;
    let n = min(4u, p.dim - b * 4u);
    for (var k = 0u; k < n; k++) {
        momentum[base + k] = z[k];
    }
}
