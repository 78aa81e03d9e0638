//! The vSphere agent when the server misbehaves: refused logins, SOAP faults,
//! bodies that are not XML, truncated and huge answers, result paging, an
//! expired session, and a vCenter killed in the middle of a request and
//! started again. Every case ends in a clear reply within the timeout.

mod common;
use common::fake_vsphere::{fault, vm_page, Answer, FakeVSphere};
use common::Simulator;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vpoller::vsphere::VSphereKind;
use vpoller::{Agent, AgentOptions, Verification};

const TIMEOUT_MS: u64 = 5_000;
/// How long a reply may take at most where the timeout bounds it.
const GENEROUS_BOUND: Duration = Duration::from_secs(30);

fn agent_for(host: &str, password: &str) -> Agent {
    agent_with_timeout(host, password, TIMEOUT_MS)
}

/// An agent of the fake server. Its mirror is off: these tests are of the
/// calls a task makes itself, which a follower's own calls would mix with
/// (the mirror's faults are in tests/mirror_liveness.rs).
fn agent_with_timeout(host: &str, password: &str, timeout_ms: u64) -> Agent {
    Agent::with_options(
        host,
        "root",
        password,
        AgentOptions {
            verification: Verification::Insecure,
            timeout_ms,
            connect_timeout_ms: 2_000,
            mirror: false,
            ..AgentOptions::default()
        },
    )
    .unwrap()
}

/// Runs `msg` and returns the parsed reply and how long it took.
fn run(agent: &Agent, msg: Value) -> (Value, Duration) {
    let started = Instant::now();
    let text = agent.run(&msg.to_string());
    let reply = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"));
    (reply, started.elapsed())
}

/// Checks a failure reply: success 1, a message starting with `prefix` and
/// containing `part`, bounded by the task timeout (generously: a loaded
/// machine may be slow, but a request that hangs never ends).
fn assert_failure(reply: &Value, took: Duration, prefix: &str, part: &str) {
    assert_eq!(reply["success"], 1, "{reply}");
    let msg = reply["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(prefix),
        "{msg:?} should start with {prefix:?}"
    );
    assert!(msg.contains(part), "{msg:?} should contain {part:?}");
    assert!(took < GENEROUS_BOUND, "took {took:?}");
}

#[test]
fn a_wrong_password_is_a_clear_failure_without_the_password() {
    let server = FakeVSphere::with_defaults(|method, body| {
        (method == "Login" && !body.contains("<password>right</password>")).then(|| {
            fault(
                "InvalidLogin",
                "Cannot complete login due to an incorrect user name or password.",
            )
        })
    });
    let agent = agent_for(&server.host(), "wr0ng-pw");
    let refused = agent.connect().unwrap_err();
    assert_eq!(refused.vsphere_kind(), Some(&VSphereKind::NotAuthenticated));
    let error = refused.to_string();
    assert!(error.contains("login to"), "{error}");
    assert!(error.contains("incorrect user name or password"), "{error}");
    assert!(!error.contains("wr0ng-pw"), "{error}");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(
        &reply,
        took,
        "Task vm.discover failed: login to",
        "incorrect user name",
    );
    assert!(!reply.to_string().contains("wr0ng-pw"));

    let agent = agent_for(&server.host(), "right");
    agent.connect().unwrap();
}

#[test]
fn a_soap_fault_is_a_failure_reply() {
    let server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx")
            .then(|| fault("InvalidProperty", "Property no.such.path not found"))
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, took) = run(
        &agent,
        json!({"method": "vm.discover", "properties": ["no.such.path"]}),
    );
    assert_failure(
        &reply,
        took,
        "Cannot collect properties: ",
        "no.such.path not found",
    );
    let (reply, took) = run(
        &agent,
        json!({"method": "host.get", "name": "esx01", "properties": ["no.such.path"]}),
    );
    assert_failure(&reply, took, "Cannot collect properties: ", "no.such.path");
}

