//! CURVE between the client, `vpoller-proxy` and `vpoller-worker` (the
//! programs): keys made by `vpoller-proxy keygen`, clients and workers let
//! in or refused by the proxy's lists, and what crosses the loopback
//! network, recorded by a relay between the client and the proxy.

mod common;
use common::{free_port, keygen, tcp_endpoints, Stack, PROXY};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use vpoller::curve::KeyPair;
use vpoller::{Client, ClientOption, Error};

/// The keys of one CURVE stack, written in its directory.
struct Keys {
    frontend: String,
    backend: String,
    /// A client key pair the frontend allows.
    client: KeyPair,
}

/// A stack whose frontend and backend speak CURVE, each letting in the
/// keys listed (the worker's own key, one client's key).
fn curve_stack() -> (Stack, Keys) {
    let client = KeyPair::generate().unwrap();
    let client_public = client.public().to_z85();
    let keys = Mutex::new(None);
    let stack = Stack::start_configured(
        &[],
        2,
        2,
        tcp_endpoints,
        |_| {},
        |dir| {
            let frontend = keygen(&dir.join("frontend.key"));
            let backend = keygen(&dir.join("backend.key"));
            let worker = keygen(&dir.join("worker.key"));
            std::fs::write(
                dir.join("clients"),
                format!("# the monitoring server\n{client_public}  # zabbix01\n"),
            )
            .unwrap();
            std::fs::write(dir.join("workers"), format!("{worker}\n")).unwrap();
            *keys.lock().unwrap() = Some((frontend, backend.clone()));
            (
                format!(
                    "frontend_curve_secret_key = {0}/frontend.key\n\
                 frontend_curve_allowed = {0}/clients\n\
                 backend_curve_secret_key = {0}/backend.key\n\
                 backend_curve_allowed = {0}/workers\n",
                    dir.display()
                ),
                format!(
                    "proxy_curve_server_key = {backend}\ncurve_secret_key = {}/worker.key\n",
                    dir.display()
                ),
            )
        },
    );
    let (frontend, backend) = keys.lock().unwrap().take().unwrap();
    (
        stack,
        Keys {
            frontend,
            backend,
            client,
        },
    )
}

/// A client of `endpoint` speaking CURVE to `server` with `pair`.
fn curve_client(endpoint: &str, server: &str, pair: Option<&KeyPair>, retries: i32) -> Client {
    let client = Client::new(endpoint, retries, 2000).unwrap();
    client
        .set_option(ClientOption::CurveServerKey, server)
        .unwrap();
    if let Some(pair) = pair {
        client
            .set_option(ClientOption::CurvePublicKey, &pair.public().to_z85())
            .unwrap();
        client
            .set_option(ClientOption::CurveSecretKey, &pair.secret().to_z85())
            .unwrap();
    }
    client
}

/// The worker's answer to a request for a host it does not know.
const ANSWER: &str = "Unknown or missing agent name";

/// A request the worker answers without a vSphere host: a host it does not
/// know, named with `marker`.
fn request(marker: &str) -> String {
    format!(r#"{{"method": "about", "hostname": "{marker}"}}"#)
}

/// The reply to a request with `marker`, which must be the worker's
/// answer; the programs' logs otherwise.
fn served(stack: &Stack, client: &Client, marker: &str) -> String {
    match client.try_run(&request(marker)) {
        Ok(reply) if reply.contains(ANSWER) => reply,
        other => panic!(
            "{other:?}\nproxy: {}\nworker: {}",
            log(stack, "vpoller-proxy"),
            log(stack, "vpoller-worker")
        ),
    }
}

fn log(stack: &Stack, program: &str) -> String {
    std::fs::read_to_string(stack.dir_path().join(format!("{program}.log"))).unwrap_or_default()
}

#[test]
fn clients_and_workers_with_listed_keys_are_served() {
    let (stack, keys) = curve_stack();
    let client = curve_client(&stack.frontend, &keys.frontend, Some(&keys.client), 1);
    served(&stack, &client, "host-not-registered");
    assert_eq!(
        client.curve_public_key(),
        Some(keys.client.public().to_z85())
    );
    // Many requests on the one connection, and from threads at once.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (client, stack) = (&client, &stack);
            scope.spawn(move || {
                for n in 0..25 {
                    served(stack, client, &format!("thread{thread}-request{n}"));
                }
            });
        }
    });
    // The worker's key is the one of its file; the proxy logged both keys.
    let proxy = log(&stack, "vpoller-proxy");
    assert!(proxy.contains(&keys.frontend), "{proxy}");
    assert!(proxy.contains(&keys.backend), "{proxy}");
    assert!(proxy.contains("1 client keys allowed"), "{proxy}");
}

