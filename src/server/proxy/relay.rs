//! The proxy's relay: one thread, non-blocking sockets over mio, a
//! [`Connection`] per peer. A request is read and written on to a worker's
//! connection in the same wake-up, and so is a reply; nothing is handed
//! between threads.
//!
//! Towards clients each connection is a ROUTER socket's: it gets a routing
//! id (a zero byte and a 32-bit number, as libzmq makes them, after this
//! run's mark), which goes in front of every request. Towards workers each
//! is a DEALER socket's: requests go to the connected workers in turn,
//! waiting here while none is connected; replies are routed by their first
//! frame, and dropped when that client is gone.

use super::{side_security, Incarnation};
use crate::curve::PublicKey;
use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::Stop;
use crate::transport::curve::Security;
use crate::transport::{Connection, Event, Listener, Reading, Socket, SocketType};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

const FRONTEND: Token = Token(0);
const BACKEND: Token = Token(1);
/// Tokens of connections are their slot plus this.
const FIRST_PEER: usize = 2;
/// Past this many bytes waiting for a worker (some thousands of requests,
/// on top of what the socket's buffers hold), it gets no more requests
/// while another worker has room: a worker that stopped reading is not
/// handed everything.
const WORKER_BACKLOG: usize = 1 << 20;
/// Requests kept while no worker is connected (or all are backlogged), in
/// number and in bytes; more are dropped (their clients retry or time
/// out), as a full libzmq queue drops them.
const MAX_WAITING: usize = 10_000;
const MAX_WAITING_BYTES: usize = 256 << 20;
/// How often the relay looks for connections that did not complete their
/// handshake in time, and takes connections it could not accept before.
const TICK: Duration = Duration::from_millis(250);
/// Past this many bytes of replies not taken by a client, further replies
/// to it are dropped.
const CLIENT_BACKLOG: usize = 256 << 20;
/// How many refused CURVE keys (and addresses whose handshake failed) are
/// remembered, so that each is logged once at warning level.
const MAX_REMEMBERED_REFUSALS: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Worker,
}

struct Peer {
    socket: Socket,
    side: Side,
    connection: Connection,
    /// A client's number, in its routing id.
    id: u32,
    address: String,
}

struct Relay {
    poll: Poll,
    frontend: Listener,
    backend: Listener,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    clients: HashMap<u32, usize>,
    next_client: u32,
    workers: Vec<usize>,
    next_worker: usize,
    waiting: VecDeque<Vec<Vec<u8>>>,
    waiting_bytes: usize,
    incarnation: Incarnation,
    dropped_unrouted: u64,
    /// The listeners whose last accept failed (out of descriptors, say):
    /// no event comes for the connections left in their backlog.
    accept_again: Vec<Side>,
    last_tick: Instant,
    frontend_security: Security,
    backend_security: Security,
    /// Client keys refused so far, and the sides, hosts and reasons of
    /// other failed handshakes: logged once each.
    refused_keys: HashSet<PublicKey>,
    failed_handshakes: HashSet<(&'static str, String, String)>,
}

/// Relays until `stop` is set.
pub(super) fn run(config: &ProxyConfig, stop: &Stop) -> Result<(), Error> {
    let frontend_security = side_security(
        "frontend",
        config.frontend_curve_secret_key.as_deref(),
        config.frontend_curve_allowed.as_deref(),
    )?;
    let backend_security = side_security(
        "backend",
        config.backend_curve_secret_key.as_deref(),
        config.backend_curve_allowed.as_deref(),
    )?;
    let poll = Poll::new().map_err(|error| system("cannot watch sockets", error))?;
    let mut relay = Relay {
        frontend_security,
        backend_security,
        refused_keys: HashSet::new(),
        failed_handshakes: HashSet::new(),
        frontend: Listener::bind(&config.frontend)?,
        backend: Listener::bind(&config.backend)?,
        poll,
        peers: Vec::new(),
        free: Vec::new(),
        clients: HashMap::new(),
        next_client: 0,
        workers: Vec::new(),
        next_worker: 0,
        waiting: VecDeque::new(),
        waiting_bytes: 0,
        incarnation: Incarnation::new(),
        dropped_unrouted: 0,
        accept_again: Vec::new(),
        last_tick: Instant::now(),
    };
    let registry = relay.poll.registry();
    registry
        .register(relay.frontend.source(), FRONTEND, Interest::READABLE)
        .and_then(|()| registry.register(relay.backend.source(), BACKEND, Interest::READABLE))
        .map_err(|error| system("cannot watch the listening sockets", error))?;
    log::info!(
        "proxy running: frontend {}, backend {}, management {}",
        config.frontend,
        config.backend,
        config.mgmt
    );
    let mut events = Events::with_capacity(256);
    while !stop.is_set() {
        match relay.poll.poll(&mut events, Some(TICK)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(system("cannot wait for the sockets", error)),
        }
        for event in events.iter() {
            match event.token() {
                FRONTEND => relay.accept(Side::Client),
                BACKEND => relay.accept(Side::Worker),
                Token(token) => {
                    let slot = token - FIRST_PEER;
                    if event.is_writable() {
                        relay.flush(slot);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        relay.read(slot);
                    }
                }
            }
        }
        relay.send_waiting();
        if relay.last_tick.elapsed() >= TICK {
            relay.tick();
        }
    }
    Ok(())
}

/// A message's size, for the bound on waiting requests.
fn size_of(frames: &[Vec<u8>]) -> usize {
    frames.iter().map(|frame| frame.len() + 16).sum()
}

fn system(what: &str, error: io::Error) -> Error {
    Error::Internal(format!("{what}: {error}"))
}

impl Relay {
    /// What is due now and then: connections that did not complete their
    /// handshake in time are closed, listeners that could not accept try
    /// again.
    fn tick(&mut self) {
        let now = Instant::now();
        self.last_tick = now;
        for slot in 0..self.peers.len() {
            let expired = self.peers[slot]
                .as_ref()
                .is_some_and(|peer| peer.connection.handshake_expired(now));
            if expired {
                self.close(slot, "no handshake in time");
            }
        }
        for side in std::mem::take(&mut self.accept_again) {
            self.accept(side);
        }
    }

