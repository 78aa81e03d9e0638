//! The C ABI of the Zabbix module's helpers: the request for an item key's
//! parameters and the item's typed value from vPoller's reply.

use crate::capi::{
    boundary, record, set_option, VPOLLER_AGENT_CACHE_TTL_S, VPOLLER_AGENT_MIRROR,
    VPOLLER_AGENT_MIRROR_IDLE_S, VPOLLER_AGENT_MIRROR_MAX_VALUES, VPOLLER_AGENT_TIMEOUT_MS,
};
use crate::error::Error;
use crate::local::AgentSettings;
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

/// Sets one of the VPOLLER_AGENT_* options every host's agent shares
/// (VPOLLER_AGENT_TIMEOUT_MS, VPOLLER_AGENT_CACHE_TTL_S, VPOLLER_AGENT_MIRROR,
/// VPOLLER_AGENT_MIRROR_IDLE_S, VPOLLER_AGENT_MIRROR_MAX_VALUES) to `value`,
/// as `vpoller_agent_set_option` reads it; the agents take it from their
/// next request on. The others (port, certificate checks) come from each
/// host's row in the registry.
///
/// Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for a NULL argument,
/// an option not shared by the agents or a bad value (the reason in
/// `vpoller_last_error()`), leaving the settings as they were. Not to be
/// called while another thread runs a request on the same handle.
#[no_mangle]
pub extern "C" fn vpoller_local_set_option(
    local: *mut vpoller_local,
    option: c_int,
    value: *const c_char,
) -> c_int {
    set_option(
        || boundary::local_arg(local),
        option,
        value,
        |handle| match option {
            VPOLLER_AGENT_TIMEOUT_MS
            | VPOLLER_AGENT_CACHE_TTL_S
            | VPOLLER_AGENT_MIRROR
            | VPOLLER_AGENT_MIRROR_IDLE_S
            | VPOLLER_AGENT_MIRROR_MAX_VALUES => Ok(handle.local.settings().options()),
            other => Err(Error::InvalidArgument(format!(
                "agent option {other} is not one the local mode's agents share (a host's port \
                 and certificate checks come from its registry row)"
            ))),
        },
        |handle, options| handle.local.set_settings(AgentSettings::of(&options)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::{
        vpoller_last_error, VPOLLER_AGENT_CA_FILE, VPOLLER_AGENT_PORT,
        VPOLLER_ERR_INVALID_ARGUMENT, VPOLLER_OK,
    };
    use std::ffi::{CStr, CString};

    #[test]
    fn local_mode_takes_the_options_its_agents_share() {
        let dir = std::env::temp_dir().join(format!("vpoller-local-set-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = CString::new(dir.join("v.db").to_str().unwrap()).unwrap();
        let local = vpoller_local_new(db.as_ptr(), 5000);
        assert!(!local.is_null());
        let set = |option, value: &str| {
            let value = CString::new(value).unwrap();
            let status = vpoller_local_set_option(local, option, value.as_ptr());
            // SAFETY: the thread's last error, a NUL-terminated string.
            let error = unsafe { CStr::from_ptr(vpoller_last_error()) };
            (status, error.to_string_lossy().into_owned())
        };
        // SAFETY: the handle was made above and is freed at the end.
        let settings = || unsafe { &*local }.local.settings();
        assert_eq!(
            settings(),
            AgentSettings {
                timeout_ms: 5000,
                ..AgentSettings::default()
            }
        );
        assert!(settings().mirror);
        for (option, value) in [
            (VPOLLER_AGENT_MIRROR, "0"),
            (VPOLLER_AGENT_MIRROR_IDLE_S, "60"),
            (VPOLLER_AGENT_MIRROR_MAX_VALUES, "5000"),
            (VPOLLER_AGENT_CACHE_TTL_S, "0"),
            (VPOLLER_AGENT_TIMEOUT_MS, "1000"),
        ] {
            assert_eq!(set(option, value).0, VPOLLER_OK, "{option} {value}");
        }
        let changed = AgentSettings {
            timeout_ms: 1000,
            cache_ttl_s: 0,
            mirror: false,
            mirror_idle_s: 60,
            mirror_max_values: 5000,
        };
        assert_eq!(settings(), changed);
        for (option, value, reason) in [
            (
                VPOLLER_AGENT_MIRROR,
                "2",
                "VPOLLER_AGENT_MIRROR wants 1 (on) or 0 (off)",
            ),
            (
                VPOLLER_AGENT_MIRROR_IDLE_S,
                "0",
                "VPOLLER_AGENT_MIRROR_IDLE_S wants a number of seconds from 1 to 604800",
            ),
            (
                VPOLLER_AGENT_MIRROR_MAX_VALUES,
                "100000001",
                "VPOLLER_AGENT_MIRROR_MAX_VALUES wants a number of values from 1 to 100000000",
            ),
            (
                VPOLLER_AGENT_PORT,
                "443",
                "is not one the local mode's agents share",
            ),
            (
                VPOLLER_AGENT_CA_FILE,
                "/etc/ssl/ca.pem",
                "come from its registry row",
            ),
            (99, "1", "agent option 99 is not one"),
        ] {
            let (status, error) = set(option, value);
            assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT, "{option} {value}");
            assert!(error.contains(reason), "{option} {value}: {error}");
        }
        // Refusals leave the settings as they were.
        assert_eq!(settings(), changed);
        let one = CString::new("1").unwrap();
        assert_eq!(
            vpoller_local_set_option(ptr::null_mut(), VPOLLER_AGENT_MIRROR, one.as_ptr()),
            VPOLLER_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            vpoller_local_set_option(local, VPOLLER_AGENT_MIRROR, ptr::null()),
            VPOLLER_ERR_INVALID_ARGUMENT
        );
        vpoller_local_free(local);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