#[test]
fn unknown_keys_and_wrong_server_keys_get_the_failure_reply() {
    let (stack, keys) = curve_stack();
    // A client key not in the list: ERROR 400, no reply in any attempt.
    let stranger = curve_client(&stack.frontend, &keys.frontend, None, 2);
    for _ in 0..3 {
        assert_eq!(
            stranger.try_run(&request("stranger")),
            Err(Error::NoReply { attempts: 2 })
        );
    }
    assert_eq!(
        stranger.run(&request("stranger")),
        r#"{"success": 1, "msg": "Did not receive response, aborting..."}"#
    );
    // The backend's key where the frontend's is due: the proxy cannot open
    // the client's HELLO.
    let confused = curve_client(&stack.frontend, &keys.backend, Some(&keys.client), 1);
    assert_eq!(
        confused.try_run(&request("confused")),
        Err(Error::NoReply { attempts: 1 })
    );
    // No CURVE at all.
    let plain = Client::new(&stack.frontend, 1, 1000).unwrap();
    assert_eq!(
        plain.try_run(&request("plain")),
        Err(Error::NoReply { attempts: 1 })
    );
    // The listed client is still served.
    let client = curve_client(&stack.frontend, &keys.frontend, Some(&keys.client), 1);
    served(&stack, &client, "listed");
    // Each refused key is logged once, however often it came back.
    let proxy = log(&stack, "vpoller-proxy");
    let stranger_key = stranger.curve_public_key().unwrap();
    let refusals = proxy
        .lines()
        .filter(|line| line.contains(&stranger_key))
        .collect::<Vec<_>>();
    assert_eq!(refusals.len(), 1, "{proxy}");
    assert!(
        refusals[0].contains("not in frontend_curve_allowed"),
        "{proxy}"
    );
    assert!(
        proxy.contains("HELLO does not open with this server's key"),
        "the wrong server key: {proxy}"
    );
    assert!(
        proxy.contains("mechanism NULL where CURVE is spoken"),
        "{proxy}"
    );
}

/// A program killed by pid when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_worker_with_an_unlisted_key_is_refused_by_the_backend() {
    let (stack, keys) = curve_stack();
    // A second worker with a fresh key pair: refused, so every request is
    // still served by the listed one.
    let config = stack.dir_path().join("stranger.conf");
    std::fs::write(
        &config,
        format!(
            "[worker]\ndb = {}\nproxy = {}\nmgmt = tcp://127.0.0.1:{}\nproxy_curve_server_key = {}\n",
            stack.dir_path().join("vconnector.db").display(),
            stack.backend,
            free_port(),
            keys.backend
        ),
    )
    .unwrap();
    let stranger = Killed(common::spawn(common::WORKER, &config));
    let client = curve_client(&stack.frontend, &keys.frontend, Some(&keys.client), 1);
    let mut seen = false;
    for n in 0..200 {
        served(&stack, &client, &format!("request{n}"));
        seen = log(&stack, "vpoller-proxy").contains("refused the worker");
        if seen && n >= 20 {
            break;
        }
    }
    drop(stranger);
    let proxy = log(&stack, "vpoller-proxy");
    assert!(seen, "{proxy}");
    assert!(proxy.contains("not in backend_curve_allowed"), "{proxy}");
    let worker = std::fs::read_to_string(stack.dir_path().join("vpoller-worker.log")).unwrap();
    assert!(worker.contains("a fresh pair"), "{worker}");
}

