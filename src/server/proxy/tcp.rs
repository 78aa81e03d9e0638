//! The proxy's relay on `tcp://` endpoints: one thread, non-blocking
//! sockets, ZMTP 3 spoken here ([`crate::zmtp`]). A request is read
//! and written on to a worker's connection in the same wake-up, and so is a
//! reply; nothing is handed between threads.
//!
//! Towards clients it behaves as a ROUTER socket: each connection gets a
//! routing id (a zero byte and a 32-bit number, as libzmq makes them), which
//! goes in front of the request, marked with this run's mark. Towards
//! workers it behaves as a DEALER socket: requests go to the connected
//! workers in turn, waiting here while none is connected; replies are routed
//! by their first frame, and dropped when that client is gone.

use super::Incarnation;
use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::Stop;
use crate::zmtp::{self, Decoder, Event};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

const FRONTEND: Token = Token(0);
const BACKEND: Token = Token(1);
/// Tokens of connections are their slot plus this.
const FIRST_PEER: usize = 2;
/// Past this many bytes waiting for a worker, it gets no more requests
/// while another worker has room.
const WORKER_BACKLOG: usize = 16 << 20;
/// Requests kept while no worker is connected (or all are backlogged);
/// more are dropped (their clients retry or time out), as a full libzmq
/// queue drops them.
const MAX_WAITING: usize = 10_000;
/// Past this many bytes of replies not taken by a client, further replies
/// to it are dropped.
const CLIENT_BACKLOG: usize = 256 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Worker,
}

struct Peer {
    stream: TcpStream,
    side: Side,
    decoder: Decoder,
    out: Vec<u8>,
    sent: usize,
    /// A client's routing id.
    id: u32,
    address: SocketAddr,
}

impl Peer {
    fn backlog(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes what the socket takes now; an error means the peer is gone.
    fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.sent += written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > (1 << 20) && self.sent * 2 > self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }
}

struct Relay {
    poll: Poll,
    frontend: TcpListener,
    backend: TcpListener,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    clients: HashMap<u32, usize>,
    next_client: u32,
    workers: Vec<usize>,
    next_worker: usize,
    waiting: VecDeque<Vec<u8>>,
    incarnation: Incarnation,
    dropped_unrouted: u64,
}

