//! The mirror answers only while its update stream is known alive: with
//! vCenter stopped the replies are failures within 2 s, with vCenter hung
//! within 30 s; after a restart or an expired session it follows again by
//! itself. A first state larger than one answer of WaitForUpdatesEx is
//! taken whole.

mod common;

use common::{
    fake_vsphere, mirror_agent, reply_from_memory, until_reply, FreezableProxy, Simulator,
};
use fake_vsphere::{envelope, Answer, FakeVSphere};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use vpoller::{AgentOptions, Verification};

fn get(name: &str) -> String {
    json!({"method": "vm.get", "name": name, "properties": ["runtime.powerState"]}).to_string()
}

fn failed(reply: &Value) -> bool {
    reply["success"] == 1
}

#[test]
fn a_stopped_vcenter_gives_failure_replies_within_two_seconds_and_a_restarted_one_is_followed_again(
) {
    let mut simulator = Simulator::start();
    let on = mirror_agent(&simulator, true);
    let off = mirror_agent(&simulator, false);
    reply_from_memory(&on, &get("DC0_H0_VM0"));
    reply_from_memory(&on, &json!({"method": "about"}).to_string());

    let stopped = Instant::now();
    simulator.stop();
    let (reply, took) = until_reply(
        &on,
        &get("DC0_H0_VM0"),
        stopped,
        Duration::from_secs(2),
        failed,
    );
    eprintln!("stopped: failure after {took:?}: {reply}");
    // As with the mirror off.
    let direct: Value = serde_json::from_str(&off.run(&get("DC0_H0_VM0"))).unwrap();
    assert!(failed(&direct), "{direct}");
    let about: Value =
        serde_json::from_str(&on.run(&json!({"method": "about"}).to_string())).unwrap();
    assert!(failed(&about), "{about}");
    let status = on.mirror_status();
    assert_eq!(status["state"], "down", "{status}");

    // Back: answered (from vCenter at first), then from memory again,
    // nothing restarted on this side.
    simulator.restart();
    let restarted = Instant::now();
    until_reply(
        &on,
        &get("DC0_H0_VM0"),
        restarted,
        Duration::from_secs(30),
        |reply| reply["success"] == 0,
    );
    let memory = reply_from_memory(&on, &get("DC0_H0_VM0"));
    assert_eq!(memory, off.run(&get("DC0_H0_VM0")));
    // And it follows the new instance: a change there shows.
    simulator.command("poweroff DC0_H0_VM0");
    until_reply(
        &on,
        &get("DC0_H0_VM0"),
        Instant::now(),
        Duration::from_secs(2),
        |reply| reply["result"][0]["runtime.powerState"] == "poweredOff",
    );
}

#[test]
fn a_hung_vcenter_is_not_answered_from_memory_after_30_seconds() {
    let simulator = Simulator::start();
    let proxy = FreezableProxy::start(&simulator.host());
    let on = vpoller::Agent::with_options(
        &proxy.host(),
        "root",
        "secret-pw",
        AgentOptions {
            verification: Verification::CaFile(simulator.ca_file.clone()),
            timeout_ms: 2_000,
            ..AgentOptions::default()
        },
    )
    .unwrap();
    reply_from_memory(&on, &get("DC0_H0_VM0"));

    let frozen = Instant::now();
    proxy.freeze();
    let (reply, took) = until_reply(
        &on,
        &get("DC0_H0_VM0"),
        frozen,
        Duration::from_secs(30),
        failed,
    );
    eprintln!("hung: failure after {took:?}: {reply}");
    assert!(
        reply["msg"].as_str().unwrap().contains("timed out"),
        "{reply}"
    );
    assert_ne!(on.mirror_status()["state"], "in sync");

    proxy.thaw();
    let thawed = Instant::now();
    until_reply(
        &on,
        &get("DC0_H0_VM0"),
        thawed,
        Duration::from_secs(60),
        |reply| reply["success"] == 0,
    );
    reply_from_memory(&on, &get("DC0_H0_VM0"));
}

