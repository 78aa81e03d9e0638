//! The vPoller Worker: connected to the proxy's backend as a DEALER socket,
//! reading requests (client id, empty frame, JSON) and answering each with
//! the same envelope, as py-vpoller's worker; but many requests at once.
//!
//! Each worker loop keeps a pool of threads (`threads`, 32) that run tasks
//! on one [`Agent`] per vSphere host (shared by the threads), so that no
//! host has more than `per_host` (8) tasks running: a host that is slow or
//! down holds at most that many threads, and requests for other hosts go on
//! (`Schedule`).
//!
//! On a `tcp://` proxy endpoint the pool's threads read and answer the
//! connection themselves (`tcp.rs`: the thread that reads a request runs it
//! and writes its reply); on others a libzmq socket is read by one loop
//! that hands requests to the pool (`libzmq.rs`).

mod libzmq;
mod tcp;

use crate::agent::reply::{to_text, Answer};
use crate::agent::Agent;
use crate::error::Error;
use crate::helpers;
use crate::hosts::{AgentSettings, Routed};
use crate::server::config::Config;
use crate::server::mgmt;
use crate::server::{open_socket, Attach, Stop};
use crate::sync::Lock;
use crate::zmtp;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests for one host waiting for a thread, at most; more are refused.
const MAX_PENDING_PER_HOST: usize = 10_000;
/// Counters of one vSphere host, for `status`.
#[derive(Default, Clone)]
struct HostStats {
    requests: u64,
    failures: u64,
    last_error: Option<String>,
    total_latency: Duration,
}

/// The worker's hosts and their counters, shared by every loop.
pub(crate) struct Hosts {
    hosts: crate::hosts::Hosts,
    stats: Mutex<HashMap<String, HostStats>>,
}

impl Hosts {
    fn new(config: &Config) -> Result<Hosts, Error> {
        let settings = AgentSettings {
            timeout_ms: config.worker.timeout_ms,
            cache_ttl_s: if config.cache.enabled {
                config.cache.ttl
            } else {
                0
            },
        };
        Ok(Hosts {
            hosts: crate::hosts::Hosts::open(&config.worker.db, settings)?,
            stats: Mutex::new(HashMap::new()),
        })
    }

    fn record(&self, host: &str, failure: Option<String>, latency: Duration) {
        let mut stats = self.stats.locked();
        let entry = stats.entry(host.to_owned()).or_default();
        entry.requests += 1;
        entry.total_latency += latency;
        if failure.is_some() {
            entry.failures += 1;
            entry.last_error = failure;
        }
    }

    fn stats_json(&self) -> Value {
        let stats = self.stats.locked();
        let mut names: Vec<&String> = stats.keys().collect();
        names.sort();
        let hosts: Map<String, Value> = names
            .into_iter()
            .map(|name| {
                let entry = &stats[name];
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
                    }),
                )
            })
            .collect();
        Value::Object(hosts)
    }
}

/// One request handed to a thread.
struct Job {
    envelope: Vec<Vec<u8>>,
    msg: Value,
    host: String,
    agent: Arc<Agent>,
    queued: Instant,
}

/// The reply text for a job, through its helper when it names one this
/// worker has (an unknown helper is ignored, as py-vpoller ignores it), and
/// the task's failure message if it failed.
fn answer(job: &Job, helpers_allowed: &[String]) -> (String, Option<String>) {
    let helper = job
        .msg
        .get("helper")
        .and_then(Value::as_str)
        .filter(|name| {
            helpers::known(name) && helpers_allowed.iter().any(|allowed| allowed == name)
        });
    let failure_of = |reply: &Value| {
        (reply.get("success").and_then(Value::as_i64) != Some(0)).then(|| {
            reply
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned()
        })
    };
    match helper {
        // Replies written as text are successful lists; the others say.
        None => match job.agent.answer_value(&job.msg) {
            Answer::Json(reply) => (to_text(&reply), failure_of(&reply)),
            Answer::Text(text) => (text, None),
        },
        Some(name) => {
            let reply = job.agent.run_value(&job.msg);
            let fields = job.msg.as_object().cloned().unwrap_or_default();
            match helpers::apply(name, &fields, &reply) {
                Ok(text) => (text, failure_of(&reply)),
                Err(reason) => {
                    let msg = format!("Cannot send result: helper {name} failed: {reason}");
                    (to_text(&json!({"success": 1, "msg": msg})), Some(msg))
                }
            }
        }
    }
}

/// Which job runs next: requests waiting per host, taken host by host in
/// turn, no host over `per_host` running at once.
struct Schedule {
    per_host: usize,
    pending: HashMap<String, VecDeque<Job>>,
    order: VecDeque<String>,
    running: HashMap<String, usize>,
    total_running: usize,
}

