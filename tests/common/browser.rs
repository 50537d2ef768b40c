//! The browser harness: a Node script under `tests/browser/` (committed)
//! drives Debian's Chromium headless with playwright-core, and returns a
//! JSON result; axe-core is injected into pages for accessibility checks.
//!
//! `cargo xtask test` installs playwright-core and axe-core, pinned, with
//! npm under `target/browser-tools` (exported as `CUSTODY_BROWSER_TOOLS`),
//! and Debian's `chromium` with apt. Node, the tools or Chromium missing is
//! a failure that says how to install them, never a skip.
//!
//! A script imports `./harness.mjs` and calls `run(async (page, context) =>
//! ...)`; what the journey returns is [`Journey::result`]. Screenshots are
//! kept under `target/tmp/browser/<artefacts>/` as test artefacts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a journey script reported.
#[derive(Debug)]
pub struct Journey {
    /// What the journey returned.
    pub result: Value,
    /// The screenshots it took.
    pub screenshots: Vec<PathBuf>,
    /// Errors the pages logged to the console or threw.
    pub console_errors: Vec<String>,
}

/// Where the npm packages are: `$CUSTODY_BROWSER_TOOLS`, or where `cargo
/// xtask test` installs them.
pub fn tools() -> PathBuf {
    let tools = std::env::var_os("CUSTODY_BROWSER_TOOLS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-tools"),
        PathBuf::from,
    );
    for package in ["playwright-core", "axe-core"] {
        assert!(
            tools.join("node_modules").join(package).join("package.json").exists(),
            "{package} is not installed under {}: run `cargo xtask test`, which installs it with npm (pinned), or `npm install --prefix {} playwright-core axe-core` and set CUSTODY_BROWSER_TOOLS",
            tools.display(),
            tools.display()
        );
    }
    tools
}

/// Debian's Chromium: `$CUSTODY_CHROMIUM`, or `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let program = std::env::var_os("CUSTODY_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        program.exists(),
        "{} is missing: install Debian's chromium (`cargo xtask test` does: apt-get install chromium) or set CUSTODY_CHROMIUM",
        program.display()
    );
    program
}

/// Node.js, which runs the scripts.
fn node() -> PathBuf {
    let node = PathBuf::from("node");
    let runs = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        runs,
        "node does not run: install Node.js (apt-get install nodejs npm)"
    );
    node
}

/// The directory screenshots of `artefacts` are kept in, emptied first.
pub fn screenshot_dir(artefacts: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(artefacts);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Runs `tests/browser/<script>` starting at `base_url`, with `params`;
/// screenshots go to [`screenshot_dir`]`(artefacts)`. Panics, with the
/// script's error, output and failure screenshot, when the journey failed.
pub fn run(script: &str, base_url: &str, artefacts: &str, params: Value) -> Journey {
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    assert!(script_path.exists(), "no script {}", script_path.display());
    let screenshots = screenshot_dir(artefacts);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let result_path = scratch.path().join("result.json");
    let input = json!({
        "tools": tools(),
        "chromium": chromium(),
        "base_url": base_url,
        "screenshots": screenshots,
        "result": result_path,
        "params": params,
    });
    let mut child = Command::new(node())
        .arg(&script_path)
        .env("CUSTODY_BROWSER_INPUT", input.to_string())
        // Chromium's profile and crash files stay in the scratch directory.
        .env("HOME", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} ran longer than {SCRIPT_TIMEOUT:?}; screenshots in {}",
                screenshots.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let report: Value = std::fs::read(&result_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| {
            panic!("{script} wrote no result ({status}):\nstdout:\n{out}\nstderr:\n{err}")
        });
    assert!(
        report["ok"] == true,
        "{script} failed: {}\nscreenshots in {}\nconsole errors: {}\nstderr:\n{err}",
        report["error"].as_str().unwrap_or("?"),
        screenshots.display(),
        report["console_errors"]
    );
    Journey {
        result: report["result"].clone(),
        screenshots: report["screenshots"]
            .as_array()
            .map(|shots| {
                shots
                    .iter()
                    .filter_map(Value::as_str)
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default(),
        console_errors: report["console_errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The violations of `impact` (`critical`, `serious`, `moderate`, `minor`)
/// in what the harness's `axe()` returned.
pub fn violations<'a>(axe: &'a Value, impact: &str) -> Vec<&'a Value> {
    axe[impact]
        .as_array()
        .map(|list| list.iter().collect())
        .unwrap_or_default()
}

/// Fails, listing them, when axe found serious or critical violations.
pub fn assert_no_serious_violations(axe: &Value, page: &str) {
    assert!(axe.is_object(), "no axe-core result for {page}: {axe}");
    let blocking: Vec<&Value> = ["critical", "serious"]
        .iter()
        .flat_map(|impact| violations(axe, impact))
        .collect();
    assert!(
        blocking.is_empty(),
        "axe-core finds serious or critical violations on {page}: {}",
        serde_json::to_string_pretty(&blocking).unwrap_or_default()
    );
}

/// Fails when a screenshot is missing, not a PNG, or too small to show
/// anything.
pub fn assert_screenshot(path: &Path) {
    let png = std::fs::read(path)
        .unwrap_or_else(|error| panic!("screenshot {}: {error}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        png.len() > 10_000,
        "{} ({} bytes) is blank",
        path.display(),
        png.len()
    );
}
