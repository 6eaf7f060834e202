//! `ebm classify` end to end on a hand-made class-logit model whose every probability is
//! known: flatten → linear 4 → 2 on 1 × 2 × 2 images, logits f₀ = 2·x₀, f₁ = 2·x₁ + ½
//! (x₀, x₁ the first two pixels), five IDX images with their IDX labels beside them. The
//! printed accuracy, the written `probs`, `pred` and `label`, and the ECE recomputed from
//! them must match; bad input (no labels, a scalar-energy model, a label out of range)
//! must exit 2 with one `error:` line naming the problem.

#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "common/tempdir.rs"]
mod tempdir;

use std::path::Path;
use std::process::{Command, Output};

use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::save_model;
use ebm::{CpuBackend, EnergyNet, Spec};
use tempdir::TempDir;

const CLASSIFIER: &str = r#"{"input": [1, 2, 2],
    "layers": [{"type": "flatten"}, {"type": "linear", "in": 4, "out": 2}],
    "output": {"energy": "neg_logsumexp", "classes": 2}}"#;
const SCALAR: &str = r#"{"input": [1, 2, 2],
    "layers": [{"type": "flatten"}, {"type": "linear", "in": 4, "out": 1}]}"#;

/// Five 2 × 2 images (bytes) and their labels. With x = byte/255·2 − 1 the predictions are
/// 0, 1, 0, 1, 1 (class 1 wins ties of x₀ and x₁ by its bias): right, right, wrong, wrong,
/// right — accuracy 3/5.
const IMAGES: [[u8; 4]; 5] = [
    [255, 0, 0, 0],
    [0, 255, 0, 0],
    [230, 0, 9, 9],
    [128, 128, 0, 0],
    [0, 0, 77, 200],
];
const LABELS: [u8; 5] = [0, 1, 1, 0, 1];

fn idx_images(images: &[[u8; 4]]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803u32, images.len() as u32, 2, 2] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend(images.iter().flatten());
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = 0x0801u32.to_be_bytes().to_vec();
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// The model file: W = [[2, 0, 0, 0], [0, 2, 0, 0]], b = (0, ½) for the classifier; any
/// weights for the scalar net.
fn write_model(dir: &TempDir, name: &str, spec: &str) -> String {
    let b = CpuBackend::new();
    let spec = Spec::from_json(spec).unwrap();
    let net = EnergyNet::from_params(&b, &spec, |name, shape| {
        Ok(match (name, shape) {
            (_, [2, 4]) => vec![2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0],
            (_, [2]) => vec![0.0, 0.5],
            _ => vec![0.25; shape.iter().product()],
        })
    })
    .unwrap();
    let path = dir.path(name);
    save_model(&b, &net, Path::new(&path)).unwrap();
    path
}

/// p(class 1 | image) from the hand-set weights, in f64.
fn p1(image: &[u8; 4]) -> f64 {
    let x = |v: u8| v as f64 / 255.0 * 2.0 - 1.0;
    let (f0, f1) = (2.0 * x(image[0]), 2.0 * x(image[1]) + 0.5);
    1.0 / (1.0 + (f0 - f1).exp())
}

fn ebm(dir: &TempDir, args: &[&str]) -> Output {
    ebm_on(dir, "cpu", args)
}

