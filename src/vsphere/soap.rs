//! The SOAP transport: envelopes, one HTTPS POST per call over a keep-alive
//! pool, faults, and the bounds every call keeps (connect timeout, deadline,
//! response size).
//!
//! The pool belongs to one process: after `fork()` a child builds its own and
//! never writes to a connection it inherited (those are the parent's).

use crate::error::{Error, VSphereKind};
use crate::sync::Lock;
use crate::vsphere::tls::{self, RefusedFingerprint, Verification, WeakKey};
use crate::vsphere::xml::{self, Node};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Responses larger than this are refused (a 25 000-VM inventory with a few
/// properties is far below it).
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// A managed object reference: its type and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MoRef {
    pub kind: String,
    pub id: String,
}

impl MoRef {
    pub fn new(kind: &str, id: &str) -> MoRef {
        MoRef {
            kind: kind.to_owned(),
            id: id.to_owned(),
        }
    }

    /// Reads a `<x type="T">id</x>` element.
    pub fn from_node(node: &Node) -> Option<MoRef> {
        Some(MoRef {
            kind: node.type_attr.clone()?,
            id: node.text.clone(),
        })
    }

    /// Writes `<name type="T">id</name>`.
    pub fn write(&self, out: &mut String, name: &str) {
        let _ = write!(
            out,
            "<{name} type=\"{}\">{}</{name}>",
            escape(&self.kind),
            escape(&self.id)
        );
    }
}

/// Escapes text for an XML element or attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
    out
}

/// Writes `<name>text</name>`, escaped.
pub(crate) fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

/// `timeout` from now, or, should the clock not reach that far, the
/// farthest instant it does: never a panic, whatever the duration.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    let mut timeout = timeout;
    loop {
        // Ends: `now + 0` is `now`.
        match now.checked_add(timeout) {
            Some(deadline) => return deadline,
            None => timeout /= 2,
        }
    }
}

/// Where and how to reach the vSphere host.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub verification: Verification,
    pub connect_timeout: Duration,
}

