//! `vpoller-fake-vsphere [--vms N] [--page P]`: a fake vSphere SOAP server
//! on a free loopback port with N virtual machines (25 000) handed out P at a
//! time (1 000), for the agent's memory benchmark. Prints `127.0.0.1:PORT`,
//! then serves until killed. Certificate: tests/certs (use "insecure").

use std::time::Duration;
use vpoller_standin::fake_vsphere;

fn main() {
    let mut vms = 25_000;
    let mut page = 1_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|value| value.parse().ok());
        match (flag.as_str(), value) {
            ("--vms", Some(value)) => vms = value,
            ("--page", Some(value)) => page = value,
            _ => {
                eprintln!("usage: vpoller-fake-vsphere [--vms N] [--page P]");
                std::process::exit(64);
            }
        }
    }
    let server = fake_vsphere::paged_inventory(vms, page);
    println!("{}", server.host());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
