//! `--list`: one line per message of a folder directory (UID, date, From, Subject, size,
//! flags, whether it left the server), decoding only the headers: each file is authenticated whole when encrypted (its
//! MAC covers it all), but decrypted and inflated only up to the blank line that ends
//! the header section.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::archive;
use crate::archive::metadata::{Index, MessageMeta};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::mbox::header_field;

/// Most header bytes read of a message.
const MAX_HEADER: u64 = 256 * 1024;
/// Longest From or Subject shown.
const MAX_SHOWN: usize = 160;

/// What a listing tells as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A message's line (see [`list`]).
    Message {
        /// The message's line.
        line: &'a str,
    },
    /// The folder's metadata could not be used: lines without flags and arrival times.
    MetadataUnusable {
        /// The folder directory.
        dir: &'a Path,
        /// What went wrong.
        error: &'a Error,
    },
    /// A file that could not be read (the listing goes on).
    Unreadable {
        /// The file.
        path: &'a Path,
        /// Why.
        why: &'a str,
    },
    /// Damaged records of the folder's journal, left out.
    DamagedRecords {
        /// The folder directory.
        dir: &'a Path,
        /// How many.
        count: usize,
    },
}

/// Where a listing's events go; a sink whose reader went away
/// ([`crate::events::Sink::gone`]) stops it.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}

/// What a listing came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files that could not be read.
    pub failed: usize,
}

/// Lists the messages of the folder directory `dir` in UID order, each line told to `sink`
/// (whose reader may go away: the listing stops then):
/// `UID<TAB>date<TAB>From<TAB>Subject<TAB>size<TAB>flags<TAB>server`. The date is the
/// arrival time (INTERNALDATE) when the folder's metadata (`journal`) has it, else the
/// `Date:` header; `server` is `gone, last seen DATE` for a message that left the server
/// (kept only in the archive); `-` stands for what is unknown (or, last, for a message not
/// known to have left). A file not named after a UID shows its name in the UID column.
pub fn list(dir: &Path, keys: Option<&Keys>, journal: Option<&Path>, sink: &dyn Sink) -> Result<Summary> {
    let mut summary = Summary::default();
    let (index, unusable) = match journal.map(|j| Index::load(j, keys, false)) {
        Some(Ok(i)) => (Some(i), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let mut failed = Vec::new();
    for f in archive::list_folder(dir)? {
        let meta = index.as_ref().zip(f.uid).and_then(|(i, uid)| i.lookup(uid));
        let head = match read_header(&f, keys) {
            Ok(h) => h,
            Err(e) => {
                failed.push((f.path.clone(), crate::error::describe_io(&e)));
                continue;
            }
        };
        let field = |name: &[u8]| header_field(&head.1, name);
        let name = f.uid.map_or_else(|| crate::printable::escape(&f.name()), |u| u.to_string());
        let shown = Shown { date: field(b"date"), from: field(b"from"), subject: field(b"subject"), size: head.0 };
        sink.event(Event::Message { line: &line(&name, meta.as_ref(), &shown) });
        if sink.gone() {
            break;
        }
    }
    // What went wrong is said after the lines.
    if let Some(error) = &unusable {
        sink.event(Event::MetadataUnusable { dir, error });
    }
    let damaged = index.as_ref().map_or(0, |i| i.damage().len());
    if damaged > 0 {
        sink.event(Event::DamagedRecords { dir, count: damaged });
    }
    for (path, why) in &failed {
        sink.event(Event::Unreadable { path, why });
    }
    summary.failed = failed.len();
    Ok(summary)
}

/// What a message's line shows besides its metadata: raw header values, and its size
/// when known otherwise.
#[derive(Debug, Default)]
pub struct Shown {
    /// The `Date:` header (shown when the metadata has no arrival time).
    pub date: Option<Vec<u8>>,
    /// The `From:` header.
    pub from: Option<Vec<u8>>,
    /// The `Subject:` header.
    pub subject: Option<Vec<u8>>,
    /// The message's size, when the metadata has none.
    pub size: Option<u64>,
}

/// A message's line: `name<TAB>date<TAB>From<TAB>Subject<TAB>size<TAB>flags<TAB>server`
/// (see [`list`]); `name` is its UID (or its file's name).
pub fn line(name: &str, meta: Option<&MessageMeta>, values: &Shown) -> String {
    let field = |v: &Option<Vec<u8>>| v.as_deref().map(shown);
    let date = meta
        .and_then(|m| m.internal_date.as_deref())
        .and_then(crate::archive::metadata::parse_internal_date)
        .map(|(t, zone)| crate::date::display(t, i64::from(zone) * 60))
        .or_else(|| values.date.as_deref().map(header_date));
    let size = meta.and_then(|m| m.size).or(values.size);
    let flags = meta.map(|m| m.flags.join(" "));
    let dash = |v: Option<String>| v.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into());
    let server = meta.and_then(|m| m.gone).map(|g| match g.last_seen {
        0 => "gone, last seen -".to_string(),
        t => format!("gone, last seen {}", crate::date::display(t, 0)),
    });
    format!(
        "{name}\t{}\t{}\t{}\t{}\t{}\t{}",
        dash(date),
        dash(field(&values.from)),
        dash(field(&values.subject)),
        dash(size.map(|s| s.to_string())),
        dash(flags),
        dash(server)
    )
}

/// The message's header section, and its size when the file's size tells it (a plain file).
fn read_header(f: &archive::ArchiveFile, keys: Option<&Keys>) -> std::io::Result<(Option<u64>, Vec<u8>)> {
    let (from_line, reader) = f.open(keys)?;
    let size = if f.form.compressed || f.form.encrypted {
        None
    } else {
        std::fs::metadata(&f.path)?.len().checked_sub(from_line.len() as u64)
    };
    let mut reader = reader.take(MAX_HEADER);
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if reader.read_until(b'\n', &mut head)? == 0 {
            break;
        }
        let line = &head[start..];
        if line == b"\n" || line == b"\r\n" {
            break;
        }
    }
    Ok((size, head))
}

