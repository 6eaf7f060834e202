// The replay buffer of persistent chains (docs/ARCHITECTURE.md, Random numbers): draw a
// batch out of it, write the batch back. rng.wgsl is prepended to this file.

// ---- replay_draw: x[j] = buffer[index_j], or uniform noise in [lo, hi] when re-initialised.
// Draw j of iteration t: index = min(⌊u·N⌋, N − 1), u from counter (j/4, 0, t, 2) lane j%4;
// re-initialised when u' from counter (j/4, 1, t, 2) lane j%4 is < reinit_prob, with values
// from counter (e/4, j, t, 1). All of it in f32, exactly as the CPU twin, so both devices pick
// the same chains. One thread per 4-element block of a row (each recomputes the row's two
// decision words: two Philox calls are cheaper than a second dispatch).

struct DrawParams {
    capacity: u32,
    batch: u32,
    dim: u32,
    // max(ceil(dim / 4), 1): a zero-width row still gets a thread to write its index.
    blocks_per_row: u32,
    reinit_prob: f32,
    lo: f32,
    hi: f32,
    seed_lo: u32,
    seed_hi: u32,
    iteration: u32,
}

var<immediate> draw: DrawParams;

@group(0) @binding(0) var<storage, read> buffer_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> x_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices_out: array<f32>;

const STREAM_REINIT: u32 = 1u;
const STREAM_DRAW: u32 = 2u;
const WG: u32 = 256u;

@compute @workgroup_size(256)
fn replay_draw(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let t = gid.x + gid.y * nwg.x * WG;
    if t >= draw.batch * draw.blocks_per_row {
        return;
    }
    let j = t / draw.blocks_per_row;
    let block = t % draw.blocks_per_row;
    let key = vec2<u32>(draw.seed_lo, draw.seed_hi);

    let pick = philox4x32_10(vec4<u32>(j / 4u, 0u, draw.iteration, STREAM_DRAW), key);
    let u = uniform_from_word(pick[j % 4u]);
    let index = min(u32(u * f32(draw.capacity)), draw.capacity - 1u);
    let coin = philox4x32_10(vec4<u32>(j / 4u, 1u, draw.iteration, STREAM_DRAW), key);
    let reinit = uniform_from_word(coin[j % 4u]) < draw.reinit_prob;
    if block == 0u {
        // Exact as f32 for any capacity below 2^24.
        indices_out[j] = f32(index);
    }

    let e0 = block * 4u;
    if e0 >= draw.dim {
        return;
    }
    let n = min(4u, draw.dim - e0);
    let dst = j * draw.dim + e0;
    if reinit {
        let w = philox4x32_10(vec4<u32>(block, j, draw.iteration, STREAM_REINIT), key);
        for (var k = 0u; k < n; k++) {
            x_out[dst + k] = draw.lo + (draw.hi - draw.lo) * uniform_from_word(w[k]);
        }
    } else {
        let src = index * draw.dim + e0;
        for (var k = 0u; k < n; k++) {
            x_out[dst + k] = buffer_in[src + k];
        }
    }
}

// ---- replay_scatter: buffer[indices[j]] = x[j]. Where a chain was drawn twice, the later
// draw wins, as in the CPU twin's in-order loop: a row is written only if no later row names
// the same chain, so no two workgroups ever write the same row and the result is
// deterministic. One workgroup per row: its threads split the duplicate scan and the copy.

struct ScatterParams {
    capacity: u32,
    batch: u32,
    dim: u32,
}

var<immediate> scatter: ScatterParams;

@group(0) @binding(0) var<storage, read> x_in: array<f32>;
@group(0) @binding(1) var<storage, read> indices_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> buffer_out: array<f32>;

const SCATTER_WG: u32 = 64u;

// Set when a later row of the batch names the same chain as this workgroup's row.
var<workgroup> superseded: atomic<u32>;

@compute @workgroup_size(64)
fn replay_scatter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The grid is 2D when the batch exceeds 65535 rows.
    let j = wid.x + wid.y * nwg.x;
    if lid == 0u {
        atomicStore(&superseded, 0u);
    }
    workgroupBarrier();
    var index = 0u;
    if j < scatter.batch {
        index = u32(indices_in[j]);
        for (var later = j + 1u + lid; later < scatter.batch; later += SCATTER_WG) {
            if u32(indices_in[later]) == index {
                atomicStore(&superseded, 1u);
            }
        }
    }
    workgroupBarrier();
    if j >= scatter.batch || index >= scatter.capacity || atomicLoad(&superseded) != 0u {
        return;
    }
    for (var e = lid; e < scatter.dim; e += SCATTER_WG) {
        buffer_out[index * scatter.dim + e] = x_in[j * scatter.dim + e];
    }
}

// ---- replay_labels: the class labels of a draw's chains (conditional training), from the
// same Philox decisions as replay_draw: a re-initialised chain, or one that has no label yet
// (stored label < 0), takes the data label of its row (its class is the data batch's); any
// other keeps the label stored with it. One thread per drawn row.

struct LabelParams {
    capacity: u32,
    batch: u32,
    reinit_prob: f32,
    seed_lo: u32,
    seed_hi: u32,
    iteration: u32,
}

var<immediate> lab: LabelParams;

@group(0) @binding(0) var<storage, read> stored_labels: array<f32>;
@group(0) @binding(1) var<storage, read> data_labels: array<f32>;
@group(0) @binding(2) var<storage, read_write> labels_out: array<f32>;

@compute @workgroup_size(256)
fn replay_labels(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let j = gid.x + gid.y * nwg.x * WG;
    if j >= lab.batch {
        return;
    }
    let key = vec2<u32>(lab.seed_lo, lab.seed_hi);
    let pick = philox4x32_10(vec4<u32>(j / 4u, 0u, lab.iteration, STREAM_DRAW), key);
    let index = min(u32(uniform_from_word(pick[j % 4u]) * f32(lab.capacity)), lab.capacity - 1u);
    let coin = philox4x32_10(vec4<u32>(j / 4u, 1u, lab.iteration, STREAM_DRAW), key);
    let stored = stored_labels[index];
    if uniform_from_word(coin[j % 4u]) < lab.reinit_prob || stored < 0.0 {
        labels_out[j] = data_labels[j];
    } else {
        labels_out[j] = stored;
    }
}
