// Diagnostic kernel: the raw Philox4x32-10 words for a list of counters, so tests (and
// `ebm info`) can check that this device's generator equals src/rng.rs bit for bit.
// rng.wgsl is prepended to this file.

struct WordsParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
}

var<immediate> p: WordsParams;

@group(0) @binding(0) var<storage, read> counters: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> words: array<vec4<u32>>;

@compute @workgroup_size(64)
fn philox_words(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i < p.n {
        words[i] = philox4x32_10(counters[i], vec2<u32>(p.seed_lo, p.seed_hi));
    }
}
