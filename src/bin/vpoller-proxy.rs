//! `vpoller-proxy`: py-vpoller's proxy command line over `vpoller::server`.
//!
//!     vpoller-proxy [-d] [--log-file FILE] [-f FILE] start
//!     vpoller-proxy [-d] -e ENDPOINT stop|status
//!     vpoller-proxy keygen FILE

use std::path::PathBuf;
use vpoller::server::{self, Config, Stop, DEFAULT_CONFIG};

const USAGE: &str = "usage: vpoller-proxy [-d] [--log-file FILE] [-f FILE] start
       vpoller-proxy [-d] -e ENDPOINT stop|status
       vpoller-proxy keygen FILE    (a new CURVE secret key in FILE; prints its public key)";

fn main() {
    server::install_logger();
    let mut args = std::env::args().skip(1);
    let (mut file, mut endpoint, mut command) = (PathBuf::from(DEFAULT_CONFIG), None, None);
    let mut key_file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "keygen" if command.is_none() => {
                command = Some(arg);
                key_file = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage()));
            }
            "-d" | "--debug" => server::set_log_level(log::LevelFilter::Debug),
            "--log-file" => {
                let path = PathBuf::from(args.next().unwrap_or_else(|| usage()));
                server::set_log_file(&path).unwrap_or_else(|error| fail(&error));
            }
            "-f" | "--file" => file = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "-e" | "--endpoint" => endpoint = Some(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            "start" | "stop" | "status" if command.is_none() => command = Some(arg),
            _ => usage(),
        }
    }
    match command.as_deref() {
        Some("start") => {
            let config = Config::load(&file).unwrap_or_else(|error| fail(&error));
            if let Err(error) = server::proxy::run(&config.proxy, &Stop::on_signals()) {
                fail(&error);
            }
        }
        Some("keygen") => {
            let path = key_file.unwrap_or_else(|| usage());
            match vpoller::curve::write_secret_key_file(&path) {
                // The public key alone on stdout, for scripts.
                Ok(pair) => println!("{}", pair.public()),
                Err(error) => fail(&error),
            }
        }
        Some(command @ ("stop" | "status")) => {
            server::manage(endpoint.as_deref(), "tcp://localhost:9999", command);
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    server::exit_usage(USAGE)
}

fn fail(error: &dyn std::fmt::Display) -> ! {
    server::exit_failure(error)
}
