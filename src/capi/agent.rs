//! The C ABI of the vSphere agent: vPoller tasks run in the calling process,
//! straight against one vCenter or ESXi host.

use crate::agent::{Agent, AgentOptions, MAX_TIMEOUT_MS};
use crate::capi::{boundary, record, VPOLLER_ERR_INTERNAL};
use crate::error::Error;
use crate::vsphere::Verification;
use std::os::raw::{c_char, c_int};
use std::ptr;

/// An agent for one vSphere host. Opaque: create it with
/// `vpoller_agent_new`, release it with `vpoller_agent_free`.
#[allow(non_camel_case_types)]
pub struct vpoller_agent {
    agent: Agent,
}

/// Option for `vpoller_agent_set_option`: the HTTPS port of the vSphere API,
/// as decimal text ("443" unless set, or the port given in the host).
pub const VPOLLER_AGENT_PORT: c_int = 1;
/// Option: a PEM file of CA certificates to verify the host's certificate
/// against, instead of the system's trusted roots.
pub const VPOLLER_AGENT_CA_FILE: c_int = 2;
/// Option: the SHA-256 (64 hex digits) or SHA-1 (40 hex digits) fingerprint
/// the host's certificate must have, with or without colons. The error for
/// an untrusted certificate shows its SHA-256 fingerprint.
pub const VPOLLER_AGENT_FINGERPRINT: c_int = 3;
/// Option: "1" turns certificate verification off (only on a network you
/// trust: anyone on the path could read the password); "0" turns it back on
/// (the system's roots).
pub const VPOLLER_AGENT_INSECURE: c_int = 4;
/// Option: how long connecting may take, in milliseconds ("10000"; at most
/// "3600000", one hour).
pub const VPOLLER_AGENT_CONNECT_TIMEOUT_MS: c_int = 5;
/// Option: how long one task may take in all, in milliseconds ("60000"; at
/// most "3600000", one hour).
pub const VPOLLER_AGENT_TIMEOUT_MS: c_int = 6;
/// Option: how long object lookups are cached, in seconds ("300"; "0": off).
pub const VPOLLER_AGENT_CACHE_TTL_S: c_int = 7;

/// Creates an agent for the vSphere host `host` (a name or address, with an
/// optional ":port"), logging in as `user` with `pwd`. Nothing is sent yet:
/// `vpoller_agent_connect` or the first `vpoller_agent_run` logs in.
/// Certificates are verified against the system's trusted roots unless an
/// option says otherwise.
///
/// Returns a new agent owned by the caller, to be released with
/// `vpoller_agent_free`; or NULL when an argument is NULL, not UTF-8 or
/// unusable, with the reason in `vpoller_last_error()`. The strings are
/// copied; the password appears in no message.
#[no_mangle]
pub extern "C" fn vpoller_agent_new(
    host: *const c_char,
    user: *const c_char,
    pwd: *const c_char,
) -> *mut vpoller_agent {
    boundary::guard(
        |_| ptr::null_mut(),
        || {
            let created = (|| {
                let host = boundary::str_arg(host, "host")?;
                let user = boundary::str_arg(user, "user")?;
                let pwd = boundary::str_arg(pwd, "pwd")?;
                Agent::new(host, user, pwd)
            })();
            record(&created);
            created.map_or(ptr::null_mut(), |agent| {
                boundary::agent_into_raw(vpoller_agent { agent })
            })
        },
    )
}

/// Sets one of the VPOLLER_AGENT_* options to `value` (text, see each
/// option). Takes effect with the next request; changing how the host is
/// reached (port, certificate checks, connect timeout) logs in anew.
///
/// Returns VPOLLER_OK, or VPOLLER_ERR_INVALID_ARGUMENT for an unknown option,
/// a bad value (text that is not a number where one is wanted, a timeout
/// above one hour) or an unreadable CA file (the reason in
/// `vpoller_last_error()`), leaving the options as they were. Not to be called while another thread
/// runs a request on the same agent.
#[no_mangle]
pub extern "C" fn vpoller_agent_set_option(
    agent: *mut vpoller_agent,
    option: c_int,
    value: *const c_char,
) -> c_int {
    boundary::guard(
        |_| VPOLLER_ERR_INTERNAL,
        || {
            let outcome = (|| {
                let handle = boundary::agent_arg(agent)?;
                let value = boundary::str_arg(value, "value")?;
                let mut options = handle.agent.options();
                apply_option(&mut options, option, value)?;
                handle.agent.set_options(options)
            })();
            record(&outcome)
        },
    )
}

fn apply_option(options: &mut AgentOptions, option: c_int, value: &str) -> Result<(), Error> {
    let number = |name: &str| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| Error::InvalidArgument(format!("{name} wants a number, got {value:?}")))
    };
    let milliseconds = |name: &str| {
        value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|milliseconds| *milliseconds <= MAX_TIMEOUT_MS)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{name} wants a number of milliseconds from 0 to {MAX_TIMEOUT_MS} (one \
                     hour), got {value:?}"
                ))
            })
    };
    match option {
        VPOLLER_AGENT_PORT => {
            options.port = number("VPOLLER_AGENT_PORT")?
                .try_into()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| Error::InvalidArgument(format!("bad port {value:?}")))?;
        }
        VPOLLER_AGENT_CA_FILE => options.verification = Verification::CaFile(value.into()),
        VPOLLER_AGENT_FINGERPRINT => options.verification = Verification::Fingerprint(value.into()),
        VPOLLER_AGENT_INSECURE => {
            options.verification = match value.trim() {
                "1" | "true" | "yes" => Verification::Insecure,
                "0" | "false" | "no" => Verification::SystemRoots,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "VPOLLER_AGENT_INSECURE wants 1 or 0, got {value:?}"
                    )))
                }
            }
        }
        VPOLLER_AGENT_CONNECT_TIMEOUT_MS => {
            options.connect_timeout_ms = milliseconds("VPOLLER_AGENT_CONNECT_TIMEOUT_MS")?
        }
        VPOLLER_AGENT_TIMEOUT_MS => options.timeout_ms = milliseconds("VPOLLER_AGENT_TIMEOUT_MS")?,
        VPOLLER_AGENT_CACHE_TTL_S => options.cache_ttl_s = number("VPOLLER_AGENT_CACHE_TTL_S")?,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown agent option {other}"
            )))
        }
    }
    Ok(())
}

