//! A forked child keeps using a client it inherited, with its own context and
//! sockets; the parent is unaffected. (Its own test binary: fork() wants as
//! few threads in the process as possible.)

mod common;
use common::{client, StandIn};
use std::time::{Duration, Instant};

#[test]
fn child_and_parent_both_keep_using_one_client() {
    let stand_in = StandIn::start();
    let client = client(stand_in.endpoint(), 2, 2000);
    // The parent has a pooled, connected socket before the fork.
    assert!(client
        .try_run(r#"{"method": "about", "who": "parent-before"}"#)
        .is_ok());

    // SAFETY: the child only runs the client and then leaves with _exit,
    // without unwinding or running destructors of the parent's threads.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut ok = true;
        for n in 0..3 {
            let reply = client.try_run(&format!(r#"{{"method": "about", "who": "child-{n}"}}"#));
            ok &= reply
                .map(|r| r.contains(&format!(r#""who": "child-{n}""#)))
                .unwrap_or(false);
        }
        drop(client);
        // SAFETY: ends the child at once, as a forked child of a threaded process should.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }

    let during = client.try_run(r#"{"method": "about", "who": "parent-during"}"#);
    assert!(during.unwrap().contains("parent-during"));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills our own child that hangs.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung using the inherited client");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "child died: status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "the child's requests failed");

    let after = client.try_run(r#"{"method": "about", "who": "parent-after"}"#);
    assert!(after.unwrap().contains("parent-after"));
    assert_eq!(stand_in.requests(), 6);
}
