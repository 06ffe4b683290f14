//! The decode queue: codes asked for at about the same time are decoded as one batch.
//!
//! Each request's thread [`DecodeQueue::submit`]s its codes and waits; one worker thread
//! ([`DecodeQueue::serve`]) takes every pending request (up to a number of codes), runs one
//! decode over all their codes and hands each request its images. One decode of 32 codes costs
//! far less than 32 decodes of one, so under many clients the server keeps up where decoding
//! one code at a time behind a lock fell behind; with one client a batch is one request, as
//! before.
//!
//! A request may name its client (the page sends a random id). When a client's newer request
//! arrives while its older one still waits in the queue, the older one is answered at once
//! with [`Outcome::Superseded`]: a dragged slider's intermediate positions are not decoded
//! when the server is behind, only the newest. Requests without a client are each decoded.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// What a request got from the queue.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// Its images, one after the other as the decoder writes them ([n, C, H, W]), and the
    /// milliseconds the batch that held them took.
    Decoded { images: Vec<f32>, batch_ms: f64 },
    /// A newer request of the same client took its place before it was decoded.
    Superseded,
    /// The decode failed (or the queue is closed), with the reason.
    Failed(String),
}

/// One waiting request.
struct Job {
    client: Option<String>,
    /// Its codes, [n, z].
    codes: Vec<f32>,
    answer: SyncSender<Outcome>,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// Requests waiting to be decoded, and the signal that wakes the worker.
pub(super) struct DecodeQueue {
    z_dim: usize,
    /// The most codes one batch takes (a larger request is decoded alone).
    max_batch_codes: usize,
    pending: Mutex<Pending>,
    arrived: Condvar,
}

impl DecodeQueue {
    pub(super) fn new(z_dim: usize, max_batch_codes: usize) -> DecodeQueue {
        DecodeQueue {
            z_dim: z_dim.max(1),
            max_batch_codes: max_batch_codes.max(1),
            pending: Mutex::default(),
            arrived: Condvar::new(),
        }
    }

    /// A request's thread may have panicked holding the lock; the queue's state is still whole
    /// (every change to it is one push or one removal).
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `codes` ([n, z]) and waits for their images. A request of the same `client`
    /// still waiting in the queue is answered [`Outcome::Superseded`] at once.
    pub(super) fn submit(&self, client: Option<&str>, codes: Vec<f32>) -> Outcome {
        let (answer, outcome) = sync_channel(1);
        {
            let mut pending = self.lock();
            if pending.closed {
                return Outcome::Failed("the explorer is shutting down".into());
            }
            if let Some(client) = client {
                if let Some(k) = pending.jobs.iter().position(|j| j.client.as_deref() == Some(client)) {
                    if let Some(older) = pending.jobs.remove(k) {
                        let _ = older.answer.send(Outcome::Superseded);
                    }
                }
            }
            pending.jobs.push_back(Job { client: client.map(str::to_string), codes, answer });
        }
        self.arrived.notify_one();
        outcome.recv().unwrap_or_else(|_| Outcome::Failed("the decoder stopped".into()))
    }

    /// Requests waiting (not yet taken into a batch).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Stops the worker once the requests already queued are decoded; later ones fail.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }

    /// The worker: until [`close`](Self::close), takes every waiting request (oldest first, up
    /// to `max_batch_codes` codes, at least one request), decodes their codes with one call of
    /// `decode` (codes [n, z] to images [n, C, H, W]) and answers each request with its images.
    pub(super) fn serve(&self, decode: impl Fn(&[f32]) -> Result<Vec<f32>, String>) {
        while let Some(batch) = self.next_batch() {
            let codes: Vec<f32> = batch.iter().flat_map(|j| j.codes.iter().copied()).collect();
            let n = codes.len() / self.z_dim;
            let started = Instant::now();
            // A panic in the model fails this batch's requests, not every later one.
            let decoded = catch_unwind(AssertUnwindSafe(|| decode(&codes)))
                .unwrap_or_else(|_| Err("internal error while decoding (see the server's output)".into()));
            let batch_ms = started.elapsed().as_secs_f64() * 1e3;
            match decoded {
                Ok(images) if n > 0 && images.len() % n == 0 => {
                    let per_code = images.len() / n;
                    let mut rest = &images[..];
                    for job in batch {
                        let (mine, others) = rest.split_at(job.codes.len() / self.z_dim * per_code);
                        rest = others;
                        let _ = job.answer.send(Outcome::Decoded { images: mine.to_vec(), batch_ms });
                    }
                }
                Ok(images) => {
                    let reason = format!("the decoder gave {} values for {n} codes", images.len());
                    batch.into_iter().for_each(|job| drop(job.answer.send(Outcome::Failed(reason.clone()))));
                }
                Err(reason) => {
                    batch.into_iter().for_each(|job| drop(job.answer.send(Outcome::Failed(reason.clone()))));
                }
            }
        }
    }

