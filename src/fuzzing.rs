//! Entry points for coverage-guided fuzzing: one function per parser that
//! reads bytes from outside the process, each driving the crate's own code
//! over those bytes the way the library does when they arrive (the ZMTP
//! connection fed in pieces and answered, a SOAP response read and turned
//! into JSON and into the mirror, a request checked as the worker checks
//! it, ...). Results are dropped: a panic, a hang or runaway memory is
//! what the fuzzer looks for.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` call these functions, and
//! `tests/fuzz_corpus.rs` runs every seed and every regression input
//! through them with no fuzzer. A new target is a function here with its
//! line in `TARGETS`, `fuzz/fuzz_targets/NAME.rs` (and its `[[bin]]` in
//! `fuzz/Cargo.toml`), seeds in `fuzz/corpus/NAME/` and the name in the
//! Makefile's `FUZZ_LIST`.
//!
//! Inputs made of several parts (an item key's parameters and the reply,
//! a registry row's columns) separate them with NUL bytes, which none of
//! those parts can hold where they come from (C strings, JSON text); parts
//! that may hold any byte (CURVE's commands) have a length in front.
//!
//! An input that a fuzzer found to crash, hang or exhaust memory is kept,
//! once the bug is fixed, as a file of `fuzz/regressions/NAME/` (the
//! artifact that `make fuzz` names, under a name that says what it
//! caught), so that `tests/fuzz_corpus.rs` runs it from then on.
//!
//! Not a stable interface: hidden from the documentation, for the fuzz
//! crate and the tests only.

use crate::agent::mirror::store::{self as mirror_store, KindStore};
use crate::agent::perf::{self, samples::EntityMetric};
use crate::agent::reply;
use crate::agent::request::Msg;
use crate::agent::{self, tasks};
use crate::curve::{self as keys, KeyPair, PublicKey, SecretKey};
use crate::hosts::{Host, Tls};
use crate::transport::codec::{self, Reader, Unit};
use crate::transport::curve::{
    Allowed, Curve, Sealer, Security, Step, COMMAND, MESSAGE_OVERHEAD, MORE,
};
use crate::transport::endpoint::Endpoint;
use crate::transport::{Connection, Event, SocketType};
use crate::vsphere::liveness::About;
use crate::vsphere::property::{self, ObjectContent};
use crate::vsphere::xml::{self, Document, Node};
use crate::vsphere::{soap, updates, value};
use serde_json::Value;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A target's function: one input, dropped after use.
pub type Target = fn(&[u8]);

/// Every target: its name (the file in `fuzz/fuzz_targets/` and the
/// directories under `fuzz/corpus/` and `fuzz/regressions/`) and its
/// function.
pub const TARGETS: &[(&str, Target)] = &[
    ("zmtp", zmtp),
    ("soap_xml", soap_xml),
    ("request", request),
    ("server_config", server_config),
    ("exporter_config", exporter_config),
    ("registry_row", registry_row),
    ("zabbix_key", zabbix_key),
    ("curve", curve),
    ("zmtp_curve", zmtp_curve),
];

/// The parts of `data` between NUL bytes.
fn parts(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&byte| byte == 0)
}

/// A reproducible stream of numbers (xorshift) seeded from the input, for
/// where to cut the input into reads and how much a peer takes per write.
struct Numbers(u64);

impl Numbers {
    fn new(seed: u64) -> Numbers {
        Numbers(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number from 1 to `most` (`most` at least 1).
    fn up_to(&mut self, most: usize) -> usize {
        1 + (self.next() % most.max(1) as u64) as usize
    }

    /// `bytes` cut into pieces, each from one byte to all that is left, as
    /// a socket's reads might cut them.
    fn pieces<'b>(&mut self, bytes: &'b [u8]) -> Pieces<'_, 'b> {
        Pieces {
            numbers: self,
            rest: bytes,
        }
    }
}

/// The pieces of [`Numbers::pieces`].
struct Pieces<'n, 'b> {
    numbers: &'n mut Numbers,
    rest: &'b [u8],
}

impl<'b> Iterator for Pieces<'_, 'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (piece, after) = self.rest.split_at(self.numbers.up_to(self.rest.len()));
        self.rest = after;
        Some(piece)
    }
}

/// Hands `piece` to `read` (a connection's or a reader's `read_from`)
/// until all of it is taken, `read` takes no more or fails.
fn read_piece(
    mut piece: &[u8],
    mut read: impl FnMut(&mut dyn io::Read) -> io::Result<usize>,
) -> io::Result<()> {
    while !piece.is_empty() {
        if read(&mut piece)? == 0 {
            break;
        }
    }
    Ok(())
}

/// A peer that takes part of what is written each time, and now and then
/// nothing (a full socket buffer).
struct SlowPeer {
    numbers: Numbers,
    received: usize,
}

impl Write for SlowPeer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.numbers.next() % 8 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.numbers.up_to(bytes.len());
        self.received += taken;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// ZMTP from a peer: the first byte picks the socket type (its low two
/// bits), the second seeds where the rest is cut into reads. The rest goes
/// to a `Connection` one read at a time, each event answered as the
/// drivers answer (a REQ sends its next request, a REP answers, a DEALER
/// and a ROUTER send the frames back), the output written to a peer that
/// takes little at a time; and to a bare codec `Reader` that allows
/// messages right after the greeting, so that framing is reached without
/// a handshake.
pub fn zmtp(data: &[u8]) {
    let [kind, seed, stream @ ..] = data else {
        return;
    };
    let kind = [
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
    ][usize::from(kind & 3)];
    zmtp_connection(kind, u64::from(*seed), stream);
    zmtp_reader(u64::from(*seed), stream);
}

