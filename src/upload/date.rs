//! A message's `Date:` header as an IMAP INTERNALDATE, for messages whose arrival time was
//! not kept (archives of the original program and of 0.6): the date the sender wrote is
//! closer to the truth than the time of the upload.

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The value of the first `Date:` field of `header` (folded lines joined), if any.
pub fn date_field(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.eq_ignore_ascii_case("date") {
            continue;
        }
        let mut value = value.to_string();
        for more in lines.by_ref() {
            if more.starts_with([' ', '\t']) {
                value.push_str(more);
            } else {
                break;
            }
        }
        return Some(value);
    }
    None
}

/// An RFC 5322 date (`Mon, 30 Nov 2026 13:45:01 +0100`, obsolete forms too: no weekday,
/// two-digit years, zone names, no seconds) in IMAP's date-time form
/// (`30-Nov-2026 13:45:01 +0100`); `None` when it cannot be read.
pub fn imap_date(value: &str) -> Option<String> {
    // Comments (`(CET)`) and the weekday carry nothing needed.
    let mut clean = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => clean.push(if c == ',' { ' ' } else { c }),
            _ => {}
        }
    }
    let mut words: Vec<&str> = clean.split_whitespace().collect();
    if words.first().is_some_and(|w| w.chars().all(|c| c.is_ascii_alphabetic())) {
        words.remove(0);
    }
    let [day, month, year, time, rest @ ..] = words.as_slice() else { return None };
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = MONTHS.iter().find(|m| m.eq_ignore_ascii_case(month))?;
    let year: u32 = match year.parse::<u32>().ok()? {
        y @ 0..=49 => 2000 + y,
        y @ 50..=999 => 1900 + y,
        y => y,
    };
    if year > 9999 {
        return None;
    }
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next().unwrap_or(Some(0))?);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let zone = zone(rest.first().copied().unwrap_or("+0000"))?;
    Some(format!("{day:02}-{month}-{year} {h:02}:{m:02}:{:02} {zone}", s.min(59)))
}

/// `+hhmm` for a numeric zone or one of the names RFC 5322 still reads.
fn zone(z: &str) -> Option<String> {
    let bytes = z.as_bytes();
    if bytes.len() == 5 && (bytes[0] == b'+' || bytes[0] == b'-') && bytes[1..].iter().all(u8::is_ascii_digit) {
        return Some(z.to_string());
    }
    let hours: i32 = match z.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        // Military and unknown zones mean nothing reliable (RFC 5322 4.3): UTC.
        _ => 0,
    };
    Some(format!("{}{:02}00", if hours < 0 { '-' } else { '+' }, hours.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_senders_write_them() {
        for (raw, want) in [
            ("Mon, 30 Nov 2026 13:45:01 +0100", "30-Nov-2026 13:45:01 +0100"),
            (" 1 Jan 2020 00:00 -0500 (EST)", "01-Jan-2020 00:00:00 -0500"),
            ("Tue, 2 Feb 99 7:05:09 GMT", "02-Feb-1999 07:05:09 +0000"),
            ("Fri,  3 Mar 2023 10:11:12 PST", "03-Mar-2023 10:11:12 -0800"),
            ("3 mar 2023 10:11:12", "03-Mar-2023 10:11:12 +0000"),
        ] {
            assert_eq!(imap_date(raw).as_deref(), Some(want), "{raw}");
        }
        for bad in ["", "yesterday", "32 Jan 2020 10:00:00 +0000", "1 Foo 2020 10:00 +0000", "1 Jan 2020 25:00 +0000"] {
            assert_eq!(imap_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_date_field_of_a_header() {
        let h = b"From: a\r\nDATE: Mon, 30 Nov\r\n 2026 13:45:01 +0100\r\nSubject: x\r\n\r\nDate: body\r\n";
        assert_eq!(date_field(h).as_deref(), Some(" Mon, 30 Nov 2026 13:45:01 +0100"));
        assert_eq!(date_field(b"Subject: x\n\nDate: 1 Jan 2020 10:00 +0000\n"), None);
    }
}
