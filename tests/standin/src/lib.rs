//! A stand-in for a vPoller Proxy with its workers, for tests and benchmarks.
//!
//! The wiring is vPoller's: a ROUTER frontend that clients connect to, a
//! DEALER backend, and DEALER workers that receive `[identity][empty][json]`
//! and answer with the same envelope. Instead of asking vCenter, a worker
//! answers `{"success": 0, "msg": "Successfully retrieved object properties",
//! "result": [<the request, verbatim>]}`, or does what the request's
//! `"stand_in"` object tells it (vPoller's worker ignores fields it does not
//! use, so such requests stay valid vPoller requests):
//!
//! | field | effect |
//! |---|---|
//! | `"delay_ms": N` | reply after N ms (without blocking other requests) |
//! | `"drop": true` | never reply |
//! | `"drop_first": N` | ignore the first N copies of this exact request text |
//! | `"nul": true` | end the reply with one NUL byte (vPoller's `cclient` helper) |
//! | `"reply_size": N` | reply with a valid vPoller result of N bytes |
//! | `"reply_hex": "7b7d"` | reply with exactly these bytes |
//!
//! [`lean::start`] serves the same answers without libzmq, for benchmarks.
//!
//! Like vPoller for a vSphere host it does not know, it answers a request
//! whose `"hostname"` is `"unknown"` with
//! `{"success": 1, "msg": "Unknown or missing agent name"}`.

pub mod fake_vsphere;
pub mod lean;

use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BACKEND: &str = "inproc://stand-in-backend";
const CONTROL: &str = "inproc://stand-in-control";
/// The longest a worker sleeps before it looks at the stop flag again.
const TICK: Duration = Duration::from_millis(10);

/// Counters the tests read.
#[derive(Default)]
struct Stats {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// How the stand-in is wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// vPoller's: ROUTER frontend, proxy thread, DEALER backend, `workers` DEALER workers.
    Proxy {
        /// Worker sockets behind the backend.
        workers: usize,
    },
    /// One worker answering on the ROUTER frontend itself: the fewest hops
    /// and threads, so that a benchmark sees the client's costs, not the server's.
    Direct,
}

/// A running stand-in proxy; stopped on drop.
pub struct StandIn {
    endpoint: String,
    port: u16,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    control: Option<zmq::Socket>,
    threads: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Starts a stand-in on a free loopback port with two workers.
    pub fn start() -> StandIn {
        StandIn::start_on(0, 2).expect("start the stand-in proxy")
    }

    /// Starts a stand-in on `127.0.0.1:port` (0: any free port) with
    /// `workers` worker sockets behind the proxy.
    pub fn start_on(port: u16, workers: usize) -> Result<StandIn, zmq::Error> {
        StandIn::start_with(port, Topology::Proxy { workers })
    }

    /// Starts a stand-in with the given topology.
    pub fn start_with(port: u16, topology: Topology) -> Result<StandIn, zmq::Error> {
        let context = zmq::Context::new();
        let frontend = context.socket(zmq::ROUTER)?;
        frontend.set_linger(0)?;
        let address = if port == 0 {
            String::from("tcp://127.0.0.1:*")
        } else {
            format!("tcp://127.0.0.1:{port}")
        };
        frontend.bind(&address)?;
        let endpoint = frontend
            .get_last_endpoint()?
            .expect("the bound endpoint is UTF-8");
        let port = endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the bound endpoint ends in a port");

        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(Mutex::new(HashMap::new()));
        let worker = |socket| Worker {
            socket,
            stats: Arc::clone(&stats),
            stop: Arc::clone(&stop),
            drops: Arc::clone(&drops),
            pending: BinaryHeap::new(),
            sequence: 0,
        };
        let mut threads = Vec::new();
        let mut control = None;
        match topology {
            Topology::Direct => {
                // The frontend's messages already carry the envelope a worker answers with.
                let direct = worker(frontend);
                threads.push(std::thread::spawn(move || direct.run()));
            }
            Topology::Proxy { workers } => {
                let backend = context.socket(zmq::DEALER)?;
                backend.set_linger(0)?;
                backend.bind(BACKEND)?;
                let control_end = context.socket(zmq::PAIR)?;
                control_end.bind(CONTROL)?;
                let steering = context.socket(zmq::PAIR)?;
                steering.connect(CONTROL)?;
                control = Some(steering);
                threads.push(std::thread::spawn(move || {
                    // Returns when told TERMINATE through the control socket.
                    let (mut frontend, mut backend, mut control_end) =
                        (frontend, backend, control_end);
                    let _ = zmq::proxy_steerable(&mut frontend, &mut backend, &mut control_end);
                }));
                for _ in 0..workers.max(1) {
                    let socket = context.socket(zmq::DEALER)?;
                    socket.set_linger(0)?;
                    socket.connect(BACKEND)?;
                    let proxied = worker(socket);
                    threads.push(std::thread::spawn(move || proxied.run()));
                }
            }
        }
        Ok(StandIn {
            endpoint,
            port,
            stats,
            stop,
            control,
            threads,
        })
    }

