//! The spec-v2 goldens (`scripts/ebm_ref.py export-graph`, committed as
//! tests/golden/graph.safetensors): a residual MLP (names, `from`, fan-out, `add`, tanh), a
//! ResNet (IGEBM-style, n_f = 8, 1 channel), a JEM classifier energy (softplus,
//! global_avg_pool, neg_logsumexp head) and a generator (reshape, conv_transpose2d with and
//! without output padding, upsample, sigmoid, tanh; tensor output), each built from the same
//! spec JSON as PyTorch, and the ResNet with spectral norm (PyTorch's, one power iteration
//! per training step), each matched on the CPU and the GPU to relative error ≤ 1e-4 per
//! tensor (2-norm) against PyTorch autograd in float64.

#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::Path;

use ebm::backend::Backend;
use ebm::nn::Net;
use ebm::sampler::{Langevin, LangevinConfig};
use ebm::tensorfile::TensorFile;
use ebm::train::{stat, CdLoss};
use ebm::{CpuBackend, EnergyNet, Spec};
use gpu_common::rel_err;

const TOL: f64 = 1e-4;

fn golden() -> TensorFile {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/graph.safetensors"
    ));
    TensorFile::read(path).expect("graph golden file")
}

/// Tensor `key` of `case`, and the spec of `case`.
struct Case {
    file: TensorFile,
    name: &'static str,
}

impl Case {
    fn new(name: &'static str) -> Self {
        Case {
            file: golden(),
            name,
        }
    }

    fn t(&self, key: &str) -> Vec<f32> {
        let path = Path::new("graph.safetensors");
        self.file
            .get(&format!("{}/{key}", self.name), path)
            .unwrap_or_else(|e| panic!("{e}"))
            .data
            .clone()
    }

    fn spec(&self) -> Spec {
        Spec::from_json(&self.file.metadata[&format!("{}/spec", self.name)]).unwrap()
    }

    fn meta(&self, key: &str) -> String {
        self.file.metadata[key].clone()
    }

    fn check(&self, b: &impl Backend, what: &str, ours: &[f32], want: &[f32]) {
        assert_eq!(ours.len(), want.len(), "{}/{what}: length", self.name);
        let e = rel_err(ours, want);
        assert!(
            e <= TOL,
            "{}/{what} on {}: relative error {e:.3e} > {TOL:e}",
            self.name,
            b.name()
        );
    }
}

/// Energies, ∇ₓE and the CD loss's parameter gradients of a scalar energy net.
fn check_cd<B: Backend>(b: &B, name: &'static str) {
    let case = Case::new(name);
    let spec = case.spec();
    let mut net = EnergyNet::from_params(b, &spec, |p, _| Ok(case.t(p))).unwrap();
    let (x_pos, x_neg) = (case.t("x_pos"), case.t("x_neg"));
    let batch = x_neg.len() / net.input_len();
    case.check(
        b,
        "energy_pos",
        &net.energies(b, &x_pos).unwrap(),
        &case.t("energy_pos"),
    );
    let (e_neg, grad) = net.energies_and_grad(b, &x_neg).unwrap();
    case.check(b, "energy_neg", &e_neg, &case.t("energy_neg"));
    case.check(b, "grad_x_neg", &grad, &case.t("grad_x_neg"));

    let alpha: f32 = case.meta("alpha").parse().unwrap();
    let both = b.upload(&[x_pos, x_neg].concat()).unwrap();
    let mut d_energy = b.zeros(2 * batch).unwrap();
    let mut stats = b.zeros(stat::LEN).unwrap();
    let energies = net.forward(b, &both, 2 * batch).unwrap();
    CdLoss {
        n_pos: batch,
        alpha,
    }
    .run(b, energies, &mut d_energy, &mut stats);
    net.backward_params(b, 2 * batch, &d_energy).unwrap();
    let loss = b.read(&stats).unwrap()[stat::LOSS];
    case.check(b, "loss", &[loss], &case.t("loss"));
    for p in net.params() {
        let key = format!("grad/{}", p.name);
        case.check(b, &key, &b.read(&p.grad).unwrap(), &case.t(&key));
    }
}

