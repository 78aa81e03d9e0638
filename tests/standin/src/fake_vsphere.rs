//! A small fake vSphere SOAP server for the faults the simulator cannot
//! show: SOAP faults, bodies that are not XML, truncated and huge answers,
//! result paging, refused logins, answers that never come, and a server that
//! dies in the middle of a request; and, for the benchmarks, large paged
//! inventories (the `vpoller-fake-vsphere` program). HTTPS on a free loopback
//! port, with the fixed test certificate in tests/certs (clients use
//! "insecure" or that certificate) or another one ([`Identity`]); stopped
//! (every connection shut) when dropped or killed.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server does with one request.
pub enum Answer {
    /// HTTP status and SOAP body text.
    Xml(u16, String),
    /// Status 200 and SOAP body text in chunked transfer encoding (4 KiB
    /// chunks), as Go's HTTP server (the simulator's) sends larger answers.
    Chunked(String),
    /// These bytes as the whole HTTP response, then the connection is closed.
    Raw(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Never answer (until the server is killed).
    Hang,
}

/// Decides the answer to a request from its SOAP method and body.
pub type Handler = dyn Fn(&str, &str) -> Answer + Send + Sync;

pub struct FakeVSphere {
    pub port: u16,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    calls: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// The certificate chain a [`FakeVSphere`] shows and the key that signs its
/// handshakes.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The usual test certificate, `fake-vsphere.pem` (a P-256 key for
    /// 127.0.0.1 and localhost).
    pub fn standard() -> Identity {
        Identity::from_files("fake-vsphere.pem", "fake-vsphere-key.pem")
    }

