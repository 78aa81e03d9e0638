//! The vPoller Proxy: a ROUTER socket for clients (`frontend`), a DEALER
//! socket for workers (`backend`), frames relayed unchanged both ways, and a
//! management REP socket (`status`, `shutdown`), as py-vpoller's proxy.

use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::mgmt::{self, Command};
use crate::server::{log, open_socket, Attach, Level, Stop};
use serde_json::json;

/// Relays one whole message (all its frames) from `from` to `to`.
fn relay(from: &zmq::Socket, to: &zmq::Socket) -> Result<(), zmq::Error> {
    let frames = from.recv_multipart(zmq::DONTWAIT)?;
    to.send_multipart(frames, 0)
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
            if let Err(error) = relay(&frontend, &backend) {
                log(Level::Warning, &format!("relaying a request: {error}"));
            }
        }
        if from_workers {
            if let Err(error) = relay(&backend, &frontend) {
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
