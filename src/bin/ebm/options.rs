//! The option groups every `ebm train …` command shares, defined once: the Langevin sampler,
//! the Adam optimiser, the replay buffer, and the batch, α and seed of the run ([`TrainArgs`]
//! holds them all and builds the library's [`TrainConfig`]).
//!
//! Each command keeps its own defaults: an option whose default differs between commands has
//! none here (a command that gave it none would make it required, which the tests in
//! main.rs notice), and the command sets it from a table of its own,
//! `#[command(mut_args(own_defaults(DEFAULTS)))]` with `DEFAULTS` holding `("steps", "20")`,
//! so `--help` shows `[default: 20]`. Options with one default for every command (`--beta2`,
//! `--reinit`, `--seed`) keep it here.

use clap::{Arg, Args};
use ebm::sampler::adapt::{self, Adaptation};
use ebm::sampler::{LangevinConfig, Method};
use ebm::train::{AdamConfig, Objective, TrainConfig};
use ebm::{Error, Result};

/// A command's own defaults for the shared options, as (id, value) pairs, for
/// `#[command(mut_args(own_defaults(TABLE)))]` on the command's struct: each option named
/// defaults to its value (as if parsed from the command line, and shown in `--help`) and so
/// is no longer required. (`mut_args` rather than one `mut_arg` per option: `mut_arg` moves
/// the option to the end of the list, and with it its help heading.)
pub fn own_defaults(table: &'static [(&'static str, &'static str)]) -> impl FnMut(Arg) -> Arg {
    move |arg| match table.iter().find(|(id, _)| arg.get_id() == *id) {
        Some(&(_, value)) => arg.default_value(value).required(false),
        None => arg,
    }
}

/// A command's own help lines for shared options, as (id, help) pairs, like
/// [`own_defaults`]. clap drops a doc comment's final period: give none here either.
pub fn own_help(table: &'static [(&'static str, &'static str)]) -> impl FnMut(Arg) -> Arg {
    move |arg| match table.iter().find(|(id, _)| arg.get_id() == *id) {
        Some(&(_, help)) => arg.help(help),
        None => arg,
    }
}

/// The negative samples: K Langevin steps per iteration.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Langevin sampler")]
pub struct LangevinArgs {
    /// Langevin steps per iteration (K).
    #[arg(long)]
    pub steps: usize,
    /// Langevin gradient step size.
    #[arg(long)]
    pub step_size: f32,
    /// Langevin noise standard deviation.
    #[arg(long)]
    pub noise: f32,
    /// Clamp each element of ∇ₓE to [−c, c] during sampling.
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// The chains' sampler: ula (Langevin with --step-size, --noise, --grad-clip, clamped),
    /// mala or hmc (exact for exp(−E/T): ε = --step-size, T = --temperature, no clip, a
    /// proposal outside the data's range rejected; --steps tests per iteration).
    #[arg(long, default_value = "ula", value_parser = ["ula", "mala", "hmc"])]
    pub sampler: String,
    /// mala/hmc: T of the target exp(−E/T).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// hmc: leapfrog steps per trajectory.
    #[arg(long, default_value_t = 5)]
    pub leapfrog: usize,
    /// mala/hmc: adapt ε (from --step-size) by dual averaging over the first N iterations
    /// towards --target-accept, then freeze it (0: no adaptation).
    #[arg(long, default_value_t = 0)]
    pub adapt: u64,
    /// The acceptance --adapt aims for (default 0.574 for mala, 0.65 for hmc).
    #[arg(long)]
    pub target_accept: Option<f64>,
}

impl LangevinArgs {
    /// `--adapt` with its target, `None` for 0 iterations.
    pub fn adaptation(&self) -> Option<Adaptation> {
        let default = match self.sampler.as_str() {
            "hmc" => adapt::HMC_TARGET,
            _ => adapt::MALA_TARGET,
        };
        (self.adapt > 0).then(|| Adaptation {
            warmup: self.adapt,
            target: self.target_accept.unwrap_or(default),
        })
    }

    /// `--sampler` with its settings (the value parser admits only known names).
    pub fn method(&self) -> Method {
        match self.sampler.as_str() {
            "mala" => Method::Mala {
                temperature: self.temperature,
            },
            "hmc" => Method::Hmc {
                temperature: self.temperature,
                leapfrog: self.leapfrog,
            },
            _ => Method::Ula,
        }
    }

    /// The sampler's settings, chains clamped to [`lo`, `hi`] (the data's range).
    pub fn config(&self, lo: f32, hi: f32) -> LangevinConfig {
        LangevinConfig {
            steps: self.steps,
            step_size: self.step_size,
            noise: self.noise,
            grad_clip: self.grad_clip,
            lo,
            hi,
        }
    }
}

