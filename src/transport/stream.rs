//! Byte streams under a [`Connection`](super::Connection): TCP or Unix
//! domain sockets, blocking ([`Stream`], for the client and the worker) or
//! non-blocking ([`Socket`] and [`Listener`], for the proxy and the
//! management sockets over mio), with the one dial-and-reconnect policy
//! and the one reading of I/O errors every driver uses.

use super::endpoint::{Address, Endpoint};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// `$body` with `$inner` bound to whichever socket the enum `$value`
/// (with variants `Tcp` and, on Unix, `Unix`) holds.
macro_rules! either {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            Self::Tcp($inner) => $body,
            #[cfg(unix)]
            Self::Unix($inner) => $body,
        }
    };
}

/// mio's `Source` for an enum of mio sockets, by its variant.
macro_rules! source_of_either {
    ($type:ty) => {
        impl mio::event::Source for $type {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> io::Result<()> {
                either!(self, inner => inner.register(registry, token, interests))
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> io::Result<()> {
                either!(self, inner => inner.reregister(registry, token, interests))
            }

            fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
                either!(self, inner => inner.deregister(registry))
            }
        }
    };
}

/// `Read` and `Write` for an enum of streams, by its variant.
macro_rules! io_of_either {
    ($type:ty) => {
        impl Read for $type {
            fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
                either!(self, inner => inner.read(buffer))
            }
        }

        impl Write for $type {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                either!(self, inner => inner.write(bytes))
            }

            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}

/// Between attempts to reach a peer that is not up (libzmq's default
/// reconnect interval).
pub(crate) const RECONNECT_INTERVAL: Duration = Duration::from_millis(100);

/// What one read from a stream came to, taken the same way by every
/// driver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Bytes came.
    Data,
    /// The call was interrupted by a signal: read again.
    Again,
    /// Nothing now (a read timeout on a blocking stream, nothing to read on
    /// a non-blocking one): ask again later.
    Later,
    /// The peer closed the connection, or it broke: the reason.
    Closed(String),
}

impl Reading {
    /// A read from a blocking stream with a read timeout: the timeout shows
    /// as `WouldBlock` (Unix) or `TimedOut` (Windows).
    pub(crate) fn blocking(outcome: io::Result<usize>) -> Reading {
        match outcome {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => Reading::Later,
            other => Reading::nonblocking(other),
        }
    }

    /// A read from a non-blocking socket, where `TimedOut` is the end of
    /// the connection (the peer's host stopped answering).
    pub(crate) fn nonblocking(outcome: io::Result<usize>) -> Reading {
        match outcome {
            Ok(0) => Reading::Closed("the peer closed the connection".into()),
            Ok(_) => Reading::Data,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Reading::Later,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Reading::Again,
            Err(error) => Reading::Closed(error.to_string()),
        }
    }
}

/// A connected blocking stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP, Nagle's algorithm off.
    Tcp(TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Bounds each read (`None`: blocks until data).
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        // A zero timeout means "none" to the OS: the smallest real one instead.
        let timeout = timeout.map(|timeout| timeout.max(Duration::from_millis(1)));
        either!(self, stream => stream.set_read_timeout(timeout))
    }

    /// Bounds each write.
    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        either!(self, stream => stream.set_write_timeout(timeout))
    }

    /// A second handle on the same connection (one thread reads, others
    /// write).
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(stream) => Stream::Tcp(stream.try_clone()?),
            #[cfg(unix)]
            Stream::Unix(stream) => Stream::Unix(stream.try_clone()?),
        })
    }

    /// Ends the connection for every handle on it.
    pub(crate) fn shutdown(&self) {
        let _ = either!(self, stream => stream.shutdown(Shutdown::Both));
    }
}

io_of_either!(Stream);

/// Connects to an endpoint, as libzmq does: the addresses are tried in
/// turn, a peer that is not up is tried again every
/// [`RECONNECT_INTERVAL`], and a name is resolved again whenever the
/// address that answered last does not (libzmq resolves at every attempt,
/// in its I/O thread; here resolving is on the caller's thread, so the
/// address that worked is tried first, without asking the resolver).
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    endpoint: Endpoint,
    last_good: std::sync::Arc<std::sync::Mutex<Option<Address>>>,
}

