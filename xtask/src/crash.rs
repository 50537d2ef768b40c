//! `cargo xtask crash`: the crash campaign (issue 17). It builds the
//! `custody` binary and the campaign's driver (`custody-crash`, in
//! crates/custody-bench) and runs the driver, which starts `custody serve`
//! under concurrent load, kills it with SIGKILL at random moments, restarts
//! it and checks that nothing acknowledged is lost (docs/crash.md).
//!
//! `--release` builds both in release mode (the default is the debug
//! profile, which the tests share); every other argument goes to the driver
//! (`--runs N`, `--store sqlite|postgres`, `--seed S`, `--seconds-per-run N`,
//! `--max-seconds N`, `--workers N`). With `--store postgres` the campaign's
//! database is created on `CUSTODY_TEST_DATABASE_URL`'s server (found or
//! started first).

use std::path::PathBuf;
use std::process::Command;

pub fn crash(extra: &[String]) -> Result<(), String> {
    let release = extra.iter().any(|argument| argument == "--release");
    let forwarded: Vec<&String> = extra
        .iter()
        .filter(|argument| *argument != "--release")
        .collect();
    let postgres = forwarded
        .windows(2)
        .any(|pair| pair[0] == "--store" && pair[1].starts_with("postgres"));
    if postgres {
        super::ensure_postgres()?;
    }
    let mut build = super::cargo();
    build.args([
        "build",
        "--locked",
        "--package",
        "custody",
        "--bin",
        "custody",
    ]);
    build.args(["--package", "custody-bench", "--bin", "custody-crash"]);
    if release {
        build.arg("--release");
    }
    super::run(build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map_or_else(|| PathBuf::from("target"), |root| root.join("target"))
        },
        PathBuf::from,
    );
    let profile = target.join(if release { "release" } else { "debug" });
    let mut driver = Command::new(profile.join("custody-crash"));
    driver.arg("--custody").arg(profile.join("custody"));
    driver.args(forwarded);
    if std::env::var_os("CUSTODY_TEST_DATABASE_URL").is_none() {
        driver.env("CUSTODY_TEST_DATABASE_URL", super::TEST_DATABASE_URL);
    }
    super::run(driver)
}
