// The three conv products of conv2d.wgsl on 128×128 tiles of C: the same gathers and stores
// (conv2d_gather.wgsl, prepended), with each thread accumulating an 8×8 block instead of 4×4.
//
// Why: per K index a thread of the 64-tile kernels reads two vec4s from workgroup memory for
// 16 multiply-adds, and each step of 16 K indices costs two barriers and one gather of 4 + 4
// values. Here a thread reads four vec4s for 64 multiply-adds, and a step of 8 K indices
// gathers the same 4 + 4 values per thread for twice the arithmetic (512 multiply-adds
// against 256), so workgroup-memory traffic, barriers and global loads per multiply-add all
// halve. The price: 64 accumulators per thread, and a tile 4× the area, which a product with
// few rows or columns fills poorly; the host uses these kernels only for products with at
// least 128 rows, and split-K (conv2d.wgsl's sums) keeps a deep layer's few tiles busy.
//
// Threads play two roles. For the gathers, thread li fetches A rows 4·(li / 8) .. + 3 at K
// index k0 + li mod 8 (8 consecutive K indices per row: short runs of contiguous weights) and
// B row k0 + li / 32 at columns 4·(li mod 32) .. + 3 (a warp reads 128 consecutive columns).
// For the arithmetic and the stores, thread (tx, ty) = (li mod 16, li / 16) owns rows 4ty ..
// and 64 + 4ty .. and columns 4tx .. and 64 + 4tx .. of the tile: four 4×4 blocks, whose
// workgroup loads are conflict-free across a warp (as in the 64-tile kernels).
//
//   conv2d_forward_wide          a = w,  b = x,  out = y,  bias
//   conv2d_backward_data_wide    a = w,  b = dy, out = dx   (one z slice per stride phase)
//   conv2d_backward_weight_wide  a = dy, b = x,  out = dw

// Must match CONV_WIDE_TILE in src/backend/gpu/mod.rs.
const TILE: u32 = 128u;
const TK: u32 = 8u;
// Half a tile: the offset of a thread's second row block and second column block.
const HALF: u32 = 64u;

// wide_a[kk][m4] = A rows 4·m4 .. 4·m4 + 3 at K index k0 + kk; wide_b[kk][n4] = B row k0 + kk
// at columns 4·n4 .. 4·n4 + 3. wide_a's rows are padded to 33 so that the 8 threads storing
// one vec4 each (consecutive kk, the same m4) hit different banks.
var<workgroup> wide_a: array<array<vec4<f32>, 33>, 8>;
var<workgroup> wide_b: array<array<vec4<f32>, 32>, 8>;

// A thread's 8×8 block: rows (0 | 64) + 4ty .., columns (0 | 64) + 4tx .. Four named 4×4
// blocks rather than an array, for the reason Block is a struct (conv2d_gather.wgsl).
struct Quad {
    top_left: Block,
    top_right: Block,
    bottom_left: Block,
    bottom_right: Block,
}

// acc += av ⊗ bv (one 4×4 outer product).
fn outer(acc: Block, av: vec4<f32>, bv: vec4<f32>) -> Block {
    return Block(acc.r0 + av.x * bv, acc.r1 + av.y * bv, acc.r2 + av.z * bv, acc.r3 + av.w * bv);
}

// Publish a step's gathered operands, multiply the tiles into the thread's 8×8 block, and
// wait until every thread is done reading them (the next step's stores overwrite them).
fn multiply_wide_step(
    a_ops: vec4<f32>,
    b_ops: vec4<f32>,
    li: u32,
    acc: ptr<function, Quad>,
    computes: bool,
) {
    wide_a[li % TK][li / TK] = a_ops;
    wide_b[li / 32u][li % 32u] = b_ops;
    workgroupBarrier();
    if computes {
        let tx = li % 16u;
        let ty = li / 16u;
        var q = *acc;
        for (var kk = 0u; kk < TK; kk++) {
            let a_top = wide_a[kk][ty];
            let a_bottom = wide_a[kk][ty + 16u];
            let b_left = wide_b[kk][tx];
            let b_right = wide_b[kk][tx + 16u];
            q.top_left = outer(q.top_left, a_top, b_left);
            q.top_right = outer(q.top_right, a_top, b_right);
            q.bottom_left = outer(q.bottom_left, a_bottom, b_left);
            q.bottom_right = outer(q.bottom_right, a_bottom, b_right);
        }
        *acc = q;
    }
    workgroupBarrier();
}

// Whether thread (tx, ty)'s first block lies inside a rows × cols product; if not, neither
// does its second (64 further on).
fn wide_computes(origin: vec2<u32>, li: u32, rows: u32, cols: u32) -> bool {
    return origin.x + 4u * (li / 16u) < rows && origin.y + 4u * (li % 16u) < cols;
}

