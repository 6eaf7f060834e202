//! Opening the device: adapter choice, limits and features, the uncaptured-error and
//! lost-device handlers; plus the device-level utilities (adapter report, Philox check,
//! simulated device loss).

use super::*;

impl GpuBackend {
    /// Open the best adapter: discrete before integrated before virtual GPUs, hardware before
    /// software, a native API before OpenGL. With `allow_software` false, software adapters
    /// (lavapipe, GL on llvmpipe, SwiftShader) are refused, since they run ~15× slower than
    /// the CPU backend; tests pass `true` to run the kernels on lavapipe.
    ///
    /// Tensor cores are used when `EBM_TENSOR_CORES=on` asks for them ([`GpuOptions::from_env`]);
    /// [`with_options`](Self::with_options) takes the choice from code.
    pub fn new(allow_software: bool) -> Result<Self> {
        Self::with_options(allow_software, GpuOptions::from_env())
    }

    /// [`new`](Self::new) with explicit options.
    pub fn with_options(allow_software: bool, options: GpuOptions) -> Result<Self> {
        let instance = adapter::instance();
        let adapters = adapter::enumerate(&instance);
        let mut candidates: Vec<(AdapterReport, wgpu::Adapter)> = adapters
            .into_iter()
            .map(|a| (AdapterReport::from_adapter(&a), a))
            .collect();
        let found = candidates
            .iter()
            .map(|(r, _)| format!("{} [{}, {}]", r.name, r.backend, r.device_type))
            .collect::<Vec<_>>()
            .join("; ");
        if !allow_software {
            candidates.retain(|(r, _)| !r.is_software);
        }
        if candidates.is_empty() {
            return Err(Error::NoGpu(if found.is_empty() {
                "no GPU adapter found".into()
            } else {
                format!("no hardware GPU adapter (found: {found})")
            }));
        }
        // The kernels take their parameters as immediates (push constants); an adapter
        // without them (WebGPU in a browser, some GL drivers) cannot run them.
        candidates
            .retain(|(r, _)| r.immediates && r.max_immediate_size >= kernels::MAX_IMMEDIATE_BYTES);
        candidates.sort_by_key(|(r, _)| std::cmp::Reverse(adapter::rank(r)));
        let Some((report, adapter)) = candidates.into_iter().next() else {
            return Err(Error::NoGpu(format!(
                "no adapter offers immediates (push constants) of {} bytes, which the kernels \
                 need for their parameters (found: {found})",
                kernels::MAX_IMMEDIATE_BYTES
            )));
        };
        let mut tensor_cores = tensor_cores::plan(&report, options.tensor_cores);
        let mut opened =
            pollster::block_on(adapter.request_device(&descriptor(&adapter, tensor_cores.is_on())));
        if let (Err(e), true) = (&opened, tensor_cores.is_on()) {
            // An adapter that lists the features but will not open a device with them (the
            // feature is experimental): the f32 kernels still run.
            tensor_cores = TensorCores::Off(format!("the driver refused them ({e})"));
            opened = pollster::block_on(adapter.request_device(&descriptor(&adapter, false)));
        }
        let (device, queue) = opened.map_err(|e| Error::NoGpu(format!("{}: {e}", report.name)))?;
        let error: Arc<Mutex<Option<Error>>> = Arc::default();
        let sink = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).get_or_insert(Error::Gpu(e.to_string()));
        }));
        // A lost device (driver reset, GPU removed, a hung kernel killed) outranks whatever
        // errors follow from it: it is what the user needs to hear.
        let lost_sink = Arc::clone(&error);
        let name = report.name.clone();
        // (Dropping the backend destroys the device too; then nobody reads the sink.)
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_sink) = Some(Error::Gpu(format!(
                "the GPU device {name} was lost ({reason:?}{}{message}): nothing more can run \
                 on it; resume from the last checkpoint, or run with --device cpu",
                if message.is_empty() { "" } else { ": " }
            )));
        });
        Ok(GpuBackend {
            device,
            queue,
            report: Box::new(report),
            tensor_cores,
            conv_tiles: options.conv_tiles,
            mlp_chain_group: options.mlp_chain_group,
            thin_inputs: options.thin_inputs,
            tile_choices: Mutex::default(),
            tuning: AtomicBool::new(false),
            encoder: Mutex::new(None),
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            error,
            scratch: Mutex::default(),
            submissions: AtomicU64::new(0),
            readbacks: AtomicU64::new(0),
            dispatches: AtomicU64::new(0),
            profiler: OnceLock::new(),
        })
    }

    /// What the opened adapter is and can do (for logs and `ebm info`).
    pub fn adapter_report(&self) -> &AdapterReport {
        &self.report
    }

    /// Which output tiles the f32 conv products use.
    pub fn conv_tiles(&self) -> ConvTiles {
        self.conv_tiles
    }

    /// Chains per workgroup of the fused MLP Langevin chain: 8 or 4.
    pub fn mlp_chain_group(&self) -> usize {
        self.mlp_chain_group.chains()
    }

    /// Whether the conv products run on tensor cores, and if not, why.
    pub fn tensor_cores(&self) -> &TensorCores {
        &self.tensor_cores
    }

    /// The raw Philox4x32-10 words this device computes for `counters` under `seed`: lets a
    /// test (or a user on new hardware) check the GPU generator against [`crate::rng`] bit
    /// for bit. Runs at once (one submission and one readback).
    pub fn philox_words(&self, seed: u64, counters: &[[u32; 4]]) -> Result<Vec<[u32; 4]>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let n = counters.len();
        let bytes = 16 * n as u64;
        let input = GpuTensor {
            buffer: self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("philox counters"),
                    contents: bytemuck::cast_slice(counters),
                    usage: wgpu::BufferUsages::STORAGE,
                }),
            len: 4 * n,
        };
        let output = self.zeros(4 * n)?;
        let params = kernels::WordsParams {
            n: self.dim_u32(n)?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
        };
        let groups = self.dim_u32(n.div_ceil(64))?;
        self.dispatch(
            &kernels::PHILOX_WORDS,
            &[&input, &output],
            &params,
            (groups, 1, 1),
        );
        let raw = self.read_bytes(&output.buffer, bytes)?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
        Ok(words.chunks(4).map(|w| [w[0], w[1], w[2], w[3]]).collect())
    }

    /// Destroy the device as a driver reset would, so that tests can check what users see
    /// after a lost device. Every later operation fails.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        self.device.destroy();
        // wgpu reports a destroyed device as lost at its next maintenance.
        let _ = self.device.poll(wgpu::PollType::Poll);
    }
}

/// What the device is opened with: immediates, timestamp queries where the adapter has them
/// (they serve `--profile`), every limit the adapter has (the defaults are far below real
/// hardware: 128 MiB storage bindings), and, for `tensor_cores`, the features of
/// `conv2d_coop.wgsl`.
fn descriptor(adapter: &wgpu::Adapter, tensor_cores: bool) -> wgpu::DeviceDescriptor<'static> {
    let mut required_features =
        wgpu::Features::IMMEDIATES | (adapter.features() & wgpu::Features::TIMESTAMP_QUERY);
    let mut experimental_features = wgpu::ExperimentalFeatures::disabled();
    if tensor_cores {
        required_features |= tensor_cores::features();
        // SAFETY: wgpu marks cooperative matrices experimental (its validation of them is
        // incomplete); only conv2d_coop.wgsl uses them, and only with the shape
        // `tensor_cores::plan` found in the adapter's list, on operands kept within its tiles.
        experimental_features = unsafe { wgpu::ExperimentalFeatures::enabled() };
    }
    wgpu::DeviceDescriptor {
        label: Some("ebm"),
        required_features,
        required_limits: adapter.limits(),
        experimental_features,
        ..Default::default()
    }
}
