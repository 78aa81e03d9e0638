//! The C programs: the ABI test program (also under valgrind), the
//! `vpoller-cclient` command-line client and the `hello` example.

mod common;
use common::{c_program, free_port, Simulator, StandIn};
use std::process::{Command, Output};

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a C test program with `args`, plainly or under valgrind, and checks
/// that every check passed (and valgrind found no error or leak).
fn run_c_test(program: &str, args: &[&str], valgrind: bool) {
    let mut command = if valgrind {
        let mut command = Command::new("valgrind");
        command.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
            "--trace-children=no",
        ]);
        // ring's AES-GCM assembly, which valgrind cannot follow (see the file).
        command.arg(format!(
            "--suppressions={}/tests/c/valgrind.supp",
            env!("CARGO_MANIFEST_DIR")
        ));
        command.arg(c_program(program));
        command
    } else {
        Command::new(c_program(program))
    };
    let output = command
        .args(args)
        .output()
        .expect("run the test program (valgrind: make deps installs it)");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "{program} failed ({:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    // "N passed, 0 failed" with N > 0: a program that checked nothing fails.
    let passed = stdout
        .lines()
        .find_map(|line| line.strip_suffix(" passed, 0 failed"))
        .and_then(|count| count.trim().parse::<u32>().ok());
    assert!(passed.is_some_and(|count| count > 0), "{stdout}");
}

#[test]
fn abi_test_program_passes() {
    let stand_in = StandIn::start_on(0, 2).unwrap();
    run_c_test("abi_test", &[stand_in.endpoint()], false);
}

#[test]
fn abi_test_program_is_clean_under_valgrind() {
    let stand_in = StandIn::start_on(0, 2).unwrap();
    run_c_test("abi_test", &[stand_in.endpoint()], true);
}

#[test]
fn agent_abi_test_program_passes() {
    let simulator = Simulator::start();
    let ca_file = simulator.ca_file.to_str().unwrap().to_owned();
    run_c_test("agent_abi_test", &[&simulator.host(), &ca_file], false);
}

#[test]
fn agent_abi_test_program_is_clean_under_valgrind() {
    let simulator = Simulator::start();
    let ca_file = simulator.ca_file.to_str().unwrap().to_owned();
    // Without the fork: a forked child has the memory of the parent's
    // threads (the mirror's follower) but not the threads, so valgrind
    // counts what they hold as lost there. The fork is checked by
    // agent_abi_test_program_passes.
    run_c_test(
        "agent_abi_test",
        &[&simulator.host(), &ca_file, "--no-fork"],
        true,
    );
}

