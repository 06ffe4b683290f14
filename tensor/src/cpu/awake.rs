//! Rayon's workers kept awake through a run of many short parallel ops, the way OpenMP's
//! threads spin between parallel regions.
//!
//! Why: a rayon worker that finds no work for a few tens of microseconds goes to sleep, and
//! the next parallel op has to wake it. Where the cores are virtual, a sleeping core has been
//! handed back to the hypervisor and waking it takes tens of microseconds more: on the Xeon
//! (model 207, 2 vCPUs) an op of two 50 µs halves took 57–219 µs after a pause of 10 µs to
//! 1 ms, and 51 µs kept awake (`cargo bench --bench parallel_op_latency`). A training step is
//! hundreds of ops separated by such pauses (the autograd bookkeeping between them), and
//! PyTorch's OpenMP threads spin through them.
//!
//! How: [`kept_awake`] runs its closure on one worker of the current pool while every other
//! worker runs a polling loop, [`rayon::yield_now`], which takes and runs any job the pool has
//! (a stolen half of a `join`, a piece of a parallel iterator) the moment it appears. Between
//! polls the loop yields the core to the OS, so a thread outside the pool that needs it (a
//! data loader) still gets it. The loops end when the closure returns or unwinds.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

thread_local! {
    /// Whether this thread is inside [`kept_awake`], as its closure or as a polling worker.
    static AWAKE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on a worker of the current rayon pool with the pool's other workers polling for
/// work until it returns (see the module docs), and returns its result. Inside another
/// `kept_awake`, or on a pool of one thread, it just runs `f`.
pub fn kept_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    kept_awake_polling(|_| f())
}

/// What the polling loops of one [`kept_awake`] share.
#[derive(Default)]
struct Polling {
    /// Set when the closure has returned or unwound: the loops end.
    done: AtomicBool,
    /// How many loops are running.
    loops: AtomicUsize,
}

impl Polling {
    /// One worker's loop: run whatever job the pool has, else let the OS run another thread,
    /// until `done`.
    fn poll(&self) {
        // A thread already awake takes no loop. On the closure's own thread the loop would
        // wait for the closure beneath it to end: a join there, waiting for its stolen half,
        // runs the thread's queued jobs, this one among them. A thread that is polling for an
        // earlier call ends that loop soon after.
        if AWAKE.with(Cell::get) {
            return;
        }
        let _awake = AwakeFlag::set();
        self.loops.fetch_add(1, Ordering::AcqRel);
        while !self.done.load(Ordering::Acquire) {
            if let Some(rayon::Yield::Idle) = rayon::yield_now() {
                std::thread::yield_now();
            }
        }
        self.loops.fetch_sub(1, Ordering::AcqRel);
    }
}

/// [`kept_awake`], its closure shown the polling loops' state.
fn kept_awake_polling<R: Send>(f: impl FnOnce(&Arc<Polling>) -> R + Send) -> R {
    let polling = Arc::new(Polling::default());
    if rayon::current_num_threads() < 2 || AWAKE.with(Cell::get) {
        return f(&polling);
    }
    // The scope only moves `f` onto a worker when called from outside the pool.
    rayon::scope(|_| {
        // Set when `f` returns or unwinds, so the loops always end.
        let _done = Done(Arc::clone(&polling));
        let _awake = AwakeFlag::set();
        // A job for each worker's own queue, which no other worker takes: one loop a worker.
        let loops = Arc::clone(&polling);
        rayon::spawn_broadcast(move |_| loops.poll());
        f(&polling)
    })
}

/// Ends the loops when dropped.
struct Done(Arc<Polling>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

/// [`AWAKE`] set for as long as it lives, then put back.
struct AwakeFlag(bool);

impl AwakeFlag {
    fn set() -> AwakeFlag {
        AwakeFlag(AWAKE.with(|awake| awake.replace(true)))
    }
}

impl Drop for AwakeFlag {
    fn drop(&mut self) {
        AWAKE.with(|awake| awake.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a test pool")
    }

    /// Runs `f` on a thread of its own and fails if it takes longer than a minute: a polling
    /// loop that never ends would otherwise hang the test run.
    fn within_a_minute<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(60)).expect("finished within a minute")
    }

    #[test]
    fn the_closure_runs_on_a_worker_of_the_pool_and_its_result_comes_back() {
        let on = within_a_minute(|| pool(2).install(|| kept_awake(|| (rayon::current_thread_index(), 42))));
        assert!(matches!(on, (Some(_), 42)), "{on:?}");
    }

    #[test]
    fn from_outside_the_pool_the_closure_still_runs_on_one_of_its_workers() {
        let index = within_a_minute(|| {
            let pool = pool(3);
            // Called from a thread of no pool, the current pool is the global one: take ours.
            pool.in_place_scope(|_| kept_awake(rayon::current_thread_index))
        });
        assert!(index.is_some(), "ran on a thread outside the pool");
    }

    /// Waits up to 30 s for `polling`'s loop count to reach `count`, and returns it.
    fn loops_reaching(polling: &Polling, count: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while polling.loops.load(Ordering::Acquire) != count && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        polling.loops.load(Ordering::Acquire)
    }

    #[test]
    fn every_other_worker_polls_while_the_closure_runs_and_stops_after() {
        let (during, after) = within_a_minute(|| {
            let pool = pool(3);
            let (during, polling) = pool.install(|| kept_awake_polling(|p| (loops_reaching(p, 2), Arc::clone(p))));
            (during, loops_reaching(&polling, 0))
        });
        assert_eq!(during, 2, "the two other workers of three should be polling");
        assert_eq!(after, 0, "the loops should end with the closure");
    }

    #[test]
    fn parallel_work_inside_gives_what_it_gives_outside() {
        let (inside, outside) = within_a_minute(|| {
            let pool = pool(2);
            let sum = || (0..100_000u64).into_par_iter().map(|i| i * i % 7).sum::<u64>();
            (pool.install(|| kept_awake(sum)), pool.install(sum))
        });
        assert_eq!(inside, outside);
    }

    #[test]
    fn kept_awake_inside_kept_awake_runs_its_closure_at_once() {
        let value = within_a_minute(|| {
            pool(2).install(|| kept_awake(|| rayon::join(|| kept_awake(|| 1), || kept_awake(|| 2))))
        });
        assert_eq!(value, (1, 2));
    }

    #[test]
    fn on_a_pool_of_one_thread_the_closure_runs_alone() {
        let (index, awake) = within_a_minute(|| {
            pool(1).install(|| kept_awake(|| (rayon::current_thread_index(), AWAKE.with(Cell::get))))
        });
        assert_eq!((index, awake), (Some(0), false), "nothing to keep awake on one thread");
    }

    #[test]
    fn a_panic_inside_reaches_the_caller_and_ends_the_polling() {
        let (caught, after) = within_a_minute(|| {
            let pool = pool(2);
            let seen = std::sync::Mutex::new(None);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| {
                    kept_awake_polling(|p| {
                        *seen.lock().expect("not poisoned yet") = Some(Arc::clone(p));
                        panic!("a step failed")
                    })
                })
            }));
            let polling = seen.into_inner().unwrap_or_else(|e| e.into_inner()).expect("the closure ran");
            (caught.is_err(), loops_reaching(&polling, 0))
        });
        assert!(caught, "the panic was lost");
        assert_eq!(after, 0, "a polling loop outlived the closure");
    }
}
