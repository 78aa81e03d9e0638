//! The one error type of the library, and the one place that turns an error
//! into the reply text vPoller clients expect.

use std::fmt;

/// The text py-vpoller's `VPollerClient` returns in `msg` when no attempt got
/// a reply. Kept exactly, since monitoring templates match on it.
pub const NO_REPLY_MSG: &str = "Did not receive response, aborting...";

/// Everything that can keep a request from getting a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No reply came back within any of the attempts.
    NoReply {
        /// How many times the request was sent.
        attempts: u32,
    },
    /// An argument given by the caller was unusable (a NULL pointer, text that
    /// is not UTF-8, a message that is not a JSON object). Nothing was sent.
    InvalidArgument(String),
    /// A reply arrived but cannot be handed out as text (invalid UTF-8, an
    /// interior NUL byte, more than one frame, or not JSON where JSON was asked for).
    InvalidReply(String),
    /// ZeroMQ refused an operation, e.g. an endpoint it cannot parse.
    Zmq {
        /// What the library was doing.
        action: &'static str,
        /// ZeroMQ's own error.
        source: zmq::Error,
    },
    /// A bug in the library (a caught panic). Reported, never propagated as a crash.
    Internal(String),
    /// The vSphere host could not be reached, did not answer in time, or
    /// answered with something that is not the vSphere API (the agent).
    VSphere(String),
    /// The vSphere host answered a call with a SOAP fault (the agent).
    Fault {
        /// The fault's type, e.g. `NotAuthenticated`, `InvalidLogin`.
        fault: String,
        /// The server's message.
        message: String,
    },
}

impl From<zmq::Error> for Error {
    fn from(source: zmq::Error) -> Error {
        Error::Zmq {
            action: "serving",
            source,
        }
    }
}

impl Error {
    pub(crate) fn zmq(action: &'static str, source: zmq::Error) -> Error {
        Error::Zmq { action, source }
    }

    /// The vPoller failure reply for this error, `{"success": 1, "msg": "..."}`,
    /// in the same text form as py-vpoller produces it (`", "` and `": "`
    /// separators, non-ASCII characters kept raw).
    ///
    /// ```
    /// let error = vpoller::Error::NoReply { attempts: 3 };
    /// assert_eq!(
    ///     error.to_reply(),
    ///     r#"{"success": 1, "msg": "Did not receive response, aborting..."}"#
    /// );
    /// ```
    pub fn to_reply(&self) -> String {
        failure_reply(&self.to_string())
    }
}

/// Formats `{"success": 1, "msg": <msg>}` with `msg` escaped as JSON.
fn failure_reply(msg: &str) -> String {
    // Serialising a `str` cannot fail.
    let quoted = serde_json::to_string(msg).unwrap_or_else(|_| String::from("\"\""));
    format!("{{\"success\": 1, \"msg\": {quoted}}}")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoReply { .. } => f.write_str(NO_REPLY_MSG),
            Error::InvalidArgument(reason) => write!(f, "Invalid argument: {reason}"),
            Error::InvalidReply(reason) => write!(f, "Invalid reply from vPoller: {reason}"),
            Error::Zmq { action, source } => write!(f, "ZeroMQ error while {action}: {source}"),
            Error::Internal(reason) => write!(f, "Internal error in libvpoller: {reason}"),
            Error::VSphere(reason) => f.write_str(reason),
            Error::Fault { fault, message } if message.is_empty() => {
                write!(f, "vSphere fault {fault}")
            }
            Error::Fault { fault, message } => write!(f, "vSphere fault {fault}: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Zmq { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_escapes_quotes_and_keeps_non_ascii() {
        let error = Error::InvalidArgument("name \"vm\" in Zürich".into());
        assert_eq!(
            error.to_reply(),
            r#"{"success": 1, "msg": "Invalid argument: name \"vm\" in Zürich"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&error.to_reply()).unwrap();
        assert_eq!(parsed["success"], 1);
    }

    #[test]
    fn no_reply_text_is_py_vpollers() {
        let reply = Error::NoReply { attempts: 1 }.to_reply();
        assert_eq!(
            reply,
            "{\"success\": 1, \"msg\": \"Did not receive response, aborting...\"}"
        );
    }
}
