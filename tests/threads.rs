//! One client shared by many threads: calls run in parallel and each caller
//! gets its own reply.

mod common;
use common::{client, StandIn};
use std::sync::Arc;
use std::thread;
use vpoller::Error;

#[test]
fn eight_threads_share_one_client_in_parallel() {
    const THREADS: usize = 8;
    const CALLS: usize = 10;
    let stand_in = StandIn::start();
    let client = Arc::new(client(stand_in.endpoint(), 3, 5000));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread_id| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for call in 0..CALLS {
                    // The stand-in holds each reply for 100 ms, so the
                    // requests of threads that run at the same time meet there.
                    let msg = format!(
                        r#"{{"method": "vm.get", "name": "vm-{thread_id}-{call}", "stand_in": {{"delay_ms": 100}}}}"#
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
    // Each request reached the stand-in once: no attempt timed out.
    assert_eq!(stand_in.requests(), THREADS * CALLS);
    // The calls overlapped: the stand-in was working on several requests at
    // one time. A client that made one call at a time would show 1 here
    // however fast or slow the machine is.
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
                    // A slow request's reply leaves the stand-in 250 ms after
                    // the request came, always after the client's 100 ms.
                    let slow = (thread_id + call) % 4 == 0;
                    let delay = if slow { 250 } else { 0 };
                    let msg = format!(
                        r#"{{"method": "about", "tag": "{thread_id}/{call}", "stand_in": {{"delay_ms": {delay}}}}}"#
                    );
                    if slow {
                        match client.try_run(&msg) {
                            Err(Error::NoReply { attempts: 1 }) => {}
                            other => panic!("a slow request got {other:?}"),
                        }
                        continue;
                    }
                    // A fast one is answered at once; only a busy machine
                    // makes it miss the 100 ms, and then it is asked again
                    // (its own late reply must not come back to anyone either).
                    // 200 misses in a row, 20 s of silence from a local
                    // stand-in, would be a fault, not load.
                    let reply = (0..200)
                        .find_map(|_| match client.try_run(&msg) {
                            Ok(reply) => Some(reply),
                            Err(Error::NoReply { .. }) => None,
                            Err(other) => panic!("{other}"),
                        })
                        .unwrap_or_else(|| panic!("{thread_id}/{call} was never answered"));
                    assert!(
                        reply.contains(&format!(r#""tag": "{thread_id}/{call}""#)),
                        "{reply}"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread");
    }
}
