//! The C ABI of libvpoller. Every function here is thin: it converts its
//! arguments in `boundary`, calls the Rust [`Client`], and
//! records the outcome as the calling thread's last status and error.

mod agent;
mod boundary;
mod zabbix;

pub use agent::*;
pub use zabbix::*;

use crate::client::{Client, ClientOption};
use crate::error::Error;
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::ptr;

/// The call succeeded. For `vpoller_run` and `vpoller_try_run`: a reply came
/// from vPoller (whatever its own `success` field says).
pub const VPOLLER_OK: c_int = 0;
/// No reply from vPoller within any of the attempts; the result is
/// `{"success": 1, "msg": "Did not receive response, aborting..."}`.
pub const VPOLLER_ERR_NO_REPLY: c_int = 1;
/// A NULL pointer, text that is not UTF-8, or a message that is not a JSON
/// object. Nothing was sent.
pub const VPOLLER_ERR_INVALID_ARGUMENT: c_int = 2;
/// vPoller's reply cannot be returned as a C string (invalid UTF-8, an
/// interior NUL byte, or more than one frame).
pub const VPOLLER_ERR_INVALID_REPLY: c_int = 3;
/// ZeroMQ refused an operation (for example an endpoint it cannot parse).
pub const VPOLLER_ERR_ZMQ: c_int = 4;
/// A bug inside libvpoller was caught before it could crash the program.
pub const VPOLLER_ERR_INTERNAL: c_int = 5;
/// The vSphere host could not be reached, refused the login, sent an
/// untrusted certificate, answered with a fault or not in time (agent calls).
pub const VPOLLER_ERR_VSPHERE: c_int = 6;

/// Attempts per request when `vpoller_client_new` is given 0 or less
/// (py-vpoller's default).
pub const VPOLLER_DEFAULT_RETRIES: c_int = 3;
/// Milliseconds each attempt waits when `vpoller_client_new` is given 0 or
/// less (py-vpoller's default).
pub const VPOLLER_DEFAULT_TIMEOUT_MS: c_int = 3000;
/// The vSphere API's port for an agent unless set ("443").
pub const VPOLLER_AGENT_DEFAULT_PORT: c_int = 443;
/// VPOLLER_AGENT_CONNECT_TIMEOUT_MS unless set.
pub const VPOLLER_AGENT_DEFAULT_CONNECT_TIMEOUT_MS: c_int = 10_000;
/// VPOLLER_AGENT_TIMEOUT_MS unless set.
pub const VPOLLER_AGENT_DEFAULT_TIMEOUT_MS: c_int = 60_000;
/// VPOLLER_AGENT_CACHE_TTL_S unless set.
pub const VPOLLER_AGENT_DEFAULT_CACHE_TTL_S: c_int = 300;
/// The largest VPOLLER_AGENT_TIMEOUT_MS and VPOLLER_AGENT_CONNECT_TIMEOUT_MS
/// accepted (one hour).
pub const VPOLLER_AGENT_MAX_TIMEOUT_MS: c_int = 3_600_000;
/// VPOLLER_AGENT_MIRROR_IDLE_S unless set.
pub const VPOLLER_AGENT_DEFAULT_MIRROR_IDLE_S: c_int = 900;
/// The largest VPOLLER_AGENT_MIRROR_IDLE_S accepted (one week).
pub const VPOLLER_AGENT_MAX_MIRROR_IDLE_S: c_int = 604_800;
/// VPOLLER_AGENT_MIRROR_MAX_VALUES unless set.
pub const VPOLLER_AGENT_DEFAULT_MIRROR_MAX_VALUES: c_int = 1_000_000;
/// The largest VPOLLER_AGENT_MIRROR_MAX_VALUES accepted.
pub const VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES: c_int = 100_000_000;

// The header's values are the library's own.
const _: () = {
    assert!(VPOLLER_DEFAULT_RETRIES as u32 == crate::client::DEFAULT_RETRIES);
    assert!(VPOLLER_DEFAULT_TIMEOUT_MS as u32 == crate::client::DEFAULT_TIMEOUT_MS);
    assert!(VPOLLER_AGENT_DEFAULT_PORT as u16 == crate::agent::DEFAULT_PORT);
    assert!(
        VPOLLER_AGENT_DEFAULT_CONNECT_TIMEOUT_MS as u64 == crate::agent::DEFAULT_CONNECT_TIMEOUT_MS
    );
    assert!(VPOLLER_AGENT_DEFAULT_TIMEOUT_MS as u64 == crate::agent::DEFAULT_TIMEOUT_MS);
    assert!(VPOLLER_AGENT_DEFAULT_CACHE_TTL_S as u64 == crate::agent::DEFAULT_CACHE_TTL_S);
    assert!(VPOLLER_AGENT_MAX_TIMEOUT_MS as u64 == crate::agent::MAX_TIMEOUT_MS);
    assert!(VPOLLER_AGENT_DEFAULT_MIRROR_IDLE_S as u64 == crate::agent::DEFAULT_MIRROR_IDLE_S);
    assert!(
        VPOLLER_AGENT_DEFAULT_MIRROR_MAX_VALUES as u64 == crate::agent::DEFAULT_MIRROR_MAX_VALUES
    );
    assert!(VPOLLER_AGENT_MAX_MIRROR_IDLE_S as u64 == crate::local::MAX_MIRROR_IDLE_S);
    assert!(VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES as u64 == crate::local::MAX_MIRROR_MAX_VALUES);
};

