// Writing given values into tensors: a constant (Backend::fill with a nonzero value; zero uses
// clear_buffer), and the known pixels of an inpainting chain (Backend::keep_known).

struct FillParams {
    n: u32,
    value: f32,
}

var<immediate> p: FillParams;

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> known: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.n {
        dst[i] = p.value;
    }
}

// dst[i] = known[i] where mask[i] != 0; the rest keeps what Langevin made of it.
@compute @workgroup_size(256)
fn keep_known(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.n && mask[i] != 0.0 {
        dst[i] = known[i];
    }
}
