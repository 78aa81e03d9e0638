//! One client shared by many threads: calls run in parallel and each caller
//! gets its own reply.

mod common;
use common::{client, timed, StandIn};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[test]
fn eight_threads_share_one_client_in_parallel() {
    const THREADS: usize = 8;
    const CALLS: usize = 10;
    let stand_in = StandIn::start();
    let client = Arc::new(client(stand_in.endpoint(), 3, 5000));
    let (_, elapsed) = timed(|| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread_id| {
                let client = Arc::clone(&client);
                thread::spawn(move || {
                    for call in 0..CALLS {
                        let msg = format!(
                            r#"{{"method": "vm.get", "name": "vm-{thread_id}-{call}", "stand_in": {{"delay_ms": 20}}}}"#
                        );
                        let reply = client.try_run(&msg).expect("reply");
                        assert!(
                            reply.contains(&format!(r#""name": "vm-{thread_id}-{call}""#)),
                            "thread {thread_id} call {call} got {reply}"
                        );
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker thread");
        }
    });
    assert_eq!(stand_in.requests(), THREADS * CALLS);
    // Serially this takes 80 x 20 ms = 1.6 s; in parallel about 0.2 s.
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    assert!(
        stand_in.max_in_flight() >= 4,
        "max in flight {}",
        stand_in.max_in_flight()
    );
}

#[test]
fn replies_stay_matched_under_contention_with_timeouts() {
    // Some requests time out while others succeed on the same client.
    let stand_in = StandIn::start();
    let client = Arc::new(client(stand_in.endpoint(), 1, 100));
    let workers: Vec<_> = (0..6)
        .map(|thread_id| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for call in 0..15 {
                    let slow = (thread_id + call) % 4 == 0;
                    let delay = if slow { 250 } else { 0 };
                    let msg = format!(
                        r#"{{"method": "about", "tag": "{thread_id}/{call}", "stand_in": {{"delay_ms": {delay}}}}}"#
                    );
                    match client.try_run(&msg) {
                        Ok(reply) => {
                            assert!(!slow, "a slow request got a reply: {reply}");
                            assert!(reply.contains(&format!(r#""tag": "{thread_id}/{call}""#)), "{reply}");
                        }
                        Err(vpoller::Error::NoReply { .. }) => assert!(slow),
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread");
    }
}
