//! `ebm info`: what this machine offers.

use ebm::backend::gpu::describe_adapters;

pub fn run() -> ebm::Result<()> {
    let adapters = describe_adapters();
    if adapters.is_empty() {
        println!("GPU adapters: none found");
    }
    for (i, adapter) in adapters.iter().enumerate() {
        println!("GPU adapter {i}: {adapter}");
    }
    println!(
        "CPU: {} threads (rayon), convolutions on {}",
        rayon::current_num_threads(),
        ebm::CpuBackend::new().matrix_method()
    );
    Ok(())
}
