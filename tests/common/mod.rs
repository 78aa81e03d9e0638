//! Helpers shared by the integration tests. The stand-in proxy itself is the
//! `vpoller-standin` crate (tests/standin), which other languages' tests run too.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::ffi::CStr;
use std::io::{BufRead, BufReader};
use std::os::raw::c_char;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
/// killed by pid when dropped.
pub struct Simulator {
    child: Child,
    pub port: u16,
    pub ca_file: PathBuf,
    _dir: TempDir,
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
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop/vcsim");
        assert!(
            binary.exists(),
            "{} is missing: run `make vcsim`",
            binary.display()
        );
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vpoller-vcsim-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        let mut child = Command::new(&binary)
            .arg("-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-ca-out")
            .arg(&ca_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/sdk")
            .parse()
            .unwrap();
        Simulator {
            child,
            port,
            ca_file,
            _dir: TempDir(dir),
        }
    }

    pub fn agent(&self, verification: Verification) -> Agent {
        let options = AgentOptions {
            verification,
            timeout_ms: 10_000,
            ..AgentOptions::default()
        };
        Agent::with_options(
            &format!("127.0.0.1:{}", self.port),
            "root",
            "secret-pw",
            options,
        )
        .unwrap()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
                    "[proxy]\nfrontend = {frontend}\nbackend = {backend}\nmgmt = {proxy_mgmt}\n\n\
                     [worker]\ndb = {}\nproxy = {backend}\nmgmt = {worker_mgmt}\n\
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