/// Option for `vpoller_client_set_option`: the vPoller Proxy's CURVE public
/// key, 40 characters of Z85 (as `vpoller-proxy keygen` prints it). Set,
/// requests travel encrypted and authenticated (ZeroMQ's CURVE), and only a
/// proxy holding that key's secret can read or answer them; a proxy that
/// does not speak CURVE, or refuses the client, gives no reply. "" (the
/// default): plain ZMTP, as py-vpoller speaks it.
pub const VPOLLER_CLIENT_CURVE_SERVER_KEY: c_int = 1;
/// Option: the client's own CURVE public key (Z85), given with its secret
/// key (VPOLLER_CLIENT_CURVE_SECRET_KEY); it must be that secret key's.
/// Set without the secret key, requests fail with
/// VPOLLER_ERR_INVALID_ARGUMENT until the secret key is set too. Optional:
/// the secret key alone is enough.
pub const VPOLLER_CLIENT_CURVE_PUBLIC_KEY: c_int = 2;
/// Option: the client's own CURVE secret key (Z85), for a proxy that lets in
/// only the client keys it lists. Unset, the client makes a fresh key pair
/// when the server key is set (`vpoller_client_curve_public_key` shows its
/// public key).
pub const VPOLLER_CLIENT_CURVE_SECRET_KEY: c_int = 3;
/// Option: the path of a file holding the client's CURVE secret key, one
/// line of Z85 as `vpoller-proxy keygen FILE` writes it (a czmq
/// certificate's `secret-key` line is taken too); it sets
/// VPOLLER_CLIENT_CURVE_SECRET_KEY to that key, which then stays out of
/// command lines and configuration files. On Unix a file that its group or
/// others may read is refused (chmod 600). "" unsets the secret key.
pub const VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE: c_int = 4;

/// A client of one vPoller Proxy endpoint. Opaque: create it with
/// `vpoller_client_new`, release it with `vpoller_client_free`.
#[allow(non_camel_case_types)]
pub struct vpoller_client {
    client: Client,
}

fn status_of(error: &Error) -> c_int {
    match error {
        Error::NoReply { .. } => VPOLLER_ERR_NO_REPLY,
        Error::InvalidArgument(_) => VPOLLER_ERR_INVALID_ARGUMENT,
        Error::InvalidReply(_) => VPOLLER_ERR_INVALID_REPLY,
        Error::Zmq { .. } => VPOLLER_ERR_ZMQ,
        Error::Internal(_) => VPOLLER_ERR_INTERNAL,
        Error::VSphere { .. } => VPOLLER_ERR_VSPHERE,
    }
}

/// Records `result` as the thread's last status and returns that status.
pub(crate) fn record<T>(result: &Result<T, Error>) -> c_int {
    match result {
        Ok(_) => {
            boundary::clear_last_error();
            VPOLLER_OK
        }
        Err(error) => {
            let status = status_of(error);
            boundary::set_last_error(status, error);
            status
        }
    }
}

/// Creates a client of the vPoller Proxy at `endpoint`, e.g.
/// "tcp://localhost:10123".
///
/// `retries` is the number of attempts per request in all, `timeout_ms` how
/// long each attempt waits for the reply; 0 or less means the defaults of
/// py-vpoller (3 attempts, 3000 ms). No connection is needed yet: the proxy
/// may start later.
///
/// On "tcp://" and "ipc://" endpoints the calling thread speaks ZeroMQ's
/// wire protocol (ZMTP 3.0, as a REQ socket) itself, and no thread is
/// started; other endpoints ("inproc://", source addresses, other
/// transports) use a libzmq REQ socket.
///
/// Returns a new client owned by the caller, to be released with
/// `vpoller_client_free`; or NULL when `endpoint` is NULL, not UTF-8 or
/// refused by ZeroMQ, with the reason in `vpoller_last_error()`.
/// `endpoint` is only read during the call.
#[no_mangle]
pub extern "C" fn vpoller_client_new(
    endpoint: *const c_char,
    retries: c_int,
    timeout_ms: c_int,
) -> *mut vpoller_client {
    boundary::guard(
        |_| ptr::null_mut(),
        || {
            let created = boundary::str_arg(endpoint, "endpoint")
                .and_then(|endpoint| Client::new(endpoint, retries, timeout_ms));
            record(&created);
            created.map_or(ptr::null_mut(), |client| {
                boundary::client_into_raw(vpoller_client { client })
            })
        },
    )
}

