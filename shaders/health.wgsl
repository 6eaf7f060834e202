// Training health without a readback (src/train/health.rs, FlagNonFinite): if any x[i] is NaN or ±∞ and
// flags[slot] is still 0, flags[slot] = mark (the host's iteration + 1). Flags are sticky, so
// the host learns the first bad iteration whenever it next reads them (at a log line or before
// a checkpoint), never by a per-step round trip.
//
// WGSL has no isnan/isinf, and implementations may assume that floats are finite (x != x can
// be folded away), so the test is on the bits: exponent all ones.

struct HealthParams {
    n: u32,
    slot: u32,
    mark: f32,
}

var<immediate> p: HealthParams;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> flags: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn flag_non_finite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.n {
        return;
    }
    let exponent = bitcast<u32>(x[i]) & 0x7f800000u;
    // Every thread that finds one writes the same mark: the race is benign.
    if exponent == 0x7f800000u && flags[p.slot] == 0.0 {
        flags[p.slot] = p.mark;
    }
}
