//! Checkpoints held outside the database.
//!
//! Every checkpoint a server signs is also appended to the `checkpoints` file
//! of its data directory and, when configured, written to a checkpoints
//! directory, one file per checkpoint. `custody verify` reads them back and
//! checks the log against each one, so deleting or replacing checkpoints in
//! the database is caught.
//!
//! The file's format (documented in `docs/configuration.md`): a signed note is
//! several lines, so each entry is framed by a line `-----BEGIN CUSTODY
//! CHECKPOINT-----` before it and a line `-----END CUSTODY CHECKPOINT-----`
//! after it; the note's exact bytes (ending with a newline) are between. The
//! file is only appended to (mode 0600, each entry written with one write and
//! fsynced). A crash during an append can leave the last entry without its end
//! line; the reader reports that entry as torn and ignores it. A file of a
//! checkpoints directory holds either framed entries or one bare note (as
//! `custody log checkpoint` prints it).

use custody_core::Code;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use custody_core::audit::{Finding, OutsideCheckpoint};

/// The name of the checkpoints file in a data directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints";

/// The line before each entry.
pub const BEGIN_LINE: &str = "-----BEGIN CUSTODY CHECKPOINT-----";
/// The line after each entry.
pub const END_LINE: &str = "-----END CUSTODY CHECKPOINT-----";

/// The bytes of one framed entry.
pub fn frame(note: &str) -> String {
    let mut entry = String::with_capacity(note.len() + BEGIN_LINE.len() + END_LINE.len() + 3);
    entry.push_str(BEGIN_LINE);
    entry.push('\n');
    entry.push_str(note);
    if !note.ends_with('\n') {
        entry.push('\n');
    }
    entry.push_str(END_LINE);
    entry.push('\n');
    entry
}

/// What one file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The notes, in file order.
    pub notes: Vec<String>,
    /// Entries begun and never ended (a crash during an append).
    pub torn: usize,
    /// Lines outside any entry that are not blank, by line number (1-based).
    pub stray_lines: Vec<usize>,
}

/// Parses a checkpoints file: framed entries, or (when the text holds no
/// frame at all) one bare note.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    if !text.lines().any(|line| line == BEGIN_LINE) {
        if !text.trim().is_empty() {
            parsed.notes.push(text.to_string());
        }
        return parsed;
    }
    let mut current: Option<String> = None;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        if bare == BEGIN_LINE {
            if current.is_some() {
                parsed.torn += 1;
            }
            current = Some(String::new());
        } else if bare == END_LINE && line.ends_with('\n') {
            match current.take() {
                Some(note) => parsed.notes.push(note),
                None => parsed.stray_lines.push(number + 1),
            }
        } else if let Some(note) = &mut current {
            note.push_str(line);
        } else if !bare.trim().is_empty() {
            parsed.stray_lines.push(number + 1);
        }
    }
    if current.is_some() {
        parsed.torn += 1;
    }
    parsed
}

