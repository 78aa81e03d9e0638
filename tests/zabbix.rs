//! The Zabbix loadable module (target/zabbix/vpoller.so, `make c-programs`)
//! in Debian's zabbix_agentd, against vpoller-proxy and vpoller-worker in
//! front of the simulator: `zabbix_agentd -t` for each key shape, and a
//! running agent with forked listeners queried over the agent protocol.

mod common;
use common::{simulator_host, Simulator, Stack};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENTD: &str = "/usr/sbin/zabbix_agentd";

fn module_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/zabbix");
    assert!(
        dir.join("vpoller.so").exists(),
        "{} is missing: run `make c-programs`",
        dir.join("vpoller.so").display()
    );
    assert!(
        Path::new(AGENTD).exists(),
        "{AGENTD} is missing: `make deps` installs zabbix-agent"
    );
    dir
}

/// A directory with the agent's and the module's configuration files.
struct Setup {
    dir: PathBuf,
    agent_conf: PathBuf,
    module_conf: PathBuf,
}

impl Setup {
    fn new(proxy: &str, extra: &str) -> Setup {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vpoller-zabbix-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let module_conf = dir.join("vpoller_module.conf");
        std::fs::write(
            &module_conf,
            // 20 s per item: far above what an answered item takes, also on a busy machine.
            format!("# test\nvPollerProxy = {proxy}\nvPollerTimeout = 20000\nvPollerRetries = 1\n"),
        )
        .unwrap();
        let agent_conf = dir.join("zabbix_agentd.conf");
        std::fs::write(
            &agent_conf,
            format!(
                "AllowRoot=1\nLoadModulePath={}\nLoadModule=vpoller.so\nTimeout=30\nPidFile={}\n{extra}",
                module_dir().display(),
                dir.join("agent.pid").display()
            ),
        )
        .unwrap();
        Setup {
            dir,
            agent_conf,
            module_conf,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(AGENTD);
        command
            .arg("-c")
            .arg(&self.agent_conf)
            .env("VPOLLER_MODULE_CONF", &self.module_conf);
        command
    }

    /// `zabbix_agentd -t KEY`, run to its end.
    fn run_test_key(&self, key: &str) -> Output {
        let mut command = self.command();
        command.arg("-t").arg(key);
        output_of_group(command)
    }

    /// `zabbix_agentd -t KEY` with `module_conf` as the module's file: its
    /// stdout and stderr.
    fn outputs_with(&self, module_conf: &str, key: &str) -> (String, String) {
        std::fs::write(&self.module_conf, module_conf).unwrap();
        let output = self.run_test_key(key);
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `zabbix_agentd -t KEY`: the value part of its line, `[t|...]`, `[u|...]`
    /// or `[m|ZBX_NOTSUPPORTED] [...]`.
    fn test_key(&self, key: &str) -> String {
        let output = self.run_test_key(key);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let line = stdout
            .lines()
            .find(|line| line.starts_with(key.split('[').next().unwrap()))
            .unwrap_or_else(|| {
                panic!(
                    "no result line for {key}: {stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        line[line.find(" [").map(|at| at + 1).unwrap_or(0)..]
            .trim()
            .to_owned()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn item_keys_through_zabbix_agentd() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 8, 4);
    let setup = Setup::new(&stack.frontend, "");
    let cases = [
        (
            "vpoller[vm.get,127.0.0.1,DC0_H0_VM0,runtime.powerState]",
            "[t|poweredOn]",
        ),
        (
            "vpoller[vm.get,127.0.0.1,DC0_H0_VM0,config.hardware.numCPU]",
            "[u|1]",
        ),
        (
            "vpoller[vm.get,127.0.0.1,\"Zürich-ВМ-虚拟机\",runtime.powerState]",
            "[t|poweredOn]",
        ),
        (
            "vpoller[vm.get,127.0.0.1,\"vm \\\"quoted\\\" \\ back\",name]",
            "[m|ZBX_NOTSUPPORTED] [Cannot find object vm \"quoted\" \\ back]",
        ),
        (
            "vpoller[vm.get,127.0.0.1,no-such-vm,name,,,,,,]",
            "[m|ZBX_NOTSUPPORTED] [Cannot find object no-such-vm]",
        ),
        (
            "vpoller[host.get,127.0.0.1,DC0_H0,runtime.connectionState,,,,,,]",
            "[t|connected]",
        ),
        (
            "vpoller[vm.get,vc99.example.org,DC0_H0_VM0,name]",
            "[m|ZBX_NOTSUPPORTED] [Unknown or missing agent name]",
        ),
        ("vpoller.echo[a,b]", "[t|a,b]"),
        ("vpoller[about,127.0.0.1,,apiType]", "[t|VirtualCenter]"),
        (
            "vpoller[vm.get]",
            "[m|ZBX_NOTSUPPORTED] [Invalid argument: the hostname parameter is missing]",
        ),
    ];
    for (key, expected) in cases {
        assert_eq!(setup.test_key(key), expected, "{key}");
    }
    // All ten parameters: a performance sample, a number.
    let sample = setup.test_key(
        "vpoller[vm.perf.metric.get,127.0.0.1,DC0_H0_VM0,value,,,,cpu.usagemhz.megaHertz.average,,]",
    );
    assert!(sample.starts_with("[u|"), "{sample}");
    // Low-level discovery.
    let discovery = setup.test_key("vpoller.discovery[vm.discover,127.0.0.1]");
    assert!(
        discovery.starts_with("[t|{\"data\": [{\"{#VSPHERE.VM.NAME}\": \"DC0_H0_VM0\"}"),
        "{discovery}"
    );
    assert!(discovery.contains("Zürich-ВМ-虚拟机"), "{discovery}");
}

#[test]
fn local_mode_needs_no_proxy_or_worker() {
    let simulator = Simulator::start();
    let setup = Setup::new("tcp://127.0.0.1:1", "");
    let db = setup.dir.join("vconnector.db");
    let registry = vpoller::hosts::Registry::open(db.to_str().unwrap()).unwrap();
    registry
        .add(&simulator_host(&simulator, "127.0.0.1"))
        .unwrap();
    std::fs::write(
        &setup.module_conf,
        format!(
            "vPollerLocal = {}
vPollerTimeout = 5000
",
            db.display()
        ),
    )
    .unwrap();
    assert_eq!(
        setup.test_key("vpoller[vm.get,127.0.0.1,\"Zürich-ВМ-虚拟机\",runtime.powerState]"),
        "[t|poweredOn]"
    );
    assert_eq!(
        setup.test_key("vpoller[vm.get,vc99.example.org,vm01,name]"),
        "[m|ZBX_NOTSUPPORTED] [Unknown or missing agent name]"
    );
    let discovery = setup.test_key("vpoller.discovery[host.discover,127.0.0.1]");
    assert!(discovery.contains("{#VSPHERE.HOST.NAME}"), "{discovery}");
    // The mirror's settings are taken (without a word in the log), and with
    // the mirror off every item asks vCenter.
    for mirror in ["off", "On", "no", "1"] {
        let (stdout, stderr) = setup.outputs_with(
            &format!(
                "vPollerLocal = {}\nvPollerTimeout = 5000\nvPollerMirror = {mirror}\n\
                 vPollerMirrorIdle = 60\nvPollerMirrorMaxValues = 5000\n",
                db.display()
            ),
            "vpoller[vm.get,127.0.0.1,DC0_H0_VM0,runtime.powerState]",
        );
        assert!(
            stdout.contains("[t|poweredOn]"),
            "{mirror}: {stdout}{stderr}"
        );
        assert!(!stderr.contains("vpoller module:"), "{mirror}: {stderr}");
    }
}

/// A TCP listener on a free loopback port that accepts connections and
/// never says a word: a proxy that does not answer. Counts the connections;
/// its thread ends and the connections close when it is dropped.
struct SilentProxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentProxy {
    fn start() -> SilentProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            held.push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        SilentProxy {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// No proxy answers: the item is not supported, with vPoller's message,
/// after the module's attempts and timeout (vPollerRetries, vPollerTimeout).
#[test]
fn no_proxy_is_not_supported_within_the_timeout() {
    let proxy = SilentProxy::start();
    let setup = Setup::new(&format!("tcp://127.0.0.1:{}", proxy.port), "");
    std::fs::write(
        &setup.module_conf,
        format!(
            "vPollerProxy = tcp://127.0.0.1:{}\nvPollerTimeout = 1000\nvPollerRetries = 3\n",
            proxy.port
        ),
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        setup.test_key("vpoller[vm.get,vc01,vm01,name]"),
        "[m|ZBX_NOTSUPPORTED] [Did not receive response, aborting...]"
    );
    let elapsed = started.elapsed();
    // Three attempts, each on a connection of its own (the module's default is one).
    assert_eq!(proxy.connections(), 3);
    // Each waited its whole second.
    assert!(elapsed >= Duration::from_millis(3000), "{elapsed:?}");
    // And not longer: with the module's default of 10 s per attempt the item
    // would take 30 s. The bound is far from that and from the 3 s it takes,
    // which a busy machine does not stretch by 17 s.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn a_bad_module_configuration_keeps_the_defaults() {
    let setup = Setup::new("tcp://127.0.0.1:1", "");
    let (stdout, stderr) = setup.outputs_with(
        "vPollerTimeout = forever\nvPollerRetries = 0\nnonsense\nvPollerProxy = tcp://127.0.0.1:1\n",
        "vpoller.echo[ok]",
    );
    assert!(
        stdout.contains("[t|ok]"),
        "the module still loads: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("vPollerTimeout must be 1000 to 60000"),
        "{stderr}"
    );
    assert!(stderr.contains("not KEY = VALUE"), "{stderr}");
}

#[test]
fn bad_mirror_settings_keep_the_defaults() {
    let setup = Setup::new("tcp://127.0.0.1:1", "");
    let db = setup.dir.join("vconnector.db");
    vpoller::hosts::Registry::open(db.to_str().unwrap()).unwrap();
    let (stdout, stderr) = setup.outputs_with(
        &format!(
            "vPollerLocal = {}\nvPollerMirror = sometimes\nvPollerMirrorIdle = 0\n\
             vPollerMirrorMaxValues = 100000001\nvPollerMirrorIdle = 604801\n\
             vPollerMirrorMaxValues = lots\n",
            db.display()
        ),
        "vpoller[vm.get,vc99.example.org,vm01,name]",
    );
    // Loaded, and the local mode answers.
    assert!(
        stdout.contains("[m|ZBX_NOTSUPPORTED] [Unknown or missing agent name]"),
        "{stdout}{stderr}"
    );
    for (warning, times) in [
        (
            "vPollerMirror must be on or off, the default (on) is used",
            1,
        ),
        (
            "vPollerMirrorIdle must be 1 to 604800 (seconds), the default is used",
            2,
        ),
        (
            "vPollerMirrorMaxValues must be 1 to 100000000, the default is used",
            2,
        ),
    ] {
        assert_eq!(
            stderr.matches(warning).count(),
            times,
            "{warning}: {stderr}"
        );
    }
    assert!(!stderr.contains("was refused"), "{stderr}");
}

/// One passive check over the Zabbix agent protocol.
fn query(port: u16, key: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Only a hung agent takes this long: the module gives up after 20 s.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = b"ZBXD\x01".to_vec();
    request.extend_from_slice(&(key.len() as u64).to_le_bytes());
    request.extend_from_slice(key.as_bytes());
    stream.write_all(&request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"ZBXD\x01"), "{reply:?}");
    String::from_utf8_lossy(&reply[13..]).into_owned()
}

/// A free loopback port in the range zabbix_agentd accepts (1024-32767;
/// the system's free ports are above it).
fn agent_port() -> u16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = u64::from(std::process::id()) ^ now;
    (0..1000u64)
        .map(|n| {
            20_000
                + ((seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(n * 7919))
                    % 12_000) as u16
        })
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port for the agent")
}

/// The processes of process group `group` that are alive (not zombies):
/// their pids and `/proc/PID/stat` lines.
fn group_members(group: u32) -> Vec<(u32, String)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: fields after the command's ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let dead = matches!(fields.first(), Some(&"Z" | &"X"));
        if !dead && fields.get(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) == Some(group) {
            members.push((pid, stat.trim_end().to_owned()));
        }
    }
    members
}

/// The resident memory of every process in process group `group`, in bytes.
fn group_rss(group: u32) -> u64 {
    let mut total = 0;
    for (pid, _) in group_members(group) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            * 1024;
    }
    assert!(total > 0, "no processes in group {group}");
    total
}

/// How long the processes of a group get to go after a signal: zabbix_agentd
/// stops in well under a second; only a stuck process takes this long.
const GRACE: Duration = Duration::from_secs(30);

/// Ends every process of process group `group`: SIGTERM, then SIGKILL for
/// what is still there after [`GRACE`]; `leader`, the group's first process
/// and this test's child, is reaped last (until then the group's id cannot
/// be taken by another group). Returns what is still alive, normally nothing.
fn end_group(group: u32, leader: Option<&mut Child>) -> Vec<(u32, String)> {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        if group_members(group).is_empty() {
            break;
        }
        // zabbix_agentd's forked processes do not stop on a SIGTERM of their
        // own (Zabbix 6.0 leaves that to their parent, which stops them when
        // it gets one); SIGKILL they all obey.
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(-(group as i32), signal);
        }
        let deadline = Instant::now() + GRACE;
        while !group_members(group).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(leader) = leader {
        // Gone (or killed) by now: this only collects its exit status.
        let _ = leader.wait();
    }
    group_members(group)
}

/// Runs `command` in a process group of its own to its end, and checks
/// that it left no process of that group behind.
fn output_of_group(mut command: Command) -> Output {
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = child.id();
    let output = child.wait_with_output().unwrap();
    let left = end_group(group, None);
    assert!(left.is_empty(), "left behind: {left:?}");
    output
}

/// A zabbix_agentd leading a process group of its own; on drop, every
/// process of the group is ended and the leader reaped.
struct Agent {
    child: Child,
}

impl Agent {
    fn group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let group = self.group();
        let left = end_group(group, Some(&mut self.child));
        if !left.is_empty() {
            eprintln!("zabbix_agentd processes still alive after SIGKILL: {left:?}");
        }
    }
}

#[test]
fn a_running_agent_answers_concurrent_queries() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 8, 4);
    let port = agent_port();
    let setup = Setup::new(&stack.frontend, "");
    // The log goes with the setup's directory.
    let log = setup.dir.join("zabbix_agentd.log");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&setup.agent_conf)
        .unwrap()
        .write_all(
            format!(
                "LogType=file\nLogFile={}\nListenIP=127.0.0.1\nListenPort={port}\nStartAgents=4\nServer=127.0.0.1\n",
                log.display()
            )
            .as_bytes(),
        )
        .unwrap();
    let mut command = setup.command();
    command
        .arg("-f")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let agent = Agent {
        child: command.spawn().unwrap(),
    };
    let group = agent.group();
    // It listens within a second; only an agent that never will takes a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the agent did not start listening: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let keys = [
        (
            "vpoller[vm.get,127.0.0.1,DC0_H0_VM0,runtime.powerState]",
            "poweredOn",
        ),
        (
            "vpoller[vm.get,127.0.0.1,\"Zürich-ВМ-虚拟机\",name]",
            "Zürich-ВМ-虚拟机",
        ),
        ("vpoller[host.get,127.0.0.1,DC0_H0,name]", "DC0_H0"),
        (
            "vpoller[vm.get,127.0.0.1,DC0_H1_VM0,config.hardware.numCPU]",
            "1",
        ),
    ];
    let round = |per_connection: usize| {
        std::thread::scope(|scope| {
            for connection in 0..8 {
                let keys = &keys;
                scope.spawn(move || {
                    for n in 0..per_connection {
                        let (key, expected) = keys[(connection + n) % keys.len()];
                        assert_eq!(query(port, key), expected, "{key}");
                    }
                });
            }
        })
    };
    // 104 queries from 8 connections; then 400 more, after which the
    // agent's processes hold no more memory than after the first ones.
    round(13);
    let settled = group_rss(group);
    round(50);
    let after = group_rss(group);
    assert!(
        after < settled + 2 * 1024 * 1024,
        "the agent's processes grew from {settled} to {after} bytes"
    );
    let missing = query(port, "vpoller[vm.get,127.0.0.1,nope,name]");
    assert!(missing.starts_with("ZBX_NOTSUPPORTED"), "{missing}");
    assert!(missing.contains("Cannot find object nope"), "{missing}");
    // The agent had forked processes (its listeners answered above); none of
    // them outlives it.
    assert!(group_members(group).len() > 1, "{:?}", group_members(group));
    drop(agent);
    let left = group_members(group);
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ---- CURVE: vPollerCurveServerKey, vPollerCurveSecretKey(File),
// vPollerCurvePublicKey. ----

