//! Finding adapters, ranking them and telling hardware from software.
//!
//! wgpu answers `request_adapter` with *some* adapter even when there is no GPU: with no
//! Vulkan driver it falls back to OpenGL on Mesa's llvmpipe. So "is there a GPU?" is answered
//! from the adapter's device type and name, never from getting an adapter at all.

use std::fmt;

/// What one adapter is and what it can do: the lines `ebm info` prints, and the facts the
/// backend sizes its dispatches by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterReport {
    /// e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.7, 256 bits)".
    pub name: String,
    /// Graphics API wgpu drives it through: "vulkan", "metal", "dx12", "gl".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    pub device_type: String,
    /// Driver name, e.g. "NVIDIA" or "llvmpipe".
    pub driver: String,
    /// Driver version string, e.g. "550.54.15" or "Mesa 22.3.6 (LLVM 15.0.6)".
    pub driver_info: String,
    /// A software rasteriser (lavapipe, llvmpipe, SwiftShader): correct but ~15× slower than
    /// plain Rust, so never an automatic choice.
    pub is_software: bool,
    /// Largest tensor in bytes: every tensor is bound whole as one storage buffer.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer in bytes.
    pub max_buffer_size: u64,
    /// Bytes of workgroup memory per workgroup (bounds the tile sizes of matrix kernels).
    pub max_compute_workgroup_storage_size: u32,
    /// Threads per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per grid dimension (65535 almost everywhere); larger 1D problems use a 2D
    /// grid.
    pub max_compute_workgroups_per_dimension: u32,
    /// Bytes of immediate data (push constants) per pipeline; 0 without `IMMEDIATES`.
    pub max_immediate_size: u32,
    /// GPU timestamps, for kernel timings in `ebm bench`.
    pub timestamp_query: bool,
    /// Half-precision arithmetic in shaders.
    pub shader_f16: bool,
    /// Subgroup (warp / wave) operations.
    pub subgroup: bool,
    /// Per-dispatch parameters as immediates, which this backend requires.
    pub immediates: bool,
    /// Smallest and largest subgroup (warp / wave) size: 32 and 32 on NVIDIA.
    pub subgroup_sizes: (u32, u32),
    /// The tensor-core matrix products the adapter offers through wgpu's experimental
    /// cooperative matrices (`Features::EXPERIMENTAL_COOPERATIVE_MATRIX`); empty without it.
    pub cooperative_matrix: Vec<MatrixShape>,
}

/// One cooperative-matrix product D = A·B + C an adapter offers: A is m×k, B k×n, C and D
/// m×n, with A and B of element type `inputs` and C, D of `accumulator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixShape {
    /// Rows of A, C and D.
    pub m: u32,
    /// Columns of B, C and D.
    pub n: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// "f16", "f32", "i32" or "u32".
    pub inputs: &'static str,
    /// "f16", "f32", "i32" or "u32".
    pub accumulator: &'static str,
}

impl MatrixShape {
    fn from_wgpu(p: &wgpu::CooperativeMatrixProperties) -> Self {
        let name = |t: wgpu::CooperativeScalarType| match t {
            wgpu::CooperativeScalarType::F32 => "f32",
            wgpu::CooperativeScalarType::F16 => "f16",
            wgpu::CooperativeScalarType::I32 => "i32",
            wgpu::CooperativeScalarType::U32 => "u32",
        };
        MatrixShape {
            m: p.m_size,
            n: p.n_size,
            k: p.k_size,
            inputs: name(p.ab_type),
            accumulator: name(p.cr_type),
        }
    }
}

impl fmt::Display for MatrixShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}×{}×{} {}→{}",
            self.m, self.n, self.k, self.inputs, self.accumulator
        )
    }
}

