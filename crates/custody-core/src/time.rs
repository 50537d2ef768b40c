//! Timestamps as they appear in hashed content.
//!
//! A [`Timestamp`] is a count of microseconds since the Unix epoch, always
//! written as RFC 3339 in UTC with exactly six fractional digits
//! (`2026-11-29T01:54:43.123456Z`). One fixed textual form means the same
//! instant always canonicalises to the same bytes, sorts lexicographically in
//! time order, and never needs a float.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant with microsecond precision, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros_since_epoch: i64,
}

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The text is not an RFC 3339 date-time such as `2026-11-29T10:00:00Z`.
    #[error("`{0}` is not an RFC 3339 timestamp (expected e.g. 2026-11-29T10:00:00Z)")]
    Malformed(String),
    /// The instant is outside the supported range (years 1970 to 9999).
    #[error("`{0}` is outside the supported range (1970-01-01 to 9999-12-31)")]
    OutOfRange(String),
}

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            // Saturates, like `plus_seconds`: i64 microseconds last until
            // the year 294247.
            .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp {
            micros_since_epoch: micros,
        }
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_micros(micros_since_epoch: i64) -> Timestamp {
        Timestamp { micros_since_epoch }
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.micros_since_epoch
    }

    /// This instant moved forward by `seconds`.
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp {
            micros_since_epoch: self
                .micros_since_epoch
                .saturating_add(seconds.saturating_mul(1_000_000)),
        }
    }

    /// [`Self::plus_seconds`] for the unsigned seconds durations and
    /// deadlines are given in; a count beyond `i64` saturates as a sum
    /// beyond it does, instead of wrapping into the past.
    pub fn plus_unsigned_seconds(self, seconds: u64) -> Timestamp {
        self.plus_seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 (`T` or space separator, `Z` or a numeric offset,
    /// up to nine fractional digits, truncated to microseconds).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let malformed = || TimestampError::Malformed(text.to_string());
        let bytes = text.as_bytes();
        if bytes.len() < 20 || !text.is_ascii() {
            return Err(malformed());
        }
        let number = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            part.parse::<i64>().map_err(|_| malformed())
        };
        if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
            return Err(malformed());
        }
        if !matches!(bytes[10], b'T' | b't' | b' ') {
            return Err(malformed());
        }
        let year = number(0..4)?;
        let month = number(5..7)?;
        let day = number(8..10)?;
        let hour = number(11..13)?;
        let minute = number(14..16)?;
        let second = number(17..19)?;
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(malformed());
        }
        let mut position = 19;
        let mut micros: i64 = 0;
        if bytes[position] == b'.' {
            position += 1;
            let start = position;
            while position < bytes.len() && bytes[position].is_ascii_digit() {
                position += 1;
            }
            let digits = &text[start..position];
            if digits.is_empty() || digits.len() > 9 {
                return Err(malformed());
            }
            let mut padded = digits.to_string();
            while padded.len() < 6 {
                padded.push('0');
            }
            micros = padded[..6].parse::<i64>().map_err(|_| malformed())?;
        }
        let offset_seconds = match &text[position..] {
            "Z" | "z" => 0,
            rest if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
                if rest.as_bytes()[3] != b':' {
                    return Err(malformed());
                }
                let hours = number(position + 1..position + 3)?;
                let minutes = number(position + 4..position + 6)?;
                if hours > 23 || minutes > 59 {
                    return Err(malformed());
                }
                let sign = if rest.as_bytes()[0] == b'-' { -1 } else { 1 };
                sign * (hours * 3600 + minutes * 60)
            }
            _ => return Err(malformed()),
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
        if seconds < 0 || year > 9999 {
            return Err(TimestampError::OutOfRange(text.to_string()));
        }
        Ok(Timestamp {
            micros_since_epoch: seconds * 1_000_000 + micros,
        })
    }
}

/// Length of the canonical spelling of an instant in the years 0 to 9999.
const SPELLING_LENGTH: usize = 27;

