//! The API documentation's local example in Rust: run vPoller tasks in this
//! process, straight against a vSphere host.
//!
//!     cargo run --example local -- HOST[:PORT] USER PASSWORD [--insecure] [MSG...]

use vpoller::{Agent, AgentOptions, Verification};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let insecure = args.iter().any(|arg| arg == "--insecure");
    args.retain(|arg| arg != "--insecure");
    if args.len() < 3 {
        eprintln!("usage: local HOST[:PORT] USER PASSWORD [--insecure] [MSG...]");
        std::process::exit(64);
    }
    let mut options = AgentOptions::default();
    if insecure {
        options.verification = Verification::Insecure;
    }
    let agent = match Agent::with_options(&args[0], &args[1], &args[2], options) {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = agent.connect() {
        eprintln!("cannot connect: {error}");
        std::process::exit(2);
    }
    let messages: Vec<String> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        vec![r#"{"method": "vm.discover"}"#.to_owned()]
    };
    for msg in messages {
        println!("{}", agent.run(&msg));
    }
}
