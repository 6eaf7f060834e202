//! STUB — replaced by the real wgpu backend.
use super::*;
use crate::{Error, Result};

/// The wgpu backend (stub).
pub struct GpuBackend;

impl GpuBackend {
    /// Open the best adapter; `allow_software` admits lavapipe / llvmpipe.
    pub fn new(_allow_software: bool) -> Result<Self> {
        Err(Error::NoGpu("GPU backend not built yet".into()))
    }
}

/// Every adapter wgpu can see, one line each, for `ebm info`.
pub fn describe_adapters() -> Vec<String> {
    Vec::new()
}

impl Backend for GpuBackend {
    type Tensor = ();
    fn name(&self) -> String {
        unimplemented!()
    }
    fn is_gpu(&self) -> bool {
        true
    }
    fn zeros(&self, _: usize) -> Result<()> {
        unimplemented!()
    }
    fn upload(&self, _: &[f32]) -> Result<()> {
        unimplemented!()
    }
    fn write(&self, _: &mut (), _: usize, _: &[f32]) -> Result<()> {
        unimplemented!()
    }
    fn read(&self, _: &()) -> Result<Vec<f32>> {
        unimplemented!()
    }
    fn len(&self, _: &()) -> usize {
        unimplemented!()
    }
    fn copy(&self, _: &(), _: usize, _: &mut (), _: usize, _: usize) {
        unimplemented!()
    }
    fn fill(&self, _: &mut (), _: f32) {
        unimplemented!()
    }
    fn flush(&self) -> Result<()> {
        unimplemented!()
    }
    fn counters(&self) -> Counters {
        unimplemented!()
    }
    fn linear_forward(&self, _: LinearShape, _: &(), _: &(), _: &(), _: &mut ()) {
        unimplemented!()
    }
    fn linear_backward_data(&self, _: LinearShape, _: &(), _: &(), _: &mut ()) {
        unimplemented!()
    }
    fn linear_backward_params(&self, _: LinearShape, _: &(), _: &(), _: &mut (), _: &mut ()) {
        unimplemented!()
    }
    fn activation_forward(&self, _: Activation, _: &(), _: &mut ()) {
        unimplemented!()
    }
    fn activation_backward(&self, _: Activation, _: &(), _: &(), _: &mut ()) {
        unimplemented!()
    }
    fn cd_loss(&self, _: &(), _: usize, _: f32, _: &mut (), _: &mut ()) {
        unimplemented!()
    }
    fn langevin_update(&self, _: &LangevinUpdate, _: &mut (), _: &()) {
        unimplemented!()
    }
    fn sum_squares(&self, _: &(), _: &mut (), _: usize) {
        unimplemented!()
    }
    fn adam_update(&self, _: &AdamUpdate, _: &mut (), _: &(), _: &mut (), _: &mut (), _: &()) {
        unimplemented!()
    }
    fn replay_draw(&self, _: &ReplayDraw, _: &(), _: &mut (), _: &mut ()) {
        unimplemented!()
    }
    fn replay_scatter(&self, _: &ReplayDraw, _: &(), _: &(), _: &mut ()) {
        unimplemented!()
    }
}
