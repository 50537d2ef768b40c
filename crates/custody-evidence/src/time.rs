//! UTC calendar formatting without a date crate: RFC 3339 for snapshots and
//! the compact `YYYYMMDDTHHMMSSZ` form that SigV4 signs.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UtcDateTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) microsecond: u32,
}

impl UtcDateTime {
    /// The calendar fields of `time`. Instants before 1970 are clamped to the
    /// epoch: this crate only ever formats "now".
    pub(crate) fn from_system_time(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX / 2);
        Self::from_unix(seconds, since_epoch.subsec_micros())
    }

    /// The calendar fields of `seconds` after the Unix epoch.
    pub(crate) fn from_unix(seconds: i64, microsecond: u32) -> Self {
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // Safe: second_of_day is in 0..86_400, so every part fits a u32.
        let second_of_day = u32::try_from(second_of_day).unwrap_or(0);
        Self {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            microsecond,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form custody-core writes timestamps in.
    pub(crate) fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.microsecond
        )
    }

    /// `YYYYMMDDTHHMMSSZ`, the SigV4 `x-amz-date` form.
    pub(crate) fn amz_date(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn now_rfc3339() -> String {
    UtcDateTime::from_system_time(SystemTime::now()).rfc3339()
}

/// Year, month and day of the day `days` after 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
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
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Safe: day is in 1..=31 and month in 1..=12 by the algorithm's construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z", "19700101T000000Z"),
            (
                1_369_353_600,
                "2013-05-24T00:00:00.000000Z",
                "20130524T000000Z",
            ),
            (
                951_782_400,
                "2000-02-29T00:00:00.000000Z",
                "20000229T000000Z",
            ),
            (
                951_868_799,
                "2000-02-29T23:59:59.000000Z",
                "20000229T235959Z",
            ),
            (
                4_102_444_799,
                "2099-12-31T23:59:59.000000Z",
                "20991231T235959Z",
            ),
            (
                1_709_164_800,
                "2024-02-29T00:00:00.000000Z",
                "20240229T000000Z",
            ),
        ];
        for (seconds, rfc3339, amz) in cases {
            let time = UtcDateTime::from_unix(seconds, 0);
            assert_eq!(time.rfc3339(), rfc3339, "{seconds}");
            assert_eq!(time.amz_date(), amz, "{seconds}");
        }
        assert_eq!(
            UtcDateTime::from_unix(1_369_353_600, 123_456).rfc3339(),
            "2013-05-24T00:00:00.123456Z"
        );
    }

    #[test]
    fn now_has_the_documented_shape() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 27, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(now.as_str() > "2024-01-01", "{now}");
    }
}