    fn accept(&mut self, side: Side) {
        loop {
            let listener = match side {
                Side::Client => &self.frontend,
                Side::Worker => &self.backend,
            };
            let (mut socket, address) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Out of descriptors and the like: the connection waits
                    // in the backlog until the next tick tries again.
                    log::warn!("cannot accept a connection: {error}");
                    if !self.accept_again.contains(&side) {
                        self.accept_again.push(side);
                    }
                    return;
                }
            };
            let (kind, security) = match side {
                Side::Client => (SocketType::Router, &self.frontend_security),
                Side::Worker => (SocketType::Dealer, &self.backend_security),
            };
            let connection = match Connection::secured(kind, security) {
                Ok(connection) => connection,
                Err(reason) => {
                    log::warn!("dropped a connection from {address}: {reason}");
                    continue;
                }
            };
            let slot = self.free.pop().unwrap_or_else(|| {
                self.peers.push(None);
                self.peers.len() - 1
            });
            let registered = self.poll.registry().register(
                &mut socket,
                Token(slot + FIRST_PEER),
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(error) = registered {
                log::warn!("cannot watch a connection: {error}");
                self.free.push(slot);
                continue;
            }
            let (id, connection) = match side {
                Side::Client => {
                    let id = self.new_client_id();
                    self.clients.insert(id, slot);
                    let routing_id = self.incarnation.identity(id).to_vec();
                    (id, connection.routed(routing_id))
                }
                Side::Worker => (0, connection),
            };
            self.peers[slot] = Some(Peer {
                socket,
                side,
                connection,
                id,
                address,
            });
            self.flush(slot);
        }
    }

    fn new_client_id(&mut self) -> u32 {
        loop {
            self.next_client = self.next_client.wrapping_add(1);
            if !self.clients.contains_key(&self.next_client) {
                return self.next_client;
            }
        }
    }

    /// Writes what the connection has for its peer; an error closes it.
    fn flush(&mut self, slot: usize) {
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let Err(error) = peer.connection.write_to(&mut peer.socket) {
            self.close(slot, &error.to_string());
        }
    }

