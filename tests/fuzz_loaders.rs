//! Property ("fuzz") tests of the loaders of untrusted input — model specs, safetensors model
//! files and checkpoints, image datasets: valid inputs mutated at random (structurally and
//! byte by byte) must load or fail with an error naming the file or the problem, and never
//! panic or abort on an absurd allocation.
//!
//! Each test runs for a fixed time budget, `EBM_FUZZ_SECS` seconds (default 2), drawing
//! its cases from a seed: `EBM_TEST_SEED` if set, else the clock. A failure prints the seed
//! and the case number; `EBM_TEST_SEED=S EBM_FUZZ_CASE=N cargo test --release --test
//! fuzz_loaders` replays exactly that case.

#[path = "common/gpu.rs"]
mod gpu_common;

#[path = "common/tempdir.rs"]
mod tempdir;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};
use tempdir::TempDir;

use ebm::data::images;
use ebm::nn::spec::{LayerSpec, MAX_VALUES};
use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::{load_model, load_trainer, model_from_file, save_checkpoint};
use ebm::train::{TrainConfig, Trainer};
use ebm::{CpuBackend, EnergyNet, Spec};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

// ------------------------------------------------------------------ harness

/// Runs `case(rng, k)` for k = 0, 1, … until the time budget is spent (or only case
/// `EBM_FUZZ_CASE`), each case with its own generator drawn from `seed` (the test's
/// [`gpu_common::test_seed`]). A panic or
/// a failed check is reported with the seed and the case number, and what the case returns
/// describes its input.
fn fuzz(name: &str, seed: u64, mut case: impl FnMut(&mut StdRng, u64) -> Result<(), String>) {
    let secs: f64 = std::env::var("EBM_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let only: Option<u64> = std::env::var("EBM_FUZZ_CASE")
        .ok()
        .and_then(|s| s.parse().ok());
    let budget = Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut k = only.unwrap_or(0);
    loop {
        let mut rng = StdRng::seed_from_u64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let replay = format!("EBM_TEST_SEED={seed} EBM_FUZZ_CASE={k}");
        match catch_unwind(AssertUnwindSafe(|| case(&mut rng, k))) {
            Ok(Ok(())) => {}
            Ok(Err(what)) => panic!("{name}: case {k} failed (replay: {replay}): {what}"),
            Err(_) => panic!("{name}: case {k} panicked (replay: {replay}); see above"),
        }
        k += 1;
        if only.is_some() || t0.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "{name}: {} cases in {:.1} s (EBM_TEST_SEED={seed})",
        k - only.unwrap_or(0),
        t0.elapsed().as_secs_f64()
    );
}

/// Fails the case unless `cond`.
fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

// ------------------------------------------------------------------ random specs

fn activation(rng: &mut StdRng) -> LayerSpec {
    match rng.random_range(0..3) {
        0 => LayerSpec::Relu,
        1 => LayerSpec::Silu,
        _ => LayerSpec::LeakyRelu {
            slope: rng.random_range(0.0..0.5),
        },
    }
}

/// A small valid spec: an MLP on [D] or a ConvNet on [C, H, W] (conv, activation and
/// average-pool layers, then flatten and linear layers down to one energy).
fn random_spec(rng: &mut StdRng) -> Spec {
    let mut layers = Vec::new();
    let input;
    let mut width;
    if rng.random_bool(0.5) {
        width = rng.random_range(1..=8);
        input = vec![width];
    } else {
        let (c, mut h, mut w) = (
            rng.random_range(1..=3),
            rng.random_range(1..=9),
            rng.random_range(1..=9),
        );
        input = vec![c, h, w];
        let mut ch = c;
        for _ in 0..rng.random_range(0..=3) {
            if rng.random_bool(0.3) && h >= 2 && w >= 2 {
                layers.push(LayerSpec::AvgPool { kernel: 2 });
                (h, w) = (h / 2, w / 2);
                continue;
            }
            let kernel = rng.random_range(1..=3.min(h).min(w));
            let stride = rng.random_range(1..=2);
            let padding = rng.random_range(0..kernel);
            let outputs = rng.random_range(1..=4);
            layers.push(LayerSpec::Conv2d {
                inputs: ch,
                outputs,
                kernel,
                stride,
                padding,
            });
            layers.push(activation(rng));
            ch = outputs;
            h = (h + 2 * padding - kernel) / stride + 1;
            w = (w + 2 * padding - kernel) / stride + 1;
        }
        layers.push(LayerSpec::Flatten);
        width = ch * h * w;
    }
    for _ in 0..rng.random_range(0..=2) {
        let outputs = rng.random_range(1..=8);
        layers.push(LayerSpec::Linear {
            inputs: width,
            outputs,
        });
        layers.push(activation(rng));
        width = outputs;
    }
    layers.push(LayerSpec::Linear {
        inputs: width,
        outputs: 1,
    });
    Spec::sequential(input, layers)
}

/// Sizes worth trying in place of a valid one.
fn odd_size(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..6) {
        0 => 0,
        1 => 1_000_000_000,
        2 => u64::MAX,
        3 => 1 << 32,
        4 => 1 << 28,
        _ => rng.random_range(2..100),
    }
}

