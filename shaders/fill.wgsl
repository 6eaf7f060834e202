// dst[i] = value for every element (Backend::fill with a nonzero value; zero uses
// clear_buffer).

struct FillParams {
    n: u32,
    value: f32,
}

var<immediate> p: FillParams;

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.n {
        dst[i] = p.value;
    }
}
