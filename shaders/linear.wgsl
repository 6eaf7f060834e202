// Batched linear layer y[b, o] = Σᵢ x[b, i]·w[o, i] + bias[o] (PyTorch layout) and its two
// gradients. All three are one matrix product C[m, n] = Σₖ A(m, k)·B(k, n) read through
// different strides, computed by `tiled_product` in 16×16 tiles staged in workgroup memory;
// tiles that hang over the matrix edge are padded with zeros, so any size works.
//
// Bindings: 0 = A operand, 1 = B operand, 2 = output, 3 = bias (forward only).
//   linear_forward         A = x [B, I],   B(k=i, n=o) = w[o, i],  C = y [B, O] (+ bias)
//   linear_backward_data   A = dy [B, O],  B(k=o, n=i) = w[o, i],  C = dx [B, I]
//   linear_backward_params A(m=o, k=b) = dy[b, o], B(k=b, n=i) = x[b, i], C = dw [O, I]
//   linear_backward_bias   db[o] = Σ_b dy[b, o], A = dy, output binding 2

struct LinearParams {
    batch: u32,
    inputs: u32,
    outputs: u32,
}

var<immediate> p: LinearParams;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const TILE: u32 = 16u;

// tile_a[row][k] and tile_b[k][col] of the current K-slice.
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

// A matrix product C[m, n] = Σₖ A(m, k)·B(k, n), with A(m, k) = a[m·a_m + k·a_k] and
// B(k, n) = b[k·b_k + n·b_n].
struct Product {
    m: u32,
    n: u32,
    k: u32,
    a_m: u32,
    a_k: u32,
    b_k: u32,
    b_n: u32,
}

// C[row, col] for this thread; every thread of the workgroup must call it (it has barriers),
// including those whose (row, col) lies outside C.
fn tiled_product(s: Product, row: u32, col: u32, lid: vec3<u32>) -> f32 {
    var acc = 0.0;
    for (var k0 = 0u; k0 < s.k; k0 += TILE) {
        // Thread (x, y) loads A(row, k0 + x) and B(k0 + y, col): one element of each tile.
        let ka = k0 + lid.x;
        var va = 0.0;
        if row < s.m && ka < s.k {
            va = a[row * s.a_m + ka * s.a_k];
        }
        tile_a[lid.y][lid.x] = va;
        let kb = k0 + lid.y;
        var vb = 0.0;
        if kb < s.k && col < s.n {
            vb = b[kb * s.b_k + col * s.b_n];
        }
        tile_b[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk++) {
            acc += tile_a[lid.y][kk] * tile_b[kk][lid.x];
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = gid.y; // batch index
    let col = gid.x; // output index
    let s = Product(p.batch, p.outputs, p.inputs, p.inputs, 1u, 1u, p.inputs);
    let acc = tiled_product(s, row, col, lid);
    if row < p.batch && col < p.outputs {
        out[row * p.outputs + col] = acc + bias[col];
    }
}

@compute @workgroup_size(16, 16)
fn linear_backward_data(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = gid.y; // batch index
    let col = gid.x; // input index
    let s = Product(p.batch, p.inputs, p.outputs, p.outputs, 1u, p.inputs, 1u);
    let acc = tiled_product(s, row, col, lid);
    if row < p.batch && col < p.inputs {
        out[row * p.inputs + col] = acc;
    }
}

@compute @workgroup_size(16, 16)
fn linear_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = gid.y; // output index
    let col = gid.x; // input index
    let s = Product(p.outputs, p.inputs, p.batch, 1u, p.outputs, p.inputs, 1u);
    let acc = tiled_product(s, row, col, lid);
    if row < p.outputs && col < p.inputs {
        out[row * p.inputs + col] = acc;
    }
}

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
