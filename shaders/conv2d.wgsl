// 2D convolution (NCHW, weight [O, C, k, k], zero padding) and its gradients on f32 tiles:
// the implicit GEMMs of conv2d_gather.wgsl (prepended; it documents the three products),
// multiplied in workgroup memory, plus the bias gradient.
//
// Each step of K publishes the 16×64 operand tiles the threads gathered and multiplies them;
// thread (tx, ty) accumulates its 4×4 block from one vec4 of each tile per kk — 16
// multiply-adds for two workgroup loads. Meanwhile the next step's operands are already being
// fetched into registers (software pipelining: the global loads' latency hides behind the
// arithmetic). A thread whose whole block lies outside C (a 5-channel input gradient fills 5
// of 64 rows; 4 or fewer go to conv2d_thin.wgsl) skips the arithmetic.
//
//   conv2d_forward          a = w,  b = x,  out = y,  bias
//   conv2d_backward_data    a = w,  b = dy, out = dx   (one z slice per stride phase)
//   conv2d_backward_weight  a = dy, b = x,  out = dw
//   conv2d_backward_bias    a = dy,         out = db: one workgroup per channel, tree sum
//   conv2d_sum_*            a = the slices' partial products, out = y / dx / dw (+ bias)
//
// A product with few output tiles (a deep layer, a weight gradient: 32 tiles over a K of
// 10⁵) would leave most of a large GPU idle, so the host cuts its K into slices on the grid's
// z (split-K, `k_splits` in src/backend/gpu/conv.rs) and sums them here afterwards.

// Must match CONV_TILE in src/backend/gpu/mod.rs.
const TILE: u32 = 64u;
const TK: u32 = 16u;
const WG: u32 = 256u;

// tile_a[kk][m4] = A rows 4·m4 .. 4·m4 + 3 at K index k0 + kk; tile_b[kk][n4] = B row k0 + kk
// at columns 4·n4 .. 4·n4 + 3. tile_a's rows are padded to 17 so that the 16 threads storing
// one column of it (consecutive kk) hit different banks.
var<workgroup> tile_a: array<array<vec4<f32>, 17>, 16>;
var<workgroup> tile_b: array<array<vec4<f32>, 16>, 16>;

// acc += A(4ty .. 4ty + 3, kk) ⊗ B(kk, 4tx .. 4tx + 3) over this step's 16 kk.
fn multiply_tiles(acc: ptr<function, Block>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < TK; kk++) {
        let av = tile_a[kk][ty];
        let bv = tile_b[kk][tx];
        (*acc).r0 += av.x * bv;
        (*acc).r1 += av.y * bv;
        (*acc).r2 += av.z * bv;
        (*acc).r3 += av.w * bv;
    }
}

// Publish a step's operands to the workgroup and multiply the tiles; the second barrier lets
// the next step's stores overwrite them. The common body of every K step.
fn multiply_step(ops: Operands, acc: ptr<function, Block>, tx: u32, ty: u32, computes: bool) {
    tile_a[tx][ty] = ops.a;
    tile_b[ty][tx] = ops.b;
    workgroupBarrier();
    if computes {
        multiply_tiles(acc, tx, ty);
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn conv2d_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tx = li % 16u;
    let ty = li / 16u;
    let k = p.kernel;
    let job = job_of(wg, nwg, p.out_channels, p.in_channels * k * k, TILE);
    let split = job.split;
    let ks = job.ks;
    let origin = job.origin;
    let cols = forward_columns(origin.y + 4u * tx);

    let step = digits_of(TK, k, k);
    var kb = digits_of(ks.x + ty, k, k);
    var ops = forward_operands(ks.x, ks.y, kb, cols, tx, ty, origin.x);
    var acc: Block;
    let computes = origin.x + 4u * ty < p.out_channels
        && origin.y + 4u * tx < p.batch * p.out_height * p.out_width;
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let current = ops;
        kb = digits_add(kb, step, k, k);
        ops = forward_operands(k0 + TK, ks.y, kb, cols, tx, ty, origin.x);
        multiply_step(current, &acc, tx, ty, computes);
    }
    forward_store(acc, cols, origin.x, ty, split);
}

