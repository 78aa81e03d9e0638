//! A lean stand-in for benchmarks: the stand-in's answers spoken in ZMTP 3.0
//! over plain TCP, one thread per connection, no libzmq.
//!
//! A libzmq server adds two thread hand-offs to every round trip (its I/O
//! thread and the thread that owns the socket); on a small machine those
//! dominate the time of a request and hide what a client costs. Here the
//! connection's own thread reads the request and writes the reply.
//!
//! It plays a ROUTER with the NULL mechanism towards REQ and DEALER clients:
//! each request is `[empty delimiter][json]`, each reply the same envelope.

use crate::{plan, Plan};
use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// Starts the lean responder on `127.0.0.1:port` (0: a free port) and
/// returns its endpoint; it serves until the process ends.
pub fn start(port: u16) -> io::Result<String> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let endpoint = format!("tcp://{}", listener.local_addr()?);
    let drops = Arc::new(Mutex::new(HashMap::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let drops = Arc::clone(&drops);
            std::thread::spawn(move || {
                // A peer that breaks the protocol or hangs up just ends its connection.
                let _ = serve(stream, &drops);
            });
        }
    });
    Ok(endpoint)
}

fn serve(stream: TcpStream, drops: &Mutex<HashMap<Vec<u8>, u64>>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);

    // Greeting: signature, version 3.0, mechanism NULL, not as-server, filler.
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    writer.write_all(&greeting)?;
    writer.flush()?;
    let mut peer = [0u8; 64];
    reader.read_exact(&mut peer)?;
    if peer[0] != 0xff || peer[9] != 0x7f || peer[10] < 3 || &peer[12..16] != b"NULL" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a ZMTP 3 NULL peer",
        ));
    }

    // NULL handshake: each side sends READY with its socket type.
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&6u32.to_be_bytes());
    ready.extend_from_slice(b"ROUTER");
    write_frame(&mut writer, COMMAND, &ready)?;
    writer.flush()?;

    loop {
        // One message: data frames up to the one without MORE; commands
        // (the peer's READY, heartbeats) are not part of it.
        let mut frames = Vec::new();
        loop {
            let (flags, body) = read_frame(&mut reader)?;
            if flags & COMMAND != 0 {
                continue;
            }
            frames.push(body);
            if flags & MORE == 0 {
                break;
            }
        }
        let Some(request) = frames.last() else {
            continue;
        };
        if let Plan::Reply { after, body } = plan(request, drops) {
            if !after.is_zero() {
                std::thread::sleep(after);
            }
            write_frame(&mut writer, MORE, &[])?;
            write_frame(&mut writer, 0, &body)?;
            writer.flush()?;
        }
    }
}

fn read_frame(reader: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut flags = [0u8; 1];
    reader.read_exact(&mut flags)?;
    let size = if flags[0] & LONG != 0 {
        let mut size = [0u8; 8];
        reader.read_exact(&mut size)?;
        u64::from_be_bytes(size)
    } else {
        let mut size = [0u8; 1];
        reader.read_exact(&mut size)?;
        u64::from(size[0])
    };
    let size = usize::try_from(size)
        .ok()
        .filter(|&size| size <= 1 << 30)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body)?;
    Ok((flags[0], body))
}

fn write_frame(writer: &mut impl Write, flags: u8, body: &[u8]) -> io::Result<()> {
    match u8::try_from(body.len()) {
        Ok(size) => writer.write_all(&[flags, size])?,
        Err(_) => {
            writer.write_all(&[flags | LONG])?;
            writer.write_all(&(body.len() as u64).to_be_bytes())?;
        }
    }
    writer.write_all(body)
}
