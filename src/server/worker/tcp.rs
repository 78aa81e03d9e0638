//! A worker loop on a `tcp://` proxy endpoint: ZMTP 3 spoken by the pool's
//! own threads ([`crate::zmtp`]), no libzmq socket.
//!
//! One idle thread of the pool at a time is the reader: it reads the next
//! request from the connection, queues it in the [`Schedule`] and, when
//! another idle thread can take over reading, runs it itself and writes the
//! reply. A request is thus read, run and answered on one thread, with no
//! hand-off; the pool has one thread more than `threads`, so that one is
//! always left to read while `threads` tasks run.
//!
//! The connection behaves as libzmq's DEALER: made again after the proxy
//! goes away (every 100 ms until it is back), heartbeats answered.

use super::{job_for, perform, split_request, Hosts, Schedule};
use crate::error::Error;
use crate::server::config::Config;
use crate::server::Stop;
use crate::sync::Lock;
use crate::zmtp::{self, Decoder, Event};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a reader waits for a request before it looks at the stop flag.
const READ_WAIT: Duration = Duration::from_millis(250);
/// How long one round of connecting to the proxy may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A proxy that takes no reply bytes for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The socket types a worker's DEALER may talk to.
const PEERS: &[&str] = &["DEALER", "ROUTER", "REP"];

/// The read side of the connection, held by the reader of the moment.
struct Connection<'a> {
    endpoint: &'a str,
    addresses: &'a [SocketAddr],
    stream: Option<TcpStream>,
    decoder: Decoder,
    generation: u64,
    /// Whether the current outage was logged.
    complained: bool,
}

/// The write side, shared by every thread that sends a reply.
struct Writer {
    stream: Option<TcpStream>,
    generation: u64,
}

struct Pool<'a> {
    schedule: Schedule,
    /// Whether a thread is reading (it has taken `connection`).
    reading: bool,
    idle: usize,
    connection: Option<Connection<'a>>,
    /// Set once stopping: no more reading, jobs in hand finished until then.
    deadline: Option<Instant>,
}

struct Shared<'a> {
    hosts: &'a Hosts,
    helpers_allowed: &'a [String],
    pool: Mutex<Pool<'a>>,
    wake: Condvar,
    writer: Mutex<Writer>,
    stop: &'a Stop,
    drain_limit: Duration,
}

/// Serves until `stop` is set, then finishes the requests in hand.
pub(super) fn run(
    config: &Config,
    hosts: &Hosts,
    addresses: &[SocketAddr],
    stop: &Stop,
) -> Result<(), Error> {
    let shared = Shared {
        hosts,
        helpers_allowed: &config.worker.helpers,
        pool: Mutex::new(Pool {
            schedule: Schedule::new(config.worker.per_host),
            reading: false,
            idle: 0,
            connection: Some(Connection {
                endpoint: &config.worker.proxy,
                addresses,
                stream: None,
                decoder: Decoder::new(PEERS),
                generation: 0,
                complained: false,
            }),
            deadline: None,
        }),
        wake: Condvar::new(),
        writer: Mutex::new(Writer {
            stream: None,
            generation: 0,
        }),
        stop,
        drain_limit: Duration::from_millis(config.worker.timeout_ms) + Duration::from_secs(1),
    };
    std::thread::scope(|scope| {
        let shared = &shared;
        let mut threads = Vec::new();
        for index in 0..=config.worker.threads {
            let spawned = std::thread::Builder::new()
                .name(format!("vpoller-task-{index}"))
                .spawn_scoped(scope, move || shared.work());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    stop.set();
                    return Err(Error::Internal(format!(
                        "cannot start a task thread: {error}"
                    )));
                }
            }
        }
        for thread in threads {
            thread
                .join()
                .map_err(|_| Error::Internal("a task thread panicked".into()))?;
        }
        Ok(())
    })?;
    if let Some(stream) = lock(&shared.writer).stream.take() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.locked()
}

impl<'a> Shared<'a> {
    /// One thread of the pool: runs jobs while another thread reads, reads
    /// when no one does, waits otherwise.
    fn work(&self) {
        let mut pool = lock(&self.pool);
        loop {
            let open = pool.deadline.is_none();
            let overdue = pool.deadline.is_some_and(|at| Instant::now() > at);
            if (!open || pool.reading || pool.idle > 0) && !overdue {
                if let Some(job) = pool.schedule.next() {
                    if open && !pool.reading {
                        // An idle thread takes over reading.
                        self.wake.notify_one();
                    }
                    drop(pool);
                    let host = job.host.clone();
                    let frames = perform(self.hosts, job, self.helpers_allowed);
                    self.send(&frames);
                    pool = lock(&self.pool);
                    pool.schedule.done(&host);
                    if !open {
                        self.wake.notify_all();
                    }
                    continue;
                }
            }
            if !open {
                if overdue || !pool.schedule.busy() {
                    self.wake.notify_all();
                    return;
                }
            } else if !pool.reading {
                pool.reading = true;
                let mut connection = pool.connection.take().expect("the connection is here");
                drop(pool);
                let request = connection.next_message(self);
                let job = request
                    .and_then(split_request)
                    .and_then(|(envelope, body)| {
                        job_for(self.hosts, envelope, &body)
                            .map_err(|refusal| self.send(&refusal))
                            .ok()
                    });
                pool = lock(&self.pool);
                pool.connection = Some(connection);
                pool.reading = false;
                if let Some(job) = job {
                    if let Err(refusal) = pool.schedule.queue(job) {
                        drop(pool);
                        self.send(&refusal);
                        pool = lock(&self.pool);
                    }
                }
                if self.stop.is_set() && pool.deadline.is_none() {
                    pool.deadline = Some(Instant::now() + self.drain_limit);
                    self.wake.notify_all();
                }
                continue;
            }
            pool.idle += 1;
            let timeout = pool.deadline.is_some().then_some(READ_WAIT);
            pool = crate::sync::wait(&self.wake, pool, timeout);
            pool.idle -= 1;
        }
    }

