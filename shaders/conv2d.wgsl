// 2D convolution (NCHW, weight [O, C, k, k], zero padding) and its two gradients, each an
// *implicit* GEMM: the patch matrix cols[r = (c, ki, kj), col = (n, oh, ow)] of the CPU's
// im2col is never stored; its elements are gathered from x (or dy) straight into workgroup
// memory, with the padding test done at load time. That saves the C·k·k-times-larger buffer
// and its memory traffic, which would dominate a conv of a few channels.
//
//   conv2d_forward          y[n, o, pix]  = Σ_r w[o, r] · cols[r, (n, pix)] + bias[o]
//                           M = O, N = batch·H'·W', K = C·k·k
//   conv2d_backward_data    dx[n, c, ih, iw] = Σ_(o, ki, kj) w[o, c, ki, kj] · dy[n, o, oh, ow]
//                           over the (oh, ow) with oh·s + ki − p = ih and ow·s + kj − p = iw:
//                           a gather per input pixel (so no atomics and no col2im scatter),
//                           M = C, N = batch·H·W, K = O·k·k; B entries whose (oh, ow) is not
//                           an output position (wrong stride phase, out of range) are 0.
//   conv2d_backward_weight  dw[o, r] = Σ_(n, pix) dy[n, o, pix] · cols[r, (n, pix)]
//                           M = O, N = C·k·k, K = batch·H'·W' (one workgroup per output
//                           tile loops over the whole reduction: no atomics, no second pass)
//   conv2d_backward_bias    db[o] = Σ_(n, pix) dy[n, o, pix]: one workgroup per channel,
//                           tree reduction in workgroup memory.
//
// Tiling: each workgroup of 16×16 threads owns a 64×64 tile of C; thread (tx, ty) computes
// the 4×4 outputs (ty + 16i, tx + 16j), i, j < 4 — strided rather than contiguous so that
// the 16 threads of a row read 16 consecutive words of the tiles and write 16 consecutive
// columns of C. The K dimension advances 16 at a time through two 16×64 tiles (8 KiB),
// each filled by 4 loads per thread. Out-of-range rows, columns and K entries load as 0 and
// are never stored, so any size works.
//
// Bindings: 0 = A source, 1 = B source, 2 = output, 3 = bias (forward only).
//   conv2d_forward          a = w,  b = x,  out = y,  bias
//   conv2d_backward_data    a = w,  b = dy, out = dx
//   conv2d_backward_weight  a = dy, b = x,  out = dw
//   conv2d_backward_bias    a = dy,         out = db

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
}

var<immediate> p: ConvParams;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// Must match CONV_TILE in src/backend/gpu/mod.rs.
const TILE: u32 = 64u;
const TK: u32 = 16u;
const WG: u32 = 256u;

// tile_a[kk][m] = A(m0 + m, k0 + kk) and tile_b[kk][n] = B(k0 + kk, n0 + n).
var<workgroup> tile_a: array<array<f32, 64>, 16>;
var<workgroup> tile_b: array<array<f32, 64>, 16>;

// acc[i][j] += Σ_kk tile_a[kk][ty + 16i] · tile_b[kk][tx + 16j] for this thread's 4×4 block.
fn multiply_tiles(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TK; kk++) {
        let bv = vec4<f32>(
            tile_b[kk][lid.x],
            tile_b[kk][lid.x + 16u],
            tile_b[kk][lid.x + 32u],
            tile_b[kk][lid.x + 48u],
        );
        for (var i = 0u; i < 4u; i++) {
            (*acc)[i] += tile_a[kk][lid.y + 16u * i] * bv;
        }
    }
}

// The first row and column of this workgroup's tile of C: columns may span a 2D grid (more
// than 65535 column tiles), rows are on z.
fn tile_origin(wg: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    return vec2<u32>(wg.z * TILE, (wg.x + wg.y * nwg.x) * TILE);
}

// x[n, c, oh·s + ki − p, ow·s + kj − p], 0 in the padding. `x` is binding b.
fn x_patch(n: u32, r: u32, oh: u32, ow: u32) -> f32 {
    let kk2 = p.kernel * p.kernel;
    let c = r / kk2;
    let ki = (r % kk2) / p.kernel;
    let kj = r % p.kernel;
    let ih = i32(oh * p.stride + ki) - i32(p.padding);
    let iw = i32(ow * p.stride + kj) - i32(p.padding);
    if ih < 0 || iw < 0 || ih >= i32(p.height) || iw >= i32(p.width) {
        return 0.0;
    }
    return b[((n * p.in_channels + c) * p.height + u32(ih)) * p.width + u32(iw)];
}