fn ebm_on(dir: &TempDir, device: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args(["--device", device, "classify"])
        .args(args)
        .current_dir(&dir.0)
        .env_remove("EBM_DEVICE")
        .output()
        .expect("the ebm binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `key` on the line that starts with it.
fn value(text: &str, key: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no line {key:?} in:\n{text}"));
    line[key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// ECE from scratch: right-closed bins ((b/B, (b+1)/B]), confidence = max probability.
fn ece(probs: &[f32], labels: &[f32], classes: usize, bins: usize) -> f64 {
    let mut diff = vec![0f64; bins];
    for (row, &y) in probs.chunks_exact(classes).zip(labels) {
        let (mut pred, mut conf) = (0, row[0]);
        for (c, &p) in row.iter().enumerate() {
            if p > conf {
                (pred, conf) = (c, p);
            }
        }
        let b = ((conf as f64 * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        diff[b] += if pred as f32 == y { 1.0 } else { 0.0 } - conf as f64;
    }
    diff.iter().map(|d| d.abs()).sum::<f64>() / labels.len() as f64
}

fn expect_bad(dir: &TempDir, args: &[&str], needles: &[&str]) {
    let out = ebm(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("ebm classify {}\n{}\n{stderr}", args.join(" "), out.status);
    assert_eq!(out.status.code(), Some(2), "{what}");
    assert!(!stderr.contains("panicked"), "{what}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want exactly one `error:` line: {what}");
    for needle in needles {
        assert!(errors[0].contains(needle), "no {needle:?} in: {what}");
    }
}

#[test]
fn accuracy_probabilities_and_ece_match_the_hand_computed_model() {
    let dir = TempDir::new("classify");
    let model = write_model(&dir, "m.safetensors", CLASSIFIER);
    let data = dir.write("t-images-idx3-ubyte", idx_images(&IMAGES));
    dir.write("t-labels-idx1-ubyte", idx_labels(&LABELS));
    let out = ebm(
        &dir,
        &[
            "--model",
            &model,
            "--data",
            &data,
            "--out",
            "p.safetensors",
            "--plot",
            "r.png",
        ],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(value(&text, "accuracy:"), 0.6, "{text}");
    assert!(text.contains("(3 of 5)"), "{text}");
    assert!(text.contains("  class 0: 0.500000 (1 of 2)"), "{text}");
    assert!(text.contains("  class 1: 0.666667 (2 of 3)"), "{text}");

    let f = TensorFile::read(&dir.join("p.safetensors")).unwrap();
    let probs = f.get("probs", Path::new("p")).unwrap();
    let pred = f.get("pred", Path::new("p")).unwrap();
    let label = f.get("label", Path::new("p")).unwrap();
    assert_eq!(probs.shape, [5, 2]);
    assert_eq!(
        (pred.shape.as_slice(), label.shape.as_slice()),
        (&[5][..], &[5][..])
    );
    assert_eq!(pred.data, [0.0, 1.0, 0.0, 1.0, 1.0]);
    assert_eq!(label.data, LABELS.map(f32::from));
    for (i, image) in IMAGES.iter().enumerate() {
        let want = p1(image);
        let (a, b) = (probs.data[2 * i] as f64, probs.data[2 * i + 1] as f64);
        assert!(
            (b - want).abs() < 1e-5 && (a - (1.0 - want)).abs() < 1e-5,
            "image {i}"
        );
    }

    // ECE recomputed from the written tensors, and by hand: with 15 bins, images 0, 1 and 2
    // (confidences 0.971, 0.989, 0.957; two right) share the bin (14/15, 1], images 3 and 4
    // (both σ(½) = 0.622; one right) the bin (9/15, 10/15].
    let printed = value(&text, "ECE (15 bins):");
    let recomputed = ece(&probs.data, &label.data, 2, 15);
    assert!(
        (printed - recomputed).abs() < 2e-6,
        "{printed} vs {recomputed}"
    );
    let conf = |i: usize| p1(&IMAGES[i]).max(1.0 - p1(&IMAGES[i]));
    assert!((conf(3) - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-12);
    let high = (conf(0) + conf(1) + conf(2)) / 3.0;
    let by_hand = 3.0 / 5.0 * (2.0 / 3.0 - high).abs() + 2.0 / 5.0 * (0.5 - conf(3)).abs();
    assert!((printed - by_hand).abs() < 2e-6, "{printed} vs {by_hand}");
    // Mean confidence and NLL by hand too.
    let conf: f64 = (0..5).map(conf).sum::<f64>() / 5.0;
    assert!((value(&text, "mean confidence:") - conf).abs() < 2e-6);
    let nll: f64 = IMAGES
        .iter()
        .zip(LABELS)
        .map(|(im, y)| -(if y == 1 { p1(im) } else { 1.0 - p1(im) }).ln())
        .sum::<f64>()
        / 5.0;
    assert!((value(&text, "NLL:") - nll).abs() < 2e-6);

    // The reliability diagram is a PNG of the documented size.
    let img = image::open(dir.join("r.png")).unwrap();
    assert_eq!((img.width(), img.height()), ebm::plot::reliability_size(1));

    // One bin: ECE = |accuracy − mean confidence|.
    let one = stdout(&ebm(
        &dir,
        &["--model", &model, "--data", &data, "--bins", "1"],
    ));
    assert!(
        (value(&one, "ECE (1 bins):") - (0.6 - conf).abs()).abs() < 2e-6,
        "{one}"
    );
}

/// More images than one device pass (`ebm::nn::model::HOST_CHUNK`) on the GPU, where an adapter
/// exists: the same probabilities as the hand formula and the CPU.
#[test]
fn gpu_matches_cpu_over_several_chunks() {
    // Only to decide whether an adapter exists; the CLI opens its own device.
    if gpu_common::gpu().is_none() {
        return;
    }
    let dir = TempDir::new("classify-gpu");
    let model = write_model(&dir, "m.safetensors", CLASSIFIER);
    let n = ebm::nn::model::HOST_CHUNK + 100;
    let images: Vec<[u8; 4]> = (0..n as u32)
        .map(|i| [(i * 37 % 256) as u8, (i * 91 % 256) as u8, 0, (i % 7) as u8])
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3 == 0) as u8).collect();
    let data = dir.write("g-images-idx3-ubyte", idx_images(&images));
    dir.write("g-labels-idx1-ubyte", idx_labels(&labels));
    let mut printed = Vec::new();
    for device in ["cpu", "gpu"] {
        let out_file = format!("{device}.safetensors");
        let args = ["--model", &model, "--data", &data, "--out", &out_file];
        let out = ebm_on(&dir, device, &args);
        assert!(
            out.status.success(),
            "{device}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = TensorFile::read(&dir.join(&out_file)).unwrap();
        let probs = f.get("probs", Path::new(&out_file)).unwrap();
        assert_eq!(probs.shape, [n, 2]);
        for (i, image) in images.iter().enumerate() {
            let got = probs.data[2 * i + 1] as f64;
            assert!((got - p1(image)).abs() < 1e-5, "{device}, image {i}");
        }
        printed.push(value(&stdout(&out), "ECE (15 bins):"));
    }
    assert!((printed[0] - printed[1]).abs() < 1e-5, "{printed:?}");
}

#[test]
fn explicit_labels_and_limit() {
    let dir = TempDir::new("classify-labels");
    let model = write_model(&dir, "m.safetensors", CLASSIFIER);
    // Images without a labels file beside them; the labels that make every prediction right.
    let data = dir.write("v-images-idx3-ubyte", idx_images(&IMAGES));
    let labels = dir.write("answers.idx1", idx_labels(&[0, 1, 0, 1, 1]));
    let out = ebm(
        &dir,
        &["--model", &model, "--data", &data, "--labels", &labels],
    );
    assert!(out.status.success());
    assert_eq!(value(&stdout(&out), "accuracy:"), 1.0);
    // --limit 2: the first two images only.
    let out = ebm(
        &dir,
        &[
            "--model", &model, "--data", &data, "--labels", &labels, "--limit", "2",
        ],
    );
    let text = stdout(&out);
    assert!(
        text.contains("(2 of 2)") && text.contains("2 images"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = TempDir::new("classify-bad");
    let model = write_model(&dir, "m.safetensors", CLASSIFIER);
    let scalar = write_model(&dir, "scalar.safetensors", SCALAR);
    let data = dir.write("u-images-idx3-ubyte", idx_images(&IMAGES));
    // No labels: the message names both files looked for, and the way out.
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data],
        &[
            "u-images-idx3-ubyte",
            "u-labels-idx1-ubyte and u-labels-idx1-ubyte.gz",
            "--labels",
        ],
    );
    // A scalar-energy model has no classes.
    dir.write("u-labels-idx1-ubyte", idx_labels(&LABELS));
    expect_bad(
        &dir,
        &["--model", &scalar, "--data", &data],
        &["scalar.safetensors", "class-logit"],
    );
    // A label the model has no logit for, and a labels file of the wrong length.
    let bad = dir.write("bad.idx1", idx_labels(&[0, 1, 2, 0, 1]));
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data, "--labels", &bad],
        &["bad.idx1", "label 2 (image 2)", "2 (0..=1)"],
    );
    let short = dir.write("short.idx1", idx_labels(&[0, 1]));
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data, "--labels", &short],
        &["short.idx1", "2 labels", "5 images"],
    );
    // An images file given as labels, and options out of range.
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data, "--labels", &data],
        &["not an IDX labels file"],
    );
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data, "--bins", "0"],
        &["--bins"],
    );
    expect_bad(
        &dir,
        &["--model", &model, "--data", &data, "--limit", "0"],
        &["--limit"],
    );
}

