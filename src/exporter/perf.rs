//! The performance keeper of one vSphere host: the newest real-time sample
//! of vmware_exporter's counters for the powered-on VMs and hosts the
//! latest scrape listed, read again in the background in batched
//! `QueryPerf` calls (one per 1,000 entities), so that a scrape only reads
//! memory.
//!
//! # When it reads
//! Once per scrape interval, timed to finish just before the next scrape
//! is due: the interval is the time between the last two scrapes, at least
//! the real-time period ([`PERIOD`], 20 s: vSphere samples no more often,
//! so reading more often finds nothing new) and at most [`MOST_PERIOD`].
//! So vCenter is asked once per scrape, as vmware_exporter asks it, but
//! not while the scrape waits.
//!
//! The thread starts with the first scrape and ends when no scrape came for
//! [`IDLE`]. Samples are served until the next read should have replaced
//! them, and ten seconds more: when vCenter stops answering, the
//! performance series go instead of freezing.

use super::families::{HOST_COUNTERS, VM_COUNTERS};
use crate::agent::perf::{latest, REALTIME_INTERVAL};
use crate::agent::Agent;
use crate::sync::Lock;
use crate::vsphere::soap::{deadline_after, MoRef};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two reads: vSphere's real-time period.
pub const PERIOD: Duration = Duration::from_secs(REALTIME_INTERVAL as u64);
/// The longest time between two reads, whatever the scrape interval.
pub const MOST_PERIOD: Duration = Duration::from_secs(120);
/// How much earlier than the next scrape a read is to finish.
const AHEAD: Duration = Duration::from_secs(2);
/// How long samples are served past the time the next read should have
/// replaced them.
const VALID_SLACK: Duration = Duration::from_secs(10);
/// How long the keeper goes on without a scrape.
pub const IDLE: Duration = Duration::from_secs(900);
/// The bound on one sweep's calls.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One sweep's samples: per entity, one value per counter of
/// [`VM_COUNTERS`] or [`HOST_COUNTERS`] (`None`: the host sent none).
#[derive(Debug)]
pub struct Samples {
    /// The VMs' samples.
    pub vms: HashMap<MoRef, Vec<Option<f64>>>,
    /// The hosts' samples.
    pub hosts: HashMap<MoRef, Vec<Option<f64>>>,
    /// When the sweep that read them started.
    pub read_at: Instant,
}

