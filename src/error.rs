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
    /// Talking to the vSphere host failed (the agent): it could not be
    /// reached, did not answer in time, refused the certificate check or the
    /// login, answered with a SOAP fault or with something that is not the
    /// vSphere API.
    VSphere {
        /// What went wrong, for callers to match on.
        kind: VSphereKind,
        /// The whole description, as [`Error`]'s `Display` shows it.
        message: String,
    },
}

/// The kind of a vSphere failure ([`Error::VSphere`]), decided once where the
/// failure is seen (the transport, the session, the XML reader), so that
/// callers never read the message's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VSphereKind {
    /// No answer within the time allowed (connecting, or the task's timeout).
    Timeout,
    /// The TLS handshake failed: a certificate that is not trusted or is
    /// too weak, or a peer that does not speak TLS.
    Tls,
    /// The host could not be reached (refused, no route, no such name), or
    /// the connection broke before the answer was whole.
    Unreachable,
    /// The answer is not the vSphere API: not XML, no SOAP body, an HTTP
    /// status other than 200 and 500, a part of the API missing.
    Protocol,
    /// The login was refused, or the server no longer knows the session
    /// (the `NotAuthenticated` fault).
    NotAuthenticated,
    /// Any other SOAP fault.
    Fault {
        /// The fault's type, e.g. `InvalidProperty`, `NoPermission`.
        name: String,
        /// The server's message (`faultstring`), possibly empty.
        text: String,
    },
}

/// The text a panic was raised with, when it has one (`panic!` with a
/// literal or a format).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl Error {
    pub(crate) fn zmq(action: &'static str, source: zmq::Error) -> Error {
        Error::Zmq { action, source }
    }

    /// A vSphere failure of `kind` described by `message`.
    pub(crate) fn vsphere(kind: VSphereKind, message: impl Into<String>) -> Error {
        Error::VSphere {
            kind,
            message: message.into(),
        }
    }

    /// The SOAP fault of type `name` with the server's `text`: kind
    /// [`VSphereKind::NotAuthenticated`] for `NotAuthenticated`, otherwise
    /// [`VSphereKind::Fault`]; the message reads `vSphere fault NAME: TEXT`.
    pub(crate) fn fault(name: &str, text: &str) -> Error {
        let message = if text.is_empty() {
            format!("vSphere fault {name}")
        } else {
            format!("vSphere fault {name}: {text}")
        };
        let kind = if name == "NotAuthenticated" {
            VSphereKind::NotAuthenticated
        } else {
            VSphereKind::Fault {
                name: name.to_owned(),
                text: text.to_owned(),
            }
        };
        Error::VSphere { kind, message }
    }

    /// The kind of a vSphere failure; `None` for other errors.
    pub fn vsphere_kind(&self) -> Option<&VSphereKind> {
        match self {
            Error::VSphere { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Whether this is the SOAP fault of type `name`.
    pub(crate) fn is_fault(&self, name: &str) -> bool {
        matches!(self.vsphere_kind(), Some(VSphereKind::Fault { name: fault, .. }) if fault == name)
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
            Error::VSphere { message, .. } => f.write_str(message),
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
    fn faults_read_as_before_and_have_kinds() {
        let gone = Error::fault("NotAuthenticated", "The session is not authenticated.");
        assert_eq!(
            gone.to_string(),
            "vSphere fault NotAuthenticated: The session is not authenticated."
        );
        assert_eq!(gone.vsphere_kind(), Some(&VSphereKind::NotAuthenticated));
        let denied = Error::fault("NoPermission", "");
        assert_eq!(denied.to_string(), "vSphere fault NoPermission");
        assert!(denied.is_fault("NoPermission") && !gone.is_fault("NotAuthenticated"));
        assert_eq!(Error::InvalidArgument("x".into()).vsphere_kind(), None);
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
