//! The vPoller Worker: a DEALER socket connected to the proxy's backend,
//! reading requests (client id, empty frame, JSON) and answering each with
//! the same envelope, as py-vpoller's worker; but many requests at once.
//!
//! Each worker loop keeps a pool of threads (`threads`, 32) that run tasks
//! on one [`Agent`] per vSphere host (shared by the threads), and sends them
//! work so that no host has more than `per_host` (8) tasks running: a host
//! that is slow or down holds at most that many threads, and requests for
//! other hosts go on. Replies come back to the loop over an in-process
//! socket; the loop alone touches the DEALER socket.

use crate::agent::reply::{to_text, Answer};
use crate::agent::{Agent, AgentOptions};
use crate::error::Error;
use crate::server::config::Config;
use crate::server::helpers;
use crate::server::mgmt::{self, Command};
use crate::server::registry::{Host, Registry, Tls};
use crate::server::{log, open_socket, Attach, Level, Stop};
use crate::vsphere::Verification;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests for one host waiting for a thread, at most; more are refused.
const MAX_PENDING_PER_HOST: usize = 10_000;
/// How often an unknown host name may trigger a registry reload.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Counters of one vSphere host, for `status`.
#[derive(Default, Clone)]
struct HostStats {
    requests: u64,
    failures: u64,
    last_error: Option<String>,
    total_latency: Duration,
}

/// The registered hosts and their agents, shared by every loop of a worker.
pub(crate) struct Hosts {
    db: String,
    config: Config,
    agents: Mutex<HashMap<String, (Host, Arc<Agent>)>>,
    last_reload: Mutex<Option<Instant>>,
    stats: Mutex<HashMap<String, HostStats>>,
}

impl Hosts {
    pub(crate) fn new(config: &Config) -> Result<Hosts, Error> {
        let hosts = Hosts {
            db: config.worker.db.clone(),
            config: config.clone(),
            agents: Mutex::new(HashMap::new()),
            last_reload: Mutex::new(None),
            stats: Mutex::new(HashMap::new()),
        };
        hosts.reload()?;
        Ok(hosts)
    }

    fn options(&self, host: &Host) -> AgentOptions {
        let verification = match &host.tls {
            Tls::Unchecked => Verification::Insecure,
            Tls::SystemRoots => Verification::SystemRoots,
            Tls::CaFile(path) => Verification::CaFile(path.into()),
            Tls::Fingerprint(digest) => Verification::Fingerprint(digest.clone()),
        };
        AgentOptions {
            port: host.port.unwrap_or(crate::agent::DEFAULT_PORT),
            verification,
            timeout_ms: self.config.worker.timeout_ms,
            cache_ttl_s: if self.config.cache.enabled {
                self.config.cache.ttl
            } else {
                0
            },
            ..AgentOptions::default()
        }
    }

    /// Reads the registry: agents for new or changed enabled hosts, none for
    /// removed or disabled ones.
    fn reload(&self) -> Result<(), Error> {
        let registered = Registry::open(&self.db)?.list()?;
        let mut agents = self
            .agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        agents.retain(|name, (known, _)| {
            registered
                .iter()
                .any(|host| host.enabled && &host.host == name && host == known)
        });
        for host in registered.into_iter().filter(|host| host.enabled) {
            if agents.contains_key(&host.host) {
                continue;
            }
            if host.tls == Tls::Unchecked {
                log(
                    Level::Info,
                    &format!(
                        "{}: certificate not verified (no TLS settings in the registry, as py-vpoller)",
                        host.host
                    ),
                );
            }
            match Agent::with_options(&host.host, &host.user, &host.password, self.options(&host)) {
                Ok(agent) => {
                    agents.insert(host.host.clone(), (host, Arc::new(agent)));
                }
                Err(error) => log(Level::Error, &format!("{}: {error}", host.host)),
            }
        }
        *self
            .last_reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// The agent of `name`; an unknown name reloads the registry (at most
    /// every two seconds), so hosts added while the worker runs are served.
    pub(crate) fn agent(&self, name: &str) -> Option<Arc<Agent>> {
        if let Some((_, agent)) = self
            .agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
        {
            return Some(agent.clone());
        }
        let due = self
            .last_reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map_or(true, |at| at.elapsed() >= RELOAD_INTERVAL);
        if due {
            if let Err(error) = self.reload() {
                log(Level::Error, &error.to_string());
            }
            return self
                .agents
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(name)
                .map(|(_, agent)| agent.clone());
        }
        None
    }

    /// What a worker does with a request's text before any task runs, as
    /// py-vpoller's worker checks it: the message, its host and that host's
    /// agent, or the refusal's reply text (not JSON, not an object, no known
    /// task, no known vSphere host).
    pub(crate) fn route(&self, body: &[u8]) -> Result<(Value, String, Arc<Agent>), String> {
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            log(Level::Warning, "invalid client message received");
            return Err(to_text(
                &json!({"success": 1, "msg": "Invalid message received"}),
            ));
        };
        if let Some(refusal) = crate::agent::precheck(&msg) {
            return Err(to_text(&refusal));
        }
        let host = msg
            .get("hostname")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match host.and_then(|host| self.agent(&host).map(|agent| (host, agent))) {
            Some((host, agent)) => Ok((msg, host, agent)),
            None => Err(to_text(
                &json!({"success": 1, "msg": "Unknown or missing agent name"}),
            )),
        }
    }

