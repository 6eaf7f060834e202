// The fused Langevin update (docs/ARCHITECTURE.md, Random numbers), in place on x
// [rows, dim]:
//   x ← clamp(x − step·clip(g) + noise·ξ, lo, hi),
// ξ the Philox normals of counter (e / 4, chain_offset + row, global_step, stream 0).
// One thread per 4-element block of a row: one Philox call gives the block's four normals,
// exactly as the CPU twin consumes them. rng.wgsl is prepended to this file.

struct LangevinParams {
    rows: u32,
    dim: u32,
    // ceil(dim / 4): blocks per row; the last block of a row may be partial.
    blocks_per_row: u32,
    step: f32,
    noise: f32,
    // Per-element gradient clip c (g clamped to [−c, c]) when has_clip != 0.
    clip: f32,
    has_clip: u32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    global_step: u32,
    chain_offset: u32,
}

var<immediate> p: LangevinParams;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn langevin_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // The grid is 2D when there are more than 65535 workgroups.
    let t = gid.x + gid.y * nwg.x * WG;
    if t >= p.rows * p.blocks_per_row {
        return;
    }
    let row = t / p.blocks_per_row;
    let block = t % p.blocks_per_row;
    let w = philox4x32_10(
        vec4<u32>(block, p.chain_offset + row, p.global_step, 0u),
        vec2<u32>(p.seed_lo, p.seed_hi),
    );
    let xi = normals_from_words(w);
    let base = row * p.dim + block * 4u;
    let n = min(4u, p.dim - block * 4u);
    for (var k = 0u; k < n; k++) {
        var g = grad[base + k];
        if p.has_clip != 0u {
            g = clamp(g, -p.clip, p.clip);
        }
        x[base + k] = clamp(x[base + k] - p.step * g + p.noise * xi[k], p.lo, p.hi);
    }
}