impl Dialer {
    /// A dialer for `endpoint`, or `None` when it is not an endpoint of
    /// ours ([`Endpoint::parse`]).
    pub(crate) fn new(endpoint: &str) -> Option<Dialer> {
        Endpoint::parse(endpoint).map(|endpoint| Dialer {
            endpoint,
            last_good: Default::default(),
        })
    }

    /// A connection made before `deadline`, its writes bounded by
    /// `write_timeout`; the last failure when the deadline passes first.
    pub(crate) fn dial(&self, deadline: Instant, write_timeout: Duration) -> io::Result<Stream> {
        loop {
            let failure = match self.round(deadline) {
                Ok(stream) => {
                    stream.set_write_timeout(write_timeout)?;
                    return Ok(stream);
                }
                Err(failure) => failure,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(failure);
            }
            std::thread::sleep(RECONNECT_INTERVAL.min(remaining));
        }
    }

    /// One try of the address that answered last, or of every address.
    fn round(&self, deadline: Instant) -> io::Result<Stream> {
        use crate::sync::Lock;
        let remembered = self.last_good.locked().take();
        let addresses = match remembered {
            Some(address) => vec![address],
            None => self.endpoint.connect_addresses()?,
        };
        let mut failure = io::Error::new(io::ErrorKind::TimedOut, "no time left to connect");
        for address in addresses {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match connect(&address, remaining) {
                Ok(stream) => {
                    *self.last_good.locked() = Some(address);
                    return Ok(stream);
                }
                Err(error) => failure = error,
            }
        }
        Err(failure)
    }
}

fn connect(address: &Address, timeout: Duration) -> io::Result<Stream> {
    match address {
        Address::Tcp(address) => {
            let stream = TcpStream::connect_timeout(address, timeout)?;
            stream.set_nodelay(true)?;
            Ok(Stream::Tcp(stream))
        }
        #[cfg(unix)]
        Address::Ipc(address) => Ok(Stream::Unix(UnixStream::connect_addr(&unix_address(
            address,
        )?)?)),
    }
}

#[cfg(unix)]
fn unix_address(
    address: &super::endpoint::IpcAddress,
) -> io::Result<std::os::unix::net::SocketAddr> {
    use super::endpoint::IpcAddress;
    match address {
        IpcAddress::Path(path) => std::os::unix::net::SocketAddr::from_pathname(path),
        #[cfg(target_os = "linux")]
        IpcAddress::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
        }
        #[cfg(not(target_os = "linux"))]
        IpcAddress::Abstract(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract socket names are Linux's",
        )),
    }
}

/// A non-blocking connection for a mio loop.
pub(crate) enum Socket {
    /// TCP, Nagle's algorithm off.
    Tcp(mio::net::TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(mio::net::UnixStream),
}

io_of_either!(Socket);
source_of_either!(Socket);

/// A non-blocking listening socket for a mio loop. A Unix socket's file is
/// removed when it is dropped, as libzmq removes it.
pub(crate) struct Listener {
    bound: Bound,
    /// The Unix socket's file, with the inode it was made with.
    #[cfg(unix)]
    file: Option<(std::path::PathBuf, Option<u64>)>,
}

/// What a [`Listener`] listens with.
enum Bound {
    /// TCP.
    Tcp(mio::net::TcpListener),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(mio::net::UnixListener),
}

source_of_either!(Bound);

impl Listener {
    /// Listens on `endpoint`, with an error that names it: an endpoint that
    /// is not ours, a name that does not resolve, an address in use.
    pub(crate) fn bind(endpoint: &str) -> Result<Listener, crate::Error> {
        let refused = |reason: String| {
            crate::Error::InvalidArgument(format!("cannot bind to {endpoint}: {reason}"))
        };
        let parsed = Endpoint::parse(endpoint).ok_or_else(|| {
            refused(
                "not an endpoint this program serves (tcp://HOST:PORT, tcp://*:PORT, \
                 tcp://INTERFACE:PORT or ipc://PATH)"
                    .into(),
            )
        })?;
        let addresses = parsed
            .bind_addresses()
            .map_err(|error| refused(error.to_string()))?;
        let mut failure = None;
        for address in addresses {
            match listen(&address) {
                Ok(listener) => return Ok(listener),
                Err(error) => failure = Some(error),
            }
        }
        Err(refused(failure.map_or_else(
            || "no address".to_owned(),
            |error| error.to_string(),
        )))
    }

