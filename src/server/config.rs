//! The configuration file py-vpoller's proxy and worker read
//! (`/etc/vpoller/vpoller.conf`): INI sections `[proxy]`, `[worker]` and
//! `[cache]`, read as Python's ConfigParser reads them (`key = value` or
//! `key: value`, `#` and `;` comment lines, indented continuation lines,
//! case-insensitive keys), with py-vpoller's defaults; plus the settings this
//! worker adds (`threads`, `per_host`, `timeout`; `mirror`, `mirror_idle`,
//! `mirror_max_values`).

use crate::curve::PublicKey;
use crate::error::Error;
use crate::hosts::{AgentSettings, MAX_MIRROR_IDLE_S, MAX_MIRROR_MAX_VALUES};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the configuration file is unless `-f` names another.
pub const DEFAULT_CONFIG: &str = "/etc/vpoller/vpoller.conf";

/// The proxy's endpoints, and their CURVE keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Clients' REQ sockets connect here (ROUTER), `tcp://*:10123`.
    pub frontend: String,
    /// Workers connect here (DEALER), `tcp://*:10124`.
    pub backend: String,
    /// The management REP socket, `tcp://*:9999` (never CURVE: bind it
    /// where only its operators reach it).
    pub mgmt: String,
    /// `frontend_curve_secret_key`: the file of the frontend's CURVE
    /// secret key; set, clients must speak CURVE with its public key.
    pub frontend_curve_secret_key: Option<PathBuf>,
    /// `frontend_curve_allowed`: the file of the clients' public keys the
    /// frontend lets in (one per line); unset, any client that knows the
    /// frontend's public key.
    pub frontend_curve_allowed: Option<PathBuf>,
    /// `backend_curve_secret_key`: as `frontend_curve_secret_key`, for the
    /// workers' side.
    pub backend_curve_secret_key: Option<PathBuf>,
    /// `backend_curve_allowed`: the workers' public keys the backend lets in.
    pub backend_curve_allowed: Option<PathBuf>,
}

/// The worker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// vconnector's host registry (SQLite), `/var/lib/vconnector/vconnector.db`.
    pub db: String,
    /// The proxy's backend, `tcp://localhost:10123` (py-vpoller's default,
    /// which a deployment overrides with the backend's port).
    pub proxy: String,
    /// The management REP socket, `tcp://*:10000`.
    pub mgmt: String,
    /// The helpers a request may name (`vpoller.helpers.zabbix`, ...).
    pub helpers: Vec<String>,
    /// The task modules (py-vpoller needs `vpoller.vsphere.tasks`; here the
    /// tasks are built in and the setting is only reported).
    pub tasks: Vec<String>,
    /// Threads running tasks in one worker process (32).
    pub threads: usize,
    /// Of those, at most this many on one vSphere host at a time (8), so
    /// that a slow host leaves threads for the others.
    pub per_host: usize,
    /// Bound on one task, in milliseconds (60000).
    pub timeout_ms: u64,
    /// `proxy_curve_server_key`: the backend's CURVE public key (Z85); set,
    /// the worker speaks CURVE to the proxy.
    pub proxy_curve_server_key: Option<PublicKey>,
    /// `curve_secret_key`: the file of the worker's own CURVE secret key;
    /// unset, a fresh key pair is made at every start.
    pub curve_secret_key: Option<PathBuf>,
}