    /// Waits for requests and takes the next batch; `None` once closed and empty.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut pending = self.lock();
        while pending.jobs.is_empty() {
            if pending.closed {
                return None;
            }
            pending = self.arrived.wait(pending).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let mut batch = vec![];
        let mut codes = 0;
        while let Some(job) = pending.jobs.front() {
            let n = job.codes.len() / self.z_dim;
            if !batch.is_empty() && codes + n > self.max_batch_codes {
                break;
            }
            codes += n;
            batch.extend(pending.jobs.pop_front());
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits until `n` requests wait in `queue`.
    fn until_waiting(queue: &DecodeQueue, n: usize) {
        let started = Instant::now();
        while queue.waiting() < n {
            assert!(started.elapsed() < Duration::from_secs(30), "{} of {n} requests queued", queue.waiting());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A stand-in decoder: each code [a, b] becomes the image [a + b, a − b], and every batch's
    /// size is recorded.
    fn sum_and_difference(batches: &Mutex<Vec<usize>>) -> impl Fn(&[f32]) -> Result<Vec<f32>, String> + '_ {
        move |codes: &[f32]| {
            batches.lock().unwrap().push(codes.len() / 2);
            Ok(codes.chunks(2).flat_map(|c| [c[0] + c[1], c[0] - c[1]]).collect())
        }
    }

    #[test]
    fn requests_waiting_together_are_decoded_as_one_batch_each_getting_its_own_images() {
        let queue = DecodeQueue::new(2, 64);
        let batches = Mutex::new(vec![]);
        std::thread::scope(|scope| {
            let queue = &queue;
            let askers: Vec<_> =
                (0..8).map(|k| scope.spawn(move || (k as f32, queue.submit(None, vec![k as f32, 1.0])))).collect();
            until_waiting(queue, 8);
            let worker = scope.spawn(|| queue.serve(sum_and_difference(&batches)));
            for asker in askers {
                let (k, outcome) = asker.join().unwrap();
                let expected = [k + 1.0, k - 1.0];
                assert!(matches!(&outcome, Outcome::Decoded { images, .. } if *images == expected), "{k}: {outcome:?}");
            }
            queue.close();
            worker.join().unwrap();
        });
        assert_eq!(*batches.lock().unwrap(), [8]);
    }

    /// The explorer's decoder on a preset with random weights (the values do not matter here).
    fn decoder_of(arch: crate::model::Arch, input: [usize; 3], z_dim: usize) -> crate::model::Vae {
        let cfg = crate::model::ModelConfig { arch, input, z_dim };
        crate::model::Vae::new(cfg, &mut nn::Init::new(3)).unwrap()
    }

    #[test]
    fn a_batched_decode_gives_each_code_the_image_it_gets_decoded_alone() {
        use crate::model::{Arch, OutputActivation};
        use crate::tools::eval::decode_codes;
        let norm = crate::data::Normalization::ZeroOne;
        // conv's decoder gives the same bits batched or alone. resnet-bn's differs in the last
        // bits (6e-8 on [0, 1] pixels, a grey level is 4e-3): on small planes a convolution puts
        // the batch's images side by side in one GEMM (`images_per_gemm`), whose work is then
        // cut differently than one image's, so some sums are grouped differently. Batch norm
        // in evaluation uses its running statistics, not the batch's.
        for (arch, input, z_dim, tolerance) in
            [(Arch::Conv, [1, 64, 64], 10, 0.0), (Arch::ResNetBn, [3, 64, 64], 16, 1e-6)]
        {
            let model = decoder_of(arch, input, z_dim);
            let decode = |codes: &[f32]| {
                decode_codes(&model, codes, &norm, OutputActivation::Logits, 64).map_err(|e| e.to_string())
            };
            let codes: Vec<Vec<f32>> =
                (0..6).map(|k| (0..z_dim).map(|j| ((k * z_dim + j) as f32 * 0.37).sin() * 2.5).collect()).collect();
            let queue = DecodeQueue::new(z_dim, 64);
            let batches = Mutex::new(vec![]);
            let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
                let queue = &queue;
                let askers: Vec<_> = codes.iter().map(|z| scope.spawn(move || queue.submit(None, z.clone()))).collect();
                until_waiting(queue, codes.len());
                let worker = scope.spawn(|| {
                    queue.serve(|codes: &[f32]| {
                        batches.lock().unwrap().push(codes.len() / z_dim);
                        decode(codes)
                    })
                });
                let outcomes = askers.into_iter().map(|a| a.join().unwrap()).collect();
                queue.close();
                worker.join().unwrap();
                outcomes
            });
            assert_eq!(*batches.lock().unwrap(), [codes.len()], "{}: one batch", arch.name());
            for (z, outcome) in codes.iter().zip(outcomes) {
                let alone = decode(z).unwrap();
                let Outcome::Decoded { images, .. } = &outcome else { panic!("{outcome:?}") };
                assert_eq!(images.len(), alone.len());
                let worst = images.iter().zip(&alone).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst <= tolerance, "{}: batched and alone differ by {worst:e}", arch.name());
            }
        }
    }

