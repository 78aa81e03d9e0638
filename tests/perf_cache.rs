//! The real-time performance cache: with the mirror on, a `*.perf.metric.get`
//! for the real-time interval is answered from memory once its metric was
//! asked for, with the bytes a direct query gives for the same samples, and
//! batched `QueryPerf` calls (at most 256 entities each) refresh it once a
//! period; with the mirror off, every request makes its own query. The fake
//! vSphere server's samples never change, so answers are compared byte for
//! byte there; the simulator's are made up on every call, so there the
//! shapes are compared.
//!
//! The cache's period is the entity's `refreshRate`: servers with a period
//! of an hour show what happens within one, servers with a period of one
//! second (and a pause longer than it) what happens after one, so that a
//! slow machine cannot change the outcome. Exact counts over many periods
//! are proved with a clock the library's own tests move on
//! (`src/agent/perf`).

mod common;
use common::fake_vsphere::PerfVCenter;
use common::Simulator;
use serde_json::{json, Value};
use std::time::Duration;
use vpoller::{Agent, AgentOptions, Verification};

const AN_HOUR: u32 = 3600;

fn agent(host: &str, mirror: bool, verification: Verification) -> Agent {
    Agent::with_options(
        host,
        "root",
        "pw",
        AgentOptions {
            verification,
            mirror,
            timeout_ms: 10_000,
            ..AgentOptions::default()
        },
    )
    .unwrap()
}

/// A cached agent and a direct one for `vcenter`.
fn agents(vcenter: &PerfVCenter) -> (Agent, Agent) {
    (
        agent(&vcenter.host(), true, Verification::Insecure),
        agent(&vcenter.host(), false, Verification::Insecure),
    )
}

/// The real-time `counter` of `name`, `max_sample` samples.
fn metric_get(name: &str, counter: &str, max_sample: i64) -> String {
    json!({"method": "vm.perf.metric.get", "name": name, "counter-name": counter, "max-sample": max_sample})
        .to_string()
}

fn cpu(vm: usize, max_sample: i64) -> String {
    metric_get(
        &format!("vm-{vm}"),
        "cpu.usagemhz.megaHertz.average",
        max_sample,
    )
}

/// Waits longer than a period of one second.
fn let_a_period_pass() {
    std::thread::sleep(Duration::from_millis(1_100));
}

