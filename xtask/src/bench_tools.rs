//! What `cargo xtask bench` needs besides the harness for the sections
//! that load a real server from outside (`http`, `scale`, `soak`, and the
//! drill): the release `custody` binary, `wrk` (Debian's package, installed
//! with apt-get when missing) and PostgreSQL for the `postgres` and `http`
//! sections.

use std::process::Command;

/// Whether the benchmarks selected by `CUSTODY_BENCH_ONLY` (`only`; all
/// when unset) run the release `custody` binary.
pub(crate) fn needs_custody(only: Option<&str>) -> bool {
    matches!(only, None | Some("drill" | "http" | "scale" | "soak"))
}

/// Whether they run `wrk`.
pub(crate) fn needs_wrk(only: Option<&str>) -> bool {
    matches!(only, None | Some("http" | "soak"))
}

/// Whether they need PostgreSQL.
pub(crate) fn needs_postgres(only: Option<&str>) -> bool {
    matches!(only, None | Some("http" | "postgres"))
}

/// Installs `wrk` with apt-get when it is not on the PATH.
pub(crate) fn ensure_wrk() -> Result<(), String> {
    let present = Command::new("wrk").arg("--version").output().is_ok();
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing wrk for the HTTP benchmarks");
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    crate::run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    crate::run(install)
}
