//! vpoller-exporter's HTTP side and its scrapes: the pages vmware_exporter
//! serves, bad requests answered with errors, overlapping scrapes sharing
//! one collection, a steady-state scrape making no SOAP call, and a hung
//! vCenter making the vSphere series go (never frozen values).

mod common;

use common::{free_port, FreezableProxy, Simulator};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXPORTER: &str = env!("CARGO_BIN_EXE_vpoller-exporter");

/// A running vpoller-exporter, killed (by pid) when dropped.
struct Exporter {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Exporter {
    /// Started with the environment `vars` (vmware_exporter's variables)
    /// and extra arguments; returns once it answers `/healthz`.
    fn start(vars: &[(&str, &str)], args: &[&str]) -> Exporter {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "vpoller-exporter-{}-{port}.log",
            std::process::id()
        ));
        let child = Command::new(EXPORTER)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .env_clear()
            .envs(vars.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let exporter = Exporter { child, port, log };
        let started = Instant::now();
        while get(exporter.port, "/healthz").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the exporter did not answer: {}",
                exporter.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        exporter
    }

    /// For `simulator` (reached at `host`), verifying it with its CA.
    fn for_simulator(host: &str, ca: &Path, args: &[&str]) -> Exporter {
        Exporter::start(
            &[
                ("VSPHERE_HOST", host),
                ("VSPHERE_USER", "root"),
                ("VSPHERE_PASSWORD", "pw"),
                ("VSPHERE_CA_FILE", ca.to_str().unwrap()),
            ],
            args,
        )
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        let (status, body) = get(self.port, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends `request` (raw bytes) on a new connection and reads until it closes.
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// One HTTP response read from `reader`: status, headers, body (none
/// for an answer to `HEAD`, whatever its length says).
fn read_response(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<String>, String)> {
    read_answer(reader, false)
}

fn read_answer(
    reader: &mut impl BufRead,
    head: bool,
) -> std::io::Result<(u16, Vec<String>, String)> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().unwrap();
        }
        headers.push(line);
    }
    let mut body = vec![0; if head { 0 } else { length }];
    reader.read_exact(&mut body)?;
    Ok((status, headers, String::from_utf8(body).unwrap()))
}

/// `GET path` on a new connection: status and body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    get_with(port, path, &[])
}

fn get_with(port: u16, path: &str, headers: &[&str]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let (status, _, body) = read_response(&mut BufReader::new(stream))?;
    Ok((status, body))
}

/// The value of the sample line starting with `series ` (exact labels).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

fn soap_calls(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("vpoller_exporter_soap_calls_total{method=\""))
        .map(|rest| {
            let (method, count) = rest.split_once("\"} ").unwrap();
            (method.to_owned(), count.parse().unwrap())
        })
        .collect()
}

fn vmware_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with("vmware_"))
        .count()
}

#[test]
fn the_pages_are_vmware_exporters_and_bad_requests_get_errors() {
    let simulator = Simulator::start();
    let exporter = Exporter::for_simulator(&simulator.host(), &simulator.ca_file, &[]);
    let port = exporter.port;

    assert_eq!(get(port, "/healthz").unwrap(), (200, "Server is UP".into()));
    let (status, index) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        index.contains("<a href=\"/metrics\">Metrics</a>"),
        "{index}"
    );
    let (status, missing) = get(port, "/nothing-here").unwrap();
    assert_eq!(status, 404);
    assert!(missing.contains("No Such Resource"), "{missing}");

    // Two requests on one kept-alive connection, the second a HEAD.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics?section=nosuchsection HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers, body) = read_response(&mut reader).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        headers
            .iter()
            .any(|h| h == "Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers:?}"
    );
    assert_eq!(
        value(&body, "vmware_vm_power_state{cluster_name=\"\",dc_name=\"DC0\",ds_name=\"LocalDS_0\",host_name=\"DC0_H0\",vm_name=\"DC0_H0_VM0\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("# HELP vmware_vm_power_state VMWare VM Power state (On / Off)\n# TYPE vmware_vm_power_state gauge\n"));
    let (status, headers, _) = read_answer(&mut reader, true).unwrap();
    assert_eq!(status, 200);
    // Nothing follows the head.
    let mut rest = Vec::new();
    reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let _ = reader.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a HEAD answer has no body: {} bytes",
        rest.len()
    );
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("Content-Length: ") && h != "Content-Length: 0"),
        "{headers:?}"
    );

    for (request, status) in [
        (&b"NONSENSE\r\n\r\n"[..], "400"),
        (b"GET / HTTP/2.0\r\n\r\n", "400"),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            "405",
        ),
        (
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400",
        ),
        (b"GET / HTTP/1.1\r\nbroken header\r\n\r\n", "400"),
    ] {
        let answer = exchange(port, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    huge.extend(
        std::iter::repeat(b"X-Filler: 0123456789abcdef\r\n")
            .take(1000)
            .flatten(),
    );
    huge.extend(b"\r\n");
    let answer = exchange(port, &huge);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    // The server is still there.
    assert_eq!(get(port, "/healthz").unwrap().0, 200);
}

#[test]
fn without_a_configured_host_the_scrape_names_it() {
    let simulator = Simulator::start();
    let exporter = Exporter::start(
        &[
            ("VSPHERE_USER", "root"),
            ("VSPHERE_PASSWORD", "pw"),
            ("VSPHERE_CA_FILE", simulator.ca_file.to_str().unwrap()),
        ],
        &[],
    );
    let (status, body) = get(exporter.port, "/metrics").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (500, "No vsphere_host or target defined!\n")
    );
    for parameter in ["vsphere_host", "target"] {
        let path = format!("/metrics?{parameter}={}", simulator.host());
        let (status, body) = get(exporter.port, &path).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(value(&body, "vpoller_exporter_up"), Some(1.0), "{body}");
        assert!(body.contains("vm_name=\"DC0_C0_RP0_VM1\""), "{body}");
    }
    // A host that does not answer: a scrape that says so, no vSphere series.
    let nowhere = format!("/metrics?vsphere_host=127.0.0.1:{}", free_port());
    let (status, body) = get(exporter.port, &nowhere).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&body, "vpoller_exporter_up"), Some(0.0), "{body}");
    assert_eq!(vmware_series(&body), 0, "{body}");
    assert!(body.contains("# Collection failed: "), "{body}");
}