impl Timestamp {
    /// The canonical spelling (`YYYY-MM-DDTHH:MM:SS.ffffffZ`) written digit
    /// by digit into a fixed buffer, for the years 0 to 9999; `None`
    /// outside them (`Display` then spells it with the formatter). Every
    /// event, projection and key row spells several instants, and the
    /// formatting machinery cost more than the rest of the encoding (the
    /// write-path profile in docs/performance.md).
    fn spelling(&self) -> Option<[u8; SPELLING_LENGTH]> {
        fn put(buffer: &mut [u8], value: i64) {
            let mut value = value;
            for slot in buffer.iter_mut().rev() {
                // Each field is checked to fit its width before it is put.
                *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
                value /= 10;
            }
        }
        let micros = self.micros_since_epoch.rem_euclid(1_000_000);
        let seconds = self.micros_since_epoch.div_euclid(1_000_000);
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut buffer = *b"0000-00-00T00:00:00.000000Z";
        put(&mut buffer[0..4], year);
        put(&mut buffer[5..7], month);
        put(&mut buffer[8..10], day);
        put(&mut buffer[11..13], second_of_day / 3600);
        put(&mut buffer[14..16], (second_of_day % 3600) / 60);
        put(&mut buffer[17..19], second_of_day % 60);
        put(&mut buffer[20..26], micros);
        Some(buffer)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(spelling) = self.spelling() {
            // Only ASCII digits and punctuation were written.
            return formatter.write_str(std::str::from_utf8(&spelling).map_err(|_| fmt::Error)?);
        }
        let micros = self.micros_since_epoch.rem_euclid(1_000_000);
        let seconds = self.micros_since_epoch.div_euclid(1_000_000);
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            formatter,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            second_of_day / 3600,
            (second_of_day % 3600) / 60,
            second_of_day % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.spelling() {
            Some(spelling) => serializer
                .serialize_str(std::str::from_utf8(&spelling).map_err(serde::ser::Error::custom)?),
            None => serializer.collect_str(self),
        }
    }
}

/// Deserialisation accepts only the canonical form
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), so a stored instant has exactly one
/// spelling; [`Timestamp::parse`] is the lenient reader for user input.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let timestamp = Timestamp::parse(&text).map_err(serde::de::Error::custom)?;
        // Every field of the canonical form has a fixed width, so with the
        // separators in place and `parse` having checked the digits, this is
        // the same test as `timestamp.to_string() == text`, without formatting.
        let bytes = text.as_bytes();
        let canonical =
            bytes.len() == 27 && bytes[10] == b'T' && bytes[19] == b'.' && bytes[26] == b'Z';
        if !canonical {
            return Err(serde::de::Error::custom(format!(
                "`{text}` is not a canonical timestamp (expected e.g. 2026-11-29T10:00:00.000000Z)"
            )));
        }
        Ok(timestamp)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days-from-civil algorithm: exact for the proleptic