/// A wrong-typed JSON value.
fn odd_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..7) {
        0 => json!(null),
        1 => json!("3"),
        2 => json!(1.5),
        3 => json!([1, 2]),
        4 => json!({"a": 1}),
        5 => json!(true),
        _ => json!(-3),
    }
}

/// One structural mutation of a spec's JSON, and (when the result must be an error) a text
/// the error must contain.
fn mutate_spec(rng: &mut StdRng, v: &mut Value) -> (String, Option<String>) {
    let n = v["layers"].as_array().map_or(0, Vec::len);
    let i = rng.random_range(0..n.max(1));
    let layers = v["layers"].as_array_mut().expect("layers");
    match rng.random_range(0..12) {
        0 => {
            layers.remove(i);
            (format!("drop layer {i}"), None)
        }
        1 => {
            let l = layers[i].clone();
            layers.insert(i, l);
            (format!("duplicate layer {i}"), None)
        }
        2 => {
            let j = rng.random_range(0..n);
            layers.swap(i, j);
            (format!("swap layers {i} and {j}"), None)
        }
        3 => {
            let name = format!("dense{}", rng.random_range(0..100));
            layers[i]["type"] = json!(name);
            (format!("layer {i} type {name}"), Some(name))
        }
        4 => {
            layers[i].as_object_mut().unwrap().remove("type");
            (format!("layer {i} without type"), Some("type".into()))
        }
        5 => {
            layers[i]["bogus"] = json!(1);
            (
                format!("layer {i} with a field 'bogus'"),
                Some("bogus".into()),
            )
        }
        6 | 7 => {
            // A size of a linear, conv or pool layer: zero, huge, or just different.
            let keys: Vec<String> = layers[i]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["in", "out", "kernel", "stride", "padding"].contains(&k.as_str()))
                .cloned()
                .collect();
            if keys.is_empty() {
                return ("no size to change".into(), None);
            }
            let key = &keys[rng.random_range(0..keys.len())];
            let old = layers[i][key].as_u64().unwrap_or(0);
            let new = odd_size(rng);
            layers[i][key] = json!(new);
            // Zero or above the limits is always wrong (padding 0 may be right); a changed
            // in/out breaks the chain unless a flatten or pool absorbs nothing — so only the
            // sure cases have a needle.
            let sure = (new == 0 && key != "padding") || (new >= 1 << 28 && key != "stride");
            let needle = (sure && new != old).then(|| "layers.".to_string());
            (format!("layer {i} {key} = {new}"), needle)
        }
        8 => {
            let keys: Vec<String> = layers[i]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "type")
                .cloned()
                .collect();
            if keys.is_empty() {
                return ("no field to retype".into(), None);
            }
            let key = &keys[rng.random_range(0..keys.len())];
            let value = odd_value(rng);
            let needle = match &value {
                Value::Number(n) if n.as_i64() == Some(-3) => "-3",
                _ => "invalid type",
            };
            // A float or negative in a slope is a valid f32.
            let needle = (key != "slope").then(|| needle.to_string());
            layers[i][key] = value.clone();
            (format!("layer {i} {key} = {value}"), needle)
        }
        9 => {
            let what = match rng.random_range(0..5) {
                0 => json!([]),
                1 => json!([0, 4]),
                2 => json!([1_000_000, 1_000_000, 1_000_000]),
                3 => json!("2"),
                _ => json!([u64::MAX, 2]),
            };
            v["input"] = what.clone();
            (format!("input = {what}"), None)
        }
        10 => {
            let key = ["input", "layers"][rng.random_range(0..2)];
            v.as_object_mut().unwrap().remove(key);
            (format!("no {key}"), Some(key.into()))
        }
        _ => {
            let what = [json!([]), json!({}), json!(null)][rng.random_range(0..3)].clone();
            v["layers"] = what.clone();
            (format!("layers = {what}"), None)
        }
    }
}

