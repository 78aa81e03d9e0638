//! Which job runs next: requests waiting per host, taken host by host in
//! turn, no host over `per_host` running at once, so that a host that is
//! slow or down holds at most its share of the threads.

use super::job::Job;
use std::collections::{HashMap, VecDeque};

/// Requests for one host waiting for a thread, at most; more are refused.
const MAX_PENDING_PER_HOST: usize = 10_000;

/// The jobs of one worker loop, waiting and running.
pub(super) struct Schedule {
    per_host: usize,
    pending: HashMap<String, VecDeque<Job>>,
    order: VecDeque<String>,
    running: HashMap<String, usize>,
    total_running: usize,
}

impl Schedule {
    pub(super) fn new(per_host: usize) -> Schedule {
        Schedule {
            per_host,
            pending: HashMap::new(),
            order: VecDeque::new(),
            running: HashMap::new(),
            total_running: 0,
        }
    }

    /// Queues a job; when its host already has too many waiting, the
    /// refusal's frames (the job's envelope and the reply) instead.
    pub(super) fn queue(&mut self, job: Job) -> Result<(), Vec<Vec<u8>>> {
        let queue = self.pending.entry(job.host.clone()).or_default();
        if queue.len() >= MAX_PENDING_PER_HOST {
            let msg = format!("Too many requests waiting for {}", job.host);
            return Err(job.refused(&msg));
        }
        if queue.is_empty() {
            self.order.push_back(job.host.clone());
        }
        queue.push_back(job);
        Ok(())
    }

    /// The next job whose host is under `per_host`, counted as running.
    pub(super) fn next(&mut self) -> Option<Job> {
        for _ in 0..self.order.len() {
            let host = self.order.pop_front()?;
            let running = self.running.get(&host).copied().unwrap_or(0);
            let Some(queue) = self.pending.get_mut(&host) else {
                continue;
            };
            if running >= self.per_host {
                self.order.push_back(host);
                continue;
            }
            let Some(job) = queue.pop_front() else {
                self.pending.remove(&host);
                continue;
            };
            if queue.is_empty() {
                self.pending.remove(&host);
            } else {
                self.order.push_back(host.clone());
            }
            *self.running.entry(host).or_default() += 1;
            self.total_running += 1;
            return Some(job);
        }
        None
    }

    /// A job of `host` has finished.
    pub(super) fn done(&mut self, host: &str) {
        if let Some(running) = self.running.get_mut(host) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.running.remove(host);
            }
        }
        self.total_running = self.total_running.saturating_sub(1);
    }

    /// Whether a job runs or waits.
    pub(super) fn busy(&self) -> bool {
        self.total_running > 0 || !self.pending.is_empty()
    }
}
