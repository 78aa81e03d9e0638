//! `vpoller-standin [--port N] [--workers N]`: runs the stand-in vPoller Proxy
//! for tests and benchmarks in other languages. Prints the endpoint on the
//! first line of standard output once it accepts requests, then serves until
//! it is killed.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut port = 0u16;
    let mut workers = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match arg.as_str() {
            "--port" => value.and_then(|v| v.parse().ok()).map(|v| port = v),
            "--workers" => value.and_then(|v| v.parse().ok()).map(|v| workers = v),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("usage: vpoller-standin [--port N] [--workers N]");
            return ExitCode::from(64);
        }
    }
    let stand_in = match vpoller_standin::StandIn::start_on(port, workers) {
        Ok(stand_in) => stand_in,
        Err(error) => {
            eprintln!("vpoller-standin: cannot start on port {port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", stand_in.endpoint());
    let _ = stdout.flush();
    loop {
        std::thread::park();
    }
}
