//! A progress bar on standard error for long commands (export, import,
//! verify): done / total, rate and time left, redrawn in place at most a
//! few times a second.
//!
//! It draws only when standard error is a terminal and the command is not
//! printing JSON: in a pipe, a log file or a test's captured output it
//! writes nothing at all (no `\r`, no escape sequence), so what scripts
//! read stays clean. Hand-rolled rather than a crate: it is forty lines and
//! needs nothing a terminal does not already do.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the bar is redrawn, at most.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

/// A progress bar, or nothing when it must stay silent.
pub struct Progress {
    bar: Option<Bar>,
}

struct Bar {
    label: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A bar for `total` `unit`s of `label` work, drawn only when standard
    /// error is a terminal and `json` is false.
    pub fn new(label: &'static str, unit: &'static str, total: u64, json: bool) -> Progress {
        let visible = !json && std::io::stderr().is_terminal();
        Progress {
            bar: visible.then(|| Bar {
                label,
                unit,
                total,
                done: 0,
                started: Instant::now(),
                drawn: None,
            }),
        }
    }

    /// A bar that never draws.
    #[allow(
        dead_code,
        reason = "kept beside `new` for commands that must stay silent"
    )]
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// Sets how much is done, redrawing when enough time has passed.
    pub fn set(&mut self, done: u64) {
        let Some(bar) = self.bar.as_mut() else {
            return;
        };
        bar.done = done.min(bar.total);
        let now = Instant::now();
        if bar
            .drawn
            .is_none_or(|drawn| now.duration_since(drawn) >= REDRAW_EVERY)
        {
            bar.drawn = Some(now);
            bar.draw(now);
        }
    }

    /// Adds to how much is done.
    #[allow(dead_code, reason = "for the import and bundle commands")]
    pub fn advance(&mut self, by: u64) {
        let done = self
            .bar
            .as_ref()
            .map_or(0, |bar| bar.done.saturating_add(by));
        self.set(done);
    }

    /// Erases the bar, leaving the line empty for what the command prints next.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            if bar.drawn.is_some() {
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r\x1b[2K");
                let _ = stderr.flush();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A bar a library reports to through a callback (the audit behind
/// `custody verify`), its total learnt from the first report.
pub struct SharedProgress {
    label: &'static str,
    unit: &'static str,
    json: bool,
    progress: Arc<Mutex<Option<Progress>>>,
}

impl SharedProgress {
    /// A bar drawn under the same conditions as [`Progress::new`].
    pub fn new(label: &'static str, unit: &'static str, json: bool) -> SharedProgress {
        SharedProgress {
            label,
            unit,
            json,
            progress: Arc::new(Mutex::new(None)),
        }
    }

    /// The callback to hand to the library: `(done, total)`.
    pub fn callback(&self) -> custody_store::AuditProgress {
        let (label, unit, json) = (self.label, self.unit, self.json);
        let shared = Arc::clone(&self.progress);
        custody_store::AuditProgress(Arc::new(move |done, total| {
            if let Ok(mut progress) = shared.lock() {
                progress
                    .get_or_insert_with(|| Progress::new(label, unit, total, json))
                    .set(done);
            }
        }))
    }

    /// Erases the bar.
    pub fn finish(&self) {
        if let Ok(mut progress) = self.progress.lock() {
            if let Some(mut progress) = progress.take() {
                progress.finish();
            }
        }
    }
}

impl Bar {
    fn draw(&self, now: Instant) {
        const WIDTH: u64 = 30;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        let bar: String = (0..WIDTH)
            .map(|cell| if cell < filled { '#' } else { '-' })
            .collect();
        let rate = if elapsed > 0.0 {
            self.done as f64 / elapsed
        } else {
            0.0
        };
        let left = self.total - self.done;
        let eta = if rate > 0.0 {
            format_duration(left as f64 / rate)
        } else {
            "--:--".to_string()
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[2K{} [{bar}] {}/{} {} {:.0} {}/s ETA {eta}",
            self.label, self.done, self.total, self.unit, rate, self.unit
        );
        let _ = stderr.flush();
    }
}

/// `M:SS` or `H:MM:SS`.
fn format_duration(seconds: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative time left, rounded to whole seconds; absurd values saturate"
    )]
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// A reader that counts the bytes read through it, so a command reading a
/// file whose record count is unknown in advance (a bundle) shows its
/// progress in bytes of the file.
pub struct CountingReader<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`; [`CountingReader::counter`] follows what was read.
    pub fn new(inner: R) -> CountingReader<R> {
        CountingReader {
            inner,
            read: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The number of bytes read so far, shared.
    pub fn counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.read)
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.read.fetch_add(
            u64::try_from(count).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(count)
    }
}

/// Opens `path` for a command that reads it through, with a bar in bytes of
/// the file (drawn under the conditions of [`Progress::new`]).
pub fn read_with_progress(
    label: &'static str,
    path: &std::path::Path,
    json: bool,
) -> std::io::Result<(
    std::io::BufReader<CountingReader<std::fs::File>>,
    Arc<std::sync::atomic::AtomicU64>,
    Progress,
)> {
    let file = std::fs::File::open(path)?;
    let total = file.metadata()?.len();
    let reader = CountingReader::new(file);
    let counter = reader.counter();
    Ok((
        std::io::BufReader::with_capacity(1 << 16, reader),
        counter,
        Progress::new(label, "bytes", total, json),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_as_a_clock() {
        assert_eq!(format_duration(0.0), "0:00");
        assert_eq!(format_duration(61.4), "1:01");
        assert_eq!(format_duration(3725.0), "1:02:05");
    }

    #[test]
    fn a_hidden_bar_ignores_everything() {
        let mut progress = Progress::hidden();
        progress.set(5);
        progress.advance(5);
        progress.finish();
        assert!(progress.bar.is_none());
    }
}
