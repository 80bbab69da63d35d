//! The two kinds of mbox `From ` lines and mboxrd body quoting.
//!
//! Stored files keep the original tool's quirky first line byte for byte
//! ([`stored_from_line`]) so archives stay interchangeable with it; restore
//! output instead needs a real separator ([`separator_line`]) and quoted
//! bodies ([`MboxrdWriter`]) so mail readers split the messages correctly.

use std::io::{self, Write};

/// How many leading bytes of a message the original tool searched for `From:`.
pub const FROM_SCAN_LIMIT: usize = 16384;

const FROM_SPACE: &[u8; 5] = b"From ";

/// Python's `bytes.strip()` set; unlike `u8::is_ascii_whitespace` it includes `\x0b`.
fn is_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn py_strip(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_py_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_py_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The first line the original tool stored before a message: `b"From " + F + b"\n"`.
///
/// `head` must hold at least the first [`FROM_SCAN_LIMIT`] bytes of the
/// message (or all of it when shorter). F is the first line starting with
/// `from:` (any case), stripped, minus those 5 bytes, stripped again; the
/// original never unfolds, so a folded header yields an empty F. Without such
/// a line F is `unknown@unknown`, as the Python 2 version wrote (the Python 3
/// one crashed).
pub fn stored_from_line(head: &[u8]) -> Vec<u8> {
    let scanned = &head[..head.len().min(FROM_SCAN_LIMIT)];
    let sender = scanned
        .split(|&b| b == b'\n')
        .map(py_strip)
        .find(|line| line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"from:"))
        .map_or(&b"unknown@unknown"[..], |line| py_strip(&line[5..]));
    let mut out = Vec::with_capacity(sender.len() + 6);
    out.extend_from_slice(FROM_SPACE);
    out.extend_from_slice(sender);
    out.push(b'\n');
    out
}

/// A standard mbox separator `From ADDR DATE\n` (DATE in asctime form, UTC).
///
/// `head` is the start of the raw message; only its header section is read.
/// ADDR comes from `From:` (`MAILER-DAEMON` when absent or empty); DATE from
/// `Date:`, or from `fallback_time` (Unix seconds) when that is absent or not
/// a valid RFC 5322 date.
pub fn separator_line(head: &[u8], fallback_time: i64) -> Vec<u8> {
    let time = header_field(head, b"date").and_then(|v| parse_rfc5322_date(&v)).unwrap_or(fallback_time);
    separator_line_at(head, time)
}

/// A separator as [`separator_line`] makes, dated `time` (the arrival time, when known).
pub fn separator_line_at(head: &[u8], time: i64) -> Vec<u8> {
    let addr =
        header_field(head, b"from").and_then(|v| sender_address(&v)).unwrap_or_else(|| b"MAILER-DAEMON".to_vec());
    let mut out = FROM_SPACE.to_vec();
    out.extend_from_slice(&addr);
    out.push(b' ');
    out.extend_from_slice(asctime_utc(time).as_bytes());
    out.push(b'\n');
    out
}

/// Unfolded value of the first header field called `name`, searched only
/// before the first empty line; `head` may end mid-field.
pub(crate) fn header_field(head: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut value: Option<Vec<u8>> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let continuation = line[0] == b' ' || line[0] == b'\t';
        match (&mut value, continuation) {
            (Some(v), true) => v.extend_from_slice(line),
            (Some(_), false) => break,
            (None, _) => {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                // Obsolete syntax (RFC 5322 4.5) allows white space before the colon.
                let field = line[..colon].trim_ascii_end();
                if !continuation && field.eq_ignore_ascii_case(name) {
                    value = Some(line[colon + 1..].to_vec());
                }
            }
        }
    }
    value
}