/// The JEM head: logits, −logsumexp and −f[y] energies, softmax, both input gradients, and
/// parameter gradients of the mean energy and of the cross-entropy (built from the head's
/// ops: CE = mean(E(x, y) − E(x)), since −log p(y|x) = −f[y] + logsumexp f).
fn check_jem<B: Backend>(b: &B) {
    let case = Case::new("jem");
    let spec = case.spec();
    let mut net = EnergyNet::from_params(b, &spec, |p, _| Ok(case.t(p))).unwrap();
    let x = case.t("x");
    let y = case.t("y");
    let batch = y.len();
    let (xt, yt) = (b.upload(&x).unwrap(), b.upload(&y).unwrap());

    let energy = b.read(net.forward(b, &xt, batch).unwrap()).unwrap();
    case.check(b, "energy", &energy, &case.t("energy"));
    case.check(
        b,
        "logits",
        &b.read(net.logits(batch).unwrap()).unwrap(),
        &case.t("logits"),
    );
    case.check(
        b,
        "probs",
        &b.read(net.probabilities(b, batch).unwrap()).unwrap(),
        &case.t("probs"),
    );
    let grad_x = b.read(net.input_grad(b, &xt, batch).unwrap()).unwrap();
    case.check(b, "grad_x", &grad_x, &case.t("grad_x"));
    // ∂ mean E(x) / ∂θ.
    net.forward(b, &xt, batch).unwrap();
    let mean = b.upload(&vec![1.0 / batch as f32; batch]).unwrap();
    net.backward_params(b, batch, &mean).unwrap();
    let grads_lse: Vec<Vec<f32>> = net
        .params()
        .iter()
        .map(|p| b.read(&p.grad).unwrap())
        .collect();
    for (p, g) in net.params().iter().zip(&grads_lse) {
        let key = format!("grad_lse/{}", p.name);
        case.check(b, &key, g, &case.t(&key));
    }

    let energy_y = b
        .read(net.forward_labelled(b, &xt, &yt, batch).unwrap())
        .unwrap();
    case.check(b, "energy_y", &energy_y, &case.t("energy_y"));
    let grad_x_y = b
        .read(net.input_grad_labelled(b, &xt, &yt, batch).unwrap())
        .unwrap();
    case.check(b, "grad_x_y", &grad_x_y, &case.t("grad_x_y"));
    let ce: f64 = energy_y
        .iter()
        .zip(&energy)
        .map(|(ey, e)| f64::from(ey - e))
        .sum::<f64>()
        / batch as f64;
    case.check(b, "ce_loss", &[ce as f32], &case.t("ce_loss"));
    // ∂ mean E(x, y) / ∂θ − ∂ mean E(x) / ∂θ.
    net.forward_labelled(b, &xt, &yt, batch).unwrap();
    net.backward_params(b, batch, &mean).unwrap();
    for (p, g_lse) in net.params().iter().zip(&grads_lse) {
        let g_y = b.read(&p.grad).unwrap();
        let ce_grad: Vec<f32> = g_y.iter().zip(g_lse).map(|(a, c)| a - c).collect();
        let key = format!("grad/{}", p.name);
        case.check(b, &key, &ce_grad, &case.t(&key));
    }
}

/// The generator: its output, and the gradients of Σ out·R for the latent and every
/// parameter.
fn check_generator<B: Backend>(b: &B) {
    let case = Case::new("generator");
    let spec = case.spec();
    let mut net = Net::from_params(b, &spec, |p, _| Ok(case.t(p))).unwrap();
    let z = case.t("z");
    let batch = z.len() / net.input_len();
    let zt = b.upload(&z).unwrap();
    let out = b.read(net.forward(b, &zt, batch).unwrap()).unwrap();
    case.check(b, "out", &out, &case.t("out"));
    let r = case.t("R");
    let loss: f64 = out.iter().zip(&r).map(|(o, r)| f64::from(o * r)).sum();
    case.check(b, "loss", &[loss as f32], &case.t("loss"));
    net.backward(b, batch, &b.upload(&r).unwrap(), true, true)
        .unwrap();
    let grad_z = b.read(net.input_grad_tensor(batch).unwrap()).unwrap();
    case.check(b, "grad_z", &grad_z, &case.t("grad_z"));
    for p in net.params() {
        let key = format!("grad/{}", p.name);
        case.check(b, &key, &b.read(&p.grad).unwrap(), &case.t(&key));
    }
}