/// Relays until `stop` is set.
pub(super) fn run(
    config: &ProxyConfig,
    frontend: &[SocketAddr],
    backend: &[SocketAddr],
    stop: &Stop,
) -> Result<(), Error> {
    let poll = Poll::new().map_err(|error| system("cannot watch sockets", error))?;
    let mut relay = Relay {
        frontend: listen(&config.frontend, frontend)?,
        backend: listen(&config.backend, backend)?,
        poll,
        peers: Vec::new(),
        free: Vec::new(),
        clients: HashMap::new(),
        next_client: 0,
        workers: Vec::new(),
        next_worker: 0,
        waiting: VecDeque::new(),
        incarnation: Incarnation::new(),
        dropped_unrouted: 0,
    };
    let registry = relay.poll.registry();
    registry
        .register(&mut relay.frontend, FRONTEND, Interest::READABLE)
        .and_then(|()| registry.register(&mut relay.backend, BACKEND, Interest::READABLE))
        .map_err(|error| system("cannot watch the listening sockets", error))?;
    log::info!(
        "proxy running: frontend {}, backend {}, management {}",
        config.frontend,
        config.backend,
        config.mgmt
    );
    let mut events = Events::with_capacity(256);
    while !stop.is_set() {
        match relay
            .poll
            .poll(&mut events, Some(Duration::from_millis(250)))
        {
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
    }
    Ok(())
}

fn system(what: &str, error: io::Error) -> Error {
    Error::Internal(format!("{what}: {error}"))
}

fn listen(endpoint: &str, addresses: &[SocketAddr]) -> Result<TcpListener, Error> {
    let mut failure = None;
    for address in addresses {
        match TcpListener::bind(*address) {
            Ok(listener) => return Ok(listener),
            Err(error) => failure = Some(error),
        }
    }
    let reason = failure.map_or_else(|| "no address".to_owned(), |error| error.to_string());
    Err(Error::InvalidArgument(format!(
        "cannot bind to {endpoint}: {reason}"
    )))
}

impl Relay {
    fn accept(&mut self, side: Side) {
        loop {
            let listener = match side {
                Side::Client => &self.frontend,
                Side::Worker => &self.backend,
            };
            let (mut stream, address) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Out of descriptors and the like: the connection waits
                    // in the backlog until the next wake-up.
                    log::warn!("cannot accept a connection: {error}");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.peers.push(None);
                self.peers.len() - 1
            });
            let registered = self.poll.registry().register(
                &mut stream,
                Token(slot + FIRST_PEER),
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(error) = registered {
                log::warn!("cannot watch a connection: {error}");
                self.free.push(slot);
                continue;
            }
            let accepts: &'static [&'static str] = match side {
                Side::Client => &["REQ", "DEALER", "ROUTER"],
                Side::Worker => &["REP", "DEALER", "ROUTER"],
            };
            let mut out = Vec::with_capacity(128);
            zmtp::push_greeting(&mut out);
            self.peers[slot] = Some(Peer {
                stream,
                side,
                decoder: Decoder::new(accepts),
                out,
                sent: 0,
                id: 0,
                address,
            });
            self.flush(slot);
        }
    }

    fn flush(&mut self, slot: usize) {
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let Err(error) = peer.flush() {
            self.close(slot, &error.to_string());
        }
    }

    /// Reads what the connection has and acts on every whole event in it.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match peer.decoder.read_from(&mut peer.stream) {
                Ok(0) => {
                    // Whole messages before the end are still relayed.
                    self.take_events(slot);
                    self.close(slot, "");
                    return;
                }
                Ok(_) => {
                    if !self.take_events(slot) {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.close(slot, &error.to_string());
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
            let event = match peer.decoder.next() {
                Ok(Some(event)) => event,
                Ok(None) => return true,
                Err(reason) => {
                    self.close(slot, &reason);
                    return false;
                }
            };
            match event {
                Event::Greeting => {
                    let socket_type = match side {
                        Side::Client => "ROUTER",
                        Side::Worker => "DEALER",
                    };
                    zmtp::push_ready(&mut peer.out, socket_type);
                    self.flush(slot);
                }
                Event::Ready(_) => self.ready(slot, side),
                Event::Ping(context) => {
                    zmtp::push_pong(&mut peer.out, &context);
                    self.flush(slot);
                }
                Event::Message(frames) => match side {
                    Side::Client => self.request(slot, frames),
                    Side::Worker => self.reply(frames),
                },
            }
        }
    }

    fn ready(&mut self, slot: usize, side: Side) {
        match side {
            Side::Client => {
                let id = loop {
                    self.next_client = self.next_client.wrapping_add(1);
                    if !self.clients.contains_key(&self.next_client) {
                        break self.next_client;
                    }
                };
                self.clients.insert(id, slot);
                if let Some(peer) = self.peers[slot].as_mut() {
                    peer.id = id;
                }
            }
            Side::Worker => {
                if let Some(peer) = &self.peers[slot] {
                    log::info!("worker connected from {}", peer.address);
                }
                self.workers.push(slot);
            }
        }
    }

    /// Sends the requests kept for want of a worker, while one has room.
    fn send_waiting(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        while let Some(message) = self.waiting.pop_front() {
            if let Err(message) = self.send_to_worker(message) {
                self.waiting.push_front(message);
                return;
            }
        }
    }

    /// A client's request: its routing id in front, on to a worker.
    fn request(&mut self, slot: usize, frames: Vec<Vec<u8>>) {
        let Some(peer) = self.peers[slot].as_ref() else {
            return;
        };
        let identity = self.incarnation.identity(peer.id);
        let size = 16 + frames.iter().map(|frame| frame.len() + 9).sum::<usize>();
        let mut message = Vec::with_capacity(size);
        zmtp::push_message(
            &mut message,
            std::iter::once(&identity[..]).chain(frames.iter().map(Vec::as_slice)),
        );
        if let Err(message) = self.send_to_worker(message) {
            if self.waiting.len() >= MAX_WAITING {
                self.dropped_unrouted += 1;
                if self.dropped_unrouted.is_power_of_two() {
                    log::warn!(
                        "no worker takes requests: {} dropped so far",
                        self.dropped_unrouted
                    );
                }
                return;
            }
            self.waiting.push_back(message);
        }
    }

    /// Writes an encoded request to the next worker with room, in turn;
    /// gives it back when there is none.
    fn send_to_worker(&mut self, message: Vec<u8>) -> Result<(), Vec<u8>> {
        for _ in 0..self.workers.len() {
            self.next_worker = (self.next_worker + 1) % self.workers.len();
            let slot = self.workers[self.next_worker];
            let Some(peer) = self.peers[slot].as_mut() else {
                continue;
            };
            if peer.backlog() > WORKER_BACKLOG {
                continue;
            }
            if peer.out.is_empty() {
                peer.out = message;
            } else {
                peer.out.extend_from_slice(&message);
            }
            self.flush(slot);
            return Ok(());
        }
        Err(message)
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
        if peer.backlog() > CLIENT_BACKLOG {
            log::warn!(
                "dropped a reply: {} does not read its replies",
                peer.address
            );
            return;
        }
        zmtp::push_message(&mut peer.out, frames[1..].iter().map(Vec::as_slice));
        self.flush(slot);
    }

    fn close(&mut self, slot: usize, reason: &str) {
        let Some(mut peer) = self.peers.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut peer.stream);
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
        match peer.side {
            Side::Client => {
                if peer.decoder.is_ready() {
                    self.clients.remove(&peer.id);
                }
            }
            Side::Worker => self.workers.retain(|&worker| worker != slot),
        }
        self.free.push(slot);
    }
}