#[test]
fn an_expired_session_is_followed_again_with_changes_made_meanwhile() {
    let simulator = Simulator::start();
    let on = mirror_agent(&simulator, true);
    let off = mirror_agent(&simulator, false);
    reply_from_memory(&on, &get("DC0_H1_VM0"));
    off.run(&get("DC0_H1_VM0"));
    let logins_before = simulator.calls().get("Login").copied().unwrap_or(0);
    let ended: u64 = simulator.command("expire-sessions").trim().parse().unwrap();
    assert!(ended >= 2, "both agents' sessions end: {ended}");
    simulator.command("poweroff DC0_H1_VM0");
    // The change shows (from vCenter or from a mirror following again).
    until_reply(
        &on,
        &get("DC0_H1_VM0"),
        Instant::now(),
        Duration::from_secs(15),
        |reply| reply["result"][0]["runtime.powerState"] == "poweredOff",
    );
    // From memory again, on a new login.
    let memory = reply_from_memory(&on, &get("DC0_H1_VM0"));
    assert_eq!(memory, off.run(&get("DC0_H1_VM0")));
    assert!(simulator.calls()["Login"] > logins_before);
    // The new stream carries changes.
    simulator.command("poweron DC0_H1_VM0");
    until_reply(
        &on,
        &get("DC0_H1_VM0"),
        Instant::now(),
        Duration::from_secs(2),
        |reply| reply["result"][0]["runtime.powerState"] == "poweredOn",
    );
    let memory = reply_from_memory(&on, &get("DC0_H1_VM0"));
    assert!(memory.contains("poweredOn"), "{memory}");
    assert_eq!(memory, off.run(&get("DC0_H1_VM0")));
    let status = on.mirror_status();
    assert_eq!(
        status["soap_calls"]["CreatePropertyCollector"], 2,
        "{status}"
    );
}

/// The fake vCenter's answer to `CreatePropertyCollector`.
fn collector_made() -> Option<Answer> {
    Some(Answer::Xml(
        200,
        envelope(
            "<CreatePropertyCollectorResponse xmlns=\"urn:vim25\"><returnval type=\"PropertyCollector\">session[f]pc</returnval></CreatePropertyCollectorResponse>",
        ),
    ))
}

/// The text between `<tag>` and `</tag>` in `body`.
fn between<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

fn vm_object(n: usize, kind: &str) -> String {
    format!(
        "<objectSet><kind>{kind}</kind><obj type=\"VirtualMachine\">vm-{n}</obj>\
         <changeSet><name>name</name><op>assign</op><val xsi:type=\"xsd:string\">vm-{n}</val></changeSet>\
         </objectSet>"
    )
}

/// A vCenter of `vms` VMs whose first WaitForUpdatesEx answer holds
/// `first` of them (`truncated`), the next one the rest.
fn truncating_vcenter(vms: usize, first: usize) -> FakeVSphere {
    FakeVSphere::with_defaults(move |method, body| {
        let answer = |inner: String| Some(Answer::Xml(200, envelope(&inner)));
        match method {
            "CreatePropertyCollector" => collector_made(),
            "CreateFilter" => answer(
                "<CreateFilterResponse xmlns=\"urn:vim25\"><returnval type=\"PropertyFilter\">session[f]filter</returnval></CreateFilterResponse>".into(),
            ),
            "DestroyPropertyFilter" | "DestroyPropertyCollector" | "CancelWaitForUpdates" => {
                answer(format!("<{method}Response xmlns=\"urn:vim25\"></{method}Response>"))
            }
            "WaitForUpdatesEx" => {
                let (range, version, truncated) = match between(body, "version").unwrap_or("") {
                    "" => (0..first, "1", true),
                    "1" => (first..vms, "2", false),
                    _ => {
                        // Nothing changes: the long poll returns empty.
                        std::thread::sleep(Duration::from_millis(200));
                        return answer("<WaitForUpdatesExResponse xmlns=\"urn:vim25\"></WaitForUpdatesExResponse>".into());
                    }
                };
                let mut inner = String::from("<WaitForUpdatesExResponse xmlns=\"urn:vim25\"><returnval>");
                inner.push_str(&format!("<version>{version}</version><filterSet><filter type=\"PropertyFilter\">session[f]filter</filter>"));
                if range.start == 0 {
                    inner.push_str("<objectSet><kind>enter</kind><obj type=\"ContainerView\">session[fake]view-1</obj><changeSet><name>view</name><op>assign</op><val xsi:type=\"ArrayOfManagedObjectReference\">");
                    for n in 0..vms {
                        inner.push_str(&format!("<ManagedObjectReference type=\"VirtualMachine\">vm-{n}</ManagedObjectReference>"));
                    }
                    inner.push_str("</val></changeSet></objectSet>");
                }
                for n in range {
                    inner.push_str(&vm_object(n, "enter"));
                }
                inner.push_str(&format!("</filterSet><truncated>{truncated}</truncated></returnval></WaitForUpdatesExResponse>"));
                answer(inner)
            }
            "RetrievePropertiesEx" => {
                // One object asked for, or all of them (a lookup's scan).
                let asked = body
                    .split("<obj type=\"VirtualMachine\">")
                    .nth(1)
                    .and_then(|rest| rest.split('<').next())
                    .and_then(|id| id.strip_prefix("vm-"))
                    .and_then(|n| n.parse::<usize>().ok());
                let (start, count) = match asked {
                    Some(n) => (n, 1),
                    None => (0, vms),
                };
                Some(Answer::Xml(200, fake_vsphere::vm_page("RetrievePropertiesExResponse", start, count, None)))
            }
            _ => None,
        }
    })
}