/// The optimiser of the energy's parameters.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Adam")]
pub struct AdamArgs {
    /// Adam learning rate.
    #[arg(long)]
    pub lr: f32,
    /// Adam β₁.
    #[arg(long)]
    pub beta1: f32,
    /// Adam β₂.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f32,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub max_grad_norm: Option<f32>,
}

impl AdamArgs {
    pub fn config(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            max_grad_norm: self.max_grad_norm,
        }
    }
}

/// The persistent chains the sampler starts from.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Replay buffer")]
pub struct ReplayArgs {
    /// Persistent chains in the replay buffer (N).
    #[arg(long)]
    pub buffer: usize,
    /// Probability that a drawn chain restarts from noise (1 = short-run mode).
    #[arg(long, default_value_t = 0.05)]
    pub reinit: f32,
}

/// Everything that defines a training run (the library's [`TrainConfig`]) but the data's
/// range: the contrastive-divergence batch and α, the seed, and the groups above.
///
/// Its own options come before the groups' (a group's help heading holds for every option
/// added after it).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Training")]
pub struct TrainArgs {
    /// Data samples and chains per iteration (B).
    #[arg(long)]
    pub batch: usize,
    /// Energy-magnitude penalty α.
    #[arg(long)]
    pub alpha: f32,
    /// Seed of every random number of the run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What to minimise: cd (contrastive divergence on E(x)), conditional (CD on
    /// E(x, y) = −f(x)[y]), jem (cross-entropy + CD on E(x) = −logsumexp f(x)), classifier
    /// (cross-entropy only) — conditional, jem and classifier need labelled data and a
    /// class-logit net — or a generator beside the energy: coop (cooperative learning: the
    /// energy revises the generator's samples, both learn from the revisions) or latent-ebm
    /// (an energy prior on the generator's latent space, Pang et al. 2020).
    #[arg(long, default_value = "cd", value_parser = ["cd", "conditional", "jem", "classifier", "coop", "latent-ebm"])]
    pub objective: String,
    /// JEM: weight of the classifier's cross-entropy.
    #[arg(long, default_value_t = 1.0)]
    pub ce_weight: f32,
    /// JEM: weight of the CD term.
    #[arg(long, default_value_t = 1.0)]
    pub cd_weight: f32,
    #[command(flatten)]
    pub langevin: LangevinArgs,
    #[command(flatten)]
    pub adam: AdamArgs,
    #[command(flatten)]
    pub replay: ReplayArgs,
    #[command(flatten)]
    pub generator: GeneratorArgs,
}

/// The generator of `--objective coop | latent-ebm`, and the latent model's chains.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Generator (--objective coop | latent-ebm)")]
pub struct GeneratorArgs {
    /// The generator: a spec file whose "output" is {"tensor": [...]} (default: an MLP for
    /// toy2d, a DCGAN-style net of --gen-nf for 32×32 images).
    #[arg(long, value_name = "SPEC")]
    pub gen_spec: Option<String>,
    /// Latent dimension of the built-in generators [default: 2 for toy2d, 100 for images].
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Width n_f of the built-in image generator [default: --nf].
    #[arg(long)]
    pub gen_nf: Option<usize>,
    /// The generator's Adam learning rate (β₁ = 0.5) [default: coop 1e-3 toy2d, 2e-4 images;
    /// latent-ebm 2e-3 toy2d, 1e-4 images].
    #[arg(long)]
    pub gen_lr: Option<f32>,
    /// σ of x = g(z) + σε: the generator's regression loss ‖x − g(z)‖²/(2σ²) [default: coop
    /// 0.3; latent-ebm 0.1 toy2d, 0.3 images].
    #[arg(long)]
    pub gen_sigma: Option<f32>,
    /// coop: Langevin steps of latent inference on z before each generator update (0: the
    /// generator regresses at the z that produced its sample).
    #[arg(long, default_value_t = 0)]
    pub infer_steps: usize,
    /// coop: s of that inference (gradient step s²/2, noise s).
    #[arg(long, default_value_t = 0.1)]
    pub infer_step: f32,
    /// latent-ebm: prior Langevin steps K₀ per iteration (and per `ebm sample`) [default: 40
    /// toy2d, 60 images].
    #[arg(long)]
    pub prior_steps: Option<usize>,
    /// latent-ebm: s₀ of the prior chains [default: 0.4].
    #[arg(long)]
    pub prior_step: Option<f32>,
    /// latent-ebm: posterior Langevin steps K₁ per iteration [default: 20].
    #[arg(long)]
    pub post_steps: Option<usize>,
    /// latent-ebm: s₁ of the posterior chains [default: 0.1].
    #[arg(long)]
    pub post_step: Option<f32>,
    /// latent-ebm: the prior energy's Adam learning rate [default: 1e-3 toy2d, 2e-5 images].
    #[arg(long)]
    pub prior_lr: Option<f32>,
    /// latent-ebm: hidden width of the prior energy's MLP on z [default: --hidden for
    /// toy2d, 200 for images].
    #[arg(long)]
    pub prior_hidden: Option<usize>,
    /// latent-ebm: the prior's energy-magnitude penalty α (its CD loss adds
    /// α(mean E⁺² + mean E⁻²); `--alpha` is the data-space energy's) [default: 0.1 toy2d, 0
    /// images as in the paper].
    #[arg(long)]
    pub prior_alpha: Option<f32>,
}

