//! [`ImageData`]: an image set served as seeded, resumable training batches.

use super::ImageSet;
use crate::data::DataSource;
use crate::rng::{self, Stream};
use crate::{Error, Result};

/// An [`ImageSet`] as a seeded, endless, resumable [`DataSource`]: epoch after epoch, each a
/// fresh permutation of the set (module docs).
#[derive(Clone, Debug)]
pub struct ImageData {
    set: ImageSet,
    seed: u64,
    /// The last epoch's permutation: a cache only, the batches do not depend on it.
    order: Option<(u64, Vec<u32>)>,
}

impl ImageData {
    /// Serves `set` in an order drawn from `seed`. Fails on an empty or ragged set.
    pub fn new(set: ImageSet, seed: u64) -> Result<Self> {
        let s = set.sample_len();
        if s == 0 || set.data.is_empty() || !set.data.len().is_multiple_of(s) {
            return Err(Error::Shape(format!(
                "an image set of {} values cannot be split into images of {}x{}x{}",
                set.data.len(),
                set.channels,
                set.height,
                set.width
            )));
        }
        if set.len() > u32::MAX as usize {
            return Err(Error::Shape(format!("{} images is too many", set.len())));
        }
        Ok(ImageData {
            set,
            seed,
            order: None,
        })
    }

    /// The images being served.
    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    /// The seed of the data order.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The indices of the images in batch `iteration` of size `n`: positions
    /// `iteration·n + j` of the epoch sequence, position p being entry `p mod len` of
    /// epoch `p / len`'s permutation.
    pub fn indices(&mut self, iteration: u64, n: usize) -> Vec<usize> {
        let len = self.set.len() as u128;
        let mut out = Vec::with_capacity(n);
        for j in 0..n as u128 {
            let p = iteration as u128 * n as u128 + j;
            let epoch = (p / len) as u64;
            if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                self.order = Some((epoch, epoch_permutation(self.seed, epoch, len as usize)));
            }
            let order = &self.order.as_ref().expect("just set").1;
            out.push(order[(p % len) as usize] as usize);
        }
        out
    }
}

/// The order of epoch `epoch`: a Fisher–Yates shuffle of `0..len` whose swap partner for
/// position i is ⌊w·(i+1)/2³²⌋ (Lemire's multiply-shift, bias < len/2³²), w being word
/// `i mod 4` of Philox block `(i / 4, epoch low 32 bits, epoch high 32 bits, Stream::Data)`.
pub fn epoch_permutation(seed: u64, epoch: u64, len: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..len as u32).collect();
    let (lo, hi) = (epoch as u32, (epoch >> 32) as u32);
    let mut block = (usize::MAX, [0u32; 4]);
    for i in (1..len).rev() {
        if block.0 != i / 4 {
            block = (
                i / 4,
                rng::words(seed, (i / 4) as u32, lo, hi, Stream::Data),
            );
        }
        let w = block.1[i % 4];
        let j = ((u64::from(w) * (i as u64 + 1)) >> 32) as usize;
        p.swap(i, j);
    }
    p
}

impl DataSource for ImageData {
    fn sample_len(&self) -> usize {
        self.set.sample_len()
    }

    fn batch(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        let idx = self.indices(iteration, n);
        let mut out = Vec::with_capacity(n * self.set.sample_len());
        for i in idx {
            out.extend_from_slice(self.set.image(i));
        }
        Ok(out)
    }

    fn classes(&self) -> Option<usize> {
        self.set.classes()
    }

    fn labels(&mut self, iteration: u64, n: usize) -> Result<Vec<f32>> {
        let idx = self.indices(iteration, n);
        let Some(labels) = &self.set.labels else {
            return Err(Error::Option("this image set has no labels".into()));
        };
        Ok(idx.into_iter().map(|i| f32::from(labels[i])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set of `n` 1 × 1 × 2 images whose values are their own index.
    fn indexed_set(n: usize) -> ImageSet {
        ImageSet {
            channels: 1,
            height: 1,
            width: 2,
            data: (0..n).flat_map(|i| [i as f32, i as f32]).collect(),
            labels: None,
        }
    }

    #[test]
    fn image_data_batches_are_deterministic_and_cover_every_epoch() {
        let len = 10;
        let mut d = ImageData::new(indexed_set(len), 7).unwrap();
        assert_eq!(d.sample_len(), 2);
        // Batches of 4 do not divide 10: epochs straddle batches. 15 batches = 6 epochs.
        let mut seen = Vec::new();
        for t in 0..15 {
            let b = d.batch(t, 4).unwrap();
            assert_eq!(b.len(), 8);
            seen.extend(b.chunks_exact(2).map(|p| {
                assert_eq!(p[0], p[1]);
                p[0] as usize
            }));
        }
        let epochs: Vec<&[usize]> = seen.chunks_exact(len).collect();
        for (e, ep) in epochs.iter().enumerate() {
            let mut s = ep.to_vec();
            s.sort();
            assert_eq!(s, (0..len).collect::<Vec<_>>(), "epoch {e}: {ep:?}");
        }
        assert!(epochs.windows(2).any(|w| w[0] != w[1]), "epochs reshuffle");
        assert_ne!(epochs[0], &(0..len).collect::<Vec<_>>()[..], "shuffled");
        // Pure in the iteration: a fresh source asked for batch 11 directly agrees, and so
        // does asking out of order.
        let mut fresh = ImageData::new(indexed_set(len), 7).unwrap();
        assert_eq!(fresh.batch(11, 4).unwrap(), d.batch(11, 4).unwrap());
        assert_eq!(fresh.batch(2, 4).unwrap(), d.batch(2, 4).unwrap());
        // Another seed, another order; a batch larger than the set spans epochs.
        let mut other = ImageData::new(indexed_set(len), 8).unwrap();
        assert_ne!(other.batch(0, 10).unwrap(), fresh.batch(0, 10).unwrap());
        assert_eq!(other.batch(1, 25).unwrap().len(), 50);
        assert!(ImageData::new(indexed_set(0), 1).is_err());
    }
}