// Gregorian calendar, with no tables and no floating point.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Where the store and the server read the current time.
///
/// Production code uses [`SystemClock`]. Tests use [`ManualClock`] and move
/// time forward themselves, so deadline and escalation scenarios never sleep.
/// Reading the time is the only thing a clock does: it holds no IO and no
/// state beyond the instant.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// A shared clock, as the store and the server hold it.
pub type SharedClock = std::sync::Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        std::sync::Arc::new(SystemClock)
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug)]
pub struct ManualClock {
    micros: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            micros: std::sync::atomic::AtomicI64::new(start.as_micros()),
        }
    }

    /// Moves the clock forward by `seconds` (never backward).
    pub fn advance_seconds(&self, seconds: i64) {
        let step = seconds.max(0).saturating_mul(1_000_000);
        self.micros
            .fetch_add(step, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets the clock to `instant`, if that is not earlier than now.
    pub fn set(&self, instant: Timestamp) {
        self.micros
            .fetch_max(instant.as_micros(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spelling the formatter writes, the reference the fast path must match.
    fn formatted(timestamp: Timestamp) -> String {
        let micros = timestamp.micros_since_epoch.rem_euclid(1_000_000);
        let seconds = timestamp.micros_since_epoch.div_euclid(1_000_000);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            second_of_day / 3600,
            (second_of_day % 3600) / 60,
            second_of_day % 60
        )
    }

    #[test]
    fn the_digit_by_digit_spelling_matches_the_formatter() {
        let year_10000 = Timestamp::parse("9999-12-31T23:59:59.999999Z")
            .unwrap()
            .micros_since_epoch
            + 1;
        let mut samples = vec![
            0,
            1,
            -1,
            999_999,
            1_000_000,
            -1_000_000,
            year_10000 - 1,
            year_10000,
            -62_167_219_200_000_000, // 0000-01-01
            -62_167_219_200_000_001, // the microsecond before year 0
        ];
        // A spread of instants across the whole range, deterministic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            samples.push(
                i64::try_from(state % 400_000_000_000_000_000).unwrap_or(0)
                    - 100_000_000_000_000_000,
            );
        }
        for micros in samples {
            let timestamp = Timestamp {
                micros_since_epoch: micros,
            };
            let expected = formatted(timestamp);
            assert_eq!(timestamp.to_string(), expected, "{micros}");
            assert_eq!(
                serde_json::to_string(&timestamp).unwrap(),
                format!("\"{expected}\""),
                "{micros}"
            );
            let (year, _, _) = civil_from_days(micros.div_euclid(1_000_000).div_euclid(86_400));
            assert_eq!(
                timestamp.spelling().is_some(),
                (0..=9999).contains(&year),
                "{micros}"
            );
        }
    }

    #[test]
    fn formats_and_parses_round_trip() {
        let cases = [
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
            ("2026-11-29T01:54:43.5Z", "2026-11-29T01:54:43.500000Z"),
            (
                "2024-02-29T23:59:59.123456789Z",
                "2024-02-29T23:59:59.123456Z",
            ),
            ("2026-11-29T03:00:00+02:00", "2026-11-29T01:00:00.000000Z"),
            ("2026-11-28T23:30:00-01:30", "2026-11-29T01:00:00.000000Z"),
        ];
        for (input, expected) in cases {
            let parsed = Timestamp::parse(input).unwrap();
            assert_eq!(parsed.to_string(), expected, "input {input}");
            assert_eq!(Timestamp::parse(expected).unwrap(), parsed);
        }
    }

    #[test]
    fn deserialises_only_the_canonical_form() {
        let canonical = "\"2026-11-29T01:54:43.123456Z\"";
        let parsed: Timestamp = serde_json::from_str(canonical).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), canonical);
        for other in [
            "\"2026-11-29T01:54:43Z\"",
            "\"2026-11-29t01:54:43.123456Z\"",
            "\"2026-11-29 01:54:43.123456Z\"",
            "\"2026-11-29T01:54:43.123456z\"",
            "\"2026-11-29T01:54:43.1234567Z\"",
            "\"2026-11-29T03:54:43.123456+02:00\"",
        ] {
            assert!(
                serde_json::from_str::<Timestamp>(other).is_err(),
                "accepted {other}"
            );
        }
    }

    #[test]
    fn rejects_malformed_input() {
        for input in [
            "",
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T00:00:00",
            "2026-11-29T00:00:00.Z",
            "2026-11-29T00:00:00+0200",
            "1969-12-31T23:59:59Z",
            "२०२६-11-29T00:00:00Z",
        ] {
            assert!(Timestamp::parse(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn manual_clock_moves_only_forward_and_only_when_told() {
        let start = Timestamp::parse("2026-11-30T10:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance_seconds(90);
        assert_eq!(clock.now(), start.plus_seconds(90));
        clock.advance_seconds(-30);
        assert_eq!(clock.now(), start.plus_seconds(90));
        clock.set(start);
        assert_eq!(clock.now(), start.plus_seconds(90));
        clock.set(start.plus_seconds(3600));
        assert_eq!(clock.now(), start.plus_seconds(3600));
    }

    #[test]
    fn unsigned_seconds_saturate_instead_of_wrapping_into_the_past() {
        let start = Timestamp::parse("2026-11-30T10:00:00Z").unwrap();
        assert_eq!(start.plus_unsigned_seconds(90), start.plus_seconds(90));
        // `u64::MAX as i64` is -1: a deadline one second before the start.
        let far = start.plus_unsigned_seconds(u64::MAX);
        assert_eq!(far, start.plus_seconds(i64::MAX));
        assert!(far > start);
    }

    #[test]
    fn civil_conversion_matches_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [0, 59, 60, 365, 11_016, 11_017, 20_000, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
