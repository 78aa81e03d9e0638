//! The C programs: the ABI test program (also under valgrind), the
//! `vpoller-cclient` command-line client and the `hello` example; and the
//! client's CURVE options, called through the C ABI's functions.

mod common;
use common::{c_program, free_port, take_c_string, Simulator, StandIn};
use std::ffi::CString;
use std::os::raw::c_char;
use std::process::{Command, Output};
use vpoller::capi::*;
use vpoller::curve::KeyPair;

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

// ---- CURVE: vpoller_client_set_option, vpoller_client_curve_public_key,
// and the command-line client's --curve-* options. ----

const NO_REPLY: &str = "{\"success\": 1, \"msg\": \"Did not receive response, aborting...\"}";

fn c_text(text: &str) -> CString {
    CString::new(text).unwrap()
}

/// A C ABI client of `endpoint`, released when dropped.
struct CClient(*mut vpoller_client);

impl CClient {
    fn new(endpoint: &str, retries: i32, timeout_ms: i32) -> CClient {
        let client = vpoller_client_new(c_text(endpoint).as_ptr(), retries, timeout_ms);
        assert!(!client.is_null(), "{}", last_error());
        CClient(client)
    }

    /// `vpoller_client_set_option`: its status and `vpoller_last_error()`.
    fn set(&self, option: i32, value: &str) -> (i32, String) {
        let status = vpoller_client_set_option(self.0, option, c_text(value).as_ptr());
        (status, last_error())
    }

    fn set_ok(&self, option: i32, value: &str) {
        assert_eq!(
            self.set(option, value),
            (VPOLLER_OK, String::new()),
            "{value:?}"
        );
    }

    /// `vpoller_client_curve_public_key`, with the status it left.
    fn public_key(&self) -> (Option<String>, i32) {
        let key = vpoller_client_curve_public_key(self.0);
        let status = vpoller_last_status();
        ((!key.is_null()).then(|| take_c_string(key)), status)
    }

    /// `vpoller_try_run`: the status, the reply and `vpoller_last_error()`.
    fn run(&self, msg: &str) -> (i32, String, String) {
        let mut reply: *mut c_char = std::ptr::null_mut();
        let status = vpoller_try_run(self.0, c_text(msg).as_ptr(), &mut reply);
        let error = last_error();
        (status, take_c_string(reply), error)
    }
}

impl Drop for CClient {
    fn drop(&mut self) {
        vpoller_client_free(self.0);
    }
}

fn last_error() -> String {
    common::borrowed_c_string(vpoller_last_error())
}

fn z85_pair() -> (String, String) {
    let pair = KeyPair::generate().unwrap();
    (pair.public().to_z85(), pair.secret().to_z85())
}

#[test]
fn client_curve_options_set_and_unset() {
    let client = CClient::new(&format!("tcp://127.0.0.1:{}", free_port()), 1, 100);
    // No server key: no CURVE, no public key (and no error).
    assert_eq!(client.public_key(), (None, VPOLLER_OK));

    // A server key alone: a fresh key pair, kept while the client lives.
    let (server, _) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    let (fresh, status) = client.public_key();
    assert_eq!(status, VPOLLER_OK);
    let fresh = fresh.expect("a public key once the server key is set");
    assert_eq!(fresh.len(), 40, "{fresh}");
    assert_eq!(client.public_key().0.as_deref(), Some(fresh.as_str()));

    // The client's own secret key: its public key is the client's.
    let (public, secret) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY, &secret);
    assert_eq!(client.public_key().0, Some(public.clone()));
    // The matching public key is taken, with white space around it.
    client.set_ok(VPOLLER_CLIENT_CURVE_PUBLIC_KEY, &format!("  {public}\n"));
    assert_eq!(client.public_key().0, Some(public.clone()));

    // "" unsets: the secret key and then the public key, leaving the fresh pair.
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY, "");
    // A public key without its secret key: no key to show...
    assert_eq!(client.public_key(), (None, VPOLLER_OK));
    client.set_ok(VPOLLER_CLIENT_CURVE_PUBLIC_KEY, "");
    assert_eq!(client.public_key().0, Some(fresh));
    // ... and without the server key no CURVE at all.
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, "");
    assert_eq!(client.public_key(), (None, VPOLLER_OK));
    // Setting a client key before the server key is fine too.
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY, &secret);
    assert_eq!(client.public_key(), (None, VPOLLER_OK));
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    assert_eq!(client.public_key().0, Some(public));
}