#[derive(Default)]
struct State {
    vms: Arc<Vec<MoRef>>,
    hosts: Arc<Vec<MoRef>>,
    samples: Option<Arc<Samples>>,
    /// When a scrape last asked.
    wanted_at: Option<Instant>,
    /// The time between the last two scrapes.
    scrape_gap: Option<Duration>,
    running: bool,
    stop: bool,
    /// Sweeps finished (a scrape waiting for the first one watches it).
    sweeps: u64,
    /// The last sweep's failure.
    failure: Option<String>,
    /// When the samples stop being served.
    valid_until: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

/// See the module's documentation.
#[derive(Default)]
pub struct Keeper {
    inner: Arc<Inner>,
}

impl Keeper {
    /// Notes the entities the latest scrape found powered on, and starts
    /// the background sweeps when they do not run.
    pub fn want(&self, agent: &Arc<Agent>, vms: Vec<MoRef>, hosts: Vec<MoRef>) {
        let mut state = self.inner.state.locked();
        state.vms = Arc::new(vms);
        state.hosts = Arc::new(hosts);
        let now = Instant::now();
        if let Some(last) = state.wanted_at {
            state.scrape_gap = Some(now.saturating_duration_since(last));
        }
        state.wanted_at = Some(now);
        if state.running || state.stop {
            return;
        }
        let inner = self.inner.clone();
        let agent = agent.clone();
        let spawned = std::thread::Builder::new()
            .name("vpoller-exporter-perf".into())
            .spawn(move || {
                // A panic ends the sweeps, not the exporter: the next
                // scrape starts them again.
                let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sweep_loop(&inner, &agent)
                }));
                if swept.is_err() {
                    log::error!(
                        "the performance counter reads of {} stopped on a panic",
                        agent.host()
                    );
                    let mut state = inner.state.locked();
                    state.running = false;
                    state.samples = None;
                    inner.changed.notify_all();
                }
            });
        match spawned {
            Ok(_) => state.running = true,
            Err(error) => log::error!("cannot start the performance thread: {error}"),
        }
    }

    /// The samples, unless the read that should have replaced them is 10 s
    /// late. With `wait`, when no sweep finished yet, waits for the first
    /// one until then.
    pub fn samples(&self, wait: Option<Instant>) -> Option<Arc<Samples>> {
        let mut state = self.inner.state.locked();
        if let Some(until) = wait {
            while state.sweeps == 0 && state.running {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                state = self
                    .inner
                    .changed
                    .wait_timeout(state, until - now)
                    .map(|(state, _)| state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
        }
        let now = Instant::now();
        if state.valid_until.is_some_and(|until| now >= until) {
            return None;
        }
        state.samples.clone()
    }

    /// Whether the last sweep read every chunk.
    pub fn last_sweep_ok(&self) -> Option<bool> {
        let state = self.inner.state.locked();
        (state.sweeps > 0).then_some(state.failure.is_none())
    }

    /// Stops the sweeps (the thread ends after its current sweep).
    pub fn stop(&self) {
        self.inner.state.locked().stop = true;
        self.inner.changed.notify_all();
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sweep_loop(inner: &Inner, agent: &Agent) {
    loop {
        let (vms, hosts) = {
            let mut state = inner.state.locked();
            let idle = state
                .wanted_at
                .map(|at| at.elapsed() >= IDLE)
                .unwrap_or(true);
            if state.stop || idle {
                state.running = false;
                state.samples = None;
                // A later start waits for its own first sweep.
                state.sweeps = 0;
                state.valid_until = None;
                inner.changed.notify_all();
                return;
            }
            (state.vms.clone(), state.hosts.clone())
        };
        let started = Instant::now();
        let deadline = deadline_after(SWEEP_TIMEOUT);
        let mut failure = None;
        let mut read = |entities: &[MoRef], counters: &[&str]| match latest(
            agent, entities, counters, deadline,
        ) {
            Ok(found) => {
                if let Some(error) = found.failure {
                    failure.get_or_insert_with(|| error.to_string());
                }
                found.values
            }
            Err(error) => {
                failure.get_or_insert_with(|| error.to_string());
                HashMap::new()
            }
        };
        let vm_values = read(&vms, VM_COUNTERS);
        let host_values = read(&hosts, HOST_COUNTERS);
        // The answers' trees are gone: give their pages back.
        crate::agent::release_free_memory();
        {
            let mut state = inner.state.locked();
            if let Some(error) = &failure {
                log::warn!("reading performance counters of {}: {error}", agent.host());
            }
            // The entities of a failed chunk have no samples in this sweep:
            // their series go (never older values beside newer ones).
            state.samples = Some(Arc::new(Samples {
                vms: vm_values,
                hosts: host_values,
                read_at: started,
            }));
            state.failure = failure;
            state.sweeps += 1;
            inner.changed.notify_all();
        }
        let took = started.elapsed();
        let mut state = inner.state.locked();
        let next = next_sweep(&state, started, took);
        // Served until the next sweep should have replaced them, and a
        // little more; if it fails, they go then.
        state.valid_until = Some(next + took + VALID_SLACK);
        loop {
            if state.stop {
                break;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            state = inner
                .changed
                .wait_timeout(state, next - now)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

/// The time between reads: the scrape interval, within bounds.
fn period(state: &State) -> Duration {
    state
        .scrape_gap
        .unwrap_or(PERIOD)
        .clamp(PERIOD, MOST_PERIOD)
}

/// When the sweep after the one that started at `started` and took `took`
/// begins: `took` and a margin before the first scrape expected after it
/// (one period after the last scrape, or a whole number of periods), and
/// at least [`PERIOD`] after this one started. Computed once per sweep:
/// scrapes that come meanwhile do not push it back.
fn next_sweep(state: &State, started: Instant, took: Duration) -> Instant {
    let earliest = started + PERIOD;
    let Some(scraped) = state.wanted_at else {
        return earliest;
    };
    let period = period(state);
    let lead = took + AHEAD;
    let ended = started + took;
    let mut due = scraped + period;
    // Scrapes are at most `IDLE` old here, so this ends within 45 turns.
    while due.checked_sub(lead).map_or(true, |begin| begin <= ended) {
        due += period;
    }
    (due - lead).max(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(scraped: Instant, gap: Option<Duration>) -> State {
        State {
            wanted_at: Some(scraped),
            scrape_gap: gap,
            ..State::default()
        }
    }

    #[test]
    fn sweeps_finish_just_before_the_next_scrape() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Scraped every 60 s: the sweep that took 3 s starts 5 s before the
        // scrape is due.
        let every_minute = state(t0, Some(s(60)));
        assert_eq!(next_sweep(&every_minute, t0 + s(1), s(3)), t0 + s(55));
        // Scraped every 10 s: no more often than the real-time period.
        let often = state(t0, Some(s(10)));
        assert_eq!(next_sweep(&often, t0 + s(1), s(3)), t0 + s(21));
        // Scraped every 10 minutes: at least every two minutes.
        let rarely = state(t0, Some(s(600)));
        assert_eq!(next_sweep(&rarely, t0 + s(1), s(3)), t0 + s(115));
        // One scrape so far: every real-time period.
        let once = state(t0, None);
        assert_eq!(next_sweep(&once, t0 + s(1), s(3)), t0 + s(21));
        // A sweep slower than the interval: for the scrape after next.
        let slow = state(t0, Some(s(30)));
        assert_eq!(next_sweep(&slow, t0 + s(26), s(3)), t0 + s(55));
        // The sweep just before a scrape: the next is for the one after.
        assert_eq!(next_sweep(&every_minute, t0 + s(55), s(3)), t0 + s(115));
    }
}
