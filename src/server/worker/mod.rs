//! The vPoller Worker: connected to the proxy's backend as a DEALER socket,
//! reading requests (client id, empty frame, JSON) and answering each with
//! the same envelope, as py-vpoller's worker; but many requests at once.
//!
//! Each worker loop has its own connection to the proxy and a pool of
//! threads (`threads`, 32) that run tasks on one [`Agent`] per vSphere host
//! (shared by every loop), so that no host has more than `per_host` (8)
//! tasks running: a host that is slow or down holds at most that many
//! threads, and requests for other hosts go on (`schedule.rs`). The
//! pool's threads read and answer the connection themselves (`pool.rs`,
//! over `link.rs`): the thread that reads a request runs it and writes its
//! reply.
//!
//! [`Agent`]: crate::Agent

mod job;
mod link;
mod pool;
mod schedule;
#[cfg(test)]
mod tests;

use crate::error::Error;
use crate::hosts::Hosts;
use crate::server::config::Config;
use crate::server::{mgmt, Stop};
use crate::sync::Lock;
use crate::transport::curve::Security;
use crate::transport::Dialer;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How much of a host's last error `status` shows, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// Counters of one vSphere host, for `status`.
#[derive(Default, Clone)]
struct HostStats {
    requests: u64,
    failures: u64,
    last_error: Option<String>,
    total_latency: Duration,
}

/// What every loop of a worker shares: the hosts and their agents, the
/// helpers requests may name, and the counters `status` reports.
pub(crate) struct Worker {
    hosts: Hosts,
    helpers: Vec<String>,
    stats: Mutex<HashMap<String, HostStats>>,
}

