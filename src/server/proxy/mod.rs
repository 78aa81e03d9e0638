//! The vPoller Proxy: clients connect to its `frontend` (a ROUTER socket in
//! ZeroMQ's terms), workers to its `backend` (a DEALER socket); requests go
//! to the workers in turn and replies back to the client that asked,
//! frames unchanged, as py-vpoller's proxy relays them; a management REP
//! socket answers `status` and `shutdown`.
//!
//! One thread relays every connection itself (`relay.rs`: ZMTP 3 over
//! non-blocking sockets, on `tcp://` and `ipc://` endpoints).

mod relay;

use crate::curve::{read_allowed_keys, read_secret_key_file};
use crate::error::Error;
use crate::server::config::ProxyConfig;
use crate::server::{mgmt, Stop};
use crate::transport::curve::{Allowed, Security};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// The security of one side of the proxy (`frontend` or `backend`), its
/// key files read; NULL unless the side has a secret key.
fn side_security(
    side: &str,
    secret: Option<&Path>,
    allowed: Option<&Path>,
) -> Result<Security, Error> {
    let named = |error: Error| match error {
        Error::InvalidArgument(reason) => Error::InvalidArgument(format!("{side}: {reason}")),
        other => other,
    };
    let Some(secret) = secret else {
        return Ok(Security::Null);
    };
    let ours = Arc::new(read_secret_key_file(secret).map_err(named)?);
    let allowed = allowed
        .map(|path| read_allowed_keys(path).map_err(named))
        .transpose()?;
    // The peers of the backend are workers.
    let peers = if side == "backend" {
        "worker"
    } else {
        "client"
    };
    match &allowed {
        Some(keys) => log::info!(
            "{side} speaks CURVE with the public key {}; {} {peers} keys allowed",
            ours.public(),
            keys.len()
        ),
        None => log::info!(
            "{side} speaks CURVE with the public key {}; any {peers} that knows it is let in",
            ours.public()
        ),
    }
    Ok(Security::CurveServer {
        ours,
        allowed: Arc::new(Allowed::new(allowed)),
    })
}

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

    /// The marked identity frame of connection `client` (libzmq's form of
    /// a generated routing id: a zero byte and a 32-bit number).
    fn identity(&self, client: u32) -> [u8; 13] {
        let mut identity = [0u8; 13];
        identity[..8].copy_from_slice(&self.0);
        identity[9..].copy_from_slice(&client.to_be_bytes());
        identity
    }

    /// The connection an identity frame made by [`Incarnation::identity`]
    /// names; `None` for another run's or a foreign one.
    fn client(&self, identity: &[u8]) -> Option<u32> {
        let rest = identity.strip_prefix(&self.0)?;
        match rest {
            [0, a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }
}

/// Runs the proxy until `shutdown` or `stop` is set.
pub fn run(config: &ProxyConfig, stop: &Stop) -> Result<(), Error> {
    let node = mgmt::node_name();
    let status = || {
        mgmt::to_ascii_text(&json!({
            "success": 0,
            "msg": "vPoller Proxy status",
            "result": {
                "status": "running",
                "hostname": node,
                "mgmt": config.mgmt,
                "frontend": config.frontend,
                "backend": config.backend,
            }
        }))
    };
    mgmt::beside(
        &config.mgmt,
        "Uknown method name received",
        stop,
        &status,
        || relay::run(config, stop),
    )?;
    log::info!("proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Incarnation;

    #[test]
    fn identities_name_their_connection_for_this_run_only() {
        let (this, earlier) = (Incarnation::new(), Incarnation::new());
        let identity = this.identity(0x0102_0304);
        assert_eq!(this.client(&identity), Some(0x0102_0304));
        assert_eq!(earlier.client(&identity), None);
        assert_eq!(this.client(&identity[..12]), None);
        assert_eq!(this.client(b"\x00abcd"), None);
    }
}
