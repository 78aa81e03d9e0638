//! The vSphere agent: vPoller's tasks run in this process, straight against
//! one vCenter or ESXi host, with the replies a py-vpoller 0.7.3 worker sends.
//!
//! ```no_run
//! let agent = vpoller::Agent::new("vc01.example.org", "root", "p4ssw0rd")?;
//! agent.connect()?;
//! let reply = agent.run(r#"{"method": "vm.discover"}"#);
//! println!("{reply}");
//! # Ok::<(), vpoller::Error>(())
//! ```
//!
//! Knows nothing of ZeroMQ or C: the worker and the C ABI build on it.
//!
//! The modules, each importing only those listed after it:
//! - `tasks`: the task table (name, required keys, function, Zabbix form)
//!   and the worker's checks; over the task families;
//! - the task families `relations`, `perf`, `service` (about, events,
//!   sessions), `alarms`, `guest`, `snapshots` and `health`, which import
//!   none of each other, only the building blocks below;
//! - `inventory`: discover, find, get and service reads, the building blocks;
//! - `request` (the checked message and how a task fails), `python` (how
//!   py-vpoller spells values), `reply` (the reply text) and `lookup` (the
//!   cache of object lookups).
//!
//! All of them may use [`Agent`] (its connection and caches) and
//! `crate::vsphere`, which knows nothing of the agent.

mod alarms;
mod guest;
mod health;
mod inventory;
mod lookup;
pub(crate) mod mirror;
pub(crate) mod perf;
mod python;
pub(crate) mod reads;
mod relations;
pub(crate) mod reply;
pub(crate) use mirror::release_free_memory;
pub(crate) mod request;
mod service;
mod snapshots;
pub(crate) mod tasks;

use crate::error::Error;
use crate::sync::Lock;
use crate::vsphere::session::Connection;
use crate::vsphere::soap::{deadline_after, Endpoint};
use crate::vsphere::Verification;
use lookup::LookupCache;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use tasks::task_names;
pub(crate) use tasks::ZabbixForm;

/// The port of the vSphere API unless another is given.
pub const DEFAULT_PORT: u16 = 443;
/// How long connecting to the vSphere host may take, unless set.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long one task may take in all, unless set.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// How long an object lookup (name to object) is remembered, unless set.
pub const DEFAULT_CACHE_TTL_S: u64 = 300;
/// How long a mirrored property nobody asks for stays mirrored, unless set.
pub const DEFAULT_MIRROR_IDLE_S: u64 = 900;
/// How many property values (objects times properties) one host's mirror
/// may hold, unless set: about 200 MB at the sizes measured.
pub const DEFAULT_MIRROR_MAX_VALUES: u64 = 1_000_000;
/// The longest `mirror_idle_s` accepted: one week.
pub const MAX_MIRROR_IDLE_S: u64 = 604_800;
/// The largest `mirror_max_values` accepted: a hundred times the default.
pub const MAX_MIRROR_MAX_VALUES: u64 = 100_000_000;
/// The longest timeout (connecting, or one task) accepted anywhere, in
/// milliseconds: one hour. Larger values are refused with an error, so that
/// no deadline can overflow.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// How an [`Agent`] reaches its vSphere host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOptions {
    /// The HTTPS port of the vSphere API (443).
    pub port: u16,
    /// How the host's certificate is checked (the system's roots).
    pub verification: Verification,
    /// Bound on connecting, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Bound on one task, every call it makes included, in milliseconds.
    pub timeout_ms: u64,
    /// How long object lookups (and the performance counter and interval
    /// tables) are cached, in seconds; 0 turns the cache off.
    pub cache_ttl_s: u64,
    /// Whether the agent keeps a live mirror of the properties asked for
    /// (on): answers come from memory while its update stream is alive.
    /// Off: every task asks the vSphere host, as py-vpoller does.
    pub mirror: bool,
    /// How long a mirrored property nobody asked for stays in the mirror,
    /// in seconds.
    pub mirror_idle_s: u64,
    /// The most property values (objects times properties) the mirror
    /// holds; properties beyond it are read from the host on every request.
    pub mirror_max_values: u64,
}

