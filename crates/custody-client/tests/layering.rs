//! Architecture invariant: a client of the API links no HTTP server
//! framework and no database driver. Reads the manifests of this crate and
//! of every workspace crate it depends on by path, transitively, and checks
//! the normal dependencies (dev-dependencies are the tests' business).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Crates a client must not link: the server's framework and the store's
/// database driver, and the crates that bring them.
const FORBIDDEN: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "tower-http",
    "utoipa-axum",
    "sqlx",
    "custody-server",
    "custody-store",
];

/// The `[dependencies]` of a manifest: each name, and its path when it is a
/// workspace crate.
fn dependencies(manifest: &Path) -> Vec<(String, Option<PathBuf>)> {
    let text = std::fs::read_to_string(manifest).expect("the manifest is readable");
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, spec)) = line.split_once('=') else {
            continue;
        };
        let path = spec
            .split_once("path = \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(path, _)| manifest.parent().expect("a directory").join(path));
        found.push((name.trim().to_string(), path));
    }
    found
}

#[test]
fn the_client_links_no_server_framework_and_no_database_driver() {
    let mut pending = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    let mut seen = BTreeSet::new();
    let mut linked = BTreeSet::new();
    while let Some(directory) = pending.pop() {
        if !seen.insert(directory.clone()) {
            continue;
        }
        for (name, path) in dependencies(&directory.join("Cargo.toml")) {
            linked.insert(name);
            if let Some(path) = path {
                pending.push(path);
            }
        }
    }
    assert!(
        linked.contains("custody-api") && linked.contains("custody-core"),
        "the manifests were not read: {linked:?}"
    );
    let forbidden: Vec<&String> = linked
        .iter()
        .filter(|name| FORBIDDEN.contains(&name.as_str()))
        .collect();
    assert!(
        forbidden.is_empty(),
        "custody-client links {forbidden:?} through {seen:?}"
    );
}