/// A key pair whose keys both hold a '#', which the module's file must
/// not take for a comment.
fn pair_with_hashes() -> vpoller::curve::KeyPair {
    loop {
        let pair = vpoller::curve::KeyPair::generate().unwrap();
        if pair.public().to_z85().contains('#') && pair.secret().to_z85().contains('#') {
            return pair;
        }
    }
}

/// A stack whose frontend speaks CURVE and lets in two client keys: that
/// of `client.key` in its directory and `inline`'s. The stack and the
/// frontend's public key.
fn curve_stack(inline: &vpoller::curve::KeyPair) -> (Stack, String) {
    common::curve_frontend_stack(&[inline.public().to_z85()])
}

/// An item the worker answers without a vSphere host: proof that the
/// request got through.
const UNKNOWN_HOST_ITEM: &str = "vpoller[about,vc-unknown,,apiType]";
const UNKNOWN_HOST: &str = "[m|ZBX_NOTSUPPORTED] [Unknown or missing agent name]";

#[test]
fn curve_keys_through_zabbix_agentd() {
    let inline = pair_with_hashes();
    let (stack, frontend) = curve_stack(&inline);
    let setup = Setup::new(&stack.frontend, "");
    let proxy = format!(
        "vPollerProxy = {}\nvPollerTimeout = 20000\nvPollerRetries = 1\n",
        stack.frontend
    );
    let key_file = stack.dir_path().join("client.key");
    let served = |curve: &str| {
        let (stdout, stderr) = setup.outputs_with(&format!("{proxy}{curve}"), UNKNOWN_HOST_ITEM);
        assert!(stdout.contains(UNKNOWN_HOST), "{curve}: {stdout}{stderr}");
        assert!(!stderr.contains("vpoller module:"), "{curve}: {stderr}");
    };
    // The listed key from its file.
    served(&format!(
        "vPollerCurveServerKey = {frontend}\nvPollerCurveSecretKeyFile = {}\n",
        key_file.display()
    ));
    // The other listed key given in the file, '#' and all, with comments.
    served(&format!(
        "vPollerCurveServerKey = {frontend}  # the proxy\n\
         vPollerCurveSecretKey = {}\n\
         vPollerCurvePublicKey = {}\t# zabbix01\n",
        inline.secret().to_z85(),
        inline.public().to_z85()
    ));
    // A fresh key pair is not listed: no reply, within the attempts.
    let (stdout, stderr) = setup.outputs_with(
        &format!(
            "vPollerProxy = {}\nvPollerTimeout = 1000\nvPollerRetries = 1\n\
             vPollerCurveServerKey = {frontend}\n",
            stack.frontend
        ),
        UNKNOWN_HOST_ITEM,
    );
    assert!(
        stdout.contains("[m|ZBX_NOTSUPPORTED] [Did not receive response, aborting...]"),
        "{stdout}{stderr}"
    );
}