/// A TCP relay from a free loopback port to `target` that records every
/// byte, both ways.
fn recording_relay(target: String) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&record);
    std::thread::spawn(move || {
        for incoming in listener.incoming() {
            let Ok(client) = incoming else { return };
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let record = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16384];
                    loop {
                        match from.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(read) => {
                                record.lock().unwrap().extend_from_slice(&buffer[..read]);
                                if to.write_all(&buffer[..read]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (port, record)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn the_wire_shows_no_request_or_reply_text() {
    let (stack, keys) = curve_stack();
    let target = stack.frontend.trim_start_matches("tcp://").to_owned();
    let (port, record) = recording_relay(target);
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let marker = "secret-inventory-of-vc01";
    let client = curve_client(&endpoint, &keys.frontend, Some(&keys.client), 1);
    served(&stack, &client, marker);
    let wire = record.lock().unwrap().clone();
    assert!(contains(&wire, "CURVE"), "a CURVE greeting went by");
    for text in [
        marker,
        "about",
        "hostname",
        "success",
        ANSWER,
        "Socket-Type",
        "REQ",
    ] {
        assert!(!contains(&wire, text), "{text:?} crossed the wire in clear");
    }
    // The same through a plain stack is all there to read: the check sees
    // text when there is text.
    let plain = Stack::start(&[], 1, 1);
    let (port, record) = recording_relay(plain.frontend.trim_start_matches("tcp://").to_owned());
    let client = Client::new(&format!("tcp://127.0.0.1:{port}"), 1, 2000).unwrap();
    served(&plain, &client, marker);
    let wire = record.lock().unwrap().clone();
    assert!(contains(&wire, marker) && contains(&wire, ANSWER));
}

#[test]
fn keys_are_checked_at_once() {
    let client = Client::new("tcp://127.0.0.1:9", 1, 100).unwrap();
    let pair = KeyPair::generate().unwrap();
    for (option, value, expected) in [
        (ClientOption::CurveServerKey, "short", "the server's key"),
        (
            ClientOption::CurvePublicKey,
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y\u{e9}",
            "the client's key",
        ),
        (
            ClientOption::CurveSecretKey,
            "0123456789012345678901234567890123456789~",
            "the client's key",
        ),
    ] {
        match client.set_option(option, value) {
            Err(Error::InvalidArgument(reason)) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("{option:?} {value:?}: {other:?}"),
        }
    }
    // A public key that is not the secret key's.
    client
        .set_option(ClientOption::CurvePublicKey, &pair.public().to_z85())
        .unwrap();
    let other = KeyPair::generate().unwrap();
    let mismatch = client
        .set_option(ClientOption::CurveSecretKey, &other.secret().to_z85())
        .unwrap_err();
    assert!(
        mismatch.to_string().contains("not the secret key's"),
        "{mismatch}"
    );
    // A public key alone makes requests fail until its secret comes.
    client
        .set_option(ClientOption::CurveServerKey, &other.public().to_z85())
        .unwrap();
    let error = client.try_run(&request("x")).unwrap_err();
    assert!(
        error.to_string().contains("without its secret key"),
        "{error}"
    );
    client
        .set_option(ClientOption::CurveSecretKey, &pair.secret().to_z85())
        .unwrap();
    assert_eq!(client.curve_public_key(), Some(pair.public().to_z85()));
    assert_eq!(
        client.try_run(&request("x")),
        Err(Error::NoReply { attempts: 1 })
    );
    // Unset, the client speaks plain ZMTP again.
    client.set_option(ClientOption::CurveServerKey, "").unwrap();
    assert_eq!(client.curve_public_key(), None);
}

#[test]
fn keygen_and_the_proxys_key_files() {
    let dir = std::env::temp_dir().join(format!("vpoller-curve-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.key");
    let public = keygen(&path);
    let pair = vpoller::curve::read_secret_key_file(&path).unwrap();
    assert_eq!(pair.public().to_z85(), public);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim_end().len(), 40);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing file is never replaced.
    let again = Command::new(PROXY)
        .arg("keygen")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A secret key others may read stops the proxy at start, with the fix.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = dir.join("vpoller.conf");
        std::fs::write(
            &config,
            format!(
                "[proxy]\nfrontend = tcp://127.0.0.1:{}\nbackend = tcp://127.0.0.1:{}\n\
                 mgmt = tcp://127.0.0.1:{}\nfrontend_curve_secret_key = {}\n",
                free_port(),
                free_port(),
                free_port(),
                path.display()
            ),
        )
        .unwrap();
        let output = Command::new(PROXY)
            .arg("-f")
            .arg(&config)
            .arg("start")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
