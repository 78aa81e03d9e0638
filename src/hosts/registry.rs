//! The vSphere host registry: vconnector's SQLite database, which
//! py-vpoller's worker and `vconnector-cli` use (`hosts(host, user, pwd,
//! enabled)`), so hosts registered either way serve both. What py-vpoller has
//! no column for (a port, the certificate checks) lives in a table of its own,
//! `vpoller_hosts`, which vconnector never reads.

use crate::error::Error;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// How a host's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tls {
    /// Not at all: what py-vpoller does, and so what a host registered with
    /// `vconnector-cli` (no TLS settings) gets.
    #[default]
    Unchecked,
    /// The system's trusted roots.
    SystemRoots,
    /// A PEM file of CA certificates.
    CaFile(String),
    /// A SHA-256 or SHA-1 fingerprint.
    Fingerprint(String),
}

/// One registered vSphere host.
#[derive(Clone, PartialEq, Eq)]
pub struct Host {
    /// The name requests use as `hostname` (and the address to connect to).
    pub host: String,
    /// The user to log in as.
    pub user: String,
    /// Its password (never shown by `Debug`).
    pub password: String,
    /// Whether the worker serves the host.
    pub enabled: bool,
    /// 443 unless set.
    pub port: Option<u16>,
    /// How its certificate is checked.
    pub tls: Tls,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Host")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("enabled", &self.enabled)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Whether the row can be served: a host name, a port other than 0,
    /// and TLS settings that can be used (a well-formed fingerprint, a CA
    /// file with certificates).
    pub fn check(&self) -> Result<(), Error> {
        if self.host.trim().is_empty() {
            return Err(Error::InvalidArgument("the host name is empty".into()));
        }
        if self.port == Some(0) {
            return Err(Error::InvalidArgument("port 0 cannot be served".into()));
        }
        let verification = match &self.tls {
            // Nothing to check, and the system's roots are checked on use.
            Tls::Unchecked | Tls::SystemRoots => return Ok(()),
            Tls::CaFile(path) => crate::vsphere::Verification::CaFile(path.into()),
            Tls::Fingerprint(digest) => crate::vsphere::Verification::Fingerprint(digest.clone()),
        };
        verification.check()
    }
}

/// An open registry.
pub struct Registry {
    connection: Connection,
}

fn db_error(path: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |error| Error::InvalidArgument(format!("host registry {path}: {error}"))
}

impl Registry {
    /// Opens the registry at `path`, making its tables when missing (as
    /// `vconnector-cli init` does).
    pub fn open(path: &str) -> Result<Registry, Error> {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                return Err(Error::InvalidArgument(format!(
                    "host registry {path}: the directory {} does not exist",
                    parent.display()
                )));
            }
        }
        let connection = Connection::open(path).map_err(db_error(path))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_error(path))?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS hosts (host TEXT UNIQUE, user TEXT, pwd TEXT, enabled INTEGER);
                 CREATE TABLE IF NOT EXISTS vpoller_hosts (host TEXT PRIMARY KEY, port INTEGER,
                     verify TEXT, ca_file TEXT, fingerprint TEXT);",
            )
            .map_err(db_error(path))?;
        Ok(Registry { connection })
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |error| {
            Error::InvalidArgument(format!(
                "host registry {}: {error}",
                self.connection.path().unwrap_or("(memory)")
            ))
        }
    }

    /// Adds or replaces a host (enabled, as vconnector-cli adds it); a host
    /// that cannot be served ([`Host::check`]) is refused.
    pub fn add(&self, host: &Host) -> Result<(), Error> {
        host.check()?;
        self.connection
            .execute(
                "INSERT OR REPLACE INTO hosts VALUES (?1, ?2, ?3, ?4)",
                params![host.host, host.user, host.password, host.enabled as i64],
            )
            .map_err(self.error())?;
        let (verify, ca_file, fingerprint) = match &host.tls {
            Tls::Unchecked => ("no", None, None),
            Tls::SystemRoots => ("system", None, None),
            Tls::CaFile(path) => ("ca_file", Some(path.as_str()), None),
            Tls::Fingerprint(digest) => ("fingerprint", None, Some(digest.as_str())),
        };
        self.connection
            .execute(
                "INSERT OR REPLACE INTO vpoller_hosts VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    host.host,
                    host.port.map(i64::from),
                    verify,
                    ca_file,
                    fingerprint
                ],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// Enables or disables a host; false when there is no such host.
    pub fn set_enabled(&self, host: &str, enabled: bool) -> Result<bool, Error> {
        let changed = self
            .connection
            .execute(
                "UPDATE hosts SET enabled = ?1 WHERE host = ?2",
                params![enabled as i64, host],
            )
            .map_err(self.error())?;
        Ok(changed > 0)
    }

    /// Removes a host; false when there was no such host.
    pub fn remove(&self, host: &str) -> Result<bool, Error> {
        let removed = self
            .connection
            .execute("DELETE FROM hosts WHERE host = ?1", params![host])
            .map_err(self.error())?;
        self.connection
            .execute("DELETE FROM vpoller_hosts WHERE host = ?1", params![host])
            .map_err(self.error())?;
        Ok(removed > 0)
    }

    /// One host, enabled or not.
    pub fn get(&self, host: &str) -> Result<Option<Host>, Error> {
        self.connection
            .query_row(
                "SELECT h.host, h.user, h.pwd, h.enabled, v.port, v.verify, v.ca_file, v.fingerprint
                 FROM hosts h LEFT JOIN vpoller_hosts v ON v.host = h.host WHERE h.host = ?1",
                params![host],
                row_to_host,
            )
            .optional()
            .map_err(self.error())
    }

    /// Every host, in name order.
    pub fn list(&self) -> Result<Vec<Host>, Error> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT h.host, h.user, h.pwd, h.enabled, v.port, v.verify, v.ca_file, v.fingerprint
                 FROM hosts h LEFT JOIN vpoller_hosts v ON v.host = h.host ORDER BY h.host",
            )
            .map_err(self.error())?;
        let rows = statement.query_map([], row_to_host).map_err(self.error())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.error())
    }
}