/// Releases a client and closes its sockets. NULL does nothing.
///
/// No other thread may be using `client` during or after this call.
#[no_mangle]
pub extern "C" fn vpoller_client_free(client: *mut vpoller_client) {
    boundary::guard(|_| (), || boundary::client_free(client))
}

/// Sets one of the VPOLLER_CLIENT_* options of `client` to `value`, a
/// NUL-terminated UTF-8 string (surrounding white space is ignored); ""
/// unsets the option.
///
/// Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for a NULL `client`
/// or `value` (use "" to unset), text that is not UTF-8, an unknown option, a
/// key that is not 40 characters of Z85, a public key that is not the secret
/// key's, or a key file that cannot be read, holds no key or may be read by
/// others (the reason in `vpoller_last_error()`); the options are then as
/// they were.
///
/// May be called while other threads run requests on the same client:
/// requests already under way finish as they began, the next ones use the
/// new setting. `value` is only read during the call.
#[no_mangle]
pub extern "C" fn vpoller_client_set_option(
    client: *mut vpoller_client,
    option: c_int,
    value: *const c_char,
) -> c_int {
    boundary::guard(
        |_| VPOLLER_ERR_INTERNAL,
        || {
            let outcome = (|| {
                let handle = boundary::client_arg(client)?;
                let value = boundary::str_arg(value, "value")?;
                let simple = |option| handle.client.set_option(option, value);
                match option {
                    VPOLLER_CLIENT_CURVE_SERVER_KEY => simple(ClientOption::CurveServerKey),
                    VPOLLER_CLIENT_CURVE_PUBLIC_KEY => simple(ClientOption::CurvePublicKey),
                    VPOLLER_CLIENT_CURVE_SECRET_KEY => simple(ClientOption::CurveSecretKey),
                    VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE => {
                        let secret = if value.trim().is_empty() {
                            String::new()
                        } else {
                            crate::curve::read_secret_key_file(Path::new(value))?
                                .secret()
                                .to_z85()
                        };
                        handle
                            .client
                            .set_option(ClientOption::CurveSecretKey, &secret)
                    }
                    other => Err(Error::InvalidArgument(format!(
                        "unknown client option {other}"
                    ))),
                }
            })();
            record(&outcome)
        },
    )
}

/// The client's CURVE public key (40 characters of Z85) once
/// VPOLLER_CLIENT_CURVE_SERVER_KEY is set: the one given, or that of the
/// fresh key pair the client made, for a proxy's list of allowed clients.
///
/// Returns a new string owned by the caller, to be released with
/// `vpoller_free_string`; or NULL, with `vpoller_last_status()` VPOLLER_OK,
/// when no server key is set or a public key is set without its secret key;
/// or NULL with VPOLLER_ERR_INVALID_ARGUMENT for a NULL `client`
/// (VPOLLER_ERR_INTERNAL when memory runs out).
#[no_mangle]
pub extern "C" fn vpoller_client_curve_public_key(client: *const vpoller_client) -> *mut c_char {
    boundary::guard(
        |_| ptr::null_mut(),
        || {
            let outcome = boundary::client_arg(client).and_then(|handle| {
                match handle.client.curve_public_key() {
                    None => Ok(ptr::null_mut()),
                    Some(key) => {
                        let text = boundary::malloc_string(&key);
                        if text.is_null() {
                            Err(Error::Internal("out of memory for the key".into()))
                        } else {
                            Ok(text)
                        }
                    }
                }
            });
            record(&outcome);
            outcome.unwrap_or(ptr::null_mut())
        },
    )
}

/// Sends `msg`, a JSON object as UTF-8 text such as
/// {"method": "vm.get", "hostname": "vc01", "name": "vm01", "properties": ["runtime.powerState"]},
/// and waits for vPoller's reply, retrying as configured.
///
/// Returns a new NUL-terminated string owned by the caller, to be released
/// with `vpoller_free_string`: vPoller's reply exactly as the worker sent it
/// (less a trailing NUL byte), or, when there is none, a failure result of the
/// same shape, `{"success": 1, "msg": "<reason>"}`. The reason is also in
/// `vpoller_last_error()`, and `vpoller_last_status()` tells the cases apart
/// without parsing: VPOLLER_OK for a reply from vPoller. Returns NULL only
/// when memory for the string cannot be allocated.
///
/// A NULL `client` or `msg`, invalid UTF-8, text that is not JSON and JSON
/// that is not an object are refused at once, without sending anything.
/// `msg` is only read during the call. Many threads may run requests on one
/// client at the same time; they proceed in parallel.
#[no_mangle]
pub extern "C" fn vpoller_run(client: *mut vpoller_client, msg: *const c_char) -> *mut c_char {
    let mut reply = ptr::null_mut();
    vpoller_try_run(client, msg, &mut reply);
    reply
}

