enable f16;
enable wgpu_cooperative_matrix;

// The conv2d forward and input-gradient products on tensor cores (wgpu's experimental
// cooperative matrices): the same gathers and stores as conv2d.wgsl (conv2d_gather.wgsl,
// prepended), multiplied as 16×16×16 f16 matrices with f32 accumulation. Built only on
// adapters that offer that shape with 32-wide subgroups (src/backend/gpu/tensor_cores.rs);
// elsewhere, and for the weight gradient, the f32 kernels run.
//
// Each step of K the threads round their gathered operands to f16 into workgroup memory:
// A (64 rows × 16) column-major and B (16 × 64 columns) row-major, both 64 wide. The 8
// subgroups of 32 share the 64×64 tile of C as 4×4 blocks of 16×16: subgroup g owns row
// block g / 2 and column blocks 2·(g mod 2) and 2·(g mod 2) + 1, one A and two B matrix loads
// and two multiply-adds per step. At the end the accumulators go through workgroup memory
// back to the threads' 4×4 blocks, and the f32 path's stores write them out.
//
// Precision: the products see f16 operands (11 significant bits, range 6e-8 to 65504) and
// sum in f32: a relative error of about 1e-3 per output, where the f32 kernels give 1e-6.
//
//   conv2d_forward_coop        a = w,  b = x,  out = y,  bias
//   conv2d_backward_data_coop  a = w,  b = dy, out = dx   (one z slice per stride phase)

// The f32 kernels' tile (conv2d.wgsl): 64×64 of C, 16 K indices a step.
const TILE: u32 = 64u;
const TK: u32 = 16u;

// half_a[kk·64 + m] = A(m, k0 + kk); half_b[kk·64 + n] = B(k0 + kk, n).
var<workgroup> half_a: array<f16, 1024>;
var<workgroup> half_b: array<f16, 1024>;
// The workgroup's 64×64 tile of C, row-major, on its way from the accumulators to the stores.
var<workgroup> tile_c: array<f32, 4096>;

// Round a thread's operands to f16 and publish them (A rows 4ty.. at kk = tx, B columns
// 4tx.. at kk = ty).
fn store_half_tiles(ops: Operands, tx: u32, ty: u32) {
    let a16 = vec4<f16>(ops.a);
    let b16 = vec4<f16>(ops.b);
    for (var i = 0u; i < 4u; i++) {
        half_a[tx * TILE + 4u * ty + i] = a16[i];
        half_b[ty * TILE + 4u * tx + i] = b16[i];
    }
}

// The thread's 4×4 block of the tile of C, after the subgroups stored their accumulators.
fn block_of_tile(tx: u32, ty: u32) -> Block {
    let r = 4u * ty * TILE + 4u * tx;
    return Block(
        vec4<f32>(tile_c[r], tile_c[r + 1u], tile_c[r + 2u], tile_c[r + 3u]),
        vec4<f32>(tile_c[r + 64u], tile_c[r + 65u], tile_c[r + 66u], tile_c[r + 67u]),
        vec4<f32>(tile_c[r + 128u], tile_c[r + 129u], tile_c[r + 130u], tile_c[r + 131u]),
        vec4<f32>(tile_c[r + 192u], tile_c[r + 193u], tile_c[r + 194u], tile_c[r + 195u]),
    );
}

@compute @workgroup_size(256)
fn conv2d_forward_coop(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) group: u32,
) {
    let tx = li % 16u;
    let ty = li / 16u;
    let k = p.kernel;
    let job = job_of(wg, nwg, p.out_channels, p.in_channels * k * k, TILE);
    let split = job.split;
    let ks = job.ks;
    let origin = job.origin;
    let cols = forward_columns(origin.y + 4u * tx);
    // This subgroup's blocks: rows 16·(group / 2).., columns 32·(group mod 2)..
    let a_at = 16u * (group / 2u);
    let b_at = 32u * (group % 2u);

    let step = digits_of(TK, k, k);
    var kb = digits_of(ks.x + ty, k, k);
    var ops = forward_operands(ks.x, ks.y, kb, cols, tx, ty, origin.x);
    var c0: coop_mat16x16<f32, C>;
    var c1: coop_mat16x16<f32, C>;
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        store_half_tiles(ops, tx, ty);
        kb = digits_add(kb, step, k, k);
        ops = forward_operands(k0 + TK, ks.y, kb, cols, tx, ty, origin.x);
        workgroupBarrier();
        let am = coopLoad<coop_mat16x16<f16, A>>(&half_a[a_at], 64u);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&half_b[b_at], 64u);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&half_b[b_at + 16u], 64u);
        c0 = coopMultiplyAdd(am, b0, c0);
        c1 = coopMultiplyAdd(am, b1, c1);
        workgroupBarrier();
    }
    let at0 = &tile_c[a_at * TILE + b_at];
    let at1 = &tile_c[a_at * TILE + b_at + 16u];
    coopStoreT(c0, at0, 64u);
    coopStoreT(c1, at1, 64u);
    workgroupBarrier();
    forward_store(block_of_tile(tx, ty), cols, origin.x, ty, split);
}

@compute @workgroup_size(256)
fn conv2d_backward_data_coop(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) group: u32,
) {
    let tx = li % 16u;
    let ty = li / 16u;
    let pj = phase_job(wg, nwg, TILE);
    let ph = pj.ph;
    let split = pj.job.split;
    let ks = pj.job.ks;
    let origin = pj.job.origin;
    let cols = backward_data_columns(origin.y + 4u * tx, ph);
    let a_at = 16u * (group / 2u);
    let b_at = 32u * (group % 2u);

    let step = digits_of(TK, ph.taps_h, ph.taps_w);
    var da = digits_of(ks.x + tx, ph.taps_h, ph.taps_w);
    var db = digits_of(ks.x + ty, ph.taps_h, ph.taps_w);
    var ops = backward_data_operands(ks.x, ks.y, da, db, ph, cols, tx, ty, origin.x);
    var c0: coop_mat16x16<f32, C>;
    var c1: coop_mat16x16<f32, C>;
    for (var k0 = ks.x; k0 < ks.y; k0 += TK) {
        store_half_tiles(ops, tx, ty);
        da = digits_add(da, step, ph.taps_h, ph.taps_w);
        db = digits_add(db, step, ph.taps_h, ph.taps_w);
        ops = backward_data_operands(k0 + TK, ks.y, da, db, ph, cols, tx, ty, origin.x);
        workgroupBarrier();
        let am = coopLoad<coop_mat16x16<f16, A>>(&half_a[a_at], 64u);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&half_b[b_at], 64u);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&half_b[b_at + 16u], 64u);
        c0 = coopMultiplyAdd(am, b0, c0);
        c1 = coopMultiplyAdd(am, b1, c1);
        workgroupBarrier();
    }
    let at0 = &tile_c[a_at * TILE + b_at];
    let at1 = &tile_c[a_at * TILE + b_at + 16u];
    coopStoreT(c0, at0, 64u);
    coopStoreT(c1, at1, 64u);
    workgroupBarrier();
    backward_data_store(block_of_tile(tx, ty), cols, origin.x, ty, split);
}
