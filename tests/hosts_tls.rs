//! The certificate checks of registered hosts, through the programs:
//! `vpoller-worker hosts add` verifies by default, `--insecure` is stored as
//! a choice of its own and refused with another TLS option, `hosts list`
//! tells a vconnector-cli row from an insecure one, and the worker warns once
//! of each vconnector-cli row it serves without checks.

mod common;
use common::Stack;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vpoller::hosts::{Host, Tls};

/// A directory of its own for one test's registry, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("vpoller-hosts-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("vconnector.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `vpoller-worker --db DB hosts ARGS` (the password from the
/// environment): its exit code, standard output and standard error.
fn hosts(db: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(common::WORKER)
        .arg("--db")
        .arg(db)
        .arg("hosts")
        .args(args)
        .env("VPOLLER_PASSWORD", "pw")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `hosts list`, one (host, TLS column) per line.
fn listed(db: &Path) -> Vec<(String, String)> {
    let (code, out, err) = hosts(db, &["list"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 5, "{line}");
            (fields[0].to_owned(), fields[4].to_owned())
        })
        .collect()
}

/// Writes a host as `vconnector-cli add` does: a row of its table only.
fn write_vconnector_row(db: &Path, host: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(
            "INSERT INTO hosts VALUES (?1, 'root', 'pw', 1)",
            rusqlite::params![host],
        )
        .unwrap();
}

