//! The test harness's controls over govmomi's vSphere simulator
//! (target/interop/vcsim, `make vcsim`): each command changes what a client
//! reads back, here through the agent with its mirror off (every task asks
//! the simulator); the call counts, `-delay-ms`, a restart with the same
//! certificate, and the freezable proxy that plays a hung vCenter. Every
//! test starts its own simulator on a free port, stopped by pid on drop.

mod common;
use common::{FreezableProxy, Simulator};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use vpoller::{Agent, AgentOptions, Verification};

/// An agent for `host` that asks the simulator on every task: no mirror,
/// no lookup cache (renamed and destroyed objects are seen at once).
fn agent(host: &str, verification: Verification, timeout_ms: u64) -> Agent {
    let options = AgentOptions {
        mirror: false,
        cache_ttl_s: 0,
        verification,
        timeout_ms,
        ..AgentOptions::default()
    };
    Agent::with_options(host, "root", "secret-pw", options).unwrap()
}

/// An agent for `simulator` verifying its certificate against its CA.
fn simulator_agent(simulator: &Simulator) -> Agent {
    agent(
        &simulator.host(),
        Verification::CaFile(simulator.ca_file.clone()),
        10_000,
    )
}

fn run(agent: &Agent, msg: Value) -> Value {
    let text = agent.run(&msg.to_string());
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// One property of one object (`vm.get`, `host.get`), asserted found.
fn property(agent: &Agent, method: &str, name: &str, property: &str) -> Value {
    let reply = run(
        agent,
        json!({"method": method, "name": name, "properties": [property]}),
    );
    assert_eq!(reply["success"], 0, "{reply}");
    reply["result"][0][property].clone()
}

fn power_state(agent: &Agent, vm: &str) -> Value {
    property(agent, "vm.get", vm, "runtime.powerState")
}

/// The names `vm.discover` answers.
fn vm_names(agent: &Agent) -> Vec<String> {
    let reply = run(agent, json!({"method": "vm.discover"}));
    assert_eq!(reply["success"], 0, "{reply}");
    common::discovered_names(&reply)
}

/// Asserts that `vm.get` does not find `vm`.
fn assert_missing(agent: &Agent, vm: &str) {
    let reply = run(
        agent,
        json!({"method": "vm.get", "name": vm, "properties": ["name"]}),
    );
    assert_eq!(reply["success"], 1, "{reply}");
    assert!(
        reply["msg"]
            .as_str()
            .unwrap()
            .contains(&format!("Cannot find object {vm}")),
        "{reply}"
    );
}

/// Runs `msg` until it succeeds (attempts of the agent's own timeout)
/// within a minute: the machine may be loaded.
fn run_until_success(agent: &Agent, msg: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = run(agent, msg.clone());
        if reply["success"] == 0 {
            return reply;
        }
        assert!(Instant::now() < deadline, "never answered: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn commands_answer_one_line_each_also_from_many_threads() {
    let simulator = Simulator::start();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(simulator.command("hello"), "");
                }
            });
        }
    });
    assert_eq!(
        simulator.try_command("poweroff no-such-vm"),
        Err("no virtual machine named no-such-vm".to_owned())
    );
    assert_eq!(
        simulator.try_command("maintenance no-such-host on"),
        Err("no host named no-such-host".to_owned())
    );
    let unknown = simulator.try_command("reboot-vcenter").unwrap_err();
    assert!(
        unknown.starts_with("unknown command reboot-vcenter"),
        "{unknown}"
    );
    let usage = simulator.try_command("rename DC0_H0_VM0").unwrap_err();
    assert!(usage.starts_with("usage: rename"), "{usage}");
    // A refused power change is the fault vCenter would give.
    simulator.command("poweroff DC0_H0_VM0");
    let again = simulator.try_command("poweroff DC0_H0_VM0").unwrap_err();
    assert!(again.contains("InvalidPowerState"), "{again}");
    assert_eq!(simulator.command("hello"), "");
}

#[test]
fn power_commands_change_the_power_state() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOn");
    simulator.command("poweroff DC0_H0_VM0");
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOff");
    // The others are untouched.
    assert_eq!(power_state(&agent, "DC0_C0_RP0_VM0"), "poweredOn");
    simulator.command("poweron DC0_H0_VM0");
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOn");
}

#[test]
fn a_renamed_vm_is_found_by_its_new_name_only() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    assert_eq!(
        property(&agent, "vm.get", "DC0_H0_VM0", "name"),
        "DC0_H0_VM0"
    );
    simulator.command("rename DC0_H0_VM0 Renamed-VM");
    assert_missing(&agent, "DC0_H0_VM0");
    assert_eq!(
        property(&agent, "vm.get", "Renamed-VM", "name"),
        "Renamed-VM"
    );
    let names = vm_names(&agent);
    assert!(
        names.contains(&"Renamed-VM".to_owned()) && !names.contains(&"DC0_H0_VM0".to_owned()),
        "{names:?}"
    );
    // The controls look names up afresh too.
    simulator.command("poweroff Renamed-VM");
    assert_eq!(power_state(&agent, "Renamed-VM"), "poweredOff");
}

