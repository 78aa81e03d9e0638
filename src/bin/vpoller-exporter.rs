//! `vpoller-exporter`: vmware_exporter's command line over
//! `vpoller::exporter`.
//!
//!     vpoller-exporter [-c FILE] [-a ADDRESS] [-p PORT] [-l LEVEL] [-v]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use vpoller::exporter::{config::Config, http, Exporter, DEFAULT_PORT};
use vpoller::server::{self, Stop};

const USAGE: &str =
    "usage: vpoller-exporter [-h] [-c CONFIG_FILE] [-a ADDRESS] [-p PORT] [-l LOGLEVEL] [-v]

VMWare metrics exporter for Prometheus, served from a live mirror of vCenter

options:
  -h, --help            show this help message and exit
  -c, --config CONFIG_FILE
                        configuration file
  -a, --address ADDRESS HTTP address to expose metrics
  -p, --port PORT       HTTP port to expose metrics
  -l, --loglevel LOGLEVEL
                        Set application loglevel INFO, DEBUG
  -v, --version         Print version and exit";

struct Args {
    config: Option<PathBuf>,
    address: String,
    port: u16,
    level: log::LevelFilter,
}

fn level(name: &str) -> Option<log::LevelFilter> {
    Some(match name.to_ascii_uppercase().as_str() {
        "DEBUG" => log::LevelFilter::Debug,
        "INFO" => log::LevelFilter::Info,
        "WARNING" | "WARN" => log::LevelFilter::Warn,
        "ERROR" | "CRITICAL" | "FATAL" => log::LevelFilter::Error,
        _ => return None,
    })
}

fn parse() -> Args {
    let mut args = Args {
        config: None,
        address: String::new(),
        port: DEFAULT_PORT,
        level: log::LevelFilter::Info,
    };
    let mut input = std::env::args().skip(1);
    while let Some(arg) = input.next() {
        // `--port=9272` and `-p9272` as well as `--port 9272`, as argparse
        // takes them.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            // `-p9272`: a short flag with its value attached.
            _ if arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg.is_char_boundary(2) =>
            {
                (arg[..2].to_owned(), Some(arg[2..].to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| input.next())
                .unwrap_or_else(|| server::exit_usage(USAGE))
        };
        match flag.as_str() {
            "-c" | "--config" => args.config = Some(PathBuf::from(value())),
            "-a" | "--address" => args.address = value(),
            "-p" | "--port" => {
                let text = value();
                args.port = text.parse().unwrap_or_else(|_| {
                    server::exit_failure(&format!(
                        "argument -p/--port: invalid int value: '{text}'"
                    ))
                });
            }
            "-l" | "--loglevel" => {
                let text = value();
                args.level = level(&text)
                    .unwrap_or_else(|| server::exit_failure(&format!("Invalid log level: {text}")));
            }
            "-v" | "--version" => {
                println!("vpoller-exporter {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => server::exit_usage(USAGE),
        }
    }
    args
}

fn main() {
    server::install_logger();
    let args = parse();
    server::set_log_level(args.level);
    let config =
        match &args.config {
            Some(path) => Config::from_file(path),
            // Variables that are not UTF-8 are none of vmware_exporter's.
            None => Config::from_env(std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            })),
        }
        .unwrap_or_else(|error| server::exit_failure(&error));
    let address = if args.address.is_empty() {
        "0.0.0.0"
    } else {
        args.address.as_str()
    };
    let listener = TcpListener::bind((address, args.port)).unwrap_or_else(|error| {
        server::exit_failure(&format!(
            "cannot listen on {address}:{}: {error}",
            args.port
        ))
    });
    log::info!("Starting web server on port {address}:{}", args.port);
    let exporter = Arc::new(Exporter::new(config));
    let handler: Arc<http::Handler> = Arc::new(move |request| exporter.handle(request));
    let stop = Stop::on_signals();
    if let Err(error) = http::serve(listener, handler, &stop) {
        server::exit_failure(&error);
    }
}