/// Byte-level damage to a JSON text.
fn damage_text(rng: &mut StdRng, text: &str) -> (String, String, Option<String>) {
    let bytes = text.as_bytes();
    match rng.random_range(0..4) {
        0 => {
            let at = rng.random_range(0..bytes.len());
            let cut = String::from_utf8_lossy(&bytes[..at]).into_owned();
            // An error, but not necessarily about the end: serde may stop earlier.
            (format!("truncated at {at}"), cut, Some(String::new()))
        }
        1 => {
            let mut b = bytes.to_vec();
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..b.len());
                b[at] ^= 1 << rng.random_range(0..8);
            }
            let text = String::from_utf8_lossy(&b).into_owned();
            ("flipped bits".into(), text, None)
        }
        2 => {
            let len = rng.random_range(0..200);
            let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let text = String::from_utf8_lossy(&b).into_owned();
            ("random bytes".into(), text, None)
        }
        _ => {
            // Random JSON-ish tokens.
            const TOKENS: [&str; 16] = [
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "\"input\"",
                "\"layers\"",
                "\"type\"",
                "\"linear\"",
                "\"in\"",
                "\"out\"",
                "1",
                "0",
                "-1",
                "1e99",
            ];
            let text: String = (0..rng.random_range(0..40))
                .map(|_| TOKENS[rng.random_range(0..TOKENS.len())])
                .collect();
            ("token soup".into(), text, None)
        }
    }
}

/// What must hold of any spec text: `from_json` does not panic; an error says it is a spec
/// error and contains `needle`; a spec that parses checks out, round-trips, and (when small)
/// builds a net on the CPU whose energies come out.
fn check_spec_text(text: &str, needle: Option<&str>) -> Result<(), String> {
    let b = CpuBackend::new();
    // The net must refuse whatever the checked loader refuses, from the same struct.
    if let Ok(raw) = serde_json::from_str::<Spec>(text) {
        let checked = raw.shapes();
        let small = raw.param_count().is_ok_and(|p| p <= 100_000)
            && raw.activation_values().is_ok_and(|a| a <= 100_000);
        if checked.is_err() || small {
            let net = EnergyNet::new(&b, &raw, 1);
            check(net.is_ok() == checked.is_ok(), || {
                format!(
                    "EnergyNet::new and Spec::shapes disagree on {text}: net {:?}, shapes {:?}",
                    net.err(),
                    checked.err()
                )
            })?;
        }
    }
    match Spec::from_json(text) {
        Err(e) => {
            let msg = e.to_string();
            check(
                msg.starts_with("bad model spec: ") && msg.len() > 16,
                || format!("unclear error {msg:?} for {text}"),
            )?;
            if let Some(needle) = needle {
                check(msg.contains(needle), || {
                    format!("error {msg:?} does not mention {needle:?}; spec {text}")
                })?;
            }
        }
        Ok(spec) => {
            check(needle.is_none(), || {
                format!("accepted a bad spec (expected an error mentioning {needle:?}): {text}")
            })?;
            let shapes = spec.shapes().map_err(|e| format!("{e}: {text}"))?;
            check(
                shapes.last().map(|s| s.iter().product()) == Some(1usize),
                || format!("accepted a spec with shapes {shapes:?}"),
            )?;
            let params = spec.param_count().map_err(|e| e.to_string())?;
            check(params <= MAX_VALUES, || format!("{params} parameters"))?;
            spec.forward_flops().map_err(|e| e.to_string())?;
            let again = Spec::from_json(&spec.to_json()).map_err(|e| e.to_string())?;
            check(again == spec, || format!("round trip changed {text}"))?;
            if params <= 100_000 && spec.activation_values().unwrap() <= 100_000 {
                let mut net = EnergyNet::new(&b, &spec, 7).map_err(|e| format!("{e}: {text}"))?;
                let x = vec![0.25; 2 * spec.input_len()];
                let e = net.energies(&b, &x).map_err(|e| format!("{e}: {text}"))?;
                check(e.len() == 2, || {
                    format!("{} energies for 2 inputs", e.len())
                })?;
            }
        }
    }
    Ok(())
}

