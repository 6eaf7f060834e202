// sum_squares, a general reduction run by one workgroup: each thread sums a strided slice,
// then a tree reduction in workgroup memory. One gradient tensor is small enough that one
// workgroup needs no second pass or atomics.

const WG: u32 = 256u;

// ---- sum_squares: out[slot] = Σ x², one slot per parameter tensor for global-norm clipping.

struct SumSqParams {
    n: u32,
    slot: u32,
}

var<immediate> sq: SumSqParams;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;

var<workgroup> partial1: array<f32, 256>;

@compute @workgroup_size(256)
fn sum_squares(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < sq.n; i += WG) {
        let v = src[i];
        acc += v * v;
    }
    partial1[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial1[lid] += partial1[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        sums[sq.slot] = partial1[0];
    }
}
