// The linear layer's bias gradient db[o] = Σ_b dy[b, o]. The layer's three matrix products
// (y = x·wᵀ + b, dx = dy·w, dw = dyᵀ·x) run on the conv products (conv2d.wgsl and its
// kin), as the 1×1 convolutions of 1×1 images they are (src/backend/gpu/layers.rs).
//
// Bindings: 0 = dy [B, O], 2 = db [O].

struct LinearParams {
    batch: u32,
    inputs: u32,
    outputs: u32,
}

var<immediate> p: LinearParams;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const TILE: u32 = 16u;

// db[o] = Σ_b dy[b, o]: a workgroup per 16 outputs; thread (x, y) sums rows y, y + 16, … of
// column o = 16·wg + x (16 consecutive words per row: coalesced), then the 16 partial sums of
// each column meet in workgroup memory. A thread per output alone would leave a batch of
// 1024 to one serial loop on a few hundred threads.
var<workgroup> column_sums: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn linear_backward_bias(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    // The grid may be 2D past 65535 workgroups.
    let o = (wg.x + wg.y * nwg.x) * TILE + lid.x;
    var acc = 0.0;
    if o < p.outputs {
        for (var r = lid.y; r < p.batch; r += TILE) {
            acc += a[r * p.outputs + o];
        }
    }
    column_sums[lid.y][lid.x] = acc;
    workgroupBarrier();
    for (var half = TILE / 2u; half > 0u; half /= 2u) {
        if lid.y < half {
            column_sums[lid.y][lid.x] += column_sums[lid.y + half][lid.x];
        }
        workgroupBarrier();
    }
    if lid.y == 0u && o < p.outputs {
        out[o] = column_sums[0][lid.x];
    }
}