#[test]
fn spec_loader_never_panics() {
    fuzz("spec", gpu_common::test_seed(), |rng, _| {
        let spec = random_spec(rng);
        let mut v = serde_json::to_value(&spec).unwrap();
        // A valid spec passes.
        check_spec_text(&v.to_string(), None).map_err(|e| format!("valid spec: {e}"))?;
        // Then one to three structural mutations (a needle only for a single one: a later
        // mutation may repair or change what the first broke), or damage to the text.
        let rounds = rng.random_range(1..=3);
        let mut what = Vec::new();
        let mut needle = None;
        for _ in 0..rounds {
            if v["layers"].as_array().is_none_or(|l| l.is_empty()) {
                break;
            }
            let (w, n) = mutate_spec(rng, &mut v);
            what.push(w);
            needle = if rounds == 1 { n } else { None };
        }
        let mut text = v.to_string();
        if rng.random_bool(0.3) {
            let (w, damaged, n) = damage_text(rng, &text);
            what.push(w);
            // Cutting the text is an error whatever the mutations did.
            needle = n.filter(|_| damaged.trim() != text.trim());
            text = damaged;
        }
        check_spec_text(&text, needle.as_deref()).map_err(|e| format!("{what:?}: {e}"))
    });
}

/// Sizes that parse as JSON but would need absurd memory: refused by the loader and by
/// `EnergyNet::new` with an error, not an abort on allocation.
#[test]
fn huge_specs_are_errors_not_aborts() {
    let b = CpuBackend::new();
    let cases = [
        (
            r#"{"input":[1000000000],"layers":[{"type":"linear","in":1000000000,"out":1000000000},{"type":"linear","in":1000000000,"out":1}]}"#,
            "input shape",
        ),
        (
            r#"{"input":[100000],"layers":[{"type":"linear","in":100000,"out":100000},{"type":"linear","in":100000,"out":1}]}"#,
            "layers.0: the parameter count",
        ),
        (
            r#"{"input":[3,64,64],"layers":[{"type":"conv2d","in":3,"out":100000,"kernel":3,"padding":1},{"type":"conv2d","in":100000,"out":1,"kernel":64}]}"#,
            "layers.0: the output shape",
        ),
        (
            r#"{"input":[4294967296,4294967296,4294967296],"layers":[{"type":"flatten"},{"type":"linear","in":1,"out":1}]}"#,
            "input shape",
        ),
        (
            r#"{"input":[1,8,8],"layers":[{"type":"conv2d","in":1,"out":1,"kernel":3,"padding":18446744073709551615}]}"#,
            "layers.0",
        ),
        (
            r#"{"input":[2],"layers":[{"type":"leaky_relu","slope":1e300},{"type":"linear","in":2,"out":1}]}"#,
            "slope",
        ),
    ];
    for (text, needle) in cases {
        let err = Spec::from_json(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{err} should mention {needle:?}");
        let raw: Spec = serde_json::from_str(text).unwrap();
        let net = EnergyNet::new(&b, &raw, 0);
        assert!(net.is_err(), "EnergyNet::new accepted {text}");
    }
    // A valid net refuses a batch whose workspace would be absurd.
    let spec = Spec::builtin("toy2d").unwrap();
    let err = spec
        .check_batch(usize::MAX / 2, "--n huge")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--n huge"), "{err}");
    spec.check_batch(5000, "--n 5000").unwrap();
}

#[test]
fn spec_files_name_the_file() {
    let dir = TempDir::new("fuzz-specfile");
    let cases: [(&str, &[u8]); 3] = [
        ("bad_utf8.json", b"{\"input\":[2],\xff\xfe}"),
        ("empty.json", b""),
        (
            "unknown.json",
            br#"{"input":[2],"layers":[{"type":"dense","in":2,"out":1}]}"#,
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = Spec::from_name_or_file(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{err} should name {name}");
    }
    let missing = dir.0.join("missing.json");
    let err = Spec::from_name_or_file(missing.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
}

// ------------------------------------------------------------------ model files

/// A safetensors file taken apart: the header JSON and the data bytes after it.
struct Parts {
    header: serde_json::Map<String, Value>,
    data: Vec<u8>,
}

fn split(bytes: &[u8]) -> Parts {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    Parts {
        header: header.as_object().unwrap().clone(),
        data: bytes[8 + n..].to_vec(),
    }
}

fn join(parts: &Parts) -> Vec<u8> {
    let mut header = Value::Object(parts.header.clone()).to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&parts.data);
    out
}

/// A [`TensorFile`] as safetensors bytes, in memory (`TensorFile::write` fsyncs, which
/// would cost most of the time budget).
fn to_bytes(file: &TensorFile) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors
        .iter()
        .map(|(name, t)| {
            let bytes: &[u8] = bytemuck::cast_slice(&t.data);
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                t.shape.clone(),
                bytes,
            )
            .unwrap();
            (name.clone(), view)
        })
        .collect();
    let metadata = (!file.metadata.is_empty()).then(|| file.metadata.clone());
    safetensors::serialize(views, metadata).unwrap()
}

/// Names of the tensors in a header (not `__metadata__`).
fn tensor_names(parts: &Parts) -> Vec<String> {
    let mut names: Vec<String> = parts
        .header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    names.sort();
    names
}

/// One structural mutation of a model file (`good`, read into `file`); every one of them
/// must make loading fail, with an error that contains the returned needle (besides the
/// file's name). Returns what it did, the damaged bytes and the needle.
fn mutate_model(rng: &mut StdRng, good: &[u8], scratch: &Path) -> (String, Vec<u8>, String) {
    let mut parts = split(good);
    let names = tensor_names(&parts);
    let name = names[rng.random_range(0..names.len())].clone();
    std::fs::write(scratch, good).unwrap();
    let mut file = TensorFile::read(scratch).unwrap();
    let rewrite = to_bytes;
    let t = parts.header.get_mut(&name).unwrap();
    match rng.random_range(0..10) {
        0 => {
            let dtype = ["I32", "U8", "F64", "F16", "BOGUS", "F8_E4M3"][rng.random_range(0..6)];
            t["dtype"] = json!(dtype);
            (format!("{name} dtype {dtype}"), join(&parts), String::new())
        }
        1 => {
            // The same number of values in another shape (transposed / flattened).
            let shape = file.tensors[&name].shape.clone();
            let total: usize = shape.iter().product();
            let other = if shape.len() == 1 {
                vec![1, total]
            } else {
                vec![total]
            };
            file.tensors.get_mut(&name).unwrap().shape = other.clone();
            (format!("{name} shape {other:?}"), rewrite(&file), name)
        }
        2 => {
            let shape = json!([rng.random_range(0..1000), u64::MAX]);
            t["shape"] = shape.clone();
            (format!("{name} shape {shape}"), join(&parts), String::new())
        }
        3 => {
            let end = t["data_offsets"][1].as_u64().unwrap();
            let off = json!([end, end + 4 * rng.random_range(1..1000)]);
            t["data_offsets"] = off.clone();
            (format!("{name} offsets {off}"), join(&parts), String::new())
        }
        4 => {
            file.tensors.remove(&name);
            (format!("without {name}"), rewrite(&file), name)
        }
        5 => {
            let t = file.tensors.remove(&name).unwrap();
            file.tensors.insert(format!("{name}x"), t);
            (format!("{name} renamed"), rewrite(&file), name)
        }
        6 => {
            let t = file.tensors[&name].clone();
            file.tensors.insert("layers.99.weight".into(), t);
            (
                "an extra layers.99.weight".into(),
                rewrite(&file),
                "layers.99.weight".into(),
            )
        }
        7 => {
            file.metadata.remove("ebm.spec");
            ("no ebm.spec".into(), rewrite(&file), "ebm.spec".into())
        }
        8 => {
            // Another valid spec (no random spec has a layer 3 → 9): its parameters do not
            // match the file's.
            let spec = r#"{"input":[3],"layers":[{"type":"linear","in":3,"out":9},{"type":"relu"},{"type":"linear","in":9,"out":1}]}"#;
            file.metadata.insert("ebm.spec".into(), spec.into());
            ("another spec".into(), rewrite(&file), "layers.0".into())
        }
        _ => {
            let bad = [
                "{",
                r#"{"input":[2]}"#,
                "[]",
                r#"{"input":[2],"layers":[{"type":"dense"}]}"#,
            ][rng.random_range(0..4)];
            file.metadata.insert("ebm.spec".into(), bad.into());
            (
                format!("ebm.spec {bad}"),
                rewrite(&file),
                "bad model spec".into(),
            )
        }
    }
}

/// Loads `bytes` as a model file at `path` (and through `model_from_file` with the file's
/// own spec when it reads); returns the error text or the parameters.
fn load(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Vec<f32>)>, String> {
    std::fs::write(path, bytes).unwrap();
    let b = CpuBackend::new();
    match load_model(&b, path, None) {
        Err(e) => Err(e.to_string()),
        Ok(net) => Ok(net
            .read_params(&b)
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.data))
            .collect()),
    }
}

