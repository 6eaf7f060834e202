//! Every `shaders/*.wgsl` parses, validates and compiles to SPIR-V with naga, exactly as the
//! GPU backend assembles it (its preludes prepended), and its `@compute` entry points
//! are exactly the kernels the backend builds. Needs no GPU, so shader mistakes are caught
//! on any machine. The directory is listed, so a new shader is covered automatically.

use std::path::Path;

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The capabilities the backend requests from the device: immediates, plus, for the
/// tensor-core kernels (which `enable wgpu_cooperative_matrix`), the cooperative matrices, f16
/// and subgroups that `GpuBackend` asks for when it builds them.
fn validator(source: &str) -> Validator {
    let mut caps = Capabilities::IMMEDIATES;
    if source.contains("enable wgpu_cooperative_matrix;") {
        caps |= Capabilities::COOPERATIVE_MATRIX
            | Capabilities::SHADER_FLOAT16
            | Capabilities::SUBGROUP;
    }
    Validator::new(ValidationFlags::all(), caps)
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
        let source = match ebm::wgsl::shader_source(&name) {
            Some(assembled) => {
                // The file's own text ends the module; its `enable` lines were hoisted.
                let own: String = on_disk
                    .lines()
                    .filter(|l| !l.starts_with("enable "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                assert!(
                    assembled.ends_with(own.as_str()),
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
        let info = match validator(&source).validate(&module) {
            Ok(info) => info,
            Err(e) => {
                failures.push(format!(
                    "{name}: validation error\n{}",
                    e.emit_to_string(&source)
                ));
                continue;
            }
        };
        // Then through naga's SPIR-V writer, as on Vulkan: validation alone misses writer
        // failures (naga 30 panics on a `coopStore` whose stride is computed inside the call,
        // which conv2d_coop.wgsl avoids).
        let options = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        match naga::back::spv::write_vec(&module, &info, &options, None) {
            Ok(words) if words.len() > 5 => {}
            Ok(_) => failures.push(format!("{name}: empty SPIR-V")),
            Err(e) => failures.push(format!("{name}: SPIR-V: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The `@compute` entry points in `shaders/*.wgsl` and the kernels the backend builds
/// pipelines for (`wgsl::entry_points()`, generated from its kernel table) are the same set:
/// a kernel the backend asks for that its file lacks (a typo, a rename) would otherwise only
/// fail as a pipeline error on a device, and an entry point no kernel uses is dead code with
/// no CPU twin under test. Entry names are also unique, since pipelines are cached by name.
#[test]
fn entry_points_are_complete() {
    use std::collections::BTreeSet;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut in_files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/ directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = ebm::wgsl::shader_source(&file)
            .unwrap_or_else(|| std::fs::read_to_string(&path).expect("read shader"));
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(&source)));
        for ep in &module.entry_points {
            if ep.stage == naga::ShaderStage::Compute {
                in_files.insert((file.clone(), ep.name.clone()));
            }
        }
    }
    let table = ebm::wgsl::entry_points();
    let built: BTreeSet<(String, String)> = table
        .iter()
        .map(|&(f, e)| (f.to_string(), e.to_string()))
        .collect();
    assert_eq!(built.len(), table.len(), "a kernel is listed twice");
    let names: BTreeSet<&str> = table.iter().map(|&(_, e)| e).collect();
    assert_eq!(names.len(), table.len(), "two kernels share an entry name");

    let missing: Vec<_> = built.difference(&in_files).collect();
    let unused: Vec<_> = in_files.difference(&built).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "kernels the backend builds but no shader defines: {missing:?}\n\
         @compute entry points no kernel builds: {unused:?}"
    );
    // The table is not empty by accident (every shader file but rng.wgsl has kernels).
    assert!(built.len() >= 40, "only {} kernels", built.len());
}

/// Every parameter struct the backend passes as immediates (`wgsl::immediate_layouts()`)
/// matches the WGSL struct of the same name in its shader: the same fields at the same
/// offsets in the same order, and the same size up to the WGSL struct's trailing padding. A reordered, retyped, added or dropped
/// field on either side would otherwise hand the kernel garbage parameters, silently.
#[test]
fn immediate_structs_match_rust() {
    let layouts = ebm::wgsl::immediate_layouts();
    assert!(layouts.len() >= 18, "only {} layouts", layouts.len());
    let mut failures = Vec::new();
    for layout in &layouts {
        let (file, name) = (layout.shader, layout.wgsl_struct);
        let source = ebm::wgsl::shader_source(file)
            .unwrap_or_else(|| panic!("{file} is not a backend shader"));
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(&source)));
        let found = module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some(name));
        let Some((_, ty)) = found else {
            failures.push(format!("{file}: no struct {name}"));
            continue;
        };
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            failures.push(format!("{file}: {name} is not a struct"));
            continue;
        };
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize))
            .collect();
        let rust: Vec<(&str, usize)> = layout.fields.clone();
        // The WGSL size rounds up to the struct's alignment (16 with a vec4 member); the Rust
        // struct may stop at the end of the last member (MlpChainParams: 92 of 96 bytes).
        let end = members.last().map_or(0, |m| {
            m.offset as usize + module.types[m.ty].inner.size(module.to_ctx()) as usize
        });
        let size_ok = (end..=*span as usize).contains(&layout.size);
        if !size_ok || wgsl != rust {
            failures.push(format!(
                "{file}: struct {name} differs from the Rust struct\n  \
                 WGSL: {span} bytes, {wgsl:?}\n  Rust: {} bytes, {rust:?}",
                layout.size
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