/// The `[cache]` section: py-vpoller's object lookup cache, and the agents'
/// mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Whether lookups are cached at all (`enabled`, no).
    pub enabled: bool,
    /// py-vpoller's bound on cached objects (the agent's cache needs none).
    pub maxsize: u64,
    /// Seconds a lookup is kept.
    pub ttl: u64,
    /// Minutes between py-vpoller's cache sweeps (the agent expires entries as it reads them).
    pub housekeeping: u64,
    /// Whether each host's agent keeps a live mirror of the properties asked
    /// for (`mirror`, on); off, every request asks vCenter, as py-vpoller
    /// does. `enabled` does not turn it off.
    pub mirror: bool,
    /// Seconds a mirrored property nobody asks for stays (`mirror_idle`, 900).
    pub mirror_idle_s: u64,
    /// The most property values one host's mirror holds (`mirror_max_values`,
    /// 1000000).
    pub mirror_max_values: u64,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// `[worker]`.
    pub worker: WorkerConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            proxy: ProxyConfig {
                frontend: "tcp://*:10123".into(),
                backend: "tcp://*:10124".into(),
                mgmt: "tcp://*:9999".into(),
                frontend_curve_secret_key: None,
                frontend_curve_allowed: None,
                backend_curve_secret_key: None,
                backend_curve_allowed: None,
            },
            worker: WorkerConfig {
                db: "/var/lib/vconnector/vconnector.db".into(),
                proxy: "tcp://localhost:10123".into(),
                mgmt: "tcp://*:10000".into(),
                helpers: Vec::new(),
                tasks: vec!["vpoller.vsphere.tasks".into()],
                threads: 32,
                per_host: 8,
                timeout_ms: 60_000,
                proxy_curve_server_key: None,
                curve_secret_key: None,
            },
            cache: CacheConfig {
                enabled: false,
                maxsize: 0,
                ttl: 3600,
                housekeeping: 480,
                mirror: true,
                mirror_idle_s: crate::agent::DEFAULT_MIRROR_IDLE_S,
                mirror_max_values: crate::agent::DEFAULT_MIRROR_MAX_VALUES,
            },
        }
    }
}

/// Sections of an INI text: section name to (key to value), keys lower-cased.
type Sections = HashMap<String, HashMap<String, String>>;

fn parse(text: &str) -> Result<Sections, Error> {
    let mut sections = Sections::new();
    let mut section: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let bad =
            |what: &str| Error::InvalidArgument(format!("line {}: {what}: {raw:?}", number + 1));
        if line.starts_with(char::is_whitespace) {
            // A continuation of the previous value.
            let (Some(name), Some(key)) = (&section, &last_key) else {
                return Err(bad("indented line outside a value"));
            };
            if let Some(value) = sections.get_mut(name).and_then(|keys| keys.get_mut(key)) {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| bad("a section header without ]"))?;
            sections.entry(name.to_owned()).or_default();
            section = Some(name.to_owned());
            last_key = None;
            continue;
        }
        let Some(name) = &section else {
            return Err(bad("a value before the first [section]"));
        };
        let at = trimmed
            .find(['=', ':'])
            .ok_or_else(|| bad("neither key = value nor key: value"))?;
        let key = trimmed[..at].trim().to_lowercase();
        let value = trimmed[at + 1..].trim().to_owned();
        sections
            .entry(name.clone())
            .or_default()
            .insert(key.clone(), value);
        last_key = Some(key);
    }
    Ok(sections)
}

/// A comma-separated list, items trimmed, empty ones left out.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// ConfigParser's booleans.
fn boolean(key: &str, value: &str) -> Result<bool, Error> {
    match value.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(Error::InvalidArgument(format!(
            "{key} must be a boolean (yes/no, true/false, on/off, 1/0), not {value:?}"
        ))),
    }
}

/// Threads (or per-host threads) one worker loop may have.
const MAX_THREADS: usize = 4096;

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("{key} must be a whole number, not {value:?}")))
}

/// `value` when it is at most `bound`; the error names the setting and the bound.
fn at_most<T: PartialOrd + std::fmt::Display>(key: &str, value: T, bound: T) -> Result<T, Error> {
    if value > bound {
        return Err(Error::InvalidArgument(format!(
            "{key} must be at most {bound}, not {value}"
        )));
    }
    Ok(value)
}

/// A mirror setting: a whole number from 1 to `bound` (0 would not turn the
/// mirror off, and is refused rather than mistaken for that).
fn mirror_number(key: &str, value: &str, bound: u64) -> Result<u64, Error> {
    match at_most(key, number(key, value)?, bound)? {
        0 => Err(Error::InvalidArgument(format!(
            "{key} must be at least 1, not 0 (mirror = off turns the mirror off)"
        ))),
        number => Ok(number),
    }
}