#[test]
fn created_vms_appear_and_destroyed_ones_are_gone() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    let before = vm_names(&agent);
    assert!(!before.contains(&"made-here".to_owned()), "{before:?}");

    let reference = simulator.command("create made-here");
    assert!(reference.starts_with("vm-"), "{reference}");
    let names = vm_names(&agent);
    assert!(names.contains(&"made-here".to_owned()), "{names:?}");
    assert_eq!(names.len(), before.len() + 1, "{names:?}");
    assert_eq!(power_state(&agent, "made-here"), "poweredOff");
    simulator.command("poweron made-here");
    assert_eq!(power_state(&agent, "made-here"), "poweredOn");
    // Names stay unique, as vCenter keeps them in a folder.
    let taken = simulator.try_command("create made-here").unwrap_err();
    assert!(taken.contains("exists"), "{taken}");

    // Powered on: powered off first, then destroyed.
    simulator.command("destroy made-here");
    simulator.command("destroy DC0_H0_VM0");
    assert_missing(&agent, "made-here");
    assert_missing(&agent, "DC0_H0_VM0");
    let after = vm_names(&agent);
    assert_eq!(after.len(), before.len() - 1, "{after:?}");
    assert!(!after.contains(&"DC0_H0_VM0".to_owned()), "{after:?}");
    assert_eq!(
        simulator.try_command("destroy made-here"),
        Err("no virtual machine named made-here".to_owned())
    );
}

#[test]
fn maintenance_mode_goes_on_and_off() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    let in_maintenance =
        |host: &str| property(&agent, "host.get", host, "runtime.inMaintenanceMode");
    assert_eq!(in_maintenance("DC0_H0"), false);
    simulator.command("maintenance DC0_H0 on");
    assert_eq!(in_maintenance("DC0_H0"), true);
    assert_eq!(in_maintenance("DC0_H1"), false);
    // Hosts in clusters too.
    simulator.command("maintenance DC0_C0_H1 on");
    assert_eq!(in_maintenance("DC0_C0_H1"), true);
    simulator.command("maintenance DC0_H0 off");
    assert_eq!(in_maintenance("DC0_H0"), false);
    let mode = simulator
        .try_command("maintenance DC0_H0 maybe")
        .unwrap_err();
    assert!(mode.contains("on or off"), "{mode}");
}

#[test]
fn calls_count_what_clients_ask_and_not_the_controls() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    let vm_get =
        json!({"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["runtime.powerState"]});
    assert_eq!(run(&agent, vm_get.clone())["success"], 0);
    let since_start = simulator.calls();
    assert!(since_start["Login"] >= 1, "{since_start:?}");
    assert!(since_start["RetrievePropertiesEx"] >= 1, "{since_start:?}");

    simulator.reset_calls();
    assert!(simulator.calls().is_empty());
    // The controller's own calls are not counted.
    simulator.command("poweroff DC0_H1_VM0");
    simulator.command("create counted-not");
    simulator.command("maintenance DC0_H1 on");
    assert!(simulator.calls().is_empty(), "{:?}", simulator.calls());

    assert_eq!(run(&agent, vm_get.clone())["success"], 0);
    let one = simulator.calls();
    let retrieved = one["RetrievePropertiesEx"];
    assert!(retrieved >= 1, "{one:?}");
    assert!(!one.contains_key("Login"), "logged in already: {one:?}");
    assert_eq!(run(&agent, vm_get)["success"], 0);
    let two = simulator.calls();
    assert!(
        two["RetrievePropertiesEx"] > retrieved,
        "{one:?} then {two:?}"
    );
}

#[test]
fn expired_sessions_make_the_agent_log_in_again() {
    let simulator = Simulator::start();
    let agent = simulator_agent(&simulator);
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOn");
    simulator.reset_calls();
    let ended: u64 = simulator.command("expire-sessions").parse().unwrap();
    assert!(ended >= 1, "the agent's session: {ended}");
    // Only the controller's session is left.
    assert_eq!(simulator.command("expire-sessions"), "0");
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOn");
    let calls = simulator.calls();
    assert!(calls.get("Login").copied().unwrap_or(0) >= 1, "{calls:?}");
    // The controls still work: their session was kept.
    simulator.command("poweroff DC0_H0_VM0");
    assert_eq!(power_state(&agent, "DC0_H0_VM0"), "poweredOff");
}

#[test]
fn a_restarted_simulator_serves_the_same_certificate_on_the_same_port() {
    let mut simulator = Simulator::start_with(&["-vms", "3"]);
    let port = simulator.port;
    let ca = std::fs::read(&simulator.ca_file).unwrap();
    let agent = simulator_agent(&simulator);
    let about = json!({"method": "about", "properties": ["apiType"]});
    assert_eq!(run(&agent, about.clone())["success"], 0);
    simulator.command("poweroff DC0_H0_VM2");
    assert_eq!(power_state(&agent, "DC0_H0_VM2"), "poweredOff");

    simulator.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped, nothing listens on {port}"
    );
    // (Not `about`: the agent answers it from the host's last answer for a
    // moment.)
    let down = run(
        &agent,
        json!({"method": "vm.get", "name": "DC0_H0_VM2", "properties": ["name"]}),
    );
    assert_eq!(down["success"], 1, "{down}");

    simulator.restart();
    assert_eq!(simulator.port, port);
    assert_eq!(std::fs::read(&simulator.ca_file).unwrap(), ca);
    // The agent verifying against the CA it had answers again (on a new
    // session: the restarted simulator knows none), from a new state with
    // the same flags.
    run_until_success(&agent, &about);
    assert_eq!(power_state(&agent, "DC0_H0_VM2"), "poweredOn");
    assert_eq!(simulator.command("hello"), "");
    // A new client trusting the same CA file too.
    let fresh = simulator_agent(&simulator);
    assert_eq!(run(&fresh, about)["success"], 0);
}

