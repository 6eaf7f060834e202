//! Tensor cores for the conv products (and so the linear layers, which run on them): whether an adapter can run `conv2d_coop.wgsl`, what
//! the device must be opened with for it, and the switch that asks for it.
//!
//! wgpu exposes tensor cores as experimental *cooperative matrices*: small matrix products
//! D = A·B + C that a whole subgroup computes at once. The conv kernels use the 16×16×16
//! shape with f16 inputs and f32 accumulation, spread over 8 subgroups of 32, so an adapter
//! qualifies only if it lists that shape and runs 32-wide subgroups (NVIDIA does, from Volta
//! on). The inputs' rounding to f16 costs about three decimal digits (relative error ≈ 1e-3
//! per output instead of 1e-6), so the path is off unless asked for, like PyTorch's f16
//! autocast; the exact tests always run the f32 kernels.

use super::adapter::{AdapterReport, MatrixShape};

/// The one cooperative-matrix shape the tensor-core kernels are written for.
pub const CONV_MATRIX: MatrixShape = MatrixShape {
    m: 16,
    n: 16,
    k: 16,
    inputs: "f16",
    accumulator: "f32",
};

/// Subgroup width the tensor-core kernels assume (8 subgroups share a 256-thread workgroup).
const SUBGROUP: u32 = 32;

/// Workgroup memory of a tensor-core conv workgroup: two 16×64 f16 operand tiles and the
/// 64×64 f32 tile of C (conv2d_coop.wgsl).
const WORKGROUP_BYTES: u32 = 2 * 16 * 64 * 2 + 64 * 64 * 4;

/// Whether the conv products run on tensor cores on an adapter, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorCores {
    /// They do, with this matrix shape.
    On(MatrixShape),
    /// They do not: the reason (not asked for, or what the adapter lacks).
    Off(String),
}

impl TensorCores {
    /// Whether the tensor-core kernels are in use.
    pub fn is_on(&self) -> bool {
        matches!(self, TensorCores::On(_))
    }
}

/// The choice for `report`'s adapter when tensor cores are `requested`: on only if asked for
/// and the adapter has everything the kernels need.
pub fn plan(report: &AdapterReport, requested: bool) -> TensorCores {
    if !requested {
        return TensorCores::Off("not requested (--tensor-cores)".into());
    }
    let lacks = if report.cooperative_matrix.is_empty() {
        Some("no cooperative matrices".to_string())
    } else if !report.cooperative_matrix.contains(&CONV_MATRIX) {
        Some(format!(
            "no {CONV_MATRIX} cooperative matrix (it has {})",
            report
                .cooperative_matrix
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else if !report.shader_f16 {
        Some("no f16 in shaders".to_string())
    } else if !report.subgroup {
        Some("no subgroup operations".to_string())
    } else if report.subgroup_sizes != (SUBGROUP, SUBGROUP) {
        Some(format!(
            "subgroups of {}–{} lanes, where the kernels need exactly {SUBGROUP}",
            report.subgroup_sizes.0, report.subgroup_sizes.1
        ))
    } else if report.max_compute_workgroup_storage_size < WORKGROUP_BYTES {
        Some(format!(
            "{} B of workgroup memory, where the kernels need {WORKGROUP_BYTES}",
            report.max_compute_workgroup_storage_size
        ))
    } else {
        None
    };
    match lacks {
        None => TensorCores::On(CONV_MATRIX),
        Some(what) => TensorCores::Off(format!("{} has {what}", report.name)),
    }
}

/// The device features the tensor-core kernels need, on top of the backend's own.
pub(crate) fn features() -> wgpu::Features {
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an H200 reports (as `ebm info` printed it on the device machine).
    fn h200() -> AdapterReport {
        let shape = |m, n, k, accumulator| MatrixShape {
            m,
            n,
            k,
            inputs: "f16",
            accumulator,
        };
        AdapterReport {
            name: "NVIDIA H200".into(),
            backend: "vulkan".into(),
            device_type: "DiscreteGpu".into(),
            driver: "NVIDIA".into(),
            driver_info: "580.159.04".into(),
            is_software: false,
            max_storage_buffer_binding_size: 2047 << 20,
            max_buffer_size: 4094 << 20,
            max_compute_workgroup_storage_size: 48 << 10,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroups_per_dimension: 65535,
            max_immediate_size: 256,
            timestamp_query: true,
            shader_f16: true,
            subgroup: true,
            immediates: true,
            subgroup_sizes: (32, 32),
            cooperative_matrix: vec![
                shape(16, 16, 16, "f16"),
                shape(16, 8, 16, "f16"),
                shape(16, 16, 16, "f32"),
                shape(16, 8, 8, "f32"),
            ],
        }
    }

    fn off_reason(report: &AdapterReport) -> String {
        match plan(report, true) {
            TensorCores::Off(why) => why,
            TensorCores::On(s) => panic!("expected off, got on with {s}"),
        }
    }

    #[test]
    fn on_only_when_asked_and_the_adapter_has_everything() {
        assert_eq!(plan(&h200(), true), TensorCores::On(CONV_MATRIX));
        assert!(!plan(&h200(), false).is_on());
    }

    #[test]
    fn each_missing_piece_turns_it_off_and_is_named() {
        let mut r = h200();
        r.cooperative_matrix.clear();
        assert!(off_reason(&r).contains("no cooperative matrices"));

        let mut r = h200();
        r.cooperative_matrix.retain(|s| s.accumulator == "f16");
        let why = off_reason(&r);
        assert!(
            why.contains("16×16×16 f16→f32") && why.contains("16×8×16 f16→f16"),
            "{why}"
        );

        let mut r = h200();
        r.shader_f16 = false;
        assert!(off_reason(&r).contains("f16"));

        let mut r = h200();
        r.subgroup = false;
        assert!(off_reason(&r).contains("subgroup"));

        // AMD's wave64 (or a driver that may pick either width).
        let mut r = h200();
        r.subgroup_sizes = (32, 64);
        assert!(off_reason(&r).contains("32–64"));

        // WebGPU's default 16 KiB of workgroup memory.
        let mut r = h200();
        r.max_compute_workgroup_storage_size = 16 << 10;
        assert!(off_reason(&r).contains("20480"), "{}", off_reason(&r));
    }
}