/// The addr-spec of a `From:` value, made safe for a one-line, space-separated
/// separator; `None` when nothing usable remains.
fn sender_address(value: &[u8]) -> Option<Vec<u8>> {
    let addr = match value.iter().position(|&b| b == b'<') {
        Some(open) => {
            let rest = &value[open + 1..];
            let close = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
            &rest[..close]
        }
        None => {
            let mut tokens = value.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty());
            let first = tokens.clone().next();
            tokens.find(|t| t.contains(&b'@')).or(first)?
        }
    };
    let addr = addr.trim_ascii();
    if addr.is_empty() {
        return None;
    }
    // Readers split the separator on spaces, so one odd byte must not shift the date.
    let safe = addr.iter().map(|&b| if b.is_ascii_graphic() { b } else { b'_' }).collect();
    Some(safe)
}

pub(crate) const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Replaces (possibly nested) RFC 5322 comments with a space.
fn strip_comments(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut depth = 0usize;
    let mut escaped = false;
    for &b in value {
        if depth > 0 {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                out.push(b' ');
            }
        } else if b == b'(' {
            depth = 1;
        } else {
            out.push(b);
        }
    }
    out
}

/// `Some(n)` when `tok` is 1 to `max_digits` ASCII digits.
fn number(tok: &[u8], max_digits: usize) -> Option<i64> {
    if tok.is_empty() || tok.len() > max_digits || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(tok.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
}

/// Zone offset east of UTC in seconds.
fn zone_offset(tok: &[u8]) -> Option<i64> {
    if let [sign @ (b'+' | b'-'), digits @ ..] = tok {
        if digits.len() != 4 {
            return None;
        }
        let (hh, mm) = (number(&digits[..2], 2)?, number(&digits[2..], 2)?);
        if mm > 59 {
            return None;
        }
        let east = hh * 3600 + mm * 60;
        return Some(if *sign == b'-' { -east } else { east });
    }
    if !tok.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let hours = match tok.to_ascii_uppercase().as_slice() {
        b"EDT" => -4,
        b"EST" | b"CDT" => -5,
        b"CST" | b"MDT" => -6,
        b"MST" | b"PDT" => -7,
        b"PST" => -8,
        // UT/GMT/UTC are zero; RFC 5322 4.3 says military letters and unknown
        // names SHOULD be taken as -0000 because their meaning is unreliable.
        _ => 0,
    };
    Some(hours * 3600)
}

/// Unix time of an RFC 5322 date (obsolete forms included); `None` if invalid.
pub(crate) fn parse_rfc5322_date(value: &[u8]) -> Option<i64> {
    parse_rfc5322_date_zoned(value).map(|(t, _)| t)
}

/// Unix time of an RFC 5322 date and its zone's offset east of UTC in seconds.
pub(crate) fn parse_rfc5322_date_zoned(value: &[u8]) -> Option<(i64, i64)> {
    let text = strip_comments(value);
    let mut tokens = text.split(|&b| b.is_ascii_whitespace() || b == b',').filter(|t| !t.is_empty());
    let mut tok = tokens.next()?;
    if tok.first()?.is_ascii_alphabetic() {
        // The day of week is redundant; like most parsers, do not check it.
        if !WEEKDAYS.iter().any(|w| tok.len() >= 3 && tok[..3].eq_ignore_ascii_case(w.as_bytes())) {
            return None;
        }
        tok = tokens.next()?;
    }
    let day = number(tok, 2)?;
    let month_tok = tokens.next()?;
    let month = 1 + MONTHS.iter().position(|m| month_tok.eq_ignore_ascii_case(m.as_bytes()))? as i64;
    let year_tok = tokens.next()?;
    let year = match (number(year_tok, 4)?, year_tok.len()) {
        (y, 2) if y < 50 => y + 2000,
        (y, 2 | 3) => y + 1900,
        (y, 4) if y >= 1900 => y,
        _ => return None,
    };
    let mut hms = tokens.next()?.split(|&b| b == b':');
    let hour = number(hms.next()?, 2)?;
    let minute = number(hms.next()?, 2)?;
    let second = hms.next().map_or(Some(0), |s| number(s, 2))?;
    if hms.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // A missing zone is not RFC 5322, but the local time is still closer than the fallback.
    let offset = tokens.next().map_or(Some(0), zone_offset)?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    Some((local - offset, offset))
}

pub(crate) fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)`.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `Thu Jan  1 00:00:00 1970` for Unix time 0, as C's asctime prints it.
fn asctime_utc(time: i64) -> String {
    let (days, secs) = (time.div_euclid(86400), time.rem_euclid(86400));
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!("{} {} {:2} {:02}:{:02}:{:02} {}", weekday, month_name, day, secs / 3600, secs / 60 % 60, secs % 60, year)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuoteState {
    /// At a line start or after only `>`s: a `From ` here must be quoted.
    Prefix,
    /// The first `k` bytes of `From ` were seen in the prefix and are held back.
    Matching(usize),
    /// Elsewhere in a line.
    Body,
}

/// A `Write` adapter that applies mboxrd quoting: lines matching `^>*From `
/// get one more `>` in front.
///
/// The `>`s of a prefix pass straight through (an extra `>` before `From `
/// gives the same bytes as one in front of the run), so at most 4 bytes of
/// a partial `From ` are ever held back; [`MboxrdWriter::finish`] emits them.
/// Dropping the writer without `finish` loses them.
#[derive(Debug)]
pub struct MboxrdWriter<W: Write> {
    inner: W,
    state: QuoteState,
}

impl<W: Write> MboxrdWriter<W> {
    /// Wraps `inner`; the first byte written counts as a line start.
    pub fn new(inner: W) -> Self {
        MboxrdWriter { inner, state: QuoteState::Prefix }
    }

    /// Emits any held-back bytes, flushes and returns the inner writer.
    ///
    /// # Errors
    /// Any error of the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if let QuoteState::Matching(k) = self.state {
            self.inner.write_all(&FROM_SPACE[..k])?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// The inner writer (without bytes still held back).
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for MboxrdWriter<W> {
    /// Consumes all of `buf`; after an error the output is incomplete.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // buf[pending..i] passes through unchanged, written in one go.
        let mut pending = 0;
        let mut i = 0;
        while i < buf.len() {
            // Inside a line nothing can need quoting: jump to its end.
            if self.state == QuoteState::Body {
                match buf[i..].iter().position(|&b| b == b'\n') {
                    Some(nl) => i += nl,
                    None => break,
                }
            }
            let at = i;
            let b = buf[at];
            i += 1;
            if let QuoteState::Matching(k) = self.state {
                if b == FROM_SPACE[k] {
                    self.state = if k + 1 == FROM_SPACE.len() {
                        self.inner.write_all(b">From ")?;
                        QuoteState::Body
                    } else {
                        QuoteState::Matching(k + 1)
                    };
                    pending = at + 1;
                    continue;
                }
                self.inner.write_all(&FROM_SPACE[..k])?;
                pending = at;
                self.state = QuoteState::Body;
            }
            self.state = match (self.state, b) {
                (_, b'\n') | (QuoteState::Prefix, b'>') => QuoteState::Prefix,
                (QuoteState::Prefix, b'F') => {
                    self.inner.write_all(&buf[pending..at])?;
                    pending = at + 1;
                    QuoteState::Matching(1)
                }
                _ => QuoteState::Body,
            };
        }
        self.inner.write_all(&buf[pending..])?;
        Ok(buf.len())
    }

    /// Flushes the inner writer; a partial `From ` stays held back, since the
    /// next bytes decide whether it is quoted.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reverses mboxrd quoting: removes one `>` from each line matching `^>+From `.
pub fn unquote_mboxrd(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let gts = line.iter().take_while(|&&b| b == b'>').count();
        let quoted = gts > 0 && line[gts..].starts_with(FROM_SPACE);
        out.extend_from_slice(if quoted { &line[1..] } else { line });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vectors");

    #[test]
    fn stored_from_line_matches_every_vector() {
        let input = Path::new(VECTORS).join("input");
        let entries =
            fs::read_dir(&input).unwrap_or_else(|e| panic!("vectors missing: cannot read {}: {e}", input.display()));
        let mut checked = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("eml") {
                continue;
            }
            let uid = path.file_stem().unwrap().to_str().unwrap().to_string();
            let eml = fs::read(&path).unwrap();
            let mut stored = stored_from_line(&eml);
            let expected_path = Path::new(VECTORS).join("expected").join(format!("{uid}.mbox"));
            match fs::read(&expected_path) {
                Ok(expected) => {
                    stored.extend_from_slice(&eml);
                    assert!(stored == expected, "vector {uid} differs");
                    checked += 1;
                }
                // The original crashed on these (no From: in the first 16 KiB).
                Err(_) => assert_eq!(stored, b"From unknown@unknown\n", "vector {uid}"),
            }
        }
        assert!(checked > 0, "no expected/*.mbox vectors found in {VECTORS}");
    }

    #[test]
    fn stored_from_line_cases() {
        assert_eq!(stored_from_line(b"Subject: x\r\n\r\nbody"), b"From unknown@unknown\n");
        assert_eq!(stored_from_line(b""), b"From unknown@unknown\n");
        assert_eq!(stored_from_line(b"Subject: x\r\nFROM:  Bob <b@x.org> \r\n\r\n"), b"From Bob <b@x.org>\n");
        assert_eq!(stored_from_line(b"from:a@b\nFrom: c@d\n"), b"From a@b\n");
        // Python strips \x0b and \x0c too.
        assert_eq!(stored_from_line(b"\x0b From:\x0c a@b \x0b\r\n"), b"From a@b\n");
        assert_eq!(stored_from_line(b"From:\r\n \"Folded\" <f@x.org>\r\n"), b"From \n");
        assert_eq!(stored_from_line(b"Fro"), b"From unknown@unknown\n");
    }

    #[test]
    fn stored_from_line_scan_limit() {
        let mut late = b"X-Pad: ".to_vec();
        late.resize(FROM_SCAN_LIMIT, b'a');
        late.extend_from_slice(b"\nFrom: late@example.org\n");
        assert_eq!(stored_from_line(&late), b"From unknown@unknown\n");

        // Cut after "From: bo", as Python's head[:16384] would.
        let mut crossing = b"X-Pad: ".to_vec();
        crossing.resize(FROM_SCAN_LIMIT - 9, b'a');
        crossing.extend_from_slice(b"\nFrom: bob@example.org\n");
        assert_eq!(stored_from_line(&crossing), b"From bo\n");

        // "From:" cut inside its name no longer matches.
        let mut split_name = b"X-Pad: ".to_vec();
        split_name.resize(FROM_SCAN_LIMIT - 4, b'a');
        split_name.extend_from_slice(b"\nFrom: bob@example.org\n");
        assert_eq!(stored_from_line(&split_name), b"From unknown@unknown\n");
    }

    fn sep(head: &str) -> String {
        String::from_utf8(separator_line(head.as_bytes(), 0)).unwrap()
    }

    #[test]
    fn separator_address() {
        let d = "Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n";
        let with = |from: &str| sep(&format!("{d}{from}\r\n\r\nbody\r\n"));
        let tail = " Thu Jan  1 00:00:00 1970\n";
        let line = |a: &str| format!("From {a}{tail}");
        assert_eq!(with("From: \"Bob\" <bob@example.org>"), line("bob@example.org"));
        assert_eq!(with("from: bob@example.org (Bob Smith)"), line("bob@example.org"));
        assert_eq!(with("FROM: Bob Smith bob@x.org"), line("bob@x.org"));
        assert_eq!(with("From:\r\n \"Knuth\"\r\n\t<folded@example.org>"), line("folded@example.org"));
        assert_eq!(with("From : obs@x.org"), line("obs@x.org"));
        assert_eq!(with("From: Undisclosed"), line("Undisclosed"));
        assert_eq!(with("From: < a b@x.org >"), line("a_b@x.org"));
        assert_eq!(with("From: <bob@x.org"), line("bob@x.org"));
        assert_eq!(with("From: j\u{f6}rg@x.de"), line("j__rg@x.de"));
        assert_eq!(with("From: <>"), line("MAILER-DAEMON"));
        assert_eq!(with("From:   "), line("MAILER-DAEMON"));
        assert_eq!(with("Resent-From: r@x.org"), line("MAILER-DAEMON"));
        assert_eq!(with("X-Subject: a\r\n From: folded@x.org"), line("MAILER-DAEMON"));
        // Only the header section counts, with either line ending.
        assert_eq!(sep("Subject: a\n\nFrom: body@x.org\n"), line("MAILER-DAEMON"));
        assert_eq!(sep("Subject: a\r\n\r\nFrom: body@x.org\r\n"), line("MAILER-DAEMON"));
        // A head cut mid-field still yields what it has.
        assert_eq!(sep("From: bob@exa"), line("bob@exa"));
    }

    fn date(value: &str) -> String {
        let head = format!("From: a@b\r\nDate: {value}\r\n\r\n");
        let line = String::from_utf8(separator_line(head.as_bytes(), -1)).unwrap();
        line.strip_prefix("From a@b ").unwrap().trim_end().to_string()
    }

    #[test]
    fn separator_dates() {
        let cases = [
            ("Thu, 1 Jan 1970 00:00:00 +0000", "Thu Jan  1 00:00:00 1970"),
            ("Mon, 11 Jun 2013 13:13:49 +0200", "Tue Jun 11 11:13:49 2013"),
            ("Tue, 1 Jan 2013 01:00:00 +0200", "Mon Dec 31 23:00:00 2012"),
            ("Sat, 31 Dec 2016 22:00:00 -0500", "Sun Jan  1 03:00:00 2017"),
            ("29 Feb 2000 23:30:00 -0100", "Wed Mar  1 00:30:00 2000"),
            ("1 Mar 2000 00:30 +0100", "Tue Feb 29 23:30:00 2000"),
            ("Fri, 21 Nov 1997 09:55:06 EST", "Fri Nov 21 14:55:06 1997"),
            ("Fri, 21 Nov 1997 09:55:06 pdt", "Fri Nov 21 16:55:06 1997"),
            ("Fri, 21 Nov 1997 09:55:06 -0600 (MDT)", "Fri Nov 21 15:55:06 1997"),
            ("Fri,(a (nested) comment)21 Nov 1997 09:55:06 GMT", "Fri Nov 21 09:55:06 1997"),
            ("21 nov 97 09:55:06 UT", "Fri Nov 21 09:55:06 1997"),
            ("1 Jan 49 00:00 Z", "Fri Jan  1 00:00:00 2049"),
            ("1 Jan 50 00:00:00 UTC", "Sun Jan  1 00:00:00 1950"),
            ("1 Jan 103 00:00:00 +0000", "Wed Jan  1 00:00:00 2003"),
            ("Fri, 21 Nov 1997 09:55:06 CEST", "Fri Nov 21 09:55:06 1997"),
            ("Fri, 21 Nov 1997 09:55:06", "Fri Nov 21 09:55:06 1997"),
            ("Wed, 31 Dec 2008 23:59:60 +0000", "Thu Jan  1 00:00:00 2009"),
        ];
        for (value, want) in cases {
            assert_eq!(date(value), want, "Date: {value}");
        }
    }

    #[test]
    fn separator_invalid_dates_use_fallback() {
        let fallback = "Wed Dec 31 23:59:59 1969";
        for value in [
            "Fri, 30 Feb 2013 10:00:00 +0000",
            "29 Feb 2013 10:00:00 +0000",
            "31 Apr 2013 10:00:00 +0000",
            "0 Jan 2013 10:00:00 +0000",
            "1 Jan 2013 25:00:00 +0000",
            "1 Jan 2013 10:60:00 +0000",
            "1 Jan 2013 10:00:00 +02:00",
            "1 Jan 2013 10:00:00 +0260",
            "1 Foo 2013 10:00:00 +0000",
            "1 Jan 0013 10:00:00 +0000",
            "Someday, 1 Jan 2013 10:00:00 +0000",
            "1 Jan 2013",
            "garbage",
            "",
        ] {
            assert_eq!(date(value), fallback, "Date: {value}");
        }
        assert_eq!(sep("From: a@b\n\nDate: 1 Jan 2013 10:00:00 +0000\n"), "From a@b Thu Jan  1 00:00:00 1970\n");
    }

    #[test]
    fn separator_fallback_formatting() {
        let at = |t| String::from_utf8(separator_line(b"", t)).unwrap();
        assert_eq!(at(0), "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
        assert_eq!(at(1_000_000_000), "From MAILER-DAEMON Sun Sep  9 01:46:40 2001\n");
        assert_eq!(at(951_782_400), "From MAILER-DAEMON Tue Feb 29 00:00:00 2000\n");
        assert_eq!(at(-86_400 * 365), "From MAILER-DAEMON Wed Jan  1 00:00:00 1969\n");
        // Extremes must format without overflow, however odd the year.
        assert!(at(i64::MAX).starts_with("From MAILER-DAEMON "));
        assert!(at(i64::MIN).starts_with("From MAILER-DAEMON "));
    }

    #[test]
    fn separator_for_vectors() {
        let eml = fs::read(Path::new(VECTORS).join("input/99.eml")).unwrap_or_else(|e| panic!("vectors missing: {e}"));
        assert_eq!(separator_line(&eml, 0), b"From folded@example.org Tue Jun 11 11:13:49 2013\n");
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1600, 1, 1), -135140);
        for days in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    fn quote_in_pieces(input: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
        let mut w = MboxrdWriter::new(Vec::new());
        let mut rest = input;
        while !rest.is_empty() {
            let n = sizes().clamp(1, rest.len());
            w.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        w.finish().unwrap()
    }

    fn quote(input: &[u8]) -> Vec<u8> {
        quote_in_pieces(input, &mut || usize::MAX)
    }

    /// Line-by-line statement of the rule, to check the streaming version against.
    fn quote_reference(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in input.split_inclusive(|&b| b == b'\n') {
            let gts = line.iter().take_while(|&&b| b == b'>').count();
            if line[gts..].starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        out
    }

    #[test]
    fn mboxrd_known_answers() {
        let cases: [(&[u8], &[u8]); 10] = [
            (b"From me\n", b">From me\n"),
            (b"a\nFrom x\n>From y\n>>From z\n", b"a\n>From x\n>>From y\n>>>From z\n"),
            (b"a\r\nFrom x\r\n", b"a\r\n>From x\r\n"),
            (
                b" From x\nxFrom y\nFrom\nFromx\nFFrom \n>F>From \n",
                b" From x\nxFrom y\nFrom\nFromx\nFFrom \n>F>From \n",
            ),
            (b"from x\n", b"from x\n"),
            (b"From ", b">From "),
            (b">>Fro", b">>Fro"),
            (b"x\nFrom", b"x\nFrom"),
            (b"", b""),
            (b"\n\nFrom \n", b"\n\n>From \n"),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(quote_in_pieces(input, &mut || 1), want);
            assert_eq!(unquote_mboxrd(want), input);
        }
    }

    #[test]
    fn mboxrd_long_gt_run_is_not_held() {
        let mut w = MboxrdWriter::new(Vec::new());
        w.write_all(&[b'>'; 100_000]).unwrap();
        assert_eq!(w.get_ref().len(), 100_000);
        w.write_all(b"Fro").unwrap();
        assert_eq!(w.get_ref().len(), 100_000);
        w.write_all(b"m x").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 100_007);
        assert_eq!(&out[100_000..], b">From x");
    }

    #[test]
    fn mboxrd_random_pieces_and_round_trip() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b">From \n\rx";
        for _ in 0..2000 {
            let len = (next() % 120) as usize;
            let input: Vec<u8> = (0..len).map(|_| alphabet[(next() % 9) as usize]).collect();
            let whole = quote(&input);
            assert_eq!(whole, quote_reference(&input));
            let pieces = quote_in_pieces(&input, &mut || (next() % 8) as usize + 1);
            assert_eq!(pieces, whole);
            assert_eq!(quote_in_pieces(&input, &mut || 1), whole);
            assert_eq!(unquote_mboxrd(&whole), input);
        }
    }
}
