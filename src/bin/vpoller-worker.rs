//! `vpoller-worker`: py-vpoller's worker command line over `vpoller::server`,
//! and the host registry without Python.
//!
//!     vpoller-worker [-d] [--log-file FILE] [-c N] [-f FILE] start
//!     vpoller-worker [-d] -e ENDPOINT stop|status
//!     vpoller-worker [-f FILE] [--db PATH] hosts list
//!     vpoller-worker [-f FILE] [--db PATH] hosts add -H HOST -U USER [-P PASSWORD]
//!                    [--port N] [--verify | --ca-file FILE | --fingerprint SHA256 | --insecure]
//!     vpoller-worker [-f FILE] [--db PATH] hosts enable|disable|remove -H HOST
//!
//! `hosts add` without `-P` reads the password from standard input (without
//! echo on a terminal), or from the VPOLLER_PASSWORD environment variable.
//! It adds a host, or replaces every field of the one of that name.
//!
//! The host's certificate is verified against the system's roots unless
//! `--ca-file` (a PEM file of CA certificates) or `--fingerprint` (the
//! certificate's SHA-256 or SHA-1) says otherwise; `--verify` says the
//! default, and may come with either of those. `--insecure` turns the
//! checks off, and cannot be combined with the others. Hosts that
//! `vconnector-cli` added have no TLS setting: they are served without
//! checks, as py-vpoller serves them, and the worker warns of each at start;
//! `hosts add` with one of these options fixes that (`--insecure` keeps the
//! host unchecked without the warning). `hosts list` tells the two apart.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use vpoller::hosts::{Host, Registry, Tls};
use vpoller::server::{self, Config, Stop, DEFAULT_CONFIG};

const USAGE: &str = "usage: vpoller-worker [-d] [--log-file FILE] [-c N] [-f FILE] start
       vpoller-worker [-d] -e ENDPOINT stop|status
       vpoller-worker [-f FILE] [--db PATH] hosts list
       vpoller-worker [-f FILE] [--db PATH] hosts add -H HOST -U USER [-P PASSWORD]
                      [--port N] [--verify | --ca-file FILE | --fingerprint SHA256 | --insecure]
       vpoller-worker [-f FILE] [--db PATH] hosts enable|disable|remove -H HOST
hosts add verifies the certificate against the system's roots (--verify) unless
--ca-file or --fingerprint is given; --insecure does not verify it.";

#[derive(Default)]
struct Args {
    file: Option<PathBuf>,
    db: Option<String>,
    endpoint: Option<String>,
    concurrency: usize,
    words: Vec<String>,
    host: Option<String>,
    user: Option<String>,
    password: Option<String>,
    port: Option<u16>,
    /// The TLS option given, with the flag that gave it.
    tls: Option<(&'static str, Tls)>,
}

impl Args {
    /// Takes the TLS option `flag` (`tls`), refusing one that contradicts
    /// an earlier one: `--verify` goes with `--ca-file` or `--fingerprint`
    /// (they verify too, against what they name), no other pair does.
    fn choose_tls(&mut self, flag: &'static str, tls: Tls) {
        let insecure_with = |other: &str| {
            format!(
                "--insecure cannot be combined with {other}: --insecure turns the \
                 certificate check off, {other} asks for one"
            )
        };
        let chosen = match self.tls.take() {
            None => (flag, tls),
            Some(earlier) if earlier.1 == tls => earlier,
            Some((earlier, _)) if earlier == flag => {
                usage_error(&format!("{flag} is given twice, with different values"))
            }
            Some((earlier, earlier_tls)) => match (earlier_tls, tls) {
                (Tls::Insecure, _) => usage_error(&insecure_with(flag)),
                (_, Tls::Insecure) => usage_error(&insecure_with(earlier)),
                (Tls::SystemRoots, tls) => (flag, tls),
                (earlier_tls, Tls::SystemRoots) => (earlier, earlier_tls),
                _ => usage_error(&format!(
                    "{earlier} cannot be combined with {flag}: give one way to check the \
                     certificate"
                )),
            },
        };
        self.tls = Some(chosen);
    }
}

fn parse() -> Args {
    let mut args = Args {
        concurrency: 1,
        ..Args::default()
    };
    let mut input = std::env::args().skip(1);
    let value = |input: &mut dyn Iterator<Item = String>| input.next().unwrap_or_else(|| usage());
    while let Some(arg) = input.next() {
        match arg.as_str() {
            "-d" | "--debug" => server::set_log_level(log::LevelFilter::Debug),
            "--log-file" => {
                let path = PathBuf::from(value(&mut input));
                server::set_log_file(&path).unwrap_or_else(|error| fail(&error));
            }
            "-f" | "--file" => args.file = Some(PathBuf::from(value(&mut input))),
            "--db" => args.db = Some(value(&mut input)),
            "-e" | "--endpoint" => args.endpoint = Some(value(&mut input)),
            "-c" | "--concurrency" => {
                args.concurrency = value(&mut input).parse().unwrap_or_else(|_| usage());
            }
            "-H" | "--host" => args.host = Some(value(&mut input)),
            "-U" | "--user" => args.user = Some(value(&mut input)),
            "-P" | "--password" => args.password = Some(value(&mut input)),
            "--port" => args.port = Some(value(&mut input).parse().unwrap_or_else(|_| usage())),
            "--ca-file" => args.choose_tls("--ca-file", Tls::CaFile(value(&mut input))),
            "--fingerprint" => {
                args.choose_tls("--fingerprint", Tls::Fingerprint(value(&mut input)));
            }
            "--verify" => args.choose_tls("--verify", Tls::SystemRoots),
            "--insecure" => args.choose_tls("--insecure", Tls::Insecure),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ if arg.starts_with('-') => usage(),
            _ => args.words.push(arg),
        }
    }
    args
}

fn main() {
    server::install_logger();
    let args = parse();
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["start"] => {
            let config = load(&args);
            if let Err(error) =
                server::worker::run(&config, args.concurrency.max(1), &Stop::on_signals())
            {
                fail(&error);
            }
        }
        [command @ ("stop" | "status")] => {
            server::manage(args.endpoint.as_deref(), "tcp://localhost:10000", command);
        }
        ["hosts", command] => hosts(&args, command),
        _ => usage(),
    }
}

