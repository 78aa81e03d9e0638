//! libvpoller: a client for [vPoller](https://github.com/dnaeon/py-vpoller),
//! the distributed VMware vSphere poller, for Rust and, through its C ABI,
//! for every language with a foreign function interface.
//!
//! A request is a JSON object such as
//! `{"method": "vm.get", "hostname": "vc01.example.org", "name": "vm01", "properties": ["runtime.powerState"]}`;
//! it goes over ZeroMQ to the vPoller Proxy, and the worker's reply, e.g.
//! `{"success": 0, "msg": "...", "result": [...]}`, comes back as text,
//! byte for byte as the worker wrote it. The behaviour is py-vpoller 0.7.3's
//! `VPollerClient` (attempts, timeouts, the failure reply), minus its per-call
//! setup costs: one ZeroMQ context per process and sockets reused across calls.
//!
//! ```no_run
//! let client = vpoller::Client::new(vpoller::DEFAULT_ENDPOINT, 3, 3000)?;
//! let reply = client.run(r#"{"method": "vm.discover", "hostname": "vc01.example.org"}"#);
//! println!("Received reply from vPoller: {reply}");
//! # Ok::<(), vpoller::Error>(())
//! ```
//!
//! The C functions (`vpoller_client_new`, `vpoller_run`, ...) are declared in
//! `include/vpoller.h`, generated from the `capi` module.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod agent;
pub mod capi;
mod client;
pub mod curve;
mod error;
pub mod exporter;
mod fork;
/// Entry points for the fuzz targets in `fuzz/` and their corpus test; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
pub mod helpers;
pub mod hosts;
pub mod local;
pub mod server;
mod sync;
#[cfg(test)]
mod test_hooks;
mod transport;
pub mod vsphere;
pub mod zabbix;

pub use agent::{Agent, AgentOptions};
pub use client::{
    reply_success, Client, ClientOption, DEFAULT_ENDPOINT, DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS,
};
pub use error::{Error, NO_REPLY_MSG};
pub use vsphere::Verification;
