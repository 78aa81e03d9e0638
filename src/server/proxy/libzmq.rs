//! The proxy's relay over libzmq sockets, for endpoints the built-in ZMTP
//! relay does not take (`ipc://`, interface names).

use super::Incarnation;
use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::{open_socket, Attach, Stop};

/// Relays until `stop` is set.
pub(super) fn run(context: &zmq::Context, config: &ProxyConfig, stop: &Stop) -> Result<(), Error> {
    let frontend = open_socket(context, zmq::ROUTER, 0, &config.frontend, Attach::Bind)?;
    let backend = open_socket(context, zmq::DEALER, 0, &config.backend, Attach::Bind)?;
    log::info!(
        "proxy running (libzmq): frontend {}, backend {}, management {}",
        config.frontend,
        config.backend,
        config.mgmt
    );
    let incarnation = Incarnation::new();
    while !stop.is_set() {
        let mut items = [
            frontend.as_poll_item(zmq::POLLIN),
            backend.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, 250) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        }
        if items[0].is_readable() {
            let relayed = frontend
                .recv_multipart(zmq::DONTWAIT)
                .and_then(|mut frames| {
                    incarnation.to_worker(&mut frames);
                    backend.send_multipart(frames, 0)
                });
            if let Err(error) = relayed {
                log::warn!("relaying a request: {error}");
            }
        }
        if items[1].is_readable() {
            let relayed = backend
                .recv_multipart(zmq::DONTWAIT)
                .and_then(|mut frames| {
                    if incarnation.to_client(&mut frames) {
                        frontend.send_multipart(frames, 0)
                    } else {
                        log::warn!(
                            "dropped a reply to a request an earlier run of the proxy took in"
                        );
                        Ok(())
                    }
                });
            if let Err(error) = relayed {
                log::warn!("relaying a reply: {error}");
            }
        }
    }
    Ok(())
}
