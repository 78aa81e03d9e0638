//! The vSphere host registry: vconnector's SQLite database, which
//! py-vpoller's worker and `vconnector-cli` use (`hosts(host, user, pwd,
//! enabled)`), so hosts registered either way serve both. What py-vpoller has
//! no column for (a port, the certificate checks) lives in a table of its own,
//! `vpoller_hosts(host, port, verify, ca_file, fingerprint)`, which vconnector
//! never reads.
//!
//! `verify` says how the certificate is checked ([`Tls`]): `system`,
//! `ca_file` (with `ca_file`), `fingerprint` (with `fingerprint`), or
//! `insecure` (not checked, as asked for with `hosts add --insecure`). A host
//! with no `vpoller_hosts` row (one `vconnector-cli` added) has no TLS setting
//! of ours; nor has one whose `verify` is `no`, what earlier versions of
//! `hosts add` wrote when given no TLS option: both are served without checks,
//! as py-vpoller serves them ([`Tls::Unchecked`]). `insecure` is a new value in
//! the old column rather than a new column, so that databases of every earlier
//! version read as they did, and earlier versions, which serve any value they
//! do not know without checks, read `insecure` as what it means.

use crate::error::Error;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// How a host's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tls {
    /// Not at all, for want of a TLS setting: what py-vpoller does, and so
    /// what a host registered with `vconnector-cli` gets (or with `hosts add`
    /// of versions that did not check by default). The worker warns of it.
    #[default]
    Unchecked,
    /// Not at all, as chosen (`hosts add --insecure`).
    Insecure,
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
            Tls::Unchecked | Tls::Insecure | Tls::SystemRoots => return Ok(()),
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
        make_tables(&connection).map_err(db_error(path))?;
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

    /// Adds a host, or replaces every field of the one of that name (its
    /// port and TLS setting too); a host that cannot be served
    /// ([`Host::check`]) is refused. Both tables are written in one
    /// transaction, so that a worker reading meanwhile never finds the new
    /// row without its TLS setting.
    pub fn add(&self, host: &Host) -> Result<(), Error> {
        host.check()?;
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(self.error())?;
        transaction
            .execute(
                "INSERT OR REPLACE INTO hosts VALUES (?1, ?2, ?3, ?4)",
                params![host.host, host.user, host.password, host.enabled as i64],
            )
            .map_err(self.error())?;
        let (verify, ca_file, fingerprint) = match &host.tls {
            // As earlier versions wrote it: the same meaning in every version.
            Tls::Unchecked => ("no", None, None),
            Tls::Insecure => ("insecure", None, None),
            Tls::SystemRoots => ("system", None, None),
            Tls::CaFile(path) => ("ca_file", Some(path.as_str()), None),
            Tls::Fingerprint(digest) => ("fingerprint", None, Some(digest.as_str())),
        };
        transaction
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
        transaction.commit().map_err(self.error())
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
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(self.error())?;
        let removed = transaction
            .execute("DELETE FROM hosts WHERE host = ?1", params![host])
            .map_err(self.error())?;
        transaction
            .execute("DELETE FROM vpoller_hosts WHERE host = ?1", params![host])
            .map_err(self.error())?;
        transaction.commit().map_err(self.error())?;
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

/// Makes the tables that are missing. A database that can only be read
/// (systemd's `ReadOnlyPaths`, say) and that `vconnector-cli` made has no
/// `vpoller_hosts`: an empty one in the connection's temporary schema, which
/// unqualified names find, reads as that.
fn make_tables(connection: &Connection) -> rusqlite::Result<()> {
    const OURS: &str = "vpoller_hosts (host TEXT PRIMARY KEY, port INTEGER,
        verify TEXT, ca_file TEXT, fingerprint TEXT)";
    let made = connection.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS hosts (host TEXT UNIQUE, user TEXT, pwd TEXT, enabled INTEGER);
         CREATE TABLE IF NOT EXISTS {OURS};"
    ));
    let Err(error) = made else {
        return Ok(());
    };
    let has = |table: &str| {
        connection.query_row(
            "SELECT count(*) > 0 FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
            params![table],
            |row| row.get::<_, bool>(0),
        )
    };
    if connection.is_readonly(rusqlite::DatabaseName::Main)?
        && has("hosts")?
        && !has("vpoller_hosts")?
    {
        return connection.execute_batch(&format!("CREATE TEMP TABLE {OURS};"));
    }
    Err(error)
}