fn load(args: &Args) -> Config {
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut config = if args.file.is_none() && args.db.is_some() && !file.exists() {
        Config::default()
    } else {
        Config::load(&file).unwrap_or_else(|error| fail(&error))
    };
    if let Some(db) = &args.db {
        config.worker.db = db.clone();
    }
    config
}

fn hosts(args: &Args, command: &str) {
    let config = load(args);
    let registry = Registry::open(&config.worker.db).unwrap_or_else(|error| fail(&error));
    let host = || args.host.clone().unwrap_or_else(|| usage());
    match command {
        "list" => {
            for entry in registry.list().unwrap_or_else(|error| fail(&error)) {
                let tls = match &entry.tls {
                    Tls::Unchecked => {
                        "not verified (no TLS setting, as a vconnector-cli row)".to_owned()
                    }
                    Tls::Insecure => "not verified (--insecure)".to_owned(),
                    Tls::SystemRoots => "system roots".to_owned(),
                    Tls::CaFile(path) => format!("CA file {path}"),
                    Tls::Fingerprint(digest) => format!("fingerprint {digest}"),
                };
                println!(
                    "{}\t{}\tport {}\t{}\t{}",
                    entry.host,
                    entry.user,
                    entry.port.unwrap_or(443),
                    if entry.enabled { "enabled" } else { "disabled" },
                    tls
                );
            }
        }
        "add" => {
            let entry = Host {
                host: host(),
                user: args.user.clone().unwrap_or_else(|| usage()),
                password: args.password.clone().unwrap_or_else(read_password),
                enabled: true,
                port: args.port,
                tls: args.tls.clone().map_or(Tls::SystemRoots, |(_, tls)| tls),
            };
            registry.add(&entry).unwrap_or_else(|error| fail(&error));
        }
        "enable" | "disable" => {
            let name = host();
            if !registry
                .set_enabled(&name, command == "enable")
                .unwrap_or_else(|error| fail(&error))
            {
                fail(&format!("no host {name} in {}", config.worker.db));
            }
        }
        "remove" => {
            let name = host();
            if !registry.remove(&name).unwrap_or_else(|error| fail(&error)) {
                fail(&format!("no host {name} in {}", config.worker.db));
            }
        }
        _ => usage(),
    }
}

/// The password from VPOLLER_PASSWORD, or one line of standard input, read
/// without echo when it is a terminal.
fn read_password() -> String {
    if let Ok(password) = std::env::var("VPOLLER_PASSWORD") {
        return password;
    }
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let restore = if terminal { echo_off() } else { None };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = restore {
        echo_restore(saved);
        eprintln!();
    }
    if read.is_err() || line.is_empty() {
        fail(&"no password given (-P, VPOLLER_PASSWORD or standard input)");
    }
    line.trim_end_matches(['\r', '\n']).to_owned()
}

#[cfg(unix)]
fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr fills the zeroed struct; tcsetattr reads it.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut saved) != 0 {
            return None;
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &quiet);
        Some(saved)
    }
}

#[cfg(unix)]
fn echo_restore(saved: libc::termios) {
    // SAFETY: restores the settings tcgetattr returned.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &saved);
    }
}

#[cfg(not(unix))]
fn echo_off() -> Option<()> {
    None
}

#[cfg(not(unix))]
fn echo_restore(_: ()) {}

fn usage() -> ! {
    server::exit_usage(USAGE)
}

/// Says what is wrong with the command line, then what it should be.
fn usage_error(message: &str) -> ! {
    eprintln!("vpoller-worker: {message}");
    usage()
}

fn fail(error: &dyn std::fmt::Display) -> ! {
    server::exit_failure(error)
}
