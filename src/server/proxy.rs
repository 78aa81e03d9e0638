//! The vPoller Proxy: a ROUTER socket for clients (`frontend`), a DEALER
//! socket for workers (`backend`), frames relayed unchanged both ways, and a
//! management REP socket (`status`, `shutdown`), as py-vpoller's proxy.

use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::mgmt::{self, Command};
use crate::server::{log, open_socket, Attach, Level, Stop};
use serde_json::json;

/// Marks the client identities this run of the proxy hands to workers, so
/// that a reply to a request a previous run took in (a worker finishing it
/// after the proxy restarted) is dropped instead of reaching whichever new
/// client happens to have the same routing identity. The mark goes into the
/// identity frame itself, so workers still see client id, empty frame,
/// request (py-vpoller's worker reads exactly those three).
struct Incarnation([u8; 8]);

impl Incarnation {
    fn new() -> Incarnation {
        let mut mark = [0u8; 8];
        // Without randomness: the time and pid still differ between runs.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut mark).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(0);
            mark = (now ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
        }
        Incarnation(mark)
    }

    /// A request from a client: its identity frame gets the mark.
    fn to_worker(&self, frames: &mut [Vec<u8>]) {
        if let Some(identity) = frames.first_mut() {
            identity.splice(0..0, self.0);
        }
    }

    /// A reply from a worker: the mark is taken off; false when it is not
    /// this run's.
    fn to_client(&self, frames: &mut [Vec<u8>]) -> bool {
        match frames.first_mut() {
            Some(identity) if identity.starts_with(&self.0) => {
                identity.drain(..self.0.len());
                true
            }
            _ => false,
        }
    }
}

/// Runs the proxy until `shutdown` or `stop` is set.
pub fn run(config: &ProxyConfig, stop: &Stop) -> Result<(), Error> {
    let context = zmq::Context::new();
    let frontend = open_socket(&context, zmq::ROUTER, 0, &config.frontend, Attach::Bind)?;
    let backend = open_socket(&context, zmq::DEALER, 0, &config.backend, Attach::Bind)?;
    let management = open_socket(&context, zmq::REP, 0, &config.mgmt, Attach::Bind)?;
    log(
        Level::Info,
        &format!(
            "proxy running: frontend {}, backend {}, management {}",
            config.frontend, config.backend, config.mgmt
        ),
    );
    let node = mgmt::node_name();
    let incarnation = Incarnation::new();
    while !stop.is_set() {
        let mut items = [
            frontend.as_poll_item(zmq::POLLIN),
            backend.as_poll_item(zmq::POLLIN),
            management.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, 250) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        }
        let (from_clients, from_workers, managed) = (
            items[0].is_readable(),
            items[1].is_readable(),
            items[2].is_readable(),
        );
        if from_clients {
            let relayed = frontend
                .recv_multipart(zmq::DONTWAIT)
                .and_then(|mut frames| {
                    incarnation.to_worker(&mut frames);
                    backend.send_multipart(frames, 0)
                });
            if let Err(error) = relayed {
                log(Level::Warning, &format!("relaying a request: {error}"));
            }
        }
        if from_workers {
            let relayed = backend
                .recv_multipart(zmq::DONTWAIT)
                .and_then(|mut frames| {
                    if incarnation.to_client(&mut frames) {
                        frontend.send_multipart(frames, 0)
                    } else {
                        log(
                            Level::Warning,
                            "dropped a reply to a request an earlier run of the proxy took in",
                        );
                        Ok(())
                    }
                });
            if let Err(error) = relayed {
                log(Level::Warning, &format!("relaying a reply: {error}"));
            }
        }
        if managed {
            let request = management.recv_bytes(0)?;
            let reply = match mgmt::command(&request, "Uknown method name received") {
                Command::Status => mgmt::to_ascii_text(&json!({
                    "success": 0,
                    "msg": "vPoller Proxy status",
                    "result": {
                        "status": "running",
                        "hostname": node,
                        "mgmt": config.mgmt,
                        "frontend": config.frontend,
                        "backend": config.backend,
                    }
                })),
                Command::Shutdown => {
                    stop.set();
                    mgmt::shutdown_reply()
                }
                Command::Reply(text) => text,
            };
            management.send(reply.as_bytes(), 0)?;
        }
    }
    log(Level::Info, "proxy stopped");
    Ok(())
}
