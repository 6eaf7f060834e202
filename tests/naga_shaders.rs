//! Every `shaders/*.wgsl` parses and validates with naga, exactly as the GPU backend assembles
//! it (`rng.wgsl` prepended where the backend does that). Needs no GPU, so shader mistakes
//! are caught on any machine. The directory is listed, so a new shader is covered
//! automatically.

use std::path::Path;

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The capabilities the backend requests from the device: immediates only.
fn validator() -> Validator {
    Validator::new(ValidationFlags::all(), Capabilities::IMMEDIATES)
}

#[test]
fn every_shader_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/ directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders in {}", dir.display());

    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let on_disk = std::fs::read_to_string(path).expect("read shader");
        let source = match ebm::backend::gpu::shader_source(&name) {
            Some(assembled) => {
                assert!(
                    assembled.ends_with(on_disk.as_str()),
                    "{name}: the backend's compiled-in copy differs from the file (rebuild?)"
                );
                assembled
            }
            // A file the backend does not load (yet): validate it as it stands.
            None => {
                eprintln!("note: {name} is not used by the backend; validating it alone");
                on_disk
            }
        };
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{name}: parse error\n{}",
                    e.emit_to_string(&source)
                ));
                continue;
            }
        };
        if let Err(e) = validator().validate(&module) {
            failures.push(format!(
                "{name}: validation error\n{}",
                e.emit_to_string(&source)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Each entry point the backend dispatches exists in its shader (a typo would otherwise only
/// show up as a pipeline error on a device).
#[test]
fn entry_points_exist() {
    let expected = [
        (
            "linear.wgsl",
            &[
                "linear_forward",
                "linear_backward_data",
                "linear_backward_params",
                "linear_backward_bias",
            ][..],
        ),
        (
            "activation.wgsl",
            &[
                "relu_forward",
                "leaky_relu_forward",
                "silu_forward",
                "relu_backward",
                "leaky_relu_backward",
                "silu_backward",
            ][..],
        ),
        ("reduce.wgsl", &["cd_loss", "sum_squares"][..]),
        ("langevin.wgsl", &["langevin_update"][..]),
        ("adam.wgsl", &["adam_update"][..]),
        ("chains.wgsl", &["replay_draw", "replay_scatter"][..]),
        ("fill.wgsl", &["fill", "keep_known"][..]),
        ("rng_words.wgsl", &["philox_words"][..]),
        (
            "conv2d.wgsl",
            &[
                "conv2d_forward",
                "conv2d_backward_data",
                "conv2d_backward_weight",
                "conv2d_backward_bias",
            ][..],
        ),
        ("pool.wgsl", &["avg_pool_forward", "avg_pool_backward"][..]),
    ];
    for (file, entries) in expected {
        let source = ebm::backend::gpu::shader_source(file).expect(file);
        let module = naga::front::wgsl::parse_str(&source).expect(file);
        for entry in entries {
            assert!(
                module.entry_points.iter().any(|e| e.name == *entry),
                "{file} has no entry point {entry}"
            );
        }
    }
}
