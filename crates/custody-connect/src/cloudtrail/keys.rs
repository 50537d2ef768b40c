//! The keys of a trail's S3 objects: which are log files, and when each was
//! delivered.
//!
//! CloudTrail names a log file
//! `<prefix>AWSLogs/[<org ID>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique>.json.gz`,
//! where the time is the minute of delivery. Within one account and
//! region, lexicographic key order is delivery order to the minute; two
//! files of the same minute sort by their random suffix, so a file
//! delivered later in a minute may sort before one already read. The reader
//! therefore waits until a minute has *settled* (is a few minutes past)
//! before it reads that minute's files ([`settled`]).
//!
//! Beside log files a trail writes digest files
//! (`.../CloudTrail-Digest/...`, integrity proofs) and, with Insights,
//! `.../CloudTrail-Insight/...`: neither holds API calls, both are passed.

use custody_core::Timestamp;

/// What to do with an object under the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A log file of API calls: read it.
    LogFile,
    /// Something else (a digest, an Insights file, a folder marker, a file
    /// that is not JSON): pass it.
    Other,
}

/// What `key` is.
pub fn kind(key: &str) -> KeyKind {
    let is_json = key.ends_with(".json.gz") || key.ends_with(".json");
    let other_product = key
        .split('/')
        .any(|segment| segment == "CloudTrail-Digest" || segment == "CloudTrail-Insight");
    if is_json && !other_product {
        KeyKind::LogFile
    } else {
        KeyKind::Other
    }
}

/// The minute a log file was delivered, from its name
/// (`..._YYYYMMDDTHHmmZ_...`); `None` when the name carries none.
pub fn delivered_at(key: &str) -> Option<Timestamp> {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.split('_').find_map(|part| {
        let bytes = part.as_bytes();
        let shaped = bytes.len() == 14
            && bytes[8] == b'T'
            && bytes[13] == b'Z'
            && bytes[..8].iter().all(u8::is_ascii_digit)
            && bytes[9..13].iter().all(u8::is_ascii_digit);
        if !shaped {
            return None;
        }
        let text = format!(
            "{}-{}-{}T{}:{}:00Z",
            &part[0..4],
            &part[4..6],
            &part[6..8],
            &part[9..11],
            &part[11..13]
        );
        Timestamp::parse(&text).ok()
    })
}

/// Whether the log file `key` may be read at `now`: its delivery minute
/// ended at least `settle_seconds` ago. A key that names no delivery time
/// (not CloudTrail's naming) is read at once.
pub fn settled(key: &str, now: Timestamp, settle_seconds: u64) -> bool {
    match delivered_at(key) {
        Some(minute) => {
            minute
                .plus_unsigned_seconds(60)
                .plus_unsigned_seconds(settle_seconds)
                <= now
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/eu-west-1/2026/03/14/111122223333_CloudTrail_eu-west-1_20260314T0915Z_q9Xw2LmN4pR7sT1v.json.gz";

    #[test]
    fn log_files_are_read_and_digests_are_passed() {
        assert_eq!(kind(KEY), KeyKind::LogFile);
        assert_eq!(kind("logs/batch-0001.json"), KeyKind::LogFile);
        assert_eq!(
            kind("AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/03/14/111122223333_CloudTrail-Digest_eu-west-1_trail_eu-west-1_20260314T091500Z.json.gz"),
            KeyKind::Other
        );
        assert_eq!(
            kind("AWSLogs/111122223333/CloudTrail-Insight/eu-west-1/2026/03/14/x.json.gz"),
            KeyKind::Other
        );
        assert_eq!(kind("AWSLogs/111122223333/CloudTrail/"), KeyKind::Other);
        assert_eq!(kind("AWSLogs/notes.txt"), KeyKind::Other);
    }

    #[test]
    fn the_delivery_minute_comes_from_the_name() {
        assert_eq!(
            delivered_at(KEY),
            Some(Timestamp::parse("2026-03-14T09:15:00Z").unwrap())
        );
        assert_eq!(delivered_at("logs/batch-0001.json"), None);
        assert_eq!(
            delivered_at("a/1_CloudTrail_x_20261399T0915Z_y.json.gz"),
            None
        );
    }

    #[test]
    fn a_minute_is_read_once_it_has_settled() {
        let minute = Timestamp::parse("2026-03-14T09:15:00Z").unwrap();
        // The minute ends at 09:16; with 300 s to settle, 09:21.
        assert!(!settled(KEY, minute.plus_seconds(60 + 299), 300));
        assert!(settled(KEY, minute.plus_seconds(60 + 300), 300));
        assert!(!settled(KEY, minute.plus_seconds(59), 0));
        assert!(settled(KEY, minute.plus_seconds(60), 0));
        assert!(settled("logs/batch-0001.json", minute, 300));
    }
}
