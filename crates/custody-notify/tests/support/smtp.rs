//! A real SMTP server for tests: Python's aiosmtpd, installed by the test
//! itself when missing.
//!
//! aiosmtpd is found, in this order: importable by `python3` as it is; in
//! `$TMPDIR/custody-aiosmtpd` (from an earlier run); else installed there
//! with `python3 -m pip install --target`. The server runs a small handler
//! that answers `RCPT TO:<reject@...>` with 550 and `<defer@...>` with 451,
//! and writes each accepted mail as `NNNN.eml` plus `NNNN.json` (envelope,
//! headers and decoded parts, parsed by Python's `email` package) into a
//! temporary directory the test reads.
//!
//! ```ignore
//! let server = SmtpServer::start();          // listening on 127.0.0.1:server.port
//! // ... send two mails ...
//! let mails = server.wait_for_mails(2, Duration::from_secs(30));
//! assert_eq!(mails[0]["rcpt_tos"], json!(["ops@example.com"]));
//! let text = part(&mails[0], "text/plain");
//! ```
//!
//! Each mail summary is a JSON object: `mail_from`, `rcpt_tos` (the
//! envelope), `content_type` (of the whole message), `headers` (lower-case
//! names), and `parts` (`content_type` and decoded `content` of every leaf
//! part).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVER_SCRIPT: &str = r#"
import email, json, os, socket, sys
from email import policy
from aiosmtpd.controller import Controller

out_dir = sys.argv[1]

class Handler:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split('@')[0]
        if local == 'reject':
            return '550 5.1.1 mailbox unavailable'
        if local == 'defer':
            return '451 4.3.0 try again later'
        envelope.rcpt_tos.append(address)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({'content_type': part.get_content_type(),
                          'content': part.get_content()})
        summary = {
            'mail_from': envelope.mail_from,
            'rcpt_tos': envelope.rcpt_tos,
            'content_type': message.get_content_type(),
            'headers': {name.lower(): str(value) for name, value in message.items()},
            'parts': parts,
        }
        base = os.path.join(out_dir, '%04d' % self.count)
        with open(base + '.eml', 'wb') as f:
            f.write(raw)
        with open(base + '.json.tmp', 'w') as f:
            json.dump(summary, f)
        os.rename(base + '.json.tmp', base + '.json')
        return '250 2.0.0 Message accepted'

probe = socket.socket()
probe.bind(('127.0.0.1', 0))
port = probe.getsockname()[1]
probe.close()
controller = Controller(Handler(), hostname='127.0.0.1', port=port)
controller.start()
print(port, flush=True)
sys.stdin.read()
controller.stop()
"#;

/// Where aiosmtpd can be imported from: `None` when `python3` has it
/// already, else a directory for `PYTHONPATH`.
fn aiosmtpd_path() -> Option<PathBuf> {
    static INSTALLED: Mutex<Option<Option<PathBuf>>> = Mutex::new(None);
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if let Some(path) = installed.as_ref() {
        return path.clone();
    }
    let importable = |path: Option<&Path>| {
        let mut command = Command::new("python3");
        command.args(["-c", "import aiosmtpd.controller"]);
        if let Some(path) = path {
            command.env("PYTHONPATH", path);
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let found = if importable(None) {
        None
    } else {
        let target = std::env::temp_dir().join("custody-aiosmtpd");
        if !importable(Some(&target)) {
            // Install beside the target and rename, so a concurrent run never
            // sees a half-installed directory.
            let staging =
                std::env::temp_dir().join(format!("custody-aiosmtpd.{}", std::process::id()));
            let output = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-warn-script-location",
                    "--target",
                ])
                .arg(&staging)
                .arg("aiosmtpd")
                .output()
                .expect("python3 must be installed to run the SMTP tests");
            assert!(
                output.status.success(),
                "could not install aiosmtpd with `python3 -m pip install --target {}`: {}",
                staging.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            if std::fs::rename(&staging, &target).is_err() {
                // Another run installed it first; use that one.
                let _ = std::fs::remove_dir_all(&staging);
            }
            assert!(
                importable(Some(&target)),
                "aiosmtpd was installed into {} but cannot be imported",
                target.display()
            );
        }
        Some(target)
    };
    *installed = Some(found.clone());
    found
}

/// A running aiosmtpd on 127.0.0.1 (plain SMTP, no authentication),
/// stopped when dropped.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    mail_dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts the server (installing aiosmtpd first if needed) and waits
    /// until it listens.
    pub fn start() -> SmtpServer {
        let python_path = aiosmtpd_path();
        let mail_dir = tempfile::tempdir().unwrap();
        let script = mail_dir.path().join("server.py");
        std::fs::write(&script, SERVER_SCRIPT).unwrap();
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg(mail_dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(path) = python_path {
            command.env("PYTHONPATH", path);
        }
        let mut child = command.spawn().expect("could not start python3");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let port = match first_line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("aiosmtpd did not report its port: {first_line:?}");
            }
        };
        SmtpServer {
            port,
            mail_dir,
            child,
        }
    }

    /// The summaries of the mails received so far, in order.
    pub fn mails(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits (blocking the thread, at most `timeout`) until at least `count`
    /// mails have arrived; returns them all. Panics with what did arrive
    /// when they do not.
    pub fn wait_for_mails(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} mails within {timeout:?}, got {}: {mails:#?}",
                mails.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded content of a mail's (first) part of `content_type`
/// (`text/plain`, `text/html`); panics when it has none.
pub fn part<'a>(mail: &'a Value, content_type: &str) -> &'a str {
    mail["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {mail}"))["content"]
        .as_str()
        .unwrap()
}
