//! Architecture invariant: `custody-core` does no IO. It links no async
//! runtime, no network or HTTP stack, no TLS and no database driver, however
//! deep in its dependency tree, so that every rule and every audit check in
//! it is a pure function of its input and can be tested without a server.
//!
//! Reads the resolved dependency graph (`cargo metadata`, from the lock file,
//! offline, for the host platform) and walks the normal dependencies of `custody-core` transitively;
//! dev-dependencies are the tests' business.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that do IO, or exist only to carry it.
const IO_CRATES: &[&str] = &[
    // async runtimes and the OS's sockets and event loops
    "tokio",
    "async-std",
    "smol",
    "mio",
    "socket2",
    // HTTP clients and servers
    "reqwest",
    "hyper",
    "hyper-util",
    "h2",
    "axum",
    "tower",
    "tower-http",
    // TLS
    "rustls",
    "native-tls",
    "openssl",
    // databases
    "sqlx",
    "sqlx-core",
    "libsqlite3-sys",
    "tokio-postgres",
    // the workspace's own IO crates
    "custody-store",
    "custody-server",
    "custody-evidence",
    "custody-notify",
    "custody-client",
];

/// The names of every crate `custody-core` links, transitively, through
/// normal dependencies.
fn linked_by_core() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    // The graph for the platform the tests run on: the others' crates are
    // not downloaded, and offline they cannot be.
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string()))
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            (
                package["id"].as_str().expect("an id"),
                package["name"].as_str().expect("a name"),
            )
        })
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("the resolved graph")
        .iter()
        .map(|node| (node["id"].as_str().expect("an id"), node))
        .collect();
    let core = names
        .iter()
        .find(|(_, name)| **name == "custody-core")
        .map(|(id, _)| *id)
        .expect("custody-core is in the workspace");
    let mut linked = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut pending = vec![core];
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dependency in nodes[id]["deps"].as_array().into_iter().flatten() {
            // A normal dependency has a `dep_kinds` entry whose kind is null
            // ("dev" and "build" are the others).
            let normal = dependency["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].is_null());
            if normal {
                let id = dependency["pkg"].as_str().expect("a package id");
                linked.insert(names[id].to_string());
                pending.push(id);
            }
        }
    }
    linked
}

#[test]
fn custody_core_links_no_io_crate() {
    let linked = linked_by_core();
    // The walk found the graph: the core's own dependencies are in it.
    for expected in ["serde_json", "sha2", "custody-log"] {
        assert!(
            linked.contains(expected),
            "{expected} missing from {linked:?}"
        );
    }
    let io: Vec<&str> = IO_CRATES
        .iter()
        .copied()
        .filter(|name| linked.contains(*name))
        .collect();
    assert!(
        io.is_empty(),
        "custody-core must do no IO, but links {io:?}; move the IO to the store, the server or the binary"
    );
}
