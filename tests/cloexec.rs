//! libzmq's descriptors are close-on-exec: programs that a client process
//! runs (monitoring agents run scripts) inherit none of them. This also
//! checks that libzmq was built with the Linux settings of .cargo/config.toml.
#![cfg(target_os = "linux")]

mod common;
use common::{client, StandIn};
use std::process::Command;

/// The descriptors a freshly executed child process has open.
fn inherited_descriptors() -> Vec<String> {
    let output = Command::new("sh")
        .args(["-c", "ls /proc/$$/fd"])
        .output()
        .expect("run sh");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn executed_programs_inherit_no_zeromq_descriptors() {
    let before = inherited_descriptors();
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 1, 3000);
    assert!(client.try_run(r#"{"method": "about"}"#).is_ok());
    let after = inherited_descriptors();
    assert_eq!(before, after, "descriptors leaked into an executed program");
}
