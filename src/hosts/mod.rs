//! The vSphere hosts a worker (or the local mode) serves: the registry
//! (vconnector's SQLite database, [`registry`]) and one [`Agent`] per
//! enabled host, shared by every thread that asks for it.
//!
//! A host added while the process runs is found without a restart: an
//! unknown host name reads the registry again (at most every two seconds).
//! A row that cannot be served (a malformed fingerprint, an unreadable CA
//! file, however it got into the database) answers the requests for that
//! host with a failure naming the reason, logged once, and every other host
//! is served.
//!
//! A host served without certificate checks is logged once as its row
//! appears (at start, or when found later): as a warning, with the command
//! that fixes it, when the row has no TLS setting (one `vconnector-cli`
//! wrote: py-vpoller's behaviour is kept), and as information when the
//! checks were turned off on purpose (`hosts add --insecure`).

pub mod registry;

use crate::agent::reply::{failure, to_text};
use crate::agent::{Agent, AgentOptions};
use crate::error::Error;
use crate::sync::Lock;
use crate::vsphere::Verification;
pub use registry::{Host, Registry, Tls};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an unknown host name may read the registry again.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

pub use crate::agent::{MAX_MIRROR_IDLE_S, MAX_MIRROR_MAX_VALUES};

/// What every host's agent is given (the rest of its [`AgentOptions`],
/// port and certificate checks, comes from its row in the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentSettings {
    /// Bound on one task, in milliseconds.
    pub timeout_ms: u64,
    /// How long lookups are cached, in seconds (0: not at all).
    pub cache_ttl_s: u64,
    /// Whether each agent keeps a live mirror of the properties asked for
    /// (off: every task asks the vSphere host, as py-vpoller does).
    pub mirror: bool,
    /// How long a mirrored property nobody asks for stays, in seconds.
    pub mirror_idle_s: u64,
    /// The most property values one host's mirror holds.
    pub mirror_max_values: u64,
}

impl AgentSettings {
    /// The settings of `options`.
    pub fn of(options: &AgentOptions) -> AgentSettings {
        AgentSettings {
            timeout_ms: options.timeout_ms,
            cache_ttl_s: options.cache_ttl_s,
            mirror: options.mirror,
            mirror_idle_s: options.mirror_idle_s,
            mirror_max_values: options.mirror_max_values,
        }
    }

    /// The agent's defaults with these settings.
    pub fn options(&self) -> AgentOptions {
        AgentOptions {
            timeout_ms: self.timeout_ms,
            cache_ttl_s: self.cache_ttl_s,
            mirror: self.mirror,
            mirror_idle_s: self.mirror_idle_s,
            mirror_max_values: self.mirror_max_values,
            ..AgentOptions::default()
        }
    }
}

/// The agent's defaults.
impl Default for AgentSettings {
    fn default() -> AgentSettings {
        AgentSettings::of(&AgentOptions::default())
    }
}

/// One enabled row of the registry and what serves it.
struct Entry {
    row: Host,
    /// The agent, or why the row cannot be served.
    agent: Result<Arc<Agent>, String>,
}

/// A request routed to its host's agent.
pub(crate) struct Routed {
    /// The request.
    pub msg: Value,
    /// Its `hostname`.
    pub host: String,
    /// That host's agent.
    pub agent: Arc<Agent>,
}

/// The registered hosts and their agents.
pub struct Hosts {
    db: String,
    /// Locked only to read or replace it, taking no other lock meanwhile.
    settings: Mutex<AgentSettings>,
    entries: Mutex<HashMap<String, Entry>>,
    /// When the registry was last read; held while reading it, so that
    /// threads that find a name unknown read it once between them.
    last_reload: Mutex<Option<Instant>>,
    /// Agents of hosts that left the registry, to be logged out by
    /// [`Hosts::release_retired`].
    retired: Mutex<Vec<Arc<Agent>>>,
}

impl Hosts {
    /// Reads the registry at `db`; an unreadable registry is an error here,
    /// a row that cannot be served is not (see the module's documentation).
    pub fn open(db: &str, settings: AgentSettings) -> Result<Hosts, Error> {
        let hosts = Hosts {
            db: db.to_owned(),
            settings: Mutex::new(settings),
            entries: Mutex::new(HashMap::new()),
            last_reload: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
        };
        hosts.reload(&mut hosts.last_reload.locked())?;
        Ok(hosts)
    }

    fn options(&self, host: &Host) -> AgentOptions {
        let verification = match &host.tls {
            Tls::Unchecked | Tls::Insecure => Verification::Insecure,
            Tls::SystemRoots => Verification::SystemRoots,
            Tls::CaFile(path) => Verification::CaFile(path.into()),
            Tls::Fingerprint(digest) => Verification::Fingerprint(digest.clone()),
        };
        AgentOptions {
            port: host.port.unwrap_or(crate::agent::DEFAULT_PORT),
            verification,
            ..self.settings().options()
        }
    }

