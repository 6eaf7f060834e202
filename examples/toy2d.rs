//! Train an energy-based model on a toy 2D distribution with the library alone, on whichever
//! device `auto` finds, and watch KL(data ‖ model) fall.
//!
//!     cargo run --release --example toy2d -- [dataset] [iterations]

use ebm::backend::{choose_backend, Backend, DeviceChoice};
use ebm::data::{toy2d, DataSource, Toy2d, ToyData};
use ebm::eval::kl::kl_data_model;
use ebm::plot::Grid2d;
use ebm::train::{TrainConfig, Trainer};
use ebm::{with_backend, EnergyNet, Spec};

fn main() -> ebm::Result<()> {
    let mut args = std::env::args().skip(1);
    let dataset: Toy2d = args.next().unwrap_or_else(|| "8gaussians".into()).parse()?;
    let iterations: u64 = args.next().map_or(1500, |s| s.parse().expect("iterations"));
    let backend = choose_backend(DeviceChoice::Auto, |notice| eprintln!("{notice}"))?;
    with_backend!(backend, |b| run(&b, dataset, iterations))
}

fn run<B: Backend>(b: &B, dataset: Toy2d, iterations: u64) -> ebm::Result<()> {
    let config = TrainConfig::toy2d(0);
    let net = EnergyNet::new(b, &Spec::mlp(2, 128, 3), config.seed)?;
    let mut trainer = Trainer::new(b, net, config)?;
    let mut data = ToyData { dataset, seed: 0 };
    let grid = Grid2d {
        n: 64,
        range: toy2d::RANGE,
    };
    let reference = dataset.sample(0, u32::MAX, 100_000);
    println!("training {dataset} on {}", b.name());
    for it in 0..iterations {
        trainer.step(b, &data.batch(it, 256)?)?;
        if (it + 1) % 250 == 0 {
            let stats = trainer.stats(b)?;
            let kl = kl_data_model(&grid, &reference, &trainer.net.energies(b, &grid.points())?);
            println!(
                "iter {:5}  loss {:+.4}  KL(data‖model) {kl:.3}",
                it + 1,
                stats.loss
            );
        }
    }
    Ok(())
}