fn zmtp_connection(kind: SocketType, seed: u64, stream: &[u8]) {
    let request: &[u8] = br#"{"method": "about", "hostname": "vc01"}"#;
    let mut connection = match kind {
        SocketType::Router => Connection::router(b"\x00\x6b\x8b\x45\x67".to_vec()),
        other => Connection::new(other),
    };
    // The client and the worker send before the handshake is done.
    if matches!(kind, SocketType::Req | SocketType::Dealer) {
        connection.send([request]);
    }
    let mut numbers = Numbers::new(seed);
    let mut peer = SlowPeer {
        numbers: Numbers::new(seed ^ 0x5eed),
        received: 0,
    };
    'feed: for piece in numbers.pieces(stream) {
        let _ = read_piece(piece, |source| connection.read_from(source));
        loop {
            match connection.poll_event() {
                Ok(None) => break,
                Ok(Some(Event::Ready)) => {
                    if kind == SocketType::Rep {
                        // Nothing asked yet: refused.
                        connection.send([&b"early"[..]]);
                    }
                }
                Ok(Some(Event::Message(frames))) => {
                    let answer: Vec<&[u8]> = match kind {
                        SocketType::Req => vec![request],
                        SocketType::Rep => vec![br#"{"success": 0}"#],
                        SocketType::Dealer => frames.iter().map(Vec::as_slice).collect(),
                        // The routing id chose this connection; the rest goes back.
                        SocketType::Router => frames.iter().skip(1).map(Vec::as_slice).collect(),
                    };
                    connection.send(answer.iter().copied());
                }
                Err(_) => break 'feed,
            }
        }
        let _ = connection.write_to(&mut peer);
        let _ = connection.backlog();
    }
    let _ = connection.handshake_expired(Instant::now());
    let left = connection.pending().len();
    connection.sent(left);
}

/// The routing id of the `zmtp_curve` target's server when it is a ROUTER.
const CURVE_ROUTING_ID: &[u8] = b"\x00\x6b\x8b\x45\x68";

/// One side of the `zmtp_curve` target's pair of connections.
struct CurveSide {
    connection: Connection,
    sealer: Sealer,
    /// Sealed bytes last injected towards the other side, for a replay.
    last_sealed: Vec<u8>,
}

/// Hands `bytes` to `to` cut into reads by `numbers`, then takes its
/// events: the messages it received, or the reason it failed.
fn curve_deliver(
    bytes: &[u8],
    to: &mut Connection,
    numbers: &mut Numbers,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut messages = Vec::new();
    for piece in numbers.pieces(bytes) {
        read_piece(piece, |source| to.read_from(source)).map_err(|error| error.to_string())?;
        while let Some(event) = to.poll_event()? {
            if let Event::Message(frames) = event {
                messages.push(frames);
            }
        }
    }
    Ok(messages)
}

/// What `connection` has to send, taken from it.
fn curve_take(connection: &mut Connection) -> Vec<u8> {
    let bytes = connection.pending().to_vec();
    connection.sent(bytes.len());
    bytes
}

/// ZMTP connections with CURVE past their handshake, a client's and a
/// server's in this process, which random bytes could never reach (they
/// do not get past a real handshake). The first byte: its bit 0 makes the
/// client a DEALER (else a REQ), bit 1 the server a ROUTER (else a REP);
/// the second seeds where bytes are cut into reads. The client's request,
/// sent before the handshake (between the `curve` target's keys), must
/// arrive once it is done. The rest of the input is
/// parts, each a 2-byte big-endian length and that many bytes: a mode
/// byte, a MESSAGE flags byte and a frame. The mode's low two bits: 0 the
/// client seals the frame as a data frame (as libzmq sends boxes), 1 as a
/// command frame (as RFC 26 has it), 2 the frame's bytes go to the server
/// as they are (after the handshake: never a box that opens), 3 the
/// server seals it for the client; its next two bits: 1 the last byte of
/// the box flipped, 2 the box sent before in that direction sent again.
/// The server answers as the drivers do (a REP replies, a ROUTER sends the
/// frames back), the client takes what comes.
///
/// Checked: no wire byte holds the request; a flipped or replayed box
/// ends the connection that gets it, unless unboxed bytes went before;
/// and, while only data boxes went to a ROUTER server, it received exactly
/// the messages they made up.
pub fn zmtp_curve(data: &[u8]) {
    if let [kind, seed, stream @ ..] = data {
        curve_connections(*kind, u64::from(*seed), stream);
    }
}

