//! The Zabbix loadable module (target/zabbix/vpoller.so, `make c-programs`)
//! in Debian's zabbix_agentd, against vpoller-proxy and vpoller-worker in
//! front of the simulator: `zabbix_agentd -t` for each key shape, and a
//! running agent with forked listeners queried over the agent protocol.

mod common;
use common::{free_port, simulator_host, Simulator, Stack};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
            format!("# test\nvPollerProxy = {proxy}\nvPollerTimeout = 3000\nvPollerRetries = 1\n"),
        )
        .unwrap();
        let agent_conf = dir.join("zabbix_agentd.conf");
        std::fs::write(
            &agent_conf,
            format!(
                "AllowRoot=1\nLoadModulePath={}\nLoadModule=vpoller.so\nTimeout=10\nPidFile={}\n{extra}",
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

    /// `zabbix_agentd -t KEY`: the value part of its line, `[t|...]`, `[u|...]`
    /// or `[m|ZBX_NOTSUPPORTED] [...]`.
    fn test_key(&self, key: &str) -> String {
        let output = self
            .command()
            .arg("-t")
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
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
}

#[test]
fn no_proxy_is_not_supported_within_the_timeout() {
    let setup = Setup::new(&format!("tcp://127.0.0.1:{}", free_port()), "");
    let started = Instant::now();
    assert_eq!(
        setup.test_key("vpoller[vm.get,vc01,vm01,name]"),
        "[m|ZBX_NOTSUPPORTED] [Did not receive response, aborting...]"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_bad_module_configuration_keeps_the_defaults() {
    let setup = Setup::new("tcp://127.0.0.1:1", "");
    std::fs::write(
        &setup.module_conf,
        "vPollerTimeout = forever\nvPollerRetries = 0\nnonsense\nvPollerProxy = tcp://127.0.0.1:1\n",
    )
    .unwrap();
    let output = setup
        .command()
        .arg("-t")
        .arg("vpoller.echo[ok]")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
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

/// One passive check over the Zabbix agent protocol.
fn query(port: u16, key: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
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

/// The resident memory of every process in process group `group`, in bytes.
fn group_rss(group: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: fields after the command's ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) != Some(group) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
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

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        // The listeners are the agent's children: its process group goes.
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGTERM);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_agent_answers_concurrent_queries() {
    let simulator = Simulator::start();
    let stack = Stack::start(&[simulator_host(&simulator, "127.0.0.1")], 8, 4);
    let port = agent_port();
    let setup = Setup::new(
        &stack.frontend,
        &format!(
            "LogType=file\nLogFile={}\nListenIP=127.0.0.1\nListenPort={port}\nStartAgents=4\nServer=127.0.0.1\n",
            std::env::temp_dir().join(format!("vpoller-zabbix-agent-{port}.log")).display()
        ),
    );
    let mut command = setup.command();
    command
        .arg("-f")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let agent = Agent(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the agent did not start listening"
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
    let settled = group_rss(agent.0.id());
    round(50);
    let after = group_rss(agent.0.id());
    assert!(
        after < settled + 2 * 1024 * 1024,
        "the agent's processes grew from {settled} to {after} bytes"
    );
    let missing = query(port, "vpoller[vm.get,127.0.0.1,nope,name]");
    assert!(missing.starts_with("ZBX_NOTSUPPORTED"), "{missing}");
    assert!(missing.contains("Cannot find object nope"), "{missing}");
    drop(agent);
}
