// The contrastive-divergence loss (IGEBM form), the CD objective's own kernel
// (src/train/cd_loss.rs), over energies = [E(x⁺) for n_pos rows; E(x⁻) for the rest].
// d_energy[j] = (±1 + 2α·E_j) / n_±; stats = [loss, mean E⁺, mean E⁻, mean E⁺², mean E⁻²].
// One workgroup: each thread sums a strided slice, then a tree reduction in workgroup memory
// (one energy per sample is small enough to need no second pass or atomics).

const WG: u32 = 256u;

struct CdParams {
    n: u32,
    n_pos: u32,
    alpha: f32,
}

var<immediate> cd: CdParams;

@group(0) @binding(0) var<storage, read> energies: array<f32>;
@group(0) @binding(1) var<storage, read_write> d_energy: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

// Per thread: (Σ E⁺, Σ E⁻, Σ E⁺², Σ E⁻²).
var<workgroup> partial4: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn cd_loss(@builtin(local_invocation_index) lid: u32) {
    let n_pos = f32(cd.n_pos);
    let n_neg = f32(cd.n - cd.n_pos);
    var acc = vec4<f32>(0.0);
    for (var j = lid; j < cd.n; j += WG) {
        let e = energies[j];
        if j < cd.n_pos {
            acc += vec4<f32>(e, 0.0, e * e, 0.0);
            d_energy[j] = (1.0 + 2.0 * cd.alpha * e) / n_pos;
        } else {
            acc += vec4<f32>(0.0, e, 0.0, e * e);
            d_energy[j] = (-1.0 + 2.0 * cd.alpha * e) / n_neg;
        }
    }
    partial4[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial4[lid] += partial4[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let s = partial4[0];
        let mp = s.x / n_pos;
        let mn = s.y / n_neg;
        let mp2 = s.z / n_pos;
        let mn2 = s.w / n_neg;
        stats[0] = mp - mn + cd.alpha * (mp2 + mn2);
        stats[1] = mp;
        stats[2] = mn;
        stats[3] = mp2;
        stats[4] = mn2;
    }
}
