// The conv2d kernels' shared half (no entry points): parameters, bindings, and the implicit-GEMM
// operand gathers and result stores that conv2d.wgsl (f32 tiles) and conv2d_coop.wgsl
// (tensor cores) both build on. Each conv op is a matrix product C = A·B whose operands are
// gathered, never stored (the CPU's im2col matrix stays virtual):
//
//   forward          y[n, o, pix]  = Σ_r w[o, r] · cols[r, (n, pix)] + bias[o]
//                    M = O, N = batch·H'·W', K = C·k·k, r = (c, ki, kj)
//   backward data    dx[n, c, ih, iw] = Σ_(o, ki, kj) w[o, c, ki, kj] · dy[n, o, oh, ow]
//                    over the (oh, ow) with oh·s + ki − p = ih and ow·s + kj − p = iw.
//                    Split by *stride phase*: the input pixels with (ih + p) mod s = rh and
//                    (iw + p) mod s = rw meet only the taps ki = rh + s·th, kj = rw + s·tw, so
//                    each phase is a dense product with M = C, N = batch·(its pixels),
//                    K = O·⌈(k − rh)/s⌉·⌈(k − rw)/s⌉ — s² times less work than gathering over
//                    all taps, no atomics, no col2im scatter. Phases are on the grid's z.
//   backward weight  dw[o, r] = Σ_(n, pix) dy[n, o, pix] · cols[r, (n, pix)]
//                    M = O, N = C·k·k, K = batch·H'·W'
//
// A workgroup of 256 threads owns a 64×64 tile of C and walks K 16 at a time (conv2d.wgsl,
// conv2d_coop.wgsl), or a 128×128 tile, 8 at a time (conv2d_wide.wgsl); an input gradient
// into at most 4 channels has no tiles: each thread walks K alone for all rows of 4 columns,
// with the same `*_a` and `*_b` gathers at one K index (conv2d_thin.wgsl). Per step each thread
// gathers 4 + 4 values into registers: A rows r..r+3 at one K index (`*_a`) and one B row at
// 4 consecutive columns (`*_b`); in the 64-tile kernels r = 4ty, A's K index is k0 + tx and
// B's row k0 + ty at columns 4tx.., (tx, ty) = (li mod 16, li / 16). A K index is kept as
// mixed-radix digits — (c, ki, kj), (o, th, tw) or (n, oh, ow) — advanced by additions with
// carry instead of the three integer divisions per element a plain decode costs. The column
// decode is done once. Out-of-range rows, columns and K entries load as 0 and are never
// stored, so any size works. The products store C through the same functions, a 4×4 block
// at a time: rows row0 + 4ty.. at the 4 columns a column decode names.
//
// Every buffer index is guarded by the tests above it and every workgroup index is in range
// by construction: the modules are built without wgpu's per-access bounds clamps
// (src/backend/gpu/dispatch.rs).
//
// Bindings: 0 = A source, 1 = B source, 2 = output, 3 = bias (forward only).
//   forward          a = w,  b = x,  out = y,  bias
//   backward data    a = w,  b = dy, out = dx
//   backward weight  a = dy, b = x,  out = dw
//   backward bias    a = dy,         out = db

struct ConvParams {
    batch: u32,
    in_channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    out_height: u32,
    out_width: u32,
    // Split-K: the product's K is cut into `splits` slices of `k_chunk` (a multiple of 16)
    // on the grid's z; with more than one, each slice writes its partial C to slot
    // `slice · len(C)` of the output binding (a scratch buffer) and conv2d_sum_* adds them up.
    splits: u32,
    k_chunk: u32,
}

var<immediate> p: ConvParams;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// A thread's 4×4 block of C, row by row. Four named vectors rather than an array: a GPU
// compiler may put an array it cannot prove constant-indexed in (slow) local memory, and a
// block of accumulators must live in registers.
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

fn block_row(acc: Block, i: u32) -> vec4<f32> {
    switch i {
        case 0u: {
            return acc.r0;
        }
        case 1u: {
            return acc.r1;
        }
        case 2u: {
            return acc.r2;
        }
        default: {
            return acc.r3;
        }
    }
}