impl AgentOptions {
    /// Refuses options no agent can use: a timeout above [`MAX_TIMEOUT_MS`],
    /// mirror limits of 0 or above [`MAX_MIRROR_IDLE_S`] and
    /// [`MAX_MIRROR_MAX_VALUES`].
    fn check(&self) -> Result<(), Error> {
        for (name, value, max) in [
            ("mirror_idle_s", self.mirror_idle_s, MAX_MIRROR_IDLE_S),
            (
                "mirror_max_values",
                self.mirror_max_values,
                MAX_MIRROR_MAX_VALUES,
            ),
        ] {
            if value == 0 || value > max {
                return Err(Error::InvalidArgument(format!(
                    "{name} is {value}, not between 1 and {max} (mirror: false turns the mirror off)"
                )));
            }
        }
        for (name, value) in [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if value > MAX_TIMEOUT_MS {
                return Err(Error::InvalidArgument(format!(
                    "{name} is {value}, more than the {MAX_TIMEOUT_MS} ms (one hour) allowed"
                )));
            }
        }
        Ok(())
    }
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            port: DEFAULT_PORT,
            verification: Verification::SystemRoots,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            cache_ttl_s: DEFAULT_CACHE_TTL_S,
            mirror: true,
            mirror_idle_s: DEFAULT_MIRROR_IDLE_S,
            mirror_max_values: DEFAULT_MIRROR_MAX_VALUES,
        }
    }
}

/// An agent for one vSphere host. Share it between threads: requests run in
/// parallel over a pool of keep-alive connections, on one login.
pub struct Agent {
    host: String,
    user: String,
    password: String,
    options: Mutex<AgentOptions>,
    /// Made from the options on first use, again after they change.
    connection: Mutex<Option<Arc<Connection>>>,
    /// `options.timeout_ms`, read by every task without taking the lock.
    timeout_ms: AtomicU64,
    cache: LookupCache,
    /// The performance counter and interval tables.
    perf: perf::TableCache,
    /// `options.mirror`, read by every task without taking the lock.
    mirror_on: std::sync::atomic::AtomicBool,
    /// The live mirror of the host's properties.
    mirror: mirror::Mirror,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Agent")
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent for `host` (a name or address, optionally with `:port`),
    /// logging in as `user`. Nothing is sent until [`Agent::connect`] or the
    /// first task.
    pub fn new(host: &str, user: &str, password: &str) -> Result<Agent, Error> {
        Agent::with_options(host, user, password, AgentOptions::default())
    }

    /// Like [`Agent::new`], with options; refuses a timeout above
    /// [`MAX_TIMEOUT_MS`] (`Error::InvalidArgument`).
    pub fn with_options(
        host: &str,
        user: &str,
        password: &str,
        mut options: AgentOptions,
    ) -> Result<Agent, Error> {
        options.check()?;
        let host = split_port(host, &mut options)?;
        let agent = Agent {
            host,
            user: user.to_owned(),
            password: password.to_owned(),
            cache: LookupCache::new(Duration::from_secs(options.cache_ttl_s)),
            timeout_ms: AtomicU64::new(options.timeout_ms),
            mirror_on: std::sync::atomic::AtomicBool::new(options.mirror),
            mirror: mirror::Mirror::new(
                Duration::from_secs(options.mirror_idle_s),
                options.mirror_max_values,
            ),
            options: Mutex::new(options),
            connection: Mutex::new(None),
            perf: perf::TableCache::default(),
        };
        // Checks the TLS settings (a CA file that cannot be read) at once.
        agent.connection()?;
        Ok(agent)
    }

    /// The vSphere host this agent talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The agent's options.
    pub fn options(&self) -> AgentOptions {
        self.options.locked().clone()
    }

    /// Replaces the options; the next request uses them (and logs in again
    /// when how to reach the host changed). Options it refuses (a timeout
    /// above [`MAX_TIMEOUT_MS`], an unreadable CA file) leave the old ones.
    pub fn set_options(&self, options: AgentOptions) -> Result<(), Error> {
        options.check()?;
        let endpoint_changed = {
            let current = self.options.locked();
            current.port != options.port
                || current.verification != options.verification
                || current.connect_timeout_ms != options.connect_timeout_ms
        };
        if endpoint_changed {
            let connection = Arc::new(Connection::new(
                self.endpoint(&options),
                &self.user,
                &self.password,
            )?);
            *self.connection.locked() = Some(connection);
            self.cache.clear();
            self.perf.clear();
        }
        // Off before the follower stops, so that no task starts another.
        self.mirror_on.store(options.mirror, Ordering::Relaxed);
        if endpoint_changed || !options.mirror {
            self.mirror.reset();
        }
        if !options.mirror {
            self.perf.clear();
        }
        self.mirror.set_limits(
            Duration::from_secs(options.mirror_idle_s),
            options.mirror_max_values,
        );
        self.mirror_on.store(options.mirror, Ordering::Relaxed);
        self.cache.set_ttl(Duration::from_secs(options.cache_ttl_s));
        self.timeout_ms.store(options.timeout_ms, Ordering::Relaxed);
        *self.options.locked() = options;
        Ok(())
    }

