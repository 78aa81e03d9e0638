//! A small HTTP/1.1 server for the exporter's few pages: `GET` and `HEAD`,
//! keep-alive, bodies sent with their length, a thread per connection up
//! to [`MOST_CONNECTIONS`]. Requests are read with bounds (header size,
//! idle time), so a client that sends garbage or nothing gets an error or
//! is dropped, never a thread stuck for good.

use crate::server::Stop;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The most connections served at once; more get `503`.
pub const MOST_CONNECTIONS: usize = 64;
/// The largest request head (request line and headers) accepted.
const MOST_HEAD_BYTES: usize = 16 * 1024;
/// How long a connection may stay idle (between or inside requests).
const IDLE: Duration = Duration::from_secs(60);
/// How long writing an answer may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the stop flag is looked at.
const POLL: Duration = Duration::from_millis(100);

/// One request, as the handler sees it.
#[derive(Debug, Default)]
pub struct Request {
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query's parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body, shared between answers that send the same bytes.
    pub body: Arc<Vec<u8>>,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=UTF-8",
            body: Arc::new(body.as_bytes().to_vec()),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The handler of every request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serves `listener` until `stop` is set.
pub fn serve(listener: TcpListener, handler: Arc<Handler>, stop: &Stop) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    // Accepting blocks; a watcher wakes it with a connection of its own
    // once `stop` is set.
    let mut own = listener.local_addr()?;
    if own.ip().is_unspecified() {
        own.set_ip(match own {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let watched = stop.clone();
    let watcher = std::thread::Builder::new()
        .name("vpoller-exporter-stop".into())
        .spawn(move || {
            while !watched.is_set() {
                std::thread::sleep(POLL);
            }
            let _ = TcpStream::connect_timeout(&own, Duration::from_secs(5));
        })?;
    let live = Arc::new(AtomicUsize::new(0));
    while !stop.is_set() {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // Out of descriptors and the like: wait, then go on.
                log::warn!("accepting a connection: {error}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if stop.is_set() {
            break;
        }
        if live.load(Ordering::Acquire) >= MOST_CONNECTIONS {
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(
                &mut stream,
                &Response::text(503, "Too many connections\n"),
                false,
                true,
            );
            continue;
        }
        live.fetch_add(1, Ordering::AcqRel);
        let handler = handler.clone();
        let counter = live.clone();
        let stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("vpoller-exporter-http".into())
            .spawn(move || {
                serve_connection(stream, &*handler, &stop);
                counter.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(error) = spawned {
            live.fetch_sub(1, Ordering::AcqRel);
            log::warn!("cannot start a connection thread: {error}");
        }
    }
    let _ = watcher.join();
    Ok(())
}

/// What reading a request head found.
enum Head {
    Request(Request, String, bool),
    Closed,
    Bad(u16, &'static str),
}

fn serve_connection(stream: TcpStream, handler: &Handler, stop: &Stop) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while !stop.is_set() {
        match read_head(&mut reader) {
            Head::Closed => return,
            Head::Bad(status, message) => {
                let _ = write_response(&mut writer, &Response::text(status, message), false, true);
                linger(&writer, &mut reader);
                return;
            }
            Head::Request(request, method, keep_alive) => {
                let response = match method.as_str() {
                    "GET" | "HEAD" => {
                        // A panic in a handler costs this answer, not the server.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&request)))
                            .unwrap_or_else(|_| Response::text(500, "# Collection failed\n"))
                    }
                    _ => Response::text(405, "Method Not Allowed\n"),
                };
                let head_only = method == "HEAD";
                if write_response(&mut writer, &response, head_only, !keep_alive).is_err()
                    || !keep_alive
                {
                    return;
                }
            }
        }
    }
}

/// Closes a connection whose request was not read whole: the answer is
/// sent, then what the client still sends is read and dropped for a
/// moment, so that closing does not reset the connection before the
/// client read the answer.
fn linger(writer: &TcpStream, reader: &mut BufReader<TcpStream>) {
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = std::io::copy(&mut reader.by_ref().take(1 << 20), &mut std::io::sink());
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

/// Reads one line of at most `budget` bytes (the line's end included);
/// `None` at the end of the stream or on a timeout, `Some(Err)` when too long.
fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut usize) -> Option<Result<String, ()>> {
    let mut line = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX) + 1;
    match reader.by_ref().take(limit).read_until(b'\n', &mut line) {
        Ok(0) => None,
        Ok(read) => {
            if read > *budget || !line.ends_with(b"\n") {
                if read > *budget {
                    return Some(Err(()));
                }
                return None;
            }
            *budget -= read;
            while line
                .last()
                .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
            {
                line.pop();
            }
            // Bytes that are not UTF-8 (a Latin-1 header) are replaced.
            Some(Ok(String::from_utf8_lossy(&line).into_owned()))
        }
        Err(_) => None,
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Head {
    let mut budget = MOST_HEAD_BYTES;
    // Blank lines before a request are allowed (RFC 9112, 2.2).
    let line = loop {
        match read_line(reader, &mut budget) {
            None => return Head::Closed,
            Some(Err(())) => return Head::Bad(400, "Bad request line\n"),
            Some(Ok(line)) if line.is_empty() => continue,
            Some(Ok(line)) => break line,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Bad(400, "Bad request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Head::Bad(400, "Only HTTP/1.x is served\n");
    }
    let mut request = Request::default();
    loop {
        match read_line(reader, &mut budget) {
            None => return Head::Closed,
            Some(Err(())) => return Head::Bad(431, "Request head too large\n"),
            Some(Ok(line)) if line.is_empty() => break,
            Some(Ok(line)) => {
                let Some((name, value)) = line.split_once(':') else {
                    return Head::Bad(400, "Bad header line\n");
                };
                request
                    .headers
                    .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }
    // A body (none is expected) is read and dropped; chunked ones are refused.
    if request
        .header("transfer-encoding")
        .is_some_and(|coding| !coding.eq_ignore_ascii_case("identity"))
    {
        return Head::Bad(400, "Request bodies are not accepted\n");
    }
    if let Some(length) = request.header("content-length") {
        let Ok(length) = length.parse::<u64>() else {
            return Head::Bad(400, "Bad Content-Length\n");
        };
        if length > MOST_HEAD_BYTES as u64 {
            return Head::Bad(400, "Request bodies are not accepted\n");
        }
        if std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink()).ok()
            != Some(length)
        {
            return Head::Closed;
        }
    }
    let connection = request.header("connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection.as_deref() {
        Some(value) if value.contains("close") => false,
        Some(value) if value.contains("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // An absolute target (`http://host/path`) is reduced to its path.
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').map(|at| &rest[at..]).unwrap_or("/"),
        None => path,
    };
    request.path = decode(path, false);
    request.query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key, true), decode(value, true))
        })
        .collect();
    Head::Request(request, method.to_owned(), keep_alive)
}

/// Percent-decoding (and `+` as a space in a query); invalid escapes and
/// bytes that are not UTF-8 are kept as they are or replaced.
fn decode(text: &str, query: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'%' && at + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[at + 1..at + 3]).ok();
            if let Some(value) = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(value);
                at += 3;
                continue;
            }
        }
        out.push(if query && byte == b'+' { b' ' } else { byte });
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(decode("a%20b+c", true), "a b c");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("%zz%4", true), "%zz%4");
        assert_eq!(decode("%C3%BC", true), "ü");
        assert_eq!(decode("%", true), "%");
        assert_eq!(decode("x%41", true), "xA");
    }
}