    #[test]
    fn a_batch_takes_at_most_the_cap_of_codes_and_a_larger_request_alone() {
        let queue = DecodeQueue::new(2, 4);
        let batches = Mutex::new(vec![]);
        std::thread::scope(|scope| {
            let mut askers = vec![];
            for codes in [1usize, 2, 2, 6, 1] {
                let queue = &queue;
                askers.push(scope.spawn(move || queue.submit(None, vec![0.5; 2 * codes])));
                // One at a time, so that they queue in this order.
                until_waiting(queue, askers.len());
            }
            let worker = scope.spawn(|| queue.serve(sum_and_difference(&batches)));
            for asker in askers {
                assert!(matches!(asker.join().unwrap(), Outcome::Decoded { .. }));
            }
            queue.close();
            worker.join().unwrap();
        });
        assert_eq!(*batches.lock().unwrap(), [3, 2, 6, 1], "1+2, then 2 (2 more would pass 4), 6 alone, 1");
    }

    #[test]
    fn a_clients_newer_request_supersedes_its_older_one_still_waiting() {
        let queue = DecodeQueue::new(2, 64);
        let batches = Mutex::new(vec![]);
        std::thread::scope(|scope| {
            let queue = &queue;
            let older = scope.spawn(move || queue.submit(Some("page-1"), vec![1.0, 1.0]));
            until_waiting(queue, 1);
            let other_client = scope.spawn(move || queue.submit(Some("page-2"), vec![5.0, 5.0]));
            until_waiting(queue, 2);
            let newer = scope.spawn(move || queue.submit(Some("page-1"), vec![2.0, 1.0]));
            // The older one is answered before any decode runs.
            assert_eq!(older.join().unwrap(), Outcome::Superseded);
            let worker = scope.spawn(|| queue.serve(sum_and_difference(&batches)));
            assert!(matches!(newer.join().unwrap(), Outcome::Decoded { images, .. } if images == [3.0, 1.0]));
            assert!(matches!(other_client.join().unwrap(), Outcome::Decoded { images, .. } if images == [10.0, 0.0]));
            queue.close();
            worker.join().unwrap();
        });
        assert_eq!(*batches.lock().unwrap(), [2], "the superseded code was not decoded");
    }

    #[test]
    fn requests_without_a_client_are_each_decoded() {
        let queue = DecodeQueue::new(2, 64);
        let batches = Mutex::new(vec![]);
        std::thread::scope(|scope| {
            let queue = &queue;
            let askers: Vec<_> = (0..3).map(|_| scope.spawn(move || queue.submit(None, vec![1.0, 0.0]))).collect();
            until_waiting(queue, 3);
            let worker = scope.spawn(|| queue.serve(sum_and_difference(&batches)));
            for asker in askers {
                assert!(matches!(asker.join().unwrap(), Outcome::Decoded { .. }));
            }
            queue.close();
            worker.join().unwrap();
        });
        assert_eq!(*batches.lock().unwrap(), [3]);
    }

    #[test]
    fn a_decoder_that_panics_fails_its_batch_and_the_next_batch_is_served() {
        let queue = DecodeQueue::new(2, 64);
        let calls = Mutex::new(0);
        let decode = |codes: &[f32]| {
            let first = {
                let mut calls = calls.lock().unwrap();
                *calls += 1;
                *calls == 1
            };
            assert!(!first, "a model that panics");
            Ok(codes.to_vec())
        };
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.serve(decode));
            assert!(matches!(queue.submit(None, vec![1.0, 2.0]), Outcome::Failed(_)));
            assert!(
                matches!(queue.submit(None, vec![1.0, 2.0]), Outcome::Decoded { images, .. } if images == [1.0, 2.0])
            );
            queue.close();
            worker.join().unwrap();
        });
        assert!(
            matches!(queue.submit(None, vec![0.0, 0.0]), Outcome::Failed(reason) if reason.contains("shutting down"))
        );
    }
}