@compute @workgroup_size(16, 16)
fn conv2d_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let pix = p.out_height * p.out_width;
    let m_len = p.out_channels;
    let n_len = p.batch * pix;
    let k_len = p.in_channels * p.kernel * p.kernel;
    let origin = tile_origin(wg, nwg);

    // The B column this thread loads is the same for every K step: decode it once.
    let b_col = origin.y + li % TILE;
    let b_in = b_col < n_len;
    let b_n = b_col / max(pix, 1u);
    let b_oh = (b_col % max(pix, 1u)) / p.out_width;
    let b_ow = b_col % p.out_width;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_len; k0 += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + WG * q;
            // A = w [O, K] row-major: consecutive threads read consecutive K.
            let am = e / TK;
            let ak = e % TK;
            var va = 0.0;
            if origin.x + am < m_len && k0 + ak < k_len {
                va = a[(origin.x + am) * k_len + k0 + ak];
            }
            tile_a[ak][am] = va;
            // B = the patch matrix, gathered: consecutive threads read consecutive pixels.
            let bk = e / TILE;
            var vb = 0.0;
            if b_in && k0 + bk < k_len {
                vb = x_patch(b_n, k0 + bk, b_oh, b_ow);
            }
            tile_b[bk][e % TILE] = vb;
        }
        workgroupBarrier();
        multiply_tiles(&acc, lid);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let o = origin.x + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = origin.y + lid.x + 16u * j;
            if o < m_len && col < n_len {
                let n = col / pix;
                out[(n * m_len + o) * pix + col % pix] = acc[i][j] + bias[o];
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv2d_backward_data(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let kk2 = p.kernel * p.kernel;
    let in_pix = p.height * p.width;
    let out_pix = p.out_height * p.out_width;
    let m_len = p.in_channels;
    let n_len = p.batch * in_pix;
    let k_len = p.out_channels * kk2;
    let origin = tile_origin(wg, nwg);

    // This thread's B column is the input pixel (n, ih, iw), shifted by the padding.
    let b_col = origin.y + li % TILE;
    let b_in = b_col < n_len;
    let b_n = b_col / max(in_pix, 1u);
    let b_ihp = (b_col % max(in_pix, 1u)) / p.width + p.padding;
    let b_iwp = b_col % p.width + p.padding;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_len; k0 += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + WG * q;
            // A(c, (o, ki, kj)) = w[o, c, ki, kj]: consecutive K within one o are contiguous.
            let am = e / TK;
            let ak = e % TK;
            var va = 0.0;
            let k = k0 + ak;
            if origin.x + am < m_len && k < k_len {
                let o = k / kk2;
                va = a[(o * p.in_channels + origin.x + am) * kk2 + k % kk2];
            }
            tile_a[ak][am] = va;
            // B((o, ki, kj), (n, ih, iw)) = dy[n, o, oh, ow] where oh·s = ih + p − ki and
            // ow·s = iw + p − kj land on an output position; 0 otherwise.
            let bk = e / TILE;
            var vb = 0.0;
            let kb = k0 + bk;
            if b_in && kb < k_len {
                let o = kb / kk2;
                let ki = (kb % kk2) / p.kernel;
                let kj = kb % p.kernel;
                if b_ihp >= ki && b_iwp >= kj {
                    let th = b_ihp - ki;
                    let tw = b_iwp - kj;
                    let oh = th / p.stride;
                    let ow = tw / p.stride;
                    if th % p.stride == 0u && tw % p.stride == 0u && oh < p.out_height
                        && ow < p.out_width {
                        vb = b[((b_n * p.out_channels + o) * p.out_height + oh) * p.out_width + ow];
                    }
                }
            }
            tile_b[bk][e % TILE] = vb;
        }
        workgroupBarrier();
        multiply_tiles(&acc, lid);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let c = origin.x + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = origin.y + lid.x + 16u * j;
            if c < m_len && col < n_len {
                let n = col / in_pix;
                out[(n * m_len + c) * in_pix + col % in_pix] = acc[i][j];
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv2d_backward_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let pix = p.out_height * p.out_width;
    let m_len = p.out_channels;
    let n_len = p.in_channels * p.kernel * p.kernel;
    let k_len = p.batch * pix;
    let origin = tile_origin(wg, nwg);

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_len; k0 += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + WG * q;
            // Both operands are read along the reduction (n, pix), which is contiguous in
            // dy and (for stride 1) in x: consecutive threads take consecutive K.
            let kk = e % TK;
            let mn = e / TK;
            let k = k0 + kk;
            let n = k / max(pix, 1u);
            let px = k % max(pix, 1u);
            // A(o, (n, pix)) = dy[n, o, pix].
            var va = 0.0;
            if origin.x + mn < m_len && k < k_len {
                va = a[(n * m_len + origin.x + mn) * pix + px];
            }
            tile_a[kk][mn] = va;
            // B((n, pix), r) = cols[r, (n, pix)], gathered from x.
            var vb = 0.0;
            if origin.y + mn < n_len && k < k_len {
                vb = x_patch(n, origin.y + mn, px / p.out_width, px % p.out_width);
            }
            tile_b[kk][mn] = vb;
        }
        workgroupBarrier();
        multiply_tiles(&acc, lid);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let o = origin.x + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let r = origin.y + lid.x + 16u * j;
            if o < m_len && r < n_len {
                out[o * n_len + r] = acc[i][j];
            }
        }
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