    /// What a mio loop registers to learn of connections to take.
    pub(crate) fn source(&mut self) -> &mut dyn mio::event::Source {
        &mut self.bound
    }

    /// A connection waiting to be taken, with the peer's address for logs.
    pub(crate) fn accept(&self) -> io::Result<(Socket, String)> {
        match &self.bound {
            Bound::Tcp(listener) => {
                let (stream, address) = listener.accept()?;
                let _ = stream.set_nodelay(true);
                Ok((Socket::Tcp(stream), address.to_string()))
            }
            #[cfg(unix)]
            Bound::Unix(listener) => {
                let (stream, _) = listener.accept()?;
                let name = self.file.as_ref().map_or_else(
                    || "a local peer".to_owned(),
                    |(path, _)| path.display().to_string(),
                );
                Ok((Socket::Unix(stream), name))
            }
        }
    }
}

fn listen(address: &Address) -> io::Result<Listener> {
    match address {
        Address::Tcp(address) => Ok(Listener {
            bound: Bound::Tcp(mio::net::TcpListener::bind(*address)?),
            #[cfg(unix)]
            file: None,
        }),
        #[cfg(unix)]
        Address::Ipc(address) => {
            let path = match address {
                super::endpoint::IpcAddress::Path(path) => {
                    // A socket file a previous run left behind is replaced,
                    // as libzmq replaces it; one that a running program
                    // listens on is not taken from it.
                    if UnixStream::connect(path).is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            "another program listens on it",
                        ));
                    }
                    let _ = std::fs::remove_file(path);
                    Some(path.clone())
                }
                super::endpoint::IpcAddress::Abstract(_) => None,
            };
            let listener = std::os::unix::net::UnixListener::bind_addr(&unix_address(address)?)?;
            listener.set_nonblocking(true)?;
            let file = path.map(|path| {
                use std::os::unix::fs::MetadataExt;
                let inode = std::fs::metadata(&path).map(|meta| meta.ino()).ok();
                (path, inode)
            });
            Ok(Listener {
                bound: Bound::Unix(mio::net::UnixListener::from_std(listener)),
                file,
            })
        }
    }
}

#[cfg(unix)]
impl Drop for Listener {
    fn drop(&mut self) {
        // Only the file this listener made: another program may have
        // replaced it since.
        use std::os::unix::fs::MetadataExt;
        if let Some((path, Some(inode))) = &self.file {
            if std::fs::metadata(path).is_ok_and(|meta| meta.ino() == *inode) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_socket_file_in_use_is_not_taken_and_a_stale_one_is() {
        let dir = std::env::temp_dir().join(format!("vpoller-ipc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let endpoint = format!("ipc://{}", dir.join("socket").display());
        let first = Listener::bind(&endpoint).unwrap();
        let refused = Listener::bind(&endpoint).err().unwrap().to_string();
        assert!(
            refused.contains("another program listens on it"),
            "{refused}"
        );
        // The refused attempt left the file alone: the first still serves.
        let dialer = Dialer::new(&endpoint).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(dialer.dial(deadline, Duration::from_secs(10)).is_ok());
        drop(first);
        assert!(
            !dir.join("socket").exists(),
            "the file outlived its listener"
        );
        // A file nobody listens on (left by a killed program) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        drop(stale);
        assert!(dir.join("socket").exists());
        let second = Listener::bind(&endpoint).unwrap();
        // A listener whose file was replaced by another program's leaves
        // that file in place.
        std::fs::remove_file(dir.join("socket")).unwrap();
        let other = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        drop(second);
        assert!(
            dir.join("socket").exists(),
            "removed another program's file"
        );
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
