//! Mini-batches: a seeded shuffle per epoch, and the next batch gathered on a background
//! thread while the current one trains.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use tensor::{Rng, Tensor};

use super::{invalid, io_err, Dataset, Normalization, Result};

// mini-batches

/// One mini-batch: images [B, C, H, W] (normalised), and for each image its label, its
/// ground-truth factors and its index in the dataset.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Normalised images `[B, C, H, W]`.
    pub images: Tensor,
    /// Class label of each image (length B); `None` when the dataset is unlabelled.
    pub labels: Option<Vec<u32>>,
    /// dSprites factor indices of each image (length B); `None` for other datasets.
    pub factors: Option<Vec<[u16; 5]>>,
    /// Index of each image in the dataset (length B).
    pub indices: Vec<usize>,
}

/// How [`Batches`] cuts an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// Images per batch, B (> 0).
    pub batch_size: usize,
    /// Shuffle the order each epoch (with the caller's `Rng`); otherwise 0, 1, 2, ...
    pub shuffle: bool,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// How pixels are mapped before they are batched.
    pub normalization: Normalization,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { batch_size: 64, shuffle: true, drop_last: false, normalization: Normalization::ZeroOne }
    }
}

/// One epoch of mini-batches. The order is drawn from the caller's `Rng` when the epoch is
/// created (so a run is reproducible from its seed, and resumable from the saved `Rng`
/// state); a worker thread then gathers batches ahead into a channel of capacity 2, so the
/// next batch is ready while the current one trains. Dropping `Batches` stops the worker.
pub struct Batches {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Batches {
    /// Starts an epoch over `dataset`. Errors on a zero batch size or a normalisation whose
    /// channel count does not match the dataset.
    pub fn new(dataset: Arc<Dataset>, opts: &BatchOptions, rng: &mut Rng) -> Result<Batches> {
        if opts.batch_size == 0 {
            return invalid("Batches::new", "batch_size must be at least 1");
        }
        opts.normalization.check_channels(dataset.channels())?;
        let mut order: Vec<usize> = (0..dataset.len()).collect();
        if opts.shuffle {
            rng.shuffle(&mut order);
        }
        let mut chunks: Vec<Vec<usize>> = order.chunks(opts.batch_size).map(<[usize]>::to_vec).collect();
        if opts.drop_last && chunks.last().is_some_and(|c| c.len() < opts.batch_size) {
            chunks.pop();
        }
        let remaining = chunks.len();
        let (tx, rx) = sync_channel(2);
        let norm = opts.normalization.clone();
        let worker = std::thread::Builder::new()
            .name("batches".into())
            .spawn(move || {
                for idx in chunks {
                    // A send error means the consumer dropped `Batches`: stop early.
                    if tx.send(dataset.batch(&idx, &norm)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| io_err(Path::new("<batches worker thread>"), e))?;
        Ok(Batches { rx: Some(rx), worker: Some(worker), remaining })
    }

    /// Batches left in this epoch.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The number of batches an epoch of `n` images yields.
    pub fn count(n: usize, batch_size: usize, drop_last: bool) -> usize {
        if drop_last {
            n / batch_size.max(1)
        } else {
            n.div_ceil(batch_size.max(1))
        }
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        let got = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        match got {
            Some(Ok(b)) => {
                self.remaining -= 1;
                Some(b)
            }
            // `Dataset::batch` only fails on invalid indices or channels, which `new` ruled
            // out; a failure here is a bug worth a loud stop.
            Some(Err(e)) => panic!("Batches: building a batch failed: {e}"),
            None => {
                // The worker ended early: it panicked. Re-raise its panic here.
                if let Some(Err(p)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(p);
                }
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        // Close the channel first so a worker blocked in `send` wakes up and returns.
        drop(self.rx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::toy;

    #[test]
    fn batches_cover_every_index_once_per_epoch_and_repeat_per_seed() {
        let ds = Arc::new(toy(23));
        let opts = BatchOptions { batch_size: 5, ..Default::default() };
        let epoch = |rng: &mut Rng| -> Vec<Batch> { Batches::new(ds.clone(), &opts, rng).unwrap().collect() };
        let mut rng = Rng::new(11);
        let first = epoch(&mut rng);
        assert_eq!(first.len(), 5);
        assert_eq!(first.last().unwrap().indices.len(), 3);
        let mut seen: Vec<usize> = first.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..23).collect::<Vec<_>>(), "shuffled");
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        // Batch contents match the dataset at those indices.
        for b in &first {
            assert_eq!(b.images.shape(), &[b.indices.len(), 2, 2, 3]);
            let v = b.images.to_vec_f32().unwrap();
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(&v[k * 12..(k + 1) * 12], ds.image(i));
                assert_eq!(b.labels.as_ref().unwrap()[k], i as u32 % 3);
            }
        }
        // The next epoch is another order; the same seed repeats both.
        let second = epoch(&mut rng);
        let order = |e: &[Batch]| e.iter().flat_map(|b| b.indices.clone()).collect::<Vec<_>>();
        assert_ne!(order(&first), order(&second));
        let mut again = Rng::new(11);
        assert_eq!(order(&epoch(&mut again)), order(&first));
        assert_eq!(order(&epoch(&mut again)), order(&second));

        // drop_last drops the 3-image tail; no shuffle keeps 0..n.
        let opts = BatchOptions { batch_size: 5, drop_last: true, shuffle: false, ..Default::default() };
        let b: Vec<Batch> = Batches::new(ds.clone(), &opts, &mut rng).unwrap().collect();
        assert_eq!(b.len(), Batches::count(23, 5, true));
        assert_eq!(order(&b), (0..20).collect::<Vec<_>>());
        assert!(b.iter().all(|x| x.indices.len() == 5));
        assert!(Batches::new(ds.clone(), &BatchOptions { batch_size: 0, ..opts.clone() }, &mut rng).is_err());
    }

    #[test]
    fn batches_stop_cleanly_when_dropped_early() {
        let ds = Arc::new(toy(100));
        let mut it = Batches::new(ds, &BatchOptions { batch_size: 2, ..Default::default() }, &mut Rng::new(0)).unwrap();
        assert_eq!(it.len(), 50);
        it.next().unwrap();
        assert_eq!(it.remaining(), 49);
        drop(it); // joins the worker, which is blocked on a full channel
    }
}