#[test]
fn a_cached_answer_is_the_direct_answer_without_a_query() {
    let vcenter = PerfVCenter::with_refresh_rate(2, AN_HOUR);
    let (cached, direct) = agents(&vcenter);
    let first = cached.run(&cpu(1, 3));
    assert!(first.contains(r#""value": 1065}]"#), "{first}");
    assert_eq!(first, direct.run(&cpu(1, 3)));
    let queries = vcenter.count("QueryPerf");
    let summaries = vcenter.count("QueryPerfProviderSummary");
    for max_sample in [3, 2, 1] {
        let answer = cached.run(&cpu(1, max_sample));
        assert_eq!(answer, direct.run(&cpu(1, max_sample)), "{max_sample}");
    }
    // Three direct queries and summaries read once by the direct agent;
    // none by the cached one.
    assert_eq!(vcenter.count("QueryPerf"), queries + 3);
    assert_eq!(vcenter.count("QueryPerfProviderSummary"), summaries);
    // Another instance is another metric: asked for once.
    let instance = json!({"method": "vm.perf.metric.get", "name": "vm-1",
        "counter-name": "cpu.usagemhz.megaHertz.average", "instance": "0"})
    .to_string();
    for _ in 0..3 {
        assert_eq!(cached.run(&instance), direct.run(&instance));
    }
    assert_eq!(vcenter.count("QueryPerf"), queries + 3 + 1 + 3);
}

#[test]
fn without_the_mirror_every_request_makes_its_query() {
    let vcenter = PerfVCenter::with_refresh_rate(1, AN_HOUR);
    let (_, direct) = agents(&vcenter);
    for round in 1..=4 {
        direct.run(&cpu(1, 1));
        assert_eq!(vcenter.perf_queries(), vec![1; round]);
    }
}

#[test]
fn a_refresh_asks_for_every_entity_in_one_query() {
    let vcenter = PerfVCenter::with_refresh_rate(2, 1);
    let (cached, direct) = agents(&vcenter);
    cached.run(&cpu(1, 1));
    cached.run(&cpu(2, 2));
    assert_eq!(vcenter.perf_queries(), [1, 1]);
    let_a_period_pass();
    // vm-1's samples are old: one query for both, vm-2's two samples.
    let refreshed = cached.run(&cpu(1, 1));
    assert_eq!(vcenter.perf_queries(), [1, 1, 2]);
    let refresh = &vcenter.perf_bodies()[2];
    assert!(
        refresh.contains("vm-1</entity><maxSample>1</maxSample>"),
        "{refresh}"
    );
    assert!(
        refresh.contains("vm-2</entity><maxSample>2</maxSample>"),
        "{refresh}"
    );
    assert_eq!(refreshed, direct.run(&cpu(1, 1)));
}

#[test]
fn a_refresh_holds_at_most_256_entities() {
    const VMS: usize = 300;
    let vcenter = PerfVCenter::with_refresh_rate(VMS, 1);
    let (cached, _) = agents(&vcenter);
    for vm in 1..=VMS {
        cached.run(&cpu(vm, 1));
    }
    assert_eq!(vcenter.perf_queries(), vec![1; VMS]);
    let_a_period_pass();
    // Each chunk is refreshed by the first request that finds it old.
    cached.run(&cpu(1, 1));
    assert_eq!(vcenter.perf_queries()[VMS..], [256]);
    cached.run(&cpu(VMS, 1));
    assert_eq!(vcenter.perf_queries()[VMS..], [256, VMS - 256]);
}

#[test]
fn a_failed_refresh_leaves_no_old_answer() {
    let vcenter = PerfVCenter::with_refresh_rate(1, 1);
    let (cached, direct) = agents(&vcenter);
    let before = cached.run(&cpu(1, 1));
    let_a_period_pass();
    vcenter.fail_perf(true);
    // The refresh fails, then the direct query: the failure of no cache.
    let failed = cached.run(&cpu(1, 1));
    assert_ne!(failed, before);
    assert_eq!(failed, direct.run(&cpu(1, 1)));
    assert!(failed.contains(r#""success": 1"#), "{failed}");
    assert_eq!(vcenter.perf_queries(), [1, 1, 1, 1]);
    vcenter.fail_perf(false);
    assert_eq!(cached.run(&cpu(1, 1)), before);
}

#[test]
fn a_missing_object_is_not_answered_from_the_cache() {
    let vcenter = PerfVCenter::with_refresh_rate(1, AN_HOUR);
    let (cached, _) = agents(&vcenter);
    cached.run(&cpu(1, 1));
    assert_eq!(
        cached.run(&cpu(2, 1)),
        r#"{"success": 1, "msg": "Cannot find object: vm-2"}"#
    );
}

/// What a reply's samples look like, without their values and times.
fn shape(reply: &Value) -> Vec<Value> {
    assert_eq!(reply["success"], 0, "{reply}");
    reply["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            let keys: Vec<&String> = sample.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["interval", "timestamp", "counterId", "instance", "value"]
            );
            assert!(sample["value"].is_i64(), "{sample}");
            json!([sample["interval"], sample["counterId"], sample["instance"]])
        })
        .collect()
}

/// The seconds between consecutive samples' timestamps.
fn steps(reply: &Value) -> Vec<i64> {
    let seconds: Vec<i64> = reply["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            let time = sample["timestamp"].as_str().unwrap();
            let clock = &time[11..19];
            let parts: Vec<i64> = clock.split(':').map(|part| part.parse().unwrap()).collect();
            parts[0] * 3600 + parts[1] * 60 + parts[2]
        })
        .collect();
    seconds
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).rem_euclid(86_400))
        .collect()
}

#[test]
fn against_the_simulator_cached_answers_have_the_direct_shape() {
    let simulator = Simulator::start();
    let host = simulator.host();
    let cached = agent(&host, true, Verification::Insecure);
    let direct = agent(&host, false, Verification::Insecure);
    for (name, counter) in [
        ("DC0_H0_VM0", "cpu.usage.percent.average"),
        ("DC0_C0_RP0_VM1", "mem.usage.percent.average"),
    ] {
        for max_sample in [3, 3, 2, 1] {
            let msg = metric_get(name, counter, max_sample);
            let from_cache = cached.run_json(&msg);
            let asked = direct.run_json(&msg);
            assert_eq!(shape(&from_cache), shape(&asked), "{msg}");
            assert_eq!(
                from_cache["result"].as_array().unwrap().len() as i64,
                max_sample
            );
            assert_eq!(steps(&from_cache), steps(&asked), "{msg}");
            assert!(steps(&from_cache).iter().all(|step| *step == 20));
        }
    }
    // Hosts too, and historical intervals go to the simulator as before.
    let host_cpu = json!({"method": "host.perf.metric.get", "name": "DC0_H0",
        "counter-name": "cpu.usagemhz.megaHertz.average", "max-sample": 2})
    .to_string();
    let past_day = json!({"method": "datacenter.perf.metric.get", "name": "DC0",
        "counter-name": "vmop.numPoweron.number.latest", "perf-interval": "Past day", "max-sample": 2})
    .to_string();
    for msg in [&host_cpu, &host_cpu, &past_day, &past_day] {
        let from_cache = cached.run_json(msg);
        assert_eq!(shape(&from_cache), shape(&direct.run_json(msg)), "{msg}");
        assert_eq!(from_cache["result"].as_array().unwrap().len(), 2);
    }
}