#[test]
fn a_first_state_larger_than_one_answer_is_taken_whole() {
    let fake = truncating_vcenter(1500, 1000);
    let agent = vpoller::Agent::with_options(
        &fake.host(),
        "root",
        "pw",
        AgentOptions {
            verification: Verification::Insecure,
            timeout_ms: 10_000,
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let name_only =
        |name: &str| json!({"method": "vm.get", "name": name, "properties": ["name"]}).to_string();
    let direct = agent.run(&name_only("vm-1200"));
    assert!(direct.contains("\"success\": 0"), "{direct}");
    // Objects of both answers come from memory.
    assert_eq!(reply_from_memory(&agent, &name_only("vm-1200")), direct);
    assert!(reply_from_memory(&agent, &name_only("vm-10")).contains("vm-10"));
    let missing: Value =
        serde_json::from_str(&reply_from_memory(&agent, &name_only("vm-2000"))).unwrap();
    assert_eq!(missing["msg"], "Cannot find object vm-2000");
    let status = agent.mirror_status();
    assert_eq!(status["objects"], 1500, "{status}");
    assert_eq!(status["state"], "in sync", "{status}");
    // One answer, then the rest at once with its version.
    let waits: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|call| call == "WaitForUpdatesEx")
        .collect();
    assert!(waits.len() >= 2, "{waits:?}");
}

#[test]
fn a_property_vcenter_will_not_follow_is_read_from_vcenter() {
    let fake = FakeVSphere::with_defaults(|method, body| match method {
        "CreatePropertyCollector" => collector_made(),
        "CreateFilter" => Some(fake_vsphere::fault("InvalidProperty", "not followed")),
        "WaitForUpdatesEx" => {
            std::thread::sleep(Duration::from_millis(100));
            Some(Answer::Xml(200, envelope(
                "<WaitForUpdatesExResponse xmlns=\"urn:vim25\"><returnval><version>1</version></returnval></WaitForUpdatesExResponse>",
            )))
        }
        "RetrievePropertiesEx" => {
            let one =
                body.contains("<skip>false</skip></objectSet>") && !body.contains("ContainerView");
            let count = if one { 1 } else { 3 };
            Some(Answer::Xml(
                200,
                fake_vsphere::vm_page("RetrievePropertiesExResponse", 0, count, None),
            ))
        }
        _ => None,
    });
    let agent = vpoller::Agent::with_options(
        &fake.host(),
        "root",
        "pw",
        AgentOptions {
            verification: Verification::Insecure,
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let msg = json!({"method": "vm.get", "name": "vm-0", "properties": ["name"]}).to_string();
    for _ in 0..20 {
        let reply: Value = serde_json::from_str(&agent.run(&msg)).unwrap();
        assert_eq!(reply["success"], 0, "{reply}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = agent.mirror_status();
    assert_eq!(status["answered_from_memory"], 0, "{status}");
    assert_ne!(status["state"], "down", "{status}");
    // Refused once, not asked again and again.
    assert_eq!(fake.count("CreateFilter"), 1, "{status}");
}
