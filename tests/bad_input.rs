//! Bad input gets a clear error at once, never reaches the wire, never crashes.

mod common;
use common::{borrowed_c_string, client, take_c_string, StandIn};
use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr;
use vpoller::capi::*;
use vpoller::Error;

const BAD_MESSAGES: &[(&[u8], &str)] = &[
    (b"", "not valid JSON"),
    (b"vm.discover", "not valid JSON"),
    (b"{\"method\": \"vm.get\"", "not valid JSON"),
    (b"{\"method\": \"vm.get\"} trailing", "not valid JSON"),
    (b"[\"vm.get\"]", "must be a JSON object, not an array"),
    (b"\"vm.get\"", "must be a JSON object, not a string"),
    (b"42", "must be a JSON object, not a number"),
    (b"true", "must be a JSON object, not a boolean"),
    (b"null", "must be a JSON object, not null"),
    (b"{\"name\": \"\xff\xfe\"}", "not valid UTF-8"),
];

#[test]
fn rust_api_refuses_bad_messages_without_sending() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    for (msg, reason) in BAD_MESSAGES {
        let error = client.run_with(msg, str::to_owned).unwrap_err();
        assert!(
            matches!(error, Error::InvalidArgument(_)),
            "{msg:?}: {error:?}"
        );
        assert!(error.to_string().contains(reason), "{msg:?}: {error}");
        // Refused before anything was sent: nothing to wait for.
        assert_eq!(stand_in.requests(), 0, "{msg:?} reached the proxy");
        if let Ok(text) = std::str::from_utf8(msg) {
            let reply = client.run(text);
            assert_eq!(vpoller::reply_success(&reply), Some(1), "{reply}");
            assert!(reply.contains(reason), "{reply}");
        }
    }
    assert_eq!(stand_in.requests(), 0, "a bad message reached the proxy");
}

#[test]
fn rust_api_refuses_bad_endpoints() {
    for endpoint in [
        "",
        "localhost:10123",
        "tcp://",
        "bogus://host:1",
        "tcp://host:port",
    ] {
        let error = vpoller::Client::new(endpoint, 3, 3000).unwrap_err();
        assert!(
            matches!(error, Error::Zmq { .. }),
            "{endpoint:?}: {error:?}"
        );
        assert!(
            error.to_string().contains("connecting to the endpoint"),
            "{error}"
        );
    }
}

fn c_run(client: *mut vpoller_client, msg: *const c_char) -> (String, i32) {
    let reply = take_c_string(vpoller_run(client, msg));
    (reply, vpoller_last_status())
}

#[test]
fn c_abi_refuses_bad_messages_without_sending() {
    let stand_in = StandIn::start();
    let endpoint = CString::new(stand_in.endpoint()).unwrap();
    let client = vpoller_client_new(endpoint.as_ptr(), 3, 3000);
    assert!(!client.is_null());
    for (msg, reason) in BAD_MESSAGES {
        let Ok(c_msg) = CString::new(*msg) else {
            continue;
        };
        let (reply, status) = c_run(client, c_msg.as_ptr());
        assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT, "{msg:?}");
        assert!(
            reply.starts_with(r#"{"success": 1, "msg": "Invalid argument: "#),
            "{reply}"
        );
        assert!(reply.contains(reason), "{reply}");
        assert!(borrowed_c_string(vpoller_last_error()).contains(reason));
    }

    let (reply, status) = c_run(client, ptr::null());
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(
        reply,
        r#"{"success": 1, "msg": "Invalid argument: msg is NULL"}"#
    );

    let msg = CString::new(r#"{"method": "about"}"#).unwrap();
    let (reply, status) = c_run(ptr::null_mut(), msg.as_ptr());
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(
        reply,
        r#"{"success": 1, "msg": "Invalid argument: client is NULL"}"#
    );

    assert_eq!(
        vpoller_try_run(client, msg.as_ptr(), ptr::null_mut()),
        VPOLLER_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        borrowed_c_string(vpoller_last_error()),
        "Invalid argument: reply is NULL"
    );
    assert_eq!(stand_in.requests(), 0, "a bad message reached the proxy");

    // A good message afterwards works and clears the last error.
    let mut reply = ptr::null_mut();
    assert_eq!(
        vpoller_try_run(client, msg.as_ptr(), &mut reply),
        VPOLLER_OK
    );
    assert!(take_c_string(reply).starts_with(r#"{"success": 0"#));
    assert_eq!(borrowed_c_string(vpoller_last_error()), "");
    assert_eq!(stand_in.requests(), 1);
    vpoller_client_free(client);
}

#[test]
fn c_abi_reports_unusable_endpoints() {
    assert!(vpoller_client_new(ptr::null(), 3, 3000).is_null());
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(
        borrowed_c_string(vpoller_last_error()),
        "Invalid argument: endpoint is NULL"
    );

    let bogus = CString::new("bogus://nowhere").unwrap();
    assert!(vpoller_client_new(bogus.as_ptr(), 3, 3000).is_null());
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_ZMQ);
    assert!(borrowed_c_string(vpoller_last_error()).contains("connecting to the endpoint"));

    let not_utf8 = CString::new(&b"tcp://\xff:1"[..]).unwrap();
    assert!(vpoller_client_new(not_utf8.as_ptr(), 3, 3000).is_null());
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
    assert!(borrowed_c_string(vpoller_last_error()).contains("endpoint is not valid UTF-8"));
}

#[test]
fn c_abi_null_frees_do_nothing_and_statics_are_valid() {
    vpoller_free_string(ptr::null_mut());
    vpoller_client_free(ptr::null_mut());
    assert_eq!(
        borrowed_c_string(vpoller_version()),
        env!("CARGO_PKG_VERSION")
    );
    for (status, text) in [
        (VPOLLER_OK, "ok"),
        (VPOLLER_ERR_NO_REPLY, "no reply from vPoller"),
        (VPOLLER_ERR_INVALID_ARGUMENT, "invalid argument"),
        (VPOLLER_ERR_INVALID_REPLY, "invalid reply from vPoller"),
        (VPOLLER_ERR_ZMQ, "ZeroMQ error"),
        (VPOLLER_ERR_INTERNAL, "internal error"),
        (-7, "unknown status"),
    ] {
        assert_eq!(borrowed_c_string(vpoller_status_str(status)), text);
    }
    assert_eq!(vpoller_reply_success(ptr::null()), -1);
    let failed = CString::new(r#"{"success": 1, "msg": "Cannot find object vm99"}"#).unwrap();
    assert_eq!(vpoller_reply_success(failed.as_ptr()), 1);
    let helper_output = CString::new("poweredOn").unwrap();
    assert_eq!(vpoller_reply_success(helper_output.as_ptr()), -1);
}

#[test]
fn last_error_is_per_thread() {
    assert!(vpoller_client_new(ptr::null(), 3, 3000).is_null());
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
    std::thread::spawn(|| {
        assert_eq!(vpoller_last_status(), VPOLLER_OK);
        assert_eq!(borrowed_c_string(vpoller_last_error()), "");
    })
    .join()
    .unwrap();
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
}