#[test]
fn hosts_added_without_tls_options_are_verified_against_the_system_roots() {
    let scratch = Scratch::new("default");
    let db = scratch.db();
    for args in [
        &["add", "-H", "vc01.example.org", "-U", "root"][..],
        &["add", "-H", "vc02.example.org", "-U", "root", "--verify"],
        &[
            "add",
            "-H",
            "vc03.example.org",
            "-U",
            "root",
            "--verify",
            "--verify",
        ],
    ] {
        let (code, _, err) = hosts(&db, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    assert_eq!(
        listed(&db),
        [
            ("vc01.example.org".into(), "system roots".into()),
            ("vc02.example.org".into(), "system roots".into()),
            ("vc03.example.org".into(), "system roots".into()),
        ]
    );
}

#[test]
fn insecure_hosts_are_listed_apart_from_vconnector_rows() {
    let scratch = Scratch::new("insecure");
    let db = scratch.db();
    let (code, _, err) = hosts(
        &db,
        &["add", "-H", "lab.example.org", "-U", "root", "--insecure"],
    );
    assert_eq!(code, 0, "{err}");
    write_vconnector_row(&db, "legacy.example.org");
    assert_eq!(
        listed(&db),
        [
            ("lab.example.org".into(), "not verified (--insecure)".into()),
            (
                "legacy.example.org".into(),
                "not verified (no TLS setting, as a vconnector-cli row)".into()
            ),
        ]
    );
    // Added again, each with the TLS setting of its new `hosts add`.
    let ca_file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs/fake-vsphere.pem");
    for args in [
        &["add", "-H", "lab.example.org", "-U", "root"][..],
        &[
            "add",
            "-H",
            "legacy.example.org",
            "-U",
            "root",
            "--verify",
            "--ca-file",
            ca_file,
        ],
    ] {
        let (code, _, err) = hosts(&db, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    assert_eq!(
        listed(&db),
        [
            ("lab.example.org".into(), "system roots".into()),
            ("legacy.example.org".into(), format!("CA file {ca_file}")),
        ]
    );
    let (code, _, err) = hosts(
        &db,
        &["add", "-H", "lab.example.org", "-U", "root", "--insecure"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed(&db)[0].1, "not verified (--insecure)");
}

#[test]
fn insecure_with_another_tls_option_is_a_usage_error() {
    let scratch = Scratch::new("conflict");
    let db = scratch.db();
    let add = ["add", "-H", "vc01.example.org", "-U", "root"];
    let refused = |options: &[&str], expected: &str| {
        let args: Vec<&str> = add.iter().chain(options).copied().collect();
        let (code, _, err) = hosts(&db, &args);
        assert_eq!(code, 64, "{options:?}: {err}");
        assert!(err.contains(expected), "{options:?}: {err}");
        assert!(err.contains("usage: vpoller-worker"), "{err}");
    };
    refused(
        &["--insecure", "--verify"],
        "vpoller-worker: --insecure cannot be combined with --verify",
    );
    refused(
        &["--verify", "--insecure"],
        "vpoller-worker: --insecure cannot be combined with --verify",
    );
    refused(
        &["--fingerprint", "ab", "--insecure"],
        "--insecure cannot be combined with --fingerprint",
    );
    refused(
        &["--insecure", "--ca-file", "/ca.pem"],
        "--insecure cannot be combined with --ca-file",
    );
    refused(
        &["--ca-file", "/ca.pem", "--fingerprint", "ab"],
        "--ca-file cannot be combined with --fingerprint",
    );
    refused(
        &["--ca-file", "/a.pem", "--ca-file", "/b.pem"],
        "--ca-file is given twice",
    );
    // Nothing was written.
    assert_eq!(listed(&db), []);
}

/// The log of the worker's last run: a run that could not bind its ports
/// is started again (see [`Stack::start_with`]) and logs the registry's
/// rows again, before its "worker running" line.
fn last_run(log: &str) -> &str {
    let starts: Vec<usize> = log
        .match_indices("INFO vpoller-worker: worker running:")
        .map(|(at, _)| at)
        .collect();
    match starts.len() {
        0 | 1 => log,
        runs => {
            let previous = starts[runs - 2];
            let end_of_line = log[previous..]
                .find('\n')
                .map_or(log.len(), |at| previous + at);
            &log[end_of_line..]
        }
    }
}

/// How many lines of `log` say, at `level`, that `host`'s certificate is
/// not verified.
fn unverified_lines(log: &str, level: &str, host: &str) -> usize {
    let start = format!("{level} vpoller-worker: {host}: the certificate is not verified");
    log.lines().filter(|line| line.starts_with(&start)).count()
}

/// A vconnector-cli row is served as py-vpoller serves it, with one warning
/// that says how to fix it: at start, or when the row appears while the
/// worker runs, and not again when the row changes otherwise. A host added
/// `--insecure` is logged as information, a verified one not at all.
#[test]
fn the_worker_warns_once_of_each_vconnector_row() {
    let stack = Stack::start_with(
        &[
            Host {
                host: "lab.example.org".into(),
                user: "root".into(),
                password: "pw".into(),
                enabled: true,
                port: None,
                tls: Tls::Insecure,
            },
            Host {
                host: "vc.example.org".into(),
                user: "root".into(),
                password: "pw".into(),
                enabled: true,
                port: None,
                tls: Tls::SystemRoots,
            },
        ],
        2,
        2,
        common::tcp_endpoints,
        |db| write_vconnector_row(db, "legacy.example.org"),
    );
    let db = stack.dir_path().join("vconnector.db");
    let log = || {
        let whole = std::fs::read_to_string(stack.dir_path().join("vpoller-worker.log")).unwrap();
        last_run(&whole).to_owned()
    };
    let client = stack.client();
    // Polls until `host`'s warning is logged, asking meanwhile for a host
    // nobody registered (which makes the worker read the registry again, at
    // most every 2 s).
    let wait_for_warning = |host: &str| {
        let until = Instant::now() + Duration::from_secs(60);
        while unverified_lines(&log(), "WARNING", host) == 0 {
            assert!(Instant::now() < until, "no warning for {host}:\n{}", log());
            let reply = client.run(r#"{"method": "about", "hostname": "nobody.example.org"}"#);
            assert!(reply.contains("Unknown or missing agent name"), "{reply}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for_warning("legacy.example.org");
    let warning = log()
        .lines()
        .find(|line| line.starts_with("WARNING vpoller-worker: legacy.example.org:"))
        .unwrap()
        .to_owned();
    for part in [
        "no TLS setting",
        "vpoller-worker hosts add -H legacy.example.org -U root --verify",
        "--ca-file",
        "--fingerprint",
        "--insecure",
    ] {
        assert!(warning.contains(part), "{part:?} not in {warning}");
    }
    // Written while the worker runs.
    write_vconnector_row(&db, "later.example.org");
    wait_for_warning("later.example.org");
    // A new password for one (as `vconnector-cli update` sets it) and a
    // third row: once the third is found, so is the changed one.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE hosts SET pwd = 'new' WHERE host = 'legacy.example.org'",
            [],
        )
        .unwrap();
    write_vconnector_row(&db, "third.example.org");
    wait_for_warning("third.example.org");
    let log = log();
    for host in [
        "legacy.example.org",
        "later.example.org",
        "third.example.org",
    ] {
        assert_eq!(unverified_lines(&log, "WARNING", host), 1, "{host}:\n{log}");
        assert_eq!(unverified_lines(&log, "INFO", host), 0, "{host}:\n{log}");
    }
    assert_eq!(
        unverified_lines(&log, "INFO", "lab.example.org"),
        1,
        "{log}"
    );
    assert_eq!(
        unverified_lines(&log, "WARNING", "lab.example.org"),
        0,
        "{log}"
    );
    assert!(!log.contains("vc.example.org: the certificate"), "{log}");
}
