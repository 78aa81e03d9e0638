//! ZeroMQ endpoints this library serves and reaches itself, read as libzmq
//! reads them: `tcp://HOST:PORT` (a name, an IPv4 or bracketed IPv6
//! literal; for binding also `*` and an interface name such as `eth0`;
//! names resolve to IPv4 addresses, as libzmq's default) and, on Unix,
//! `ipc://PATH` (a Unix domain socket; `ipc://@NAME` is Linux's abstract
//! namespace). Anything else (`inproc://`, source addresses, wildcard ports
//! and paths, other transports) is not ours.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
#[cfg(unix)]
use std::path::PathBuf;

/// An endpoint this library speaks itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `tcp://HOST:PORT`, the host as written.
    Tcp {
        /// `*`, an address, a name or an interface.
        host: String,
        /// The port.
        port: u16,
    },
    /// `ipc://...`.
    #[cfg(unix)]
    Ipc(IpcAddress),
}

/// Where a Unix domain socket lives.
#[cfg(unix)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpcAddress {
    /// A file.
    Path(PathBuf),
    /// A name in Linux's abstract namespace (`ipc://@name`).
    Abstract(Vec<u8>),
}

/// One address to connect to or listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    #[cfg(unix)]
    Ipc(IpcAddress),
}

/// The longest path a Unix domain socket address holds (`sun_path`, less
/// its NUL).
#[cfg(unix)]
const MAX_IPC_PATH: usize = 107;

impl Endpoint {
    /// Reads `text`; `None` when it is not an endpoint of ours.
    pub(crate) fn parse(text: &str) -> Option<Endpoint> {
        if let Some(address) = text.strip_prefix("tcp://") {
            if address.contains(';') {
                return None;
            }
            let (host, port) = address.rsplit_once(':')?;
            let port: u16 = port.parse().ok().filter(|port| *port != 0)?;
            if host.is_empty() {
                return None;
            }
            return Some(Endpoint::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        #[cfg(unix)]
        if let Some(path) = text.strip_prefix("ipc://") {
            if path.is_empty() || path == "*" || path.len() > MAX_IPC_PATH {
                return None;
            }
            return Some(Endpoint::Ipc(match path.strip_prefix('@') {
                Some(name) if cfg!(target_os = "linux") && !name.is_empty() => {
                    IpcAddress::Abstract(name.as_bytes().to_vec())
                }
                _ => IpcAddress::Path(PathBuf::from(path)),
            }));
        }
        None
    }

    /// The addresses to connect to, resolved now: a host name may point
    /// elsewhere by the next reconnection, as libzmq resolves it again.
    pub(crate) fn connect_addresses(&self) -> io::Result<Vec<Address>> {
        match self {
            Endpoint::Tcp { host, port } => {
                if let Some(ip) = literal(host) {
                    return Ok(vec![Address::Tcp(SocketAddr::new(ip, *port))]);
                }
                resolve(host, *port)
            }
            #[cfg(unix)]
            Endpoint::Ipc(address) => Ok(vec![Address::Ipc(address.clone())]),
        }
    }

    /// The addresses to listen on: `*` is every interface, an interface
    /// name is its IPv4 address, a host name resolves.
    pub(crate) fn bind_addresses(&self) -> io::Result<Vec<Address>> {
        match self {
            Endpoint::Tcp { host, port } => {
                if host == "*" {
                    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
                    return Ok(vec![Address::Tcp(any)]);
                }
                if let Some(ip) = literal(host) {
                    return Ok(vec![Address::Tcp(SocketAddr::new(ip, *port))]);
                }
                if let Some(ip) = interface_address(host) {
                    return Ok(vec![Address::Tcp(SocketAddr::new(ip, *port))]);
                }
                resolve(host, *port)
            }
            #[cfg(unix)]
            Endpoint::Ipc(address) => Ok(vec![Address::Ipc(address.clone())]),
        }
    }
}

/// An IP literal, bracketed or not.
fn literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// The IPv4 addresses of a host name.
fn resolve(host: &str, port: u16) -> io::Result<Vec<Address>> {
    let found: Vec<Address> = (host, port)
        .to_socket_addrs()?
        .filter(SocketAddr::is_ipv4)
        .map(Address::Tcp)
        .collect();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no IPv4 address"),
        ));
    }
    Ok(found)
}

/// The first IPv4 address of the network interface called `name`.
#[cfg(unix)]
fn interface_address(name: &str) -> Option<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs made, not yet freed.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_name.is_null() || node.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string of the node.
        let node_name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) };
        // SAFETY: ifa_addr points to a sockaddr of the node.
        let family = unsafe { (*node.ifa_addr).sa_family };
        if node_name.to_bytes() == name.as_bytes() && i32::from(family) == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let address = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in>() };
            found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                address.sin_addr.s_addr,
            ))));
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(not(unix))]
fn interface_address(_: &str) -> Option<IpAddr> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str, bind: bool) -> Option<String> {
        let endpoint = Endpoint::parse(text)?;
        let addresses = if bind {
            endpoint.bind_addresses()
        } else {
            endpoint.connect_addresses()
        };
        match addresses.ok()?.first()? {
            Address::Tcp(address) => Some(address.to_string()),
            #[cfg(unix)]
            Address::Ipc(address) => Some(format!("{address:?}")),
        }
    }

    #[test]
    fn endpoints_as_libzmq_reads_them() {
        assert_eq!(
            first("tcp://*:10123", true).as_deref(),
            Some("0.0.0.0:10123")
        );
        assert_eq!(
            first("tcp://127.0.0.1:9999", false).as_deref(),
            Some("127.0.0.1:9999")
        );
        assert_eq!(
            first("tcp://[::1]:9999", true).as_deref(),
            Some("[::1]:9999")
        );
        assert_eq!(
            first("tcp://localhost:10124", false).as_deref(),
            Some("127.0.0.1:10124")
        );
        // The loopback interface's address, as libzmq binds `tcp://lo:PORT`.
        assert_eq!(
            first("tcp://lo:10125", true).as_deref(),
            Some("127.0.0.1:10125")
        );
        // Parsed as ours, resolved at each connection attempt.
        assert!(Endpoint::parse("tcp://no-such-host.invalid:1").is_some());
        assert_eq!(first("tcp://no-such-host.invalid:1", false), None);
        for foreign in [
            "tcp://*:*",
            "tcp://*:0",
            "tcp://:10123",
            "tcp://127.0.0.1:1;127.0.0.1:2",
            "inproc://workers",
            "pgm://eth0;239.192.1.1:5555",
            "ipc://",
            "ipc://*",
        ] {
            assert_eq!(Endpoint::parse(foreign), None, "{foreign}");
        }
        assert_eq!(
            Endpoint::parse("ipc:///tmp/vpoller-frontend"),
            Some(Endpoint::Ipc(IpcAddress::Path(
                "/tmp/vpoller-frontend".into()
            )))
        );
        assert_eq!(
            Endpoint::parse("ipc://@vpoller"),
            Some(Endpoint::Ipc(IpcAddress::Abstract(b"vpoller".to_vec())))
        );
        assert_eq!(
            Endpoint::parse(&format!("ipc:///{}", "x".repeat(200))),
            None
        );
    }
}
