//! Requests reach the proxy and replies come back verbatim.

mod common;
use common::{client, StandIn};
use serde_json::json;

#[test]
fn reply_is_returned_byte_for_byte() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let msg = r#"{"method": "vm.get", "hostname": "vc01.example.org", "name": "vm01", "properties": ["runtime.powerState"]}"#;
    let reply = client.run(msg);
    assert_eq!(
        reply,
        format!(
            r#"{{"success": 0, "msg": "Successfully retrieved object properties", "result": [{msg}]}}"#
        )
    );
    assert_eq!(client.try_run(msg).unwrap(), reply);
    assert_eq!(stand_in.requests(), 2);
}

#[test]
fn non_ascii_text_survives_both_ways() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let msg = r#"{"method": "vm.get", "hostname": "vc01", "name": "Zürich-ВМ-虚拟机 \"quoted\""}"#;
    let reply = client.try_run(msg).unwrap();
    assert!(
        reply.contains(r#""name": "Zürich-ВМ-虚拟机 \"quoted\"""#),
        "{reply}"
    );
}

#[test]
fn trailing_nul_of_the_cclient_helper_is_removed() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let reply = client
        .try_run(r#"{"method": "about", "hostname": "vc01", "stand_in": {"nul": true}}"#)
        .unwrap();
    assert!(reply.ends_with("}]}"), "{reply:?}");
    assert!(!reply.contains('\0'));
}

#[test]
fn reply_with_interior_nul_is_an_error_not_a_crash() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let error = client
        .try_run(r#"{"method": "about", "stand_in": {"reply_hex": "7b22223a00317d"}}"#)
        .unwrap_err();
    assert!(
        matches!(error, vpoller::Error::InvalidReply(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("NUL byte at offset 4"),
        "{error}"
    );
    let reply = client.run(r#"{"method": "about", "stand_in": {"reply_hex": "7b22223a00317d"}}"#);
    assert_eq!(vpoller::reply_success(&reply), Some(1), "{reply}");
}

#[test]
fn reply_with_invalid_utf8_is_an_error_not_a_crash() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let error = client
        .try_run(r#"{"method": "about", "stand_in": {"reply_hex": "7b2261223a2280ff227d"}}"#)
        .unwrap_err();
    assert!(
        matches!(error, vpoller::Error::InvalidReply(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("UTF-8"), "{error}");
    // The socket stays usable after a bad reply.
    assert!(client.try_run(r#"{"method": "about"}"#).is_ok());
}

#[test]
fn json_values_in_and_out() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let reply = client
        .run_value(&json!({"method": "host.get", "hostname": "vc01", "name": "esx01", "properties": ["name"]}))
        .unwrap();
    assert_eq!(reply["success"], 0);
    assert_eq!(reply["result"][0]["name"], "esx01");
    assert_eq!(reply["result"][0]["properties"], json!(["name"]));
}

#[test]
fn run_with_lends_the_reply_without_copying() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 3000);
    let length = client
        .run_with(br#"{"method": "about"}"#, |reply| {
            assert!(reply.starts_with(r#"{"success": 0"#));
            reply.len()
        })
        .unwrap();
    assert_eq!(
        length,
        vpoller_standin::echo_reply(br#"{"method": "about"}"#).len()
    );
}

#[test]
fn sixteen_mib_reply() {
    const SIZE: usize = 16 * 1024 * 1024;
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 1, 30_000);
    let msg = format!(r#"{{"method": "vm.discover", "stand_in": {{"reply_size": {SIZE}}}}}"#);
    let reply = client.try_run(&msg).unwrap();
    assert_eq!(reply.len(), SIZE);
    assert_eq!(
        reply.as_bytes(),
        vpoller_standin::sized_reply(SIZE).as_slice()
    );

    // The same through the C ABI.
    let c_client = vpoller::capi::vpoller_client_new(
        std::ffi::CString::new(stand_in.endpoint())
            .unwrap()
            .as_ptr(),
        1,
        30_000,
    );
    let c_msg = std::ffi::CString::new(msg).unwrap();
    let reply = common::take_c_string(vpoller::capi::vpoller_run(c_client, c_msg.as_ptr()));
    assert_eq!(
        vpoller::capi::vpoller_last_status(),
        vpoller::capi::VPOLLER_OK
    );
    assert_eq!(reply.len(), SIZE);
    vpoller::capi::vpoller_client_free(c_client);
}

#[test]
fn reply_success_reads_the_result_code() {
    assert_eq!(
        vpoller::reply_success(r#"{"success": 0, "msg": "x"}"#),
        Some(0)
    );
    assert_eq!(vpoller::reply_success(r#"{"msg": "x"}"#), None);
    assert_eq!(vpoller::reply_success("poweredOn"), None);
    assert_eq!(vpoller::reply_success(r#"{"success": "0"}"#), None);
}

#[test]
fn works_with_a_zmtp_peer_that_is_not_libzmq() {
    // The benchmarks' lean responder speaks ZMTP 3.0 itself.
    let endpoint = vpoller_standin::lean::start(0).unwrap();
    let client = client(&endpoint, 2, 500);
    let msg = r#"{"method": "vm.get", "name": "Zürich"}"#;
    assert_eq!(
        client.try_run(msg).unwrap(),
        String::from_utf8(vpoller_standin::echo_reply(msg.as_bytes())).unwrap()
    );
    let big = client
        .try_run(r#"{"method": "vm.discover", "stand_in": {"reply_size": 300000}}"#)
        .unwrap();
    assert_eq!(big.len(), 300_000);
    let dropped = client.try_run(r#"{"method": "about", "stand_in": {"drop_first": 1}}"#);
    assert!(dropped.unwrap().starts_with(r#"{"success": 0"#));
}