#[test]
fn model_loader_never_panics() {
    let dir = TempDir::new("fuzz-model");
    // A pool of small random models, written by `save_model` (each case damages one).
    let b = CpuBackend::new();
    let seed = gpu_common::test_seed();
    let mut rng = StdRng::seed_from_u64(!seed);
    let pool: Vec<(Spec, Vec<u8>)> = (0..16)
        .map(|i| {
            let spec = random_spec(&mut rng);
            let net = EnergyNet::new(&b, &spec, rng.random()).unwrap();
            let path = dir.0.join(format!("pool{i}.safetensors"));
            ebm::train::checkpoint::save_model(&b, &net, &path).unwrap();
            let good = std::fs::read(&path).unwrap();
            let want: Vec<(String, Vec<f32>)> = net
                .read_params(&b)
                .unwrap()
                .into_iter()
                .map(|(n, t)| (n, t.data))
                .collect();
            assert_eq!(
                load(&path, &good),
                Ok(want),
                "a saved model does not load back"
            );
            (spec, good)
        })
        .collect();
    fuzz("model", seed, |rng, k| {
        let (spec, good) = &pool[rng.random_range(0..pool.len())];
        let path = dir.0.join(format!("m{k}.safetensors"));
        let file_name = path.file_name().unwrap().to_str().unwrap().to_string();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let data_start = 8 + header_len;
        let names_err = |msg: &str| msg.contains(&file_name);
        let (what, bytes, must_fail, needle): (String, Vec<u8>, bool, String) =
            match rng.random_range(0..5) {
                0 => {
                    let at = rng.random_range(0..good.len());
                    (
                        format!("truncated at {at}"),
                        good[..at].to_vec(),
                        true,
                        String::new(),
                    )
                }
                1 => {
                    // Flipped bits anywhere: a flip in the float data loads those values.
                    let mut b = good.clone();
                    let at = rng.random_range(0..b.len());
                    b[at] ^= 1 << rng.random_range(0..8);
                    (format!("bit flipped at {at}"), b, false, String::new())
                }
                2 => {
                    let mut b = good.clone();
                    let len: u64 = match rng.random_range(0..5) {
                        0 => 0,
                        1 => u64::MAX,
                        2 => 1 << 40,
                        3 => good.len() as u64,
                        _ => rng.random_range(1..header_len as u64),
                    };
                    b[..8].copy_from_slice(&len.to_le_bytes());
                    (format!("header length {len}"), b, true, String::new())
                }
                3 => {
                    let (what, bytes, needle) = mutate_model(rng, good, &path);
                    (what, bytes, true, needle)
                }
                _ => {
                    let len = rng.random_range(0..512);
                    let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    ("random bytes".into(), b, true, String::new())
                }
            };
        match load(&path, &bytes) {
            Err(msg) => {
                check(names_err(&msg), || {
                    format!("{what}: error {msg:?} does not name the file")
                })?;
                check(msg.contains(&needle), || {
                    format!("{what}: error {msg:?} does not mention {needle:?}")
                })?;
                // A flip inside the float data must load (checked below), not fail.
                if !must_fail {
                    let at = (0..good.len()).find(|&i| bytes[i] != good[i]).unwrap();
                    check(at < data_start, || {
                        format!("{what}: a flip in the data (from {data_start}) failed: {msg}")
                    })?;
                }
            }
            Ok(got) => {
                check(!must_fail, || format!("{what}: loaded a damaged file"))?;
                let at = (0..good.len()).find(|&i| bytes[i] != good[i]).unwrap();
                if at >= data_start {
                    // The same values, but for the one changed bit.
                    let mut want_bytes = Vec::new();
                    let parts = split(good);
                    let mut changed = 0;
                    for (name, values) in &got {
                        let t = &parts.header[name];
                        let begin = t["data_offsets"][0].as_u64().unwrap() as usize;
                        let end = t["data_offsets"][1].as_u64().unwrap() as usize;
                        let raw = &bytes[data_start + begin..data_start + end];
                        want_bytes.clear();
                        want_bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                        check(want_bytes == raw, || {
                            format!("{what}: {name} does not hold the file's values")
                        })?;
                        changed += usize::from(raw != &good[data_start + begin..data_start + end]);
                    }
                    check(changed == 1, || {
                        format!("{what}: {changed} tensors changed")
                    })?;
                }
            }
        }
        // The same bytes through model_from_file, with the spec given: still no panic.
        if let Ok(file) = TensorFile::read(&path) {
            let r = model_from_file(&b, &file, &path, Some(spec));
            if let Err(e) = r {
                let msg = e.to_string();
                check(names_err(&msg), || format!("{what}: with --spec: {msg:?}"))?;
            }
        }
        std::fs::remove_file(&path).ok();
        Ok(())
    });
}

