//! Answers from the mirror are byte for byte those from vCenter: for every
//! task family answered from memory, on the test inventory, the reply of
//! an agent with the mirror on (once it answers from memory) equals the
//! reply of an agent with the mirror off.

mod common;

use common::{
    answered_from_memory as from_memory, discovered_names, mirror_agent as agent,
    reply_from_memory as answered_from_memory, Simulator,
};
use serde_json::{json, Value};
use vpoller::Agent;

fn datastore_url(agent: &Agent) -> String {
    let reply: Value = serde_json::from_str(
        &agent.run(r#"{"method": "datastore.discover", "properties": ["info.url"]}"#),
    )
    .unwrap();
    reply["result"][0]["info.url"].as_str().unwrap().to_owned()
}

#[test]
fn answers_from_memory_equal_answers_from_vcenter() {
    let simulator = Simulator::start();
    let on = agent(&simulator, true);
    let off = agent(&simulator, false);
    let url = datastore_url(&off);
    let vm = "DC0_H0_VM0";
    let mut messages = vec![
        json!({"method": "vm.discover"}),
        json!({"method": "vm.discover", "properties": ["runtime.powerState", "summary.config.numCpu"]}),
        json!({"method": "vm.get", "name": vm, "properties": ["runtime.powerState", "config.hardware.device", "guest", "datastore"]}),
        json!({"method": "vm.get", "name": "Zürich-ВМ-虚拟机", "properties": ["runtime.powerState"]}),
        json!({"method": "vm.get", "name": "no-such-vm", "properties": ["runtime.powerState"]}),
        json!({"method": "host.discover", "properties": ["runtime.inMaintenanceMode"]}),
        json!({"method": "host.get", "name": "DC0_H0", "properties": ["summary.hardware", "runtime.connectionState"]}),
        json!({"method": "datastore.discover", "properties": ["summary.capacity"]}),
        json!({"method": "datastore.get", "name": url, "properties": ["summary.type"]}),
        json!({"method": "datacenter.discover"}),
        json!({"method": "datacenter.get", "name": "DC0", "properties": ["overallStatus"]}),
        json!({"method": "cluster.discover"}),
        json!({"method": "cluster.get", "name": "DC0_C0", "properties": ["summary.numHosts"]}),
        json!({"method": "resource.pool.discover"}),
        json!({"method": "net.discover"}),
        json!({"method": "net.get", "name": "VM Network", "properties": ["summary.accessible"]}),
        json!({"method": "vm.cpu.usage.percent", "name": vm}),
        json!({"method": "vm.disk.discover", "name": vm}),
        json!({"method": "vm.disk.get", "name": vm, "key": "/no/such/disk"}),
        json!({"method": "vm.guest.net.get", "name": vm}),
        json!({"method": "vm.snapshot.get", "name": vm}),
        json!({"method": "datastore.host.get", "name": url}),
        json!({"method": "datastore.vm.get", "name": url}),
        json!({"method": "about"}),
        json!({"method": "about", "properties": ["apiType", "version"]}),
    ];
    for method in [
        "host.vm.get",
        "host.net.get",
        "host.datastore.get",
        "host.alarm.get",
    ] {
        messages.push(json!({"method": method, "name": "DC0_H0"}));
    }
    messages.push(json!({"method": "host.cluster.get", "name": "DC0_C0_H0"}));
    for method in [
        "vm.host.get",
        "vm.net.get",
        "vm.datastore.get",
        "vm.alarm.get",
    ] {
        messages.push(json!({"method": method, "name": vm}));
    }
    for method in ["net.host.get", "net.vm.get"] {
        messages.push(json!({"method": method, "name": "VM Network"}));
    }
    messages.push(json!({"method": "cluster.alarm.get", "name": "DC0_C0"}));
    messages.push(json!({"method": "datacenter.alarm.get", "name": "DC0"}));
    for msg in &messages {
        let text = msg.to_string();
        let memory = answered_from_memory(&on, &text);
        assert_eq!(memory, off.run(&text), "{text}");
    }
    // Every one of them again, now that the mirror holds all: still equal,
    // and none made a call.
    let before = from_memory(&on);
    for msg in &messages {
        let text = msg.to_string();
        assert_eq!(on.run(&text), off.run(&text), "{text}");
    }
    assert_eq!(from_memory(&on) - before, messages.len() as u64);
}

#[test]
fn live_tasks_still_ask_vcenter() {
    let simulator = Simulator::start();
    let on = agent(&simulator, true);
    // (vm.process.get reads the guest's processes from vCenter only when
    // its tools run; the simulator's do not, which the VM's properties say.)
    for msg in [
        json!({"method": "event.latest"}),
        json!({"method": "session.get"}),
    ] {
        let text = msg.to_string();
        for _ in 0..3 {
            let before = from_memory(&on);
            let reply: Value = serde_json::from_str(&on.run(&text)).unwrap();
            assert_eq!(reply["success"], 0, "{reply}");
            assert_eq!(from_memory(&on), before, "{text} was answered from memory");
        }
    }
}

#[test]
fn the_cap_on_values_holds_and_the_rest_is_read_from_vcenter() {
    let simulator = Simulator::start();
    // Room for the VMs' names (6 VMs), not for a second property as well.
    let on = simulator.agent_with(vpoller::AgentOptions {
        verification: vpoller::Verification::CaFile(simulator.ca_file.clone()),
        mirror_max_values: 8,
        ..vpoller::AgentOptions::default()
    });
    let off = agent(&simulator, false);
    let names = json!({"method": "vm.discover"}).to_string();
    let power = json!({"method": "vm.discover", "properties": ["runtime.powerState"]}).to_string();
    assert_eq!(answered_from_memory(&on, &names), off.run(&names));
    for _ in 0..20 {
        assert_eq!(on.run(&power), off.run(&power));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = on.mirror_status();
    assert!(status["values"].as_u64().unwrap() <= 8, "{status}");
    // Still from vCenter: the property was refused.
    let before = from_memory(&on);
    assert_eq!(on.run(&power), off.run(&power));
    assert_eq!(from_memory(&on), before, "{status}");
    // The names still come from memory.
    assert_eq!(answered_from_memory(&on, &names), off.run(&names));
}

#[test]
fn properties_nobody_asks_for_leave_the_mirror() {
    let simulator = Simulator::start();
    let on = simulator.agent_with(vpoller::AgentOptions {
        verification: vpoller::Verification::CaFile(simulator.ca_file.clone()),
        mirror_idle_s: 2,
        ..vpoller::AgentOptions::default()
    });
    let power =
        json!({"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["runtime.powerState"]})
            .to_string();
    answered_from_memory(&on, &power);
    let held = on.mirror_status()["values"].as_u64().unwrap();
    assert!(held > 0);
    // Asked from memory for longer than the idle time: it stays.
    let asking = std::time::Instant::now();
    while asking.elapsed() < std::time::Duration::from_secs(7) {
        let before = from_memory(&on);
        on.run(&power);
        assert_eq!(from_memory(&on), before + 1, "{}", on.mirror_status());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Nothing asked: the follower drops the paths on its next round (it
    // polls every 5 s while nothing changes).
    let started = std::time::Instant::now();
    loop {
        let status = on.mirror_status();
        if status["values"] == 0 && status["properties"] == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "still mirrored: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Asked again: read from vCenter, then mirrored again.
    let before = from_memory(&on);
    on.run(&power);
    assert_eq!(from_memory(&on), before);
    answered_from_memory(&on, &power);
}

#[test]
fn a_first_sweep_with_the_mirror_off_scans_the_names_once() {
    let simulator = Simulator::start_with(&["-vms", "20"]);
    let off = agent(&simulator, false);
    let names = discovered_names(
        &serde_json::from_str::<Value>(&off.run(r#"{"method": "vm.discover"}"#)).unwrap(),
    );
    assert!(names.len() >= 60, "{}", names.len());
    simulator.reset_calls();
    for name in &names {
        let msg = json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState"]});
        let reply: Value = serde_json::from_str(&off.run(&msg.to_string())).unwrap();
        assert_eq!(reply["success"], 0, "{reply}");
    }
    // One scan of the names, then one read per VM.
    let calls = simulator.calls();
    assert_eq!(
        calls["RetrievePropertiesEx"],
        names.len() as u64 + 1,
        "{calls:?}"
    );
}

#[test]
fn answers_equal_on_thousands_of_vms() {
    let simulator = Simulator::start_with(&["-vms", "700"]);
    let on = agent(&simulator, true);
    let off = agent(&simulator, false);
    let discover =
        json!({"method": "vm.discover", "properties": ["runtime.powerState", "summary.config.numCpu"]})
            .to_string();
    let memory = answered_from_memory(&on, &discover);
    assert_eq!(memory, off.run(&discover));
    let names = discovered_names(&serde_json::from_str::<Value>(&memory).unwrap());
    assert!(names.len() >= 2000, "{}", names.len());
    let status = on.mirror_status();
    assert!(status["objects"].as_u64().unwrap() >= 2000, "{status}");
    for name in names.iter().step_by(41) {
        let get = json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState", "summary.config.numCpu"]})
            .to_string();
        assert_eq!(answered_from_memory(&on, &get), off.run(&get), "{get}");
    }
}