impl AdapterReport {
    pub(crate) fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        let is_software = is_software(&info);
        AdapterReport {
            name: info.name,
            backend: info.backend.to_str().to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            is_software,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_immediate_size: limits.max_immediate_size,
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
            immediates: features.contains(wgpu::Features::IMMEDIATES),
            subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
            cooperative_matrix: if features
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            {
                adapter
                    .cooperative_matrix_properties()
                    .iter()
                    .map(MatrixShape::from_wgpu)
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1 << 20;
        let kind = if self.is_software {
            "software"
        } else {
            "hardware"
        };
        writeln!(
            f,
            "{} ({}, {}, {kind})",
            self.name, self.backend, self.device_type
        )?;
        writeln!(f, "  driver: {} {}", self.driver, self.driver_info)?;
        writeln!(
            f,
            "  limits: storage binding {} MiB, buffer {} MiB, workgroup {} invocations / {} KiB, \
             {} workgroups per dimension, {} B immediates",
            self.max_storage_buffer_binding_size / MIB,
            self.max_buffer_size / MIB,
            self.max_compute_invocations_per_workgroup,
            self.max_compute_workgroup_storage_size / 1024,
            self.max_compute_workgroups_per_dimension,
            self.max_immediate_size,
        )?;
        let flag = |on: bool| if on { "yes" } else { "no" };
        writeln!(
            f,
            "  features: timestamp_query {}, shader_f16 {}, subgroup {} (size {}–{}), immediates {}",
            flag(self.timestamp_query),
            flag(self.shader_f16),
            flag(self.subgroup),
            self.subgroup_sizes.0,
            self.subgroup_sizes.1,
            flag(self.immediates),
        )?;
        let shapes: Vec<String> = self
            .cooperative_matrix
            .iter()
            .map(|s| s.to_string())
            .collect();
        write!(
            f,
            "  tensor cores (cooperative matrix): {}",
            if shapes.is_empty() {
                "none".to_string()
            } else {
                shapes.join(", ")
            }
        )
    }
}

/// Software adapters: wgpu calls lavapipe a `Cpu` device, but GL on llvmpipe may say `Other`,
/// so the name is checked too.
fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader"]
            .iter()
            .any(|s| name.contains(s))
}

/// Higher is better: hardware before software, discrete before integrated, and a native API
/// (Vulkan, Metal, DX12) before OpenGL.
pub(crate) fn rank(report: &AdapterReport) -> (u8, u8, u8) {
    let hardware = u8::from(!report.is_software);
    let kind = match report.device_type.as_str() {
        "DiscreteGpu" => 4,
        "IntegratedGpu" => 3,
        "VirtualGpu" => 2,
        "Other" => 1,
        _ => 0,
    };
    let native = u8::from(report.backend != "gl");
    (hardware, kind, native)
}

/// The process's one instance (honouring `WGPU_BACKEND` and friends), behind a lock: opening
/// adapters from several threads at once — tests do — deadlocked in the NVIDIA driver's
/// EGL/GL path on an H100, so enumeration and device creation take turns.
pub(crate) fn instance() -> std::sync::MutexGuard<'static, wgpu::Instance> {
    static INSTANCE: std::sync::OnceLock<std::sync::Mutex<wgpu::Instance>> =
        std::sync::OnceLock::new();
    INSTANCE
        .get_or_init(|| {
            let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            std::sync::Mutex::new(wgpu::Instance::new(desc))
        })
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adapters of the native APIs (Vulkan, Metal, DX12) or, only where there are none, OpenGL:
/// GL is the last resort (wgpu's fallback onto Mesa's llvmpipe), and waking the GL driver
/// needlessly costs start-up time and, on NVIDIA, risks the hang above.
pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let native = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    if !native.is_empty() {
        return native;
    }
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Every adapter wgpu can see on this machine, for `ebm info`. Creates no device.
pub fn describe_adapters() -> Vec<AdapterReport> {
    let instance = instance();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let mut reports: Vec<AdapterReport> =
        adapters.iter().map(AdapterReport::from_adapter).collect();
    reports.sort_by_key(|r| std::cmp::Reverse(rank(r)));
    reports
}