    /// The certificates of PEM file `chain` and the key of PEM file `key`,
    /// both in tests/certs. The key need not be the certificate's: ring
    /// cannot sign with an RSA key under 2048 bits, so a server that shows
    /// such a certificate (`weak-rsa-1024.pem`, made with `openssl req
    /// -x509 -newkey rsa:1024`) signs with a key of its own
    /// (`weak-rsa-1024-handshake-key.pem`, 2048 bits), which a client that
    /// refuses the certificate's key never gets to check.
    pub fn from_files(chain: &str, key: &str) -> Identity {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs");
        Identity {
            chain: CertificateDer::pem_file_iter(format!("{dir}/{chain}"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            key: PrivateKeyDer::from_pem_file(format!("{dir}/{key}")).unwrap(),
        }
    }
}

impl FakeVSphere {
    /// Serves with `handler`, which falls back to [`standard`] for the calls
    /// it leaves to it (see [`FakeVSphere::with_defaults`]).
    pub fn start(handler: Box<Handler>) -> FakeVSphere {
        FakeVSphere::start_showing(Identity::standard(), handler)
    }

    /// A plain vCenter with no objects ([`standard`]) that shows `identity`.
    pub fn showing(identity: Identity) -> FakeVSphere {
        FakeVSphere::start_showing(identity, Box::new(|method, _| standard(method)))
    }

    /// Like [`FakeVSphere::start`], showing `identity`.
    pub fn start_showing(identity: Identity, handler: Box<Handler>) -> FakeVSphere {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake vSphere server");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let calls: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::from(handler);
        let tls = Arc::new(server_config(identity));
        let acceptor = {
            let (stop, streams, calls) = (stop.clone(), streams.clone(), calls.clone());
            let accepted = accepted.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            stream.set_nonblocking(false).unwrap();
                            streams.lock().unwrap().push(stream.try_clone().unwrap());
                            let (stop, calls, handler, tls) =
                                (stop.clone(), calls.clone(), handler.clone(), tls.clone());
                            std::thread::spawn(move || {
                                serve(stream, &tls, &*handler, &calls, &stop);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FakeVSphere {
            port,
            stop,
            streams,
            calls,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    /// A server answering `special` where it returns Some, and as a plain
    /// vCenter with no objects otherwise.
    pub fn with_defaults(
        special: impl Fn(&str, &str) -> Option<Answer> + Send + Sync + 'static,
    ) -> FakeVSphere {
        FakeVSphere::start(Box::new(move |method, body| {
            special(method, body).unwrap_or_else(|| standard(method))
        }))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The SOAP methods called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many connections clients opened.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// How many times `method` was called.
    pub fn count(&self, method: &str) -> usize {
        self.calls().iter().filter(|call| *call == method).count()
    }

    /// Stops listening and cuts every connection, as a killed server would.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FakeVSphere {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server_config(identity: Identity) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider
        .key_provider
        .load_private_key(identity.key)
        .unwrap();
    // Not `with_single_cert`, which refuses a key that is not the certificate's.
    let shown = Arc::new(CertifiedKey::new(identity.chain, key));
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Shows(shown)))
}

/// Shows the one certificate to every client.
#[derive(Debug)]
struct Shows(Arc<CertifiedKey>);

impl ResolvesServerCert for Shows {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve(
    stream: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    handler: &Handler,
    calls: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let connection = match rustls::ServerConnection::new(tls.clone()) {
        Ok(connection) => connection,
        Err(_) => return,
    };
    let mut tls_stream = rustls::StreamOwned::new(connection, stream);
    loop {
        let Some(body) = read_request(&mut tls_stream) else {
            return;
        };
        let method = soap_method(&body);
        calls.lock().unwrap().push(method.clone());
        let answer = handler(&method, &body);
        let bytes = match answer {
            Answer::Xml(status, xml) => {
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n",
                    if status == 200 { "OK" } else { "Internal Server Error" },
                    xml.len()
                );
                if method == "Login" {
                    head.push_str(
                        "Set-Cookie: vmware_soap_session=\"fake-session\"; Path=/; HttpOnly\r\n",
                    );
                }
                head.push_str("\r\n");
                let mut bytes = head.into_bytes();
                bytes.extend_from_slice(xml.as_bytes());
                bytes
            }
            Answer::Chunked(xml) => {
                let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for chunk in xml.as_bytes().chunks(4096) {
                    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
                bytes
            }
            Answer::Raw(bytes) => {
                let _ = tls_stream.write_all(&bytes);
                let _ = tls_stream.flush();
                tls_stream.conn.send_close_notify();
                let _ = tls_stream.flush();
                // A clone of the socket is kept for kill(): shut it, do not just drop it.
                let _ = tls_stream.sock.shutdown(Shutdown::Both);
                return;
            }
            Answer::Close => {
                let _ = tls_stream.sock.shutdown(Shutdown::Both);
                return;
            }
            Answer::Hang => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
        };
        if tls_stream.write_all(&bytes).is_err() || tls_stream.flush().is_err() {
            return;
        }
    }
}

/// Reads one HTTP request and returns its body.
fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    // The client sends one request and waits: nothing is left in the buffer.
    String::from_utf8(body).ok()
}

/// The name of the first element inside the SOAP Body.
fn soap_method(body: &str) -> String {
    let after_body = body.find("Body>").map(|at| &body[at + 5..]).unwrap_or(body);
    let start = after_body.find('<').map(|at| at + 1).unwrap_or(0);
    let name: String = after_body[start..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    name.rsplit(':').next().unwrap_or("").to_owned()
}

/// A SOAP envelope around `inner`.
pub fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>{inner}\
         </soapenv:Body></soapenv:Envelope>"
    )
}

/// A SOAP fault `fault` (e.g. `InvalidLogin`) with `message`, status 500.
pub fn fault(fault: &str, message: &str) -> Answer {
    Answer::Xml(
        500,
        envelope(&format!(
            "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{message}</faultstring>\
             <detail><{fault}Fault xmlns=\"urn:vim25\" xsi:type=\"{fault}\"></{fault}Fault></detail>\
             </soapenv:Fault>"
        )),
    )
}

/// A `RetrievePropertiesEx` (or `Continue...`) page of virtual machines
/// `vm-FIRST`.. with a `name` each (`vm-N`), and a continuation token.
pub fn vm_page(response: &str, first: usize, count: usize, token: Option<&str>) -> String {
    page(response, first, count, token, false)
}

/// Like [`vm_page`], each VM with what a monitoring discover asks for: `name`,
/// `runtime.powerState`, `config.hardware.numCPU`, `config.hardware.memoryMB`,
/// `summary.config.guestFullName` and `guest.ipAddress`.
pub fn rich_vm_page(response: &str, first: usize, count: usize, token: Option<&str>) -> String {
    page(response, first, count, token, true)
}

fn page(response: &str, first: usize, count: usize, token: Option<&str>, rich: bool) -> String {
    let mut inner = format!("<{response} xmlns=\"urn:vim25\"><returnval>");
    if let Some(token) = token {
        inner.push_str(&format!("<token>{token}</token>"));
    }
    for n in first..first + count {
        inner.push_str(&format!(
            "<objects><obj type=\"VirtualMachine\">vm-{n}</obj><propSet><name>name</name>\
             <val xsi:type=\"xsd:string\">vm-{n}</val></propSet>"
        ));
        if rich {
            inner.push_str(&format!(
                "<propSet><name>runtime.powerState</name><val xsi:type=\"VirtualMachinePowerState\">poweredOn</val></propSet>\
                 <propSet><name>config.hardware.numCPU</name><val xsi:type=\"xsd:int\">{}</val></propSet>\
                 <propSet><name>config.hardware.memoryMB</name><val xsi:type=\"xsd:int\">{}</val></propSet>\
                 <propSet><name>summary.config.guestFullName</name><val xsi:type=\"xsd:string\">Debian GNU/Linux 12 (64-bit)</val></propSet>\
                 <propSet><name>guest.ipAddress</name><val xsi:type=\"xsd:string\">10.{}.{}.{}</val></propSet>",
                1 + n % 8,
                1024 * (1 + n % 16),
                n / 65536 % 256,
                n / 256 % 256,
                n % 256
            ));
        }
        inner.push_str("</objects>");
    }
    inner.push_str(&format!("</returnval></{response}>"));
    envelope(&inner)
}

/// A vCenter with `vms` virtual machines (rich, as [`rich_vm_page`]) that
/// hands them out `page_size` at a time with continuation tokens, as vCenter
/// pages large results.
pub fn paged_inventory(vms: usize, page_size: usize) -> FakeVSphere {
    let page_size = page_size.max(1);
    FakeVSphere::with_defaults(move |method, body| {
        let (response, first) = match method {
            "RetrievePropertiesEx" => ("RetrievePropertiesExResponse", 0),
            "ContinueRetrievePropertiesEx" => {
                let start = body.find("<token>")? + "<token>".len();
                let end = body[start..].find("</token>")? + start;
                (
                    "ContinueRetrievePropertiesExResponse",
                    body[start..end].parse().ok()?,
                )
            }
            _ => return None,
        };
        let count = page_size.min(vms.saturating_sub(first));
        let next = first + count;
        let token = (next < vms).then(|| next.to_string());
        Some(Answer::Xml(
            200,
            rich_vm_page(response, first, count, token.as_deref()),
        ))
    })
}

/// The answers of a plain vCenter: service content, login, logout, container
/// views; no objects.
pub fn standard(method: &str) -> Answer {
    let inner = match method {
        "RetrieveServiceContent" => {
            "<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval>\
             <rootFolder type=\"Folder\">group-d1</rootFolder>\
             <propertyCollector type=\"PropertyCollector\">propertyCollector</propertyCollector>\
             <viewManager type=\"ViewManager\">ViewManager</viewManager>\
             <about><name>Fake vCenter</name><fullName>Fake vCenter 6.5</fullName><vendor>libvpoller tests</vendor>\
             <version>6.5.0</version><build>1</build><osType>linux-x64</osType><apiType>VirtualCenter</apiType>\
             <apiVersion>6.5</apiVersion></about>\
             <sessionManager type=\"SessionManager\">SessionManager</sessionManager>\
             <perfManager type=\"PerformanceManager\">PerfMgr</perfManager>\
             </returnval></RetrieveServiceContentResponse>"
                .to_owned()
        }
        "Login" => "<LoginResponse xmlns=\"urn:vim25\"><returnval><key>fake</key><userName>root</userName>\
                    <fullName>root</fullName></returnval></LoginResponse>"
            .to_owned(),
        "Logout" => "<LogoutResponse xmlns=\"urn:vim25\"></LogoutResponse>".to_owned(),
        "CreateContainerView" => "<CreateContainerViewResponse xmlns=\"urn:vim25\">\
             <returnval type=\"ContainerView\">session[fake]view-1</returnval></CreateContainerViewResponse>"
            .to_owned(),
        "RetrievePropertiesEx" => {
            "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"></RetrievePropertiesExResponse>".to_owned()
        }
        other => return fault("MethodFault", &format!("the fake server does not know {other}")),
    };
    Answer::Xml(200, envelope(&inner))
}

/// The counters of [`perf_answer`]'s performance manager: key and
/// `group.name.unit.rollup`.
pub const PERF_COUNTERS: &[(i64, &str)] = &[
    (2, "cpu.usage.percent.average"),
    (6, "cpu.usagemhz.megaHertz.average"),
    (24, "mem.usage.percent.average"),
];

/// How many samples of each metric [`perf_answer`] keeps: the newest at
/// 00:01:40 on 2026-01-01, one refresh period (20 s) apart.
pub const PERF_SAMPLES: usize = 6;

/// The answers of a vCenter with virtual machines `vm-1` to `vm-{vms}`
/// (named so, powered on, connected) and performance data that never
/// changes: the tables ([`PERF_COUNTERS`], the interval `Past day`), a
/// provider summary with real-time data every `refresh_rate` seconds (20 on
/// vCenter and ESXi), and `QueryPerf` with
/// the newest `maxSample` of [`PERF_SAMPLES`] fixed samples per query spec
/// and metric (newest first, as the simulator sends them), the value of
/// sample k (0 the oldest) of counter C of `vm-N` being `N*1000 + C*10 + k`.
/// `None` for other calls (see [`FakeVSphere::with_defaults`]).
pub fn perf_answer(vms: usize, refresh_rate: u32, method: &str, body: &str) -> Option<Answer> {
    let inner = match method {
        "RetrievePropertiesEx" if body.contains("<type>PerformanceManager</type>") => perf_tables(),
        "RetrievePropertiesEx" if body.contains("<type>VirtualMachine</type>") => {
            if body.contains("ContainerView") {
                return Some(Answer::Xml(
                    200,
                    vm_page("RetrievePropertiesExResponse", 1, vms, None),
                ));
            }
            let id = between(body, "<obj type=\"VirtualMachine\">", "</obj>")?;
            let number: usize = id.strip_prefix("vm-")?.parse().ok()?;
            let mut inner = String::from("<RetrievePropertiesExResponse xmlns=\"urn:vim25\">");
            if (1..=vms).contains(&number) {
                inner.push_str(&format!(
                    "<returnval><objects><obj type=\"VirtualMachine\">{id}</obj>\
                     <propSet><name>name</name><val xsi:type=\"xsd:string\">{id}</val></propSet>\
                     <propSet><name>runtime.powerState</name><val xsi:type=\"VirtualMachinePowerState\">poweredOn</val></propSet>\
                     <propSet><name>runtime.connectionState</name><val xsi:type=\"VirtualMachineConnectionState\">connected</val></propSet>\
                     </objects></returnval>"
                ));
            }
            inner.push_str("</RetrievePropertiesExResponse>");
            inner
        }
        "QueryPerfProviderSummary" => {
            let entity = between(body, "<entity", "</entity>")?;
            format!(
                "<QueryPerfProviderSummaryResponse xmlns=\"urn:vim25\"><returnval>\
                 <entity{entity}</entity><currentSupported>true</currentSupported>\
                 <summarySupported>true</summarySupported><refreshRate>{refresh_rate}</refreshRate>\
                 </returnval></QueryPerfProviderSummaryResponse>"
            )
        }
        "QueryPerf" => {
            let mut inner = String::from("<QueryPerfResponse xmlns=\"urn:vim25\">");
            for spec in body.split("<querySpec>").skip(1) {
                inner.push_str(&entity_metric(spec));
            }
            inner.push_str("</QueryPerfResponse>");
            inner
        }
        _ => return None,
    };
    Some(Answer::Xml(200, envelope(&inner)))
}

/// How many query specs a `QueryPerf` request body holds.
pub fn query_specs(body: &str) -> usize {
    body.matches("<querySpec>").count()
}

/// The text between the first `start` and the `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn perf_tables() -> String {
    let mut inner = String::from(
        "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects>\
         <obj type=\"PerformanceManager\">PerfMgr</obj>\
         <propSet><name>perfCounter</name><val xsi:type=\"ArrayOfPerfCounterInfo\">",
    );
    for (key, name) in PERF_COUNTERS {
        let parts: Vec<&str> = name.split('.').collect();
        let description = |field: &str, key: &str| {
            format!(
                "<{field}><label>{key}</label><summary>{key}</summary><key>{key}</key></{field}>"
            )
        };
        inner.push_str(&format!(
            "<PerfCounterInfo><key>{key}</key>{}{}{}<rollupType>{}</rollupType>\
             <statsType>rate</statsType><level>1</level><perDeviceLevel>3</perDeviceLevel></PerfCounterInfo>",
            description("nameInfo", parts[1]),
            description("groupInfo", parts[0]),
            description("unitInfo", parts[2]),
            parts[3]
        ));
    }
    inner.push_str(
        "</val></propSet><propSet><name>historicalInterval</name><val xsi:type=\"ArrayOfPerfInterval\">\
         <PerfInterval><key>1</key><samplingPeriod>300</samplingPeriod><name>Past day</name>\
         <length>86400</length><level>1</level><enabled>true</enabled></PerfInterval>\
         </val></propSet></objects></returnval></RetrievePropertiesExResponse>",
    );
    inner
}

/// The `PerfEntityMetric` answering one query spec (the text after its
/// `<querySpec>`).
fn entity_metric(spec: &str) -> String {
    let entity = between(spec, "<entity", "</entity>").unwrap_or("");
    let number: usize = entity
        .rsplit('-')
        .next()
        .and_then(|number| number.parse().ok())
        .unwrap_or(0);
    let interval: usize = between(spec, "<intervalId>", "</intervalId>")
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    let count = between(spec, "<maxSample>", "</maxSample>")
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(PERF_SAMPLES)
        .min(PERF_SAMPLES);
    // Sample k (0 the oldest) is at 00:00:00 plus k intervals.
    let newest_first: Vec<usize> = (PERF_SAMPLES - count..PERF_SAMPLES).rev().collect();
    let mut out = format!("<returnval xsi:type=\"PerfEntityMetric\"><entity{entity}</entity>");
    for k in &newest_first {
        let seconds = k * interval;
        out.push_str(&format!(
            "<sampleInfo><timestamp>2026-01-01T{:02}:{:02}:{:02}Z</timestamp><interval>{interval}</interval></sampleInfo>",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ));
    }
    for metric in spec.split("<metricId>").skip(1) {
        let counter: usize = between(metric, "<counterId>", "</counterId>")
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        let instance = between(metric, "<instance>", "</instance>").unwrap_or("");
        out.push_str(&format!(
            "<value xsi:type=\"PerfMetricIntSeries\"><id><counterId>{counter}</counterId>\
             <instance>{instance}</instance></id>"
        ));
        for k in &newest_first {
            out.push_str(&format!(
                "<value>{}</value>",
                number * 1000 + counter * 10 + k
            ));
        }
        out.push_str("</value>");
    }
    out.push_str("</returnval>");
    out
}

/// A [`FakeVSphere`] answering as [`perf_answer`] does, whose `QueryPerf`
/// can be made to fail, and which keeps the `QueryPerf` request bodies.
pub struct PerfVCenter {
    pub server: FakeVSphere,
    failing: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl PerfVCenter {
    /// Serves virtual machines `vm-1` to `vm-{vms}` with real-time samples
    /// every 20 s.
    pub fn start(vms: usize) -> PerfVCenter {
        PerfVCenter::with_refresh_rate(vms, 20)
    }

    /// Like [`PerfVCenter::start`], with real-time samples every
    /// `refresh_rate` seconds: the period of the agent's cache, which tests
    /// make long (nothing gets old) or short (everything does soon).
    pub fn with_refresh_rate(vms: usize, refresh_rate: u32) -> PerfVCenter {
        let failing = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let (failing, queries) = (failing.clone(), queries.clone());
            FakeVSphere::with_defaults(move |method, body| {
                if method == "QueryPerf" {
                    queries.lock().unwrap().push(body.to_owned());
                    if failing.load(Ordering::SeqCst) {
                        return Some(fault("SystemError", "the performance manager is down"));
                    }
                }
                perf_answer(vms, refresh_rate, method, body)
            })
        };
        PerfVCenter {
            server,
            failing,
            queries,
        }
    }

    /// Makes `QueryPerf` fail with a fault (`true`) or answer again.
    pub fn fail_perf(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The number of query specs of each `QueryPerf` so far, in order.
    pub fn perf_queries(&self) -> Vec<usize> {
        self.queries
            .lock()
            .unwrap()
            .iter()
            .map(|body| query_specs(body))
            .collect()
    }

    /// The `QueryPerf` request bodies so far, in order.
    pub fn perf_bodies(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// How many times `method` was called.
    pub fn count(&self, method: &str) -> usize {
        self.server.count(method)
    }
}
