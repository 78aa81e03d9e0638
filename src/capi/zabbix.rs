//! The C ABI of the Zabbix module's helpers: the request for an item key's
//! parameters and the item's typed value from vPoller's reply.

use crate::capi::{boundary, record};
use crate::error::Error;
use crate::zabbix::{self, ItemValue};
use std::os::raw::{c_char, c_int};
use std::ptr;

/// `vpoller_zabbix_value`: the item has no value; `*text` holds the reason
/// (vPoller's message), for Zabbix's "not supported".
pub const VPOLLER_ZABBIX_FAIL: c_int = 0;
/// `vpoller_zabbix_value`: a whole number from 0 up, as decimal text.
pub const VPOLLER_ZABBIX_UINT64: c_int = 1;
/// `vpoller_zabbix_value`: any other number, as text for strtod.
pub const VPOLLER_ZABBIX_DOUBLE: c_int = 2;
/// `vpoller_zabbix_value`: text.
pub const VPOLLER_ZABBIX_TEXT: c_int = 3;

/// The vPoller request for a Zabbix item key's parameters, `nparam` strings
/// in the order `method, hostname, name, properties, key, username,
/// password, counter-name, instance, perf-interval` (empty or NULL ones are
/// left out; `properties` is comma separated). Returns the JSON text (free
/// with `vpoller_free_string`), or NULL with the reason in
/// `vpoller_last_error()` when `method` or `hostname` is missing, a
/// parameter is not UTF-8 or there are more than ten.
#[no_mangle]
pub extern "C" fn vpoller_zabbix_request(
    nparam: c_int,
    params: *const *const c_char,
) -> *mut c_char {
    boundary::guard(
        |_| ptr::null_mut(),
        || {
            let outcome = boundary::str_array(params, nparam)
                .and_then(|texts| zabbix::request(&texts).map_err(Error::InvalidArgument));
            record(&outcome);
            match outcome {
                Ok(text) => boundary::malloc_string(&text),
                Err(_) => ptr::null_mut(),
            }
        },
    )
}

/// The value of the item that sent `request` (from `vpoller_zabbix_request`)
/// and got `reply` (the text `vpoller_run` returned, a failure included);
/// with `discovery` non-zero, the result in low-level discovery form
/// (`{"data": [{"{#VSPHERE.VM.NAME}": ...}, ...]}`). Writes the value's text,
/// or the reason there is none, to `*text` (free with `vpoller_free_string`)
/// and returns one of the VPOLLER_ZABBIX_* types. `*text` is left as it was
/// only if a bug inside the library was caught (VPOLLER_ZABBIX_FAIL then).
#[no_mangle]
pub extern "C" fn vpoller_zabbix_value(
    request: *const c_char,
    reply: *const c_char,
    discovery: c_int,
    text: *mut *mut c_char,
) -> c_int {
    boundary::guard(
        |_| VPOLLER_ZABBIX_FAIL,
        || {
            let outcome = (|| {
                let request = boundary::str_arg(request, "request")?;
                let reply = boundary::str_arg(reply, "reply")?;
                Ok::<_, Error>(zabbix::item_value(request, reply, discovery != 0))
            })();
            let (kind, value) = match outcome {
                Ok(Ok(ItemValue::Unsigned(number))) => (VPOLLER_ZABBIX_UINT64, number.to_string()),
                Ok(Ok(ItemValue::Float(number))) => (VPOLLER_ZABBIX_DOUBLE, format!("{number:?}")),
                Ok(Ok(ItemValue::Text(value))) => (VPOLLER_ZABBIX_TEXT, value),
                Ok(Err(reason)) => (VPOLLER_ZABBIX_FAIL, reason),
                Err(error) => (VPOLLER_ZABBIX_FAIL, error.to_string()),
            };
            boundary::write_out(text, boundary::malloc_string(&value));
            kind
        },
    )
}

/// Requests answered in this process, without proxy or worker, by the
/// agents of the vSphere hosts in a host registry (vconnector's SQLite
/// database, as `vpoller-worker hosts` manages it). Opaque: create it with
/// `vpoller_local_new`, release it with `vpoller_local_free`.
#[allow(non_camel_case_types)]
pub struct vpoller_local {
    local: crate::local::Local,
}

/// Opens the host registry at `db`; each task may take `timeout_ms` (0 or
/// less: 60000). Returns a new handle owned by the caller, or NULL with the
/// reason in `vpoller_last_error()`.
#[no_mangle]
pub extern "C" fn vpoller_local_new(db: *const c_char, timeout_ms: c_int) -> *mut vpoller_local {
    boundary::guard(
        |_| ptr::null_mut(),
        || {
            let outcome = boundary::str_arg(db, "db").and_then(|db| {
                let timeout = u64::try_from(timeout_ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .unwrap_or(60_000);
                crate::local::Local::open(db, timeout)
            });
            record(&outcome);
            match outcome {
                Ok(local) => Box::into_raw(Box::new(vpoller_local { local })),
                Err(_) => ptr::null_mut(),
            }
        },
    )
}

/// Runs the task request `msg` (with its `hostname`) against that host's
/// agent and returns the reply text a vPoller worker sends (free with
/// `vpoller_free_string`); NULL only for a NULL argument or when memory
/// runs out. Threads may share the handle.
#[no_mangle]
pub extern "C" fn vpoller_local_run(
    local: *const vpoller_local,
    msg: *const c_char,
) -> *mut c_char {
    boundary::guard(
        |error| boundary::malloc_string(&error.to_reply()),
        || {
            let outcome = boundary::local_arg(local).and_then(|handle| {
                let msg = boundary::str_arg(msg, "msg")?;
                Ok(handle.local.run(msg))
            });
            record(&outcome);
            match outcome {
                Ok(reply) => boundary::malloc_string(&reply),
                Err(_) => ptr::null_mut(),
            }
        },
    )
}

/// Releases a handle from `vpoller_local_new`; NULL does nothing.
#[no_mangle]
pub extern "C" fn vpoller_local_free(local: *mut vpoller_local) {
    boundary::guard(|_| (), || boundary::local_free(local))
}
