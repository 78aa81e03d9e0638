//! vPoller's server side over the agent: the proxy and the worker programs
//! (`vpoller-proxy`, `vpoller-worker`), a drop-in for py-vpoller 0.7.3's: the
//! same configuration file, endpoints, wire format, management commands and
//! host registry (vconnector's SQLite database).
//!
//! `src/bin/` only parses command lines and calls in here.

pub mod config;
pub mod helpers;
pub mod local;
mod mgmt;
pub mod proxy;
pub mod registry;
pub mod worker;

pub use config::{Config, DEFAULT_CONFIG};
pub use mgmt::request as management_request;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// A stop flag shared by a server loop and whoever stops it (the
/// `shutdown` command, a test, and SIGTERM or SIGINT for a flag made by
/// [`Stop::on_signals`]).
#[derive(Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    signals: bool,
}

/// Set by the SIGTERM and SIGINT handlers.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

impl Stop {
    /// A flag not yet set.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A flag that SIGTERM and SIGINT set too (for the programs).
    pub fn on_signals() -> Stop {
        #[cfg(unix)]
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        }
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            signals: true,
        }
    }

    /// Asks the loop to stop.
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether the loop should stop.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || (self.signals && SIGNALLED.load(Ordering::SeqCst))
    }
}

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A failure that stops something.
    Error = 0,
    /// Bad input or a failure that is survived.
    Warning = 1,
    /// Start, stop and configuration.
    Info = 2,
    /// Every message.
    Debug = 3,
}

static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Where log lines go when not to stderr.
static LOG_FILE: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();

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
    LOG_FILE
        .set(std::sync::Mutex::new(file))
        .map_err(|_| crate::Error::InvalidArgument("the log file is already set".into()))
}

/// Logs at `level` and above more severe ones from now on.
pub fn set_log_level(level: Level) {
    LOG_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Writes one line to stderr: level, program and message.
pub fn log(level: Level, message: &str) {
    if level as u8 > LOG_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let name = match level {
        Level::Error => "ERROR",
        Level::Warning => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
    };
    let program = std::env::args()
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    match LOG_FILE.get() {
        Some(file) => {
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs_f64())
                .unwrap_or(0.0);
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = writeln!(file, "{seconds:.3} {name} {program}: {message}");
        }
        None => {
            let _ = writeln!(std::io::stderr().lock(), "{name} {program}: {message}");
        }
    }
}

/// How a server socket reaches its endpoint.
#[derive(Clone, Copy)]
pub(crate) enum Attach {
    Bind,
    Connect,
}

/// A socket of `kind` with `linger_ms`, bound or connected to `endpoint`,
/// with an error that names the endpoint.
pub(crate) fn open_socket(
    context: &zmq::Context,
    kind: zmq::SocketType,
    linger_ms: i32,
    endpoint: &str,
    attach: Attach,
) -> Result<zmq::Socket, crate::Error> {
    let socket = context.socket(kind)?;
    socket.set_linger(linger_ms)?;
    let attached = match attach {
        Attach::Bind => socket.bind(endpoint),
        Attach::Connect => socket.connect(endpoint),
    };
    attached.map_err(|error| {
        let verb = match attach {
            Attach::Bind => "bind to",
            Attach::Connect => "connect to",
        };
        crate::Error::InvalidArgument(format!("cannot {verb} {endpoint}: {error}"))
    })?;
    Ok(socket)
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
    log(Level::Error, text);
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
