//! The vSphere agent's benchmark contender (`make bench`):
//!
//!     bench-agent per-call HOST:PORT CA-FILE MSG CALLS         seconds per task
//!     bench-agent threads  HOST:PORT CA-FILE MSG CALLS THREADS tasks per second, all threads
//!     bench-agent rss      HOST:PORT MSG                       reply bytes, RSS before, peak RSS
//!     bench-agent stack    ENDPOINT MSG CALLS CLIENTS          tasks per second through a vPoller
//!                                                              Proxy, CLIENTS clients in parallel
//!     bench-agent sweep    ENDPOINT FILE CLIENTS [LIMIT]       requests per second, seconds and
//!                                                              requests of one sweep through a
//!                                                              vPoller Proxy: FILE's requests (one
//!                                                              a line; the first LIMIT), each sent
//!                                                              once, shared out to CLIENTS clients
//!     bench-agent round-trip ENDPOINT MSG CALLS [SERVER PUBLIC SECRET]
//!                                                              seconds per request through a
//!                                                              vPoller Proxy, one client; with
//!                                                              CURVE when the three Z85 keys are
//!                                                              given
//!
//! MSG is a task request as JSON. `rss` trusts any certificate (the fake
//! server's) and prints bytes; the others verify against CA-FILE. The
//! agent of `per-call`, `threads` and `rss` runs with the mirror off, so
//! that every task makes its SOAP calls, as the contenders it is measured
//! against do (section 10 of `make bench` measures the mirror).

use std::time::Instant;
use vpoller::{Agent, AgentOptions, Verification};

fn agent(host: &str, verification: Verification) -> Agent {
    let options = AgentOptions {
        verification,
        timeout_ms: 600_000,
        mirror: false,
        ..AgentOptions::default()
    };
    let agent = Agent::with_options(host, "root", "bench", options)
        .unwrap_or_else(|error| fail(&error.to_string()));
    agent
        .connect()
        .unwrap_or_else(|error| fail(&error.to_string()));
    agent
}

fn fail(reason: &str) -> ! {
    eprintln!("bench-agent: {reason}");
    std::process::exit(1)
}

fn run_checked(agent: &Agent, msg: &str) -> String {
    let reply = agent.run(msg);
    if !reply.starts_with("{\"success\": 0") && !reply.starts_with("{\"msg\": \"Successfully") {
        fail(&format!("task failed: {}", &reply[..reply.len().min(300)]));
    }
    reply
}

fn check_stack_reply(reply: &str) {
    if vpoller::reply_success(reply) != Some(0) {
        fail(&format!(
            "request failed: {}",
            &reply[..reply.len().min(300)]
        ));
    }
}

/// The resident set size now, in bytes (Linux).
fn rss_now() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// The peak resident set size of the process so far, in bytes (Linux).
fn rss_peak() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |index: usize| {
        args.get(index)
            .cloned()
            .unwrap_or_else(|| fail("missing arguments (see the source)"))
    };
    let number = |index: usize| {
        arg(index)
            .parse::<usize>()
            .unwrap_or_else(|_| fail("not a number"))
    };
    match arg(0).as_str() {
        "per-call" => {
            let agent = agent(&arg(1), Verification::CaFile(arg(2).into()));
            let (msg, calls) = (arg(3), number(4));
            for _ in 0..20 {
                run_checked(&agent, &msg);
            }
            let started = Instant::now();
            for _ in 0..calls {
                run_checked(&agent, &msg);
            }
            println!("{:.9}", started.elapsed().as_secs_f64() / calls as f64);
        }
        "threads" => {
            let agent = agent(&arg(1), Verification::CaFile(arg(2).into()));
            let (msg, calls, threads) = (arg(3), number(4), number(5));
            for _ in 0..20 {
                run_checked(&agent, &msg);
            }
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        for _ in 0..calls {
                            run_checked(&agent, &msg);
                        }
                    });
                }
            });
            println!(
                "{:.3}",
                (calls * threads) as f64 / started.elapsed().as_secs_f64()
            );
        }
        "rss" => {
            let agent = agent(&arg(1), Verification::Insecure);
            let msg = arg(2);
            let before = rss_now();
            let reply = run_checked(&agent, &msg);
            println!("{} {} {}", reply.len(), before, rss_peak());
        }
        "round-trip" => {
            let (endpoint, msg, calls) = (arg(1), arg(2), number(3));
            let client = vpoller::Client::new(&endpoint, 1, 60_000)
                .unwrap_or_else(|error| fail(&error.to_string()));
            if args.len() > 4 {
                for (option, index) in [
                    (vpoller::ClientOption::CurveServerKey, 4),
                    (vpoller::ClientOption::CurvePublicKey, 5),
                    (vpoller::ClientOption::CurveSecretKey, 6),
                ] {
                    client
                        .set_option(option, &arg(index))
                        .unwrap_or_else(|error| fail(&error.to_string()));
                }
            }
            let ask = || {
                client
                    .try_run(&msg)
                    .unwrap_or_else(|error| fail(&error.to_string()))
            };
            for _ in 0..20 {
                ask();
            }
            let started = Instant::now();
            for _ in 0..calls {
                ask();
            }
            println!("{:.9}", started.elapsed().as_secs_f64() / calls as f64);
        }
        "stack" => {
            let (endpoint, msg, calls, clients) = (arg(1), arg(2), number(3), number(4));
            let make = || {
                vpoller::Client::new(&endpoint, 1, 60_000)
                    .unwrap_or_else(|error| fail(&error.to_string()))
            };
            let warm = make();
            for _ in 0..10 {
                check_stack_reply(&warm.run(&msg));
            }
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..clients {
                    let client = make();
                    let msg = &msg;
                    scope.spawn(move || {
                        for _ in 0..calls {
                            check_stack_reply(&client.run(msg));
                        }
                    });
                }
            });
            println!(
                "{:.3}",
                (calls * clients) as f64 / started.elapsed().as_secs_f64()
            );
        }
        "sweep" => {
            let (endpoint, file, clients) = (arg(1), arg(2), number(3));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|error| fail(&format!("{file}: {error}")));
            let mut requests: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
            if args.len() > 4 {
                requests.truncate(number(4));
            }
            // Every client is connected before the clock starts.
            let connected: Vec<vpoller::Client> = (0..clients)
                .map(|_| {
                    vpoller::Client::new(&endpoint, 1, 120_000)
                        .unwrap_or_else(|error| fail(&error.to_string()))
                })
                .collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let started = Instant::now();
            std::thread::scope(|scope| {
                for client in connected {
                    let (next, requests) = (&next, &requests);
                    scope.spawn(move || loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(msg) = requests.get(index) else {
                            break;
                        };
                        check_stack_reply(&client.run(msg));
                    });
                }
            });
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{:.3} {:.6} {}",
                requests.len() as f64 / seconds,
                seconds,
                requests.len()
            );
        }
        other => fail(&format!("unknown mode {other}")),
    }
}