#[test]
fn overlapping_scrapes_share_one_collection() {
    let simulator = Simulator::start();
    let proxy = FreezableProxy::start(&simulator.host());
    let exporter = Exporter::for_simulator(&proxy.host(), &simulator.ca_file, &["-l", "DEBUG"]);
    // vCenter hangs: the first scrape's collection cannot end.
    proxy.freeze();
    let port = exporter.port;
    let first = std::thread::spawn(move || get(port, "/metrics").unwrap());
    let started = Instant::now();
    let second = loop {
        // Once the first scrape is collecting, a second one waits for it.
        let second = std::thread::spawn(move || get(port, "/metrics").unwrap());
        std::thread::sleep(Duration::from_millis(200));
        if exporter
            .log_text()
            .contains("waits for the collection under way")
        {
            break second;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scrape waited: {}",
            exporter.log_text()
        );
        drop(second);
    };
    proxy.thaw();
    let first = first.join().unwrap();
    let second = second.join().unwrap();
    assert_eq!(first.0, 200);
    assert_eq!(first, second, "the waiting scrape has the same bytes");
    let later = exporter.metrics();
    assert!(
        value(&later, "vpoller_exporter_scrapes_shared_total").unwrap() >= 1.0,
        "{later}"
    );
}

#[test]
fn a_steady_scrape_reads_memory_and_a_hung_vcenter_makes_the_series_go() {
    let simulator = Simulator::start_with(&["-vms", "20"]);
    let proxy = FreezableProxy::start(&simulator.host());
    let exporter = Exporter::for_simulator(&proxy.host(), &simulator.ca_file, &[]);
    let first = exporter.metrics();
    assert_eq!(value(&first, "vpoller_exporter_up"), Some(1.0), "{first}");
    // The mirror takes over within a few scrapes: then a scrape makes no
    // call of its own.
    let started = Instant::now();
    while value(&exporter.metrics(), "vpoller_exporter_scrape_soap_calls") != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never from memory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = exporter.metrics();
    simulator.reset_calls();
    let steady = exporter.metrics();
    let after = exporter.metrics();
    for metrics in [&steady, &after] {
        assert_eq!(
            value(metrics, "vpoller_exporter_scrape_soap_calls"),
            Some(0.0),
            "{metrics}"
        );
        assert_eq!(
            value(metrics, "vpoller_exporter_mirror_in_sync"),
            Some(1.0),
            "{metrics}"
        );
    }
    // What the simulator served meanwhile: the follower's long polls and
    // the background performance reads only, no property read.
    let served = simulator.calls();
    for method in [
        "RetrievePropertiesEx",
        "RetrieveProperties",
        "CreateContainerView",
        "CreateFilter",
    ] {
        assert_eq!(
            served.get(method),
            None,
            "{method} during steady scrapes: {served:?}"
        );
    }
    let counted = |metrics: &str| -> f64 {
        soap_calls(metrics)
            .into_iter()
            .filter(|(method, _)| {
                !["WaitForUpdatesEx", "CancelWaitForUpdates", "QueryPerf"]
                    .contains(&method.as_str())
            })
            .map(|(_, count)| count)
            .sum()
    };
    assert_eq!(counted(&before), counted(&after), "{before}\n{after}");
    assert_eq!(vmware_series(&steady), vmware_series(&after));
    assert!(vmware_series(&steady) > 60 * 10, "{steady}");

    let frozen = Instant::now();
    proxy.freeze();
    loop {
        let (status, body) = get_with(
            exporter.port,
            "/metrics",
            &["X-Prometheus-Scrape-Timeout-Seconds: 5"],
        )
        .unwrap();
        assert_eq!(status, 200);
        if value(&body, "vpoller_exporter_up") == Some(0.0) {
            assert_eq!(vmware_series(&body), 0, "{body}");
            break;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(30),
            "the series are still served {:?} after vCenter hung",
            frozen.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("hung vCenter: series gone after {:?}", frozen.elapsed());
    proxy.thaw();
    let thawed = Instant::now();
    while value(&exporter.metrics(), "vpoller_exporter_up") != Some(1.0) {
        assert!(thawed.elapsed() < Duration::from_secs(90), "never back");
        std::thread::sleep(Duration::from_millis(500));
    }
}