// The first row and column of this workgroup's `tile` × `tile` block of C: columns may span a
// 2D grid (more than 65535 column tiles), rows are on z (backward_data: phases × row tiles).
// The tile side is the kernel file's TILE: 64 in conv2d.wgsl and conv2d_coop.wgsl, 128 in
// conv2d_wide.wgsl.
fn tile_origin(wg: vec3<u32>, nwg: vec3<u32>, row_tile: u32, tile: u32) -> vec2<u32> {
    return vec2<u32>(row_tile * tile, (wg.x + wg.y * nwg.x) * tile);
}

// The slice [begin, end) of K that split `split` of a product with `k_len` terms covers.
fn k_slice(split: u32, k_len: u32) -> vec2<u32> {
    let begin = split * p.k_chunk;
    return vec2<u32>(begin, min(k_len, begin + p.k_chunk));
}

// What one workgroup computes: its split-K slice [ks.x, ks.y) of K and the first row and
// column of its tile of C. From the workgroup ids alone, so uniform across the workgroup.
struct Job {
    split: u32,
    ks: vec2<u32>,
    origin: vec2<u32>,
}

// The job of a product with `rows` rows and `k_len` terms, z = split · row tiles + row tile
// (forward, weight gradient).
fn job_of(wg: vec3<u32>, nwg: vec3<u32>, rows: u32, k_len: u32, tile: u32) -> Job {
    let row_tiles = (rows + tile - 1u) / tile;
    var job: Job;
    job.split = wg.z / row_tiles;
    job.ks = k_slice(job.split, k_len);
    job.origin = tile_origin(wg, nwg, wg.z % row_tiles, tile);
    return job;
}

// A K index as mixed-radix digits (hi, mid, lo) with radices (·, mid_radix, lo_radix).
struct Digits {
    hi: u32,
    mid: u32,
    lo: u32,
}

fn digits_of(k: u32, mid_radix: u32, lo_radix: u32) -> Digits {
    let lo = max(lo_radix, 1u);
    let plane = max(mid_radix * lo_radix, 1u);
    return Digits(k / plane, (k % plane) / lo, k % lo);
}

// d + step for a `step` whose digits are below their radices: one carry per digit at most.
fn digits_add(d: Digits, step: Digits, mid_radix: u32, lo_radix: u32) -> Digits {
    var lo = d.lo + step.lo;
    var mid = d.mid + step.mid;
    if lo >= lo_radix {
        lo -= lo_radix;
        mid += 1u;
    }
    var hi = d.hi + step.hi;
    if mid >= mid_radix {
        mid -= mid_radix;
        hi += 1u;
    }
    return Digits(hi, mid, lo);
}

// Columns past the end get this origin: every bounds test on it fails.
const OUTSIDE: i32 = -1073741824;
const LANES: vec4<u32> = vec4<u32>(0u, 1u, 2u, 3u);

// a[i] where `ok`, else 0 (one element of an A tile).
fn load_a(i: u32, ok: bool) -> f32 {
    if ok {
        return a[i];
    }
    return 0.0;
}

fn load_b(i: i32, ok: bool) -> f32 {
    if ok {
        return b[u32(i)];
    }
    return 0.0;
}

fn gather_a(i: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    return vec4<f32>(load_a(i.x, ok.x), load_a(i.y, ok.y), load_a(i.z, ok.z), load_a(i.w, ok.w));
}

fn gather_b(i: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    return vec4<f32>(load_b(i.x, ok.x), load_b(i.y, ok.y), load_b(i.z, ok.z), load_b(i.w, ok.w));
}

// Whether 0 ≤ v < len, lane by lane (a negative v wraps past any length).
fn inside(v: vec4<i32>, len: u32) -> vec4<bool> {
    return vec4<u32>(v) < vec4<u32>(len);
}

// One step's operands held by one thread: A rows 4ty..4ty+3 at K index k0 + tx, and B row
// k0 + ty at columns 4tx..4tx+3.
struct Operands {
    a: vec4<f32>,
    b: vec4<f32>,
}

// ---- forward ------------------------------------------------------------------------------

// The 4 columns (n, oh, ow) of one thread: the top-left input pixel (ih0, iw0) of each patch
// (ih0 = OUTSIDE past the last column), the patch's offset in x, and the column's in y.
struct Patches {
    ih0: vec4<i32>,
    iw0: vec4<i32>,
    x_base: vec4<i32>,
    y_base: vec4<u32>,
}