/// Like `vpoller_run`, and returns the status (VPOLLER_OK when vPoller
/// replied, otherwise a VPOLLER_ERR_* code) while the text goes to `*reply`.
///
/// On return `*reply` is a new string owned by the caller (release it with
/// `vpoller_free_string`): the reply, or for a failure the result
/// `{"success": 1, "msg": "<reason>"}`; NULL only when memory ran out. A NULL
/// `reply` is VPOLLER_ERR_INVALID_ARGUMENT and nothing is sent.
#[no_mangle]
pub extern "C" fn vpoller_try_run(
    client: *mut vpoller_client,
    msg: *const c_char,
    reply: *mut *mut c_char,
) -> c_int {
    boundary::guard(
        |error| {
            boundary::write_out(reply, boundary::malloc_string(&error.to_reply()));
            VPOLLER_ERR_INTERNAL
        },
        || {
            if reply.is_null() {
                return record::<()>(&Err(Error::InvalidArgument("reply is NULL".into())));
            }
            let outcome = boundary::client_arg(client).and_then(|handle| {
                let msg = boundary::bytes_arg(msg, "msg")?;
                handle.client.run_with(msg, boundary::malloc_string)
            });
            let status = record(&outcome);
            let text = outcome.unwrap_or_else(|error| boundary::malloc_string(&error.to_reply()));
            boundary::write_out(reply, text);
            status
        },
    )
}

/// The `success` field of a vPoller reply: 0 when vPoller succeeded, 1 (or
/// another value) when it reports a failure, -1 when `reply` is NULL or not
/// a JSON object with an integer `success` (the output of a helper such as
/// vpoller.helpers.zabbix is plain text). Does not change the last status.
#[no_mangle]
pub extern "C" fn vpoller_reply_success(reply: *const c_char) -> c_int {
    boundary::guard(
        |_| -1,
        || {
            boundary::str_arg(reply, "reply")
                .ok()
                .and_then(crate::client::reply_success)
                .and_then(|success| c_int::try_from(success).ok())
                .unwrap_or(-1)
        },
    )
}

/// Releases a string returned by `vpoller_run`, `vpoller_try_run` or
/// another call whose result the caller owns. NULL does nothing. Each string
/// must be released exactly once.
#[no_mangle]
pub extern "C" fn vpoller_free_string(s: *mut c_char) {
    boundary::guard(|_| (), || boundary::free_string(s))
}

/// The status of the last call on this thread that reports one
/// (`vpoller_client_new`, `vpoller_client_set_option`,
/// `vpoller_client_curve_public_key`, `vpoller_run`, `vpoller_try_run`):
/// VPOLLER_OK or a VPOLLER_ERR_* code. Other threads' calls do not change it.
#[no_mangle]
pub extern "C" fn vpoller_last_status() -> c_int {
    boundary::guard(|_| VPOLLER_ERR_INTERNAL, boundary::last_status)
}

/// A description of the last failure on this thread, "" after a success.
/// Never NULL. Owned by the library: valid until the next libvpoller call
/// on this thread; do not free it.
#[no_mangle]
pub extern "C" fn vpoller_last_error() -> *const c_char {
    boundary::guard(|_| c"panic".as_ptr(), boundary::last_message)
}

/// A short static description of a status code, e.g. "no reply from
/// vPoller". Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn vpoller_status_str(status: c_int) -> *const c_char {
    let text = match status {
        VPOLLER_OK => c"ok",
        VPOLLER_ERR_NO_REPLY => c"no reply from vPoller",
        VPOLLER_ERR_INVALID_ARGUMENT => c"invalid argument",
        VPOLLER_ERR_INVALID_REPLY => c"invalid reply from vPoller",
        VPOLLER_ERR_ZMQ => c"ZeroMQ error",
        VPOLLER_ERR_INTERNAL => c"internal error",
        VPOLLER_ERR_VSPHERE => c"vSphere error",
        _ => c"unknown status",
    };
    text.as_ptr()
}

/// The library's version, e.g. "0.1.0". Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn vpoller_version() -> *const c_char {
    VERSION.as_ptr()
}

const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(version) => version,
    Err(_) => panic!("version holds a NUL byte"),
};