#[test]
fn delay_ms_makes_every_call_slower() {
    const DELAY_MS: u64 = 300;
    let delay = DELAY_MS.to_string();
    let simulator = Simulator::start_with(&["-delay-ms", &delay]);
    let about = json!({"method": "about", "properties": ["apiType"]});

    // Every call takes longer than this agent allows a whole task.
    let hurried = agent(
        &simulator.host(),
        Verification::CaFile(simulator.ca_file.clone()),
        DELAY_MS / 3,
    );
    let reply = run(&hurried, about.clone());
    assert_eq!(reply["success"], 1, "{reply}");
    assert!(
        reply["msg"].as_str().unwrap().contains("timed out"),
        "{reply}"
    );

    // With time enough it answers, each of its calls at least the delay.
    let patient = simulator_agent(&simulator);
    simulator.reset_calls();
    let started = Instant::now();
    assert_eq!(run(&patient, about)["success"], 0);
    let took = started.elapsed();
    let calls: u64 = simulator.calls().values().sum();
    assert!(calls >= 1);
    // A lower bound only (a loaded machine is slower, never faster): the
    // agent's calls of one task may overlap, but one at least is whole.
    assert!(
        took >= Duration::from_millis(DELAY_MS),
        "{calls} calls in {took:?}"
    );
}

#[test]
fn a_frozen_proxy_hangs_requests_until_it_is_thawed() {
    let simulator = Simulator::start();
    let proxy = FreezableProxy::start(&simulator.host());
    let through = |timeout_ms| {
        agent(
            &proxy.host(),
            Verification::CaFile(simulator.ca_file.clone()),
            timeout_ms,
        )
    };
    let agent = through(1_000);
    let vm_get =
        json!({"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["runtime.powerState"]});
    let answered = run_until_success(&agent, &vm_get);
    assert_eq!(answered["result"][0]["runtime.powerState"], "poweredOn");

    proxy.freeze();
    simulator.reset_calls();
    let frozen = run(&agent, vm_get.clone());
    assert_eq!(frozen["success"], 1, "{frozen}");
    assert!(
        frozen["msg"].as_str().unwrap().contains("timed out"),
        "{frozen}"
    );
    // A new client's connection is accepted and never answered either.
    let newcomer = through(1_000);
    let unanswered = run(&newcomer, vm_get.clone());
    assert_eq!(unanswered["success"], 1, "{unanswered}");
    assert!(
        unanswered["msg"].as_str().unwrap().contains("timed out"),
        "{unanswered}"
    );
    // Nothing reached the simulator meanwhile.
    assert!(simulator.calls().is_empty(), "{:?}", simulator.calls());

    proxy.thaw();
    run_until_success(&agent, &vm_get);
    run_until_success(&newcomer, &vm_get);

    let port = proxy.port();
    drop(proxy);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "dropped, the proxy listens no more"
    );
}

#[test]
fn a_dropped_proxy_closes_its_connections_also_when_frozen() {
    use std::io::{ErrorKind, Read, Write};
    let simulator = Simulator::start();
    let proxy = FreezableProxy::start(&simulator.host());
    let before = TcpStream::connect(proxy.host()).unwrap();
    proxy.freeze();
    let during = TcpStream::connect(proxy.host()).unwrap();
    let mut buffer = [0; 64];
    for mut stream in [&before, &during] {
        // The start of a TLS ClientHello, held by the frozen proxy.
        stream.write_all(&[0x16, 0x03, 0x01]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let error = stream.read(&mut buffer).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{error}"
        );
    }
    drop(proxy);
    for mut stream in [&before, &during] {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => {}
            Ok(read) => panic!("{read} bytes from a dropped proxy"),
            Err(error) => assert!(
                !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "still open: {error}"
            ),
        }
    }
}
