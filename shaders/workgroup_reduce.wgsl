// Shared by the kernels that reduce one row per 256-thread workgroup (rows.wgsl,
// spectral_norm.wgsl); the backend prepends this file to theirs, as it does rng.wgsl.
//
// The sums have a fixed order (a tree over the threads' partial sums), so results are
// deterministic: no float atomics.

const WG: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// Which row this workgroup reduces: the grid is 2D when there are more than 65535 rows.
fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Tree sum of every thread's `v`, returned to all threads. Ends on a barrier, so the
// caller may write `partial` again at once.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