// ------------------------------------------------------------------ checkpoints

#[test]
fn checkpoint_loader_never_panics() {
    let dir = TempDir::new("fuzz-ckpt");
    let b = CpuBackend::new();
    let spec = Spec::mlp(2, 8, 2);
    let net = EnergyNet::new(&b, &spec, 3).unwrap();
    let config = TrainConfig {
        batch: 4,
        buffer_size: 16,
        ..TrainConfig::toy2d(5)
    };
    let mut trainer = Trainer::new(&b, net, config).unwrap();
    let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    trainer.step(&b, &x).unwrap();
    let good_path = dir.0.join("good.safetensors");
    save_checkpoint(&b, &trainer, &good_path).unwrap();
    load_trainer(&b, &good_path).unwrap();
    fuzz("checkpoint", gpu_common::test_seed(), |rng, k| {
        let path = dir.0.join(format!("c{k}.safetensors"));
        let mut file = TensorFile::read(&good_path).unwrap();
        let mut meta = |key: &str, f: &mut dyn FnMut(&mut Value)| {
            let m = file.metadata.get_mut(key).unwrap();
            let mut v: Value = serde_json::from_str(m).unwrap();
            f(&mut v);
            *m = v.to_string();
        };
        let (what, needle): (String, &str) = match rng.random_range(0..9) {
            0 => {
                let key = ["batch", "buffer_size"][rng.random_range(0..2)];
                let value = [0u64, u64::MAX, 1 << 40][rng.random_range(0..3)];
                meta("ebm.train", &mut |v| v[key] = json!(value));
                (format!("{key} {value}"), "ebm.train")
            }
            1 => {
                let value = [-1.0, 0.0, 1e39][rng.random_range(0..3)];
                meta("ebm.train", &mut |v| v["adam"]["lr"] = json!(value));
                (format!("lr {value}"), "ebm.train")
            }
            2 => {
                meta("ebm.train", &mut |v| v["langevin"]["steps"] = json!(0));
                ("steps 0".into(), "ebm.train")
            }
            3 => {
                meta("ebm.rng", &mut |v| v["iteration"] = json!(u64::MAX));
                ("iteration u64::MAX".into(), "ebm.rng")
            }
            4 => {
                meta("ebm.train", &mut |v| v["reinit_prob"] = json!("often"));
                ("reinit_prob string".into(), "ebm.train")
            }
            5 => {
                let names: Vec<String> = file
                    .tensors
                    .keys()
                    .filter(|n| !n.starts_with("layers."))
                    .cloned()
                    .collect();
                let name = names[rng.random_range(0..names.len())].clone();
                file.tensors.remove(&name);
                (format!("without {name}"), "no tensor")
            }
            6 => {
                // Adam moments or chains with the right number of values in another shape.
                let names: Vec<String> = file
                    .tensors
                    .keys()
                    .filter(|n| !n.starts_with("layers."))
                    .cloned()
                    .collect();
                let name = names[rng.random_range(0..names.len())].clone();
                let t = file.tensors.get_mut(&name).unwrap();
                t.shape = vec![t.data.len(), 1];
                (format!("{name} reshaped"), "shape")
            }
            7 => {
                file.metadata.remove("ebm.train");
                ("no ebm.train".into(), "ebm.train")
            }
            _ => {
                meta("ebm.train", &mut |v| {
                    v["langevin"]["lo"] = json!(1.0);
                    v["langevin"]["hi"] = json!(-1.0);
                });
                ("lo > hi".into(), "clamp")
            }
        };
        std::fs::write(&path, to_bytes(&file)).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| load_trainer(&b, &path)))
            .map_err(|_| format!("{what}: panicked"))?;
        let msg = match result {
            Ok(_) => return Err(format!("{what}: loaded a damaged checkpoint")),
            Err(e) => e.to_string(),
        };
        check(msg.contains(&format!("c{k}.safetensors")), || {
            format!("{what}: error {msg:?} does not name the file")
        })?;
        check(msg.contains(needle), || {
            format!("{what}: error {msg:?} does not mention {needle:?}")
        })?;
        std::fs::remove_file(&path).ok();
        Ok(())
    });
}

