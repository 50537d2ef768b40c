//! `cargo xtask tamper --mutations N [--seed S] [--verbose] [--keep DIR]
//! [--json]`: the tamper campaign (issue 17). It builds `custody-tamper`
//! (in `crates/custody-bench`) in release mode and runs it; the campaign
//! builds a realistic data directory through a real server, applies N
//! random mutations behind the store's back, one per copy, and reports how
//! many `custody verify` caught (see `docs/tamper.md`).

use crate::{cargo, run};

pub fn tamper(extra: &[String]) -> Result<(), String> {
    let mut command = cargo();
    command
        .args([
            "run",
            "--release",
            "--locked",
            "--package",
            "custody-bench",
            "--bin",
            "custody-tamper",
            "--",
        ])
        .args(extra);
    run(command)
}