fn forward_columns(first: u32) -> Patches {
    let pix = max(p.out_height * p.out_width, 1u);
    let col = first + LANES;
    let n = col / pix;
    let px = col % pix;
    var cols: Patches;
    let pad = vec4<i32>(i32(p.padding));
    cols.ih0 = vec4<i32>((px / p.out_width) * p.stride) - pad;
    cols.iw0 = vec4<i32>((px % p.out_width) * p.stride) - pad;
    cols.x_base = vec4<i32>(n * (p.in_channels * p.height * p.width))
        + cols.ih0 * i32(p.width) + cols.iw0;
    cols.ih0 = select(cols.ih0, vec4<i32>(OUTSIDE), col >= vec4<u32>(p.batch * pix));
    cols.y_base = n * (p.out_channels * pix) + px;
    return cols;
}

// A = w [O, K] row-major: rows m0 .. m0 + 3 at K index k (0 past k_end or the last row).
fn forward_a(k: u32, k_end: u32, m0: u32) -> vec4<f32> {
    let k_len = p.in_channels * p.kernel * p.kernel;
    let m = m0 + LANES;
    return gather_a(m * k_len + k, (m < vec4<u32>(p.out_channels)) & vec4<bool>(k < k_end));
}

// B = the patch matrix at row k = (c, ki, kj) = kb, the columns of `cols`.
fn forward_b(k: u32, k_end: u32, kb: Digits, cols: Patches) -> vec4<f32> {
    let x_off = i32((kb.hi * p.height + kb.mid) * p.width + kb.lo);
    let ok = inside(cols.ih0 + i32(kb.mid), p.height) & inside(cols.iw0 + i32(kb.lo), p.width)
        & vec4<bool>(k < k_end);
    return gather_b(cols.x_base + x_off, ok);
}

// The operands of the step at k0 for thread (tx, ty) of a 64-tile, for a slice of K ending at
// k_end (kb: the digits of k0 + ty).
fn forward_operands(
    k0: u32,
    k_end: u32,
    kb: Digits,
    cols: Patches,
    tx: u32,
    ty: u32,
    row0: u32,
) -> Operands {
    return Operands(forward_a(k0 + tx, k_end, row0 + 4u * ty), forward_b(k0 + ty, k_end, kb, cols));
}

// y[n, o, pix] = acc + bias[o] for the thread's block; slice `split`'s partial sum (no bias)
// when K is split.
fn forward_store(acc: Block, cols: Patches, row0: u32, ty: u32, split: u32) {
    let pix = p.out_height * p.out_width;
    var shift = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let o = row0 + 4u * ty + i;
        if p.splits == 1u && o < p.out_channels {
            shift[i] = bias[o];
        }
    }
    let valid = cols.ih0 != vec4<i32>(OUTSIDE);
    let slot = split * p.batch * p.out_channels * pix;
    store_block(acc, row0 + 4u * ty, p.out_channels, pix, slot + cols.y_base, valid, shift);
}

// out[base[j] + row·row_stride] = acc(i, j) + shift[i] for the block's rows row0 + i below
// `rows` and its `valid` columns: the one store of every conv product.
fn store_block(
    acc: Block,
    row0: u32,
    rows: u32,
    row_stride: u32,
    base: vec4<u32>,
    valid: vec4<bool>,
    shift: vec4<f32>,
) {
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        let values = block_row(acc, i) + shift[i];
        for (var j = 0u; j < 4u; j++) {
            if row < rows && valid[j] {
                out[base[j] + row * row_stride] = values[j];
            }
        }
    }
}

// ---- backward data ------------------------------------------------------------------------

// One stride phase (rh, rw): its taps ki = rh + s·th (th < taps_h), kj = rw + s·tw, and its
// input pixels ih = s·a + rh − p for a in [a0, a0 + rows), iw = s·b + rw − p likewise.
struct Phase {
    rh: u32,
    rw: u32,
    taps_h: u32,
    taps_w: u32,
    a0: u32,
    rows: u32,
    b0: u32,
    cols: u32,
}

// The phases that meet a tap: rh, rw < min(s, k). With a stride past the kernel the others'
// pixels get no gradient; the host zero-fills dx then and dispatches only these.
fn tap_phases() -> u32 {
    return min(p.stride, p.kernel);
}