/// Reads every checkpoint held at `path`: a checkpoints file, or a directory
/// whose regular files (not hidden ones) each hold checkpoints. Returns the
/// checkpoints and the findings about the files themselves (torn or stray
/// or stray content, bytes that are not text). A path that cannot be read
/// is an error.
pub fn read_outside(path: &Path) -> std::io::Result<(Vec<OutsideCheckpoint>, Vec<Finding>)> {
    let mut checkpoints = Vec::new();
    let mut findings = Vec::new();
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        let bytes = std::fs::read(&file)?;
        // Bytes that are not UTF-8 (a flipped bit, say) are a finding about
        // the file, not a reason to stop checking: the entries they do not
        // touch are still read, and the one they touch fails its signature.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                findings.push(Finding::new(
                    Code::CheckpointOutsideMalformed,
                    format!(
                        "{} holds bytes that are not UTF-8 text (from byte {}): it was altered or is not a checkpoints file",
                        file.display(),
                        error.utf8_error().valid_up_to()
                    ),
                ));
                String::from_utf8_lossy(error.as_bytes()).into_owned()
            }
        };
        let parsed = parse(&text);
        let entries = parsed.notes.len();
        for (number, note) in parsed.notes.into_iter().enumerate() {
            checkpoints.push(OutsideCheckpoint {
                note,
                source: if entries == 1 {
                    file.display().to_string()
                } else {
                    format!("{} (entry {})", file.display(), number + 1)
                },
            });
        }
        if parsed.torn > 0 {
            findings.push(Finding::new(
                Code::CheckpointOutsideTorn,
                format!(
                    "{} holds {} entr{} begun and never ended (a crash while appending); ignored",
                    file.display(),
                    parsed.torn,
                    if parsed.torn == 1 { "y" } else { "ies" }
                ),
            ));
        }
        if !parsed.stray_lines.is_empty() {
            findings.push(Finding::new(
                Code::CheckpointOutsideMalformed,
                format!(
                    "{} holds text outside its checkpoint entries (line {}): the server only appends framed entries, so the file was edited",
                    file.display(),
                    parsed
                        .stray_lines
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok((checkpoints, findings))
}

/// The largest size among the checkpoints framed in `text` (0 when none).
fn largest_size(text: &str) -> u64 {
    parse(text)
        .notes
        .iter()
        .filter_map(|note| note.lines().nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// The append-only checkpoints file of a data directory.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    /// The largest size appended so far: a checkpoint no larger is not appended again.
    largest: u64,
}

impl CheckpointFile {
    /// Opens (creating with mode 0600) the file at `path` and reads the
    /// largest size it holds.
    pub fn open(path: &Path) -> std::io::Result<CheckpointFile> {
        let file = append_options().open(path)?;
        drop(file);
        let text = std::fs::read_to_string(path)?;
        Ok(CheckpointFile {
            path: path.to_path_buf(),
            largest: largest_size(&text),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `note` (of a checkpoint of `size` entries) in one write and
    /// fsyncs, unless a checkpoint at least as large is in the file already.
    /// Returns whether it appended.
    pub fn append(&mut self, size: u64, note: &str) -> std::io::Result<bool> {
        if size <= self.largest {
            return Ok(false);
        }
        let mut file = append_options().open(&self.path)?;
        // An entry torn by a crash has no end line; the new entry starts on
        // a line of its own all the same.
        let mut entry = String::new();
        if file.metadata()?.len() > 0 && !ends_with_newline(&self.path)? {
            entry.push('\n');
        }
        entry.push_str(&frame(note));
        file.write_all(entry.as_bytes())?;
        file.sync_data()?;
        self.largest = size;
        Ok(true)
    }
}

fn append_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true).append(true).mode(0o600);
    options
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Writes `note` (of a checkpoint of `size` entries) into `dir` as its own
/// file, `checkpoint-<size, 20 digits>.note` (a temporary file, fsynced,
/// renamed, and the directory fsynced), unless that file exists already.
/// Returns the file's path and whether it wrote it.
pub fn write_to_dir(dir: &Path, size: u64, note: &str) -> std::io::Result<(PathBuf, bool)> {
    let path = dir.join(format!("checkpoint-{size:020}.note"));
    if path.exists() {
        return Ok((path, false));
    }
    let temporary = dir.join(format!(".checkpoint-{size:020}.{}.tmp", std::process::id()));
    {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(frame(note).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    File::open(dir)?.sync_all()?;
    Ok((path, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "example.com/log\n3\nAAAA\n\n\u{2014} example.com/log abcd\n";

    #[test]
    fn framed_entries_read_back_exactly() {
        let text = format!(
            "{}{}",
            frame(NOTE),
            frame("other\n1\nBBBB\n\n\u{2014} x y\n")
        );
        let parsed = parse(&text);
        assert_eq!(
            parsed.notes,
            vec![
                NOTE.to_string(),
                "other\n1\nBBBB\n\n\u{2014} x y\n".to_string()
            ]
        );
        assert_eq!(parsed.torn, 0);
        assert!(parsed.stray_lines.is_empty());
        assert_eq!(largest_size(&text), 3);
    }

    #[test]
    fn a_torn_last_entry_is_counted_and_ignored() {
        let text = format!("{}{BEGIN_LINE}\nexample.com/log\n4\n", frame(NOTE));
        let parsed = parse(&text);
        assert_eq!(parsed.notes, vec![NOTE.to_string()]);
        assert_eq!(parsed.torn, 1);
        // An entry appended after the torn one still reads.
        let text = format!("{text}\n{}", frame(NOTE));
        let parsed = parse(&text);
        assert_eq!(parsed.notes.len(), 2);
        assert_eq!(parsed.torn, 1);
        assert!(parsed.stray_lines.is_empty(), "{parsed:?}");
    }

    #[test]
    fn bytes_that_are_not_text_are_a_finding_and_the_other_entries_still_read() {
        // A bit flipped in the second entry (the tamper campaign's
        // `flip checkpoints file`): that was an error that stopped verify.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINTS_FILE);
        let mut bytes = format!("{}{}", frame(NOTE), frame(NOTE)).into_bytes();
        let at = frame(NOTE).len() + BEGIN_LINE.len() + 3;
        bytes[at] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (read, findings) = read_outside(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].note, NOTE);
        assert_ne!(read[1].note, NOTE);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, Code::CheckpointOutsideMalformed);
        assert!(
            findings[0].message.contains(&format!("from byte {at}")),
            "{findings:?}"
        );
    }

    #[test]
    fn text_outside_entries_is_stray_and_a_bare_note_is_one_entry() {
        let parsed = parse(&format!("junk\n{}", frame(NOTE)));
        assert_eq!(parsed.stray_lines, vec![1]);
        assert_eq!(parse(NOTE).notes, vec![NOTE.to_string()]);
        assert_eq!(parse("\n").notes.len(), 0);
    }

    #[test]
    fn the_file_is_private_and_appends_only_larger_checkpoints() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINTS_FILE);
        let mut file = CheckpointFile::open(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(file.append(3, NOTE).unwrap());
        assert!(!file.append(3, NOTE).unwrap());
        // Reopened (a restart), it remembers the largest size.
        let mut file = CheckpointFile::open(&path).unwrap();
        assert!(!file.append(2, NOTE).unwrap());
        let (read, findings) = read_outside(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].note, NOTE);
        assert!(findings.is_empty());

        let copies = dir.path().join("copies");
        std::fs::create_dir(&copies).unwrap();
        let (written, fresh) = write_to_dir(&copies, 3, NOTE).unwrap();
        assert!(fresh);
        assert!(!write_to_dir(&copies, 3, NOTE).unwrap().1);
        assert_eq!(
            std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (read, _) = read_outside(&copies).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].note, NOTE);
    }
}