#[test]
fn bad_curve_keys_keep_the_module_from_loading() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new("tcp://127.0.0.1:1", "");
    let server = vpoller::curve::KeyPair::generate()
        .unwrap()
        .public()
        .to_z85();
    let pair = vpoller::curve::KeyPair::generate().unwrap();
    let (public, secret) = (pair.public().to_z85(), pair.secret().to_z85());
    let shared = setup.dir.join("shared.key");
    common::keygen(&shared);
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other_public = vpoller::curve::KeyPair::generate()
        .unwrap()
        .public()
        .to_z85();
    for (curve, expected) in [
        (
            "vPollerCurveServerKey = short\n".to_owned(),
            "vpoller module: bad vPollerCurveServerKey, the module is not loaded: Invalid \
             argument: the server's key: a CURVE public key must be 40 characters of Z85, not 5",
        ),
        (
            format!(
                "vPollerCurveServerKey = {server}\nvPollerCurveSecretKey = {}~\n",
                &secret[..39]
            ),
            "vpoller module: bad vPollerCurveSecretKey, the module is not loaded: Invalid \
             argument: the client's key: a CURVE secret key: '~' at position 40 is not a Z85 \
             character",
        ),
        (
            format!(
                "vPollerCurveServerKey = {server}\nvPollerCurveSecretKey = {secret}\n\
                 vPollerCurvePublicKey = {other_public}\n"
            ),
            "vpoller module: bad vPollerCurvePublicKey, the module is not loaded: Invalid \
             argument: the CURVE public key is not the secret key's",
        ),
        (
            format!(
                "vPollerCurveServerKey = {server}\nvPollerCurveSecretKeyFile = {}\n",
                shared.display()
            ),
            "may be read by others (mode 0644); make it private with chmod 600",
        ),
        (
            format!("vPollerCurveServerKey = {server}\nvPollerCurveSecretKeyFile = /no/such.key\n"),
            "vpoller module: bad vPollerCurveSecretKeyFile, the module is not loaded: Invalid \
             argument: cannot read the CURVE secret key file /no/such.key",
        ),
        (
            format!("vPollerCurveSecretKey = {secret}\n"),
            "vpoller module: the module's CURVE keys need vPollerCurveServerKey (without it \
             nothing is encrypted), the module is not loaded",
        ),
        (
            format!("vPollerCurveServerKey = {server}\nvPollerCurvePublicKey = {public}\n"),
            "vpoller module: vPollerCurvePublicKey needs vPollerCurveSecretKey or \
             vPollerCurveSecretKeyFile, the module is not loaded",
        ),
        (
            format!(
                "vPollerCurveServerKey = {server}\nvPollerCurveSecretKey = {secret}\n\
                 vPollerCurveSecretKeyFile = {}\n",
                shared.display()
            ),
            "vPollerCurveSecretKey and vPollerCurveSecretKeyFile: give one of them",
        ),
        (
            format!("vPollerCurveServerKey = {server}{}\n", "x".repeat(40)),
            "vPollerCurveServerKey is too long, the module is not loaded",
        ),
    ] {
        let output = {
            std::fs::write(&setup.module_conf, &curve).unwrap();
            setup.run_test_key("vpoller.echo[ok]")
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{curve}: {stdout}{stderr}");
        assert!(!stdout.contains("[t|ok]"), "{curve}: loaded: {stdout}");
        assert!(stderr.contains(expected), "{curve}: {stderr}");
        assert!(
            stderr.contains("cannot initialize module \"vpoller.so\""),
            "{curve}: {stderr}"
        );
    }
    // Empty values are unset: the module loads, without CURVE.
    let (stdout, stderr) = setup.outputs_with(
        "vPollerCurveServerKey =\nvPollerCurveSecretKey = \n",
        "vpoller.echo[ok]",
    );
    assert!(stdout.contains("[t|ok]"), "{stdout}{stderr}");
    assert!(!stderr.contains("vpoller module:"), "{stderr}");
}
