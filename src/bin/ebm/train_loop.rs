//! The loop every `ebm train …` command shares: iterations with a progress bar, scalars read
//! back every `--log-every`, a metrics CSV and chart, pictures every `--plot-every`, atomic
//! checkpoints every `--ckpt-every` (the last `--keep-checkpoints` kept), and `--resume` from
//! a checkpoint file or a run folder.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use ebm::backend::Backend;
use ebm::data::DataSource;
use ebm::nn::io::model_kind;
use ebm::plot;
use ebm::sampler::Method;
use ebm::tensorfile::remove_stale_temps;
use ebm::tensorfile::TensorFile;
use ebm::train::checkpoint::{list_checkpoints, save_run_checkpoint, LATEST_CHECKPOINT};
use ebm::train::learner::fit;
use ebm::train::Learner;
use ebm::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Options common to every training command.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Run")]
pub struct LoopArgs {
    /// Output folder (default runs/<name>, or the checkpoint's folder with --resume).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write pictures every N iterations (and at the end).
    #[arg(long, default_value_t = 500)]
    pub plot_every: u64,
    /// Read back and log loss and energies every N iterations.
    #[arg(long, default_value_t = 50)]
    pub log_every: u64,
    /// Write a checkpoint every N iterations (and at the end).
    #[arg(long, default_value_t = 1000)]
    pub ckpt_every: u64,
    /// Keep the last K checkpoints (checkpoint-<iteration>.safetensors) in the run folder.
    #[arg(long, default_value_t = 3, value_name = "K")]
    pub keep_checkpoints: i64,
    /// Continue a run: from a checkpoint file, or from a run folder's newest valid checkpoint.
    #[arg(long, value_name = "CKPT|RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// No progress bar (log lines instead).
    #[arg(long)]
    pub quiet: bool,
}

impl LoopArgs {
    /// Check the options, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        for (name, every) in [
            ("plot-every", self.plot_every),
            ("log-every", self.log_every),
            ("ckpt-every", self.ckpt_every),
        ] {
            if every == 0 {
                return Err(Error::Option(format!("--{name} must be at least 1")));
            }
        }
        if self.keep_checkpoints < 1 {
            return Err(Error::Option(format!(
                "--keep-checkpoints must be at least 1, not {}",
                self.keep_checkpoints
            )));
        }
        Ok(())
    }

    /// `--out`, else the resumed run folder (or the resumed checkpoint's folder), else
    /// runs/`name`; created.
    pub fn out_dir(&self, name: &str) -> Result<PathBuf> {
        let resumed = self.resume.as_deref().and_then(|r| {
            if r.is_dir() {
                Some(r)
            } else {
                r.parent().filter(|d| !d.as_os_str().is_empty())
            }
        });
        let out = match (&self.out, resumed) {
            (Some(out), _) => out.clone(),
            (None, Some(dir)) => dir.to_path_buf(),
            (None, None) => PathBuf::from("runs").join(name),
        };
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        Ok(out)
    }
}

/// The checkpoint `--resume` names: a checkpoint file as it is, or in a run folder the
/// newest numbered checkpoint that loads (a corrupt or partial one is skipped with a one-line
/// notice), falling back to its `checkpoint.safetensors`. Read as a run of kind `L`.
pub fn resume_trainer<B: Backend, L: Learner<B>>(b: &B, path: &Path) -> Result<L> {
    let load = |ckpt: &Path| TensorFile::read(ckpt).and_then(|f| L::from_checkpoint(b, &f, ckpt));
    if !path.is_dir() {
        return load(path);
    }
    let candidates = checkpoint_candidates(path)?;
    for ckpt in &candidates {
        match load(ckpt) {
            Ok(trainer) => {
                eprintln!(
                    "resuming from {} (iteration {})",
                    ckpt.display(),
                    trainer.iteration()
                );
                return Ok(trainer);
            }
            Err(e) => eprintln!("note: skipping {}: {e}", ckpt.display()),
        }
    }
    Err(Error::Option(if candidates.is_empty() {
        format!(
            "--resume: no checkpoint-<iteration>.safetensors or {LATEST_CHECKPOINT} in {}",
            path.display()
        )
    } else {
        format!(
            "--resume: none of the {} checkpoints in {} loads",
            candidates.len(),
            path.display()
        )
    }))
}

