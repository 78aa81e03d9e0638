//! `vpoller-standin [--port N] [--workers N | --direct | --lean]`: runs the
//! stand-in vPoller Proxy for tests and benchmarks in other languages
//! (`--lean`: the libzmq-free responder of `lean.rs`). Prints the endpoint on the
//! first line of standard output once it accepts requests, then serves until
//! it is killed.

use std::io::Write;
use std::process::ExitCode;
use vpoller_standin::{StandIn, Topology};

fn main() -> ExitCode {
    let mut port = 0u16;
    let mut topology = Topology::Proxy { workers: 2 };
    let mut lean = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--lean" => {
                lean = true;
                Some(())
            }
            "--direct" => {
                topology = Topology::Direct;
                Some(())
            }
            "--port" => args.next().and_then(|v| v.parse().ok()).map(|v| port = v),
            "--workers" => args
                .next()
                .and_then(|v| v.parse().ok())
                .map(|workers| topology = Topology::Proxy { workers }),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("usage: vpoller-standin [--port N] [--workers N | --direct | --lean]");
            return ExitCode::from(64);
        }
    }
    let started = if lean {
        vpoller_standin::lean::start(port).map_err(|e| e.to_string())
    } else {
        StandIn::start_with(port, topology)
            .map(|stand_in| {
                let endpoint = stand_in.endpoint().to_owned();
                // Serves until the process is killed.
                std::mem::forget(stand_in);
                endpoint
            })
            .map_err(|e| e.to_string())
    };
    let endpoint = match started {
        Ok(endpoint) => endpoint,
        Err(error) => {
            eprintln!("vpoller-standin: cannot start on port {port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{endpoint}");
    let _ = stdout.flush();
    loop {
        std::thread::park();
    }
}
