//! A class-logit model without any training, for trying `ebm classify`: the nearest-class-
//! mean classifier of the shipped digits as one linear layer.
//!
//!     cargo run --release --example centroids -- [out.safetensors] [beta]
//!     ebm classify --model runs/centroids/model.safetensors --data data/mnist-subset \
//!         --limit 1000 --plot reliability.png
//!
//! The class means μ_c are taken over digits 1000..4000 of `data/mnist-subset` (so the
//! first 1000, which `--limit 1000` classifies, are held out). The logits are
//! f_c(x) = −β/2 · ‖x − μ_c‖² up to a term shared by all classes, i.e. the linear layer
//! W_c = β·μ_c, b_c = −β/2 · ‖μ_c‖²: p(y|x) = softmax f(x) is a Gaussian class-conditional
//! model with shared isotropic variance 1/β. β (default 0.5) sets how sharp, and so how
//! confident, the model is; nothing tunes it, which is what the reliability diagram shows
//! (at 0.5 it is overconfident; about 0.15 is calibrated).

use std::path::PathBuf;

use ebm::data::images::{self, DEFAULT_DIGITS};
use ebm::train::checkpoint::save_model;
use ebm::{CpuBackend, EnergyNet, Error, Result, Spec};

const CLASSES: usize = 10;
const HELD_OUT: usize = 1000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "runs/centroids/model.safetensors".into()),
    );
    let beta: f32 = match args.next() {
        Some(b) => b
            .parse()
            .map_err(|_| Error::Option(format!("beta {b:?} is not a number")))?,
        None => 0.5,
    };
    let set = images::load(DEFAULT_DIGITS, 1, 28, 28)?;
    let labels = set
        .labels
        .as_ref()
        .ok_or_else(|| Error::format(DEFAULT_DIGITS, "no labels beside the digits"))?;
    let d = set.sample_len();
    let mut means = vec![0f64; CLASSES * d];
    let mut counts = [0usize; CLASSES];
    for (i, &label) in labels.iter().enumerate().skip(HELD_OUT) {
        let c = label as usize;
        counts[c] += 1;
        for (m, &v) in means[c * d..(c + 1) * d].iter_mut().zip(set.image(i)) {
            *m += f64::from(v);
        }
    }
    for (c, &n) in counts.iter().enumerate() {
        means[c * d..(c + 1) * d]
            .iter_mut()
            .for_each(|m| *m /= n.max(1) as f64);
    }
    let weight: Vec<f32> = means.iter().map(|&m| beta * m as f32).collect();
    let bias: Vec<f32> = means
        .chunks_exact(d)
        .map(|mu| -beta / 2.0 * mu.iter().map(|m| m * m).sum::<f64>() as f32)
        .collect();

    let spec = Spec::from_json(&format!(
        r#"{{"input": [1, 28, 28],
            "layers": [{{"type": "flatten"}}, {{"type": "linear", "in": {d}, "out": {CLASSES}}}],
            "output": {{"energy": "neg_logsumexp", "classes": {CLASSES}}}}}"#
    ))?;
    let b = CpuBackend::new();
    let net = EnergyNet::from_params(&b, &spec, |name, _| {
        Ok(if name.ends_with("weight") {
            weight.clone()
        } else {
            bias.clone()
        })
    })?;
    save_model(&b, &net, &out)?;
    println!(
        "class means of digits {HELD_OUT}..{} (β = {beta}) → {}",
        set.len(),
        out.display()
    );
    Ok(())
}
