//! The C ABI of the vSphere agent: vPoller tasks run in the calling process,
//! straight against one vCenter or ESXi host.

use crate::agent::{Agent, AgentOptions, MAX_TIMEOUT_MS};
use crate::capi::{
    boundary, record, VPOLLER_AGENT_MAX_MIRROR_IDLE_S, VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES,
    VPOLLER_ERR_INTERNAL,
};
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
/// Option: "1" (unless set) keeps a live mirror of the properties asked for,
/// which the vSphere host's update stream keeps current, and answers from
/// it; "0" asks the host on every request, exactly as py-vpoller does (other
/// values are refused). The mirror is the agent's one departure from
/// py-vpoller in how a request is served.
pub const VPOLLER_AGENT_MIRROR: c_int = 8;
/// Option: how long a mirrored property nobody asks for stays in the mirror,
/// in seconds ("900"; "1" to "604800", one week).
pub const VPOLLER_AGENT_MIRROR_IDLE_S: c_int = 9;
/// Option: the most property values (objects times properties) the mirror
/// holds; beyond them, properties are read from the host on every request
/// ("1000000", about 200 MB; "1" to "100000000"; VPOLLER_AGENT_MIRROR "0"
/// turns the mirror off).
pub const VPOLLER_AGENT_MIRROR_MAX_VALUES: c_int = 10;

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
/// above one hour, a mirror setting outside its range) or an unreadable CA
/// file (the reason in `vpoller_last_error()`), leaving the options as they
/// were. Not to be called while another thread runs a request on the same
/// agent.
#[no_mangle]
pub extern "C" fn vpoller_agent_set_option(
    agent: *mut vpoller_agent,
    option: c_int,
    value: *const c_char,
) -> c_int {
    set_option(
        || boundary::agent_arg(agent),
        option,
        value,
        |handle| Ok(handle.agent.options()),
        |handle, options| handle.agent.set_options(options),
    )
}

/// The body of the `*_set_option` functions: the handle's options, `option`
/// set to `value` by [`apply_option`], given back with `set`; the outcome is
/// the thread's last status.
pub(crate) fn set_option<'a, H: 'a>(
    handle: impl FnOnce() -> Result<&'a H, Error>,
    option: c_int,
    value: *const c_char,
    options_of: impl FnOnce(&H) -> Result<AgentOptions, Error>,
    set: impl FnOnce(&H, AgentOptions) -> Result<(), Error>,
) -> c_int {
    boundary::guard(
        |_| VPOLLER_ERR_INTERNAL,
        || {
            let outcome = (|| {
                let handle = handle()?;
                let value = boundary::str_arg(value, "value")?;
                let mut options = options_of(handle)?;
                apply_option(&mut options, option, value)?;
                set(handle, options)
            })();
            record(&outcome)
        },
    )
}

/// Sets `option` of `options` to `value`, or refuses the value naming the option.
fn apply_option(options: &mut AgentOptions, option: c_int, value: &str) -> Result<(), Error> {
    let number = |name: &str| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| Error::InvalidArgument(format!("{name} wants a number, got {value:?}")))
    };
    // A whole number of `unit` from `low` to `high`; `note` follows the
    // range in the error.
    let within = |name: &str, unit: &str, low: u64, high: u64, note: &str| {
        value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|number| (low..=high).contains(number))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{name} wants a number of {unit} from {low} to {high}{note}, got \
                     {value:?}"
                ))
            })
    };
    let milliseconds = |name: &str| within(name, "milliseconds", 0, MAX_TIMEOUT_MS, " (one hour)");
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
        VPOLLER_AGENT_MIRROR => {
            options.mirror = match value.trim() {
                "1" => true,
                "0" => false,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "VPOLLER_AGENT_MIRROR wants 1 (on) or 0 (off), got {value:?}"
                    )))
                }
            }
        }
        VPOLLER_AGENT_MIRROR_IDLE_S => {
            options.mirror_idle_s = within(
                "VPOLLER_AGENT_MIRROR_IDLE_S",
                "seconds",
                1,
                VPOLLER_AGENT_MAX_MIRROR_IDLE_S as u64,
                " (one week)",
            )?
        }
        VPOLLER_AGENT_MIRROR_MAX_VALUES => {
            options.mirror_max_values = within(
                "VPOLLER_AGENT_MIRROR_MAX_VALUES",
                "values",
                1,
                VPOLLER_AGENT_MAX_MIRROR_MAX_VALUES as u64,
                " (VPOLLER_AGENT_MIRROR 0 turns the mirror off)",
            )?
        }
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

    fn refusal(option: c_int, value: &str) -> String {
        let mut options = AgentOptions::default();
        let error = apply_option(&mut options, option, value).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
        assert_eq!(
            options,
            AgentOptions::default(),
            "{value:?} changed the options"
        );
        error.to_string()
    }

    #[test]
    fn the_mirror_is_switched_by_1_and_0_only() {
        let mut options = AgentOptions::default();
        assert!(options.mirror);
        apply_option(&mut options, VPOLLER_AGENT_MIRROR, "0").unwrap();
        assert!(!options.mirror);
        apply_option(&mut options, VPOLLER_AGENT_MIRROR, " 1 ").unwrap();
        assert!(options.mirror);
        for value in ["2", "-1", "on", "off", "true", "yes", ""] {
            let text = refusal(VPOLLER_AGENT_MIRROR, value);
            assert!(
                text.contains("VPOLLER_AGENT_MIRROR wants 1 (on) or 0 (off), got"),
                "{text}"
            );
        }
    }

    #[test]
    fn mirror_sizes_are_bounded() {
        let mut options = AgentOptions::default();
        apply_option(&mut options, VPOLLER_AGENT_MIRROR_IDLE_S, "60").unwrap();
        apply_option(&mut options, VPOLLER_AGENT_MIRROR_MAX_VALUES, "5000").unwrap();
        assert_eq!(
            (options.mirror_idle_s, options.mirror_max_values),
            (60, 5000)
        );
        apply_option(&mut options, VPOLLER_AGENT_MIRROR_IDLE_S, "604800").unwrap();
        apply_option(&mut options, VPOLLER_AGENT_MIRROR_MAX_VALUES, "100000000").unwrap();
        assert_eq!(
            (options.mirror_idle_s, options.mirror_max_values),
            (604_800, 100_000_000)
        );
        for value in ["0", "604801", "18446744073709551616", "-1", "soon", ""] {
            let text = refusal(VPOLLER_AGENT_MIRROR_IDLE_S, value);
            assert!(
                text.contains(
                    "VPOLLER_AGENT_MIRROR_IDLE_S wants a number of seconds from 1 to 604800 \
                     (one week), got"
                ),
                "{text}"
            );
        }
        for value in ["0", "100000001", "-1", "all", ""] {
            let text = refusal(VPOLLER_AGENT_MIRROR_MAX_VALUES, value);
            assert!(
                text.contains(
                    "VPOLLER_AGENT_MIRROR_MAX_VALUES wants a number of values from 1 to \
                     100000000 (VPOLLER_AGENT_MIRROR 0 turns the mirror off), got"
                ),
                "{text}"
            );
        }
    }
}
