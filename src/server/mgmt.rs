//! The management socket both programs serve (a REP socket): `status` and
//! `shutdown` requests, with py-vpoller's replies and error texts, and the
//! client side that `stop` and `status` command lines use.

use crate::error::Error;
use crate::server::Stop;
use serde_json::{json, Value};

/// What a management request asks for.
enum Command {
    Status,
    Shutdown,
    /// Answer this reply text and carry on.
    Reply(String),
}

/// Reads a management request as py-vpoller does; `unknown` is the reply's
/// text for an unknown method (the proxy's says "Uknown", sic).
fn command(request: &[u8], unknown: &str) -> Command {
    let Ok(msg) = serde_json::from_slice::<Value>(request) else {
        return Command::Reply("Invalid message received".into());
    };
    let method = msg.as_object().and_then(|fields| fields.get("method"));
    match method {
        None => Command::Reply(to_ascii_text(
            &json!({"success": 1, "msg": "Missing method name"}),
        )),
        Some(Value::String(name)) if name == "status" => Command::Status,
        Some(Value::String(name)) if name == "shutdown" => Command::Shutdown,
        Some(_) => Command::Reply(to_ascii_text(&json!({"success": 1, "msg": unknown}))),
    }
}

/// Answers management requests on `socket` (a bound REP socket) until
/// `stop` is set: `status` with `status()`, `shutdown` by setting `stop`,
/// anything else with py-vpoller's error text (`unknown` for an unknown
/// method). It runs in a thread of its own, so that the relaying and task
/// loops never wait on it.
fn serve(
    socket: &zmq::Socket,
    unknown: &str,
    stop: &Stop,
    status: &dyn Fn() -> String,
) -> Result<(), Error> {
    while !stop.is_set() {
        match socket.poll(zmq::POLLIN, 250) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        }
        let request = match socket.recv_bytes(zmq::DONTWAIT) {
            Ok(request) => request,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(error) => return Err(error.into()),
        };
        let reply = match command(&request, unknown) {
            Command::Status => status(),
            Command::Shutdown => {
                stop.set();
                shutdown_reply()
            }
            Command::Reply(text) => text,
        };
        socket.send(reply.as_bytes(), 0)?;
    }
    Ok(())
}

/// Runs `work` (a program's main loop, which ends once `stop` is set) with
/// the management loop ([`serve`]) beside it in a thread of its own; either
/// one ending stops the other.
pub(crate) fn beside(
    socket: zmq::Socket,
    unknown: &str,
    stop: &Stop,
    status: &(dyn Fn() -> String + Sync),
    work: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let managing = scope.spawn(move || {
            let outcome = serve(&socket, unknown, stop, status);
            stop.set();
            outcome
        });
        let worked = work();
        stop.set();
        let managed = managing
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the management loop panicked".into())));
        worked.and(managed)
    })
}

/// The reply to `shutdown`.
fn shutdown_reply() -> String {
    to_ascii_text(&json!({"success": 0, "msg": "Shutdown time has arrived"}))
}

/// pyzmq's `send_json`: `json.dumps` with its default separators and
/// non-ASCII characters escaped.
pub(crate) fn to_ascii_text(value: &Value) -> String {
    crate::helpers::ascii_json(value)
}

/// Sends `{"method": method}` to the management endpoint and returns the
/// reply text (`stop` and `status` of the command lines), waiting at most
/// `timeout_ms`.
pub fn request(endpoint: &str, method: &str, timeout_ms: i32) -> Result<String, Error> {
    let client = crate::Client::new(endpoint, 1, timeout_ms)?;
    let reply = client.try_run(&json!({"method": method}).to_string())?;
    Ok(reply)
}

/// This machine's name, as Python's `platform.node()` gives it.
#[cfg(not(unix))]
pub(crate) fn node_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// This machine's name, as Python's `platform.node()` gives it.
#[cfg(unix)]
pub(crate) fn node_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most buffer.len() bytes into buffer.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return String::new();
    }
    let end = buffer
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
