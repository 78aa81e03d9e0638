//! py-vpoller's retry contract: `retries` attempts in all, each waiting
//! `timeout`, a fresh socket after silence, and the exact failure reply.

mod common;
use common::{client, free_port, timed, StandIn};
use std::thread;
use std::time::Duration;
use vpoller::Error;

const NO_REPLY: &str = r#"{"success": 1, "msg": "Did not receive response, aborting..."}"#;

#[test]
fn silent_proxy_gets_exactly_retries_attempts_in_about_retries_times_timeout() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 3, 200);
    let (reply, elapsed) =
        timed(|| client.run(r#"{"method": "about", "stand_in": {"drop": true}}"#));
    assert_eq!(reply, NO_REPLY);
    // Every attempt reached the worker: the socket was replaced and the request re-sent.
    assert_eq!(stand_in.requests(), 3);
    // Each attempt waited its whole timeout.
    assert!(elapsed >= Duration::from_millis(590), "{elapsed:?}");
    // And then it gave up. Only a hang, or a wait of another order (seconds
    // for milliseconds), takes that long: a busy machine does not add
    // tens of seconds.
    assert!(elapsed < GAVE_UP, "{elapsed:?}");
}

/// Far above the 0.5 to 0.6 s that the failing requests here take.
const GAVE_UP: Duration = Duration::from_secs(30);

#[test]
fn no_proxy_at_all_fails_after_retries_times_timeout() {
    let client = client(&format!("tcp://127.0.0.1:{}", free_port()), 2, 250);
    let (result, elapsed) = timed(|| client.try_run(r#"{"method": "about"}"#));
    assert_eq!(result, Err(Error::NoReply { attempts: 2 }));
    // Nothing to connect to is no reason to give up early: both attempts
    // waited their whole timeout, then the client gave up.
    assert!(elapsed >= Duration::from_millis(490), "{elapsed:?}");
    assert!(elapsed < GAVE_UP, "{elapsed:?}");
}

#[test]
fn defaults_are_three_attempts() {
    let stand_in = StandIn::start();
    let client = vpoller::Client::new(stand_in.endpoint(), 0, 0).unwrap();
    assert_eq!(client.retries(), 3);
    // drop_first 2: the third attempt gets the reply.
    let reply = client
        .try_run(r#"{"method": "about", "stand_in": {"drop_first": 2}}"#)
        .unwrap();
    assert!(reply.starts_with(r#"{"success": 0"#), "{reply}");
    assert_eq!(stand_in.requests(), 3);
}

#[test]
fn a_retry_can_succeed() {
    let stand_in = StandIn::start();
    // The first attempt is dropped and costs its whole timeout; the second
    // has as long for its reply, which a busy machine does not need.
    let client = client(stand_in.endpoint(), 2, 1000);
    let reply = client
        .try_run(r#"{"method": "vm.get", "stand_in": {"drop_first": 1}}"#)
        .unwrap();
    assert!(reply.contains(r#""method": "vm.get""#), "{reply}");
    assert_eq!(stand_in.requests(), 2);
}

#[test]
fn proxy_that_starts_late_is_reached_by_a_later_attempt() {
    let port = free_port();
    // 100 attempts of 300 ms: the call returns at the first reply, and a
    // stand-in that a busy machine starts late is still within them.
    let client = client(&format!("tcp://127.0.0.1:{port}"), 100, 300);
    // Started after the first attempt's 300 ms are over.
    let starter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        StandIn::start_on(port, 1).expect("start the late stand-in")
    });
    let reply = client.try_run(r#"{"method": "about", "late": true}"#);
    let stand_in = starter.join().unwrap();
    let reply = reply.unwrap();
    // Answered by the stand-in that was not there for the first attempt.
    assert!(reply.contains(r#""late": true"#), "{reply}");
    stand_in.stop();
}

#[test]
fn same_client_recovers_after_the_proxy_restarts() {
    let stand_in = StandIn::start();
    let port = stand_in.port();
    // Two attempts of a second: the answered requests have time to spare on a
    // busy machine; the unanswered one costs 2 s.
    let client = client(stand_in.endpoint(), 2, 1000);
    assert!(client.try_run(r#"{"method": "about", "n": 1}"#).is_ok());

    stand_in.stop();
    assert_eq!(
        client.try_run(r#"{"method": "about", "n": 2}"#),
        Err(Error::NoReply { attempts: 2 })
    );

    // Restarted while a request is being retried.
    let restarter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(250));
        StandIn::start_on(port, 1).expect("restart the stand-in on its port")
    });
    // 100 attempts of 200 ms, for a restart that a busy machine makes late.
    let slow_client = common::client(&format!("tcp://127.0.0.1:{port}"), 100, 200);
    let during = slow_client.try_run(r#"{"method": "about", "n": 3}"#);
    let stand_in = restarter.join().unwrap();
    assert!(during.unwrap().contains(r#""n": 3"#));

    // The first client, which failed before, works again.
    let after = client.try_run(r#"{"method": "about", "n": 4}"#).unwrap();
    assert!(after.contains(r#""n": 4"#), "{after}");
    stand_in.stop();
}

#[test]
fn late_reply_is_never_handed_to_a_later_request() {
    let stand_in = StandIn::start();
    // One attempt of a second: the answered requests have time to spare on a
    // busy machine; request 1's reply comes a second after it gave up.
    let client = client(stand_in.endpoint(), 1, 1000);
    let first = client.try_run(r#"{"method": "about", "id": 1, "stand_in": {"delay_ms": 2000}}"#);
    assert_eq!(first, Err(Error::NoReply { attempts: 1 }));

    let second = client.try_run(r#"{"method": "about", "id": 2}"#).unwrap();
    assert!(
        second.contains(r#""id": 2"#) && !second.contains(r#""id": 1"#),
        "{second}"
    );

    // After the late reply to request 1 has been sent, it still goes nowhere.
    thread::sleep(Duration::from_millis(1500));
    for id in 3..6 {
        let reply = client
            .try_run(&format!(r#"{{"method": "about", "id": {id}}}"#))
            .unwrap();
        assert!(reply.contains(&format!(r#""id": {id}"#)), "{reply}");
        assert!(!reply.contains(r#""id": 1"#), "{reply}");
    }
}

#[test]
fn slow_reply_within_the_timeout_is_accepted() {
    let stand_in = StandIn::start();
    // 10 s: the 200 ms reply is well within it also on a busy machine.
    let client = client(stand_in.endpoint(), 1, 10_000);
    let (reply, elapsed) =
        timed(|| client.try_run(r#"{"method": "about", "stand_in": {"delay_ms": 200}}"#));
    assert!(reply.unwrap().starts_with(r#"{"success": 0"#));
    // The reply really was slow, and the one attempt waited for it.
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert_eq!(stand_in.requests(), 1);
}

/// A connection kept from an earlier request, which the proxy closed when
/// it went away, does not cost an attempt: one attempt is enough after
/// the proxy is back.
#[test]
fn one_attempt_is_enough_after_the_proxy_restarts() {
    let stand_in = StandIn::start();
    let port = stand_in.port();
    let client = client(stand_in.endpoint(), 1, 10_000);
    assert!(client.try_run(r#"{"method": "about", "n": 1}"#).is_ok());
    stand_in.stop();
    let stand_in = StandIn::start_on(port, 1).expect("restart the stand-in on its port");
    // The client has one attempt: a reply at all shows that the dead
    // connection did not use it up.
    let reply = client.try_run(r#"{"method": "about", "n": 2}"#);
    assert!(reply.unwrap().contains(r#""n": 2"#));
    // Sent once, on the new connection.
    assert_eq!(stand_in.requests(), 1);
    stand_in.stop();
}