/// Logs in now, so that a wrong password, an unreachable host or an
/// untrusted certificate shows at once (tasks also log in by themselves).
/// Returns VPOLLER_OK, VPOLLER_ERR_VSPHERE (the reason in
/// `vpoller_last_error()`) or VPOLLER_ERR_INVALID_ARGUMENT for a NULL agent.
#[no_mangle]
pub extern "C" fn vpoller_agent_connect(agent: *mut vpoller_agent) -> c_int {
    boundary::guard(
        |_| VPOLLER_ERR_INTERNAL,
        || {
            let outcome = boundary::agent_arg(agent).and_then(|handle| handle.agent.connect());
            record(&outcome)
        },
    )
}

/// Runs the vPoller task request `msg`, a JSON object as UTF-8 text such as
/// {"method": "vm.get", "name": "vm01", "properties": ["runtime.powerState"]}
/// ("hostname" is not needed), in this process against the agent's host.
///
/// Returns a new NUL-terminated string owned by the caller, to be released
/// with `vpoller_free_string`: the reply a py-vpoller worker sends,
/// {"success": 0, "msg": ..., "result": ...}, or its failure form
/// {"success": 1, "msg": "..."} (an unknown task, a missing object, the host
/// unreachable: "Task METHOD failed: REASON"). NULL only when memory
/// runs out. `vpoller_last_status()` is VPOLLER_OK when the task ran (its
/// own success is in the reply), VPOLLER_ERR_INVALID_ARGUMENT for a NULL
/// agent or msg or text that is not UTF-8.
///
/// Many threads may run tasks on one agent at once; they proceed in parallel
/// over one login. Each call is bounded by VPOLLER_AGENT_TIMEOUT_MS.
#[no_mangle]
pub extern "C" fn vpoller_agent_run(agent: *mut vpoller_agent, msg: *const c_char) -> *mut c_char {
    boundary::guard(
        |error| boundary::malloc_string(&error.to_reply()),
        || {
            let outcome = boundary::agent_arg(agent).and_then(|handle| {
                let msg = boundary::str_arg(msg, "msg")?;
                Ok(handle.agent.run(msg))
            });
            record(&outcome);
            let text = outcome.unwrap_or_else(|error| error.to_reply());
            boundary::malloc_string(&text)
        },
    )
}

/// Releases an agent: logs out of the vSphere host (not in a forked child,
/// whose session is its parent's too) and closes its connections. NULL does
/// nothing. No other thread may be using `agent` during or after this call.
#[no_mangle]
pub extern "C" fn vpoller_agent_free(agent: *mut vpoller_agent) {
    boundary::guard(|_| (), || boundary::agent_free(agent))
}

/// The names of every task an agent runs ("about", "vm.discover", ...),
/// separated by single spaces, in no particular order. The string is static:
/// do not free it. Bindings make one method per task from it.
#[no_mangle]
pub extern "C" fn vpoller_agent_tasks() -> *const c_char {
    static TASKS: once_cell::sync::Lazy<std::ffi::CString> = once_cell::sync::Lazy::new(|| {
        // Task names are ASCII words and dots: no NUL byte.
        std::ffi::CString::new(crate::agent::task_names().join(" ")).unwrap_or_default()
    });
    boundary::guard(|_| c"".as_ptr(), || TASKS.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_whole_milliseconds_up_to_an_hour() {
        let options_after = |option, values: &[&str]| {
            let mut options = AgentOptions::default();
            for value in values {
                let _ = apply_option(&mut options, option, value);
            }
            options
        };
        let bad = [
            "3600001",
            "18446744073709551615",
            "99999999999999999999999",
            "-5",
            "soon",
            "",
        ];
        for option in [VPOLLER_AGENT_TIMEOUT_MS, VPOLLER_AGENT_CONNECT_TIMEOUT_MS] {
            for value in bad {
                let error = apply_option(&mut AgentOptions::default(), option, value).unwrap_err();
                let text = error.to_string();
                assert!(matches!(error, Error::InvalidArgument(_)), "{text}");
                assert!(
                    text.contains("_TIMEOUT_MS wants a number of milliseconds from 0 to 3600000"),
                    "{text}"
                );
            }
        }
        // An hour is taken; refused values after it leave it as it was.
        let mut values = vec!["3600000"];
        values.extend(bad);
        assert_eq!(
            options_after(VPOLLER_AGENT_TIMEOUT_MS, &values).timeout_ms,
            3_600_000
        );
        assert_eq!(
            options_after(VPOLLER_AGENT_CONNECT_TIMEOUT_MS, &values).connect_timeout_ms,
            3_600_000
        );
    }
}
