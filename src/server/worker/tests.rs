//! The worker in this process, against the proxy in this process: faults
//! that only a test can cause (panics on the request path, a loop that
//! fails) must not hang or kill the worker.

use crate::hosts::{Host, Registry, Tls};
use crate::server::{proxy, worker, Config, Stop};
use crate::test_hooks;
use crate::Client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// A configuration on `ipc://` endpoints of its own (no port to race other
/// tests for) with a registry holding `127.0.0.1` (port 9: nothing
/// listens, so tasks fail at once).
fn setup(name: &str) -> (Config, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vpoller-worker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("vconnector.db");
    Registry::open(db.to_str().unwrap())
        .unwrap()
        .add(&Host {
            host: "127.0.0.1".into(),
            user: "root".into(),
            password: "pw".into(),
            enabled: true,
            port: Some(9),
            tls: Tls::Unchecked,
        })
        .unwrap();
    let endpoint = |name: &str| format!("ipc://{}", dir.join(name).display());
    let mut config = Config::default();
    config.proxy.frontend = endpoint("frontend");
    config.proxy.backend = endpoint("backend");
    config.proxy.mgmt = endpoint("proxy-mgmt");
    config.worker.proxy = config.proxy.backend.clone();
    config.worker.mgmt = endpoint("worker-mgmt");
    config.worker.db = db.to_str().unwrap().to_owned();
    config.worker.helpers = vec![crate::helpers::ZABBIX.to_owned()];
    config.worker.threads = 2;
    config.worker.per_host = 2;
    config.worker.timeout_ms = 5000;
    (config, dir)
}

/// Sets the stop flag when dropped, so that the servers of a test end
/// also when an assertion fails.
struct StopOnDrop<'a>(&'a Stop);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set();
    }
}

fn reply(client: &Client, msg: &Value) -> Value {
    serde_json::from_str(&client.run(&msg.to_string())).unwrap()
}

#[test]
fn a_panic_anywhere_on_the_request_path_is_a_failure_reply() {
    let (config, dir) = setup("panics");
    let stop = Stop::new();
    std::thread::scope(|scope| {
        scope.spawn(|| proxy::run(&config.proxy, &stop).unwrap());
        scope.spawn(|| worker::run(&config, 1, &stop).unwrap());
        let _stop = StopOnDrop(&stop);
        let client = Client::new(&config.proxy.frontend, 1, 10_000).unwrap();
        // More panics than the pool has threads: none of them may be lost.
        for _ in 0..3 {
            for place in ["reader", "task", "helper"] {
                let msg = json!({
                    "method": "vm.get", "hostname": "127.0.0.1", "name": "vm01",
                    "properties": ["name"], "helper": "vpoller.helpers.zabbix",
                    "test.panic": place,
                });
                let answer = reply(&client, &msg);
                assert_eq!(answer["success"], 1, "{place}: {answer}");
                let text = answer["msg"].as_str().unwrap();
                assert!(text.contains("internal error in the worker"), "{text}");
                assert!(
                    text.contains(&format!("a test panic in the {place}")),
                    "{text}"
                );
            }
        }
        // The pool goes on: refusals, and tasks that run.
        assert_eq!(
            reply(&client, &json!({"method": "about", "hostname": "vc99"})),
            json!({"success": 1, "msg": "Unknown or missing agent name"})
        );
        let about = reply(
            &client,
            &json!({"method": "about", "hostname": "127.0.0.1"}),
        );
        assert!(
            about["msg"]
                .as_str()
                .unwrap()
                .starts_with("Task about failed: "),
            "{about}"
        );
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_loop_stops_the_others_at_once() {
    let (config, dir) = setup("loops");
    test_hooks::fail_loop(&config.worker.mgmt, 1);
    let stop = Stop::new();
    let (done, outcome) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = done.send(worker::run(&config, 2, &stop));
        });
        let _stop = StopOnDrop(&stop);
        // Nothing else sets the stop flag: without loop 1's failure
        // stopping loop 0, the worker would run on. The bound only keeps a
        // broken build from hanging the test run.
        let result = outcome.recv_timeout(Duration::from_secs(120));
        let error = result
            .expect("the worker ran on after a loop failed")
            .unwrap_err();
        assert!(error.to_string().contains("loop 1 failed"), "{error}");
    });
    let _ = std::fs::remove_dir_all(dir);
}
