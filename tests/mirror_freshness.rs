//! The mirror follows vCenter: a change made through the vSphere API shows
//! in answers from memory within 2 s (a VM powered off, renamed, created,
//! destroyed; a host put in maintenance), also while requests run and
//! while the filter grows, and the answers then equal those with the
//! mirror off.

mod common;

use common::{discovered_names, mirror_agent, reply_from_memory, until_reply, Simulator};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// vCenter's changes show within this (the promise).
const FRESH: Duration = Duration::from_secs(2);

fn missing(reply: &Value) -> bool {
    reply["success"] == 1
        && reply["msg"]
            .as_str()
            .is_some_and(|msg| msg.starts_with("Cannot find object"))
}

fn power_state(reply: &Value) -> &Value {
    &reply["result"][0]["runtime.powerState"]
}

#[test]
fn power_off_rename_create_destroy_and_maintenance_show_within_two_seconds() {
    let simulator = Simulator::start();
    let on = mirror_agent(&simulator, true);
    let off = mirror_agent(&simulator, false);
    let get = |name: &str| {
        json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState"]}).to_string()
    };
    let discover = json!({"method": "vm.discover"}).to_string();
    let maintenance =
        json!({"method": "host.get", "name": "DC0_H0", "properties": ["runtime.inMaintenanceMode"]})
            .to_string();
    for msg in [get("DC0_H0_VM0"), discover.clone(), maintenance.clone()] {
        reply_from_memory(&on, &msg);
    }

    // Powered off.
    let changed = Instant::now();
    simulator.command("poweroff DC0_H0_VM0");
    let (_, took) = until_reply(&on, &get("DC0_H0_VM0"), changed, FRESH, |reply| {
        power_state(reply) == "poweredOff"
    });
    eprintln!("powered off: {took:?}");
    assert_eq!(on.run(&get("DC0_H0_VM0")), off.run(&get("DC0_H0_VM0")));

    // Renamed: the new name answers, the old one is gone at once.
    let changed = Instant::now();
    simulator.command("rename DC0_H0_VM0 web-renamed");
    let (_, took) = until_reply(&on, &get("web-renamed"), changed, FRESH, |reply| {
        reply["success"] == 0
    });
    eprintln!("renamed: {took:?}");
    let old: Value = serde_json::from_str(&on.run(&get("DC0_H0_VM0"))).unwrap();
    assert!(missing(&old), "{old}");
    assert_eq!(on.run(&get("DC0_H0_VM0")), off.run(&get("DC0_H0_VM0")));

    // Created: it appears in discover and answers by name.
    let changed = Instant::now();
    simulator.command("create fresh-vm");
    let (_, took) = until_reply(&on, &discover, changed, FRESH, |reply| {
        discovered_names(reply).contains(&"fresh-vm".to_owned())
    });
    eprintln!("created: {took:?}");
    until_reply(&on, &get("fresh-vm"), changed, FRESH, |reply| {
        reply["success"] == 0
    });
    assert_eq!(on.run(&discover), off.run(&discover));

    // Destroyed: "Cannot find object".
    let changed = Instant::now();
    simulator.command("destroy fresh-vm");
    let (_, took) = until_reply(&on, &get("fresh-vm"), changed, FRESH, missing);
    eprintln!("destroyed: {took:?}");
    until_reply(&on, &discover, changed, FRESH, |reply| {
        !discovered_names(reply).contains(&"fresh-vm".to_owned())
    });
    assert_eq!(on.run(&discover), off.run(&discover));

    // A host in maintenance.
    let changed = Instant::now();
    simulator.command("maintenance DC0_H0 on");
    let (_, took) = until_reply(&on, &maintenance, changed, FRESH, |reply| {
        reply["result"][0]["runtime.inMaintenanceMode"] == true
    });
    eprintln!("maintenance: {took:?}");
    assert_eq!(on.run(&maintenance), off.run(&maintenance));

    // All of it from memory still: the stream is followed, not re-read.
    let status = on.mirror_status();
    assert_eq!(status["state"], "in sync", "{status}");
    assert!(status["updates_applied"].as_u64().unwrap() > 0, "{status}");
}

#[test]
fn objects_created_and_destroyed_under_load_are_followed() {
    let simulator = Simulator::start_with(&["-vms", "20"]);
    let on = mirror_agent(&simulator, true);
    let off = mirror_agent(&simulator, false);
    let discover =
        json!({"method": "vm.discover", "properties": ["runtime.powerState"]}).to_string();
    reply_from_memory(&on, &discover);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Readers: every answer is a whole, well-formed reply.
        let readers: Vec<_> = (0..4)
            .map(|reader| {
                let (on, stop, discover) = (&on, &stop, &discover);
                scope.spawn(move || {
                    let mut answers = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let msg = if reader % 2 == 0 {
                            discover.clone()
                        } else {
                            json!({"method": "vm.get", "name": "DC0_H0_VM3", "properties": ["runtime.powerState"]}).to_string()
                        };
                        let reply: Value = serde_json::from_str(&on.run(&msg)).unwrap();
                        assert_eq!(reply["success"], 0, "{reply}");
                        answers += 1;
                    }
                    answers
                })
            })
            .collect();
        for round in 0..5 {
            let name = format!("churn-{round}");
            simulator.command(&format!("create {name}"));
            let get =
                json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState"]})
                    .to_string();
            until_reply(&on, &get, Instant::now(), FRESH * 5, |reply| {
                reply["success"] == 0
            });
            simulator.command(&format!("destroy {name}"));
            until_reply(&on, &get, Instant::now(), FRESH * 5, missing);
        }
        stop.store(true, Ordering::SeqCst);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    });
    // Settled: equal to vCenter's answer, and from memory.
    let reply = reply_from_memory(&on, &discover);
    assert_eq!(reply, off.run(&discover));
    assert!(!reply.contains("churn-"), "{reply}");
}

#[test]
fn the_filter_grows_while_requests_run() {
    let simulator = Simulator::start();
    let on = mirror_agent(&simulator, true);
    let off = mirror_agent(&simulator, false);
    let paths = [
        "runtime.powerState",
        "summary.config.numCpu",
        "config.hardware.memoryMB",
        "guest.toolsStatus",
        "runtime.host",
        "summary.quickStats.overallCpuUsage",
    ];
    // Each thread asks for a path of its own, all at once: the filter takes
    // them on while the others are answered.
    std::thread::scope(|scope| {
        for path in paths {
            let (on, off) = (&on, &off);
            scope.spawn(move || {
                let msg = json!({"method": "vm.get", "name": "DC0_H0_VM1", "properties": [path]})
                    .to_string();
                for _ in 0..20 {
                    assert_eq!(on.run(&msg), off.run(&msg), "{msg}");
                }
                let memory = reply_from_memory(on, &msg);
                assert_eq!(memory, off.run(&msg), "{msg}");
            });
        }
    });
    let all = json!({"method": "vm.discover", "properties": paths}).to_string();
    assert_eq!(reply_from_memory(&on, &all), off.run(&all));
    let status = on.mirror_status();
    assert!(
        status["properties"].as_u64().unwrap() >= paths.len() as u64,
        "{status}"
    );
}
