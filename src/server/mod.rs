//! vPoller's server side over the agent: the proxy and the worker programs
//! (`vpoller-proxy`, `vpoller-worker`), a drop-in for py-vpoller 0.7.3's: the
//! same configuration file, endpoints, wire format, management commands and
//! host registry (vconnector's SQLite database).
//!
//! `src/bin/` only parses command lines and calls in here.

pub mod config;
mod mgmt;
pub mod proxy;
pub mod worker;

pub use config::{Config, DEFAULT_CONFIG};
pub use mgmt::request as management_request;

use crate::sync::Lock;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// A stop flag shared by a server loop and whoever stops it (the
/// `shutdown` command, a test, and SIGTERM or SIGINT for a flag made by
/// [`Stop::on_signals`]).
#[derive(Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
}

impl Stop {
    /// A flag not yet set.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A flag that SIGTERM and SIGINT set too (for the programs).
    pub fn on_signals() -> Stop {
        let stop = Stop::new();
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            if let Err(error) = signal_hook::flag::register(signal, stop.flag.clone()) {
                log::warn!("cannot catch signal {signal}: {error}");
            }
        }
        stop
    }

    /// Asks the loop to stop.
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether the loop should stop.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// The programs' logger: one line per record, `LEVEL program: message`, to
/// stderr, or with a timestamp to the file given by [`set_log_file`].
/// Library code logs through the `log` facade; a program that embeds the
/// library chooses where that goes, these programs choose this.
struct Logger {
    level: AtomicU8,
    file: std::sync::OnceLock<std::sync::Mutex<std::fs::File>>,
}

static LOGGER: Logger = Logger {
    level: AtomicU8::new(log::LevelFilter::Info as u8),
    file: std::sync::OnceLock::new(),
};

impl Logger {
    fn filter(&self) -> log::LevelFilter {
        match self.level.load(Ordering::Relaxed) {
            0 => log::LevelFilter::Off,
            1 => log::LevelFilter::Error,
            2 => log::LevelFilter::Warn,
            3 => log::LevelFilter::Info,
            4 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.filter()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let name = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARNING",
            log::Level::Info => "INFO",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        let program = std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let message = record.args();
        match self.file.get() {
            Some(file) => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs_f64())
                    .unwrap_or(0.0);
                let _ = writeln!(file.locked(), "{seconds:.3} {name} {program}: {message}");
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{name} {program}: {message}");
            }
        }
    }

    fn flush(&self) {}
}

/// Makes the programs' logger the process's logger, at `Info` until
/// [`set_log_level`] says otherwise (once; later calls and a logger set by
/// someone else leave it as it is). The programs call it first thing.
pub fn install_logger() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// Appends log lines to `path` from now on instead of stderr.
pub fn set_log_file(path: &std::path::Path) -> Result<(), crate::Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| {
            crate::Error::InvalidArgument(format!(
                "cannot open the log file {}: {error}",
                path.display()
            ))
        })?;
    LOGGER
        .file
        .set(std::sync::Mutex::new(file))
        .map_err(|_| crate::Error::InvalidArgument("the log file is already set".into()))?;
    install_logger();
    Ok(())
}

/// Logs records of `level` and more severe ones from now on (`Info` unless
/// set), through the programs' logger.
pub fn set_log_level(level: log::LevelFilter) {
    LOGGER.level.store(level as u8, Ordering::Relaxed);
    install_logger();
}

/// For the programs: prints `usage` to stderr and exits with 64.
pub fn exit_usage(usage: &str) -> ! {
    eprintln!("{usage}");
    std::process::exit(64)
}

/// For the programs: logs `error` and exits with 1. A bad argument or
/// configuration is reported in its own words ("Configuration file X does
/// not exist", as py-vpoller says it).
pub fn exit_failure(error: &dyn std::fmt::Display) -> ! {
    let text = error.to_string();
    let text = text.strip_prefix("Invalid argument: ").unwrap_or(&text);
    install_logger();
    log::error!("{text}");
    std::process::exit(1)
}

/// For the programs' `stop` and `status` commands: sends `shutdown` or
/// `status` to the management endpoint (`default` unless `-e` gave one) and
/// prints the reply.
pub fn manage(endpoint: Option<&str>, default: &str, command: &str) {
    let method = if command == "stop" {
        "shutdown"
    } else {
        "status"
    };
    match management_request(endpoint.unwrap_or(default), method, 3000) {
        Ok(reply) => println!("{reply}"),
        Err(error) => exit_failure(&error),
    }
}