thread_local! {
    /// SOAP calls this thread sent, to any host.
    static CALLS_ON_THIS_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many SOAP calls this thread has sent (a task that sent none was
/// answered from memory).
pub(crate) fn calls_on_this_thread() -> u64 {
    CALLS_ON_THIS_THREAD.with(std::cell::Cell::get)
}

/// The HTTPS side of a vSphere connection.
pub(crate) struct Transport {
    url: String,
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    refused: RefusedFingerprint,
    /// The pool, with the fork generation it was made in.
    http: Mutex<(u64, ureq::Agent)>,
    /// When the transport was made: the origin of `last_answer`.
    created: Instant,
    /// When the host last sent an HTTP response (any status), in
    /// nanoseconds after `created` plus one; 0 before the first.
    last_answer: AtomicU64,
    /// The SOAP calls sent, by method (a retry on a stale connection counts).
    calls: Mutex<BTreeMap<String, u64>>,
}

impl Transport {
    pub fn new(endpoint: Endpoint) -> Result<Transport, Error> {
        let (tls, refused) = tls::client_config(&endpoint.verification)?;
        let host = if endpoint.host.contains(':') && !endpoint.host.starts_with('[') {
            format!("[{}]", endpoint.host) // an IPv6 address
        } else {
            endpoint.host.clone()
        };
        let url = format!("https://{host}:{}/sdk", endpoint.port);
        let http = build_pool(&tls, endpoint.connect_timeout);
        Ok(Transport {
            url,
            endpoint,
            tls,
            refused,
            http: Mutex::new((crate::fork::generation(), http)),
            created: Instant::now(),
            last_answer: AtomicU64::new(0),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether the host sent an HTTP response (to any call, a fault
    /// included) within `window`.
    pub fn answered_within(&self, window: Duration) -> bool {
        match self.last_answer.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let answered = Duration::from_nanos(at - 1);
                self.created.elapsed().saturating_sub(answered) < window
            }
        }
    }

    fn note_answer(&self) {
        let since = u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_answer.fetch_max(since + 1, Ordering::Relaxed);
    }

    /// The SOAP calls sent so far, by method.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.locked().clone()
    }

    fn count_call(&self, method: &str) {
        CALLS_ON_THIS_THREAD.with(|calls| calls.set(calls.get() + 1));
        let mut calls = self.calls.locked();
        match calls.get_mut(method) {
            Some(count) => *count += 1,
            None => {
                calls.insert(method.to_owned(), 1);
            }
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.endpoint.host, self.endpoint.port)
    }

    fn pool(&self) -> ureq::Agent {
        let mut http = self.http.locked();
        let generation = crate::fork::generation();
        if http.0 != generation {
            // The inherited connections are the parent's: dropping them here
            // only closes this process's descriptors (nothing is written).
            *http = (
                generation,
                build_pool(&self.tls, self.endpoint.connect_timeout),
            );
        }
        http.1.clone()
    }

    /// Posts one SOAP call and hands the response body to `read` (status 200),
    /// or returns the fault (status 500) or the transport failure.
    pub fn call<T>(
        &self,
        request: &Request<'_>,
        deadline: Instant,
        read: impl FnOnce(&mut dyn BufRead) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let body = request.envelope();
        // One retry on a broken keep-alive connection: the server may have
        // closed it while it sat in the pool (or restarted). Every call this
        // library makes is a read or a login, so sending it again is safe.
        let mut attempts_left = 2;
        let response = loop {
            attempts_left -= 1;
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| self.timed_out(request.method))?;
            let mut http_request = self
                .pool()
                .post(&self.url)
                .timeout(remaining)
                .set("Content-Type", "text/xml; charset=utf-8")
                .set(
                    "SOAPAction",
                    &format!("\"urn:vim25/{}\"", request.api_version),
                );
            if let Some(cookie) = request.cookie {
                http_request = http_request.set("Cookie", cookie);
            }
            self.count_call(request.method);
            match http_request.send_string(&body) {
                Ok(response) => break response,
                Err(ureq::Error::Status(_, response)) => break response,
                Err(ureq::Error::Transport(failure)) => {
                    if Instant::now() >= deadline {
                        return Err(self.timed_out(request.method));
                    }
                    let error = self.transport_error(request.method, &failure);
                    if attempts_left == 0 || !is_stale_connection(&failure) {
                        return Err(error);
                    }
                }
            }
        };
        self.note_answer();
        let status = response.status();
        let cookie = response
            .header("Set-Cookie")
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        let limited = response.into_reader().take(MAX_RESPONSE_BYTES);
        let mut reader = BufReader::with_capacity(64 * 1024, limited);
        let outcome = match status {
            200 => read(&mut reader),
            500 => xml::parse_body(&mut reader).and_then(|body| Err(fault_of(body))),
            other => Err(Error::vsphere(
                VSphereKind::Protocol,
                format!(
                    "{} answered {} with HTTP status {other}",
                    self.address(),
                    request.method
                ),
            )),
        };
        // The readers stop at the end of the response element: read the rest
        // of the body (the envelope's closing tags), so that the connection
        // goes back to the keep-alive pool instead of being closed. Only
        // when the answer was read as the API's: a broken one is dropped.
        let read_whole = match &outcome {
            Ok(_) => true,
            Err(error) => matches!(
                error.vsphere_kind(),
                Some(VSphereKind::Fault { .. } | VSphereKind::NotAuthenticated)
            ),
        };
        if read_whole {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        match outcome {
            // The body broke off or did not come in time: say which call.
            Err(Error::VSphere {
                kind: kind @ (VSphereKind::Timeout | VSphereKind::Unreachable),
                message,
            }) => Err(Error::vsphere(
                kind,
                format!(
                    "{message} (reading the answer to {} from {})",
                    request.method,
                    self.address()
                ),
            )),
            other => {
                if let (Some(cookie), Some(slot)) = (cookie, request.new_cookie) {
                    let mut slot = slot.locked();
                    *slot = Some(cookie);
                }
                other
            }
        }
    }

    /// The error for a call `method` that got no answer in time.
    pub fn timed_out(&self, method: &str) -> Error {
        Error::vsphere(
            VSphereKind::Timeout,
            format!(
                "timed out: no answer from {} to {method} within the request timeout",
                self.address()
            ),
        )
    }

    /// The error for a call that got no HTTP response, with its kind read
    /// from the causes ureq passes on (rustls' error, the socket's).
    fn transport_error(&self, method: &str, failure: &ureq::Transport) -> Error {
        let tls = causes(failure).find_map(tls_error);
        if let Some(weak) = tls.and_then(WeakKey::of) {
            return Error::vsphere(
                VSphereKind::Tls,
                format!(
                    "the TLS certificate of {} has a {}-bit RSA key, which is too weak to be \
                     accepted ({} bits at least); give the vSphere host a stronger certificate",
                    self.address(),
                    weak.bits,
                    WeakKey::min_bits()
                ),
            );
        }
        if matches!(
            tls,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return self.untrusted(failure);
        }
        let timed_out = io_kinds(failure).any(|kind| {
            matches!(
                kind,
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        });
        if tls.is_none() && timed_out {
            return self.timed_out(method);
        }
        // "connect error: Connection refused (os error 111)": ureq's words and the cause.
        let source = std::error::Error::source(failure).map(|source| source.to_string());
        let detail = match (failure.message(), source) {
            (Some(message), Some(source)) => format!("{message}: {source}"),
            (Some(message), None) => message.to_owned(),
            (None, Some(source)) => source,
            (None, None) => failure.kind().to_string(),
        };
        let kind = if tls.is_some() {
            VSphereKind::Tls
        } else {
            VSphereKind::Unreachable
        };
        Error::vsphere(
            kind,
            format!("cannot reach {} ({method}): {detail}", self.address()),
        )
    }

    /// The host's certificate did not pass the check.
    fn untrusted(&self, failure: &ureq::Transport) -> Error {
        let seen = self.refused.locked().clone();
        let seen = seen
            .map(|fingerprint| format!(" Its SHA-256 fingerprint is {fingerprint}."))
            .unwrap_or_default();
        Error::vsphere(
            VSphereKind::Tls,
            format!(
                "the TLS certificate of {} is not trusted ({}).{seen} Give the CA that signed it \
                 (ca_file), pin its fingerprint (fingerprint), or, on a trusted network only, \
                 turn verification off (insecure)",
                self.address(),
                failure.kind()
            ),
        )
    }
}

/// `failure` and the errors under it.
fn causes<'a>(
    failure: &'a ureq::Transport,
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let first: &(dyn std::error::Error + 'static) = failure;
    std::iter::successors(Some(first), |cause| cause.source())
}

/// The kinds of the I/O errors among the causes of `failure`.
fn io_kinds(failure: &ureq::Transport) -> impl Iterator<Item = std::io::ErrorKind> + '_ {
    causes(failure)
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
}

/// rustls' error, when `cause` is one or an I/O error that carries one (as
/// ureq's TLS stream passes handshake failures on).
fn tls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    cause.downcast_ref::<rustls::Error>().or_else(|| {
        cause
            .downcast_ref::<std::io::Error>()?
            .get_ref()?
            .downcast_ref::<rustls::Error>()
    })
}

fn build_pool(tls: &Arc<rustls::ClientConfig>, connect_timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(tls.clone())
        .timeout_connect(connect_timeout)
        .max_idle_connections_per_host(64)
        .max_idle_connections(256)
        .redirects(0)
        .user_agent(concat!("libvpoller/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether `failure` is a kept-alive connection the server had closed.
fn is_stale_connection(failure: &ureq::Transport) -> bool {
    use std::io::ErrorKind;
    io_kinds(failure).any(|kind| {
        matches!(
            kind,
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        )
    })
}

/// One SOAP call.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub this: &'a MoRef,
    /// The call's parameters, as XML elements.
    pub args: &'a str,
    pub api_version: &'a str,
    pub cookie: Option<&'a str>,
    /// Where a `Set-Cookie` of the response goes (for Login).
    pub new_cookie: Option<&'a Mutex<Option<String>>>,
}

impl Request<'_> {
    fn envelope(&self) -> String {
        let mut out = String::with_capacity(400 + self.args.len());
        out.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>",
        );
        let _ = write!(out, "<{} xmlns=\"urn:vim25\">", self.method);
        self.this.write(&mut out, "_this");
        out.push_str(self.args);
        let _ = write!(out, "</{}></soapenv:Body></soapenv:Envelope>", self.method);
        out
    }
}

/// Turns a SOAP Fault element into the error of its fault type.
pub(crate) fn fault_of(body: Node) -> Error {
    if body.name != "Fault" {
        return Error::vsphere(
            VSphereKind::Protocol,
            format!("HTTP 500 without a SOAP fault (got <{}>)", body.name),
        );
    }
    let message = body
        .child_text("faultstring")
        .unwrap_or("")
        .trim()
        .to_owned();
    let fault = body
        .child("detail")
        .and_then(|detail| detail.children.first())
        .map(|detail| match detail.xsi_type.as_ref() {
            Some(xml::XsiType::Vim(name)) => name.clone(),
            _ => detail
                .name
                .strip_suffix("Fault")
                .unwrap_or(&detail.name)
                .to_owned(),
        })
        .unwrap_or_else(|| String::from("SystemError"));
    Error::fault(&fault, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_by_their_detail() {
        let text = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>The session is not authenticated.</faultstring><detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated"><object type="Folder">group-d1</object></NotAuthenticatedFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let error = fault_of(xml::parse_body(text.as_bytes()).unwrap());
        assert_eq!(error.vsphere_kind(), Some(&VSphereKind::NotAuthenticated));
        assert_eq!(
            error.to_string(),
            "vSphere fault NotAuthenticated: The session is not authenticated."
        );
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert!(deadline_after(Duration::MAX) > now);
        assert!(deadline_after(Duration::from_millis(u64::MAX)) > now);
        let soon = deadline_after(Duration::from_secs(1));
        assert!(soon > now && soon <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn envelopes_escape_their_text() {
        let this = MoRef::new("SessionManager", "SessionManager");
        let mut args = String::new();
        element(&mut args, "userName", "a<b>&\"c\"");
        let request = Request {
            method: "Login",
            this: &this,
            args: &args,
            api_version: "6.5",
            cookie: None,
            new_cookie: None,
        };
        let envelope = request.envelope();
        assert!(envelope.contains("<userName>a&lt;b&gt;&amp;&quot;c&quot;</userName>"));
        assert!(envelope.contains("<_this type=\"SessionManager\">SessionManager</_this>"));
    }
}