    fn endpoint(&self, options: &AgentOptions) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: options.port,
            verification: options.verification.clone(),
            connect_timeout: Duration::from_millis(options.connect_timeout_ms.max(1)),
        }
    }

    pub(crate) fn connection(&self) -> Result<Arc<Connection>, Error> {
        let mut slot = self.connection.locked();
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let options = self.options();
        let connection = Arc::new(Connection::new(
            self.endpoint(&options),
            &self.user,
            &self.password,
        )?);
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Whether tasks may be answered from the mirror.
    fn mirror_on(&self) -> bool {
        self.mirror_on.load(Ordering::Relaxed)
    }

    /// The mirror's state and counters, with the SOAP calls made so far
    /// by method, as JSON (the worker's `status` shows it per host).
    pub fn mirror_status(&self) -> Value {
        let calls = self
            .connection
            .locked()
            .as_ref()
            .map(|connection| connection.calls())
            .unwrap_or_default();
        let mut status = self.mirror.stats().to_json(&calls);
        status["enabled"] = Value::Bool(self.mirror_on());
        status
    }

    /// What the mirror's update stream says of the host: alive (`Some(true)`),
    /// down (`Some(false)`), or nothing (`None`: the mirror is off, not
    /// following yet, or syncing).
    fn mirror_liveness(&self) -> Option<bool> {
        if !self.mirror_on() {
            return None;
        }
        let connection = self.connection.locked().clone()?;
        self.mirror.liveness(&connection)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed).max(1))
    }

    fn deadline(&self) -> Instant {
        deadline_after(self.timeout())
    }

    /// Logs in now, so that a wrong password, an unreachable host or an
    /// untrusted certificate shows at once. Tasks log in by themselves too.
    pub fn connect(&self) -> Result<(), Error> {
        self.connection()?.connect(self.deadline())
    }

    /// Runs the task request `msg` (JSON text, e.g.
    /// `{"method": "vm.get", "name": "vm01", "properties": ["runtime.powerState"]}`)
    /// and returns the reply text a py-vpoller worker would send, failures
    /// included. `hostname` in the message is not needed: the agent has one host.
    pub fn run(&self, msg: &str) -> String {
        self.answer(msg).into_text()
    }

    /// Like [`Agent::run`], with the reply as a JSON value.
    pub fn run_json(&self, msg: &str) -> Value {
        self.answer(msg).into_value()
    }

    fn answer(&self, msg: &str) -> reply::Answer {
        match serde_json::from_str::<Value>(msg) {
            Ok(parsed) => self.answer_value(&parsed),
            Err(_) => reply::Answer::Json(reply::failure("Invalid message received")),
        }
    }

    /// Runs a task request given as a JSON value.
    pub fn run_value(&self, msg: &Value) -> Value {
        self.answer_value(msg).into_value()
    }

    /// The reply to a task request given as a JSON value, before it
    /// becomes text (the server reads its success from it).
    pub(crate) fn answer_value(&self, msg: &Value) -> reply::Answer {
        let Some(fields) = msg.as_object() else {
            return reply::Answer::Json(reply::failure(format!(
                "Expected a JSON message, received {}",
                python::class(msg)
            )));
        };
        self.counted(|| tasks::run(self, fields))
    }

    /// Runs `task`, counting whether it was answered without a SOAP call.
    fn counted<T>(&self, task: impl FnOnce() -> T) -> T {
        let before = crate::vsphere::soap::calls_on_this_thread();
        let outcome = task();
        let from_memory = crate::vsphere::soap::calls_on_this_thread() == before;
        self.mirror.count_answer(from_memory);
        outcome
    }

    /// Runs task `method` with the fields of `msg` (an object; the method
    /// given here wins over one in `msg`).
    pub fn run_task(&self, method: &str, msg: &Map<String, Value>) -> Value {
        let mut fields = msg.clone();
        fields.insert("method".into(), Value::String(method.to_owned()));
        self.counted(|| tasks::run(self, &fields)).into_value()
    }
}

/// The reply py-vpoller's worker gives a message before it looks for the
/// vSphere host: not an object, or no known task. `None` when it passes.
pub(crate) fn precheck(msg: &Value) -> Option<Value> {
    let Some(fields) = msg.as_object() else {
        return Some(reply::failure(format!(
            "Expected a JSON message, received {}",
            python::class(msg)
        )));
    };
    let method = fields.get("method").and_then(Value::as_str);
    if method.and_then(tasks::find).is_none() {
        return Some(reply::failure("Unknown or missing task/method name"));
    }
    None
}

/// What py-vpoller's Zabbix helper makes of the result of task `method`;
/// `None` for a method it does not know, or no task at all.
pub(crate) fn zabbix_form(method: &str) -> Option<ZabbixForm> {
    tasks::find(method)?.zabbix
}