impl Worker {
    fn new(config: &Config) -> Result<Worker, Error> {
        Ok(Worker {
            hosts: Hosts::open(&config.worker.db, config.agent_settings())?,
            helpers: config.worker.helpers.clone(),
            stats: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn record(&self, host: &str, failure: Option<String>, latency: Duration) {
        let mut stats = self.stats.locked();
        let entry = stats.entry(host.to_owned()).or_default();
        entry.requests += 1;
        entry.total_latency += latency;
        if let Some(mut failure) = failure {
            // A failure can quote the request (a missing object's name):
            // `status` shows its start.
            if let Some((cut, _)) = failure.char_indices().nth(MAX_ERROR_CHARS) {
                failure.truncate(cut);
                failure.push_str("...");
            }
            entry.failures += 1;
            entry.last_error = Some(failure);
        }
    }

    fn stats_json(&self) -> Value {
        // Taken first: the agents' lock is not held while the stats' is.
        let mirrors: HashMap<String, Value> = self
            .hosts
            .agents()
            .into_iter()
            .map(|(name, agent)| (name, agent.mirror_status()))
            .collect();
        let stats = self.stats.locked();
        let mut names: Vec<&String> = stats.keys().chain(mirrors.keys()).collect();
        names.sort();
        names.dedup();
        let empty = HostStats::default();
        let hosts: Map<String, Value> = names
            .into_iter()
            .map(|name| {
                let entry = stats.get(name).unwrap_or(&empty);
                let mean = if entry.requests == 0 {
                    0.0
                } else {
                    entry.total_latency.as_secs_f64() * 1000.0 / entry.requests as f64
                };
                (
                    name.clone(),
                    json!({
                        "requests": entry.requests,
                        "failures": entry.failures,
                        "last_error": entry.last_error,
                        "mean_latency_ms": (mean * 1000.0).round() / 1000.0,
                        "mirror": mirrors.get(name).cloned().unwrap_or(Value::Null),
                    }),
                )
            })
            .collect();
        Value::Object(hosts)
    }
}

/// What `status` reports.
struct Status<'a> {
    config: &'a Config,
    loops: usize,
    node: String,
}

impl Status<'_> {
    fn reply(&self, worker: &Worker) -> String {
        mgmt::to_ascii_text(&json!({
            "success": 0,
            "msg": "vPoller Worker status",
            "result": {
                "status": "running",
                "hostname": self.node,
                "proxy": self.config.worker.proxy,
                "mgmt": self.config.worker.mgmt,
                "db": self.config.worker.db,
                "concurrency": self.loops,
                "helpers": self.config.worker.helpers,
                "tasks": self.config.worker.tasks,
                "threads": self.config.worker.threads,
                "per_host": self.config.worker.per_host,
                "hosts": worker.stats_json(),
            }
        }))
    }
}

/// Runs the worker: `loops` worker loops (py-vpoller's `-c`, each with its
/// own connection to the proxy and its own threads) until `shutdown` or
/// `stop`; requests in hand are finished first. A loop that fails stops the
/// others at once, and the first failure is the result.
pub fn run(config: &Config, loops: usize, stop: &Stop) -> Result<(), Error> {
    let dialer = Dialer::new(&config.worker.proxy).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot connect to {}: not an endpoint this program reaches (tcp://HOST:PORT or ipc://PATH)",
            config.worker.proxy
        ))
    })?;
    let security = proxy_security(config)?;
    let worker = Worker::new(config)?;
    let loops = loops.max(1);
    let status = Status {
        config,
        loops,
        node: mgmt::node_name(),
    };
    log::info!(
        "worker running: proxy {}, management {}, {} loop(s) of {} threads, at most {} per host",
        config.worker.proxy,
        config.worker.mgmt,
        loops,
        config.worker.threads,
        config.worker.per_host
    );
    let worker = &worker;
    let reply = || status.reply(worker);
    mgmt::beside(
        &config.worker.mgmt,
        "Unknown method name received",
        stop,
        &reply,
        || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..loops)
                    .map(|index| {
                        let dialer = dialer.clone();
                        let security = security.clone();
                        scope.spawn(move || {
                            let settings = pool::Settings {
                                endpoint: &config.worker.proxy,
                                dialer,
                                security,
                                threads: config.worker.threads,
                                per_host: config.worker.per_host,
                                task_timeout: Duration::from_millis(config.worker.timeout_ms),
                            };
                            let outcome =
                                loop_outcome(index, config, || pool::run(worker, settings, stop));
                            // Seen at once: the other loops stop now.
                            if outcome.is_err() {
                                stop.set();
                            }
                            outcome
                        })
                    })
                    .collect();
                let mut outcome = Ok(());
                for handle in handles {
                    let finished = handle
                        .join()
                        .unwrap_or_else(|_| Err(Error::Internal("a worker loop panicked".into())));
                    outcome = outcome.and(finished);
                }
                outcome
            })
        },
    )?;
    log::info!("worker stopped");
    Ok(())
}

/// How the worker talks to the proxy: CURVE when `proxy_curve_server_key`
/// is set, with the key pair of `curve_secret_key` or a fresh one.
fn proxy_security(config: &Config) -> Result<Security, Error> {
    let Some(server) = config.worker.proxy_curve_server_key else {
        return Ok(Security::Null);
    };
    let ours = match &config.worker.curve_secret_key {
        Some(path) => crate::curve::read_secret_key_file(path).map_err(|error| match error {
            Error::InvalidArgument(reason) => {
                Error::InvalidArgument(format!("curve_secret_key: {reason}"))
            }
            other => other,
        })?,
        None => crate::curve::KeyPair::generate()?,
    };
    log::info!(
        "speaking CURVE to the proxy (its key {server}) with the public key {}{}",
        ours.public(),
        if config.worker.curve_secret_key.is_none() {
            " (a fresh pair: set curve_secret_key for one the proxy can list)"
        } else {
            ""
        }
    );
    Ok(Security::CurveClient {
        server,
        ours: std::sync::Arc::new(ours),
    })
}

/// Runs loop `index`; in the library's own tests, a loop can be made to fail.
fn loop_outcome(
    index: usize,
    config: &Config,
    serve: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    #[cfg(test)]
    if crate::test_hooks::loop_fails(&config.worker.mgmt, index) {
        return Err(Error::Internal(format!(
            "loop {index} failed (a test failure)"
        )));
    }
    let _ = (index, config);
    serve()
}