    fn record(&self, host: &str, failure: Option<String>, latency: Duration) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = stats.entry(host.to_owned()).or_default();
        entry.requests += 1;
        entry.total_latency += latency;
        if failure.is_some() {
            entry.failures += 1;
            entry.last_error = failure;
        }
    }

    fn stats_json(&self) -> Value {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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

/// One worker loop: its DEALER socket, its thread pool, its queue.
struct Loop<'a> {
    hosts: &'a Hosts,
    config: &'a Config,
    dealer: zmq::Socket,
    replies: zmq::Socket,
    jobs: mpsc::Sender<Job>,
    pending: HashMap<String, VecDeque<Job>>,
    order: VecDeque<String>,
    running: HashMap<String, usize>,
    total_running: usize,
}

impl Loop<'_> {
    fn send(&self, frames: Vec<Vec<u8>>) {
        if let Err(error) = self.dealer.send_multipart(frames, 0) {
            log(Level::Warning, &format!("cannot send a reply: {error}"));
        }
    }

    fn reply(&self, mut envelope: Vec<Vec<u8>>, text: String) {
        envelope.push(text.into_bytes());
        self.send(envelope);
    }

    /// Reads every request waiting on the DEALER socket.
    fn take_requests(&mut self) -> Result<(), Error> {
        loop {
            let frames = match self.dealer.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(zmq::Error::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            self.take(frames);
        }
    }

    fn take(&mut self, mut frames: Vec<Vec<u8>>) {
        if frames.len() < 3 || !frames[frames.len() - 2].is_empty() {
            log(
                Level::Warning,
                &format!(
                    "dropped a message of {} frames that is not client id, empty frame, request",
                    frames.len()
                ),
            );
            return;
        }
        let body = frames.pop().unwrap_or_default();
        let envelope = frames;
        let (msg, host, agent) = match self.hosts.route(&body) {
            Ok(routed) => routed,
            Err(refusal) => {
                self.reply(envelope, refusal);
                return;
            }
        };
        let queue = self.pending.entry(host.clone()).or_default();
        if queue.len() >= MAX_PENDING_PER_HOST {
            self.reply(
                envelope,
                to_text(
                    &json!({"success": 1, "msg": format!("Too many requests waiting for {host}")}),
                ),
            );
            return;
        }
        if queue.is_empty() {
            self.order.push_back(host.clone());
        }
        queue.push_back(Job {
            envelope,
            msg,
            host,
            agent,
            queued: Instant::now(),
        });
    }

    /// Hands waiting jobs to idle threads, host by host in turn, keeping
    /// each host under `per_host`.
    fn dispatch(&mut self) {
        let threads = self.config.worker.threads;
        let per_host = self.config.worker.per_host;
        let mut passes = self.order.len();
        while self.total_running < threads && passes > 0 {
            let Some(host) = self.order.pop_front() else {
                break;
            };
            let running = self.running.get(&host).copied().unwrap_or(0);
            let queue = self.pending.get_mut(&host);
            let Some(queue) = queue.filter(|queue| !queue.is_empty()) else {
                self.pending.remove(&host);
                passes = self.order.len();
                continue;
            };
            if running >= per_host {
                self.order.push_back(host);
                passes -= 1;
                continue;
            }
            let job = queue.pop_front().expect("a non-empty queue");
            let more = !queue.is_empty();
            if self.jobs.send(job).is_err() {
                log(Level::Error, "the task threads are gone");
                return;
            }
            *self.running.entry(host.clone()).or_default() += 1;
            self.total_running += 1;
            if more {
                self.order.push_back(host);
            } else {
                self.pending.remove(&host);
            }
            passes = self.order.len();
        }
    }

    /// Sends the replies the threads finished.
    fn take_replies(&mut self) -> Result<(), Error> {
        loop {
            let mut frames = match self.replies.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(zmq::Error::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            let host = String::from_utf8_lossy(&frames.remove(0)).into_owned();
            if let Some(running) = self.running.get_mut(&host) {
                *running = running.saturating_sub(1);
            }
            self.total_running = self.total_running.saturating_sub(1);
            self.send(frames);
        }
    }

    fn busy(&self) -> bool {
        self.total_running > 0 || self.pending.values().any(|queue| !queue.is_empty())
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

static LOOP_IDS: AtomicUsize = AtomicUsize::new(0);

/// Runs the worker: `loops` worker loops (py-vpoller's `-c`, each with its
/// own connection to the proxy and its own threads) until `shutdown` or
/// `stop`; requests in hand are finished first.
pub fn run(config: &Config, loops: usize, stop: &Stop) -> Result<(), Error> {
    let hosts = Hosts::new(config)?;
    let context = zmq::Context::new();
    let management = open_socket(&context, zmq::REP, 0, &config.worker.mgmt, Attach::Bind)?;
    let status = Status {
        config,
        loops: loops.max(1),
        node: mgmt::node_name(),
    };
    log(
        Level::Info,
        &format!(
            "worker running: proxy {}, management {}, {} loop(s) of {} threads, at most {} per host",
            config.worker.proxy,
            config.worker.mgmt,
            loops.max(1),
            config.worker.threads,
            config.worker.per_host
        ),
    );
    std::thread::scope(|scope| -> Result<(), Error> {
        let mut handles = Vec::new();
        for _ in 1..loops.max(1) {
            let (hosts, context) = (&hosts, &context);
            handles
                .push(scope.spawn(move || worker_loop(config, hosts, context, None, None, stop)));
        }
        let first = worker_loop(
            config,
            &hosts,
            &context,
            Some(&management),
            Some(&status),
            stop,
        );
        stop.set();
        for handle in handles {
            match handle.join() {
                Ok(outcome) => outcome?,
                Err(_) => return Err(Error::Internal("a worker loop panicked".into())),
            }
        }
        first
    })?;
    log(Level::Info, "worker stopped");
    Ok(())
}

fn worker_loop(
    config: &Config,
    hosts: &Hosts,
    context: &zmq::Context,
    management: Option<&zmq::Socket>,
    status: Option<&Status<'_>>,
    stop: &Stop,
) -> Result<(), Error> {
    let dealer = open_socket(
        context,
        zmq::DEALER,
        2000,
        &config.worker.proxy,
        Attach::Connect,
    )?;
    let endpoint = format!(
        "inproc://vpoller-worker-replies-{}",
        LOOP_IDS.fetch_add(1, Ordering::SeqCst)
    );
    let replies = context.socket(zmq::PULL)?;
    replies.bind(&endpoint)?;
    let (jobs, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let helpers_allowed = config.worker.helpers.clone();
    std::thread::scope(|scope| -> Result<(), Error> {
        for _ in 0..config.worker.threads {
            let push = context.socket(zmq::PUSH)?;
            push.connect(&endpoint)?;
            let (receiver, helpers_allowed) = (receiver.clone(), &helpers_allowed);
            scope.spawn(move || loop {
                let job = {
                    let receiver = receiver
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    receiver.recv()
                };
                let Ok(job) = job else {
                    return;
                };
                let (text, failure) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        answer(&job, helpers_allowed)
                    }))
                    .unwrap_or_else(|_| {
                        let msg = "Task failed: internal error in the worker".to_owned();
                        (to_text(&json!({"success": 1, "msg": msg})), Some(msg))
                    });
                hosts.record(&job.host, failure, job.queued.elapsed());
                let mut frames = vec![job.host.into_bytes()];
                frames.extend(job.envelope);
                frames.push(text.into_bytes());
                if push.send_multipart(frames, 0).is_err() {
                    return;
                }
            });
        }
        let mut state = Loop {
            hosts,
            config,
            dealer,
            replies,
            jobs,
            pending: HashMap::new(),
            order: VecDeque::new(),
            running: HashMap::new(),
            total_running: 0,
        };
        let outcome = serve(&mut state, management, status, stop);
        // Closing the channel ends the threads once they are idle.
        drop(state.jobs);
        outcome
    })
}

fn serve(
    state: &mut Loop<'_>,
    management: Option<&zmq::Socket>,
    status: Option<&Status<'_>>,
    stop: &Stop,
) -> Result<(), Error> {
    let mut draining_since: Option<Instant> = None;
    loop {
        if stop.is_set() && draining_since.is_none() {
            draining_since = Some(Instant::now());
        }
        if let Some(since) = draining_since {
            // Finish the requests in hand, bounded by one task's timeout.
            let limit =
                Duration::from_millis(state.config.worker.timeout_ms) + Duration::from_secs(1);
            if !state.busy() || since.elapsed() > limit {
                return Ok(());
            }
        }
        let accepting = draining_since.is_none();
        let mut items = vec![
            state.replies.as_poll_item(zmq::POLLIN),
            state.dealer.as_poll_item(if accepting {
                zmq::POLLIN
            } else {
                zmq::PollEvents::empty()
            }),
        ];
        if let Some(management) = management {
            items.push(management.as_poll_item(zmq::POLLIN));
        }
        match zmq::poll(&mut items, 250) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        }
        let (replies_ready, requests_ready) = (items[0].is_readable(), items[1].is_readable());
        let managed = items.get(2).is_some_and(|item| item.is_readable());
        if replies_ready {
            state.take_replies()?;
        }
        if requests_ready && accepting {
            state.take_requests()?;
        }
        if managed {
            if let (Some(management), Some(status)) = (management, status) {
                let request = management.recv_bytes(0)?;
                let reply = match mgmt::command(&request, "Unknown method name received") {
                    Command::Status => status.reply(state.hosts),
                    Command::Shutdown => {
                        stop.set();
                        mgmt::shutdown_reply()
                    }
                    Command::Reply(text) => text,
                };
                management.send(reply.as_bytes(), 0)?;
            }
        }
        state.dispatch();
    }
}