fn row_to_host(row: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    let verify: Option<String> = row.get(5)?;
    let ca_file: Option<String> = row.get(6)?;
    let fingerprint: Option<String> = row.get(7)?;
    let tls = match (verify.as_deref(), ca_file, fingerprint) {
        (Some("insecure"), _, _) => Tls::Insecure,
        (Some("system"), _, _) => Tls::SystemRoots,
        (Some("ca_file"), Some(path), _) => Tls::CaFile(path),
        (Some("fingerprint"), _, Some(digest)) => Tls::Fingerprint(digest),
        // No row of ours (vconnector-cli), `no` (earlier versions' default).
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

    /// A scratch registry path in a directory of its own (removed by the
    /// test).
    fn scratch(name: &str) -> (std::path::PathBuf, String) {
        let dir =
            std::env::temp_dir().join(format!("vpoller-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db").to_str().unwrap().to_owned();
        (dir, path)
    }

    /// What `vpoller_hosts` holds for `name`: (port, verify, ca_file,
    /// fingerprint).
    type Stored = (Option<i64>, Option<String>, Option<String>, Option<String>);

    fn stored(path: &str, name: &str) -> Stored {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT port, verify, ca_file, fingerprint FROM vpoller_hosts WHERE host = ?1",
                params![name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap()
    }

    /// Every TLS setting reads back as written, and is stored as the
    /// `verify` values earlier versions know (`insecure` being new).
    #[test]
    fn tls_settings_are_stored_and_read_back() {
        let (dir, path) = scratch("tls");
        let registry = Registry::open(&path).unwrap();
        let ca_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs/fake-vsphere.pem");
        let digest = "AB:".repeat(31) + "AB";
        let settings = [
            (Tls::Unchecked, "no", None, None),
            (Tls::Insecure, "insecure", None, None),
            (Tls::SystemRoots, "system", None, None),
            (Tls::CaFile(ca_file.into()), "ca_file", Some(ca_file), None),
            (
                Tls::Fingerprint(digest.clone()),
                "fingerprint",
                None,
                Some(digest.as_str()),
            ),
        ];
        for (index, (tls, verify, ca_file, fingerprint)) in settings.iter().enumerate() {
            let mut written = host(&format!("vc{index}"));
            written.port = Some(8443);
            written.tls = tls.clone();
            registry.add(&written).unwrap();
            assert_eq!(registry.get(&written.host).unwrap().unwrap(), written);
            assert_eq!(
                stored(&path, &written.host),
                (
                    Some(8443),
                    Some((*verify).to_owned()),
                    ca_file.map(str::to_owned),
                    fingerprint.map(str::to_owned)
                )
            );
        }
        // Adding a host again replaces its TLS setting, as every other field.
        let mut again = host("vc1");
        again.tls = Tls::SystemRoots;
        registry.add(&again).unwrap();
        assert_eq!(registry.get("vc1").unwrap().unwrap(), again);
        again.tls = Tls::Insecure;
        again.user = "other".into();
        registry.add(&again).unwrap();
        assert_eq!(registry.get("vc1").unwrap().unwrap(), again);
        assert_eq!(registry.list().unwrap().len(), settings.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A database `vconnector-cli init` and `add` made (its one table, no
    /// table of ours) opens, and its rows have no TLS setting; so has a
    /// row an earlier version of `hosts add` wrote without TLS options,
    /// and its other settings read as they did.
    #[test]
    fn rows_of_vconnector_and_earlier_versions_mean_what_they_meant() {
        let (dir, path) = scratch("old");
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch(
            "CREATE TABLE hosts (host TEXT UNIQUE, user TEXT, pwd TEXT, enabled INTEGER);
             INSERT INTO hosts VALUES ('vc-cli', 'root', 'pw', 1);",
        )
        .unwrap();
        let registry = Registry::open(&path).unwrap();
        let from_cli = registry.get("vc-cli").unwrap().unwrap();
        assert_eq!((from_cli.port, from_cli.tls), (None, Tls::Unchecked));
        assert_eq!(from_cli.password, "pw");
        // As the earlier versions wrote them (the same table, `no` for a
        // host added without TLS options).
        let ca_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs/fake-vsphere.pem");
        raw.execute_batch(&format!(
            "INSERT INTO hosts VALUES ('old-default', 'root', 'pw', 1);
             INSERT INTO vpoller_hosts VALUES ('old-default', 8443, 'no', NULL, NULL);
             INSERT INTO hosts VALUES ('old-system', 'root', 'pw', 0);
             INSERT INTO vpoller_hosts VALUES ('old-system', NULL, 'system', NULL, NULL);
             INSERT INTO hosts VALUES ('old-ca', 'root', 'pw', 1);
             INSERT INTO vpoller_hosts VALUES ('old-ca', 9443, 'ca_file', '{ca_file}', NULL);
             INSERT INTO hosts VALUES ('old-print', 'root', 'pw', 1);
             INSERT INTO vpoller_hosts VALUES ('old-print', NULL, 'fingerprint', NULL, 'ab:cd');"
        ))
        .unwrap();
        let read: Vec<(String, bool, Option<u16>, Tls)> = registry
            .list()
            .unwrap()
            .into_iter()
            .map(|row| (row.host, row.enabled, row.port, row.tls))
            .collect();
        assert_eq!(
            read,
            vec![
                (
                    "old-ca".into(),
                    true,
                    Some(9443),
                    Tls::CaFile(ca_file.into())
                ),
                ("old-default".into(), true, Some(8443), Tls::Unchecked),
                (
                    "old-print".into(),
                    true,
                    None,
                    Tls::Fingerprint("ab:cd".into())
                ),
                ("old-system".into(), false, None, Tls::SystemRoots),
                ("vc-cli".into(), true, None, Tls::Unchecked),
            ]
        );
        // vconnector's table keeps its shape.
        let columns: Vec<String> = raw
            .prepare("SELECT name FROM pragma_table_info('hosts')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns, ["host", "user", "pwd", "enabled"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A vconnector-cli database the worker may only read still opens.
    #[test]
    fn a_read_only_vconnector_database_opens() {
        let (dir, path) = scratch("read-only");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE hosts (host TEXT UNIQUE, user TEXT, pwd TEXT, enabled INTEGER);
                 INSERT INTO hosts VALUES ('vc-cli', 'root', 'pw', 1);",
            )
            .unwrap();
        let connection =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        make_tables(&connection).unwrap();
        let registry = Registry { connection };
        let from_cli = registry.get("vc-cli").unwrap().unwrap();
        assert_eq!((from_cli.port, from_cli.tls), (None, Tls::Unchecked));
        assert!(registry.add(&host("vc02")).is_err());
        // A read-only file without vconnector's table is still an error.
        let (empty_dir, empty) = scratch("read-only-empty");
        Connection::open(&empty)
            .unwrap()
            .execute_batch("CREATE TABLE other (x)")
            .unwrap();
        let connection =
            Connection::open_with_flags(&empty, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        assert!(make_tables(&connection).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&empty_dir).unwrap();
    }
}