/// The ResNet with spectral norm on every conv and the head: eval-mode energies and three
/// Langevin steps with the stored u, v; then one power iteration (a training step's) and the
/// CD loss on [x⁺; x⁻] — energies, loss, gradients of every `weight_orig` and bias through
/// σ, and the updated u, v — and ∇ₓE at the iterated σ.
fn check_resnet_sn<B: Backend>(b: &B) {
    let case = Case::new("resnet_sn");
    let spec = case.spec();
    let mut net = EnergyNet::from_params(b, &spec, |p, _| Ok(case.t(p))).unwrap();
    let (x_pos, x_neg) = (case.t("x_pos"), case.t("x_neg"));
    let batch = x_neg.len() / net.input_len();
    let eval = net.energies(b, &x_neg).unwrap();
    case.check(b, "energy_eval_neg", &eval, &case.t("energy_eval_neg"));

    let sampler = Langevin {
        config: LangevinConfig {
            steps: case.meta("K").parse().unwrap(),
            step_size: case.meta("resnet_sn/step").parse().unwrap(),
            noise: case.meta("noise").parse().unwrap(),
            grad_clip: None,
            lo: case.meta("clamp_lo").parse().unwrap(),
            hi: case.meta("clamp_hi").parse().unwrap(),
        },
        seed: case.meta("langevin_seed").parse().unwrap(),
    };
    let mut x = b.upload(&x_neg).unwrap();
    sampler.run(b, &mut net, &mut x, batch, 0).unwrap();
    case.check(
        b,
        "langevin_x3",
        &b.read(&x).unwrap(),
        &case.t("langevin_x3"),
    );

    net.refresh_spectral_norm(b, true);
    let alpha: f32 = case.meta("alpha").parse().unwrap();
    let both = b.upload(&[x_pos, x_neg.clone()].concat()).unwrap();
    let mut d_energy = b.zeros(2 * batch).unwrap();
    let mut stats = b.zeros(stat::LEN).unwrap();
    let energies = net.forward(b, &both, 2 * batch).unwrap();
    let e = b.read(energies).unwrap();
    case.check(b, "energy_pos", &e[..batch], &case.t("energy_pos"));
    case.check(b, "energy_neg", &e[batch..], &case.t("energy_neg"));
    CdLoss {
        n_pos: batch,
        alpha,
    }
    .run(b, energies, &mut d_energy, &mut stats);
    net.backward_params(b, 2 * batch, &d_energy).unwrap();
    let loss = b.read(&stats).unwrap()[stat::LOSS];
    case.check(b, "loss", &[loss], &case.t("loss"));
    let mut normed = 0;
    for p in net.params() {
        let value = b.read(&p.value).unwrap();
        if let Some(layer) = p.name.strip_suffix(".weight_u") {
            case.check(
                b,
                &format!("u_after/{layer}"),
                &value,
                &case.t(&format!("u_after/{layer}")),
            );
            normed += 1;
        } else if let Some(layer) = p.name.strip_suffix(".weight_v") {
            case.check(
                b,
                &format!("v_after/{layer}"),
                &value,
                &case.t(&format!("v_after/{layer}")),
            );
        } else {
            let key = format!("grad/{}", p.name);
            case.check(b, &key, &b.read(&p.grad).unwrap(), &case.t(&key));
        }
    }
    assert_eq!(normed, 16, "every conv and the head are spectral-normed");
    let (_, grad) = net.energies_and_grad(b, &x_neg).unwrap();
    case.check(b, "grad_x_neg", &grad, &case.t("grad_x_neg"));
}

#[test]
fn resnet_spectral_norm_cpu() {
    check_resnet_sn(&CpuBackend::new());
}

#[test]
fn residual_mlp_cpu() {
    check_cd(&CpuBackend::new(), "residual_mlp");
}

#[test]
fn resnet_cpu() {
    check_cd(&CpuBackend::new(), "resnet");
}