#[test]
fn client_curve_option_errors() {
    let client = CClient::new(&format!("tcp://127.0.0.1:{}", free_port()), 1, 100);
    let (server, _) = z85_pair();
    let (public, secret) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY, &secret);
    let refused = |option, value: &str, expected: &str| {
        let (status, error) = client.set(option, value);
        assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT, "{value:?}: {error}");
        assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
        assert!(
            error.contains(expected),
            "{value:?}: {error} lacks {expected:?}"
        );
        // Nothing changed.
        assert_eq!(client.public_key().0.as_deref(), Some(public.as_str()));
    };
    refused(
        VPOLLER_CLIENT_CURVE_SERVER_KEY,
        "short",
        "the server's key: a CURVE public key must be 40 characters of Z85, not 5",
    );
    refused(
        VPOLLER_CLIENT_CURVE_SECRET_KEY,
        &format!("{}~", &secret[..39]),
        "the client's key: a CURVE secret key: '~' at position 40 is not a Z85 character",
    );
    refused(
        VPOLLER_CLIENT_CURVE_PUBLIC_KEY,
        &z85_pair().0,
        "the CURVE public key is not the secret key's",
    );
    refused(99, &server, "unknown client option 99");
    refused(0, &server, "unknown client option 0");
    refused(-1, "", "unknown client option -1");
    // An agent's option is not a client's.
    refused(VPOLLER_AGENT_TIMEOUT_MS, "1000", "unknown client option 6");

    // NULL and text that is not UTF-8.
    let status =
        vpoller_client_set_option(client.0, VPOLLER_CLIENT_CURVE_SERVER_KEY, std::ptr::null());
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(last_error(), "Invalid argument: value is NULL");
    let bytes = CString::new(&b"\xff\xfe"[..]).unwrap();
    let status =
        vpoller_client_set_option(client.0, VPOLLER_CLIENT_CURVE_SERVER_KEY, bytes.as_ptr());
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("value is not valid UTF-8"),
        "{}",
        last_error()
    );
    let key = c_text(&server);
    let status = vpoller_client_set_option(
        std::ptr::null_mut(),
        VPOLLER_CLIENT_CURVE_SERVER_KEY,
        key.as_ptr(),
    );
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(last_error(), "Invalid argument: client is NULL");
    assert!(vpoller_client_curve_public_key(std::ptr::null()).is_null());
    assert_eq!(vpoller_last_status(), VPOLLER_ERR_INVALID_ARGUMENT);
    assert_eq!(last_error(), "Invalid argument: client is NULL");

    // A success clears the last error.
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    assert_eq!(client.public_key().0, Some(public));
}

/// A directory of its own under the temporary directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vpoller-c-abi-{name}-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn client_secret_key_file_option() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("key-file");
    let file = scratch.0.join("client.key");
    let public = common::keygen(&file);
    let path = file.to_str().unwrap();
    let client = CClient::new(&format!("tcp://127.0.0.1:{}", free_port()), 1, 100);
    let (server, _) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE, path);
    assert_eq!(client.public_key().0, Some(public.clone()));
    // The file's key is the secret key: the matching public key goes with it.
    client.set_ok(VPOLLER_CLIENT_CURVE_PUBLIC_KEY, &public);

    // A file others may read, a missing file, a file without a key: refused,
    // and the key stays.
    let refused = |value: &str, expected: &str| {
        let (status, error) = client.set(VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE, value);
        assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT, "{value}: {error}");
        assert!(
            error.contains(expected),
            "{value}: {error} lacks {expected:?}"
        );
        assert_eq!(client.public_key().0.as_deref(), Some(public.as_str()));
    };
    let shared = scratch.0.join("shared.key");
    std::fs::copy(&file, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        shared.to_str().unwrap(),
        "may be read by others (mode 0644); make it private with chmod 600",
    );
    let missing = scratch.0.join("missing.key");
    refused(
        missing.to_str().unwrap(),
        "cannot read the CURVE secret key file",
    );
    let empty = scratch.0.join("empty.key");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(empty.to_str().unwrap(), "holds no key");
    // Another pair's file does not go with the public key set.
    let other = scratch.0.join("other.key");
    common::keygen(&other);
    refused(
        other.to_str().unwrap(),
        "the CURVE public key is not the secret key's",
    );

    // "" unsets the secret key (then the public key is alone: no key pair).
    client.set_ok(VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE, "");
    assert_eq!(client.public_key(), (None, VPOLLER_OK));
}

