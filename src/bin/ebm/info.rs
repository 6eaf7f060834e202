//! `ebm info`: what this machine offers.

use ebm::backend::gpu::{describe_adapters, GpuOptions};

pub fn run() -> ebm::Result<()> {
    let adapters = describe_adapters();
    if adapters.is_empty() {
        println!("GPU adapters: none found");
    }
    for (i, adapter) in adapters.iter().enumerate() {
        println!("GPU adapter {i}: {adapter}");
    }
    // The kernel choices a GPU run would take (main() put the options in the environment).
    let gpu = GpuOptions::from_env();
    println!(
        "GPU kernels: conv tiles {} (--conv-tiles 64|128|auto), fused MLP chain {} chains a \
         workgroup (--mlp-chain-group 8|4), tensor cores {} (--tensor-cores), thin inputs' \
         gradient on the {} (--thin-inputs kernel|tiles)",
        gpu.conv_tiles.name(),
        gpu.mlp_chain_group.chains(),
        if gpu.tensor_cores { "asked for" } else { "off" },
        gpu.thin_inputs.name(),
    );
    // A build without the default `gemm-avx512` feature stands for a CPU without AVX-512
    // (scripts/compare.sh ISA=avx2 checks for this note).
    let gemm_note = if !cfg!(feature = "gemm-avx512") && ebm::backend::cpu::Isa::Avx512.supported()
    {
        "; gemm built without its AVX-512 kernels"
    } else {
        ""
    };
    println!(
        "CPU: {} threads (rayon), convolutions on {}{gemm_note}",
        rayon::current_num_threads(),
        ebm::CpuBackend::new().matrix_method()
    );
    Ok(())
}