/// A run folder's checkpoints, newest first, `checkpoint.safetensors` last.
fn checkpoint_candidates(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut candidates: Vec<PathBuf> = list_checkpoints(dir)?
        .into_iter()
        .rev()
        .map(|(_, p)| p)
        .collect();
    let latest = dir.join(LATEST_CHECKPOINT);
    if latest.is_file() {
        candidates.push(latest);
    }
    Ok(candidates)
}

/// The family a `--resume` checkpoint (or run folder) holds: `coop`, `latent-ebm`, or `None`
/// for a single-net CD run (also when nothing readable is found: the resume itself then says
/// what is wrong).
pub fn resume_kind(path: &Path) -> Option<String> {
    let file = if path.is_dir() {
        checkpoint_candidates(path)
            .ok()?
            .iter()
            .find_map(|c| TensorFile::read(c).ok())?
    } else {
        TensorFile::read(path).ok()?
    };
    model_kind(&file).map(str::to_string)
}

/// What a training command adds to the loop: quality metrics and pictures.
pub trait Watch<B: Backend, L> {
    /// The metrics' CSV columns and log labels (e.g. "kl"); none by default.
    fn metric_names(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// The metrics now, one per name (called every `--log-every`).
    fn metrics(&mut self, _b: &B, _trainer: &mut L) -> Result<Vec<f64>> {
        Ok(Vec::new())
    }
    /// Write the pictures for `iteration` into `out` (`metrics`: the last ones logged).
    fn pictures(
        &mut self,
        b: &B,
        trainer: &mut L,
        iteration: u64,
        metrics: &[f64],
        out: &Path,
    ) -> Result<()>;
}

/// Train to `iters` iterations (counting from where `trainer` stands).
pub fn run<B: Backend, L: Learner<B>>(
    b: &B,
    trainer: &mut L,
    data: &mut dyn DataSource,
    iters: u64,
    args: &LoopArgs,
    out: &Path,
    watch: &mut dyn Watch<B, L>,
) -> Result<()> {
    let stale = remove_stale_temps(out)?;
    if stale > 0 {
        eprintln!(
            "note: removed {stale} temp file(s) an interrupted run left in {}",
            out.display()
        );
    }
    let keep = usize::try_from(args.keep_checkpoints.max(1)).unwrap_or(usize::MAX);
    let (start, end) = (trainer.iteration(), trainer.iteration().max(iters));
    let csv_path = out.join("metrics.csv");
    // Columns after e_neg: the cross-entropy of objectives with a classifier term, the
    // acceptance rate of an exact sampler's tests, then the watch's metric.
    let with_ce = trainer.has_ce();
    let with_gen = trainer.has_generator();
    let with_accept = trainer.sampler() != Method::Ula;
    let names = watch.metric_names();
    let extra: Vec<&str> = with_ce
        .then_some("ce")
        .into_iter()
        .chain(with_gen.then_some("gen"))
        .chain(with_accept.then_some("accept"))
        .chain(with_accept.then_some("step"))
        .chain(names.iter().copied())
        .collect();
    let mut csv = open_csv(&csv_path, args.resume.is_some(), start, &extra)?;
    let bar = progress_bar(start, end, args.quiet);
    let t0 = Instant::now();
    let mut metrics = vec![f64::NAN; names.len()];
    // A low-acceptance note is printed once per run.
    let mut advised = false;
    fit(trainer, b, data, end - start, |trainer, b| {
        let done = trainer.iteration();
        let last = done == end;
        // Reading the stats also reads the device's health flags (NaN or ±∞ since the last
        // read): a checkpoint is written only after a clean read in the same iteration.
        let mut checked = false;
        if done % args.log_every == 0 || last {
            let stats = trainer.stats(b)?;
            checked = true;
            let rate = (done - start) as f64 / t0.elapsed().as_secs_f64();
            let mut line = format!(
                "loss {:+.4}  E+ {:+.3}  E- {:+.3}",
                stats.loss, stats.e_pos, stats.e_neg
            );
            let mut row = format!("{done},{},{},{}", stats.loss, stats.e_pos, stats.e_neg);
            if let (true, Some(ce)) = (with_ce, stats.ce) {
                line += &format!("  CE {ce:.4}");
                row += &format!(",{ce}");
            }
            if let (true, Some(gen)) = (with_gen, stats.gen) {
                line += &format!("  G {gen:.4}");
                row += &format!(",{gen}");
            }
            if let Some(acceptance) = trainer.acceptance(b)? {
                // Since the last log line: the tests of the iterations in between.
                let step = trainer.step_size();
                line += &format!("  acc {:.2}  ε {step:.3e}", acceptance.rate);
                row += &format!(",{},{step}", acceptance.rate);
                trainer.reset_acceptance(b);
                match acceptance.advice(step) {
                    Some(note) if !advised => {
                        bar.suspend(|| eprintln!("{note}"));
                        advised = true;
                    }
                    _ => {}
                }
            }
            if !names.is_empty() {
                metrics = watch.metrics(b, trainer)?;
                for (name, value) in names.iter().zip(&metrics) {
                    line += &format!("  {} {value:.3}", name.to_uppercase());
                    row += &format!(",{value}");
                }
            }
            line += &format!("  {rate:.2} it/s");
            writeln!(csv, "{row},{rate},{}", t0.elapsed().as_secs_f64())
                .map_err(|e| Error::io(&csv_path, e))?;
            csv.flush().map_err(|e| Error::io(&csv_path, e))?;
            if args.quiet {
                eprintln!("iter {done}: {line}");
            }
            bar.set_message(line);
        }
        bar.set_position(done);
        if done % args.plot_every == 0 || last {
            watch.pictures(b, trainer, done, &metrics, out)?;
        }
        if done % args.ckpt_every == 0 || last {
            // A run that went NaN stops here with an error naming the iteration, and the last
            // checkpoint on disk stays the last good one.
            if !checked {
                trainer.stats(b)?;
            }
            save_run_checkpoint(b, &*trainer, out, keep)?;
            trainer.model(b)?.write(&out.join("model.safetensors"))?;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    bar.finish();
    plot_metrics(&csv_path, &out.join("metrics.png"))?;
    let metric_note: String = names
        .iter()
        .zip(&metrics)
        .map(|(n, v)| format!(", {} = {v:.3}", n.to_uppercase()))
        .collect();
    eprintln!(
        "done: {} iterations in {:.1} s{metric_note}; wrote {}",
        end - start,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The metrics CSV, new or (resuming at iteration `start`) continued: rows past `start`,
/// logged by the interrupted run after its last checkpoint, are dropped so the resumed run's
/// rows replace them.
fn open_csv(path: &Path, append: bool, start: u64, extra: &[&str]) -> Result<BufWriter<File>> {
    let exists = path.exists();
    if append && exists {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let columns = header.split(',').count();
        let mut trimmed = format!("{header}\n");
        for line in lines {
            let iter = line.split(',').next().and_then(|v| v.parse::<u64>().ok());
            // A row cut short by a kill has too few columns.
            if iter.is_some_and(|i| i <= start) && line.split(',').count() == columns {
                trimmed.push_str(line);
                trimmed.push('\n');
            }
        }
        if trimmed != text {
            ebm::tensorfile::write_atomic(path, trimmed.as_bytes())?;
        }
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    if !(append && exists) {
        let extra: String = extra.iter().map(|c| format!("{c},")).collect();
        writeln!(w, "iter,loss,e_pos,e_neg,{extra}it_per_s,seconds")
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(w)
}

/// The bar every long-running command shows: elapsed time, position of `end`, a message.
pub fn progress_bar(start: u64, end: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(end);
    bar.set_position(start);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The CSV's columns over the run, as a chart (every column but iter, it/s and seconds).
fn plot_metrics(csv: &Path, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f32>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f32::NAN))
                .collect()
        })
        .filter(|r: &Vec<f32>| r.len() == header.len())
        .collect();
    let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    let curves: Vec<(&str, Vec<f32>)> = header
        .iter()
        .enumerate()
        .filter(|(_, name)| !["iter", "it_per_s", "seconds"].contains(name))
        .map(|(i, name)| {
            let label = match *name {
                "e_pos" => "E+",
                "e_neg" => "E-",
                "kl" => "KL",
                "kl_marginal" => "KL (marginal)",
                "kl_gen" => "KL (generator)",
                "kl_revised" => "KL (revised)",
                "gen" => "generator loss",
                "ce" => "CE",
                "accept" => "acceptance",
                "step" => "step size",
                other => other,
            };
            (label, col(i))
        })
        .collect();
    let series: Vec<(&str, &[f32])> = curves.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    plot::line_chart(png, "training curves", &col(0), &series)
}
