//! Helpers shared by the integration tests. The stand-in proxy itself is the
//! `vpoller-standin` crate (tests/standin), which other languages' tests run too.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::raw::c_char;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vpoller::hosts::{Host, Registry, Tls};
use vpoller::{Agent, AgentOptions, Client, Verification};

pub use vpoller_standin::{fake_vsphere, free_port, StandIn};

/// A client of `endpoint` with `retries` attempts of `timeout_ms` each.
pub fn client(endpoint: &str, retries: i32, timeout_ms: i32) -> vpoller::Client {
    vpoller::Client::new(endpoint, retries, timeout_ms).expect("create client")
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// Copies a string returned by the C ABI and releases it with `vpoller_free_string`.
pub fn take_c_string(text: *mut c_char) -> String {
    assert!(!text.is_null(), "the C ABI returned NULL");
    // SAFETY: `text` is a NUL-terminated string from vpoller_run/vpoller_try_run,
    // not yet freed; it is freed right after the copy.
    let copy = unsafe { CStr::from_ptr(text) }
        .to_str()
        .expect("the C ABI returns UTF-8")
        .to_owned();
    vpoller::capi::vpoller_free_string(text);
    copy
}

/// Copies a static or library-owned C string (not freed).
pub fn borrowed_c_string(text: *const c_char) -> String {
    assert!(!text.is_null(), "the C ABI returned NULL");
    // SAFETY: the library documents these pointers as NUL-terminated and valid
    // until the next call on this thread.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The directory with the compiled C programs (`make c-programs`), passed by
/// `make test` as VPOLLER_C_PROGRAMS.
pub fn c_program(name: &str) -> PathBuf {
    let directory = std::env::var_os("VPOLLER_C_PROGRAMS").unwrap_or_else(|| {
        panic!("VPOLLER_C_PROGRAMS is not set: run the tests with `make test`, which builds the C programs first")
    });
    let path = PathBuf::from(directory).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make c-programs`",
        path.display()
    );
    path
}

/// govmomi's vSphere simulator (target/interop/vcsim, `make vcsim`) on a free
/// loopback port, with the CA that signed its certificate written out;
/// killed by pid when dropped. Its standard input and output are its control
/// channel ([`Simulator::command`]); its log is `vcsim.log` in its directory.
pub struct Simulator {
    child: Child,
    pub port: u16,
    pub ca_file: PathBuf,
    /// The extra flags it was started with, given again on a restart.
    args: Vec<String>,
    control: Mutex<Control>,
    dir: TempDir,
}

/// The simulator's control channel: commands to its stdin, answers (one
/// line each) from its stdout.
struct Control {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Simulator {
    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start() -> Simulator {
        Simulator::start_on(0)
    }

    /// A simulator on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16) -> Simulator {
        Simulator::launch(port, &[])
    }

    /// A simulator on a free port started with the extra vcsim flags `args`
    /// (`["-vms", "50", "-delay-ms", "10"]`).
    pub fn start_with(args: &[&str]) -> Simulator {
        Simulator::launch(0, args)
    }

    fn launch(port: u16, args: &[&str]) -> Simulator {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vpoller-vcsim-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let dir = TempDir(dir);
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let (child, port, control) =
            spawn_simulator(&dir.0, port, &args).unwrap_or_else(|error| panic!("{error}"));
        Simulator {
            child,
            port,
            ca_file: dir.0.join("ca.pem"),
            args,
            control: Mutex::new(control),
            dir,
        }
    }

    /// Sends one command line to the simulator and returns the text of its
    /// answer after `ok` (`""` for a bare `ok`); panics with the simulator's
    /// text if it answers `error`. One command at a time, from any thread.
    pub fn command(&self, line: &str) -> String {
        self.try_command(line)
            .unwrap_or_else(|error| panic!("simulator command {line:?}: {error}"))
    }

    /// Like [`Simulator::command`], the text of an `error` answer as `Err`.
    /// Panics if the simulator does not answer at all.
    pub fn try_command(&self, line: &str) -> Result<String, String> {
        assert!(!line.contains('\n'), "one line: {line:?}");
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let log = || std::fs::read_to_string(self.dir.0.join("vcsim.log")).unwrap_or_default();
        if let Err(error) = writeln!(control.stdin, "{line}").and_then(|()| control.stdin.flush()) {
            panic!(
                "simulator command {line:?}: {error} (is it running?)\n{}",
                log()
            );
        }
        let mut answer = String::new();
        match control.stdout.read_line(&mut answer) {
            Ok(0) => panic!(
                "simulator command {line:?}: no answer (it exited?)\n{}",
                log()
            ),
            Ok(_) => {}
            Err(error) => panic!("simulator command {line:?}: {error}"),
        }
        let answer = answer.trim_end_matches(['\r', '\n']);
        if answer == "ok" {
            Ok(String::new())
        } else if let Some(text) = answer.strip_prefix("ok ") {
            Ok(text.to_owned())
        } else if let Some(text) = answer.strip_prefix("error ") {
            Err(text.to_owned())
        } else {
            panic!("simulator command {line:?}: unexpected answer {answer:?}")
        }
    }

    /// How many SOAP calls of each method the simulator served since it
    /// started or since [`Simulator::reset_calls`] (the control channel's
    /// own calls left out); a request without a SOAP method counts as
    /// `HTTPMETHOD:PATH`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.command("calls")
            .split_whitespace()
            .map(|pair| {
                let (method, count) = pair
                    .rsplit_once('=')
                    .unwrap_or_else(|| panic!("a call count: {pair:?}"));
                (method.to_owned(), count.parse().unwrap())
            })
            .collect()
    }

    /// Zeroes the call counts.
    pub fn reset_calls(&self) {
        self.command("calls reset");
    }

    /// Kills the simulator (by pid) and waits for it: its port is free.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the simulator and starts it again on the same port with the
    /// same flags and certificate (a client trusting [`Simulator::ca_file`]
    /// keeps working); returns once it listens. Its state is new: the
    /// inventory as at the first start, no sessions.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The port may take a moment to be free again.
        let (child, _, control) = loop {
            match spawn_simulator(&self.dir.0, self.port, &self.args) {
                Ok(started) => break started,
                Err(error) if Instant::now() > deadline => panic!("restart: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.child = child;
        self.control = Mutex::new(control);
    }

    pub fn agent(&self, verification: Verification) -> Agent {
        self.agent_with(AgentOptions {
            verification,
            timeout_ms: 10_000,
            ..AgentOptions::default()
        })
    }

    /// An agent for this simulator (user root) with `options`.
    pub fn agent_with(&self, options: AgentOptions) -> Agent {
        Agent::with_options(&self.host(), "root", "secret-pw", options).unwrap()
    }
}

/// Starts target/interop/vcsim on `port` of 127.0.0.1 (0: a free one) with
/// its CA written to `dir`/ca.pem, its certificate kept in `dir`/tls, its
/// temporary files in `dir`/tmp, its log appended to `dir`/vcsim.log, and
/// the extra flags `args`; returns once it listens, with the port.
fn spawn_simulator(
    dir: &Path,
    port: u16,
    args: &[String],
) -> Result<(Child, u16, Control), String> {
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop/vcsim");
    assert!(
        binary.exists(),
        "{} is missing: run `make vcsim`",
        binary.display()
    );
    let log_path = dir.join("vcsim.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut child = Command::new(&binary)
        .arg("-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-ca-out")
        .arg(dir.join("ca.pem"))
        .arg("-tls-dir")
        .arg(dir.join("tls"))
        .args(args)
        // The simulator's datastores (a directory each, a file per VM) go
        // with the directory, also when it is killed.
        .env("TMPDIR", dir.join("tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let listening = line
        .trim()
        .strip_suffix("/sdk")
        .and_then(|url| url.rsplit(':').next())
        .and_then(|port| port.parse().ok());
    match listening {
        Some(port) => Ok((child, port, Control { stdin, stdout })),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            Err(format!(
                "the simulator did not start on port {port} (it printed {line:?}):\n{log}"
            ))
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP forwarder on a free loopback port to a target address, that can
/// be frozen: then it forwards no bytes in either direction and answers no
/// new connection (it accepts them), as a hung vCenter; thawed, it forwards
/// again (what was held, too). Stopped, with its threads and sockets, when
/// dropped.
pub struct FreezableProxy {
    port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct ProxyShared {
    target: String,
    state: Mutex<ProxyState>,
    /// Signalled when `frozen` or `stopped` changes.
    changed: Condvar,
}

#[derive(Default)]
struct ProxyState {
    frozen: bool,
    stopped: bool,
    next_id: u64,
    /// Both sides of every open connection (clones), to shut them down when
    /// the proxy stops.
    connections: HashMap<u64, Vec<TcpStream>>,
    /// The connections' threads, joined when the proxy stops.
    threads: Vec<JoinHandle<()>>,
}

impl ProxyShared {
    fn state(&self) -> MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while the proxy is frozen; false once it is stopped.
    fn wait_thawed(&self) -> bool {
        let mut state = self.state();
        while state.frozen && !state.stopped {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !state.stopped
    }

    /// Registers a socket of connection `id`; false (and the socket shut
    /// down) if the proxy is stopping.
    fn register(&self, id: u64, stream: &TcpStream) -> bool {
        let mut state = self.state();
        let Ok(clone) = stream.try_clone() else {
            return false;
        };
        if state.stopped {
            let _ = clone.shutdown(Shutdown::Both);
            return false;
        }
        state.connections.entry(id).or_default().push(clone);
        true
    }

    fn set(&self, change: impl FnOnce(&mut ProxyState)) {
        change(&mut self.state());
        self.changed.notify_all();
    }
}

impl FreezableProxy {
    /// A proxy to `target` (`host:port`), forwarding.
    pub fn start(target: &str) -> FreezableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(ProxyShared {
            target: target.to_owned(),
            state: Mutex::new(ProxyState::default()),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_connections(listener, shared))
        };
        FreezableProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on no byte is forwarded and new connections are not answered.
    pub fn freeze(&self) {
        self.shared.set(|state| state.frozen = true);
    }

    /// Forwards again.
    pub fn thaw(&self) {
        self.shared.set(|state| state.frozen = false);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.shared.set(|state| state.stopped = true);
        // Wakes the acceptor, which sees `stopped` and returns.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = {
            let mut state = self.shared.state();
            for stream in state.connections.values().flatten() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_connections(listener: TcpListener, shared: Arc<ProxyShared>) {
    for client in listener.incoming() {
        if shared.state().stopped {
            return;
        }
        let Ok(client) = client else {
            // Out of descriptors, say: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let id = {
            let mut state = shared.state();
            state.next_id += 1;
            state.next_id
        };
        if !shared.register(id, &client) {
            return;
        }
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                forward_connection(id, client, &shared);
                shared.state().connections.remove(&id);
            })
        };
        let mut state = shared.state();
        state.threads.retain(|thread| !thread.is_finished());
        state.threads.push(thread);
    }
}

/// Connects `client` to the target once the proxy is not frozen, and
/// forwards both ways until both sides are done.
fn forward_connection(id: u64, client: TcpStream, shared: &Arc<ProxyShared>) {
    if !shared.wait_thawed() {
        return;
    }
    let Ok(server) = TcpStream::connect(&shared.target) else {
        return;
    };
    if !shared.register(id, &server) {
        return;
    }
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let backward = {
        let shared = shared.clone();
        std::thread::spawn(move || pump(server_reader, client, &shared))
    };
    pump(client_reader, server, shared);
    let _ = backward.join();
}

/// Copies `from` to `to`, holding what it read while the proxy is frozen;
/// passes the end of `from` on as a half-close of `to` (once thawed, too).
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &ProxyShared) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if !shared.wait_thawed() || to.write_all(&buffer[..read]).is_err() {
            // Ends the other direction too.
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
    if shared.wait_thawed() {
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// `vpoller-proxy` and `vpoller-worker` (the programs) with a configuration
/// on free loopback ports and a host registry of `hosts`, killed by pid on drop.
pub struct Stack {
    dir: PathBuf,
    config: PathBuf,
    pub frontend: String,
    pub backend: String,
    pub proxy_mgmt: String,
    pub worker_mgmt: String,
    pub proxy: Child,
    pub worker: Child,
}

impl Stack {
    pub fn start(hosts: &[Host], threads: usize, per_host: usize) -> Stack {
        Stack::start_on(hosts, threads, per_host, tcp_endpoints)
    }

    /// The directory of the stack's configuration, registry and logs.
    pub fn dir_path(&self) -> &Path {
        &self.dir
    }

    /// The registry of this stack.
    pub fn registry(&self) -> Registry {
        Registry::open(self.dir.join("vconnector.db").to_str().unwrap()).unwrap()
    }

    /// A stack whose frontend, backend and management endpoints `endpoints`
    /// picks (given the stack's directory), e.g. `ipc://` ones.
    pub fn start_on(
        hosts: &[Host],
        threads: usize,
        per_host: usize,
        endpoints: impl Fn(&Path) -> [String; 4],
    ) -> Stack {
        Stack::start_with(hosts, threads, per_host, endpoints, |_| {})
    }

    /// Like [`Stack::start_on`], with `prepare` given the host registry's
    /// path before the programs start (to write rows `Registry::add`
    /// refuses, say).
    pub fn start_with(
        hosts: &[Host],
        threads: usize,
        per_host: usize,
        endpoints: impl Fn(&Path) -> [String; 4],
        prepare: impl Fn(&Path),
    ) -> Stack {
        Stack::start_configured(hosts, threads, per_host, endpoints, prepare, |_| {
            (String::new(), String::new())
        })
    }

    /// Like [`Stack::start_with`], with lines for the `[proxy]` and the
    /// `[worker]` sections that `extra` makes (given the stack's directory,
    /// where it may write key files).
    pub fn start_configured(
        hosts: &[Host],
        threads: usize,
        per_host: usize,
        endpoints: impl Fn(&Path) -> [String; 4],
        prepare: impl Fn(&Path),
        extra: impl Fn(&Path) -> (String, String),
    ) -> Stack {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vpoller-server-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("vconnector.db");
        let registry = Registry::open(db.to_str().unwrap()).unwrap();
        for host in hosts {
            registry.add(host).unwrap();
        }
        prepare(&db);
        let (proxy_extra, worker_extra) = extra(&dir);
        let config = dir.join("vpoller.conf");
        // A port picked free may be taken before the programs bind it (other
        // tests start servers on random ports too): then they exit, and the
        // stack starts again on other ports.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let [frontend, backend, proxy_mgmt, worker_mgmt] = endpoints(&dir);
            std::fs::write(
                &config,
                format!(
                    "[proxy]\nfrontend = {frontend}\nbackend = {backend}\nmgmt = {proxy_mgmt}\n{proxy_extra}\n\
                     [worker]\ndb = {}\nproxy = {backend}\nmgmt = {worker_mgmt}\n{worker_extra}\
                     helpers = vpoller.helpers.zabbix,vpoller.helpers.czabbix,vpoller.helpers.cclient\n\
                     tasks = vpoller.vsphere.tasks\nthreads = {threads}\nper_host = {per_host}\ntimeout = 20000\n\n\
                     [cache]\nenabled = yes\nttl = 300\n",
                    db.display()
                ),
            )
            .unwrap();
            let mut stack = Stack {
                dir: dir.clone(),
                config: config.clone(),
                frontend,
                backend,
                proxy_mgmt,
                worker_mgmt,
                proxy: spawn(PROXY, &config),
                worker: spawn(WORKER, &config),
            };
            std::thread::sleep(Duration::from_millis(200));
            // Only a bind failure makes a program exit this early; one that
            // exits later is seen by `wait_running`.
            let exited = stack.proxy.try_wait().unwrap().is_some()
                || stack.worker.try_wait().unwrap().is_some();
            if exited && attempts < 3 {
                for child in [&mut stack.proxy, &mut stack.worker] {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                // Keep the directory (and the registry) for the next attempt.
                stack.dir = PathBuf::new();
                continue;
            }
            stack.wait_running(&stack.proxy_mgmt);
            stack.wait_running(&stack.worker_mgmt);
            return stack;
        }
    }

    /// Waits (up to 30 s: the machine may be busy) until the management
    /// socket at `endpoint` answers `status`; shows the programs' logs if not.
    pub fn wait_running(&self, endpoint: &str) {
        let client = Client::new(endpoint, 60, 500).unwrap();
        match client.try_run(r#"{"method": "status"}"#) {
            Ok(status) => assert!(status.contains("\"status\": \"running\""), "{status}"),
            Err(error) => {
                let log =
                    |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                panic!(
                    "{endpoint} did not answer: {error}\nproxy: {}\nworker: {}",
                    log("vpoller-proxy.log"),
                    log("vpoller-worker.log")
                );
            }
        }
    }

    /// Kills the worker (SIGKILL) or the proxy and starts it again.
    pub fn restart(&mut self, worker: bool, pause: Duration) {
        let child = if worker {
            &mut self.worker
        } else {
            &mut self.proxy
        };
        child.kill().unwrap();
        child.wait().unwrap();
        std::thread::sleep(pause);
        *child = spawn(if worker { WORKER } else { PROXY }, &self.config);
        let endpoint = if worker {
            &self.worker_mgmt
        } else {
            &self.proxy_mgmt
        };
        self.wait_running(endpoint);
    }

    pub fn client(&self) -> Client {
        Client::new(&self.frontend, 1, 15_000).unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in [&mut self.proxy, &mut self.worker] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `vpoller-proxy keygen FILE`: the public key it prints.
pub fn keygen(path: &Path) -> String {
    let output = Command::new(PROXY)
        .arg("keygen")
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A stack whose frontend speaks CURVE and lets in the key of `client.key`
/// in its directory and the public keys of `more`: the stack and the
/// frontend's public key.
pub fn curve_frontend_stack(more: &[String]) -> (Stack, String) {
    let frontend = Mutex::new(String::new());
    let stack = Stack::start_configured(
        &[],
        2,
        2,
        tcp_endpoints,
        |_| {},
        |dir| {
            *frontend.lock().unwrap() = keygen(&dir.join("frontend.key"));
            let mut listed = vec![keygen(&dir.join("client.key"))];
            listed.extend(more.iter().cloned());
            std::fs::write(dir.join("clients"), listed.join("\n") + "\n").unwrap();
            (
                format!(
                    "frontend_curve_secret_key = {0}/frontend.key\n\
                 frontend_curve_allowed = {0}/clients\n",
                    dir.display()
                ),
                String::new(),
            )
        },
    );
    let frontend = frontend.into_inner().unwrap();
    (stack, frontend)
}

/// Four free loopback `tcp://` endpoints.
pub fn tcp_endpoints(_: &Path) -> [String; 4] {
    [0; 4].map(|_| format!("tcp://127.0.0.1:{}", free_port()))
}

pub const PROXY: &str = env!("CARGO_BIN_EXE_vpoller-proxy");
pub const WORKER: &str = env!("CARGO_BIN_EXE_vpoller-worker");

/// Starts `program -f config start`, its log appended to `PROGRAM.log`
/// beside the configuration.
pub fn spawn(program: &str, config: &Path) -> Child {
    let name = Path::new(program)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name(format!("{name}.log")))
        .unwrap();
    Command::new(program)
        .arg("-f")
        .arg(config)
        .arg("start")
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn simulator_host(simulator: &Simulator, name: &str) -> Host {
    Host {
        host: name.into(),
        user: "root".into(),
        password: "pw".into(),
        enabled: true,
        port: Some(simulator.port),
        tls: Tls::CaFile(simulator.ca_file.to_str().unwrap().into()),
    }
}

/// An agent of `simulator` verifying its CA, with the mirror on or off.
pub fn mirror_agent(simulator: &Simulator, mirror: bool) -> Agent {
    simulator.agent_with(AgentOptions {
        verification: Verification::CaFile(simulator.ca_file.clone()),
        timeout_ms: 20_000,
        mirror,
        ..AgentOptions::default()
    })
}

/// How many tasks `agent` answered from memory (without a SOAP call).
pub fn answered_from_memory(agent: &Agent) -> u64 {
    agent.mirror_status()["answered_from_memory"]
        .as_u64()
        .expect("the mirror status counts answers from memory")
}

/// The reply to `msg` once `agent` answers it from memory (the first asks
/// fill the mirror); panics when it never does within 20 s.
pub fn reply_from_memory(agent: &Agent, msg: &str) -> String {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let before = answered_from_memory(agent);
        let reply = agent.run(msg);
        if answered_from_memory(agent) > before {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "never answered from memory: {msg}; mirror: {}",
        agent.mirror_status()
    );
}

/// Asks `msg` until the reply satisfies `done`; returns it and how long
/// that took after `since`. Panics after `limit`.
pub fn until_reply(
    agent: &Agent,
    msg: &str,
    since: Instant,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Duration) {
    loop {
        let reply: serde_json::Value = serde_json::from_str(&agent.run(msg)).unwrap();
        if done(&reply) {
            return (reply, since.elapsed());
        }
        assert!(
            since.elapsed() < limit,
            "{msg}: still {reply} after {limit:?}; mirror: {}",
            agent.mirror_status()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The names in a discover reply, in its order.
pub fn discovered_names(reply: &serde_json::Value) -> Vec<String> {
    reply["result"]
        .as_array()
        .expect("a discover reply lists objects")
        .iter()
        .map(|object| object["name"].as_str().unwrap().to_owned())
        .collect()
}
