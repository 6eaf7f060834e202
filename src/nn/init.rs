//! Weight initialisation, PyTorch's default for Linear and Conv2d: kaiming-uniform with
//! a = √5, which makes both weight and bias U(−1/√fan_in, 1/√fan_in). Drawn from Philox
//! stream 3 with counter (e/4, parameter index, 0, 3), so a seed fixes the net on every device.
//!
//! ```
//! use ebm::nn::init::uniform_fan_in;
//! use ebm::{CpuBackend, EnergyNet, Spec};
//!
//! # fn main() -> ebm::Result<()> {
//! // A 16 → 64 linear weight: U(−1/4, 1/4).
//! let w = uniform_fan_in(0, 0, 64 * 16, 16);
//! assert!(w.iter().all(|v| v.abs() <= 0.25));
//! assert_ne!(w, uniform_fan_in(0, 2, 64 * 16, 16), "each parameter draws its own values");
//! // EnergyNet::new draws parameter i exactly so.
//! let b = CpuBackend::new();
//! let net = EnergyNet::new(&b, &Spec::mlp(2, 8, 1), 42)?;
//! assert_eq!(net.params()[0].value, uniform_fan_in(42, 0, 8 * 2, 2));
//! # Ok(())
//! # }
//! ```

use crate::rng::{self, Stream};

/// Values for parameter number `index` with `len` elements and fan-in `fan_in`.
pub fn uniform_fan_in(seed: u64, index: usize, len: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    let mut values = vec![0.0; len];
    for (block, chunk) in values.chunks_mut(4).enumerate() {
        let w = rng::words(seed, block as u32, index as u32, 0, Stream::WeightInit);
        for (v, word) in chunk.iter_mut().zip(w) {
            *v = bound * (2.0 * rng::uniform(word) - 1.0);
        }
    }
    values
}