impl GeneratorArgs {
    /// The options given, by name, that only `--objective coop` and `latent-ebm` read.
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut note = |on: bool, name| {
            if on {
                given.push(name);
            }
        };
        note(self.gen_spec.is_some(), "gen-spec");
        note(self.latent_dim.is_some(), "latent-dim");
        note(self.gen_nf.is_some(), "gen-nf");
        note(self.gen_lr.is_some(), "gen-lr");
        note(self.gen_sigma.is_some(), "gen-sigma");
        note(self.infer_steps > 0, "infer-steps");
        note(self.prior_steps.is_some(), "prior-steps");
        note(self.prior_step.is_some(), "prior-step");
        note(self.post_steps.is_some(), "post-steps");
        note(self.post_step.is_some(), "post-step");
        note(self.prior_lr.is_some(), "prior-lr");
        note(self.prior_hidden.is_some(), "prior-hidden");
        note(self.prior_alpha.is_some(), "prior-alpha");
        given
    }

    /// Refuse, by name, an option the objective would silently ignore: generator options
    /// without a generator, the latent model's with coop, coop's with latent-ebm.
    pub fn check_for(&self, objective: &str, sampler_is_ula: bool) -> Result<()> {
        const LATENT: [&str; 7] = [
            "prior-steps",
            "prior-step",
            "post-steps",
            "post-step",
            "prior-lr",
            "prior-hidden",
            "prior-alpha",
        ];
        let given = self.given();
        let wrong = match objective {
            "coop" => given
                .iter()
                .find(|n| LATENT.contains(n))
                .map(|n| (*n, "latent-ebm")),
            "latent-ebm" => {
                if !sampler_is_ula {
                    return Err(Error::Option(
                        "--sampler picks the data-space energy's chain sampler; --objective \
                         latent-ebm runs Langevin on z (--prior-step, --post-step)"
                            .into(),
                    ));
                }
                given
                    .iter()
                    .find(|n| **n == "infer-steps")
                    .map(|n| (*n, "coop"))
            }
            _ => given.first().map(|n| (*n, "coop or latent-ebm")),
        };
        match wrong {
            Some((name, family)) => Err(Error::Option(format!(
                "--{name} is an option of --objective {family}, not of --objective {objective}"
            ))),
            None => Ok(()),
        }
    }
}

impl TrainArgs {
    /// The run's settings, Langevin chains clamped to [`lo`, `hi`]. A resumed run takes its
    /// settings from the checkpoint instead, whatever these options say.
    pub fn config(&self, lo: f32, hi: f32) -> TrainConfig {
        TrainConfig {
            batch: self.batch,
            langevin: self.langevin.config(lo, hi),
            alpha: self.alpha,
            adam: self.adam.config(),
            buffer_size: self.replay.buffer,
            reinit_prob: self.replay.reinit,
            seed: self.seed,
            objective: self.objective(),
            sampler: self.langevin.method(),
            adapt: self.langevin.adaptation(),
        }
    }