#[test]
fn a_body_that_is_not_xml_is_a_failure_reply() {
    let server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then(|| {
            Answer::Xml(
                200,
                "<html><body>Service Unavailable<br></body></html>\n\u{0}\u{1}".to_owned(),
            )
        })
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "XML");

    // Not XML at all, on login.
    let garbage = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrieveServiceContent")
            .then(|| Answer::Xml(200, "{\"json\": true}".to_owned()))
    });
    let agent = agent_for(&garbage.host(), "pw");
    let error = agent.connect().unwrap_err();
    assert_eq!(
        error.vsphere_kind(),
        Some(&VSphereKind::Protocol),
        "{error}"
    );
    let (reply, took) = run(&agent, json!({"method": "about"}));
    assert_failure(&reply, took, "Task about failed: ", "no SOAP Body");
    // An HTTP error page instead of SOAP.
    let proxy_error = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then(|| {
            Answer::Raw(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\nunavailable"
                    .to_vec(),
            )
        })
    });
    let agent = agent_for(&proxy_error.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "HTTP status 503");
}

#[test]
fn a_truncated_answer_is_a_failure_reply() {
    let server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then(|| {
            let page = vm_page("RetrievePropertiesExResponse", 0, 50, None);
            let cut = &page.as_bytes()[..page.len() / 2];
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                page.len()
            )
            .into_bytes();
            bytes.extend_from_slice(cut);
            Answer::Raw(bytes)
        })
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "ends early");
    // Also when the XML itself ends early but the HTTP framing is whole.
    let cut_xml = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then(|| {
            let page = vm_page("RetrievePropertiesExResponse", 0, 50, None);
            Answer::Xml(200, page[..page.len() - 200].to_owned())
        })
    });
    let agent = agent_for(&cut_xml.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "XML");
}

#[test]
fn a_50_mb_answer_comes_back_whole_within_the_timeout() {
    // About 50 MB: 400 000 objects of about 130 bytes each.
    const OBJECTS: usize = 400_000;
    let page = Arc::new(vm_page("RetrievePropertiesExResponse", 0, OBJECTS, None));
    assert!(page.len() > 50_000_000, "{}", page.len());
    let served = page.clone();
    let server = FakeVSphere::with_defaults(move |method, _| {
        (method == "RetrievePropertiesEx").then(|| Answer::Xml(200, served.as_str().to_owned()))
    });
    let agent = Agent::with_options(
        &server.host(),
        "root",
        "pw",
        AgentOptions {
            verification: Verification::Insecure,
            timeout_ms: 60_000,
            ..AgentOptions::default()
        },
    )
    .unwrap();
    let reply = agent.run_json(r#"{"method": "vm.discover"}"#);
    assert_eq!(reply["success"], 0, "{}", reply["msg"]);
    let result = reply["result"].as_array().unwrap();
    assert_eq!(result.len(), OBJECTS);
    assert_eq!(
        result[OBJECTS - 1],
        json!({"name": format!("vm-{}", OBJECTS - 1)})
    );

    // The same size of garbage is a failure, not a hang.
    let garbage = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then(|| Answer::Xml(200, "x".repeat(50_000_000)))
    });
    let agent = agent_for(&garbage.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "no SOAP Body");
}

