//! Checks every RFC 6962 proof vector of transparency-dev/merkle under
//! `shared/testdata/merkle`, read in place, plus the README's root table.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use custody_log::{leaf_hash, verify_consistency, verify_inclusion, Hash, MemoryTree};
use serde_json::Value;

/// The eight leaf inputs the vectors' trees are built from (README.md).
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn load(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path:?}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A vector's hash field, or `None` if it is not base64 of exactly 32 bytes
/// (several negative vectors use empty or garbage hashes on purpose).
fn hash_field(v: &Value) -> Option<Hash> {
    let bytes = STANDARD.decode(v.as_str()?).ok()?;
    bytes.try_into().ok()
}

/// A vector's proof: `null` is the empty proof; any malformed element makes
/// the whole proof unrepresentable, which a verifier must reject.
fn proof_field(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash_field).collect(),
        _ => None,
    }
}

fn want_err(v: &Value) -> bool {
    v["wantErr"].as_bool().expect("wantErr is a bool")
}

fn our_tree() -> MemoryTree {
    MemoryTree::from_leaf_hashes(LEAVES.iter().map(|h| leaf_hash(&unhex(h))))
}

#[test]
fn inclusion_vectors() {
    let files = json_files(&testdata().join("merkle/inclusion"));
    assert!(
        files.len() >= 60,
        "found only {} inclusion vectors",
        files.len()
    );
    let tree = our_tree();
    let (mut accepted, mut rejected, mut compared) = (0, 0, 0);
    for path in &files {
        let v = load(path);
        let result = (|| {
            let index = v["leafIdx"].as_u64()?;
            let size = v["treeSize"].as_u64()?;
            let root = hash_field(&v["root"])?;
            let leaf = hash_field(&v["leafHash"])?;
            let proof = proof_field(&v["proof"])?;
            Some((
                index,
                size,
                root,
                leaf,
                proof.clone(),
                verify_inclusion(&leaf, index, size, &proof, &root),
            ))
        })();
        let ok = matches!(result, Some((.., Ok(()))));
        assert_eq!(
            ok,
            !want_err(&v),
            "{path:?} ({}): result {:?}",
            v["desc"],
            result.as_ref().map(|r| &r.5)
        );
        if ok {
            accepted += 1;
        } else {
            rejected += 1;
        }
        // Our generated proof must equal every accepted vector built from
        // the README's eight leaves.
        if let Some((index, size, root, leaf, proof, Ok(()))) = result {
            if size <= tree.size() && tree.root_at(size).unwrap() == root {
                assert_eq!(tree.leaf_hash(index), Some(leaf), "{path:?}");
                assert_eq!(
                    tree.inclusion_proof(index, size).unwrap(),
                    proof,
                    "{path:?}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(accepted + rejected, files.len());
    assert!(
        accepted >= 5 && rejected >= 50,
        "{accepted} accepted, {rejected} rejected"
    );
    assert!(compared >= 4, "compared only {compared} generated proofs");
    eprintln!(
        "inclusion: {} vectors, {accepted} accepted, {rejected} rejected, {compared} generated proofs compared",
        files.len()
    );
}

#[test]
fn consistency_vectors() {
    let files = json_files(&testdata().join("merkle/consistency"));
    assert!(
        files.len() >= 50,
        "found only {} consistency vectors",
        files.len()
    );
    let tree = our_tree();
    let (mut accepted, mut rejected, mut compared) = (0, 0, 0);
    for path in &files {
        let v = load(path);
        let result = (|| {
            let size1 = v["size1"].as_u64()?;
            let size2 = v["size2"].as_u64()?;
            let root1 = hash_field(&v["root1"])?;
            let root2 = hash_field(&v["root2"])?;
            let proof = proof_field(&v["proof"])?;
            Some((
                size1,
                size2,
                root1,
                root2,
                proof.clone(),
                verify_consistency(size1, size2, &root1, &root2, &proof),
            ))
        })();
        let ok = matches!(result, Some((.., Ok(()))));
        assert_eq!(
            ok,
            !want_err(&v),
            "{path:?} ({}): result {:?}",
            v["desc"],
            result.as_ref().map(|r| &r.5)
        );
        if ok {
            accepted += 1;
        } else {
            rejected += 1;
        }
        if let Some((size1, size2, root1, root2, proof, Ok(()))) = result {
            if size2 <= tree.size() && tree.root_at(size2).unwrap() == root2 {
                assert_eq!(tree.root_at(size1).unwrap(), root1, "{path:?}");
                assert_eq!(
                    tree.consistency_proof(size1, size2).unwrap(),
                    proof,
                    "{path:?}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(accepted + rejected, files.len());
    assert!(
        accepted >= 4 && rejected >= 50,
        "{accepted} accepted, {rejected} rejected"
    );
    assert!(compared >= 4, "compared only {compared} generated proofs");
    eprintln!(
        "consistency: {} vectors, {accepted} accepted, {rejected} rejected, {compared} generated proofs compared",
        files.len()
    );
}

#[test]
fn all_vector_files_are_covered() {
    // Both walks above must see every JSON file under merkle/.
    let all = json_files(&testdata().join("merkle"));
    let inclusion = json_files(&testdata().join("merkle/inclusion"));
    let consistency = json_files(&testdata().join("merkle/consistency"));
    assert_eq!(all.len(), inclusion.len() + consistency.len());
}

#[test]
fn readme_root_table() {
    let readme = fs::read_to_string(testdata().join("README.md")).expect("README.md");
    let mut rows = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, size, root, _] = cells.as_slice() {
            if let Ok(size) = size.parse::<u64>() {
                if root.len() == 64 && root.bytes().all(|b| b.is_ascii_hexdigit()) {
                    rows.push((size, root.to_string()));
                }
            }
        }
    }
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..=8).collect::<Vec<_>>(),
        "README table rows"
    );
    let leaves: Vec<Hash> = LEAVES.iter().map(|h| leaf_hash(&unhex(h))).collect();
    let tree = our_tree();
    for (size, root) in rows {
        let flat = custody_log::root_from_leaf_hashes(&leaves[..usize::try_from(size).unwrap()]);
        assert_eq!(hex(&flat), root, "flat root of size {size}");
        assert_eq!(
            hex(&tree.root_at(size).unwrap()),
            root,
            "tree root of size {size}"
        );
    }
}