@compute @workgroup_size(256)
fn conv2d_backward_data(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tx = li % 16u;
    let ty = li / 16u;
    let pj = phase_job(wg, nwg, TILE);
    let ph = pj.ph;
    let split = pj.job.split;
    let ks = pj.job.ks;
    let origin = pj.job.origin;
    let cols = backward_data_columns(origin.y + 4u * tx, ph);

    let step = digits_of(TK, ph.taps_h, ph.taps_w);
    var da = digits_of(ks.x + tx, ph.taps_h, ph.taps_w);
    var db = digits_of(ks.x + ty, ph.taps_h, ph.taps_w);
    var ops = backward_data_operands(ks.x, ks.y, da, db, ph, cols, tx, ty, origin.x);
    var acc: Block;
    let computes = origin.x + 4u * ty < p.in_channels
        && origin.y + 4u * tx < p.batch * ph.rows * ph.cols;
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let current = ops;
        da = digits_add(da, step, ph.taps_h, ph.taps_w);
        db = digits_add(db, step, ph.taps_h, ph.taps_w);
        ops = backward_data_operands(k0 + TK, ks.y, da, db, ph, cols, tx, ty, origin.x);
        multiply_step(current, &acc, tx, ty, computes);
    }
    backward_data_store(acc, cols, origin.x, ty, split);
}

@compute @workgroup_size(256)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tx = li % 16u;
    let ty = li / 16u;
    let job = job_of(wg, nwg, p.out_channels, p.batch * p.out_height * p.out_width, TILE);
    let split = job.split;
    let ks = job.ks;
    let origin = job.origin;
    let cols = backward_weight_columns(origin.y + 4u * tx);

    let step = digits_of(TK, p.out_height, p.out_width);
    var da = digits_of(ks.x + tx, p.out_height, p.out_width);
    var db = digits_of(ks.x + ty, p.out_height, p.out_width);
    var ops = backward_weight_operands(ks.x, ks.y, da, db, cols, tx, ty, origin.x);
    var acc: Block;
    let computes = origin.x + 4u * ty < p.out_channels
        && origin.y + 4u * tx < p.in_channels * p.kernel * p.kernel;
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let current = ops;
        da = digits_add(da, step, p.out_height, p.out_width);
        db = digits_add(db, step, p.out_height, p.out_width);
        ops = backward_weight_operands(k0 + TK, ks.y, da, db, cols, tx, ty, origin.x);
        multiply_step(current, &acc, tx, ty, computes);
    }
    backward_weight_store(acc, cols, origin.x, origin.y + 4u * tx, ty, split);
}

// The split-K partial products summed: out[i] = Σ_s a[s·len + i] (+ the bias of i's channel
// for the forward). One thread per output; the grid may be 2D.
fn split_sum(i: u32, len: u32) -> f32 {
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += a[s * len + i];
    }
    return total;
}

fn flat_index(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

@compute @workgroup_size(256)
fn conv2d_sum_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = flat_index(wg, nwg, li);
    let pix = p.out_height * p.out_width;
    let len = p.batch * p.out_channels * pix;
    if i < len {
        out[i] = split_sum(i, len) + bias[(i / pix) % p.out_channels];
    }
}

@compute @workgroup_size(256)
fn conv2d_sum_data(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = flat_index(wg, nwg, li);
    let len = p.batch * p.in_channels * p.height * p.width;
    // With a stride past the kernel, the pixels of the phases no tap meets got no partial
    // products (their slots hold stale scratch): they keep the 0 the host filled in. With
    // any other stride every phase is met, and the test is skipped.
    if i < len && (p.stride <= p.kernel || tap_meets(i)) {
        out[i] = split_sum(i, len);
    }
}

// Whether input pixel `i` of dx lies in a stride phase that some tap meets (rh, rw < k; the
// phases `tap_phases` counts).
fn tap_meets(i: u32) -> bool {
    let iw = i % p.width;
    let ih = (i / p.width) % p.height;
    return (ih + p.padding) % p.stride < p.kernel && (iw + p.padding) % p.stride < p.kernel;
}

@compute @workgroup_size(256)
fn conv2d_sum_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = flat_index(wg, nwg, li);
    let len = p.out_channels * p.in_channels * p.kernel * p.kernel;
    if i < len {
        out[i] = split_sum(i, len);
    }
}

var<workgroup> partial: array<f32, 256>;

// One workgroup per output channel o (the grid may be 2D): each thread sums a strided slice
// of every sample's plane dy[n, o, ·], then a tree reduction.
@compute @workgroup_size(256)
fn conv2d_backward_bias(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = wg.x + wg.y * nwg.x;
    let pix = p.out_height * p.out_width;
    // Workgroups past the last channel (the tail of a 2D grid) sum nothing and store nothing;
    // they still reach the barriers, which every thread of a workgroup must.
    let live = o < p.out_channels;
    var acc = 0.0;
    for (var n = 0u; live && n < p.batch; n++) {
        let plane = (n * p.out_channels + o) * pix;
        for (var i = li; i < pix; i += WG) {
            acc += a[plane + i];
        }
    }
    partial[li] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if li < half {
            partial[li] += partial[li + half];
        }
        workgroupBarrier();
    }
    if live && li == 0u {
        out[o] = partial[0];
    }
}