    /// What every host's agent is given.
    pub fn settings(&self) -> AgentSettings {
        *self.settings.locked()
    }

    /// Gives every host's agent `settings`: those made from now on, and
    /// those there are (from their next request on; nobody logs in again).
    /// An agent that refuses them keeps its old options, and the first
    /// refusal is the result.
    pub fn set_settings(&self, settings: AgentSettings) -> Result<(), Error> {
        // Held so that no registry read makes an agent with the old settings
        // meanwhile.
        let _reading = self.last_reload.locked();
        *self.settings.locked() = settings;
        let entries = self.entries.locked();
        let mut outcome = Ok(());
        for entry in entries.values() {
            if let Ok(agent) = &entry.agent {
                outcome = outcome.and(agent.set_options(self.options(&entry.row)));
            }
        }
        outcome
    }

    /// Reads the registry: agents for new or changed enabled rows, none for
    /// removed or disabled ones. Agents are made without holding the table,
    /// so requests for other hosts go on meanwhile, and those that leave are
    /// retired, not dropped here: dropping one logs out, which may wait on
    /// the network, and the thread that reads the registry is the one that
    /// routes the requests (see [`Hosts::release_retired`]).
    fn reload(&self, last_reload: &mut Option<Instant>) -> Result<(), Error> {
        *last_reload = Some(Instant::now());
        let registered: Vec<Host> = Registry::open(&self.db)?
            .list()?
            .into_iter()
            .filter(|host| host.enabled)
            .collect();
        // New or changed rows, and whether their TLS setting is new (a row
        // whose password changed is not logged as unchecked again).
        let wanted: Vec<(Host, bool)> = {
            let entries = self.entries.locked();
            registered
                .iter()
                .filter_map(|host| match entries.get(&host.host) {
                    None => Some((host.clone(), true)),
                    Some(entry) if entry.row != *host => {
                        Some((host.clone(), entry.row.tls != host.tls))
                    }
                    Some(_) => None,
                })
                .collect()
        };
        let made: Vec<(String, Entry)> = wanted
            .into_iter()
            .map(|(row, new_tls)| {
                if new_tls {
                    log_unchecked(&row);
                }
                let agent = self.agent_for(&row);
                (row.host.clone(), Entry { row, agent })
            })
            .collect();
        let gone: Vec<Entry> = {
            let mut entries = self.entries.locked();
            // Rows removed or disabled leave; changed ones are replaced.
            let leaving: Vec<String> = entries
                .keys()
                .filter(|name| !registered.iter().any(|host| &host.host == *name))
                .cloned()
                .collect();
            let mut gone: Vec<Entry> = leaving
                .iter()
                .filter_map(|name| entries.remove(name))
                .collect();
            for (name, entry) in made {
                gone.extend(entries.insert(name, entry));
            }
            gone
        };
        self.retired
            .locked()
            .extend(gone.into_iter().filter_map(|entry| entry.agent.ok()));
        Ok(())
    }

    /// Logs out of the hosts that left the registry, on the calling thread
    /// (it may wait up to a few seconds per host on the network): for a
    /// thread that has answered its request and has nothing else to do.
    pub(crate) fn release_retired(&self) {
        let retired = std::mem::take(&mut *self.retired.locked());
        drop(retired);
    }

    /// The agent of one row, or why there is none (logged here, once per
    /// row as it stands in the registry).
    fn agent_for(&self, row: &Host) -> Result<Arc<Agent>, String> {
        let made = row.check().and_then(|()| {
            Agent::with_options(&row.host, &row.user, &row.password, self.options(row))
        });
        match made {
            Ok(agent) => Ok(Arc::new(agent)),
            Err(error) => {
                let error = match error {
                    Error::InvalidArgument(reason) => reason,
                    other => other.to_string(),
                };
                let reason = format!("the registry entry of {} cannot be used: {error}", row.host);
                log::error!("{reason}");
                Err(reason)
            }
        }
    }

