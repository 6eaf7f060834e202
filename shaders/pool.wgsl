// Average pooling with a k×k window and stride k, no padding (PyTorch's AvgPool2d(k)): rows
// and columns past the last whole window are dropped. Both directions are gathers, one thread
// per element written, so the backward pass needs no atomics and overwrites all of dx
// (0 where no whole window covers the input).

struct PoolParams {
    // batch · channels
    planes: u32,
    height: u32,
    width: u32,
    kernel: u32,
    out_height: u32,
    out_width: u32,
}

var<immediate> p: PoolParams;

// forward: src = x, dst = y; backward: src = dy, dst = dx.
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    // The grid is 2D when there are more than 65535 workgroups.
    return gid.x + gid.y * nwg.x * WG;
}

// y[plane, i, j] = mean of x[plane, i·k .. i·k + k, j·k .. j·k + k].
@compute @workgroup_size(256)
fn avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    let out_plane = p.out_height * p.out_width;
    if e >= p.planes * out_plane {
        return;
    }
    let plane = e / out_plane;
    let i = (e % out_plane) / p.out_width;
    let j = e % p.out_width;
    let base = (plane * p.height + i * p.kernel) * p.width + j * p.kernel;
    var sum = 0.0;
    for (var di = 0u; di < p.kernel; di++) {
        // Each window row summed on its own, then added: the CPU twin's order.
        var row = 0.0;
        for (var dj = 0u; dj < p.kernel; dj++) {
            row += src[base + di * p.width + dj];
        }
        sum += row;
    }
    dst[e] = sum * (1.0 / f32(p.kernel * p.kernel));
}

// dx[plane, h, w] = dy[plane, h / k, w / k] / k² inside a whole window, else 0.
@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    let in_plane = p.height * p.width;
    if e >= p.planes * in_plane {
        return;
    }
    let plane = e / in_plane;
    let i = (e % in_plane) / p.width / p.kernel;
    let j = e % p.width / p.kernel;
    var g = 0.0;
    if i < p.out_height && j < p.out_width {
        g = src[(plane * p.out_height + i) * p.out_width + j] * (1.0 / f32(p.kernel * p.kernel));
    }
    dst[e] = g;
}