/// The `zmtp_curve` target's work: how many of the parts of `stream` were
/// taken before a connection ended.
fn curve_connections(kind: u8, seed: u64, stream: &[u8]) -> usize {
    let request: &[u8] = br#"{"method": "about", "hostname": "vc01"}"#;
    let keys = curve_keys();
    let client_kind = if kind & 1 == 0 {
        SocketType::Req
    } else {
        SocketType::Dealer
    };
    let router = kind & 2 != 0;
    let client_security = Security::CurveClient {
        server: *keys.server.public(),
        ours: Arc::clone(&keys.client),
    };
    let server_security = Security::CurveServer {
        ours: Arc::clone(&keys.server),
        allowed: Arc::new(Allowed::new(None)),
    };
    let server_kind = if router {
        SocketType::Router
    } else {
        SocketType::Rep
    };
    let (Ok(mut client), Ok(server)) = (
        Connection::secured(client_kind, &client_security),
        Connection::secured(server_kind, &server_security),
    ) else {
        return 0; // no randomness for the connections' keys
    };
    let mut server = if router {
        server.routed(CURVE_ROUTING_ID.to_vec())
    } else {
        server
    };
    let mut numbers = Numbers::new(seed);
    let is_boxed = |bytes: &[u8]| !bytes.windows(request.len()).any(|w| w == request);

    // The handshake, with the request held until it is done (a DEALER
    // puts in the delimiter that a REQ adds itself).
    let delimited: &[&[u8]] = if router || client_kind == SocketType::Req {
        &[request]
    } else {
        &[b"", request]
    };
    assert!(
        client.send(delimited.iter().copied()),
        "a request before the handshake"
    );
    let mut arrived = Vec::new();
    for _ in 0..8 {
        let out = curve_take(&mut client);
        assert!(is_boxed(&out), "the request in clear on a CURVE connection");
        arrived
            .extend(curve_deliver(&out, &mut server, &mut numbers).expect("a genuine handshake"));
        let out = curve_take(&mut server);
        curve_deliver(&out, &mut client, &mut numbers).expect("a genuine handshake");
        if client.backlog() == 0 && server.backlog() == 0 {
            break;
        }
    }
    assert!(
        !client.in_handshake() && !server.in_handshake(),
        "a genuine handshake that does not end"
    );
    let [frames] = &arrived[..] else {
        panic!("the held request arrived as {} messages", arrived.len());
    };
    assert_eq!(
        frames.last().map(Vec::as_slice),
        Some(request),
        "the held request, as it was sent"
    );
    let (Some(client_sealer), Some(server_sealer)) = (client.sealer(), server.sealer()) else {
        panic!("a CURVE connection past its handshake with nothing to seal");
    };
    let mut sides = [
        CurveSide {
            connection: client,
            sealer: client_sealer,
            last_sealed: Vec::new(),
        },
        CurveSide {
            connection: server,
            sealer: server_sealer,
            last_sealed: Vec::new(),
        },
    ];
    // The messages a ROUTER server must have received, while only data
    // boxes went to it.
    let mut expected: Option<Vec<Vec<Vec<u8>>>> = router.then(Vec::new);
    let mut partial = vec![CURVE_ROUTING_ID.to_vec()];
    let mut received = Vec::new();
    let mut unboxed_to_server = false;
    let mut to_answer = arrived;
    let mut taken = 0;

    for part in sized_parts(stream) {
        // The server answers; what the connections sealed goes first, as a
        // box sealed here must come after those they sealed before it.
        for frames in std::mem::take(&mut to_answer) {
            let server = &mut sides[1].connection;
            if router {
                server.send(frames.iter().skip(1).map(Vec::as_slice));
            } else {
                server.send([&br#"{"success": 0}"#[..]]);
            }
        }
        for from in [1, 0] {
            let out = curve_take(&mut sides[from].connection);
            assert!(is_boxed(&out), "the request in clear on a CURVE connection");
            match curve_deliver(&out, &mut sides[1 - from].connection, &mut numbers) {
                Ok(messages) if from == 0 => {
                    received.extend(messages.iter().cloned());
                    to_answer.extend(messages);
                }
                Ok(_) => {}
                // Unboxed bytes before may have left a frame half read.
                Err(_) if from == 0 && unboxed_to_server => return taken,
                Err(reason) => panic!("a box a connection sealed was refused: {reason}"),
            }
        }
        let [mode, flags, frame @ ..] = part else {
            continue;
        };
        let (from, to) = if mode & 3 == 3 { (1, 0) } else { (0, 1) };
        let mut wire = Vec::new();
        match mode & 3 {
            1 => {
                let mut body = Vec::new();
                sides[from].sealer.push_body(&mut body, *flags, frame);
                codec::push_command_body(&mut wire, &body);
            }
            2 => wire.extend_from_slice(frame),
            _ => sides[from].sealer.push_frame(&mut wire, *flags, frame),
        }
        let sealed = mode & 3 != 2;
        let broken = match (mode >> 2) & 3 {
            1 if sealed => {
                if let Some(last) = wire.last_mut() {
                    *last ^= 1;
                }
                true
            }
            2 if sealed && !sides[from].last_sealed.is_empty() => {
                wire.clone_from(&sides[from].last_sealed);
                true
            }
            _ => false,
        };
        if sealed && !broken {
            sides[from].last_sealed.clone_from(&wire);
        }
        let data = sealed && !broken && flags & COMMAND == 0;
        let clean = to == 0 || !unboxed_to_server;
        if to == 1 {
            unboxed_to_server |= !sealed;
            match expected.as_mut() {
                Some(messages) if data => {
                    partial.push(frame.to_vec());
                    if flags & MORE == 0 {
                        let next = vec![CURVE_ROUTING_ID.to_vec()];
                        messages.push(std::mem::replace(&mut partial, next));
                    }
                }
                _ => expected = None,
            }
        }
        match curve_deliver(&wire, &mut sides[to].connection, &mut numbers) {
            Ok(messages) => {
                assert!(
                    !broken || !clean,
                    "a flipped or replayed CURVE box was taken"
                );
                if to == 1 {
                    received.extend(messages.iter().cloned());
                    to_answer.extend(messages);
                }
            }
            Err(reason) if data && clean => {
                panic!("a data box was refused: {reason}")
            }
            // Unboxed bytes, a command in a box (ERROR, one that does not
            // parse) or a broken box: the end of the connection.
            Err(_) => return taken,
        }
        taken += 1;
    }
    if let Some(expected) = expected {
        assert_eq!(received, expected, "the messages the ROUTER received");
    }
    taken
}

fn zmtp_reader(seed: u64, stream: &[u8]) {
    let mut reader = Reader::expecting(b"NULL");
    let mut numbers = Numbers::new(seed.rotate_left(7));
    for piece in numbers.pieces(stream) {
        let _ = read_piece(piece, |source| reader.read_from(source));
        loop {
            match reader.next() {
                Ok(Some(Unit::Greeting)) => reader.allow_messages(),
                Ok(Some(Unit::Command(body))) => {
                    if let Ok((b"READY", properties)) = codec::split_command(&body) {
                        let _ = codec::property(properties, "Socket-Type");
                        let _ = codec::property(properties, "Identity");
                    }
                }
                Ok(Some(Unit::Message(_))) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// A SOAP response from a vSphere host, read by every reader the library
/// has for one, since any of them may get any answer: whole, as an HTTP 500
/// fault and as the `about` of a `ServiceContent`; as a call's list of
/// return values (performance samples read and rendered); as a property
/// collector's page (each object converted to JSON as the tasks reply with
/// it, the performance tables read from it, and stored in a mirror); and
/// as an update set applied to a mirror. Every value is converted to JSON
/// and written as reply text.
pub fn soap_xml(data: &[u8]) {
    if let Ok(body) = xml::parse_body(data) {
        let content = body.child("returnval").unwrap_or(&body);
        let _ = About::new().remember(content);
        convert_all(&body);
        let _ = soap::fault_of(body).to_string();
    }
    let mut document = Document::new(data);
    if document.enter_response().is_ok() {
        while let Ok(Some(node)) = document.next_child() {
            convert_all(&node);
            let metric = EntityMetric::read(&node);
            let mut samples = Vec::new();
            metric.render(None, "cpu.usage.percent.average", i64::MAX, &mut samples);
            metric.render(None, "", 1, &mut samples);
            let _ = metric.sums().count();
            let _ = reply::to_text(&Value::Array(samples));
        }
    }
    let mut contents = Vec::new();
    let _ = property::read_result(&mut &data[..], &mut |content| {
        contents.push(content);
        Ok(())
    });
    mirror_page(contents);
    if let Ok(Some(set)) = updates::read_update_set(&mut &data[..]) {
        let mut store = KindStore::default();
        for filter in &set.filters {
            let paths = mirrored_paths(filter);
            let _ = mirror_store::apply(&mut store, &filter.objects, &paths);
            store.reindex("name");
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            for content in store.all(&paths).unwrap_or_default() {
                let _ = reply::to_text(&Value::Object(object_json(&content)));
            }
            let _ = store.not_entered();
        }
    }
}

/// Every element of `node`, depth first, converted to JSON and written.
fn convert_all(node: &Node) {
    let mut pending = vec![node];
    while let Some(node) = pending.pop() {
        let _ = reply::to_text(&value::property_value(node));
        pending.extend(node.children.iter());
    }
}

/// The properties of an object as JSON, as the tasks reply with them.
fn object_json(content: &ObjectContent) -> serde_json::Map<String, Value> {
    content
        .props
        .iter()
        .map(|(name, node)| (name.clone(), value::property_value(node)))
        .collect()
}

/// A property collector's page as the tasks and the mirror take it.
fn mirror_page(contents: Vec<ObjectContent>) {
    let mut store = KindStore::default();
    store.set_members(&contents);
    let mut paths: Vec<String> = Vec::new();
    for content in &contents {
        let _ = reply::to_text(&Value::Object(object_json(content)));
        let tables = perf::read_tables(Some(content));
        let _ = tables.counter_name(6);
        let _ = tables.counter_named("cpu.usagemhz.megaHertz.average");
        for (name, _) in &content.props {
            if !paths.contains(name) {
                paths.push(name.clone());
            }
        }
    }
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    for content in contents {
        store.set_read(content, &paths);
    }
    store.reindex("name");
    let _ = store.find("name", "vm01");
    for content in store.all(&paths).unwrap_or_default() {
        let _ = reply::to_text(&Value::Object(object_json(&content)));
    }
}

/// The paths a mirror's filter would have asked for to get `filter`'s
/// changes: each change's path and the properties above it (a mirror may
/// follow a property and parts of it), at most 64.
fn mirrored_paths(filter: &updates::FilterUpdate) -> Vec<String> {
    let mut paths = vec![String::from("name")];
    let changes = filter.objects.iter().flat_map(|object| &object.changes);
    for change in changes {
        let name = change.name.as_str();
        let cuts = name.match_indices(['.', '[']).map(|(at, _)| at);
        for end in cuts.chain([name.len()]) {
            if paths.len() < 64 && !paths.iter().any(|path| path == &name[..end]) {
                paths.push(name[..end].to_owned());
            }
        }
    }
    paths
}

/// A vPoller request, with after a NUL byte the task's reply (JSON) for
/// its helper: checked as the worker checks a request (JSON, an object, a
/// known task, the fields it requires, the host named), its fields read
/// as the tasks read them, and the reply passed through the helper it
/// names.
pub fn request(data: &[u8]) {
    let mut parts = parts(data);
    let msg_text = parts.next().unwrap_or_default();
    let reply_text = parts.next();
    let Ok(msg) = serde_json::from_slice::<Value>(msg_text) else {
        return;
    };
    if let Some(refusal) = agent::precheck(&msg) {
        let _ = reply::to_text(&refusal);
        return;
    }
    let Some(fields) = msg.as_object() else {
        return;
    };
    let _ = fields.get("hostname").and_then(Value::as_str);
    let method = fields
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(task) = tasks::find(method) else {
        return;
    };
    let _ = task.required.iter().all(|key| fields.contains_key(*key));
    let _ = agent::zabbix_form(method);
    let msg_fields = Msg {
        fields,
        deadline: Instant::now(),
    };
    let _ = msg_fields.name();
    let _ = msg_fields.properties();
    for key in fields.keys() {
        let _ = msg_fields.text(key);
        let _ = msg_fields.truthy(key);
    }
    let _ = perf::max_sample(&msg_fields);
    let _ = perf::counter_name(&msg_fields);
    let Some(helper) = fields.get("helper").and_then(Value::as_str) else {
        return;
    };
    if !crate::helpers::known(helper) {
        return;
    }
    let reply = reply_text
        .and_then(|text| serde_json::from_slice::<Value>(text).ok())
        .unwrap_or_else(|| reply::failure("Did not receive response, aborting..."));
    let _ = crate::helpers::apply(helper, fields, &reply);
}

/// The proxy's and worker's configuration file (py-vpoller's INI), its
/// endpoints read as the programs bind and connect them, and the settings
/// every agent is given.
pub fn server_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = crate::server::Config::parse(text) else {
        return;
    };
    for endpoint in [
        &config.proxy.frontend,
        &config.proxy.backend,
        &config.proxy.mgmt,
        &config.worker.proxy,
        &config.worker.mgmt,
    ] {
        let _ = Endpoint::parse(endpoint);
    }
    let _ = config.agent_settings().options();
}

/// vpoller-exporter's configuration: the bytes as its YAML file (every
/// section's settings read as the exporter reads them), and the same
/// bytes as `NAME=VALUE` lines of its environment.
pub fn exporter_config(data: &[u8]) {
    use crate::exporter::config::Config;
    let touch = |config: &Config| {
        for section in config.sections() {
            let _ = section.verification();
            let _ = section.unsupported();
        }
        let _ = config.section("default");
        let _ = config.section("no such section");
    };
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = Config::from_yaml(text) {
            touch(&config);
        }
    }
    let text = String::from_utf8_lossy(data);
    let vars = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
    if let Ok(config) = Config::from_env(vars) {
        touch(&config);
    }
}

/// A row of the worker's host registry, its columns separated by NUL
/// bytes: host, user, password, enabled, port, verify (`insecure`,
/// `system`, `ca_file`, `fingerprint`, anything else: unchecked), the CA file's
/// contents and the fingerprint. An empty `enabled` or `port` is NULL.
/// The row is checked as the worker checks it before serving the host
/// (the host name, the port, the fingerprint's form, the CA file's
/// certificates, read from a scratch file holding the column's bytes), and
/// an agent is made for it.
pub fn registry_row(data: &[u8]) {
    let mut columns = parts(data).map(|part| String::from_utf8_lossy(part).into_owned());
    let mut column = || columns.next().unwrap_or_default();
    let (host, user, password) = (column(), column(), column());
    let (enabled, port, verify) = (column(), column(), column());
    let (ca_file, fingerprint) = (column(), column());
    let integer = |text: &str| (!text.is_empty()).then(|| text.trim().parse::<i64>().ok());
    let (Some(enabled), Some(port)) = (integer(&enabled), integer(&port)) else {
        // Text in an integer column: the registry cannot be read.
        return;
    };
    let scratch = std::env::temp_dir().join(format!("vpoller-fuzz-ca-{}.pem", std::process::id()));
    let tls = match verify.as_str() {
        "insecure" => Tls::Insecure,
        "system" => Tls::SystemRoots,
        "ca_file" if std::fs::write(&scratch, ca_file.as_bytes()).is_ok() => {
            Tls::CaFile(scratch.to_string_lossy().into_owned())
        }
        "fingerprint" => Tls::Fingerprint(fingerprint),
        _ => Tls::Unchecked,
    };
    let row = Host {
        host,
        user,
        password,
        enabled: enabled.unwrap_or(0) != 0,
        port: port.and_then(|port| u16::try_from(port).ok()),
        tls,
    };
    let _ = format!("{row:?}");
    if row.check().is_ok() {
        // The certificate checks were made above; the agent is made
        // without them, so that no system roots are loaded per input.
        let options = crate::AgentOptions {
            port: row.port.unwrap_or(443),
            verification: crate::Verification::Insecure,
            ..crate::AgentOptions::default()
        };
        let _ = crate::Agent::with_options(&row.host, &row.user, &row.password, options);
    }
    if matches!(row.tls, Tls::CaFile(_)) {
        let _ = std::fs::remove_file(&scratch);
    }
}

/// A Zabbix item: its key's name (`vpoller` or `vpoller.discovery`), its
/// parameters and vPoller's reply, separated by NUL bytes (the last part is
/// the reply). The request is built from the parameters as the module
/// builds it, and the item's value read from the reply.
pub fn zabbix_key(data: &[u8]) {
    let all: Vec<&[u8]> = parts(data).collect();
    let [key, params @ .., reply] = &all[..] else {
        return;
    };
    let discovery = *key == b"vpoller.discovery";
    let params: Vec<String> = params
        .iter()
        .map(|param| String::from_utf8_lossy(param).into_owned())
        .collect();
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let Ok(request) = crate::zabbix::request(&params) else {
        return;
    };
    let reply = String::from_utf8_lossy(reply);
    let _ = crate::zabbix::item_value(&request, &reply, discovery);
}

/// The long-term secret keys of the `curve` target's server, client and
/// of a client that the server may allow instead. Fixed, so that a run is
/// repeatable and a HELLO recorded from these keys (a seed) opens for the
/// target's server.
const CURVE_SERVER_SECRET: &str = "slMA@DUH<jj9+n*/5k**)3WZ4f1Tt1:1k1ZzfeL6";
const CURVE_CLIENT_SECRET: &str = "38Ul9O(=Dh<bdN=RE7?#QC@/!E^m2%DA{=*%11^B";
const CURVE_OTHER_SECRET: &str = "*?fEx*(cBh!.g6DX>z?.UeZhWHO-0Or+6az4URw(";

/// At most this many parts of a `curve` input are used.
const CURVE_MOST_PARTS: usize = 32;

struct CurveKeys {
    server: Arc<KeyPair>,
    client: Arc<KeyPair>,
    other: PublicKey,
}

fn curve_keys() -> &'static CurveKeys {
    static KEYS: OnceLock<CurveKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = |text| {
            let secret = SecretKey::from_z85(text).expect("a fixed key of the curve target");
            Arc::new(KeyPair::from_secret(secret))
        };
        CurveKeys {
            server: pair(CURVE_SERVER_SECRET),
            client: pair(CURVE_CLIENT_SECRET),
            other: *pair(CURVE_OTHER_SECRET).public(),
        }
    })
}

/// The parts of `data`, each a 2-byte big-endian length and that many
/// bytes (the last one cut short where `data` ends); at most
/// `CURVE_MOST_PARTS`.
fn sized_parts(mut data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while let [high, low, rest @ ..] = data {
        if parts.len() == CURVE_MOST_PARTS {
            break;
        }
        let size = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
        let (part, after) = rest.split_at(size);
        parts.push(part);
        data = after;
    }
    parts
}

/// ZMTP's CURVE mechanism (CurveZMQ) as a peer speaks it, and CURVE keys as
/// text. The first byte is a set of flags, the rest parts, each a 2-byte
/// big-endian length and that many bytes. The parts go, as the peer's
/// commands, to:
/// - a server, as a client's HELLO, INITIATE and then MESSAGE bodies;
/// - a client that sent its HELLO, as a server's WELCOME (or ERROR),
///   READY and then MESSAGE bodies;
/// - a genuine handshake between a client and a server in this process,
///   where the flags' low three bits pick a command that the first part
///   is XOR-ed onto (1 HELLO, 2 WELCOME, 3 INITIATE, 4 READY; bytes past
///   the command's end are appended), bits 6 and 7 the clients the
///   server allows (any; only another key; another key and the client's),
///   the next part is the metadata of the client's INITIATE, and the
///   others, after the handshake, are MESSAGE bodies that neither side
///   may open and frames that each side boxes (with flags from bits 3
///   and 4) for the other.
///
/// Checked on the way: a changed command or box never opens (but HELLO's
/// padding, which no box covers), a key not allowed is refused with its
/// name, the metadata and every frame arrive as they were sent, and a box
/// opens once. The whole input is also read as text: as Z85, each line as
/// a public and a secret key, and as a file of allowed keys; and its bytes,
/// 32 at a time, are keys listed in such a file and read back.
///
/// The long-term keys are fixed (`CURVE_SERVER_SECRET` and the others),
/// the keys of each connection and the server's cookie key are drawn
/// anew: a recorded HELLO opens for the server (the seeds hold the
/// commands of a handshake of these keys), a recorded WELCOME or
/// INITIATE no longer does, which the genuine handshake goes past.
pub fn curve(data: &[u8]) {
    curve_text(data);
    let [flags, rest @ ..] = data else {
        return;
    };
    let parts = sized_parts(rest);
    let (allowed, client_allowed) = curve_allowed(*flags);
    curve_server(&parts, Arc::clone(&allowed));
    curve_client(&parts);
    curve_genuine(*flags, &parts, allowed, client_allowed);
}

/// The clients a server allows, by bits 6 and 7 of `flags`, and whether
/// the target's client is one of them.
fn curve_allowed(flags: u8) -> (Arc<Allowed>, bool) {
    let keys = curve_keys();
    let (list, client_allowed) = match flags >> 6 {
        1 => (Some(vec![keys.other]), false),
        2 => (Some(vec![keys.other, *keys.client.public()]), true),
        _ => (None, true),
    };
    (Arc::new(Allowed::new(list)), client_allowed)
}

/// The peer's metadata (ZMTP properties) read as a connection reads a
/// READY's.
fn read_metadata(metadata: &[u8]) {
    let _ = codec::property(metadata, "Socket-Type");
    let _ = codec::property(metadata, "Identity");
}

/// A server fed `parts` as a client's commands until one fails (the
/// connection is then closed); how many it took.
fn curve_server(parts: &[&[u8]], allowed: Arc<Allowed>) -> usize {
    let keys = curve_keys();
    let security = Security::CurveServer {
        ours: Arc::clone(&keys.server),
        allowed,
    };
    let Ok(mut server) = Curve::new(security) else {
        return 0;
    };
    curve_peer_commands(&mut server, parts, &codec::properties("ROUTER"))
}

/// A client, once it has sent its HELLO, fed `parts` as a server's
/// commands until one fails; how many it took.
fn curve_client(parts: &[&[u8]]) -> usize {
    let keys = curve_keys();
    let security = Security::CurveClient {
        server: *keys.server.public(),
        ours: Arc::clone(&keys.client),
    };
    let Ok(mut client) = Curve::new(security) else {
        return 0;
    };
    assert!(client.hello().starts_with(b"\x05HELLO"), "a client's HELLO");
    curve_peer_commands(&mut client, parts, &codec::properties("REQ"))
}

/// `parts` to `curve` as the peer's handshake commands and then MESSAGE
/// bodies, until one fails; how many it took.
fn curve_peer_commands(curve: &mut Curve, parts: &[&[u8]], metadata: &[u8]) -> usize {
    let mut taken = 0;
    let mut done = false;
    for part in parts {
        if done {
            if curve.open_message(part.to_vec()).is_err() {
                break;
            }
        } else {
            match curve.handshake(part, metadata) {
                Ok(Step::Send(_)) => {}
                Ok(Step::Done { metadata, .. }) => {
                    read_metadata(&metadata);
                    done = true;
                }
                Err(_) => break,
            }
        }
        taken += 1;
    }
    taken
}

/// XORs `mask` onto `command` (the bytes of `mask` past its end are
/// appended); the range of bytes changed, `None` when none was.
fn curve_tamper(command: &mut Vec<u8>, mask: &[u8]) -> Option<Range<usize>> {
    let mut changed: Option<Range<usize>> = None;
    for (at, &bits) in mask.iter().enumerate() {
        if at < command.len() {
            command[at] ^= bits;
            if bits == 0 {
                continue;
            }
        } else {
            command.push(bits);
        }
        let start = changed.as_ref().map_or(at, |range| range.start);
        changed = Some(start..at + 1);
    }
    changed
}

/// A handshake between a client and a server of the target's keys, one
/// command changed by the input or none, then MESSAGE boxes both ways.
fn curve_genuine(flags: u8, parts: &[&[u8]], allowed: Arc<Allowed>, client_allowed: bool) {
    let keys = curve_keys();
    let client = Curve::new(Security::CurveClient {
        server: *keys.server.public(),
        ours: Arc::clone(&keys.client),
    });
    let server = Curve::new(Security::CurveServer {
        ours: Arc::clone(&keys.server),
        allowed,
    });
    let (Ok(mut client), Ok(mut server)) = (client, server) else {
        return;
    };
    let tampered = flags & 7;
    let mut parts = parts.iter().copied();
    let mask = if (1..=4).contains(&tampered) {
        parts.next().unwrap_or_default()
    } else {
        &[]
    };
    let mask_of = |command: u8| if tampered == command { mask } else { &[] };
    let client_metadata = parts
        .next()
        .map_or_else(|| codec::properties("REQ"), <[u8]>::to_vec);
    let server_metadata = codec::properties("ROUTER");

    let mut hello = client.hello();
    let changed = curve_tamper(&mut hello, mask_of(1));
    // The 72 zero bytes after the version, which no box covers.
    let padding_only = changed
        .as_ref()
        .is_some_and(|range| range.start >= 8 && range.end <= 80);
    let opens = changed.is_none() || padding_only;
    let mut welcome = match server.handshake(&hello, &server_metadata) {
        Ok(Step::Send(welcome)) if opens => welcome,
        Err(_) if !opens => return,
        Ok(_) => panic!("a HELLO changed at {changed:?} was taken"),
        Err(failure) => panic!("a genuine HELLO was refused: {}", failure.reason),
    };

    let changed = curve_tamper(&mut welcome, mask_of(2));
    let mut initiate = match client.handshake(&welcome, &client_metadata) {
        Ok(Step::Send(initiate)) if changed.is_none() => initiate,
        Err(_) if changed.is_some() => return,
        Ok(_) => panic!("a WELCOME changed at {changed:?} was taken"),
        Err(failure) => panic!("a genuine WELCOME was refused: {}", failure.reason),
    };

    let changed = curve_tamper(&mut initiate, mask_of(3));
    let mut ready = match server.handshake(&initiate, &server_metadata) {
        Ok(Step::Done {
            metadata,
            reply: Some(ready),
        }) if changed.is_none() && client_allowed => {
            assert_eq!(
                metadata, client_metadata,
                "the client's metadata, as it sent it"
            );
            read_metadata(&metadata);
            ready
        }
        Err(failure) if changed.is_none() && !client_allowed => {
            assert_eq!(
                failure.refused_key.as_ref(),
                Some(keys.client.public()),
                "the key refused is the client's: {}",
                failure.reason
            );
            let refused = client.handshake(&Curve::refusal(), b"");
            assert!(refused.is_err(), "a client takes ERROR 400 as the end");
            return;
        }
        Err(failure) if changed.is_some() => {
            assert!(
                failure.refused_key.is_none(),
                "a changed INITIATE names no key"
            );
            return;
        }
        Ok(_) if changed.is_some() => panic!("an INITIATE changed at {changed:?} was taken"),
        Ok(_) => panic!("a client that is not allowed was let in"),
        Err(failure) => panic!("a genuine INITIATE was refused: {}", failure.reason),
    };

    let changed = curve_tamper(&mut ready, mask_of(4));
    match client.handshake(&ready, b"") {
        Ok(Step::Done {
            metadata,
            reply: None,
        }) if changed.is_none() => {
            assert_eq!(
                metadata, server_metadata,
                "the server's metadata, as it sent it"
            );
        }
        Err(_) if changed.is_some() => return,
        Ok(_) => panic!("a READY changed at {changed:?} was taken"),
        Err(failure) => panic!("a genuine READY was refused: {}", failure.reason),
    }

    let frame_flags = (flags >> 3) & (MORE | COMMAND);
    for part in parts {
        // Boxes of other connections' keys (a seed's): never opened.
        assert!(
            server.open_message(part.to_vec()).is_err(),
            "a box not made here opened"
        );
        assert!(
            client.open_message(part.to_vec()).is_err(),
            "a box not made here opened"
        );
        curve_box_round_trip(&mut client, &mut server, frame_flags, part);
        curve_box_round_trip(&mut server, &mut client, frame_flags, part);
    }
}

/// `frame` boxed by `from` and opened by `to`: as it was sent, once; and
/// the box with one bit flipped (where the frame's bytes pick) before it,
/// refused.
fn curve_box_round_trip(from: &mut Curve, to: &mut Curve, flags: u8, frame: &[u8]) {
    let mut sealed = Vec::new();
    from.sealer()
        .expect("a sealer once the handshake is done")
        .push_body(&mut sealed, flags, frame);
    assert_eq!(
        sealed.len(),
        MESSAGE_OVERHEAD + frame.len(),
        "a MESSAGE box's size"
    );
    let seed = frame.iter().fold(frame.len() as u64, |hash, &byte| {
        hash.wrapping_mul(31) ^ u64::from(byte)
    });
    let mut numbers = Numbers::new(seed);
    let mut flipped = sealed.clone();
    let at = numbers.up_to(flipped.len()) - 1;
    flipped[at] ^= 1 << (numbers.next() % 8);
    assert!(
        to.open_message(flipped).is_err(),
        "a box with byte {at} changed opened"
    );
    let opened = to.open_message(sealed.clone());
    assert_eq!(
        opened,
        Ok((flags, frame.to_vec())),
        "a frame as it was sent"
    );
    assert!(to.open_message(sealed).is_err(), "a box opened twice");
}

/// The input as CURVE key text: Z85 (which must encode back to the same
/// text), each line as a public and a secret key, a file of allowed keys;
/// and its bytes, 32 at a time, as keys listed in such a file (some with a
/// comment after them, under a comment line), which must read back.
fn curve_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = keys::z85_decode(&text) {
        assert_eq!(bytes.len(), text.len() / 5 * 4, "4 bytes per 5 characters");
        assert_eq!(
            keys::z85_encode(&bytes).as_deref(),
            Some(&*text),
            "Z85 both ways"
        );
    }
    let mut pair_made = false;
    for line in text.lines().take(CURVE_MOST_PARTS) {
        let public = PublicKey::from_z85(line);
        let secret = SecretKey::from_z85(line);
        assert_eq!(
            public.is_ok(),
            secret.is_ok(),
            "a public and a secret key read alike"
        );
        if let (Ok(public), Ok(secret)) = (public, secret) {
            assert_eq!(public.to_z85(), line.trim(), "a key's text");
            assert_eq!(&secret.to_z85(), line.trim(), "a key's text");
            if !pair_made {
                // One key pair per input: the public key is computed.
                pair_made = true;
                let pair = KeyPair::from_secret(secret.clone());
                assert!(
                    KeyPair::from_keys(*pair.public(), secret).is_ok(),
                    "a pair's keys"
                );
            }
        }
    }
    if let Ok(listed) = keys::parse_allowed_keys(&text) {
        assert!(
            listed.len() <= text.lines().count(),
            "at most a key per line"
        );
    }
    let listed: Vec<PublicKey> = data
        .chunks_exact(32)
        .take(CURVE_MOST_PARTS)
        .map(|chunk| {
            let mut key = [0u8; 32];
            key.copy_from_slice(chunk);
            PublicKey::from_bytes(key)
        })
        .collect();
    let mut file = String::from("# the clients allowed\n\n");
    for (number, key) in listed.iter().enumerate() {
        file.push_str(&key.to_z85());
        if number % 2 == 1 {
            file.push_str("  # client ");
            file.push_str(&number.to_string());
        }
        file.push('\n');
    }
    assert_eq!(
        keys::parse_allowed_keys(&file),
        Ok(listed),
        "keys listed and read back:\n{file}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve_seed(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/curve")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// The recorded commands in the seeds are of the target's keys: the
    /// server takes a recorded HELLO, but not the INITIATE recorded with
    /// it (its cookie is another connection's), and a client takes no
    /// recorded WELCOME (it is boxed to another connection's key).
    #[test]
    fn curve_seeds_hold_a_handshake_of_the_targets_keys() {
        let any = || Arc::new(Allowed::new(None));
        let client_commands = curve_seed("client-commands");
        let parts = sized_parts(&client_commands[1..]);
        assert_eq!(parts.len(), 5);
        assert!(parts[0].starts_with(b"\x05HELLO") && parts[1].starts_with(b"\x08INITIATE"));
        assert_eq!(curve_server(&parts, any()), 1);
        let server_commands = curve_seed("server-commands");
        let parts = sized_parts(&server_commands[1..]);
        assert!(parts[0].starts_with(b"\x07WELCOME") && parts[1].starts_with(b"\x05READY"));
        assert_eq!(curve_client(&parts), 0);
        let stranger = curve_seed("hello-for-another-server");
        assert_eq!(curve_server(&sized_parts(&stranger[1..]), any()), 0);
        let cut = curve_seed("hello-cut-short");
        assert_eq!(curve_server(&sized_parts(&cut[1..]), any()), 0);
    }

    #[test]
    fn zmtp_curve_seeds_reach_what_they_are_named_for() {
        let taken = |name: &str| {
            let path = format!(
                "{}/fuzz/corpus/zmtp_curve/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let data = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
            curve_connections(data[0], u64::from(data[1]), &data[2..])
        };
        assert_eq!(taken("router-message-of-three-frames"), 3);
        assert_eq!(taken("router-box-as-command-frame"), 2);
        assert_eq!(taken("rep-request-with-delimiter"), 2);
        assert_eq!(taken("router-ping-in-a-box"), 2);
        assert_eq!(taken("client-gets-ping-and-frames"), 3);
        assert_eq!(taken("flags-beyond-more"), 2);
        assert_eq!(taken("unknown-command-in-a-box"), 2);
        // The connection that gets them ends there.
        assert_eq!(taken("error-command-in-a-box"), 0);
        assert_eq!(taken("flipped-box"), 1);
        assert_eq!(taken("replayed-box"), 1);
        assert_eq!(taken("replayed-box-to-client"), 1);
        assert_eq!(taken("ready-after-handshake"), 0);
    }

    #[test]
    fn sized_parts_and_tampering() {
        let parts = sized_parts(b"\x00\x02ab\x00\x00\x00\x05cd");
        assert_eq!(parts, [&b"ab"[..], b"", b"cd"]);
        assert_eq!(sized_parts(b"\x00"), Vec::<&[u8]>::new());
        let many = [0u8; 2 * CURVE_MOST_PARTS + 2];
        assert_eq!(sized_parts(&many).len(), CURVE_MOST_PARTS);
        let mut command = b"\x05HELLO".to_vec();
        assert_eq!(curve_tamper(&mut command, b"\x00\x00"), None);
        assert_eq!(curve_tamper(&mut command, b"\x00\x01\x00\x02"), Some(1..4));
        assert_eq!(command, b"\x05IENLO");
        assert_eq!(
            curve_tamper(&mut command, b"\x00\x00\x00\x00\x00\x00\x00"),
            Some(6..7)
        );
        assert_eq!(command, b"\x05IENLO\x00");
    }
}