@compute @workgroup_size(256)
fn conv2d_forward_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let k = p.kernel;
    let job = job_of(wg, nwg, p.out_channels, p.in_channels * k * k, TILE);
    let ks = job.ks;
    let origin = job.origin;
    // Gather roles: A at K lane li mod 8, rows 4·(li / 8) ..; B at K lane li / 32.
    let a_lane = li % TK;
    let a_row = origin.x + 4u * (li / TK);
    let b_lane = li / 32u;
    let b_cols = forward_columns(origin.y + 4u * (li % 32u));

    let step = digits_of(TK, k, k);
    var kb = digits_of(ks.x + b_lane, k, k);
    var a_next = forward_a(ks.x + a_lane, ks.y, a_row);
    var b_next = forward_b(ks.x + b_lane, ks.y, kb, b_cols);
    var acc: Quad;
    let computes = wide_computes(origin, li, p.out_channels, p.batch * p.out_height * p.out_width);
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let a_now = a_next;
        let b_now = b_next;
        kb = digits_add(kb, step, k, k);
        a_next = forward_a(k0 + TK + a_lane, ks.y, a_row);
        b_next = forward_b(k0 + TK + b_lane, ks.y, kb, b_cols);
        multiply_wide_step(a_now, b_now, li, &acc, computes);
    }
    let ty = li / 16u;
    let left = forward_columns(origin.y + 4u * (li % 16u));
    let right = forward_columns(origin.y + HALF + 4u * (li % 16u));
    forward_store(acc.top_left, left, origin.x, ty, job.split);
    forward_store(acc.top_right, right, origin.x, ty, job.split);
    forward_store(acc.bottom_left, left, origin.x + HALF, ty, job.split);
    forward_store(acc.bottom_right, right, origin.x + HALF, ty, job.split);
}

@compute @workgroup_size(256)
fn conv2d_backward_data_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let pj = phase_job(wg, nwg, TILE);
    let ph = pj.ph;
    let ks = pj.job.ks;
    let origin = pj.job.origin;
    let a_lane = li % TK;
    let a_row = origin.x + 4u * (li / TK);
    let b_lane = li / 32u;
    let b_cols = backward_data_columns(origin.y + 4u * (li % 32u), ph);

    let step = digits_of(TK, ph.taps_h, ph.taps_w);
    var da = digits_of(ks.x + a_lane, ph.taps_h, ph.taps_w);
    var db = digits_of(ks.x + b_lane, ph.taps_h, ph.taps_w);
    var a_next = backward_data_a(ks.x + a_lane, ks.y, da, ph, a_row);
    var b_next = backward_data_b(ks.x + b_lane, ks.y, db, b_cols);
    var acc: Quad;
    let computes = wide_computes(origin, li, p.in_channels, p.batch * ph.rows * ph.cols);
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let a_now = a_next;
        let b_now = b_next;
        da = digits_add(da, step, ph.taps_h, ph.taps_w);
        db = digits_add(db, step, ph.taps_h, ph.taps_w);
        a_next = backward_data_a(k0 + TK + a_lane, ks.y, da, ph, a_row);
        b_next = backward_data_b(k0 + TK + b_lane, ks.y, db, b_cols);
        multiply_wide_step(a_now, b_now, li, &acc, computes);
    }
    let ty = li / 16u;
    let split = pj.job.split;
    let left = backward_data_columns(origin.y + 4u * (li % 16u), ph);
    let right = backward_data_columns(origin.y + HALF + 4u * (li % 16u), ph);
    backward_data_store(acc.top_left, left, origin.x, ty, split);
    backward_data_store(acc.top_right, right, origin.x, ty, split);
    backward_data_store(acc.bottom_left, left, origin.x + HALF, ty, split);
    backward_data_store(acc.bottom_right, right, origin.x + HALF, ty, split);
}

@compute @workgroup_size(256)
fn conv2d_backward_weight_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let job = job_of(wg, nwg, p.out_channels, p.batch * p.out_height * p.out_width, TILE);
    let ks = job.ks;
    let origin = job.origin;
    let a_lane = li % TK;
    let a_row = origin.x + 4u * (li / TK);
    let b_lane = li / 32u;
    let b_cols = backward_weight_columns(origin.y + 4u * (li % 32u));

    let step = digits_of(TK, p.out_height, p.out_width);
    var da = digits_of(ks.x + a_lane, p.out_height, p.out_width);
    var db = digits_of(ks.x + b_lane, p.out_height, p.out_width);
    var a_next = backward_weight_a(ks.x + a_lane, ks.y, da, a_row);
    var b_next = backward_weight_b(ks.x + b_lane, ks.y, db, b_cols);
    var acc: Quad;
    let computes = wide_computes(origin, li, p.out_channels, p.in_channels * p.kernel * p.kernel);
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        let a_now = a_next;
        let b_now = b_next;
        da = digits_add(da, step, p.out_height, p.out_width);
        db = digits_add(db, step, p.out_height, p.out_width);
        a_next = backward_weight_a(k0 + TK + a_lane, ks.y, da, a_row);
        b_next = backward_weight_b(k0 + TK + b_lane, ks.y, db, b_cols);
        multiply_wide_step(a_now, b_now, li, &acc, computes);
    }
    let ty = li / 16u;
    let col_left = origin.y + 4u * (li % 16u);
    let col_right = col_left + HALF;
    let left = backward_weight_columns(col_left);
    let right = backward_weight_columns(col_right);
    backward_weight_store(acc.top_left, left, origin.x, col_left, ty, job.split);
    backward_weight_store(acc.top_right, right, origin.x, col_right, ty, job.split);
    backward_weight_store(acc.bottom_left, left, origin.x + HALF, col_left, ty, job.split);
    backward_weight_store(acc.bottom_right, right, origin.x + HALF, col_right, ty, job.split);
}
