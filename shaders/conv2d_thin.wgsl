// The input gradient into a thin input (at most 4 channels: an image's 1 or 3, a 2-D toy
// point) without workgroup tiles: conv2d_gather.wgsl (prepended) documents the product.
//
// Its C has C ≤ 4 rows, so a 64×64 tile would be 95 % empty: 15 of every 16 threads would
// gather operands and wait at barriers for 1 thread's arithmetic (conv2d.wgsl skips the
// multiply-adds of such threads, not their share of the gathers). Here every thread owns all
// the rows of 4 columns (input pixels) and walks its split-K slice of K one index at a time:
// per K index one B gather of its 4 columns (consecutive threads, consecutive pixels) and the
// weights of the ≤ 4 rows, which every thread of the workgroup reads alike. No workgroup
// memory, no barriers. The sums run over K in the order the tiled kernels use.
//
// Grid: column groups of THIN_COLS on x (spilling into y), z = split · phases + phase. The
// host cuts K by this kernel's own thread count (src/backend/gpu/conv.rs, `record_thin`),
// since it has 16× fewer threads than the tiles for the same product.

// Columns per workgroup: 64 threads × 4. Must match THIN_COLS in src/backend/gpu/conv.rs
// (which sends only products of at most 4 rows here).
const THIN_COLS: u32 = 256u;

@compute @workgroup_size(64)
fn conv2d_backward_data_thin(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let phases = tap_phases() * tap_phases();
    let ph = phase_of(wg.z % phases);
    let split = wg.z / phases;
    let ks = k_slice(split, p.out_channels * ph.taps_h * ph.taps_w);
    let cols = backward_data_columns((wg.x + wg.y * nwg.x) * THIN_COLS + 4u * li, ph);

    let step = digits_of(1u, ph.taps_h, ph.taps_w);
    var d = digits_of(ks.x, ph.taps_h, ph.taps_w);
    var acc: Block;
    for (var k = ks.x; k < ks.y; k++) {
        let av = backward_data_a(k, ks.y, d, ph, 0u);
        let bv = backward_data_b(k, ks.y, d, cols);
        acc.r0 += av.x * bv;
        acc.r1 += av.y * bv;
        acc.r2 += av.z * bv;
        acc.r3 += av.w * bv;
        d = digits_add(d, step, ph.taps_h, ph.taps_w);
    }
    backward_data_store(acc, cols, 0u, 0u, split);
}