    /// Reads what the connection has and acts on every whole event in it.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let read = peer.connection.read_from(&mut peer.socket);
            let eof = matches!(read, Ok(0));
            match Reading::nonblocking(read) {
                Reading::Data => {
                    if !self.take_events(slot) {
                        return;
                    }
                }
                Reading::Again => {}
                Reading::Later => return,
                Reading::Closed(reason) => {
                    // Whole messages before the end are still relayed.
                    if eof && self.take_events(slot) {
                        self.close(slot, "");
                    } else {
                        self.close(slot, &reason);
                    }
                    return;
                }
            }
        }
    }

    /// Acts on the whole events read from `slot`; false if it was closed.
    fn take_events(&mut self, slot: usize) -> bool {
        loop {
            let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
                return false;
            };
            let side = peer.side;
            let event = match peer.connection.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => {
                    // READY and PONGs the connection queued.
                    self.flush(slot);
                    return self.peers.get(slot).is_some_and(Option::is_some);
                }
                Err(reason) if peer.connection.in_handshake() => {
                    // ERROR 400 to a refused key goes out before the close.
                    let _ = peer.connection.write_to(&mut peer.socket);
                    let key = peer.connection.refused_key().copied();
                    self.refuse(slot, &reason, key);
                    return false;
                }
                Err(reason) => {
                    self.close(slot, &reason);
                    return false;
                }
            };
            match (event, side) {
                (Event::Ready, Side::Worker) => {
                    log::info!("worker connected from {}", peer.address);
                    self.workers.push(slot);
                }
                (Event::Ready, Side::Client) => {}
                (Event::Message(frames), Side::Client) => self.request(frames),
                (Event::Message(frames), Side::Worker) => self.reply(frames),
            }
        }
    }

    /// Sends the requests kept for want of a worker, while one has room.
    fn send_waiting(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        while let Some(message) = self.waiting.pop_front() {
            self.waiting_bytes -= size_of(&message);
            // A client that left no longer waits for its answer.
            let waited_for = message
                .first()
                .and_then(|identity| self.incarnation.client(identity))
                .is_some_and(|id| self.clients.contains_key(&id));
            if !waited_for {
                continue;
            }
            if let Err(message) = self.send_to_worker(message) {
                self.waiting_bytes += size_of(&message);
                self.waiting.push_front(message);
                return;
            }
        }
    }

    /// A client's request (its routing id in front), on to a worker.
    fn request(&mut self, frames: Vec<Vec<u8>>) {
        if let Err(message) = self.send_to_worker(frames) {
            let size = size_of(&message);
            if self.waiting.len() >= MAX_WAITING || self.waiting_bytes + size > MAX_WAITING_BYTES {
                self.dropped_unrouted += 1;
                if self.dropped_unrouted.is_power_of_two() {
                    log::warn!(
                        "no worker takes requests: {} dropped so far",
                        self.dropped_unrouted
                    );
                }
                return;
            }
            self.waiting_bytes += size;
            self.waiting.push_back(message);
        }
    }

    /// Queues a request to the next worker with room, in turn; gives it
    /// back when there is none.
    fn send_to_worker(&mut self, frames: Vec<Vec<u8>>) -> Result<(), Vec<Vec<u8>>> {
        for _ in 0..self.workers.len() {
            self.next_worker = (self.next_worker + 1) % self.workers.len();
            let slot = self.workers[self.next_worker];
            let Some(peer) = self.peers[slot].as_mut() else {
                continue;
            };
            if peer.connection.backlog() > WORKER_BACKLOG {
                continue;
            }
            peer.connection.send(frames.iter().map(Vec::as_slice));
            self.flush(slot);
            return Ok(());
        }
        Err(frames)
    }

    /// A worker's reply: to the client its first frame names.
    fn reply(&mut self, frames: Vec<Vec<u8>>) {
        let client = frames
            .first()
            .and_then(|identity| self.incarnation.client(identity))
            .and_then(|id| self.clients.get(&id).copied());
        let Some(slot) = client else {
            log::debug!("dropped a reply for a client that is gone (or an earlier run's)");
            return;
        };
        let Some(peer) = self.peers[slot].as_mut() else {
            return;
        };
        if peer.connection.backlog() > CLIENT_BACKLOG {
            log::warn!(
                "dropped a reply: {} does not read its replies",
                peer.address
            );
            return;
        }
        peer.connection.send(frames[1..].iter().map(Vec::as_slice));
        self.flush(slot);
    }

    /// Closes a connection whose handshake failed: logged at warning level
    /// once per refused key, and once per side, host and reason for others
    /// (a peer without CURVE, or with another server key, tries again and
    /// again), at debug level after that.
    fn refuse(&mut self, slot: usize, reason: &str, key: Option<PublicKey>) {
        let Some(peer) = self.peers.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let (what, setting) = match peer.side {
            Side::Client => ("client", "frontend_curve_allowed"),
            Side::Worker => ("worker", "backend_curve_allowed"),
        };
        let first = match key {
            Some(key) => {
                self.refused_keys.len() < MAX_REMEMBERED_REFUSALS && self.refused_keys.insert(key)
            }
            None => {
                let host = match peer.address.rsplit_once(':') {
                    Some((host, _)) => host.to_owned(),
                    None => peer.address.clone(),
                };
                self.failed_handshakes.len() < MAX_REMEMBERED_REFUSALS
                    && self
                        .failed_handshakes
                        .insert((what, host, reason.to_owned()))
            }
        };
        match key {
            Some(key) if first => log::warn!(
                "refused the {what} at {} with the CURVE key {key}: not in {setting} \
                 (logged once per key)",
                peer.address
            ),
            None if first => log::warn!(
                "refused the {what} at {}: {reason} (logged once per host and reason)",
                peer.address
            ),
            _ => log::debug!("refused the {what} at {}: {reason}", peer.address),
        }
        self.remove(slot);
    }

    fn close(&mut self, slot: usize, reason: &str) {
        let Some(peer) = self.peers.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let what = match peer.side {
            Side::Client => "client",
            Side::Worker => "worker",
        };
        if !reason.is_empty() {
            log::warn!(
                "closed the {what} connection from {}: {reason}",
                peer.address
            );
        } else if peer.side == Side::Worker {
            log::info!("worker at {} left", peer.address);
        }
        self.remove(slot);
    }

    /// Forgets the connection in `slot`.
    fn remove(&mut self, slot: usize) {
        let Some(mut peer) = self.peers.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut peer.socket);
        match peer.side {
            Side::Client => {
                self.clients.remove(&peer.id);
            }
            Side::Worker => self.workers.retain(|&worker| worker != slot),
        }
        self.free.push(slot);
    }
}
