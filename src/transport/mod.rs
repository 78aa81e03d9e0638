//! ZeroMQ's wire protocol (ZMTP 3.0, NULL mechanism), spoken by this
//! library itself on `tcp://` and `ipc://` endpoints: the wire format every
//! libzmq 4 peer (pyzmq, ffi-rzmq, libvpoller) speaks, without libzmq's I/O
//! threads.
//!
//! A libzmq socket hands every message between the thread that owns the
//! socket and an I/O thread, both ways; a client, a proxy and a worker add
//! six such hand-offs to a round trip. Reading and writing the connection
//! in the thread that handles the message leaves only the network's own.
//!
//! - [`codec`]: frames, commands and the greeting as bytes;
//! - [`Connection`]: one connection's protocol state, without I/O
//!   (handshake, heartbeats, the envelope of each socket type);
//! - [`endpoint`]: endpoints as libzmq reads them;
//! - [`stream`]: the byte streams under a connection, the one dial and
//!   reconnect policy, and how read errors are taken.
//!
//! Knows nothing of vPoller, vSphere or C.

pub(crate) mod codec;
mod connection;
pub(crate) mod curve;
pub(crate) mod endpoint;
pub(crate) mod stream;

pub(crate) use connection::{Connection, Event, SocketType};
pub(crate) use stream::{Dialer, Listener, Reading, Socket, Stream, RECONNECT_INTERVAL};