impl Config {
    /// Reads `path`. A missing file is py-vpoller's error.
    pub fn load(path: &Path) -> Result<Config, Error> {
        if !path.exists() {
            return Err(Error::InvalidArgument(format!(
                "Configuration file {} does not exist",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|error| {
            Error::InvalidArgument(format!("cannot read {}: {error}", path.display()))
        })?;
        Config::parse(&text)
            .map_err(|error| Error::InvalidArgument(format!("{}: {error}", path.display())))
    }

    /// Reads configuration text.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let sections = parse(text)?;
        let mut config = Config::default();
        let get = |section: &str, key: &str| -> Option<&String> {
            sections
                .get(section)
                .and_then(|keys| keys.get(key))
                .filter(|value| !value.is_empty())
        };
        if let Some(value) = get("proxy", "frontend") {
            config.proxy.frontend = value.clone();
        }
        if let Some(value) = get("proxy", "backend") {
            config.proxy.backend = value.clone();
        }
        if let Some(value) = get("proxy", "mgmt") {
            config.proxy.mgmt = value.clone();
        }
        let path = |section: &str, key: &str| get(section, key).map(PathBuf::from);
        let proxy = &mut config.proxy;
        proxy.frontend_curve_secret_key = path("proxy", "frontend_curve_secret_key");
        proxy.frontend_curve_allowed = path("proxy", "frontend_curve_allowed");
        proxy.backend_curve_secret_key = path("proxy", "backend_curve_secret_key");
        proxy.backend_curve_allowed = path("proxy", "backend_curve_allowed");
        for side in ["frontend", "backend"] {
            if get("proxy", &format!("{side}_curve_allowed")).is_some()
                && get("proxy", &format!("{side}_curve_secret_key")).is_none()
            {
                return Err(Error::InvalidArgument(format!(
                    "{side}_curve_allowed needs {side}_curve_secret_key (the {side}'s CURVE key)"
                )));
            }
        }
        let worker = &mut config.worker;
        if let Some(value) = get("worker", "proxy_curve_server_key") {
            worker.proxy_curve_server_key =
                Some(PublicKey::from_z85(value).map_err(|error| match error {
                    Error::InvalidArgument(reason) => {
                        Error::InvalidArgument(format!("proxy_curve_server_key: {reason}"))
                    }
                    other => other,
                })?);
        }
        worker.curve_secret_key = path("worker", "curve_secret_key");
        if worker.curve_secret_key.is_some() && worker.proxy_curve_server_key.is_none() {
            return Err(Error::InvalidArgument(
                "curve_secret_key needs proxy_curve_server_key (the backend's CURVE public key)"
                    .into(),
            ));
        }
        if let Some(value) = get("worker", "db") {
            worker.db = value.clone();
        }
        if let Some(value) = get("worker", "proxy") {
            worker.proxy = value.clone();
        }
        if let Some(value) = get("worker", "mgmt") {
            worker.mgmt = value.clone();
        }
        if let Some(value) = get("worker", "helpers") {
            worker.helpers = list(value);
        }
        if let Some(value) = get("worker", "tasks") {
            worker.tasks = list(value);
        }
        if let Some(value) = get("worker", "threads") {
            worker.threads = at_most("threads", number("threads", value)?, MAX_THREADS)?.max(1);
        }
        if let Some(value) = get("worker", "per_host") {
            worker.per_host = at_most("per_host", number("per_host", value)?, MAX_THREADS)?.max(1);
        }
        if let Some(value) = get("worker", "timeout") {
            worker.timeout_ms = at_most(
                "timeout",
                number("timeout", value)?,
                crate::agent::MAX_TIMEOUT_MS,
            )?
            .max(1);
        }
        if let Some(value) = get("cache", "enabled") {
            config.cache.enabled = boolean("enabled", value)?;
        }
        if let Some(value) = get("cache", "maxsize") {
            config.cache.maxsize = number("maxsize", value)?;
        }
        if let Some(value) = get("cache", "ttl") {
            config.cache.ttl = number("ttl", value)?;
        }
        if let Some(value) = get("cache", "housekeeping") {
            config.cache.housekeeping = number("housekeeping", value)?;
        }
        if let Some(value) = get("cache", "mirror") {
            config.cache.mirror = boolean("mirror", value)?;
        }
        if let Some(value) = get("cache", "mirror_idle") {
            config.cache.mirror_idle_s = mirror_number("mirror_idle", value, MAX_MIRROR_IDLE_S)?;
        }
        if let Some(value) = get("cache", "mirror_max_values") {
            config.cache.mirror_max_values =
                mirror_number("mirror_max_values", value, MAX_MIRROR_MAX_VALUES)?;
        }
        Ok(config)
    }

    /// What every host's agent is given: the task timeout, the lookup cache
    /// (`ttl` when `enabled`, else none) and the mirror's settings.
    pub fn agent_settings(&self) -> AgentSettings {
        AgentSettings {
            timeout_ms: self.worker.timeout_ms,
            cache_ttl_s: if self.cache.enabled {
                self.cache.ttl
            } else {
                0
            },
            mirror: self.cache.mirror,
            mirror_idle_s: self.cache.mirror_idle_s,
            mirror_max_values: self.cache.mirror_max_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_py_vpollers_file() {
        let config = Config::parse(
            "# vPoller configuration\n\
             [proxy]\nfrontend = tcp://*:20123\nbackend: tcp://*:20124\n\
             mgmt = tcp://*:19999\n\n\
             [worker]\ndb = /tmp/v.db\nproxy = tcp://localhost:20124\n\
             helpers = vpoller.helpers.zabbix, vpoller.helpers.czabbix\n\
             tasks = vpoller.vsphere.tasks\nThreads = 4\n\
             [cache]\nenabled = yes\nmaxsize = 100\nttl = 60\nhousekeeping = 5\n",
        )
        .unwrap();
        assert_eq!(config.proxy.frontend, "tcp://*:20123");
        assert_eq!(config.proxy.backend, "tcp://*:20124");
        assert_eq!(config.proxy.mgmt, "tcp://*:19999");
        assert_eq!(config.worker.db, "/tmp/v.db");
        assert_eq!(config.worker.proxy, "tcp://localhost:20124");
        assert_eq!(
            config.worker.helpers,
            ["vpoller.helpers.zabbix", "vpoller.helpers.czabbix"]
        );
        assert_eq!(config.worker.threads, 4);
        assert_eq!(config.worker.mgmt, "tcp://*:10000");
        assert!(config.cache.enabled);
        assert_eq!(config.cache.ttl, 60);
        // This worker's mirror, on unless told.
        assert!(config.cache.mirror);
        assert_eq!(config.cache.mirror_idle_s, 900);
        assert_eq!(config.cache.mirror_max_values, 1_000_000);
    }

    #[test]
    fn curve_settings() {
        let config = Config::parse(
            "[proxy]\nfrontend_curve_secret_key = /etc/vpoller/frontend.key\n\
             frontend_curve_allowed = /etc/vpoller/clients\n\
             backend_curve_secret_key = /etc/vpoller/backend.key\n\
             [worker]\nproxy_curve_server_key = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n\
             curve_secret_key = worker.key\n",
        )
        .unwrap();
        assert_eq!(
            config.proxy.frontend_curve_secret_key,
            Some(PathBuf::from("/etc/vpoller/frontend.key"))
        );
        assert_eq!(
            config.proxy.frontend_curve_allowed,
            Some(PathBuf::from("/etc/vpoller/clients"))
        );
        assert_eq!(config.proxy.backend_curve_allowed, None);
        assert_eq!(
            config.worker.proxy_curve_server_key.map(|key| key.to_z85()),
            Some("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7".to_owned())
        );
        assert_eq!(
            config.worker.curve_secret_key,
            Some(PathBuf::from("worker.key"))
        );
        // None of it unless set.
        let plain = Config::parse("").unwrap();
        assert_eq!(plain.proxy.frontend_curve_secret_key, None);
        assert_eq!(plain.worker.proxy_curve_server_key, None);
        for (text, expected) in [
            (
                "[worker]\nproxy_curve_server_key = short\n",
                "proxy_curve_server_key: ",
            ),
            (
                "[worker]\ncurve_secret_key = worker.key\n",
                "curve_secret_key needs proxy_curve_server_key",
            ),
            (
                "[proxy]\nbackend_curve_allowed = workers\n",
                "backend_curve_allowed needs backend_curve_secret_key",
            ),
        ] {
            let error = Config::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn mirror_settings() {
        let config = Config::parse(
            "[worker]\ntimeout = 20000\n\
             [cache]\nenabled = yes\nttl = 60\nmirror = off\nmirror_idle = 120\n\
             Mirror_Max_Values = 5000\n",
        )
        .unwrap();
        assert!(!config.cache.mirror);
        assert_eq!(config.cache.mirror_idle_s, 120);
        assert_eq!(config.cache.mirror_max_values, 5000);
        assert_eq!(
            config.agent_settings(),
            AgentSettings {
                timeout_ms: 20_000,
                cache_ttl_s: 60,
                mirror: false,
                mirror_idle_s: 120,
                mirror_max_values: 5000,
            }
        );
        // ConfigParser's booleans.
        for (text, on) in [
            ("on", true),
            ("yes", true),
            ("True", true),
            ("1", true),
            ("off", false),
            ("NO", false),
            ("false", false),
            ("0", false),
        ] {
            let config = Config::parse(&format!("[cache]\nmirror = {text}\n")).unwrap();
            assert_eq!(config.cache.mirror, on, "{text}");
        }
        // The lookup cache off leaves the mirror on, with the agent's defaults.
        let defaults = Config::parse("[cache]\nenabled = no\n").unwrap();
        assert_eq!(
            defaults.agent_settings(),
            AgentSettings {
                timeout_ms: 60_000,
                cache_ttl_s: 0,
                ..AgentSettings::default()
            }
        );
        assert!(defaults.agent_settings().mirror);
        // The bounds.
        let most = Config::parse("[cache]\nmirror_idle = 604800\nmirror_max_values = 100000000\n")
            .unwrap();
        assert_eq!(
            (most.cache.mirror_idle_s, most.cache.mirror_max_values),
            (604_800, 100_000_000)
        );
        for (text, expected) in [
            (
                "mirror = sometimes",
                "mirror must be a boolean (yes/no, true/false, on/off, 1/0), not \"sometimes\"",
            ),
            (
                "mirror_idle = 604801",
                "mirror_idle must be at most 604800, not 604801",
            ),
            (
                "mirror_idle = 0",
                "mirror_idle must be at least 1, not 0 (mirror = off turns the mirror off)",
            ),
            (
                "mirror_idle = 15m",
                "mirror_idle must be a whole number, not \"15m\"",
            ),
            (
                "mirror_idle = -1",
                "mirror_idle must be a whole number, not \"-1\"",
            ),
            (
                "mirror_max_values = 100000001",
                "mirror_max_values must be at most 100000000, not 100000001",
            ),
            (
                "mirror_max_values = 0",
                "mirror_max_values must be at least 1, not 0 (mirror = off turns the mirror off)",
            ),
            (
                "mirror_max_values = 18446744073709551616",
                "mirror_max_values must be a whole number",
            ),
        ] {
            let error = Config::parse(&format!("[cache]\n{text}\n")).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::parse("key = value\n").is_err());
        assert!(Config::parse("[cache]\nenabled = maybe\n").is_err());
        assert!(Config::parse("[worker]\nthreads = many\n").is_err());
        // Bounded, with the bound in the error (a deadline this far away
        // would overflow).
        let huge = Config::parse("[worker]\ntimeout = 18446744073709551615\n").unwrap_err();
        assert!(
            huge.to_string().contains("timeout must be at most 3600000"),
            "{huge}"
        );
        assert!(Config::parse("[worker]\ntimeout = 3600000\n").is_ok());
        assert!(Config::parse("[worker]\nthreads = 100000\n")
            .unwrap_err()
            .to_string()
            .contains("threads must be at most 4096"));
        let missing = Config::load(Path::new("/no/such/vpoller.conf")).unwrap_err();
        assert!(missing
            .to_string()
            .contains("Configuration file /no/such/vpoller.conf does not exist"));
    }
}
