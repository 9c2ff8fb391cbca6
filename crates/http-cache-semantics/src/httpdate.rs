//! HTTP-date exactly as RFC 9110 section 5.6.7 defines it (Veil's change).
//!
//! The upstream crate read dates with RFC 2822's parser, which accepts what
//! HTTP does not (folding spaces, numeric zones, comments, single-digit
//! days) and rejects two formats HTTP recipients must accept (RFC 850 and
//! asctime). Here:
//!
//! ```text
//! IMF-fixdate  = day-name "," SP day SP month SP year SP time-of-day SP "GMT"
//! rfc850-date  = day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT"
//! asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
//! ```
//!
//! Names are case-sensitive (`%s` in the ABNF), the time of day runs
//! 00:00:00 to 23:59:60 (a leap second), the day must exist in its month, and
//! the day name must be the one of that date. A two-digit RFC 850 year that
//! would be more than 50 years in the future is the most recent past year
//! with those digits. Anything else is invalid: `None`.

use std::time::{Duration, SystemTime};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAYS_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date in any of its three formats; `None` when invalid.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    // A field value carries no surrounding whitespace (RFC 9110 5.5).
    let text = text.trim_matches([' ', '\t']);
    let parsed = if text.len() == 29 && text.as_bytes().get(3) == Some(&b',') {
        imf_fixdate(text)
    } else if text.len() == 24 && text.as_bytes().get(3) == Some(&b' ') {
        asctime(text)
    } else {
        rfc850(text)
    }?;
    parsed.to_system_time()
}