/// A `Date:` header as every date of the listing is shown; as it is when it is no date.
fn header_date(value: &[u8]) -> String {
    match crate::mbox::parse_rfc5322_date_zoned(value) {
        Some((t, offset)) => crate::date::display(t, offset),
        None => shown(value),
    }
}

/// A header value on one line: unfolded, trimmed, RFC 2047 words decoded, control
/// characters escaped, tabs as spaces, cut at [`MAX_SHOWN`] characters.
fn shown(value: &[u8]) -> String {
    let text = crate::search::encoded::decode_value(value);
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = crate::printable::escape(&one);
    if s.chars().count() > MAX_SHOWN {
        s = s.chars().take(MAX_SHOWN).collect::<String>() + "...";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_as_a_person_would() {
        assert_eq!(shown(b"=?UTF-8?B?R3LDvMOfZSBOci4gMTUx?="), "Grüße Nr. 151");
        assert_eq!(shown(b"Re: =?utf-8?Q?caf=C3=A9?=\r\n\t=?utf-8?Q?_cr=C3=A8me?= ok"), "Re: café crème ok");
        // What a decoded word holds is made as inert as the rest.
        assert_eq!(shown(b"=?UTF-8?Q?a=09b=1Bc?="), "a b\\u{1b}c");
        assert_eq!(header_date(b"Wed, 1 Jan 2014 00:00:00 +0000"), "2014-01-01 00:00:00 +0000");
        assert_eq!(header_date(b"Thu, 2 Jan 2020 10:00:00 +0100 (CET)"), "2020-01-02 10:00:00 +0100");
        assert_eq!(header_date(b"2 Jan 20 10:00 EST"), "2020-01-02 10:00:00 -0500");
        assert_eq!(header_date(b"yesterday"), "yesterday");
    }
}