    /// The endpoint clients connect to, `tcp://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The TCP port of the frontend.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests the workers received so far (each attempt counts).
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were being worked on at one time.
    pub fn max_in_flight(&self) -> usize {
        self.stats.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stops the proxy and its workers and frees the port.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let control = self.control.take();
        if let Some(control) = &control {
            let _ = control.send("TERMINATE", 0);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        drop(control);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A free TCP port on 127.0.0.1 at the time of the call (nothing listens on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// What a worker does with one request.
enum Plan {
    Ignore,
    Reply { after: Duration, body: Vec<u8> },
}

/// A reply waiting for its time: (due, sequence for stable order, frames).
type Due = (Instant, u64, Vec<Vec<u8>>);

struct Worker {
    socket: zmq::Socket,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    drops: Arc<Mutex<HashMap<Vec<u8>, u64>>>,
    /// Delayed replies, earliest first.
    pending: BinaryHeap<Reverse<Due>>,
    sequence: u64,
}

impl Worker {
    fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            self.send_due();
            let now = Instant::now();
            let wait = self
                .pending
                .peek()
                .map_or(TICK, |Reverse((due, _, _))| {
                    due.saturating_duration_since(now)
                })
                .min(TICK);
            let wait_ms = i64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(10);
            match self.socket.poll(zmq::POLLIN, wait_ms) {
                Ok(ready) if ready > 0 => self.receive_all(),
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn receive_all(&mut self) {
        while let Ok(mut frames) = self.socket.recv_multipart(zmq::DONTWAIT) {
            self.stats.requests.fetch_add(1, Ordering::SeqCst);
            let Some(request) = frames.pop() else {
                continue;
            };
            match plan(&request, &self.drops) {
                Plan::Ignore => {}
                Plan::Reply { after, body } => {
                    let in_flight = self.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    self.stats
                        .max_in_flight
                        .fetch_max(in_flight, Ordering::SeqCst);
                    frames.push(body);
                    self.sequence += 1;
                    self.pending
                        .push(Reverse((Instant::now() + after, self.sequence, frames)));
                }
            }
        }
        self.send_due();
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        while self
            .pending
            .peek()
            .is_some_and(|Reverse((due, _, _))| *due <= now)
        {
            let Some(Reverse((_, _, frames))) = self.pending.pop() else {
                break;
            };
            self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = self.socket.send_multipart(frames, 0);
        }
    }
}

/// What the stand-in does with `request`; `drops` counts copies for `drop_first`.
fn plan(request: &[u8], drops: &Mutex<HashMap<Vec<u8>, u64>>) -> Plan {
    let parsed = serde_json::from_slice::<Value>(request).unwrap_or(Value::Null);
    let directives = parsed.get("stand_in").unwrap_or(&Value::Null);
    let number = |name: &str| directives.get(name).and_then(Value::as_u64).unwrap_or(0);
    let flag = |name: &str| directives.get(name).and_then(Value::as_bool) == Some(true);

    if flag("drop") {
        return Plan::Ignore;
    }
    let drop_first = number("drop_first");
    if drop_first > 0 {
        let mut drops = drops.lock().unwrap_or_else(|p| p.into_inner());
        let seen = drops.entry(request.to_vec()).or_insert(0);
        *seen += 1;
        if *seen <= drop_first {
            return Plan::Ignore;
        }
    }
    let unknown_host = parsed.get("hostname").and_then(Value::as_str) == Some("unknown");
    let mut body = if unknown_host {
        br#"{"success": 1, "msg": "Unknown or missing agent name"}"#.to_vec()
    } else if let Some(hex) = directives.get("reply_hex").and_then(Value::as_str) {
        decode_hex(hex)
    } else if number("reply_size") > 0 {
        sized_reply(usize::try_from(number("reply_size")).unwrap_or(usize::MAX))
    } else {
        echo_reply(request)
    };
    if flag("nul") {
        body.push(0);
    }
    Plan::Reply {
        after: Duration::from_millis(number("delay_ms")),
        body,
    }
}

/// The default answer: a vPoller success result holding the request.
pub fn echo_reply(request: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(request.len() + 80);
    body.extend_from_slice(
        b"{\"success\": 0, \"msg\": \"Successfully retrieved object properties\", \"result\": [",
    );
    body.extend_from_slice(request);
    body.extend_from_slice(b"]}");
    body
}

/// A vPoller success result of exactly `size` bytes (at least its fixed part).
pub fn sized_reply(size: usize) -> Vec<u8> {
    let head =
        b"{\"success\": 0, \"msg\": \"Successfully retrieved object properties\", \"result\": [\"";
    let tail = b"\"]}";
    let padding = size.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(head.len() + padding + tail.len());
    body.extend_from_slice(head);
    body.extend((0..padding).map(|i| b'a' + (i % 26) as u8));
    body.extend_from_slice(tail);
    body
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}