/// Takes a `:port` off `host` into `options.port`.
fn split_port(host: &str, options: &mut AgentOptions) -> Result<String, Error> {
    let host = host.trim();
    if host.is_empty() {
        return Err(Error::InvalidArgument("host is empty".into()));
    }
    // [v6]:port, name:port, or a bare IPv6 address (more than one colon).
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::InvalidArgument(format!("bad host {host:?}")))?;
        (address, after.strip_prefix(':'))
    } else if host.matches(':').count() == 1 {
        let (name, port) = host.split_once(':').unwrap_or((host, ""));
        (name, Some(port))
    } else {
        (host, None)
    };
    if let Some(port) = port {
        options.port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| Error::InvalidArgument(format!("bad port in host {host:?}")))?;
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_takes_an_optional_port() {
        let mut options = AgentOptions::default();
        assert_eq!(split_port("vc01:8443", &mut options).unwrap(), "vc01");
        assert_eq!(options.port, 8443);
        let mut options = AgentOptions::default();
        assert_eq!(split_port("[::1]:9443", &mut options).unwrap(), "::1");
        assert_eq!(options.port, 9443);
        let mut options = AgentOptions::default();
        assert_eq!(split_port("fe80::1", &mut options).unwrap(), "fe80::1");
        assert_eq!(options.port, 443);
        assert!(split_port("vc01:http", &mut AgentOptions::default()).is_err());
        assert!(split_port(" ", &mut AgentOptions::default()).is_err());
    }

    #[test]
    fn timeouts_above_an_hour_are_refused() {
        let options = |timeout_ms, connect_timeout_ms| AgentOptions {
            verification: Verification::Insecure,
            timeout_ms,
            connect_timeout_ms,
            ..AgentOptions::default()
        };
        let refused = |timeout_ms, connect_timeout_ms| {
            Agent::with_options(
                "127.0.0.1:9",
                "u",
                "p",
                options(timeout_ms, connect_timeout_ms),
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            refused(MAX_TIMEOUT_MS + 1, 1_000),
            "Invalid argument: timeout_ms is 3600001, more than the 3600000 ms (one hour) allowed"
        );
        assert_eq!(
            refused(1_000, u64::MAX),
            "Invalid argument: connect_timeout_ms is 18446744073709551615, more than the 3600000 ms (one hour) allowed"
        );
        let agent = Agent::with_options(
            "127.0.0.1:9",
            "u",
            "p",
            options(MAX_TIMEOUT_MS, MAX_TIMEOUT_MS),
        )
        .unwrap();
        let kept = agent.options();
        let error = agent.set_options(options(u64::MAX, 1_000)).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
        assert_eq!(agent.options(), kept);
        assert!(agent.deadline() > Instant::now());
    }

    #[test]
    fn mirror_limits_are_bounded() {
        let options = |mirror_idle_s, mirror_max_values| AgentOptions {
            verification: Verification::Insecure,
            mirror_idle_s,
            mirror_max_values,
            ..AgentOptions::default()
        };
        let refused = |idle, values| {
            Agent::with_options("127.0.0.1:9", "u", "p", options(idle, values))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(0, 10),
            "Invalid argument: mirror_idle_s is 0, not between 1 and 604800 (mirror: false turns the mirror off)"
        );
        assert!(refused(60, MAX_MIRROR_MAX_VALUES + 1).contains("mirror_max_values"));
        assert!(refused(MAX_MIRROR_IDLE_S + 1, 10).contains("mirror_idle_s"));
        assert!(
            Agent::with_options("127.0.0.1:9", "u", "p", options(MAX_MIRROR_IDLE_S, 1)).is_ok()
        );
    }

    #[test]
    fn bad_messages_get_the_workers_replies() {
        let agent = Agent::with_options(
            "127.0.0.1:9",
            "u",
            "s3cret",
            AgentOptions {
                verification: Verification::Insecure,
                ..AgentOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            agent.run("not json"),
            r#"{"success": 1, "msg": "Invalid message received"}"#
        );
        assert_eq!(
            agent.run("[1]"),
            r#"{"success": 1, "msg": "Expected a JSON message, received <class 'list'>"}"#
        );
        assert_eq!(
            agent.run(r#"{"method": "no.such"}"#),
            r#"{"success": 1, "msg": "Unknown or missing task/method name"}"#
        );
        assert_eq!(
            agent.run(r#"{"method": "vm.get", "name": "x"}"#),
            r#"{"success": 1, "msg": "Invalid task request"}"#
        );
        assert!(!format!("{agent:?}").contains("s3cret"));
    }
}