fn phase_of(index: u32) -> Phase {
    let s = p.stride;
    let k = p.kernel;
    var ph: Phase;
    ph.rh = index / tap_phases();
    ph.rw = index % tap_phases();
    ph.taps_h = select(0u, (k - ph.rh + s - 1u) / s, ph.rh < k);
    ph.taps_w = select(0u, (k - ph.rw + s - 1u) / s, ph.rw < k);
    ph.a0 = (p.padding + s - 1u - ph.rh) / s;
    ph.b0 = (p.padding + s - 1u - ph.rw) / s;
    let a1 = (p.height + p.padding + s - 1u - ph.rh) / s;
    let b1 = (p.width + p.padding + s - 1u - ph.rw) / s;
    ph.rows = select(0u, a1 - ph.a0, a1 > ph.a0);
    ph.cols = select(0u, b1 - ph.b0, b1 > ph.b0);
    return ph;
}

// The job of an input-gradient workgroup and its stride phase:
// z = (split · phases + phase) · row tiles + row tile.
struct PhaseJob {
    job: Job,
    ph: Phase,
}

fn phase_job(wg: vec3<u32>, nwg: vec3<u32>, tile: u32) -> PhaseJob {
    let row_tiles = (p.in_channels + tile - 1u) / tile;
    let phases = tap_phases() * tap_phases();
    var pj: PhaseJob;
    pj.ph = phase_of((wg.z / row_tiles) % phases);
    pj.job.split = wg.z / (row_tiles * phases);
    pj.job.ks = k_slice(pj.job.split, p.out_channels * pj.ph.taps_h * pj.ph.taps_w);
    pj.job.origin = tile_origin(wg, nwg, wg.z % row_tiles, tile);
    return pj;
}

// The 4 columns (n, a, b) of one thread: (a, b) (a = OUTSIDE past the last column), the
// offset of dy[n, 0, a, b], and of dx[n, 0, ih, iw].
struct Gathers {
    a: vec4<i32>,
    b: vec4<i32>,
    dy_base: vec4<i32>,
    dx_base: vec4<u32>,
}

fn backward_data_columns(first: u32, ph: Phase) -> Gathers {
    let phase_pix = max(ph.rows * ph.cols, 1u);
    let col = first + LANES;
    let n = col / phase_pix;
    let q = col % phase_pix;
    let ai = ph.a0 + q / max(ph.cols, 1u);
    let bi = ph.b0 + q % max(ph.cols, 1u);
    var cols: Gathers;
    cols.a = select(vec4<i32>(ai), vec4<i32>(OUTSIDE), col >= vec4<u32>(p.batch * ph.rows * ph.cols));
    cols.b = vec4<i32>(bi);
    cols.dy_base = vec4<i32>((n * (p.out_channels * p.out_height) + ai) * p.out_width + bi);
    let ih = p.stride * ai + ph.rh - p.padding;
    let iw = p.stride * bi + ph.rw - p.padding;
    cols.dx_base = n * (p.in_channels * p.height * p.width) + ih * p.width + iw;
    return cols;
}

// A(c, (o, th, tw)) = w[o, c, rh + s·th, rw + s·tw]: rows c0 .. c0 + 3 at K index k, whose
// digits are da.
fn backward_data_a(k: u32, k_end: u32, da: Digits, ph: Phase, c0: u32) -> vec4<f32> {
    let kernel = p.kernel;
    let tap = (ph.rh + p.stride * da.mid) * kernel + ph.rw + p.stride * da.lo;
    let c = c0 + LANES;
    return gather_a(
        (da.hi * p.in_channels + c) * (kernel * kernel) + tap,
        (c < vec4<u32>(p.in_channels)) & vec4<bool>(k < k_end),
    );
}

// B((o, th, tw), (n, a, b)) = dy[n, o, a − th, b − tw] where that is an output pixel: row k
// (digits db), the columns of `cols`.
fn backward_data_b(k: u32, k_end: u32, db: Digits, cols: Gathers) -> vec4<f32> {
    let dy_off = i32(db.hi * p.out_height * p.out_width) - i32(db.mid * p.out_width + db.lo);
    let ok = inside(cols.a - i32(db.mid), p.out_height) & inside(cols.b - i32(db.lo), p.out_width)
        & vec4<bool>(k < k_end);
    return gather_b(cols.dy_base + dy_off, ok);
}

