// Nearest-neighbour upsampling by an integer factor f (PyTorch's nn.Upsample(mode="nearest"))
// and its adjoint. Both directions are gathers, one thread per element written: the
// backward sums its own f×f block of dy, so it needs no atomics and overwrites all of dx.

struct UpsampleParams {
    // batch · channels
    planes: u32,
    // Input height and width.
    height: u32,
    width: u32,
    factor: u32,
}

var<immediate> p: UpsampleParams;

// forward: src = x, dst = y; backward: src = dy, dst = dx.
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    // The grid is 2D when there are more than 65535 workgroups.
    return gid.x + gid.y * nwg.x * WG;
}

// y[plane, i, j] = x[plane, i / f, j / f].
@compute @workgroup_size(256)
fn upsample_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    let out_width = p.width * p.factor;
    let out_plane = p.height * p.factor * out_width;
    if e >= p.planes * out_plane {
        return;
    }
    let plane = e / out_plane;
    let i = (e % out_plane) / out_width / p.factor;
    let j = e % out_width / p.factor;
    dst[e] = src[(plane * p.height + i) * p.width + j];
}

// dx[plane, i, j] = Σ over the f×f block of dy at (i·f, j·f): each block row summed, then the
// rows added (the CPU twin's order).
@compute @workgroup_size(256)
fn upsample_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    let in_plane = p.height * p.width;
    if e >= p.planes * in_plane {
        return;
    }
    let plane = e / in_plane;
    let i = (e % in_plane) / p.width;
    let j = e % p.width;
    let out_width = p.width * p.factor;
    let base = ((plane * p.height + i) * p.factor * out_width) + j * p.factor;
    var sum = 0.0;
    for (var a = 0u; a < p.factor; a++) {
        var row = 0.0;
        for (var b = 0u; b < p.factor; b++) {
            row += src[base + a * out_width + b];
        }
        sum += row;
    }
    dst[e] = sum;
}
