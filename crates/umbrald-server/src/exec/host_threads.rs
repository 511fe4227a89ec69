//! Long-lived threads for the parts of a GPU batch.
//!
//! The GPU worker splits each batch into parts, one device call each, computed at once. A
//! fresh thread per part starts with an empty allocator cache and spends more CPU per item
//! than a thread that lived across batches (docs/PERFORMANCE.md#gpu-end-to-end). These threads
//! take the
//! parts instead and keep their caches warm.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

/// A part of a batch: computes and returns its count.
pub(crate) type Job = Box<dyn FnOnce() -> usize + Send + 'static>;

/// A fixed set of threads running [`Job`]s.
#[derive(Debug)]
pub(crate) struct HostThreads {
    jobs: Option<Sender<(Job, Sender<usize>)>>,
    handles: Vec<JoinHandle<()>>,
}

impl HostThreads {
    /// Starts `threads` threads named `{name}.{i}` (none: every job runs on the caller).
    pub fn start(threads: usize, name: &str) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<(Job, Sender<usize>)>();
        let handles = (0..threads)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}.{i}"))
                    .spawn(move || serve(&rx))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            jobs: Some(tx),
            handles,
        })
    }

    /// Runs every job on the threads (a lone job, or one the threads cannot take, runs on the
    /// caller) and waits for all of them. Returns their counts, in no particular order; a job
    /// that panicked has none, so fewer counts than jobs means a part failed.
    pub fn run_all(&self, mut jobs: Vec<Job>) -> Vec<usize> {
        if jobs.len() == 1 {
            return jobs
                .pop()
                .and_then(|job| catch_unwind(AssertUnwindSafe(job)).ok())
                .into_iter()
                .collect();
        }
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let mut counts = Vec::with_capacity(jobs.len());
        for job in jobs {
            let sent = match &self.jobs {
                Some(tx) => tx
                    .send((job, done_tx.clone()))
                    .map_err(|e| e.into_inner().0),
                None => Err(job),
            };
            if let Err(job) = sent {
                if let Ok(count) = catch_unwind(AssertUnwindSafe(job)) {
                    counts.push(count);
                }
            }
        }
        // Every job holds a sender: the channel closes once each has answered or died.
        drop(done_tx);
        counts.extend(done_rx.iter());
        counts
    }
}

impl Drop for HostThreads {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn serve(jobs: &Receiver<(Job, Sender<usize>)>) {
    while let Ok((job, done)) = jobs.recv() {
        if let Ok(count) = catch_unwind(AssertUnwindSafe(job)) {
            let _ = done.send(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    #[test]
    fn jobs_run_on_the_same_long_lived_threads() {
        let pool = HostThreads::start(3, "test-host").expect("threads");
        let names = Arc::new(Mutex::new(HashSet::new()));
        for round in 0..5 {
            let jobs: Vec<Job> = (0..3)
                .map(|i| {
                    let names = names.clone();
                    Box::new(move || {
                        let name = std::thread::current().name().map(str::to_owned);
                        names.lock().expect("lock").insert(name);
                        round * 10 + i
                    }) as Job
                })
                .collect();
            let mut counts = pool.run_all(jobs);
            counts.sort_unstable();
            assert_eq!(counts, vec![round * 10, round * 10 + 1, round * 10 + 2]);
        }
        let names = names.lock().expect("lock");
        assert!(names.len() <= 3, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.as_deref().is_some_and(|n| n.starts_with("test-host."))));
    }

    #[test]
    fn without_threads_jobs_run_on_the_caller() {
        let pool = HostThreads::start(0, "test-none").expect("no threads");
        let caller = std::thread::current().id();
        let jobs: Vec<Job> = (0..2)
            .map(|i| {
                Box::new(move || usize::from(std::thread::current().id() == caller) + i) as Job
            })
            .collect();
        assert_eq!(pool.run_all(jobs), vec![1, 2]);
    }

    #[test]
    fn a_panicking_job_is_missing_and_the_threads_survive() {
        let pool = HostThreads::start(1, "test-panic").expect("threads");
        let jobs: Vec<Job> = vec![
            Box::new(|| 1),
            Box::new(|| panic!("part failed")),
            Box::new(|| 3),
        ];
        let mut counts = pool.run_all(jobs);
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 3]);
        assert_eq!(pool.run_all(vec![Box::new(|| 7), Box::new(|| 8)]).len(), 2);
        // A lone job runs on the caller, a lone panic is a missing count.
        let caller = std::thread::current().id();
        let here = Box::new(move || usize::from(std::thread::current().id() == caller));
        assert_eq!(pool.run_all(vec![here]), vec![1]);
        assert!(pool.run_all(vec![Box::new(|| panic!("lone"))]).is_empty());
    }
}