// The operands of thread (tx, ty) of a 64-tile (da: the digits of k0 + tx, db of k0 + ty).
fn backward_data_operands(
    k0: u32,
    k_end: u32,
    da: Digits,
    db: Digits,
    ph: Phase,
    cols: Gathers,
    tx: u32,
    ty: u32,
    row0: u32,
) -> Operands {
    return Operands(
        backward_data_a(k0 + tx, k_end, da, ph, row0 + 4u * ty),
        backward_data_b(k0 + ty, k_end, db, cols),
    );
}

// dx[n, c, ih, iw] = acc for the thread's block (in slice `split`'s slot when K is split).
fn backward_data_store(acc: Block, cols: Gathers, row0: u32, ty: u32, split: u32) {
    let in_plane = p.height * p.width;
    let slot = split * p.batch * p.in_channels * in_plane;
    let valid = cols.a != vec4<i32>(OUTSIDE);
    store_block(acc, row0 + 4u * ty, p.in_channels, in_plane, slot + cols.dx_base, valid, vec4<f32>(0.0));
}

// ---- backward weight ----------------------------------------------------------------------

// The 4 columns r = (c, ki, kj) of one thread: the tap (ki − p, kj − p) (OUTSIDE past the last
// column) and the offset c·H·W + (ki − p)·W + kj − p.
struct Taps {
    ki: vec4<i32>,
    kj: vec4<i32>,
    x_off: vec4<i32>,
}

fn backward_weight_columns(first: u32) -> Taps {
    let k = p.kernel;
    let kk2 = max(k * k, 1u);
    let r = first + LANES;
    let c = r / kk2;
    var cols: Taps;
    let pad = vec4<i32>(i32(p.padding));
    cols.ki = vec4<i32>((r % kk2) / k) - pad;
    cols.kj = vec4<i32>(r % k) - pad;
    cols.x_off = vec4<i32>(c * (p.height * p.width)) + cols.ki * i32(p.width) + cols.kj;
    cols.ki = select(cols.ki, vec4<i32>(OUTSIDE), r >= vec4<u32>(p.in_channels * kk2));
    return cols;
}

// A(o, (n, oh, ow)) = dy[n, o, oh, ow]: rows o0 .. o0 + 3 at K index k (digits da).
fn backward_weight_a(k: u32, k_end: u32, da: Digits, o0: u32) -> vec4<f32> {
    let pix = p.out_height * p.out_width;
    let o = o0 + LANES;
    return gather_a(
        (da.hi * p.out_channels + o) * pix + da.mid * p.out_width + da.lo,
        (o < vec4<u32>(p.out_channels)) & vec4<bool>(k < k_end),
    );
}

// B((n, oh, ow), (c, ki, kj)) = x[n, c, oh·s + ki − p, ow·s + kj − p]: row k (digits db), the
// columns of `cols`.
fn backward_weight_b(k: u32, k_end: u32, db: Digits, cols: Taps) -> vec4<f32> {
    let ih0 = i32(db.mid * p.stride);
    let iw0 = i32(db.lo * p.stride);
    let x_row = i32(db.hi * p.in_channels * p.height * p.width) + ih0 * i32(p.width) + iw0;
    let ok = inside(cols.ki + ih0, p.height) & inside(cols.kj + iw0, p.width)
        & vec4<bool>(k < k_end);
    return gather_b(cols.x_off + x_row, ok);
}

// The operands of thread (tx, ty) of a 64-tile (da: the digits of k0 + tx, db of k0 + ty).
fn backward_weight_operands(
    k0: u32,
    k_end: u32,
    da: Digits,
    db: Digits,
    cols: Taps,
    tx: u32,
    ty: u32,
    row0: u32,
) -> Operands {
    return Operands(
        backward_weight_a(k0 + tx, k_end, da, row0 + 4u * ty),
        backward_weight_b(k0 + ty, k_end, db, cols),
    );
}

// dw[o, r] = acc for the thread's block (in slice `split`'s slot when K is split).
fn backward_weight_store(acc: Block, cols: Taps, row0: u32, col0: u32, ty: u32, split: u32) {
    let n_len = p.in_channels * p.kernel * p.kernel;
    let slot = split * p.out_channels * n_len;
    let valid = cols.ki != vec4<i32>(OUTSIDE);
    store_block(acc, row0 + 4u * ty, p.out_channels, n_len, slot + col0 + LANES, valid, vec4<f32>(0.0));
}
