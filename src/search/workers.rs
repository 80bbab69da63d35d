//! Jobs done on every core, their results taken back in the order the jobs were given.
//!
//! A body-text search reads messages that are mostly small (a mailing list's are 1-3 KB),
//! so what costs is per message: a file opened, read twice (MAC, then decryption),
//! inflated, parsed. Handing each message from a decrypting thread to a searching one (as
//! `--verify`'s read-ahead does) costs as much in wake-ups as the work it overlaps; here
//! each worker does the whole of a message instead, and the jobs travel in batches, so
//! threads meet once a batch and every core is busy. Workers are given batches in turn
//! and answer them in order, so taking the answers in the same turn keeps the order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::Scope;

/// The most workers: more cores than this gain little on the disk and cost memory.
const MAX_WORKERS: usize = 4;

/// How many workers to start on this machine: one a core, at least two (one waits for the
/// disk while the other works), at most [`MAX_WORKERS`].
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, MAX_WORKERS)
}

/// Worker threads of one scope, each doing jobs of type `J` into results of type `O`.
pub struct Workers<J, O> {
    jobs: Vec<Sender<Vec<J>>>,
    results: Vec<Receiver<Vec<O>>>,
    /// Batches given, and taken back.
    given: usize,
    taken: usize,
    /// Set when nobody wants the results any more: the workers stop at their next job.
    stop: Arc<AtomicBool>,
}

impl<J: Send, O: Send> Workers<J, O> {
    /// Starts `n` workers in `scope`, each doing its jobs with a worker function `make`
    /// makes for it (its own state: buffers, a matcher).
    pub fn spawn<'scope, 'env, M, W>(scope: &'scope Scope<'scope, 'env>, n: usize, make: M) -> std::io::Result<Self>
    where
        J: 'scope,
        O: 'scope,
        M: Fn() -> W,
        W: FnMut(J) -> O + Send + 'scope,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut jobs, mut results) = (Vec::new(), Vec::new());
        for i in 0..n.max(1) {
            let (job_tx, job_rx) = mpsc::channel::<Vec<J>>();
            let (result_tx, result_rx) = mpsc::channel::<Vec<O>>();
            let (mut work, stop) = (make(), Arc::clone(&stop));
            std::thread::Builder::new().name(format!("search-{i}")).spawn_scoped(scope, move || {
                for batch in job_rx {
                    let mut done = Vec::with_capacity(batch.len());
                    for job in batch {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        done.push(work(job));
                    }
                    if result_tx.send(done).is_err() {
                        return;
                    }
                }
            })?;
            jobs.push(job_tx);
            results.push(result_rx);
        }
        Ok(Workers { jobs, results, given: 0, taken: 0, stop })
    }

    /// Gives a batch of jobs to the next worker in turn.
    pub fn give(&mut self, batch: Vec<J>) {
        let worker = self.given % self.jobs.len();
        self.given += 1;
        // A worker ends only when its queue is dropped or when stopped (then nobody takes
        // results): a refused batch is one nobody would have asked about.
        let _ = self.jobs[worker].send(batch);
    }

    /// The results of the oldest batch not taken back yet, in the order of its jobs
    /// (waiting for them); `None` when there is none, or its worker ended.
    pub fn take(&mut self) -> Option<Vec<O>> {
        if self.taken == self.given {
            return None;
        }
        let worker = self.taken % self.results.len();
        self.taken += 1;
        self.results[worker].recv().ok()
    }
}

impl<J, O> Drop for Workers<J, O> {
    fn drop(&mut self) {
        // The workers end at their next job (their queues close with `jobs`); the scope
        // waits for them.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_of_the_jobs() {
        std::thread::scope(|scope| {
            let mut workers = Workers::spawn(scope, 3, || {
                let mut seen = 0u32;
                move |job: u32| {
                    seen += 1;
                    // Uneven work: later batches of one worker overtake earlier ones of another.
                    if job.is_multiple_of(7) {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    (job, seen)
                }
            })
            .unwrap();
            let mut next = 0u32;
            for start in (0..200u32).step_by(9) {
                workers.give((start..(start + 9).min(200)).collect());
            }
            while let Some(batch) = workers.take() {
                for (job, _) in batch {
                    assert_eq!(job, next);
                    next += 1;
                }
            }
            assert_eq!(next, 200);
        });
    }

    #[test]
    fn dropped_workers_stop_and_the_scope_ends() {
        std::thread::scope(|scope| {
            let mut workers = Workers::spawn(scope, 2, || |job: u32| job).unwrap();
            for _ in 0..100 {
                workers.give(vec![0; 1000]);
            }
            assert_eq!(workers.take().map(|b| b.len()), Some(1000));
        });
    }
}