// ------------------------------------------------------------------ image datasets

/// A raw IDX image file of `n` images of `rows × cols`.
fn idx(n: u32, rows: u32, cols: u32, rng: &mut StdRng) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803, n, rows, cols] {
        b.extend_from_slice(&u32::to_be_bytes(v));
    }
    b.extend((0..n * rows * cols).map(|_| rng.random::<u8>()));
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn png(rng: &mut StdRng) -> Vec<u8> {
    let (w, h) = (rng.random_range(1..12), rng.random_range(1..12));
    let img = image::RgbImage::from_fn(w, h, |_, _| image::Rgb([rng.random(), 7, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn image_loader_never_panics() {
    let dir = TempDir::new("fuzz-images");
    fuzz("images", gpu_common::test_seed(), |rng, k| {
        let (kind, good) = match rng.random_range(0..4) {
            0 => ("idx", idx(rng.random_range(1..5), 6, 5, rng)),
            1 => ("idx.gz", gzip(&idx(rng.random_range(1..5), 4, 7, rng))),
            2 => ("png", png(rng)),
            _ => {
                let n = rng.random_range(1..3);
                let b: Vec<u8> = (0..n * 3073)
                    .map(|i| if i % 3073 == 0 { 3 } else { rng.random() })
                    .collect();
                ("bin", b)
            }
        };
        let mut bytes = good.clone();
        let what = match rng.random_range(0..3) {
            0 => {
                let at = rng.random_range(0..bytes.len());
                bytes.truncate(at);
                format!("{kind} truncated at {at}")
            }
            1 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random();
                }
                format!("{kind} bytes changed")
            }
            _ => {
                // A header claiming many images (IDX), or garbage after the file.
                if kind == "idx" {
                    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
                } else {
                    bytes.extend_from_slice(b"junk");
                }
                format!("{kind} wrong length")
            }
        };
        let name = format!("d{k}.{kind}");
        let path = dir.0.join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let (c, h, w) = ([1, 3][rng.random_range(0..2)], 8, rng.random_range(4..12));
        let result = catch_unwind(AssertUnwindSafe(|| images::load(&path, c, h, w)))
            .map_err(|_| format!("{what}: panicked"))?;
        match result {
            Err(e) => {
                let msg = e.to_string();
                check(msg.contains(&name), || {
                    format!("{what}: error {msg:?} does not name the file")
                })?;
            }
            Ok(set) => {
                check(set.sample_len() == c * h * w && !set.is_empty(), || {
                    format!("{what}: a set of {} values", set.data.len())
                })?;
                check(set.data.iter().all(|v| (-1.0..=1.0).contains(v)), || {
                    format!("{what}: values out of [-1, 1]")
                })?;
            }
        }
        std::fs::remove_file(&path).ok();
        Ok(())
    });
}