struct Parsed {
    weekday: usize,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Parsed {
    fn to_system_time(&self) -> Option<SystemTime> {
        if self.hour > 23 || self.minute > 59 || self.second > 60 {
            return None;
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        // 1970-01-01 was a Thursday.
        if (days + 3).rem_euclid(7) as usize != self.weekday {
            return None;
        }
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        let secs = u64::try_from(secs).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    }
}

fn imf_fixdate(s: &str) -> Option<Parsed> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let weekday = day_name(s.get(0..3)?, &DAYS)?;
    literal(s, 3, ", ")?;
    let day = digits(s.get(5..7)?)?;
    literal(s, 7, " ")?;
    let month = month(s.get(8..11)?)?;
    literal(s, 11, " ")?;
    let year = digits(s.get(12..16)?)?;
    literal(s, 16, " ")?;
    let (hour, minute, second) = time_of_day(s.get(17..25)?)?;
    literal(s, 25, " GMT")?;
    Some(Parsed {
        weekday,
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
    })
}

fn rfc850(s: &str) -> Option<Parsed> {
    // "Sunday, 06-Nov-94 08:49:37 GMT"
    let (name, rest) = s.split_once(", ")?;
    let weekday = day_name(name, &DAYS_LONG)?;
    if rest.len() != 22 {
        return None;
    }
    let day = digits(rest.get(0..2)?)?;
    literal(rest, 2, "-")?;
    let month = month(rest.get(3..6)?)?;
    literal(rest, 6, "-")?;
    let yy = digits(rest.get(7..9)?)?;
    literal(rest, 9, " ")?;
    let (hour, minute, second) = time_of_day(rest.get(10..18)?)?;
    literal(rest, 18, " GMT")?;
    Some(Parsed {
        weekday,
        year: two_digit_year(i64::from(yy)),
        month,
        day,
        hour,
        minute,
        second,
    })
}

fn asctime(s: &str) -> Option<Parsed> {
    // "Sun Nov  6 08:49:37 1994"
    let weekday = day_name(s.get(0..3)?, &DAYS)?;
    literal(s, 3, " ")?;
    let month = month(s.get(4..7)?)?;
    literal(s, 7, " ")?;
    let day = match s.get(8..10)? {
        d if d.starts_with(' ') => digits(&d[1..])?,
        d => digits(d)?,
    };
    literal(s, 10, " ")?;
    let (hour, minute, second) = time_of_day(s.get(11..19)?)?;
    literal(s, 19, " ")?;
    let year = digits(s.get(20..24)?)?;
    Some(Parsed {
        weekday,
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
    })
}

fn literal(s: &str, at: usize, want: &str) -> Option<()> {
    (s.get(at..at + want.len())? == want).then_some(())
}

fn day_name(s: &str, names: &[&str; 7]) -> Option<usize> {
    names.iter().position(|n| *n == s)
}

fn month(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// Only ASCII digits (no sign, no spaces), as `nDIGIT` in the ABNF.
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn time_of_day(s: &str) -> Option<(u32, u32, u32)> {
    // "08:49:37"
    if s.len() != 8 {
        return None;
    }
    literal(s, 2, ":")?;
    literal(s, 5, ":")?;
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

/// RFC 9110 5.6.7: a two-digit year more than 50 years in the future is the
/// most recent year in the past with the same last two digits.
fn two_digit_year(yy: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let this_year = civil_year(i64::try_from(now / 86_400).unwrap_or(0));
    let mut year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + 50 {
        year -= 100;
    }
    year
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day counted from 1970-01-01 (`civil_from_days`).
fn civil_year(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<u64> {
        parse_http_date(s).map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs()
        })
    }

    // RFC 9110 5.6.7: the three formats of one instant.
    #[test]
    fn three_formats_of_the_rfc_example() {
        let want = Some(784_111_777);
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(secs("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(secs("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            secs("Wed Nov 16 08:49:37 1994"),
            Some(784_111_777 + 10 * 86_400)
        );
        // Leap second and leap day.
        assert_eq!(secs("Sat, 31 Dec 2016 23:59:60 GMT"), Some(1_483_228_800));
        assert!(secs("Thu, 29 Feb 2024 12:00:00 GMT").is_some());
    }

    // RFC 9110 5.6.7: anything outside the grammar is invalid.
    #[test]
    fn invalid_dates_are_rejected() {
        for bad in [
            "Sun,  06 Nov 1994 08:49:37 GMT",   // double space
            "Sun, 06 Nov 1994  08:49:37 GMT",   // double space
            "Sun, 6 Nov 1994 08:49:37 GMT",     // one-digit day
            "sun, 06 Nov 1994 08:49:37 GMT",    // case
            "Sun, 06 nov 1994 08:49:37 GMT",    // case
            "Sunday, 06 Nov 1994 08:49:37 GMT", // long name in IMF
            "Sun, 06-Nov-94 08:49:37 GMT",      // short name in RFC 850
            "Snu, 06 Nov 1994 08:49:37 GMT",    // no such day
            "Mon, 06 Nov 1994 08:49:37 GMT",    // not that day's name
            "Sun, 06 Nov 1994 08:49:37 UTC",    // zone
            "Sun, 06 Nov 1994 08:49:37 +0000",  // zone
            "Sun, 06 Nov 1994 24:00:00 GMT",    // hour
            "Sun, 06 Nov 1994 08:60:00 GMT",    // minute
            "Sun, 06 Nov 1994 08:49:61 GMT",    // second
            "Wed, 30 Feb 1994 08:49:37 GMT",    // no such day in February
            "Sun, 06 Nov 94 08:49:37 GMT",      // two-digit year in IMF
            "Sun, 06 Nov 1994 08:49:37.5 GMT",  // fraction
            "Sun, 06 Nov 1994 08:49 GMT",       // no seconds
            "Sun Nov 6 08:49:37 1994",          // single space
            "Sun, 06 Nov 1994 08:49:37 GMT junk",
            "0",
            "-1",
            "",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    // RFC 9110 5.6.7: 94 is 1994, never 2094.
    #[test]
    fn two_digit_years_are_never_far_in_the_future() {
        assert_eq!(secs("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert!(civil_year(0) == 1970 && civil_year(365) == 1971);
    }
}
