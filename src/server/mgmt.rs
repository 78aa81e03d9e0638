//! The management socket both programs serve (a REP socket): `status` and
//! `shutdown` requests, with py-vpoller's replies and error texts, and the
//! client side that `stop` and `status` command lines use.

use crate::error::Error;
use serde_json::{json, Value};

/// What a management request asks for.
pub(crate) enum Command {
    Status,
    Shutdown,
    /// Answer this reply text and carry on.
    Reply(String),
}

/// Reads a management request as py-vpoller does; `unknown` is the reply's
/// text for an unknown method (the proxy's says "Uknown", sic).
pub(crate) fn command(request: &[u8], unknown: &str) -> Command {
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

/// The reply to `shutdown`.
pub(crate) fn shutdown_reply() -> String {
    to_ascii_text(&json!({"success": 0, "msg": "Shutdown time has arrived"}))
}

/// pyzmq's `send_json`: `json.dumps` with its default separators and
/// non-ASCII characters escaped.
pub(crate) fn to_ascii_text(value: &Value) -> String {
    crate::server::helpers::ascii_json(value)
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