    /// The agent of `name`: `None` for a host the registry does not have
    /// (after reading it again, at most every two seconds), `Err` with the
    /// reason for a row that cannot be served.
    pub(crate) fn agent(&self, name: &str) -> Option<Result<Arc<Agent>, String>> {
        if let Some(found) = self.lookup(name) {
            return Some(found);
        }
        let mut last_reload = self.last_reload.locked();
        // Another thread may have read the registry while this one waited.
        if let Some(found) = self.lookup(name) {
            return Some(found);
        }
        if last_reload.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
            return None;
        }
        if let Err(error) = self.reload(&mut last_reload) {
            log::error!("{error}");
        }
        drop(last_reload);
        self.lookup(name)
    }

    /// The agents serving hosts now, by host name.
    pub(crate) fn agents(&self) -> Vec<(String, Arc<Agent>)> {
        let entries = self.entries.locked();
        let mut agents: Vec<(String, Arc<Agent>)> = entries
            .iter()
            .filter_map(|(name, entry)| {
                entry
                    .agent
                    .as_ref()
                    .ok()
                    .map(|agent| (name.clone(), agent.clone()))
            })
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        agents
    }

    fn lookup(&self, name: &str) -> Option<Result<Arc<Agent>, String>> {
        self.entries
            .locked()
            .get(name)
            .map(|entry| entry.agent.clone())
    }

    /// What a worker does with a request's text before any task runs, as
    /// py-vpoller's worker checks it: the request and its host's agent, or
    /// the refusal's reply text (not JSON, not an object, no known task, no
    /// known vSphere host, a host whose registry row cannot be served).
    pub(crate) fn route(&self, body: &[u8]) -> Result<Routed, String> {
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            log::warn!("invalid client message received");
            return Err(to_text(&failure("Invalid message received")));
        };
        if let Some(refusal) = crate::agent::precheck(&msg) {
            return Err(to_text(&refusal));
        }
        #[cfg(test)]
        crate::test_hooks::panic_at("reader", &msg);
        let host = msg
            .get("hostname")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(found) = host.as_deref().and_then(|host| self.agent(host)) else {
            return Err(to_text(&failure("Unknown or missing agent name")));
        };
        match found {
            Ok(agent) => Ok(Routed {
                host: host.unwrap_or_default(),
                msg,
                agent,
            }),
            Err(reason) => {
                let method = msg
                    .get("method")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Err(to_text(&failure(format!("Task {method} failed: {reason}"))))
            }
        }
    }
}

/// Logs that `row`'s certificate is not checked, if it is not: a warning
/// that says how to fix it when no TLS setting was chosen.
fn log_unchecked(row: &Host) {
    match row.tls {
        Tls::Unchecked => log::warn!(
            "{}: the certificate is not verified (a vconnector-cli row: no TLS setting, \
             served as py-vpoller serves it); to verify it, run `vpoller-worker hosts add \
             -H {} -U {} --verify` (the system's roots), or with --ca-file FILE or \
             --fingerprint SHA256 instead of --verify; to keep it unverified without this \
             warning, add it with --insecure",
            row.host,
            shell_word(&row.host),
            shell_word(&row.user),
        ),
        Tls::Insecure => log::info!(
            "{}: the certificate is not verified (added with --insecure)",
            row.host
        ),
        Tls::SystemRoots | Tls::CaFile(_) | Tls::Fingerprint(_) => {}
    }
}