#[test]
fn result_pages_are_followed_to_the_end() {
    let server = FakeVSphere::with_defaults(|method, body| match method {
        "RetrievePropertiesEx" => Some(Answer::Xml(
            200,
            vm_page("RetrievePropertiesExResponse", 0, 100, Some("page-2")),
        )),
        "ContinueRetrievePropertiesEx" if body.contains("<token>page-2</token>") => {
            Some(Answer::Xml(
                200,
                vm_page(
                    "ContinueRetrievePropertiesExResponse",
                    100,
                    100,
                    Some("page-3"),
                ),
            ))
        }
        "ContinueRetrievePropertiesEx" if body.contains("<token>page-3</token>") => {
            Some(Answer::Xml(
                200,
                vm_page("ContinueRetrievePropertiesExResponse", 200, 50, None),
            ))
        }
        "ContinueRetrievePropertiesEx" => Some(fault("InvalidArgument", "unknown token")),
        _ => None,
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, _) = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(reply["success"], 0, "{reply}");
    let names: Vec<&str> = reply["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| vm["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 250);
    assert_eq!(names[0], "vm-0");
    assert_eq!(names[249], "vm-249");
    assert_eq!(server.count("ContinueRetrievePropertiesEx"), 2);
}

#[test]
fn an_expired_session_is_renewed_and_the_call_made_again() {
    let expired = Arc::new(AtomicUsize::new(0));
    let seen = expired.clone();
    let server = FakeVSphere::with_defaults(move |method, _| {
        // The first property call finds the session gone, once.
        (method == "RetrievePropertiesEx" && seen.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| fault("NotAuthenticated", "The session is not authenticated."))
    });
    let agent = agent_for(&server.host(), "pw");
    agent.connect().unwrap();
    let (reply, _) = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(
        reply,
        json!({"success": 0, "msg": "Successfully discovered objects", "result": []})
    );
    assert_eq!(server.count("Login"), 2, "{:?}", server.calls());
    assert_eq!(expired.load(Ordering::SeqCst), 2);
}

#[test]
fn a_vcenter_killed_mid_request_and_restarted_is_used_again() {
    let mut server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then_some(Answer::Hang)
    });
    let port = server.port;
    // A timeout far beyond the bound of `assert_failure`: a reply within that
    // bound shows the cut connection was noticed at once, not at the timeout.
    let agent = Arc::new(agent_with_timeout(&server.host(), "pw", 120_000));
    agent.connect().unwrap();
    let waiting = {
        let agent = agent.clone();
        std::thread::spawn(move || run(&agent, json!({"method": "vm.discover"})))
    };
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    let (reply, took) = waiting.join().unwrap();
    assert_failure(&reply, took, "Task vm.discover failed: ", "");

    // While it is down: a clear failure at once.
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: cannot reach", "");

    // vCenter is back (a real one, which knows nothing of the old session):
    // the next task logs in again and works, with no restart of anything.
    let simulator = Simulator::start_on(port);
    let (reply, _) = run(&agent, json!({"method": "host.vm.get", "name": "DC0_H0"}));
    assert_eq!(reply["success"], 0, "{reply}");
    assert_eq!(
        reply["result"],
        json!([{"name": "DC0_H0_VM0"}, {"name": "Zürich-ВМ-虚拟机"}])
    );
    drop(simulator);
}

#[test]
fn a_closed_connection_without_an_answer_is_a_failure_reply() {
    let server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx").then_some(Answer::Close)
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, took) = run(&agent, json!({"method": "vm.discover"}));
    assert_failure(&reply, took, "Task vm.discover failed: ", "");
    // Sent twice at most: once, and once more on a fresh connection.
    let sent = server.count("RetrievePropertiesEx");
    assert!((1..=2).contains(&sent), "{:?}", server.calls());
}

#[test]
fn connections_are_kept_alive_across_tasks() {
    let server = FakeVSphere::with_defaults(|method, _| {
        (method == "RetrievePropertiesEx")
            .then(|| Answer::Chunked(vm_page("RetrievePropertiesExResponse", 0, 20, None)))
    });
    let agent = agent_for(&server.host(), "pw");
    for _ in 0..10 {
        let (reply, _) = run(&agent, json!({"method": "vm.discover"}));
        assert_eq!(reply["result"].as_array().unwrap().len(), 20, "{reply}");
    }
    // Every call, the login included, on the one connection: each answer is
    // read to its end, so the connection goes back to the pool.
    assert_eq!(server.connections(), 1, "{:?}", server.calls());
}