impl Schedule {
    fn new(per_host: usize) -> Schedule {
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
    fn queue(&mut self, job: Job) -> Result<(), Vec<Vec<u8>>> {
        let queue = self.pending.entry(job.host.clone()).or_default();
        if queue.len() >= MAX_PENDING_PER_HOST {
            let msg = format!("Too many requests waiting for {}", job.host);
            let mut frames = job.envelope;
            frames.push(to_text(&json!({"success": 1, "msg": msg})).into_bytes());
            return Err(frames);
        }
        if queue.is_empty() {
            self.order.push_back(job.host.clone());
        }
        queue.push_back(job);
        Ok(())
    }

    /// The next job whose host is under `per_host`, counted as running.
    fn next(&mut self) -> Option<Job> {
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
    fn done(&mut self, host: &str) {
        if let Some(running) = self.running.get_mut(host) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.running.remove(host);
            }
        }
        self.total_running = self.total_running.saturating_sub(1);
    }

    fn busy(&self) -> bool {
        self.total_running > 0 || !self.pending.is_empty()
    }
}

/// Runs a job on the calling thread: the reply's frames (envelope, text),
/// with the host's counters updated. A panic in a task is a failure reply.
fn perform(hosts: &Hosts, job: Job, helpers_allowed: &[String]) -> Vec<Vec<u8>> {
    let (text, failure) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        answer(&job, helpers_allowed)
    }))
    .unwrap_or_else(|_| {
        let msg = "Task failed: internal error in the worker".to_owned();
        (to_text(&json!({"success": 1, "msg": msg})), Some(msg))
    });
    hosts.record(&job.host, failure, job.queued.elapsed());
    let mut frames = job.envelope;
    frames.push(text.into_bytes());
    frames
}

/// A request's frames as py-vpoller's worker takes them (client id, empty
/// frame, request): the envelope and the request, or `None` (logged) for
/// any other shape, which gets no reply.
fn split_request(mut frames: Vec<Vec<u8>>) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    if frames.len() < 3 || !frames[frames.len() - 2].is_empty() {
        log::warn!(
            "dropped a message of {} frames that is not client id, empty frame, request",
            frames.len()
        );
        return None;
    }
    let body = frames.pop().unwrap_or_default();
    Some((frames, body))
}

/// A request routed to a job, or the reply's frames when it is refused at
/// once (py-vpoller's worker checks, an unknown host).
fn job_for(hosts: &Hosts, envelope: Vec<Vec<u8>>, body: &[u8]) -> Result<Job, Vec<Vec<u8>>> {
    match hosts.hosts.route(body) {
        Ok(Routed { msg, host, agent }) => Ok(Job {
            envelope,
            msg,
            host,
            agent,
            queued: Instant::now(),
        }),
        Err(refusal) => {
            let mut frames = envelope;
            frames.push(refusal.into_bytes());
            Err(frames)
        }
    }
}

/// What `status` reports.
struct Status<'a> {
    config: &'a Config,
    loops: usize,
    node: String,
}

impl Status<'_> {
    fn reply(&self, hosts: &Hosts) -> String {
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
                "hosts": hosts.stats_json(),
            }
        }))
    }
}

/// Runs the worker: `loops` worker loops (py-vpoller's `-c`, each with its
/// own connection to the proxy and its own threads) until `shutdown` or
/// `stop`; requests in hand are finished first.
pub fn run(config: &Config, loops: usize, stop: &Stop) -> Result<(), Error> {
    let hosts = Hosts::new(config)?;
    let context = zmq::Context::new();
    let management = open_socket(&context, zmq::REP, 0, &config.worker.mgmt, Attach::Bind)?;
    let loops = loops.max(1);
    let status = Status {
        config,
        loops,
        node: mgmt::node_name(),
    };
    let lean = zmtp::tcp_addresses(&config.worker.proxy, false);
    log::info!(
        "worker running{}: proxy {}, management {}, {} loop(s) of {} threads, at most {} per host",
        if lean.is_some() { "" } else { " (libzmq)" },
        config.worker.proxy,
        config.worker.mgmt,
        loops,
        config.worker.threads,
        config.worker.per_host
    );
    let (hosts, context) = (&hosts, &context);
    let reply = || status.reply(hosts);
    mgmt::beside(
        management,
        "Unknown method name received",
        stop,
        &reply,
        || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..loops)
                    .map(|_| {
                        let lean = lean.as_deref();
                        scope.spawn(move || match lean {
                            Some(addresses) => tcp::run(config, hosts, addresses, stop),
                            None => libzmq::run(config, hosts, context, stop),
                        })
                    })
                    .collect();
                let mut outcome = Ok(());
                for handle in handles {
                    let finished = handle
                        .join()
                        .unwrap_or_else(|_| Err(Error::Internal("a worker loop panicked".into())));
                    // One loop failing stops the others.
                    if finished.is_err() {
                        stop.set();
                    }
                    outcome = outcome.and(finished);
                }
                outcome
            })
        },
    )?;
    log::info!("worker stopped");
    Ok(())
}