/// `text` as one word of a shell command line: as it is when that is safe,
/// otherwise single-quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpoller_standin::fake_vsphere::{Answer, FakeVSphere};

    /// A scratch directory for a test (removed by the test) and the path of
    /// a registry in it.
    fn scratch_db(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("vpoller-hosts-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("v.db").to_str().unwrap().to_owned();
        (dir, db)
    }

    fn fake_host(name: &str, port: u16) -> Host {
        Host {
            host: name.into(),
            user: "root".into(),
            password: "pw".into(),
            enabled: true,
            port: Some(port),
            tls: Tls::Unchecked,
        }
    }

    /// A host removed from the registry is logged out of once the registry
    /// is read again; that logout (here one the server never answers) does
    /// not happen on the thread that reads the registry, and holds up no
    /// request for another host.
    #[test]
    fn a_slow_logout_does_not_stall_other_hosts() {
        let fake =
            FakeVSphere::with_defaults(|method, _| (method == "Logout").then_some(Answer::Hang));
        let (dir, db) = scratch_db("logout");
        let db = db.as_str();
        let registry = Registry::open(db).unwrap();
        // Two names for the one fake server.
        registry.add(&fake_host("127.0.0.1", fake.port)).unwrap();
        registry.add(&fake_host("localhost", fake.port)).unwrap();
        let settings = AgentSettings {
            timeout_ms: 10_000,
            cache_ttl_s: 0,
            ..AgentSettings::default()
        };
        let hosts = Hosts::open(db, settings).unwrap();
        let leaving = hosts.agent("127.0.0.1").unwrap().unwrap();
        leaving.connect().unwrap();
        drop(leaving);
        registry.remove("127.0.0.1").unwrap();
        // An unknown name reads the registry again, once the interval is over.
        std::thread::sleep(RELOAD_INTERVAL + Duration::from_millis(100));
        assert!(hosts.agent("not-registered").is_none());
        assert!(hosts.agent("127.0.0.1").is_none());
        // Read without a logout on the way.
        assert_eq!(fake.count("Logout"), 0);
        std::thread::scope(|scope| {
            let releasing = scope.spawn(|| hosts.release_retired());
            while fake.count("Logout") == 0 {
                assert!(!releasing.is_finished(), "released without a logout");
                std::thread::sleep(Duration::from_millis(5));
            }
            // The logout hangs (until the agent gives up on it after 2 s):
            // the other host is found and routed to meanwhile.
            assert!(matches!(hosts.agent("localhost"), Some(Ok(_))));
            assert!(hosts
                .route(br#"{"method": "about", "hostname": "localhost"}"#)
                .is_ok());
            assert!(
                !releasing.is_finished(),
                "the other host was found only after the logout ended"
            );
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// New settings reach the agents there are, which keep their own
    /// port and certificate checks, and those made later.
    #[test]
    fn settings_reach_every_agent() {
        let (dir, db) = scratch_db("set");
        let db = db.as_str();
        Registry::open(db)
            .unwrap()
            .add(&fake_host("vc01.example.org", 8443))
            .unwrap();
        let hosts = Hosts::open(db, AgentSettings::default()).unwrap();
        let agent = hosts.agent("vc01.example.org").unwrap().unwrap();
        assert_eq!(
            agent.options(),
            AgentOptions {
                port: 8443,
                verification: Verification::Insecure,
                ..AgentOptions::default()
            }
        );
        let settings = AgentSettings {
            timeout_ms: 5000,
            cache_ttl_s: 7,
            mirror: false,
            mirror_idle_s: 60,
            mirror_max_values: 1000,
        };
        hosts.set_settings(settings).unwrap();
        assert_eq!(hosts.settings(), settings);
        let changed = agent.options();
        assert_eq!(AgentSettings::of(&changed), settings);
        assert_eq!(
            (changed.port, changed.verification),
            (8443, Verification::Insecure)
        );
        let later = hosts.options(&fake_host("esx01", 443));
        assert_eq!(AgentSettings::of(&later), settings);
        assert_eq!(AgentSettings::of(&settings.options()), settings);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A row that cannot be served, however it got into the database, is
    /// a failure for its host alone.
    #[test]
    fn a_bad_row_fails_its_own_host_only() {
        let (dir, db) = scratch_db("bad");
        let db = db.as_str();
        let registry = Registry::open(db).unwrap();
        registry.add(&fake_host("good.example.org", 9)).unwrap();
        let raw = rusqlite::Connection::open(db).unwrap();
        let mixed = format!("a{}b", "é".repeat(31));
        raw.execute_batch(&format!(
            "INSERT INTO hosts VALUES ('bad.example.org', 'root', 'pw', 1);
             INSERT INTO vpoller_hosts VALUES ('bad.example.org', NULL, 'fingerprint', NULL, '{mixed}');"
        ))
        .unwrap();
        let settings = AgentSettings {
            timeout_ms: 10_000,
            cache_ttl_s: 0,
            ..AgentSettings::default()
        };
        let hosts = Hosts::open(db, settings).unwrap();
        let refusal = hosts
            .route(br#"{"method": "about", "hostname": "bad.example.org"}"#)
            .err()
            .unwrap();
        assert!(
            refusal.starts_with(r#"{"success": 1, "msg": "Task about failed: the registry entry of bad.example.org cannot be used: "#),
            "{refusal}"
        );
        assert!(refusal.contains("is not a SHA-256"), "{refusal}");
        assert!(hosts
            .route(br#"{"method": "about", "hostname": "good.example.org"}"#)
            .is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Each TLS setting gives the agent its check: none for a row without a
    /// setting (py-vpoller's behaviour) and for one added `--insecure`.
    #[test]
    fn tls_settings_become_the_agents_checks() {
        let (dir, db) = scratch_db("tls");
        let hosts = Hosts::open(&db, AgentSettings::default()).unwrap();
        let checks = |tls: Tls| {
            let mut row = fake_host("vc01.example.org", 443);
            row.tls = tls;
            hosts.options(&row).verification
        };
        assert_eq!(checks(Tls::Unchecked), Verification::Insecure);
        assert_eq!(checks(Tls::Insecure), Verification::Insecure);
        assert_eq!(checks(Tls::SystemRoots), Verification::SystemRoots);
        assert_eq!(
            checks(Tls::CaFile("/ca.pem".into())),
            Verification::CaFile("/ca.pem".into())
        );
        assert_eq!(
            checks(Tls::Fingerprint("ab".into())),
            Verification::Fingerprint("ab".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The command the warning suggests can be pasted into a shell.
    #[test]
    fn names_in_the_suggested_command_are_shell_words() {
        assert_eq!(shell_word("monitor@vsphere.local"), "monitor@vsphere.local");
        assert_eq!(shell_word(r"CORP\monitor"), r"'CORP\monitor'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