#[test]
fn a_public_key_without_its_secret_key_fails_requests_without_sending() {
    let stand_in = StandIn::start();
    let client = CClient::new(stand_in.endpoint(), 1, 3000);
    let (server, _) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    client.set_ok(VPOLLER_CLIENT_CURVE_PUBLIC_KEY, &z85_pair().0);
    let (status, reply, error) = client.run(r#"{"method": "about"}"#);
    assert_eq!(status, VPOLLER_ERR_INVALID_ARGUMENT, "{reply}");
    assert!(
        error.contains("a CURVE public key is set without its secret key"),
        "{error}"
    );
    assert_eq!(vpoller::reply_success(&reply), Some(1), "{reply}");
    assert_eq!(stand_in.requests(), 0);
    // Unset, the client speaks plain ZMTP to the stand-in again.
    client.set_ok(VPOLLER_CLIENT_CURVE_PUBLIC_KEY, "");
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, "");
    let (status, reply, _) = client.run(r#"{"method": "about"}"#);
    assert_eq!(status, VPOLLER_OK, "{reply}");
    assert_eq!(stand_in.requests(), 1);
}

#[test]
fn a_curve_client_gets_no_reply_from_a_plain_proxy() {
    let stand_in = StandIn::start();
    let client = CClient::new(stand_in.endpoint(), 2, 300);
    let (server, _) = z85_pair();
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &server);
    let (status, reply, error) = client.run(r#"{"method": "about"}"#);
    assert_eq!((status, reply.as_str()), (VPOLLER_ERR_NO_REPLY, NO_REPLY));
    assert!(error.contains("Did not receive response"), "{error}");
    // The request never reached the proxy: the handshake did not get that far.
    assert_eq!(stand_in.requests(), 0);
    // The same client, the server key unset, is answered.
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, "");
    let (status, reply, _) = client.run(r#"{"method": "about"}"#);
    assert_eq!(status, VPOLLER_OK, "{reply}");
    assert_eq!(vpoller::reply_success(&reply), Some(0), "{reply}");
}

/// A stack whose frontend speaks CURVE and lets in only the client key
/// in `client.key` of its directory: the stack, the frontend's public key
/// and the client key file.
fn curve_stack() -> (common::Stack, String, std::path::PathBuf) {
    let (stack, frontend) = common::curve_frontend_stack(&[]);
    let key_file = stack.dir_path().join("client.key");
    (stack, frontend, key_file)
}

/// The worker's answer to a request for a host it does not know: proof
/// that the request got through.
const UNKNOWN_HOST: &str = "{\"success\": 1, \"msg\": \"Unknown or missing agent name\"}";

#[test]
fn a_curve_client_with_a_listed_key_is_served() {
    let (stack, frontend, key_file) = curve_stack();
    let client = CClient::new(&stack.frontend, 1, 15_000);
    client.set_ok(
        VPOLLER_CLIENT_CURVE_SECRET_KEY_FILE,
        key_file.to_str().unwrap(),
    );
    client.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &frontend);
    let msg = r#"{"method": "about", "hostname": "vc-unknown"}"#;
    for _ in 0..3 {
        let (status, reply, error) = client.run(msg);
        assert_eq!(
            (status, reply.as_str()),
            (VPOLLER_OK, UNKNOWN_HOST),
            "{error}"
        );
    }
    // A fresh key pair is not on the frontend's list; no key at all is no CURVE.
    let stranger = CClient::new(&stack.frontend, 1, 500);
    stranger.set_ok(VPOLLER_CLIENT_CURVE_SERVER_KEY, &frontend);
    assert_eq!(stranger.run(msg).0, VPOLLER_ERR_NO_REPLY);
    let plain = CClient::new(&stack.frontend, 1, 500);
    assert_eq!(plain.run(msg).0, VPOLLER_ERR_NO_REPLY);
}