    /// `--objective` with its weights (the value parser admits only known names); a note on
    /// stderr when weights are given to an objective that has none.
    pub fn objective(&self) -> Objective {
        let objective: Objective = self.objective.parse().unwrap_or_default();
        let weighted = self.ce_weight != 1.0 || self.cd_weight != 1.0;
        if weighted && !matches!(objective, Objective::Jem { .. }) {
            eprintln!(
                "note: --ce-weight and --cd-weight weigh JEM's terms; --objective {} ignores them",
                objective.name()
            );
        }
        match objective {
            Objective::Jem { .. } => Objective::Jem {
                ce_weight: self.ce_weight,
                cd_weight: self.cd_weight,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use ebm::data::toy2d;

    use super::*;
    use crate::{Cli, Command, TrainWhat};

    fn train(args: &[&str]) -> TrainWhat {
        let argv = ["ebm", "train"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Train { what } => what,
            _ => unreachable!(),
        }
    }

    fn toy2d_config(args: &[&str]) -> TrainConfig {
        let args = [&["toy2d"], args].concat();
        match train(&args) {
            TrainWhat::Toy2d(a) => a.train.config(-toy2d::RANGE, toy2d::RANGE),
            _ => unreachable!(),
        }
    }

    fn images_config(args: &[&str]) -> TrainConfig {
        let args = [&["images"], args].concat();
        match train(&args) {
            TrainWhat::Images(a) => a.train.config(-1.0, 1.0),
            _ => unreachable!(),
        }
    }

    #[test]
    fn commands_are_well_formed() {
        Cli::command().debug_assert();
    }

    /// The defaults each command had when it declared every option itself.
    #[test]
    fn each_command_keeps_its_defaults() {
        let toy = TrainConfig {
            batch: 256,
            langevin: LangevinConfig {
                steps: 20,
                step_size: 0.02,
                noise: 0.2,
                grad_clip: None,
                lo: -toy2d::RANGE,
                hi: toy2d::RANGE,
            },
            alpha: 0.1,
            adam: AdamConfig {
                lr: 3e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                max_grad_norm: None,
            },
            buffer_size: 10000,
            reinit_prob: 0.05,
            seed: 0,
            objective: Objective::Cd,
            sampler: Method::Ula,
            adapt: None,
        };
        assert_eq!(toy2d_config(&[]), toy);
        let images = TrainConfig {
            batch: 64,
            langevin: LangevinConfig {
                steps: 40,
                step_size: 10.0,
                noise: 0.005,
                grad_clip: Some(0.01),
                lo: -1.0,
                hi: 1.0,
            },
            alpha: 1.0,
            adam: AdamConfig {
                lr: 1e-4,
                beta1: 0.0,
                beta2: 0.999,
                eps: 1e-8,
                max_grad_norm: None,
            },
            buffer_size: 1000,
            reinit_prob: 0.05,
            seed: 0,
            objective: Objective::Cd,
            sampler: Method::Ula,
            adapt: None,
        };
        assert_eq!(images_config(&[]), images);
    }

    #[test]
    fn flags_override_the_defaults() {
        let flags = [
            "--batch=3",
            "--alpha=0.5",
            "--seed=7",
            "--steps=4",
            "--step-size=0.1",
            "--noise=0.3",
            "--grad-clip=2",
            "--lr=0.01",
            "--beta1=0.5",
            "--beta2=0.9",
            "--max-grad-norm=1",
            "--buffer=99",
            "--reinit=1",
        ];
        for (c, (lo, hi)) in [
            (toy2d_config(&flags), (-toy2d::RANGE, toy2d::RANGE)),
            (images_config(&flags), (-1.0, 1.0)),
        ] {
            let expected = TrainConfig {
                batch: 3,
                langevin: LangevinConfig {
                    steps: 4,
                    step_size: 0.1,
                    noise: 0.3,
                    grad_clip: Some(2.0),
                    lo,
                    hi,
                },
                alpha: 0.5,
                adam: AdamConfig {
                    lr: 0.01,
                    beta1: 0.5,
                    beta2: 0.9,
                    eps: 1e-8,
                    max_grad_norm: Some(1.0),
                },
                buffer_size: 99,
                reinit_prob: 1.0,
                seed: 7,
                objective: Objective::Cd,
                sampler: Method::Ula,
                adapt: None,
            };
            assert_eq!(c, expected);
        }
    }

    /// `--help` shows each command's own defaults, and a command's tables name real options.
    #[test]
    fn help_shows_each_commands_defaults() {
        let mut cli = Cli::command();
        let train = cli.find_subcommand_mut("train").unwrap();
        for (name, expected) in [
            ("toy2d", ["--steps <STEPS>", "[default: 20]"]),
            ("images", ["--steps <STEPS>", "[default: 40]"]),
        ] {
            let help = train
                .find_subcommand_mut(name)
                .unwrap()
                .render_help()
                .to_string();
            let line = help.lines().find(|l| l.contains(expected[0])).unwrap();
            assert!(line.ends_with(expected[1]), "{name}: {line}");
            let clip = help.lines().find(|l| l.contains("--grad-clip")).unwrap();
            assert_eq!(clip.contains("[default: 0.01]"), name == "images", "{clip}");
        }
        for (name, tables) in [
            ("toy2d", vec![crate::toy2d::DEFAULTS]),
            ("images", vec![crate::images::DEFAULTS, crate::images::HELP]),
        ] {
            let cmd = train.find_subcommand(name).unwrap();
            for &(id, _) in tables.into_iter().flatten() {
                assert!(
                    cmd.get_arguments().any(|a| a.get_id() == id),
                    "{name}: {id}"
                );
            }
        }
    }
}
