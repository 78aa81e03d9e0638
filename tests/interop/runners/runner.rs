//! Interop runner over the Rust API: one `vpoller::Client` for its whole life.
//!
//! Usage: interop-runner ENDPOINT RETRIES TIMEOUT_MS
//! Reads one request per line; writes each reply as "<byte length>\n<reply>\n".

use std::io::{BufRead, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, retries, timeout_ms] = args.as_slice() else {
        eprintln!("usage: interop-runner ENDPOINT RETRIES TIMEOUT_MS");
        std::process::exit(64);
    };
    let client = vpoller::Client::new(
        endpoint,
        retries.parse().expect("RETRIES is a number"),
        timeout_ms.parse().expect("TIMEOUT_MS is a number"),
    )
    .expect("create the client");
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let reply = client.run(&line.expect("read a request"));
        let mut out = stdout.lock();
        write!(out, "{}\n{reply}\n", reply.len())
            .and_then(|()| out.flush())
            .expect("write the reply");
    }
}