#[test]
fn cclient_curve_options() {
    let (stack, frontend, key_file) = curve_stack();
    let key_file = key_file.to_str().unwrap();
    let base = [
        "-e",
        stack.frontend.as_str(),
        "-r",
        "1",
        "-m",
        "about",
        "-V",
        "vc-unknown",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        cclient(&args)
    };
    // The listed key from its file: served (the worker's answer is a failure, exit 1).
    let (code, stdout, stderr) = with(&[
        "--curve-server-key",
        &frontend,
        "--curve-secret-key-file",
        key_file,
    ]);
    assert_eq!(
        (code, stdout.as_str()),
        (1, format!("{UNKNOWN_HOST}\n").as_str()),
        "{stderr}"
    );
    // The same key given itself, with its public key, the `=` forms.
    let pair = vpoller::curve::read_secret_key_file(std::path::Path::new(key_file)).unwrap();
    let (code, stdout, stderr) = with(&[
        &format!("--curve-server-key={frontend}"),
        &format!("--curve-secret-key={}", pair.secret().to_z85()),
        &format!("--curve-public-key={}", pair.public().to_z85()),
    ]);
    assert_eq!(
        (code, stdout.as_str()),
        (1, format!("{UNKNOWN_HOST}\n").as_str()),
        "{stderr}"
    );
    // A fresh key pair is refused by the proxy: no reply, exit 2.
    let (code, stdout, _) = with(&["-t", "500", "--curve-server-key", &frontend]);
    assert_eq!(
        (code, stdout.as_str()),
        (2, format!("{NO_REPLY}\n").as_str())
    );

    // Keys that are not keys, and keys that do not go together: usage errors.
    let other = z85_pair().0;
    for (extra, expected) in [
        (
            vec!["--curve-server-key", "short"],
            "vpoller-cclient: --curve-server-key: Invalid argument: the server's key: a CURVE public \
             key must be 40 characters of Z85, not 5",
        ),
        (
            vec!["--curve-server-key", &frontend, "--curve-secret-key", "x"],
            "vpoller-cclient: --curve-secret-key: Invalid argument: the client's key:",
        ),
        (
            vec!["--curve-server-key", &frontend, "--curve-secret-key-file", key_file, "--curve-public-key", &other],
            "vpoller-cclient: --curve-public-key: Invalid argument: the CURVE public key is not the \
             secret key's",
        ),
        (
            vec!["--curve-server-key", &frontend, "--curve-secret-key-file", "/no/such/file"],
            "vpoller-cclient: --curve-secret-key-file: Invalid argument: cannot read the CURVE secret \
             key file /no/such/file",
        ),
        (
            vec!["--curve-secret-key-file", key_file],
            "the client's CURVE keys need --curve-server-key",
        ),
        (
            vec!["--curve-server-key", &frontend, "--curve-public-key", &other],
            "--curve-public-key needs --curve-secret-key or --curve-secret-key-file",
        ),
        (
            vec!["--curve-server-key", &frontend, "--curve-secret-key-file", key_file, "--curve-secret-key", &other],
            "--curve-secret-key and --curve-secret-key-file: give one of them",
        ),
        (vec!["--curve-server-key", ""], "option --curve-server-key needs a value, not \"\""),
        (vec!["--curve-server-key"], "option --curve-server-key needs a value"),
        (vec!["--curve-bogus", "x"], "unknown option --curve-bogus"),
    ] {
        let (code, stdout, stderr) = with(&extra);
        assert_eq!(code, 64, "{extra:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{extra:?}: {stdout}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(stderr.contains("Usage: vpoller-cclient"), "{extra:?}: {stderr}");
    }
    // The help tells of them.
    let (_, help, _) = cclient(&["-h"]);
    for option in [
        "--curve-server-key KEY",
        "--curve-secret-key-file FILE",
        "--curve-secret-key KEY",
        "--curve-public-key KEY",
    ] {
        assert!(help.contains(option), "{help}");
    }
    drop(stack);
}