fn row_to_host(row: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    let verify: Option<String> = row.get(5)?;
    let ca_file: Option<String> = row.get(6)?;
    let fingerprint: Option<String> = row.get(7)?;
    let tls = match (verify.as_deref(), ca_file, fingerprint) {
        (Some("system"), _, _) => Tls::SystemRoots,
        (Some("ca_file"), Some(path), _) => Tls::CaFile(path),
        (Some("fingerprint"), _, Some(digest)) => Tls::Fingerprint(digest),
        _ => Tls::Unchecked,
    };
    let enabled: Option<i64> = row.get(3)?;
    let port: Option<i64> = row.get(4)?;
    Ok(Host {
        host: row.get(0)?,
        user: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
        password: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
        enabled: enabled.unwrap_or(0) != 0,
        port: port.and_then(|port| u16::try_from(port).ok()),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Host {
        Host {
            host: name.into(),
            user: "root".into(),
            password: "s3cret".into(),
            enabled: true,
            port: None,
            tls: Tls::Unchecked,
        }
    }

    #[test]
    fn hosts_are_added_changed_and_removed() {
        let dir = std::env::temp_dir().join(format!("vpoller-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db");
        let _ = std::fs::remove_file(&path);
        let registry = Registry::open(path.to_str().unwrap()).unwrap();
        registry.add(&host("vc01")).unwrap();
        let mut second = host("vc02");
        second.port = Some(8443);
        let ca_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs/fake-vsphere.pem");
        second.tls = Tls::CaFile(ca_file.into());
        registry.add(&second).unwrap();
        assert_eq!(registry.list().unwrap(), vec![host("vc01"), second.clone()]);
        assert!(registry.set_enabled("vc01", false).unwrap());
        assert!(!registry.get("vc01").unwrap().unwrap().enabled);
        assert!(!registry.set_enabled("nope", true).unwrap());
        assert!(registry.remove("vc02").unwrap());
        assert!(!registry.remove("vc02").unwrap());
        assert_eq!(registry.get("vc02").unwrap(), None);
        assert!(!format!("{:?}", host("x")).contains("s3cret"));
        // A row as vconnector-cli writes it, with no TLS settings.
        let raw = Connection::open(&path).unwrap();
        raw.execute("INSERT INTO hosts VALUES ('vc03', 'u', 'p', 1)", [])
            .unwrap();
        let legacy = registry.get("vc03").unwrap().unwrap();
        assert_eq!((legacy.port, legacy.tls), (None, Tls::Unchecked));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rows_that_cannot_be_served_are_not_stored() {
        let dir = std::env::temp_dir().join(format!("vpoller-registry-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db");
        let registry = Registry::open(path.to_str().unwrap()).unwrap();
        let refused = |tls: Tls, port: Option<u16>| {
            let mut bad = host("bad.example.org");
            bad.tls = tls;
            bad.port = port;
            registry.add(&bad).unwrap_err().to_string()
        };
        // 64 bytes of which 62 are not ASCII: a clear error, not a panic.
        let mixed = format!("a{}b", "é".repeat(31));
        assert!(refused(Tls::Fingerprint(mixed), None).contains("is not a SHA-256"));
        assert!(refused(Tls::Fingerprint("ab:cd".into()), None).contains("is not a SHA-256"));
        assert!(refused(Tls::CaFile("/no/such/ca.pem".into()), None).contains("/no/such/ca.pem"));
        assert!(refused(Tls::Unchecked, Some(0)).contains("port 0"));
        assert_eq!(registry.list().unwrap(), Vec::new());
        let mut good = host("good.example.org");
        good.tls = Tls::Fingerprint("AB:".repeat(31) + "AB");
        registry.add(&good).unwrap();
        assert_eq!(registry.list().unwrap(), vec![good]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
