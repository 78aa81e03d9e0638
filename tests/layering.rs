//! The rooms of the library and what each may use: data flows one way
//! (C and the programs, then the client, the server and the local mode,
//! then hosts, helpers and the agent, then vSphere and the transport), and
//! a lower room never uses a higher one. README's layout section lists the
//! same table.

use std::collections::BTreeSet;
use std::path::Path;

/// Each room (a top-level module of `src/`) and the rooms it may use
/// through `crate::`.
const ROOMS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("sync", &[]),
    ("fork", &[]),
    ("test_hooks", &["sync"]),
    ("curve", &["error"]),
    ("transport", &["curve", "error", "sync"]),
    ("vsphere", &["error", "sync", "fork"]),
    ("agent", &["vsphere", "error", "sync", "fork", "test_hooks"]),
    ("helpers", &["agent", "test_hooks"]),
    (
        "hosts",
        &["agent", "vsphere", "error", "sync", "test_hooks"],
    ),
    ("local", &["hosts", "agent", "error"]),
    ("client", &["transport", "curve", "fork", "sync", "error"]),
    ("zabbix", &["helpers", "agent"]),
    (
        "server",
        &[
            "transport",
            "curve",
            "hosts",
            "agent",
            "vsphere",
            "helpers",
            "client",
            "error",
            "sync",
            "test_hooks",
        ],
    ),
    ("exporter", &["agent", "vsphere", "server", "error", "sync"]),
    (
        "capi",
        &[
            "client", "curve", "agent", "vsphere", "local", "zabbix", "error",
        ],
    ),
    // The fuzz targets' entry points drive every parser.
    (
        "fuzzing",
        &[
            "curve",
            "transport",
            "agent",
            "vsphere",
            "hosts",
            "helpers",
            "zabbix",
            "server",
            "exporter",
            "error",
        ],
    ),
];

/// The room of a name the crate's root re-exports.
fn room_of(name: &str) -> &str {
    match name {
        "Error" | "NO_REPLY_MSG" => "error",
        "Client" | "ClientOption" | "reply_success" | "DEFAULT_ENDPOINT" | "DEFAULT_RETRIES"
        | "DEFAULT_TIMEOUT_MS" => "client",
        "Agent" | "AgentOptions" => "agent",
        "Verification" => "vsphere",
        other => other,
    }
}

/// The rooms `text` uses through `crate::`.
fn used(text: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|character| character.is_alphanumeric() || *character == '_')
            .collect();
        if !name.is_empty() {
            rooms.insert(room_of(&name).to_owned());
        }
    }
    rooms
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_room_uses_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut seen_rooms = BTreeSet::new();
    let mut breaches = Vec::new();
    for path in &all {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let room = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        if room == "lib" || room == "bin" {
            continue;
        }
        let Some((_, allowed)) = ROOMS.iter().find(|(name, _)| *name == room) else {
            panic!("{} is in no room of the table", relative.display());
        };
        seen_rooms.insert(room.clone());
        let text = std::fs::read_to_string(path).unwrap();
        for other in used(&text) {
            if other != room && !allowed.contains(&other.as_str()) {
                breaches.push(format!("{} uses {other}", relative.display()));
            }
        }
    }
    assert!(breaches.is_empty(), "{breaches:#?}");
    // Every room of the table exists (a renamed room updates the table).
    let listed: BTreeSet<String> = ROOMS.iter().map(|(name, _)| (*name).to_owned()).collect();
    assert_eq!(seen_rooms, listed);
}

#[test]
fn the_programs_use_the_public_api_only() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut all = Vec::new();
    files(&bin, &mut all);
    assert!(!all.is_empty());
    for path in all {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("crate::"), "{}", path.display());
    }
}