#[test]
fn a_property_the_server_cannot_read_for_lack_of_a_session_renews_it() {
    // vcsim answers a session it does not know with the properties missing
    // (missingSet, NotAuthenticated) instead of a fault.
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = answered.clone();
    let server = FakeVSphere::with_defaults(move |method, _| {
        (method == "RetrievePropertiesEx").then(|| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Answer::Xml(
                    200,
                    common::fake_vsphere::envelope(
                        "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects>\
                         <obj type=\"VirtualMachine\">vm-1</obj><missingSet><path>name</path>\
                         <fault><fault xsi:type=\"NotAuthenticated\"><object type=\"VirtualMachine\">vm-1</object>\
                         <privilegeId>System.View</privilegeId></fault><localizedMessage></localizedMessage></fault>\
                         </missingSet></objects></returnval></RetrievePropertiesExResponse>",
                    ),
                )
            } else {
                Answer::Xml(200, vm_page("RetrievePropertiesExResponse", 1, 1, None))
            }
        })
    });
    let agent = agent_for(&server.host(), "pw");
    let (reply, _) = run(&agent, json!({"method": "vm.discover"}));
    assert_eq!(reply["result"], json!([{"name": "vm-1"}]), "{reply}");
    assert_eq!(server.count("Login"), 2, "{:?}", server.calls());
}

#[test]
fn about_asks_the_host_at_most_about_once_a_second() {
    let server = FakeVSphere::with_defaults(|_, _| None);
    let agent = agent_for(&server.host(), "pw");
    agent.connect().unwrap();
    let asked = || server.count("RetrieveServiceContent");
    let at_login = asked();
    let about = r#"{"method": "about"}"#;
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(
            agent.run(about),
            r#"{"msg": "Successfully retrieved properties", "success": 0, "result": [{"fullName": "Fake vCenter 6.5"}]}"#
        );
    }
    let took = started.elapsed();
    // The login's answer stands for the host for a second, and each call
    // another second: one call at most per second that passed.
    let calls = asked() - at_login;
    assert!(
        calls as u64 <= 1 + took.as_secs(),
        "{calls} calls in {took:?}"
    );
    // With no answer from the host for longer than that, about asks it.
    std::thread::sleep(Duration::from_millis(1_200));
    let before = asked();
    let (reply, _) = run(&agent, json!({"method": "about"}));
    assert_eq!(reply["success"], 0, "{reply}");
    assert_eq!(asked(), before + 1, "{:?}", server.calls());
}

#[test]
fn concurrent_abouts_share_one_call() {
    const CALLERS: usize = 8;
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let server = {
        let (released, asked) = (released.clone(), asked.clone());
        FakeVSphere::with_defaults(move |method, _| {
            // The login's call answers at once; the next waits for the test.
            if method == "RetrieveServiceContent" && asked.fetch_add(1, Ordering::SeqCst) > 0 {
                while !released.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            None
        })
    };
    let agent = agent_for(&server.host(), "pw");
    agent.connect().unwrap();
    std::thread::sleep(Duration::from_millis(1_200));
    std::thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| scope.spawn(|| run(&agent, json!({"method": "about"})).0))
            .collect();
        // The first caller's call reached the server; give the others time
        // to come while it is under way, then let it answer.
        let waiting_since = Instant::now();
        while asked.load(Ordering::SeqCst) < 2 && waiting_since.elapsed() < GENEROUS_BOUND {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        released.store(true, Ordering::SeqCst);
        for caller in callers {
            let reply = caller.join().unwrap();
            assert_eq!(reply["success"], 0, "{reply}");
        }
    });
    // One call for all of them (two should a caller be held up for over a
    // second); not one each.
    let calls = server.count("RetrieveServiceContent") - 1;
    assert!((1..=2).contains(&calls), "{:?}", server.calls());
}