#[test]
fn jem_cpu() {
    check_jem(&CpuBackend::new());
}

#[test]
fn generator_cpu() {
    check_generator(&CpuBackend::new());
}

#[test]
fn graph_goldens_gpu() {
    if let Some(gpu) = gpu_common::gpu() {
        check_cd(&*gpu, "residual_mlp");
        check_cd(&*gpu, "resnet");
        check_jem(&*gpu);
        check_generator(&*gpu);
        check_resnet_sn(&*gpu);
    }
}

/// The built-in ResNet is the reference's: the golden's spec (made by
/// `ebm_ref.py`'s `resnet32_spec(1, 8)`) parses to `Spec::resnet(1, 8)`.
#[test]
fn builtin_resnet_is_the_references() {
    assert_eq!(Case::new("resnet").spec(), Spec::resnet(1, 8));
}

/// `ebm score --model MODEL --input INPUT` on the CPU and the GPU: its energies against
/// `want`. The GPU is skipped only where there is no adapter and CI is unset.
fn score_through_cli(what: &str, model: &Path, input: &Path, want: &[f32]) {
    let dir = tempdir::TempDir::new("graph-cli");
    for device in ["cpu", "gpu"] {
        let out = dir.join(&format!("{what}-{device}.safetensors"));
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_ebm"))
            .args(["--device", device, "score", "--model"])
            .arg(model)
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        if device == "gpu" && !run.status.success() && std::env::var_os("CI").is_none() {
            eprintln!("skipped the GPU: {stderr}");
            continue;
        }
        assert!(
            run.status.success(),
            "ebm score {what} on {device}: {stderr}"
        );
        let scores = TensorFile::read(&out).unwrap();
        let e = rel_err(&scores.get("energy", &out).unwrap().data, want);
        assert!(e <= TOL, "{what} on {device} through ebm score: {e:.3e}");
    }
}

/// A PyTorch `nn.Module` ResNet (tests/golden/make_torch_resnet.py: its float32
/// state_dict saved with safetensors, the spec in the `ebm.spec` metadata) scores through
/// `ebm score` as PyTorch scores it in float64.
#[test]
fn torch_resnet_scores_the_same_through_the_cli() {
    let golden = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let scores = golden.join("torch_resnet_scores.safetensors");
    let want = TensorFile::read(&scores)
        .unwrap()
        .get("energy", &scores)
        .unwrap()
        .data
        .clone();
    let model = golden.join("torch_resnet.safetensors");
    score_through_cli("torch_resnet", &model, &scores, &want);
}

/// The graph goldens through the CLI as well: each case's parameters written as a model file
/// (PyTorch names, `ebm.spec` metadata), scored by `ebm score` on the CPU and the GPU —
/// the ResNet, the ResNet with spectral norm (scoring uses the stored u, v: PyTorch's eval
/// forward) and the JEM head (E(x) = −logsumexp f(x)).
#[test]
fn graph_goldens_score_the_same_through_the_cli() {
    let dir = tempdir::TempDir::new("graph-files");
    for (name, input, energy) in [
        ("resnet", "x_neg", "energy_neg"),
        ("resnet_sn", "x_neg", "energy_eval_neg"),
        ("jem", "x", "energy"),
    ] {
        let case = Case::new(name);
        let spec = case.spec();
        let mut model = TensorFile::default();
        let net = EnergyNet::from_params(&CpuBackend::new(), &spec, |p, _| Ok(case.t(p))).unwrap();
        for p in net.params() {
            model.insert(&p.name, p.shape.clone(), case.t(&p.name));
        }
        model.metadata.insert("ebm.spec".into(), spec.to_json());
        let model_path = dir.join(&format!("{name}.safetensors"));
        model.write(&model_path).unwrap();
        let x = case.t(input);
        let mut shape = vec![x.len() / spec.input_len()];
        shape.extend(&spec.input);
        let mut inputs = TensorFile::default();
        inputs.insert("x", shape, x);
        let input_path = dir.join(&format!("{name}-x.safetensors"));
        inputs.write(&input_path).unwrap();
        score_through_cli(name, &model_path, &input_path, &case.t(energy));
    }
}
