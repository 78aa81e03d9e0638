//! The vSphere agent against govmomi's simulator (target/interop/vcsim,
//! `make vcsim`), started on a free loopback port per test and stopped by pid,
//! and against servers that misbehave.

mod common;
use common::Simulator;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vpoller::vsphere::VSphereKind;
use vpoller::{Agent, AgentOptions, Verification};

fn run(agent: &Agent, msg: Value) -> Value {
    let text = agent.run(&msg.to_string());
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn tasks_answer_as_a_vpoller_worker_does() {
    let simulator = Simulator::start();
    let agent = simulator.agent(Verification::CaFile(simulator.ca_file.clone()));
    agent.connect().unwrap();

    let discovered = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(discovered["success"], 0, "{discovered}");
    assert_eq!(discovered["msg"], "Successfully discovered objects");
    let names: Vec<&str> = discovered["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| vm["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"DC0_H0_VM0") && names.contains(&"Zürich-ВМ-虚拟机"),
        "{names:?}"
    );

    let reply = agent.run(
        r#"{"method": "vm.get", "name": "Zürich-ВМ-虚拟机", "properties": ["runtime.powerState"]}"#,
    );
    assert_eq!(
        reply,
        r#"{"success": 0, "msg": "Successfully retrieved object properties", "result": [{"name": "Zürich-ВМ-虚拟机", "runtime.powerState": "poweredOn"}]}"#
    );

    // Values py-vpoller cannot serialise: a reference, nested objects, arrays.
    let complex = run(
        &agent,
        json!({"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["runtime.host", "summary.config", "datastore"]}),
    );
    let vm = &complex["result"][0];
    assert!(
        vm["runtime.host"]
            .as_str()
            .unwrap()
            .starts_with("HostSystem:host-"),
        "{vm}"
    );
    assert_eq!(vm["summary.config"]["name"], "DC0_H0_VM0");
    assert!(vm["datastore"].as_array().unwrap()[0]
        .as_str()
        .unwrap()
        .starts_with("Datastore:"));

    assert_eq!(
        agent.run(r#"{"method": "host.get", "name": "no-such-host", "properties": ["name"]}"#),
        r#"{"success": 1, "msg": "Cannot find object no-such-host"}"#
    );
    let host_vms = run(&agent, json!({"method": "host.vm.get", "name": "DC0_H0"}));
    assert_eq!(
        host_vms["result"],
        json!([{"name": "DC0_H0_VM0"}, {"name": "Zürich-ВМ-虚拟机"}])
    );
    let vm_host = run(
        &agent,
        json!({"method": "vm.host.get", "name": "DC0_H0_VM0"}),
    );
    assert_eq!(
        vm_host["result"],
        json!([{"name": "DC0_H0_VM0", "host": "DC0_H0"}])
    );
    let cluster = run(
        &agent,
        json!({"method": "host.cluster.get", "name": "DC0_C0_H0"}),
    );
    assert_eq!(
        cluster["result"],
        json!([{"name": "DC0_C0_H0", "cluster": "DC0_C0"}])
    );
    let about = run(
        &agent,
        json!({"method": "about", "properties": ["apiType", "nothing"]}),
    );
    assert_eq!(
        about["result"],
        json!([{"apiType": "VirtualCenter", "nothing": "(null)"}])
    );

    // A datastore is named by its URL.
    let datastores = run(
        &agent,
        json!({"method": "datastore.discover", "properties": ["info.url"]}),
    );
    let url = datastores["result"][0]["info.url"]
        .as_str()
        .unwrap()
        .to_owned();
    let datastore = run(
        &agent,
        json!({"method": "datastore.get", "name": url, "properties": ["summary.type"]}),
    );
    assert_eq!(datastore["result"][0]["name"], "LocalDS_0", "{datastore}");
    let ds_vms = run(
        &agent,
        json!({"method": "vm.datastore.get", "name": "DC0_H0_VM0"}),
    );
    assert_eq!(ds_vms["result"][0]["name"], "LocalDS_0");
    assert_eq!(ds_vms["result"][0]["info.url"], url.as_str());
}

#[test]
fn one_agent_serves_many_threads() {
    let simulator = Simulator::start();
    let agent = simulator.agent(Verification::CaFile(simulator.ca_file.clone()));
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let agent = &agent;
            scope.spawn(move || {
                for _ in 0..20 {
                    let name = if thread % 2 == 0 { "DC0_H0_VM0" } else { "DC0_H1_VM0" };
                    let reply = run(agent, json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState"]}));
                    assert_eq!(reply["result"][0]["name"], name, "{reply}");
                }
            });
        }
    });
}

#[test]
fn an_untrusted_certificate_is_refused_with_a_way_out() {
    let simulator = Simulator::start();
    let agent = simulator.agent(Verification::SystemRoots);
    let refused = agent.connect().unwrap_err();
    assert_eq!(refused.vsphere_kind(), Some(&VSphereKind::Tls));
    let error = refused.to_string();
    assert!(
        error.contains("not trusted") && error.contains("ca_file") && error.contains("fingerprint"),
        "{error}"
    );
    assert!(!error.contains("secret-pw"));
    let reply = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(reply["success"], 1);
    assert!(
        reply["msg"]
            .as_str()
            .unwrap()
            .starts_with("Task vm.discover failed: the TLS certificate"),
        "{reply}"
    );

    // The fingerprint the message shows is the one to pin.
    let fingerprint = error
        .split("fingerprint is ")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let pinned = simulator.agent(Verification::Fingerprint(fingerprint));
    assert_eq!(run(&pinned, json!({"method": "about"}))["success"], 0);
    let wrong = simulator.agent(Verification::Fingerprint("00".repeat(32)));
    assert!(wrong.connect().is_err());
    let insecure = simulator.agent(Verification::Insecure);
    assert_eq!(run(&insecure, json!({"method": "about"}))["success"], 0);
}

#[test]
fn nothing_listening_fails_fast() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = Agent::with_options(
        &format!("127.0.0.1:{port}"),
        "u",
        "p",
        AgentOptions {
            verification: Verification::Insecure,
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let error = agent.connect().unwrap_err();
    assert_eq!(
        error.vsphere_kind(),
        Some(&VSphereKind::Unreachable),
        "{error}"
    );
    let reply = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(reply["success"], 1);
    assert!(
        reply["msg"].as_str().unwrap().contains("cannot reach"),
        "{reply}"
    );
}

/// Sets a flag when dropped, also when the test fails.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_server_that_never_answers_is_bounded_by_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = Arc::new(AtomicBool::new(false));
    // Accepts and holds connections without a word until the test ends (a
    // minute at most), so that only the agent's timeout can end a request.
    let holder = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            listener.set_nonblocking(true).unwrap();
            let until = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::SeqCst) && Instant::now() < until {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let stop_holder = SetOnDrop(done);
    let options = AgentOptions {
        verification: Verification::Insecure,
        timeout_ms: 700,
        ..AgentOptions::default()
    };
    let agent = Agent::with_options(&format!("127.0.0.1:{port}"), "u", "p", options).unwrap();
    let started = Instant::now();
    let error = agent.connect().unwrap_err();
    assert_eq!(error.vsphere_kind(), Some(&VSphereKind::Timeout), "{error}");
    let reply = run(&agent, json!({"method": "about"}));
    let took = started.elapsed();
    drop(stop_holder);
    holder.join().unwrap();
    assert_eq!(reply["success"], 1);
    assert!(
        reply["msg"].as_str().unwrap().contains("timed out"),
        "{reply}"
    );
    // Ended by the timeout, not by the holder letting go after a minute
    // (generously bounded, for a loaded machine).
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// The `timestamp` of a sample as text.
fn timestamps(reply: &Value) -> Vec<String> {
    reply["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result: {reply}"))
        .iter()
        .map(|sample| sample["timestamp"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn performance_tasks_answer_with_the_newest_samples() {
    let simulator = Simulator::start();
    let agent = simulator.agent(Verification::CaFile(simulator.ca_file.clone()));

    let counters = run(&agent, json!({"method": "perf.metric.info"}));
    assert_eq!(
        counters["msg"],
        "Successfully retrieved performance metrics info"
    );
    let first = &counters["result"][0];
    assert!(first["key"].is_i64(), "{first}");
    assert!(first["nameInfo"]["key"].is_string(), "{first}");
    assert!(counters["result"].as_array().unwrap().len() > 100);

    let intervals = run(&agent, json!({"method": "perf.interval.info"}));
    assert_eq!(
        intervals["result"][0],
        json!({"enabled": true, "key": 1, "length": 86400, "level": 1, "name": "Past day", "samplingPeriod": 300})
    );

    // What a VM offers, real-time: counter names, not ids.
    let offered = run(
        &agent,
        json!({"method": "vm.perf.metric.info", "name": "Zürich-ВМ-虚拟机"}),
    );
    assert_eq!(offered["success"], 0, "{offered}");
    let metrics = offered["result"].as_array().unwrap();
    assert!(metrics
        .iter()
        .any(|metric| metric["counterId"] == "cpu.usagemhz.megaHertz.average"));
    let filtered = run(
        &agent,
        json!({"method": "vm.perf.metric.info", "name": "DC0_H0_VM0", "counter-name": "cpu.usagemhz.megaHertz.average"}),
    );
    assert!(filtered["result"]
        .as_array()
        .unwrap()
        .iter()
        .all(|metric| metric["counterId"] == "cpu.usagemhz.megaHertz.average"));
    assert_eq!(
        run(
            &agent,
            json!({"method": "host.perf.metric.info", "name": "DC0_H0", "counter-name": "no.such.counter.none"})
        ),
        json!({"success": 1, "msg": "Unknown performance counter requested"})
    );

    // Real-time: the newest three, oldest first, one refresh period apart.
    let samples = run(
        &agent,
        json!({"method": "vm.perf.metric.get", "name": "DC0_H0_VM0", "counter-name": "cpu.usagemhz.megaHertz.average", "max-sample": 3}),
    );
    assert_eq!(samples["msg"], "Successfully retrieved performance metrics");
    let times = timestamps(&samples);
    assert_eq!(times.len(), 3, "{samples}");
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first: {samples}");
    let sample = &samples["result"][2];
    assert_eq!(sample["interval"], 20);
    assert_eq!(sample["counterId"], "cpu.usagemhz.megaHertz.average");
    assert_eq!(sample["instance"], "");
    assert!(sample["value"].is_i64(), "{sample}");
    // The newest sample is the one a request for one sample gets.
    let one = run(
        &agent,
        json!({"method": "vm.perf.metric.get", "name": "DC0_H0_VM0", "counter-name": "cpu.usagemhz.megaHertz.average"}),
    );
    assert_eq!(timestamps(&one).len(), 1);
    assert!(timestamps(&one)[0] >= times[2], "{one} vs {samples}");

    // Historical: a datacenter has only those; the interval is required.
    let historical = run(
        &agent,
        json!({"method": "datacenter.perf.metric.get", "name": "DC0", "counter-name": "vmop.numPoweron.number.latest", "perf-interval": "Past day", "max-sample": "2"}),
    );
    assert_eq!(timestamps(&historical).len(), 2, "{historical}");
    assert_eq!(historical["result"][0]["interval"], 300);
    assert_eq!(
        run(
            &agent,
            json!({"method": "datacenter.perf.metric.get", "name": "DC0", "counter-name": "vmop.numPoweron.number.latest", "perf-interval": "Past century"})
        ),
        json!({"success": 1, "msg": "Historical interval Past century does not exists"})
    );
    assert_eq!(
        run(
            &agent,
            json!({"method": "datastore.perf.metric.get", "name": "nowhere", "counter-name": "x"})
        ),
        json!({"success": 1, "msg": "Cannot find object: nowhere"})
    );
    let datastores = run(
        &agent,
        json!({"method": "datastore.discover", "properties": ["info.url"]}),
    );
    let url = datastores["result"][0]["info.url"].clone();
    assert_eq!(
        run(
            &agent,
            json!({"method": "datastore.perf.metric.get", "name": url, "counter-name": "datastore.numberReadAveraged.number.average"})
        ),
        json!({"success": 1, "msg": "No historical performance interval provided for entity LocalDS_0"})
    );
    for bad in [json!("many"), json!(-1), json!([3])] {
        assert_eq!(
            run(
                &agent,
                json!({"method": "host.perf.metric.get", "name": "DC0_H0", "counter-name": "cpu.usagemhz.megaHertz.average", "max-sample": bad})
            ),
            json!({"success": 1, "msg": "Invalid message, cannot retrieve performance metrics"}),
            "max-sample {bad}"
        );
    }
}

#[test]
fn a_restarted_vcenter_is_used_again_without_a_restart_here() {
    let simulator = Simulator::start();
    let port = simulator.port;
    let agent = simulator.agent(Verification::Insecure);
    let discover = json!({"method": "vm.discover"});
    let before = run(&agent, discover.clone());
    assert_eq!(before["success"], 0, "{before}");
    // vCenter goes away and comes back on the same port, knowing nothing of
    // the agent's session or its container views.
    drop(simulator);
    let down = run(&agent, discover.clone());
    assert_eq!(down["success"], 1, "{down}");
    let simulator = Simulator::start_on(port);
    assert_eq!(run(&agent, discover.clone()), before);
    let host_vms = run(&agent, json!({"method": "host.vm.get", "name": "DC0_H0"}));
    assert_eq!(host_vms["success"], 0, "{host_vms}");
    drop(simulator);
}

#[test]
fn about_fails_while_vcenter_is_down_and_answers_again_when_it_is_back() {
    let simulator = Simulator::start();
    let port = simulator.port;
    // Insecure: the simulator makes a new CA each time it starts.
    let agent = simulator.agent(Verification::Insecure);
    let about = json!({"method": "about", "properties": ["apiType"]});
    let up = agent.run(&about.to_string());
    assert_eq!(
        up,
        r#"{"msg": "Successfully retrieved properties", "success": 0, "result": [{"apiType": "VirtualCenter"}]}"#
    );
    drop(simulator);
    // Past the window in which the host's last answer stands for it.
    std::thread::sleep(Duration::from_millis(1_200));
    let down = run(&agent, about.clone());
    assert_eq!(down["success"], 1, "{down}");
    assert!(
        down["msg"]
            .as_str()
            .unwrap()
            .starts_with("Task about failed: cannot reach"),
        "{down}"
    );
    let simulator = Simulator::start_on(port);
    assert_eq!(agent.run(&about.to_string()), up);
    drop(simulator);
}

#[test]
fn a_certificate_with_a_weak_key_is_refused_for_what_it_is() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/certs");
    let server =
        common::fake_vsphere::FakeVSphere::showing(common::fake_vsphere::Identity::from_files(
            "weak-rsa-1024.pem",
            "weak-rsa-1024-handshake-key.pem",
        ));
    let certificate_file = std::path::PathBuf::from(format!("{certs}/weak-rsa-1024.pem"));
    let certificate = CertificateDer::from_pem_file(&certificate_file).unwrap();
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>();
    // Whatever the check, it is the key that is wrong, and the message says so.
    for verification in [
        Verification::Insecure,
        Verification::Fingerprint(fingerprint),
        Verification::CaFile(certificate_file),
        Verification::SystemRoots,
    ] {
        let agent = Agent::with_options(
            &server.host(),
            "root",
            "pw",
            AgentOptions {
                verification: verification.clone(),
                ..AgentOptions::default()
            },
        )
        .unwrap();
        let error = agent.connect().unwrap_err();
        assert_eq!(error.vsphere_kind(), Some(&VSphereKind::Tls), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "the TLS certificate of {} has a 1024-bit RSA key, which is too weak to be \
                 accepted (2048 bits at least); give the vSphere host a stronger certificate",
                server.host()
            ),
            "{verification:?}"
        );
        let reply = run(&agent, json!({"method": "about"}));
        let msg = reply["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("Task about failed: the TLS certificate") && msg.contains("1024-bit"),
            "{reply}"
        );
        assert!(!msg.contains("insecure"), "{reply}");
    }
    assert_eq!(server.count("RetrieveServiceContent"), 0);
}
