//! A calendar day, as `--since` takes it: `YYYY-MM-DD` (or the date of an RFC 3339 time),
//! sent to the server as an IMAP `date` (`1-Feb-2024`), which is what `SEARCH SINCE`
//! compares INTERNALDATE with: day-granular, in the server's time zone.

use std::fmt;

use crate::error::{Error, Result};

/// One day of the (proleptic Gregorian) calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day {
    year: u16,
    month: u8,
    day: u8,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl Day {
    /// Parses `YYYY-MM-DD`, or an RFC 3339 time (`2024-02-01T00:00:00Z`), whose date part
    /// is taken as it is written. `what` names the setting in the error.
    pub fn parse(text: &str, what: &str) -> Result<Day> {
        let bad = |why: &str| Error::usage(format!("{what} '{text}': {why} (expected a date like 2024-02-01)"));
        let date = match text.find(['T', 't', ' ']) {
            Some(i) => &text[..i],
            None => text,
        };
        let fields: Vec<&str> = date.split('-').collect();
        let [y, m, d] = fields.as_slice() else { return Err(bad("not a date")) };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad("not a date"));
        }
        let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<u16>().ok()).flatten();
        let (Some(year), Some(month), Some(day)) = (number(y), number(m), number(d)) else {
            return Err(bad("not a date"));
        };
        if year == 0 {
            return Err(bad("no year 0"));
        }
        if !(1..=12).contains(&month) {
            return Err(bad("no such month"));
        }
        if day == 0 || day > days_in(year, month as u8) {
            return Err(bad("no such day"));
        }
        Ok(Day { year, month: month as u8, day: day as u8 })
    }
}

fn days_in(year: u16, month: u8) -> u16 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A moment as `--list` shows every date: `2024-02-01 10:00:00 +0100`, in the zone
/// `offset` (seconds east of UTC) it was given in.
pub fn display(t: i64, offset: i64) -> String {
    let local = t + offset;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = crate::mbox::civil_from_days(days);
    let (sign, z) = if offset < 0 { ('-', -offset) } else { ('+', offset) };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        z / 3600,
        z / 60 % 60
    )
}

/// The IMAP form, `1-Feb-2024`.
impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:04}", self.day, MONTHS[usize::from(self.month - 1)], self.year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_display_in_their_zone() {
        assert_eq!(display(0, 0), "1970-01-01 00:00:00 +0000");
        assert_eq!(display(1_577_955_600, 3600), "2020-01-02 10:00:00 +0100");
        assert_eq!(display(1_709_251_199, -16_200), "2024-02-29 19:29:59 -0430");
        assert_eq!(display(-1, 0), "1969-12-31 23:59:59 +0000");
    }

    #[test]
    fn dates_become_imap_dates() {
        for (text, imap) in [
            ("2024-02-01", "1-Feb-2024"),
            ("2024-02-29", "29-Feb-2024"),
            ("2000-02-29", "29-Feb-2000"),
            ("1999-12-31", "31-Dec-1999"),
            ("2024-06-30T23:59:59+02:00", "30-Jun-2024"),
            ("2024-06-30t00:00:00Z", "30-Jun-2024"),
        ] {
            assert_eq!(Day::parse(text, "--since").unwrap().to_string(), imap, "{text}");
        }
    }

    #[test]
    fn bad_dates_are_usage_errors() {
        for (text, why) in [
            ("", "not a date"),
            ("2024-2-1", "not a date"),
            ("01-02-2024", "not a date"),
            ("2024/02/01", "not a date"),
            ("2024-+1-01", "not a date"),
            ("2024-13-01", "no such month"),
            ("2023-02-29", "no such day"),
            ("1900-02-29", "no such day"),
            ("2024-04-31", "no such day"),
            ("2024-01-00", "no such day"),
            ("0000-01-01", "no year 0"),
            ("yesterday", "not a date"),
        ] {
            let e = Day::parse(text, "--since").unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert_eq!(e.to_string(), format!("--since '{text}': {why} (expected a date like 2024-02-01)"));
        }
    }
}