    /// Writes one message to the proxy; dropped (and logged) when the
    /// connection is down or breaks.
    fn send(&self, frames: &[Vec<u8>]) {
        let size = frames.iter().map(|frame| frame.len() + 9).sum();
        let mut bytes = Vec::with_capacity(size);
        zmtp::push_message(&mut bytes, frames.iter().map(Vec::as_slice));
        self.send_bytes(&bytes);
    }

    fn send_bytes(&self, bytes: &[u8]) {
        let mut writer = lock(&self.writer);
        let Some(stream) = writer.stream.as_mut() else {
            log::warn!("dropped a reply: not connected to the proxy");
            return;
        };
        if let Err(error) = stream.write_all(bytes) {
            log::warn!("dropped a reply, and the connection to the proxy: {error}");
            // The reader sees the connection end and makes a new one.
            let _ = stream.shutdown(Shutdown::Both);
            writer.stream = None;
        }
    }
}

impl Connection<'_> {
    /// The next message from the proxy, or `None` after waiting
    /// [`READ_WAIT`] (or a reconnection attempt) without one.
    fn next_message(&mut self, shared: &Shared<'_>) -> Option<Vec<Vec<u8>>> {
        loop {
            if self.stream.is_none() && !self.connect(shared) {
                return None;
            }
            match self.decoder.next() {
                Ok(Some(Event::Message(frames))) => return Some(frames),
                Ok(Some(Event::Greeting)) => {
                    let mut ready = Vec::new();
                    zmtp::push_ready(&mut ready, "DEALER");
                    let written = self
                        .stream
                        .as_ref()
                        .map(|mut stream| stream.write_all(&ready));
                    if let Some(Err(error)) = written {
                        self.disconnect(shared, &error.to_string());
                        return None;
                    }
                    continue;
                }
                Ok(Some(Event::Ready(_))) => {
                    self.ready(shared);
                    continue;
                }
                Ok(Some(Event::Ping(context))) => {
                    let mut pong = Vec::new();
                    zmtp::push_pong(&mut pong, &context);
                    shared.send_bytes(&pong);
                    continue;
                }
                Ok(None) => {}
                Err(reason) => {
                    self.disconnect(shared, &reason);
                    return None;
                }
            }
            let stream = self.stream.as_mut()?;
            match self.decoder.read_from(stream) {
                Ok(0) => {
                    self.disconnect(shared, "the proxy closed the connection");
                    return None;
                }
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.disconnect(shared, &error.to_string());
                    return None;
                }
            }
        }
    }

    /// Connects and starts the handshake; false (after a pause) when the
    /// proxy cannot be reached.
    fn connect(&mut self, shared: &Shared<'_>) -> bool {
        let dialled = zmtp::dial(
            self.addresses,
            Instant::now() + CONNECT_TIMEOUT,
            WRITE_TIMEOUT,
        )
        .and_then(|stream| stream.set_read_timeout(Some(READ_WAIT)).map(|()| stream));
        let failure = match dialled {
            Ok(stream) => {
                self.stream = Some(stream);
                self.decoder = Decoder::new(PEERS);
                self.generation += 1;
                return true;
            }
            Err(error) => Some(error),
        };
        if !self.complained {
            if let Some(error) = failure {
                log::warn!(
                    "cannot reach the proxy at {} yet ({error}); trying again",
                    self.endpoint
                );
                self.complained = true;
            }
        }
        if !shared.stop.is_set() {
            std::thread::sleep(zmtp::RECONNECT_INTERVAL);
        }
        false
    }

    /// The handshake is done: replies may go out on this connection.
    fn ready(&mut self, shared: &Shared<'_>) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        match stream.try_clone() {
            Ok(writer) => {
                log::info!("connected to the proxy at {}", self.endpoint);
                self.complained = false;
                *lock(&shared.writer) = Writer {
                    stream: Some(writer),
                    generation: self.generation,
                };
            }
            Err(error) => self.disconnect(shared, &error.to_string()),
        }
    }

    fn disconnect(&mut self, shared: &Shared<'_>, reason: &str) {
        log::warn!("lost the proxy at {}: {reason}", self.endpoint);
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let mut writer = lock(&shared.writer);
        if writer.generation == self.generation {
            writer.stream = None;
        }
    }
}
