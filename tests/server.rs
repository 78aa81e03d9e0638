//! `vpoller-proxy` and `vpoller-worker` (the programs, as deployed) against
//! the simulator: replies equal the agent's, py-vpoller's failure replies,
//! helpers, management commands, bad input, a hung vSphere host next to a
//! healthy one, and shutdown.

mod common;
use common::fake_vsphere::{Answer, FakeVSphere};
use common::{simulator_host, Simulator, Stack};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vpoller::hosts::{Host, Registry, Tls};
use vpoller::{Agent, AgentOptions, Client, Verification};

/// Sends raw frames from a REQ socket and returns the reply frame.
fn raw_request(endpoint: &str, frames: &[&[u8]]) -> Option<Vec<u8>> {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::REQ).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(30_000).unwrap();
    socket.connect(endpoint).unwrap();
    socket.send_multipart(frames, 0).unwrap();
    socket.recv_bytes(0).ok()
}

/// A smoke test of the stack: its replies equal the agent's own (the same
/// code on both sides, so this shows the plumbing, not correctness; the
/// differential tests against py-vpoller's stack in tests/interop are the
/// oracle).
#[test]
fn smoke_test_the_stack_answers_as_the_agent_does() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 8, 4);
    let agent = Agent::with_options(
        &simulator.host(),
        "root",
        "pw",
        AgentOptions {
            verification: Verification::CaFile(simulator.ca_file.clone()),
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let client = stack.client();
    for msg in [
        json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "Zürich-ВМ-虚拟机", "properties": ["runtime.powerState"]}),
        json!({"method": "vm.discover", "hostname": "127.0.0.1", "properties": ["runtime.host"]}),
        json!({"method": "host.get", "hostname": "127.0.0.1", "name": "no-such-host", "properties": ["name"]}),
        json!({"method": "about", "hostname": "127.0.0.1"}),
        json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0"}),
    ] {
        let text = msg.to_string();
        assert_eq!(client.run(&text), agent.run(&text), "{msg}");
    }
    // The worker's own checks, in py-vpoller's order and words.
    for (msg, reply) in [
        (
            json!({"method": "vm.get", "hostname": "vc99", "name": "x", "properties": []}),
            r#"{"success": 1, "msg": "Unknown or missing agent name"}"#,
        ),
        (
            json!({"method": "no.such.task", "hostname": "vc99"}),
            r#"{"success": 1, "msg": "Unknown or missing task/method name"}"#,
        ),
        (
            json!({"hostname": "127.0.0.1"}),
            r#"{"success": 1, "msg": "Unknown or missing task/method name"}"#,
        ),
    ] {
        assert_eq!(client.run(&msg.to_string()), reply, "{msg}");
    }
    assert_eq!(
        raw_request(&stack.frontend, &[b"[1, 2]"]).unwrap(),
        br#"{"success": 1, "msg": "Expected a JSON message, received <class 'list'>"}"#
    );
    assert_eq!(
        raw_request(&stack.frontend, &[b"not json \xff"]).unwrap(),
        br#"{"success": 1, "msg": "Invalid message received"}"#
    );
    // A request of 64 MiB is answered, and the next one too.
    let big = format!(
        r#"{{"method": "vm.get", "hostname": "127.0.0.1", "name": "{}", "properties": ["name"]}}"#,
        "x".repeat(64 << 20)
    );
    let reply = client.run(&big);
    assert!(
        reply.starts_with(r#"{"success": 1, "msg": "Cannot find object xxxx"#),
        "{}",
        &reply[..100]
    );
    // Helpers.
    let get = json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["runtime.powerState"]});
    let with = |helper: &str| {
        let mut msg = get.clone();
        msg["helper"] = json!(helper);
        client.run(&msg.to_string())
    };
    assert_eq!(with("vpoller.helpers.zabbix"), "\"poweredOn\"");
    assert_eq!(
        with("vpoller.helpers.czabbix"),
        "\"poweredOn\"",
        "the client strips the NUL"
    );
    assert_eq!(with("vpoller.helpers.nope"), client.run(&get.to_string()));
    let discover = json!({"method": "vm.discover", "hostname": "127.0.0.1", "helper": "vpoller.helpers.zabbix"});
    let lld: Value = serde_json::from_str(&client.run(&discover.to_string())).unwrap();
    assert!(lld["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["{#VSPHERE.VM.NAME}"] == "Zürich-ВМ-虚拟机"));

    // Management: status with per-host counters, unknown methods, shutdown.
    let mgmt = Client::new(&stack.worker_mgmt, 1, 3000).unwrap();
    let status: Value = serde_json::from_str(&mgmt.run(r#"{"method": "status"}"#)).unwrap();
    assert_eq!(status["msg"], "vPoller Worker status");
    let counters = &status["result"]["hosts"]["127.0.0.1"];
    assert!(counters["requests"].as_u64().unwrap() >= 10, "{status}");
    assert!(counters["failures"].as_u64().unwrap() >= 2, "{status}");
    // The host's mirror: on by default, following or about to.
    let mirror = &counters["mirror"];
    assert_eq!(mirror["enabled"], true, "{status}");
    assert!(
        ["syncing", "in sync"].contains(&mirror["state"].as_str().unwrap()),
        "{status}"
    );
    assert!(
        mirror["soap_calls"]["RetrievePropertiesEx"]
            .as_u64()
            .unwrap()
            > 0,
        "{status}"
    );
    let answered = mirror["answered_from_memory"].as_u64().unwrap()
        + mirror["answered_directly"].as_u64().unwrap();
    assert!(answered >= 10, "{status}");
    assert_eq!(
        mgmt.run(r#"{"method": "reboot"}"#),
        r#"{"success": 1, "msg": "Unknown method name received"}"#
    );
    let proxy_mgmt = Client::new(&stack.proxy_mgmt, 1, 3000).unwrap();
    assert_eq!(
        proxy_mgmt.run(r#"{"method": "reboot"}"#),
        r#"{"success": 1, "msg": "Uknown method name received"}"#
    );
    assert_eq!(
        proxy_mgmt.run(r#"{"nothing": 1}"#),
        r#"{"success": 1, "msg": "Missing method name"}"#
    );
    let mut stack = stack;
    for (endpoint, child) in [
        (stack.worker_mgmt.clone(), &mut stack.worker),
        (stack.proxy_mgmt.clone(), &mut stack.proxy),
    ] {
        let mgmt = Client::new(&endpoint, 1, 3000).unwrap();
        assert_eq!(
            mgmt.run(r#"{"method": "shutdown"}"#),
            r#"{"success": 0, "msg": "Shutdown time has arrived"}"#
        );
        // Stopping takes well under a second; the bound only keeps a program
        // that never stops from hanging the test.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "did not stop after shutdown");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
    }
}

#[test]
fn a_hung_vsphere_host_does_not_delay_the_others() {
    let simulator = Simulator::start();
    let hung = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then_some(Answer::Hang)
    });
    let hung_host = Host {
        host: "localhost".into(),
        user: "root".into(),
        password: "pw".into(),
        enabled: true,
        port: Some(hung.port),
        tls: Tls::Unchecked,
    };
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1"), hung_host], 8, 3);
    let healthy = json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["name"]}).to_string();
    // Warm up the healthy host's session and lookups.
    assert!(stack.client().run(&healthy).starts_with(r#"{"success": 0"#));
    // Ten requests stuck on the hung host: more than its share of threads.
    let stuck: Vec<_> = (0..10)
        .map(|_| {
            let endpoint = stack.frontend.clone();
            std::thread::spawn(move || {
                let client = Client::new(&endpoint, 1, 60_000).unwrap();
                client.run(r#"{"method": "vm.discover", "hostname": "localhost"}"#)
            })
        })
        .collect();
    // Until the hung host holds its share of threads (3), each on a call
    // that is never answered.
    let until = Instant::now() + Duration::from_secs(60);
    while hung.count("RetrievePropertiesEx") < 3 {
        assert!(Instant::now() < until, "the hung host was not asked");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The healthy host is served meanwhile, while all of those still wait.
    let client = stack.client();
    for _ in 0..5 {
        let reply = client.run(&healthy);
        assert!(reply.starts_with(r#"{"success": 0"#), "{reply}");
    }
    assert!(
        stuck.iter().all(|handle| !handle.is_finished()),
        "a request for the hung host was answered"
    );
    // The hung host goes away: its requests fail, each with a reply.
    let mut hung = hung;
    hung.kill();
    for handle in stuck {
        let reply: Value = serde_json::from_str(&handle.join().unwrap()).unwrap();
        assert_eq!(reply["success"], 1, "{reply}");
        assert!(
            reply["msg"]
                .as_str()
                .unwrap()
                .starts_with("Task vm.discover failed: "),
            "{reply}"
        );
    }
}

#[test]
fn hosts_are_managed_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("vpoller-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("v.db");
    let _ = std::fs::remove_file(&db);
    let worker = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vpoller-worker"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, _, _) = worker(
        &[
            "hosts",
            "add",
            "-H",
            "vc01.example.org",
            "-U",
            "root",
            "--port",
            "8443",
            "--verify",
        ],
        "t0p-secret\n",
    );
    assert_eq!(code, 0);
    let (code, _, _) = worker(
        &["hosts", "add", "-H", "esx02", "-U", "admin", "-P", "pw2"],
        "",
    );
    assert_eq!(code, 0);
    let (code, _, _) = worker(&["hosts", "disable", "-H", "esx02"], "");
    assert_eq!(code, 0);
    let (code, listed, _) = worker(&["hosts", "list"], "");
    assert_eq!(code, 0);
    assert_eq!(
        listed,
        "esx02\tadmin\tport 443\tdisabled\tsystem roots\nvc01.example.org\troot\tport 8443\tenabled\tsystem roots\n"
    );
    assert!(!listed.contains("t0p-secret"));
    let stored = Registry::open(db.to_str().unwrap())
        .unwrap()
        .get("vc01.example.org")
        .unwrap()
        .unwrap();
    assert_eq!(stored.password, "t0p-secret");
    let (code, _, stderr) = worker(&["hosts", "remove", "-H", "nope"], "");
    assert_eq!(code, 1);
    assert!(stderr.contains("no host nope"), "{stderr}");
    let (code, _, _) = worker(&["hosts", "frobnicate"], "");
    assert_eq!(code, 64);
    let (code, _, stderr) = worker(&["-f", "/no/such.conf", "start"], "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Configuration file /no/such.conf does not exist"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!Path::new(&dir).exists());
}

/// The mirror's settings are read from `[cache]`; one the worker cannot
/// use stops it at start, with the setting named.
#[test]
fn bad_mirror_settings_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("vpoller-mirror-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("vpoller.conf");
    for (cache, refusal) in [
        (
            "mirror = perhaps",
            "mirror must be a boolean (yes/no, true/false, on/off, 1/0), not \"perhaps\"",
        ),
        (
            "mirror_idle = 0",
            "mirror_idle must be at least 1, not 0 (mirror = off turns the mirror off)",
        ),
        (
            "mirror_idle = 604801",
            "mirror_idle must be at most 604800, not 604801",
        ),
        (
            "mirror_max_values = 1e6",
            "mirror_max_values must be a whole number, not \"1e6\"",
        ),
        (
            "mirror_max_values = 100000001",
            "mirror_max_values must be at most 100000000, not 100000001",
        ),
    ] {
        std::fs::write(
            &config,
            format!(
                "[worker]\ndb = {}\nmgmt = tcp://127.0.0.1:1\n[cache]\nenabled = no\n{cache}\n",
                dir.join("v.db").display()
            ),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_vpoller-worker"))
            .arg("-f")
            .arg(&config)
            .arg("start")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{cache}: {stderr}");
        assert!(stderr.contains(refusal), "{cache}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Clients that each ask for their own (missing) objects, `vm-T-N`, until
/// `stop`: every reply must be the one for its own request or the
/// no-reply failure. Answers are counted in `answered_after` once `mark`
/// is set. Returns (answered, failed) per client.
fn load(
    endpoint: &str,
    clients: usize,
    stop: &AtomicBool,
    mark: &AtomicBool,
    answered_after: &AtomicUsize,
) -> Vec<(usize, usize)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client_number| {
                scope.spawn(move || {
                    let client = Client::new(endpoint, 2, 700).unwrap();
                    let (mut answered, mut failed) = (0, 0);
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let name = format!("vm-{client_number}-{n}");
                        let msg = json!({"method": "vm.get", "hostname": "127.0.0.1", "name": name, "properties": ["name"]});
                        let after_mark = mark.load(Ordering::SeqCst);
                        let reply: Value = serde_json::from_str(&client.run(&msg.to_string())).unwrap();
                        if reply == json!({"success": 1, "msg": vpoller::NO_REPLY_MSG}) {
                            failed += 1;
                        } else {
                            assert_eq!(reply, json!({"success": 1, "msg": format!("Cannot find object {name}")}));
                            answered += 1;
                            if after_mark {
                                answered_after.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    (answered, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    })
}

/// Kills the worker or the proxy under load and starts it again: requests
/// sent after the restart are answered (counted from requests sent once it
/// was running again), and a new client is served on its first attempt.
fn survives_a_restart(worker: bool) {
    let simulator = Simulator::start();
    let mut stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 8, 8);
    let (stop, mark, answered_after) = (
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicUsize::new(0),
    );
    let endpoint = stack.frontend.clone();
    let counts = std::thread::scope(|scope| {
        let load = scope.spawn(|| load(&endpoint, 6, &stop, &mark, &answered_after));
        std::thread::sleep(Duration::from_millis(800));
        stack.restart(worker, Duration::from_millis(300));
        mark.store(true, Ordering::SeqCst);
        // Until 30 answers to requests sent after the restart (the bound
        // only keeps a stack that never recovers from hanging the test).
        let until = Instant::now() + Duration::from_secs(120);
        while answered_after.load(Ordering::SeqCst) < 30
            && Instant::now() < until
            && !load.is_finished()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap()
    });
    let after = answered_after.load(Ordering::SeqCst);
    assert!(after >= 30, "{after} answers after the restart: {counts:?}");
    // Served at once again: a new request is answered on its first attempt.
    let client = Client::new(&stack.frontend, 1, 10_000).unwrap();
    let reply = client.run(r#"{"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["name"]}"#);
    assert!(reply.starts_with(r#"{"success": 0"#), "{reply}");
}

#[test]
fn a_worker_killed_under_load_and_started_again() {
    survives_a_restart(true);
}

#[test]
fn a_proxy_killed_under_load_and_started_again() {
    survives_a_restart(false);
}

#[test]
fn a_vcenter_stopped_and_started_again_is_served_again() {
    let simulator = Simulator::start();
    let port = simulator.port;
    let mut host = simulator_host(&simulator, "127.0.0.1");
    // The restarted simulator has a new certificate: no checks here.
    host.tls = Tls::Unchecked;
    let stack = Stack::start(&[host], 4, 2);
    let client = Client::new(&stack.frontend, 1, 15_000).unwrap();
    let msg = r#"{"method": "host.vm.get", "hostname": "127.0.0.1", "name": "DC0_H0"}"#;
    let before = client.run(msg);
    assert!(before.starts_with(r#"{"success": 0"#), "{before}");
    drop(simulator);
    let down: Value = serde_json::from_str(&client.run(msg)).unwrap();
    assert_eq!(down["success"], 1);
    assert!(
        down["msg"]
            .as_str()
            .unwrap()
            .starts_with("Task host.vm.get failed: cannot reach"),
        "{down}"
    );
    let simulator = Simulator::start_on(port);
    assert_eq!(client.run(msg), before);
    drop(simulator);
}

#[test]
fn malformed_envelopes_are_dropped_and_the_next_request_served() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 4, 2);
    let context = zmq::Context::new();
    let dealer = context.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.set_rcvtimeo(1000).unwrap();
    dealer.connect(&stack.frontend).unwrap();
    let about = br#"{"method": "about", "hostname": "127.0.0.1"}"#;
    // No empty delimiter frame; then three request frames after it.
    dealer.send_multipart([&about[..]], 0).unwrap();
    dealer
        .send_multipart([&b""[..], &b"one"[..], &about[..]], 0)
        .unwrap();
    assert!(
        dealer.recv_multipart(0).is_err(),
        "no reply to a malformed envelope"
    );
    // The same connection, well formed: answered.
    dealer.send_multipart([&b""[..], &about[..]], 0).unwrap();
    let reply = dealer.recv_multipart(0).unwrap();
    assert_eq!(reply[0], b"");
    assert!(reply[1].starts_with(br#"{"msg": "Successfully retrieved properties", "success": 0"#));
    let client = stack.client();
    assert!(client
        .run(std::str::from_utf8(about).unwrap())
        .contains("\"success\": 0"));
}

/// The stack on `ipc://` endpoints (Unix domain sockets, spoken by the
/// programs themselves as on `tcp://`): `ipc://` everywhere, and a
/// `tcp://` frontend before an `ipc://` backend; a libzmq client on
/// `ipc://` is answered too.
#[test]
fn ipc_endpoints_are_served() {
    let simulator = Simulator::start();
    let host = simulator_host(&simulator, "127.0.0.1");
    let agent = simulator.agent(Verification::CaFile(simulator.ca_file.clone()));
    let ipc = |dir: &Path, name: &str| format!("ipc://{}", dir.join(name).display());
    type Layout<'a> = &'a dyn Fn(&Path) -> [String; 4];
    let layouts: [Layout; 2] = [
        &|dir| ["frontend", "backend", "proxy-mgmt", "worker-mgmt"].map(|name| ipc(dir, name)),
        &|dir| {
            [
                format!("tcp://127.0.0.1:{}", common::free_port()),
                ipc(dir, "backend"),
                ipc(dir, "proxy-mgmt"),
                ipc(dir, "worker-mgmt"),
            ]
        },
    ];
    for layout in layouts {
        let stack = Stack::start_on(std::slice::from_ref(&host), 4, 2, layout);
        let client = stack.client();
        for msg in [
            json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["runtime.powerState"]}),
            json!({"method": "vm.discover", "hostname": "127.0.0.1"}),
        ] {
            let text = msg.to_string();
            assert_eq!(client.run(&text), agent.run(&text), "{msg}");
        }
        assert_eq!(
            client.run(r#"{"method": "about", "hostname": "vc99"}"#),
            r#"{"success": 1, "msg": "Unknown or missing agent name"}"#
        );
        let mgmt = Client::new(&stack.worker_mgmt, 1, 3000).unwrap();
        assert!(mgmt
            .run(r#"{"method": "status"}"#)
            .contains(r#""concurrency": 1"#));
        let about = br#"{"method": "about", "hostname": "127.0.0.1"}"#;
        let raw = raw_request(&stack.frontend, &[about]).unwrap();
        assert!(raw.starts_with(br#"{"msg": "Successfully retrieved properties""#));
    }
}

/// A request that reaches the proxy while no worker is connected is
/// answered once one connects.
#[test]
fn a_request_waits_for_a_worker() {
    let simulator = Simulator::start();
    let mut stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 4, 2);
    stack.worker.kill().unwrap();
    stack.worker.wait().unwrap();
    let client = Client::new(&stack.frontend, 1, 20_000).unwrap();
    let msg = r#"{"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["name"]}"#;
    let reply = std::thread::scope(|scope| {
        let asked = scope.spawn(|| client.run(msg));
        std::thread::sleep(Duration::from_millis(700));
        assert!(!asked.is_finished(), "answered without a worker");
        stack.restart(true, Duration::ZERO);
        asked.join().unwrap()
    });
    assert!(reply.starts_with(r#"{"success": 0"#), "{reply}");
}

/// Connections that do not speak ZMTP 3 with the NULL mechanism (an HTTP
/// client, a libzmq 3.x peer, a CURVE peer) are closed, on both of the
/// proxy's ends; the stack goes on serving.
#[test]
fn peers_that_do_not_speak_zmtp_3_are_turned_away() {
    use std::io::{Read, Write};
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 4, 2);
    let mut zmtp2 = vec![0u8; 64];
    zmtp2[0] = 0xff;
    zmtp2[9] = 0x7f;
    zmtp2[10] = 1;
    let mut curve = zmtp2.clone();
    curve[10] = 3;
    curve[12..17].copy_from_slice(b"CURVE");
    let http = b"GET / HTTP/1.1\r\nHost: vpoller\r\n\r\n".to_vec();
    for endpoint in [&stack.frontend, &stack.backend] {
        for greeting in [&http, &zmtp2, &curve] {
            let address = endpoint.trim_start_matches("tcp://");
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(greeting).unwrap();
            let mut answer = Vec::new();
            // Our greeting and READY, then the end of the stream.
            let outcome = stream.read_to_end(&mut answer);
            assert!(
                outcome.is_ok()
                    || outcome.as_ref().is_err_and(|error| {
                        error.kind() == std::io::ErrorKind::ConnectionReset
                    }),
                "{endpoint}: {outcome:?}"
            );
            assert!(answer.len() <= 64 + 32, "{endpoint}: {answer:?}");
        }
    }
    let reply = stack
        .client()
        .run(r#"{"method": "about", "hostname": "127.0.0.1"}"#);
    assert!(reply.contains(r#""success": 0"#), "{reply}");
}

/// A libzmq client that sends heartbeats (ZMTP PING) and drops a
/// connection whose PONGs stop keeps its connection to the proxy while
/// idle, and is answered on it.
#[test]
fn heartbeats_of_libzmq_clients_are_answered() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 4, 2);
    let context = zmq::Context::new();
    let dealer = context.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    // A PONG may be late by up to a second on a busy machine; without PONGs
    // the connection would drop after that second.
    dealer.set_heartbeat_ivl(100).unwrap();
    dealer.set_heartbeat_timeout(1000).unwrap();
    dealer.set_rcvtimeo(5000).unwrap();
    dealer
        .monitor("inproc://heartbeat-events", zmq::SocketEvent::ALL as i32)
        .unwrap();
    let events = context.socket(zmq::PAIR).unwrap();
    events.connect("inproc://heartbeat-events").unwrap();
    dealer.connect(&stack.frontend).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let about = br#"{"method": "about", "hostname": "127.0.0.1"}"#;
    dealer.send_multipart([&b""[..], &about[..]], 0).unwrap();
    let reply = dealer.recv_multipart(0).unwrap();
    assert!(reply[1].starts_with(br#"{"msg": "Successfully retrieved properties""#));
    let mut seen = Vec::new();
    while let Ok(frames) = events.recv_multipart(zmq::DONTWAIT) {
        let event = u16::from_le_bytes([frames[0][0], frames[0][1]]);
        seen.push(event);
    }
    assert!(
        seen.contains(&(zmq::SocketEvent::HANDSHAKE_SUCCEEDED as u16)),
        "{seen:?}"
    );
    assert!(
        !seen.contains(&(zmq::SocketEvent::DISCONNECTED as u16)),
        "the connection was dropped: {seen:?}"
    );
}

/// The fingerprint `hosts add` used to accept and the worker then died on
/// (64 bytes, 62 of them not ASCII).
fn mixed_fingerprint() -> String {
    format!("a{}b", "é".repeat(31))
}

/// Writes a row with a fingerprint that cannot be used straight into the
/// registry, as an older version or another tool could have.
fn write_bad_row(db: &Path, host: &str) {
    let raw = rusqlite::Connection::open(db).unwrap();
    raw.execute(
        "INSERT INTO hosts VALUES (?1, 'root', 'pw', 1)",
        rusqlite::params![host],
    )
    .unwrap();
    raw.execute(
        "INSERT INTO vpoller_hosts VALUES (?1, NULL, 'fingerprint', NULL, ?2)",
        rusqlite::params![host, mixed_fingerprint()],
    )
    .unwrap();
}

/// A registry row that cannot be served, there at the start or written
/// while the worker runs: requests for that host get the reason, every
/// other host is served, the worker keeps running; `hosts add` refuses to
/// write such a row.
#[test]
fn a_bad_registry_row_fails_its_own_host_only() {
    let simulator = Simulator::start();
    let stack = Stack::start_with(
        &[simulator_host(&simulator, "127.0.0.1")],
        4,
        2,
        common::tcp_endpoints,
        |db| write_bad_row(db, "bad.example.org"),
    );
    let client = stack.client();
    let good = json!({"method": "vm.get", "hostname": "127.0.0.1", "name": "DC0_H0_VM0", "properties": ["name"]}).to_string();
    let refused =
        |host: &str| {
            let reply: Value = serde_json::from_str(&client.run(
            &json!({"method": "vm.get", "hostname": host, "name": "x", "properties": ["name"]})
                .to_string(),
        ))
        .unwrap();
            assert_eq!(reply["success"], 1, "{reply}");
            let text = reply["msg"].as_str().unwrap().to_owned();
            assert!(
                text.starts_with(&format!(
                    "Task vm.get failed: the registry entry of {host} cannot be used: fingerprint"
                )),
                "{text}"
            );
            assert!(text.contains("is not a SHA-256"), "{text}");
        };
    refused("bad.example.org");
    assert!(client.run(&good).starts_with(r#"{"success": 0"#));
    // Written while the worker runs: found by the registry read that an
    // unknown name causes.
    write_bad_row(&stack.dir_path().join("vconnector.db"), "worse.example.org");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let reply =
            client.run(&json!({"method": "about", "hostname": "worse.example.org"}).to_string());
        if !reply.contains("Unknown or missing agent name") {
            break;
        }
        // The registry is read again at most every 2 s.
        assert!(Instant::now() < until, "{reply}");
        std::thread::sleep(Duration::from_millis(200));
    }
    refused("worse.example.org");
    refused("bad.example.org");
    assert!(client.run(&good).starts_with(r#"{"success": 0"#));
    let mut stack = stack;
    assert!(
        stack.worker.try_wait().unwrap().is_none(),
        "the worker died"
    );
    // `hosts add` checks before it writes.
    let output = Command::new(env!("CARGO_BIN_EXE_vpoller-worker"))
        .arg("--db")
        .arg(stack.dir_path().join("vconnector.db"))
        .args([
            "hosts",
            "add",
            "-H",
            "third.example.org",
            "-U",
            "root",
            "-P",
            "pw",
        ])
        .args(["--fingerprint", &mixed_fingerprint()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a SHA-256"), "{stderr}");
    assert_eq!(stack.registry().get("third.example.org").unwrap(), None);
}
