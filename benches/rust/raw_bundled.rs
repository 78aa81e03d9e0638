//! The raw REQ loop of benches/c/loop_rawzmq.c over the libzmq bundled in
//! libvpoller (the zmq crate), to tell libzmq's build apart from libvpoller's
//! own work. Usage: bench-raw-bundled ENDPOINT CALLS; prints seconds per call.

use std::time::Instant;

const MSG: &[u8] = br#"{"method": "vm.get", "hostname": "vc01.example.org", "name": "vm01", "properties": ["runtime.powerState"]}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (endpoint, calls): (&str, u32) = match args.as_slice() {
        [_, endpoint, calls] => (endpoint, calls.parse().expect("CALLS is a number")),
        _ => {
            eprintln!("usage: bench-raw-bundled ENDPOINT CALLS");
            std::process::exit(64);
        }
    };
    let context = zmq::Context::new();
    let socket = context.socket(zmq::REQ).expect("socket");
    socket.set_linger(0).expect("linger");
    socket.connect(endpoint).expect("connect");
    let mut reply = zmq::Message::new();
    let mut exchange = || {
        socket.send(MSG, 0).expect("send");
        socket.recv(&mut reply, 0).expect("recv");
    };
    for _ in 0..100 {
        exchange();
    }
    let started = Instant::now();
    for _ in 0..calls {
        exchange();
    }
    println!("{:.9}", started.elapsed().as_secs_f64() / f64::from(calls));
}