/// `ebm score --ood` on a class-logit model also scores by confidence: `max_prob` is
/// max(p₀, p₁) of the hand-set model for every image, and the AUROC written beside it is the
/// one recomputed from those values (an OOD image scores higher when it is less confident).
#[test]
fn score_ood_adds_the_max_softmax_score() {
    let dir = TempDir::new("classify-ood");
    let model = write_model(&dir, "m.safetensors", CLASSIFIER);
    let data = dir.write("t-images-idx3-ubyte", idx_images(&IMAGES));
    let ood = dir.write("o-images-idx3-ubyte", idx_images(&IMAGES[1..4]));
    let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .args([
            "--device", "cpu", "score", "--model", &model, "--data", &data,
        ])
        .args(["--ood", &ood, "--out", "s.safetensors"])
        .current_dir(&dir.0)
        .env_remove("EBM_DEVICE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("max softmax"), "{}", stdout(&out));
    let path = dir.path("s.safetensors");
    let file = TensorFile::read(Path::new(&path)).unwrap();
    let get = |k: &str| file.get(k, Path::new(&path)).unwrap().data.clone();
    let (p_in, p_ood) = (get("max_prob"), get("max_prob_ood"));
    for (got, image) in p_in
        .iter()
        .zip(&IMAGES)
        .chain(p_ood.iter().zip(&IMAGES[1..4]))
    {
        let want = p1(image).max(1.0 - p1(image));
        assert!((f64::from(*got) - want).abs() < 1e-5, "{got} vs {want}");
    }
    // AUROC = P(score_ood > score_in) + ½ P(tie), score = −max p.
    let mut wins = 0.0;
    for &a in &p_in {
        for &o in &p_ood {
            wins += if -o > -a {
                1.0
            } else if o == a {
                0.5
            } else {
                0.0
            };
        }
    }
    let want = wins / (p_in.len() * p_ood.len()) as f64;
    let got: f64 = file.metadata["ebm.auroc_max_prob"].parse().unwrap();
    assert!((got - want).abs() < 1e-9, "AUROC {got} vs {want}");
}