fn cclient(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(c_program("vpoller-cclient"))
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn cclient_sends_only_the_given_fields_properly_escaped() {
    let stand_in = StandIn::start();
    let endpoint = stand_in.endpoint();
    let (code, stdout, _) = cclient(&[
        "-e",
        endpoint,
        "-m",
        "vm.get",
        "-V",
        "vc01.example.org",
        "-n",
        "vm \"01\"\\ Zürich\t",
        "-p",
        "name,runtime.powerState",
        "-H",
        "vpoller.helpers.cclient",
    ]);
    assert_eq!(code, 0, "{stdout}");
    let reply: serde_json::Value = serde_json::from_str(stdout.trim_end()).unwrap();
    assert_eq!(
        reply["result"][0],
        serde_json::json!({
            "method": "vm.get",
            "hostname": "vc01.example.org",
            "name": "vm \"01\"\\ Zürich\t",
            "properties": ["name", "runtime.powerState"],
            "helper": "vpoller.helpers.cclient",
        })
    );
    // Exactly these fields, in this order, with vPoller's separators.
    assert!(stdout.contains(r#"[{"method": "vm.get", "hostname": "vc01.example.org", "name": "vm \"01\"\\ Zürich\t", "properties": ["name", "runtime.powerState"], "helper": "vpoller.helpers.cclient"}]"#), "{stdout}");
}

#[test]
fn cclient_passes_every_option() {
    let stand_in = StandIn::start();
    let (code, stdout, _) = cclient(&[
        "-e",
        stand_in.endpoint(),
        "-r",
        "2",
        "-t",
        "2000",
        "-m",
        "vm.perf.metric.get",
        "-V",
        "vc01",
        "-n",
        "vm01",
        "-p",
        "a,,b",
        "-k",
        "disk0",
        "-c",
        "cpu.usage.average",
        "-i",
        "0",
        "-s",
        "5",
        "-T",
        "Past day",
        "-U",
        "root",
        "-P",
        "pa\"ss",
        "-H",
        "vpoller.helpers.zabbix",
    ]);
    assert_eq!(code, 0, "{stdout}");
    let reply: serde_json::Value = serde_json::from_str(stdout.trim_end()).unwrap();
    assert_eq!(
        reply["result"][0],
        serde_json::json!({
            "method": "vm.perf.metric.get", "hostname": "vc01", "name": "vm01",
            "properties": ["a", "", "b"], "key": "disk0", "username": "root", "password": "pa\"ss",
            "counter-name": "cpu.usage.average", "instance": "0", "perf-interval": "Past day",
            "max-sample": "5", "helper": "vpoller.helpers.zabbix",
        })
    );
}

#[test]
fn cclient_exit_codes() {
    let stand_in = StandIn::start();
    let endpoint = stand_in.endpoint();
    // JSON in an argument stays text: a stand-in directive cannot be injected.
    let name = r#"x", "stand_in": {"reply_hex": "7b7d"}, "y": "z"#;
    let (code, stdout, _) = cclient(&["-e", endpoint, "-m", "vm.get", "-V", "vc01", "-n", name]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(r#"\"stand_in\""#), "{stdout}");

    // A helper's plain-text answer is an answer: exit 0.
    let (code, stdout, _) = cclient(&["-e", endpoint, "-m", "about", "-V", "vc01", "-H", "7a"]);
    assert_eq!(code, 0, "{stdout}");

    // No reply after all attempts: the vPoller error result, exit 2.
    let nobody = format!("tcp://127.0.0.1:{}", free_port());
    let (code, stdout, stderr) = cclient(&[
        "-e", &nobody, "-r", "2", "-t", "100", "-m", "about", "-V", "vc01",
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "{\"success\": 1, \"msg\": \"Did not receive response, aborting...\"}\n"
    );

    // A bad endpoint: exit 3 with the reason.
    let (code, _, stderr) = cclient(&["-e", "bogus", "-m", "about", "-V", "vc01"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("connecting to the endpoint"), "{stderr}");

    // Invalid UTF-8 in an argument is refused by the library, not sent: exit 3.
    let output = Command::new(c_program("vpoller-cclient"))
        .args(["-e", endpoint, "-m", "about", "-V"])
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"vc\xff"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("UTF-8"));
}

#[test]
fn cclient_reports_vpoller_failures_with_exit_1() {
    let stand_in = StandIn::start();
    let (code, stdout, _) = cclient(&["-e", stand_in.endpoint(), "-m", "about", "-V", "unknown"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        "{\"success\": 1, \"msg\": \"Unknown or missing agent name\"}\n"
    );
}

#[test]
fn cclient_usage_errors_exit_64() {
    for args in [
        &[][..],
        &["-m", "about"][..],
        &["-V", "vc01"][..],
        &["-m", "about", "-V", "vc01", "-r", "x"][..],
        &["-m", "about", "-V", "vc01", "-t", "0"][..],
        &["-m", "about", "-V", "vc01", "-Z"][..],
        &["-m", "about", "-V", "vc01", "extra"][..],
        &["-m"][..],
    ] {
        let (code, stdout, stderr) = cclient(args);
        assert_eq!(code, 64, "{args:?}");
        assert!(
            stderr.contains("Usage: vpoller-cclient"),
            "{args:?}: {stderr}"
        );
        assert!(stdout.is_empty());
    }
    let (code, stdout, _) = cclient(&["-h"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Usage: vpoller-cclient"));
}

#[test]
fn hello_prints_the_documented_lines() {
    let stand_in = StandIn::start();
    let output = Command::new(c_program("hello"))
        .arg(stand_in.endpoint())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "Connecting to vPoller ...\nSending task request to vPoller ...\n\
         Received reply from vPoller: {\"success\": 0, \"msg\": \"Successfully retrieved object properties\", \
         \"result\": [{\"method\": \"vm.discover\", \"hostname\": \"vc01.example.org\"}]}\n"
    );
}
